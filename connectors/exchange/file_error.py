"""The error of a fund's file (request or acknowledgement) that cannot be read as its profile
says."""

from __future__ import annotations

from collections.abc import Sequence


class ExchangeFileError(Exception):
    """A request or acknowledgement that cannot be read as its profile says.

    ``str(error)`` is the first problem, one sentence with the file, line and column;
    ``problems`` lists every problem found.
    """

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        first = self.problems[0] if self.problems else "The file cannot be read."
        more = len(self.problems) - 1
        if more:  # still one sentence: the count goes before its full stop
            plural = "s" if more > 1 else ""
            first = f"{first.rstrip('.')} (and {more} more problem{plural} in the file)."
        super().__init__(first)

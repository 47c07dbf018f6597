"""Errors a person reads."""

from __future__ import annotations

from typing import Any


class OperatorError(Exception):
    """Something the operator can fix: the message is one sentence saying what and how."""


class NotYetAvailable(OperatorError):
    """A command of the public contract whose issue has not landed yet."""


class WorkFailed(OperatorError):
    """Part of the work was done, part failed: ``done`` says what was done (printed first),
    the message is the one sentence about what failed (the command exits 1)."""

    def __init__(self, message: str, done: str = "") -> None:
        super().__init__(message)
        self.done = done


class RequestsUnanswered(OperatorError):
    """An exchange run left a partner's request without a prepared batch: the run fails
    (Failed in Prefect, exit 1 from the command); ``summary`` holds what the run did."""

    def __init__(self, message: str, summary: dict[str, Any] | None = None) -> None:
        super().__init__(message, summary)  # both in args: the exception pickles whole
        self.summary = summary or {}

    def __str__(self) -> str:
        return str(self.args[0])

    def __repr__(self) -> str:  # as Prefect logs it: the sentence, not the summary
        return f"{type(self).__name__}({self.args[0]!r})"

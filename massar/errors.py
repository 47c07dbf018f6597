"""Errors a person reads."""


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

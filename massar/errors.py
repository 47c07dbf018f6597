"""Errors a person reads."""


class OperatorError(Exception):
    """Something the operator can fix: the message is one sentence saying what and how."""


class NotYetAvailable(OperatorError):
    """A command of the public contract whose issue has not landed yet."""

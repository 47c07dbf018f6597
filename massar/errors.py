"""Moved to ground/errors.py (the ground floor every room may import); this name stays while
files being edited elsewhere still import it (docs/architecture.md, "Shims")."""

from ground.errors import NotYetAvailable, OperatorError, RequestsUnanswered, WorkFailed

__all__ = ["NotYetAvailable", "OperatorError", "RequestsUnanswered", "WorkFailed"]

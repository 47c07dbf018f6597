"""Times are held in UTC everywhere: the one way to take the time now and to read back a stored
moment (SQLite hands datetimes back without their zone; they were stored in UTC)."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The time now, in UTC (the default of every timestamp the control database records)."""
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a moment without a zone is taken as UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)

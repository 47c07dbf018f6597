"""Times read back from the control database are UTC, whatever the database hands back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from ground.utc import as_utc, utcnow


def test_a_moment_without_a_zone_is_taken_as_utc():
    assert as_utc(datetime(2024, 6, 1, 2, 0)) == datetime(2024, 6, 1, 2, 0, tzinfo=UTC)
    assert as_utc(datetime(2024, 6, 1, 2, 0)).tzinfo is UTC


def test_a_moment_in_another_zone_is_moved_to_utc_not_relabelled():
    casablanca_summer = timezone(timedelta(hours=1))
    moved = as_utc(datetime(2024, 6, 1, 3, 0, tzinfo=casablanca_summer))
    assert (moved.hour, moved.tzinfo) == (2, UTC)


def test_now_carries_its_zone():
    before = datetime.now(UTC)
    now = utcnow()
    assert now.tzinfo is UTC and before <= now <= datetime.now(UTC)

"""Weekly warehouse maintenance: compact small files, then delete what only versions that left
the time-travel window need (the daily housekeeping of runs, logs and disk is
tasks/housekeeping.py).

The window is counted in published nights, not in the age of Delta's files: the versions of
every night published in the last ``keep_days`` days stay readable, and the last published
night whatever its age (a warehouse whose nightly stopped keeps what readers read). Every
later version stays too (the compaction's, a night that failed). What older versions alone
need goes: their data files (those replaced by later nights and by compaction) and their log
entries, so a warehouse stops growing once it holds ``keep_days`` days of nights.

The policy is docs/warehouse-policy.md; the Delta functions are in :mod:`warehouse.delta`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import select

from ground.settings import Settings
from ground.utc import as_utc, utcnow
from warehouse.control import ControlDatabase, Night
from warehouse.delta import compact, table_versions, vacuum_before

# A month of nights stays readable (docs/warehouse-policy.md).
DEFAULT_KEEP_DAYS = 30


def warehouse_tables(settings: Settings) -> list[str]:
    return sorted(table_versions(settings.warehouse))


def oldest_kept_versions(
    settings: Settings, keep_days: int = DEFAULT_KEEP_DAYS, now: datetime | None = None
) -> dict[str, int]:
    """Per table, the oldest version a night still inside the window reads: the nights
    published since ``now - keep_days`` and the last published night. Empty when no night was
    ever published (then nothing is deleted)."""
    since = as_utc(now or utcnow()) - timedelta(days=keep_days)
    database = ControlDatabase(settings.resolved_database_url)
    try:
        with database.session() as session:
            nights = list(
                session.scalars(
                    select(Night).where(Night.state == "completed").order_by(Night.night_id)
                )
            )
            kept = [
                n.versions or {}
                for n in nights
                if n.finished_at is not None and as_utc(n.finished_at) >= since
            ]
            if nights:
                kept.append(nights[-1].versions or {})
    finally:
        database.dispose()
    oldest: dict[str, int] = {}
    for versions in kept:
        for table, version in versions.items():
            oldest[table] = min(int(version), oldest.get(table, int(version)))
    return oldest


def tidy_table(settings: Settings, table: str, oldest_version: int | None = None) -> dict[str, Any]:
    """Compact the table's crowded partitions, then delete the data files and log entries only
    versions before ``oldest_version`` need (None: no published night reads the table, nothing
    is deleted). Returns counts (no data)."""
    compacted = compact(settings.warehouse, table)
    cleaned = (
        vacuum_before(settings.warehouse, table, oldest_version)
        if oldest_version is not None
        else {"files_vacuumed": 0, "log_entries_dropped": 0}
    )
    return {
        "table": table,
        "partitions_compacted": len(compacted["partitions"]),
        "files_added": compacted.get("numFilesAdded", 0),
        "files_removed": compacted.get("numFilesRemoved", 0),
        "oldest_version_kept": oldest_version,
        **cleaned,
    }


def maintenance_not_run(arguments: dict[str, Any], sentence: str) -> list[dict[str, Any]]:
    """What the flow returns when another run kept the warehouse: nothing tidied."""
    return []


warehouse_tables_task = task(name="list_warehouse_tables", cache_policy=NO_CACHE)(warehouse_tables)
oldest_kept_versions_task = task(name="oldest_kept_versions", cache_policy=NO_CACHE)(
    oldest_kept_versions
)
tidy_table_task = task(name="tidy_table", cache_policy=NO_CACHE, task_run_name="tidy-{table}")(
    tidy_table
)

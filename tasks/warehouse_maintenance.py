"""Weekly warehouse maintenance: compact small files, then vacuum old versions (the daily
housekeeping of runs, logs and disk is tasks/housekeeping.py).

The policy is docs/warehouse-policy.md; the functions are in :mod:`warehouse.delta`.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from ground.settings import Settings
from warehouse.delta import DEFAULT_RETAIN_HOURS, compact, table_versions, vacuum


def warehouse_tables(settings: Settings) -> list[str]:
    return sorted(table_versions(settings.warehouse))


def tidy_table(
    settings: Settings, table: str, retain_hours: int = DEFAULT_RETAIN_HOURS
) -> dict[str, Any]:
    """Compact the table's crowded partitions, then delete files older than the retention
    window that no recent version needs. Returns counts (no data)."""
    compacted = compact(settings.warehouse, table)
    deleted = vacuum(settings.warehouse, table, retain_hours)
    return {
        "table": table,
        "partitions_compacted": len(compacted["partitions"]),
        "files_added": compacted.get("numFilesAdded", 0),
        "files_removed": compacted.get("numFilesRemoved", 0),
        "files_vacuumed": len(deleted),
    }


warehouse_tables_task = task(name="list_warehouse_tables", cache_policy=NO_CACHE)(warehouse_tables)
tidy_table_task = task(name="tidy_table", cache_policy=NO_CACHE, task_run_name="tidy-{table}")(
    tidy_table
)

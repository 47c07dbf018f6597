"""Flow ``warehouse_maintenance``: weekly compaction and vacuum of every warehouse table."""

from __future__ import annotations

from datetime import datetime

from prefect import flow

from flows.recorded import recorded
from ground.settings import Settings, flow_settings
from tasks.leases import WAREHOUSE, leased
from tasks.warehouse_maintenance import (
    DEFAULT_KEEP_DAYS,
    maintenance_not_run,
    oldest_kept_versions_task,
    tidy_table_task,
    warehouse_tables_task,
)


@flow(name="warehouse_maintenance")
@recorded
@leased(WAREHOUSE, maintenance_not_run)  # no night or evaluation writes while files go
def warehouse_maintenance(
    settings: Settings | None = None,
    home: str | None = None,
    keep_days: int = DEFAULT_KEEP_DAYS,
    now: datetime | None = None,
) -> list[dict]:
    """Compact then vacuum each table: the nights published in the last ``keep_days`` days
    (before ``now``) and the last published night stay readable, older versions go."""
    settings = flow_settings(settings, home)  # secrets: from the home, not Prefect
    oldest = oldest_kept_versions_task(settings, keep_days, now)
    return [
        tidy_table_task(settings, table, oldest.get(table))
        for table in warehouse_tables_task(settings)
    ]

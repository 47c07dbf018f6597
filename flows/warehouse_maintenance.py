"""Flow ``warehouse_maintenance``: weekly compaction and vacuum of every warehouse table."""

from __future__ import annotations

from prefect import flow

from flows.recorded import recorded
from ground.settings import Settings, load_settings
from tasks.warehouse_maintenance import DEFAULT_RETAIN_HOURS, tidy_table_task, warehouse_tables_task


@flow(name="warehouse_maintenance")
@recorded
def warehouse_maintenance(
    settings: Settings | None = None,
    home: str | None = None,
    retain_hours: int = DEFAULT_RETAIN_HOURS,
) -> list[dict]:
    """Compact then vacuum each table; versions younger than ``retain_hours`` stay readable."""
    settings = settings or load_settings(home)
    return [
        tidy_table_task(settings, table, retain_hours) for table in warehouse_tables_task(settings)
    ]

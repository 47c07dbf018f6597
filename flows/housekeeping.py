"""Flow ``housekeeping``: every day, keep the installation from growing without bounds.

old Prefect runs deleted → logs rotated → archive and free disk measured → (weekly warehouse
maintenance looked up) → report artifact → disk alert e-mailed once a day (logged at every run).

The policy is docs/housekeeping.md; the functions are in :mod:`tasks.housekeeping`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.recorded import recorded
from ground.settings import Settings, flow_settings
from tasks.alerts import send_alerts_task
from tasks.housekeeping import (
    delete_old_flow_runs_task,
    disk_low_alerts_task,
    housekeeping_markdown,
    last_warehouse_maintenance_task,
    measure_archive_task,
    not_yet_sent_task,
    rotate_logs_task,
)


@flow(name="housekeeping")
@recorded
def housekeeping(
    settings: Settings | None = None, home: str | None = None, now: datetime | None = None
) -> dict:
    """Delete Prefect runs past their retention, rotate logs, measure the archive and the free
    disk, and alert when it runs low. Returns counts and sizes (no pupil data)."""
    settings = flow_settings(settings, home)  # secrets: from the home, not Prefect
    now = now or datetime.now(UTC)
    logger = get_run_logger()
    runs = delete_old_flow_runs_task(settings, now)
    logs = rotate_logs_task(settings, now)
    archive = measure_archive_task(settings, now)
    maintenance = last_warehouse_maintenance_task(settings)
    alerts = disk_low_alerts_task(settings, archive, now)
    for alert in alerts:
        logger.warning("%s (%s)", alert.subject, alert.key)
    create_markdown_artifact(
        housekeeping_markdown(runs, logs, archive, maintenance, alerts),
        key="housekeeping",
        description="What housekeeping deleted, rotated and measured (no pupil data).",
    )
    sent = send_alerts_task(settings, not_yet_sent_task(settings, alerts))
    return {
        "runs": runs,
        "logs": logs,
        "archive": archive.as_dict(),
        "warehouse_maintenance": maintenance,
        "alerts": [alert.key for alert in alerts],
        "sent": sent,
    }

"""A flow's run in the platform's own record (the control database's ``runs`` table,
warehouse/runs.py), for ``massar status``: flows/recorded.py calls these around every flow.

    record_start(arguments) -> (database URL, run id) | None    the run is running
    record_end(started, state, summary)                          how it ended

Recording never fails the flow: a control database that cannot be written is a warning in the
log.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)
# Parameters that say which run it was (a partner, a year): recorded with the run.
SCOPE_PARAMETERS = ("partner", "year", "semester", "submission")


def record_start(arguments: dict[str, Any]) -> tuple[str, str] | None:
    """Record the run as started; returns (database URL, run id), or None when it cannot be
    recorded (no flow run, no home: the flow itself says what is wrong)."""
    from prefect.runtime import flow_run

    if not flow_run.id:
        return None
    try:
        from ground.settings import flow_settings
        from warehouse.runs import start_run

        settings = flow_settings(arguments.get("settings"), arguments.get("home"))
        url = settings.resolved_database_url
        scope = {k: arguments[k] for k in SCOPE_PARAMETERS if arguments.get(k) is not None}
        start_run(url, str(flow_run.id), str(flow_run.flow_name), {"parameters": scope})
        return url, str(flow_run.id)
    except Exception as error:
        log.warning("The run could not be recorded in the control database (%r).", error)
        return None


def record_end(started: tuple[str, str] | None, state: str, summary: dict[str, Any]) -> None:
    """Record how the run ended (nothing when its start was not recorded)."""
    if started is None:
        return
    from warehouse.runs import finish_run

    try:
        finish_run(*started, state, summary)
    except Exception as error:
        log.warning("The end of the run could not be recorded (%r).", error)

"""The platform's own record of flow runs, for ``massar status`` (flows/recorded.py writes it
for every flow)."""

from __future__ import annotations

from typing import Any

from warehouse.control import ControlDatabase, Run, utcnow


def start_run(
    database_url: str, run_id: str, flow: str, summary: dict[str, Any] | None = None
) -> str:
    """Record ``run_id`` as running (again, if it was recorded before: a retried run)."""
    database = ControlDatabase(database_url)
    try:
        with database.session() as session:
            run = session.get(Run, run_id) or Run(run_id=run_id, flow=flow, summary={})
            run.state, run.finished_at = "running", None
            if summary:
                run.summary = {**(run.summary or {}), **summary}
            session.add(run)
    finally:
        database.dispose()
    return run_id


def finish_run(database_url: str, run_id: str, state: str, summary: dict[str, Any]) -> None:
    """Record how the run ended; ``summary`` is added to what the run recorded so far."""
    database = ControlDatabase(database_url)
    try:
        with database.session() as session:
            run = session.get(Run, run_id)
            if run is not None:
                run.state, run.finished_at = state, utcnow()
                run.summary = {**(run.summary or {}), **summary}
    finally:
        database.dispose()

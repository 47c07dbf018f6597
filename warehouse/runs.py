"""The platform's own record of flow runs, for ``massar status``."""

from __future__ import annotations

from typing import Any

from warehouse.control import ControlDatabase, Run, utcnow


def start_run(database_url: str, run_id: str, flow: str) -> str:
    database = ControlDatabase(database_url)
    try:
        with database.session() as session:
            run = session.get(Run, run_id) or Run(run_id=run_id, flow=flow)
            run.state, run.finished_at = "running", None
            session.add(run)
    finally:
        database.dispose()
    return run_id


def finish_run(database_url: str, run_id: str, state: str, summary: dict[str, Any]) -> None:
    database = ControlDatabase(database_url)
    try:
        with database.session() as session:
            run = session.get(Run, run_id)
            if run is not None:
                run.state, run.finished_at, run.summary = state, utcnow(), summary
    finally:
        database.dispose()

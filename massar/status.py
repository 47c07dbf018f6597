"""What ``massar status`` shows: recent runs, submissions by state, batches awaiting approval."""

from __future__ import annotations

from rich.table import Table
from sqlalchemy import func, select

from massar.settings import Settings
from warehouse.control import ControlDatabase, ExchangeBatch, Run, Submission


def installation_status(settings: Settings, recent: int = 10) -> list[Table]:
    """Three tables for the officer; no pupil data in any of them."""
    database = ControlDatabase(settings.resolved_database_url)
    try:
        with database.session() as session:
            runs = session.scalars(select(Run).order_by(Run.started_at.desc()).limit(recent)).all()
            by_state = session.execute(
                select(
                    Submission.state,
                    func.count(),
                    func.sum(Submission.rows_read),
                    func.sum(Submission.rows_quarantined),
                )
                .group_by(Submission.state)
                .order_by(Submission.state)
            ).all()
            waiting = session.scalars(
                select(ExchangeBatch)
                .where(ExchangeBatch.state == "waiting_approval")
                .order_by(ExchangeBatch.prepared_at)
            ).all()
    finally:
        database.dispose()

    runs_table = Table("run", "flow", "started", "finished", "state", title="Recent runs")
    for run in runs:
        runs_table.add_row(
            run.run_id[:8],
            run.flow,
            _when(run.started_at, settings),
            _when(run.finished_at, settings),
            run.state,
        )
    if not runs:
        runs_table.caption = "No run yet."

    states = Table(
        "state", "submissions", "rows read", "rows quarantined", title="Submissions by state"
    )
    for state, count, rows_read, rows_quarantined in by_state:
        states.add_row(state, str(count), str(rows_read or 0), str(rows_quarantined or 0))
    if not by_state:
        states.caption = "No submission yet."

    batches = Table(
        "batch",
        "partner",
        "children",
        "prepared by",
        "prepared at",
        title="Batches waiting for approval",
    )
    for batch in waiting:
        batches.add_row(
            batch.batch_id,
            batch.partner,
            str(batch.children),
            batch.prepared_by,
            _when(batch.prepared_at, settings),
        )
    if not waiting:
        batches.caption = "None waiting."
    return [runs_table, states, batches]


def _when(moment, settings: Settings) -> str:  # type: ignore[no-untyped-def]
    if moment is None:
        return ""
    if moment.tzinfo is None:  # SQLite gives naive UTC back
        from datetime import UTC

        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(settings.zone).strftime("%Y-%m-%d %H:%M")

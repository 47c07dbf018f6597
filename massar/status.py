"""What ``massar status`` shows: recent runs, submissions by state, batches awaiting approval,
and what the last evaluation held back and why."""

from __future__ import annotations

from rich.table import Table
from sqlalchemy import func, select

from massar.settings import Settings
from warehouse.control import ControlDatabase, ExchangeBatch, Night, Run, Submission

# Nights looked through for the last evaluation (each evaluation publishes one; a night of
# consolidation alone comes between two of them).
EVALUATION_LOOKBACK = 20


def installation_status(settings: Settings, recent: int = 10) -> list[Table]:
    """Four tables for the officer; no pupil data in any of them (codes of schools and
    levels, counts)."""
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
            nights = session.scalars(
                select(Night)
                .where(Night.state == "completed")
                .order_by(Night.night_id.desc())
                .limit(EVALUATION_LOOKBACK)
            ).all()
            evaluation = next(
                (
                    (night.night_id, night.finished_at, night.summary["evaluation"])
                    for night in nights
                    if "evaluation" in (night.summary or {})
                ),
                None,
            )
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
    return [
        runs_table,
        states,
        batches,
        evaluation_table(evaluation, settings),
        *intake(settings),
        schools_list_table(settings),
    ]


def schools_list_table(settings: Settings) -> Table:
    """The directorate's list of schools: how many, the last import, or that none is."""
    from tasks.schools import schools_list_state

    state = schools_list_state(settings)
    table = Table("schools", "main", "satellites", "last import", title="List of schools")
    last = state["last_import"]
    if not state["schools"]:
        table.caption = (
            "No list of schools imported: statistics show codes without names, communes or "
            "cycles. Import the directorate's list with 'massar schools import FILE'."
        )
        return table
    table.add_row(
        str(state["schools"]),
        str(state["main"]),
        str(state["satellites"]),
        "— (recorded without an import, e.g. by 'massar demo')"
        if last is None
        else f"{last['file_name']}, {_when(last['received_at'], settings)}, {last['state']} "
        f"({last['rows_accepted']} imported, {last['rows_quarantined']} refused)",
    )
    return table


def evaluation_table(evaluation: tuple | None, settings: Settings) -> Table:
    """What the last evaluation held back, one row per school year, school, level and reason,
    with its outcome as the caption."""
    from tasks.evaluable import skipped_sentence

    table = Table(
        "school year", "school", "level", "marks held", "pupils", "why", title="Last evaluation"
    )
    if evaluation is None:
        table.caption = "No evaluation yet."
        return table
    night_id, finished, summary = evaluation
    table.title = f"Last evaluation (night {night_id}, {_when(finished, settings)})"
    for row in summary.get("skipped", []):
        table.add_row(
            row.get("school_year") or "",
            row.get("school_code") or "",
            row.get("level_code") or "",
            str(row.get("marks") or 0),
            str(row.get("pupils") or 0),
            row.get("why") or skipped_sentence(row),
        )
    table.caption = summary.get("outcome") or ""
    if not summary.get("skipped"):
        table.caption += " Nothing held back."
    return table


CAPTIONED_WIDTH = 100


def intake(settings: Settings) -> list[Table]:
    """What waits on the officer at the intake: resends held until confirmed, and entries at
    the inbox's root that no ingest reads (a table each, only when there is something)."""
    from tasks.ingest import stray_entries, stray_sentence
    from tasks.resends import held_resends

    tables = []
    held = held_resends(settings)
    if held:
        table = Table(
            "submission",
            "school",
            "data",
            "file",
            "lines before",
            "lines in the file",
            "received",
            title="Resends held: they would remove much of what the school had",
            min_width=CAPTIONED_WIDTH,  # the caption is a sentence: room to read it
        )
        for submission in held:
            table.add_row(
                str(submission.submission_id),
                submission.school_code,
                submission.dataset,
                submission.file_name,
                str(submission.hold_rows_before or 0),
                str(submission.hold_rows_after or 0),
                _when(submission.received_at, settings),
            )
        table.caption = (
            "The warehouse keeps the earlier lines. If the school meant it, 'massar confirm "
            "SUBMISSION' applies the file at the next night; a complete file from the school "
            "replaces it without confirmation."
        )
        tables.append(table)
    strays = stray_entries(settings.inbox)
    if strays:
        table = Table(
            "name",
            "kind",
            "arrived",
            title="Not ingested: at the inbox's root",
            min_width=CAPTIONED_WIDTH,
        )
        for entry in strays:
            table.add_row(entry.name, entry.kind, _when(entry.modified, settings))
        table.caption = stray_sentence(strays, settings.inbox)
        tables.append(table)
    return tables


def _when(moment, settings: Settings) -> str:  # type: ignore[no-untyped-def]
    if moment is None:
        return ""
    if moment.tzinfo is None:  # SQLite gives naive UTC back
        from datetime import UTC

        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(settings.zone).strftime("%Y-%m-%d %H:%M")

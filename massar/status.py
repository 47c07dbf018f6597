"""What ``massar status`` shows, the officer's home page: what to do next, the runs of every
flow, the last published night and what it changed, the partner batches by state, the
submissions by state, what the last evaluation held back, the schools with rejected files, what
waits at the intake and the list of schools.

No pupil data in any of it: codes of schools, levels and batches, file names, counts, and the
sentences the platform wrote for officers (massar/status_facts.py reads them).
"""

from __future__ import annotations

from rich.table import Table

from ground.settings import Settings
from massar.status_facts import (
    RECENT_DAYS,
    Facts,
    NightChange,
    gather,
    run_failed,
    run_sentence,
    waiting_batches,
)
from warehouse.control import Run

BATCH_STATES = ("waiting_approval", "approved", "delivered", "acknowledged", "rejected", "expired")
NAMED = 10  # codes named in a sentence; the others are counted
LISTED_SCHOOLS = 20  # rows of the rejected-files table


def installation_status(settings: Settings) -> list[Table]:
    """The officer's home page, table by table; no pupil data in any of them."""
    from tasks.schools import schools_list_state

    facts = gather(settings)
    listed = schools_list_state(settings)["schools"]
    return [
        next_steps_table(next_steps(settings, facts, listed)),
        runs_table(facts, settings),
        night_table(facts.nights, settings),
        batches_table(facts),
        waiting_table(facts, settings),
        submissions_table(facts),
        evaluation_table(facts.evaluation, settings),
        rejected_table(facts, settings),
        *intake(settings),
        schools_list_table(settings),
    ]


# ---- what to do next -------------------------------------------------------------------------


def next_steps(settings: Settings, facts: Facts, schools_listed: int = 1) -> list[str]:
    """What the officer should do, most urgent first, one sentence each (commands to type with
    real ids); "Nothing waits on you." when nothing does."""
    from tasks.ingest import stray_entries, stray_sentence
    from tasks.resends import held_resends

    steps = []
    for group in facts.flows:
        if run_failed(group.last, facts.now, facts.waiting_runs):
            steps.append(
                f"The last run of {group.label} ({_when(group.last.started_at, settings)}) "
                f"failed: {run_sentence(group.last, facts.now)}"
            )
    if not facts.nights:
        steps.append(
            "No night has been published yet: 'massar nightly' ingests the inbox and builds the "
            "warehouse."
        )
    if facts.waiting:
        commands = "; ".join(f"massar approve {batch.batch_id}" for batch in facts.waiting[:3])
        more = f" (and {len(facts.waiting) - 3} more)" if len(facts.waiting) > 3 else ""
        steps.append(
            f"{len(facts.waiting)} batch(es) wait for approval: {commands}{more} (it shows the "
            "batch before recording the decision)."
        )
    for batch in facts.approved:
        steps.append(
            f"Batch {batch.batch_id} is approved but not delivered yet: 'massar exchange run "
            f"{batch.partner}' delivers it."
        )
    for batch in facts.delivered:
        steps.append(
            f"Batch {batch.batch_id} was delivered to {batch.partner.upper()} and is not "
            f"acknowledged yet: 'massar exchange run {batch.partner}' reads the acknowledgement "
            "when the fund sends it."
        )
    held = held_resends(settings)
    if held:
        steps.append(
            f"{len(held)} resend(s) are held because they would remove much of what their school "
            f"had: if the school meant it, 'massar confirm {held[0].submission_id} --by NAME' "
            "applies one (the table 'Resends held' lists them); else ask for a complete file."
        )
    if facts.rejected:
        steps.append(
            f"{len(facts.rejected)} school(s) have rejected files not replaced yet "
            f"({_named([s.school_code for s in facts.rejected])}): each school's report under "
            f"{settings.reports}/<school>/ says why; ask them for corrected files."
        )
    if facts.pending:
        steps.append(
            f"{facts.pending} accepted file(s) are not in the warehouse yet: the next night "
            "consolidates them ('massar nightly' does it now)."
        )
    if facts.nights and facts.evaluated_behind:
        steps.append(
            "The last consolidation is not evaluated yet: 'massar evaluate' computes the "
            "results again."
        )
    strays = stray_entries(settings.inbox)
    if strays:
        steps.append(stray_sentence(strays, settings.inbox))
    if not schools_listed:
        steps.append(
            "No list of schools is imported: 'massar schools import FILE' gives the statistics "
            "the schools' names, communes and cycles."
        )
    return steps or ["Nothing waits on you."]


def next_steps_table(steps: list[str]) -> Table:
    table = Table("", "what to do", title="What to do next", show_header=False)
    for number, step in enumerate(steps, start=1):
        table.add_row(f"{number}." if len(steps) > 1 else "", step)
    return table


def _named(codes: list[str]) -> str:
    shown = ", ".join(codes[:NAMED])
    return shown + (f" and {len(codes) - NAMED} more" if len(codes) > NAMED else "")


# ---- runs, nights, batches, submissions ---------------------------------------------------------


def runs_table(facts: Facts, settings: Settings) -> Table:
    """Every flow that ran: its last run, the runs and failures of the recent days, and what
    happened (the failure's sentence for a failed run)."""
    table = Table(
        "flow",
        "last run",
        "state",
        "finished",
        f"runs ({RECENT_DAYS} d)",
        f"failed ({RECENT_DAYS} d)",
        "what happened",
        title="Runs of every flow",
    )
    for group in facts.flows:
        run = group.last
        said = run_sentence(run, facts.now, facts.waiting_runs)
        failure = group.last_failure
        if failure is not None and failure is not run:
            said += (
                f" Last failure {_when(failure.started_at, settings)}: "
                f"{run_sentence(failure, facts.now)}"
            )
        table.add_row(
            group.label,
            _when(run.started_at, settings),
            _state(run, facts),
            _when(run.finished_at, settings),
            str(group.runs),
            str(group.failed),
            said,
        )
    if not facts.flows:
        table.caption = "No run yet."
    return table


def _state(run: Run, facts: Facts) -> str:
    if run.state != "running":
        return str(run.state)
    if run.run_id in facts.waiting_runs:
        return "waiting"
    return "stopped?" if run_failed(run, facts.now) else "running"


def night_table(nights: list[NightChange], settings: Settings) -> Table:
    """The last published night (its consolidation and the evaluation after it): the tables
    it changed, with their versions and rows; the schools consolidated; the evaluation's
    outcome."""
    table = Table("night", "published by", "table", "version", "rows", title="Last published night")
    if not nights:
        table.caption = "No night published yet."
        return table
    said = []
    for change in nights:
        night = change.night
        label = f"{night.night_id} ({_when(night.finished_at, settings)})"
        for entry in change.tables:
            before = "new" if entry.version_before is None else str(entry.version_before)
            table.add_row(
                label,
                change.kind,
                entry.table,
                f"{before} → {entry.version}",
                f"{_count(entry.rows_before)} → {_count(entry.rows)}",
            )
        if not change.tables:
            table.add_row(label, change.kind, "(no table changed)", "", "")
        summary = night.summary or {}
        if change.kind == "consolidation":
            said.append(
                f"Night {night.night_id}: {len(change.schools)} school(s) consolidated"
                + (f" ({_named(change.schools)})" if change.schools else "")
                + f", {summary.get('transfers', 0)} pupil(s) moved between schools."
            )
        else:
            evaluation = summary.get("evaluation") or {}
            said.append(
                f"Night {night.night_id}: "
                + " ".join(p for p in (evaluation.get("outcome"), evaluation.get("scope")) if p)
            )
    table.caption = " ".join(said)
    return table


def _count(rows: int | None) -> str:
    return "—" if rows is None else f"{rows:,}"


def batches_table(facts: Facts) -> Table:
    """Partner batches by state, per partner."""
    states = list(BATCH_STATES) + sorted(
        {s for by in facts.batches.values() for s in by} - set(BATCH_STATES)
    )
    labels = ["waiting" if s == "waiting_approval" else s for s in states]
    table = Table("partner", *labels, title="Partner batches by state")
    for partner, by in sorted(facts.batches.items()):
        table.add_row(partner.upper(), *(str(by.get(state, 0)) for state in states))
    if not facts.batches:
        table.caption = "No batch yet."
    return table


def waiting_table(facts: Facts, settings: Settings) -> Table:
    """The batches waiting for an approver, with their counts per status."""
    batches = Table(
        "batch",
        "partner",
        "school year",
        "children",
        "per status",
        "prepared by",
        "prepared at",
        title="Batches waiting for approval",
    )
    for batch in facts.waiting:
        statuses = (batch.counts or {}).get("statuses", {})
        batches.add_row(
            batch.batch_id,
            batch.partner,
            batch.school_year,
            str(batch.children),
            ", ".join(f"{status} {n}" for status, n in statuses.items() if n),
            batch.prepared_by,
            _when(batch.prepared_at, settings),
        )
    batches.caption = (
        "None waiting."
        if not facts.waiting
        else "'massar approve BATCH' shows a batch, then records the decision of the approver "
        "logged in, with their code."
    )
    return batches


def submissions_table(facts: Facts) -> Table:
    states = Table(
        "state", "submissions", "rows read", "rows quarantined", title="Submissions by state"
    )
    for state, count, rows_read, rows_quarantined in facts.by_state:
        states.add_row(state, str(count), str(rows_read), str(rows_quarantined))
    if not facts.by_state:
        states.caption = "No submission yet."
    return states


def rejected_table(facts: Facts, settings: Settings) -> Table:
    """Schools with rejected files that no accepted file has replaced since."""
    table = Table(
        "school",
        "files",
        "last received",
        "rules",
        "report",
        title="Schools with rejected files",
        min_width=CAPTIONED_WIDTH,
    )
    for school in facts.rejected[:LISTED_SCHOOLS]:
        names = ", ".join(school.files[:3]) + (
            f" and {len(school.files) - 3} more" if len(school.files) > 3 else ""
        )
        table.add_row(
            school.school_code,
            names,
            _when(school.last_received, settings),
            ", ".join(school.rules),
            str(settings.reports / school.school_code),
        )
    more = len(facts.rejected) - LISTED_SCHOOLS
    table.caption = (
        "None: no rejected file waits for a replacement."
        if not facts.rejected
        else "A file stays here until the school sends it again and it is accepted; the "
        "school's report says why it was rejected, in Arabic and French."
        + (f" {more} more school(s) not shown." if more > 0 else "")
    )
    return table


def unknown_batch_sentence(settings: Settings, batch_id: str) -> str:
    """What to tell someone who named a batch that does not exist: the batches that do wait
    for approval, or that none does."""
    waiting = waiting_batches(settings)
    if not waiting:
        return f"There is no batch {batch_id}, and no batch waits for approval."
    listed = ", ".join(
        f"{b.batch_id} ({b.partner.upper()}, {b.children} children)" for b in waiting[:NAMED]
    )
    return f"There is no batch {batch_id}; the batches waiting for approval: {listed}."


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

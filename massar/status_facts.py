"""The facts behind ``massar status``, read from the control database (the platform's own record
of runs, nights, submissions and batches) and the Delta log: codes, file names, counts and the
sentences the platform wrote for officers; never a pupil.

    gather(settings, now) -> Facts

``massar/status.py`` renders them; :func:`next_steps` turns them into what the officer should do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy import func, select

from ground.settings import Settings
from warehouse.control import ControlDatabase, ExchangeBatch, Finding, Night, Run, Submission

RECENT_DAYS = 7  # runs counted per flow, and failures looked for, over this many days
STALE_RUN_HOURS = 12  # a run still "running" after this most likely stopped without a word
NIGHT_LOOKBACK = 20  # completed nights looked through (consolidation, evaluations after it)
WAITING = "waiting_approval"
ACCEPTED = ("accepted", "partially_accepted")
FAILED = ("failed", "crashed")
# The flows in the order an officer reads them; others follow by name.
FLOW_ORDER = (
    "nightly",
    "ingest_submissions",
    "nightly_consolidation",
    "evaluate",
    "exchange",
    "confirm_resend",
    "watch",
    "housekeeping",
    "warehouse_maintenance",
)
# The date in a Massar export's name (ListEleve_20240108, Export_..._07022024083103): a
# corrected export of the same list, or class and subject, matches its rejected one without it.
EXPORT_STAMP = re.compile(r"_\d{8}(\d{6})?$")


@dataclass
class FlowRuns:
    """One flow's runs (an exchange: one partner's): the last one, how many over the recent
    days and how many failed, and the last failure."""

    flow: str
    partner: str
    last: Run
    runs: int = 0
    failed: int = 0
    last_failure: Run | None = None

    @property
    def label(self) -> str:
        return f"{self.flow} {self.partner}" if self.partner else self.flow


@dataclass
class TableChange:
    table: str
    version_before: int | None
    version: int
    rows_before: int | None
    rows: int | None


@dataclass
class NightChange:
    """A published night, what it changed against the night before it, and who published it
    (``consolidation`` or ``evaluation``)."""

    night: Night
    kind: str
    tables: list[TableChange]
    schools: list[str] = field(default_factory=list)  # schools consolidated that night


@dataclass
class RejectedSchool:
    """A school's rejected files that no accepted file of the same name has replaced since."""

    school_code: str
    files: list[str]
    last_received: datetime
    rules: list[str]


@dataclass
class Facts:
    now: datetime
    flows: list[FlowRuns]
    nights: list[NightChange]
    evaluation: tuple[int, datetime | None, dict[str, Any]] | None
    by_state: list[tuple[str, int, int, int]]
    batches: dict[str, dict[str, int]]  # partner → state → batches
    waiting: list[ExchangeBatch]
    approved: list[ExchangeBatch]  # approved, not delivered yet
    delivered: list[ExchangeBatch]  # delivered, not acknowledged yet
    rejected: list[RejectedSchool]
    pending: int  # accepted files no night has consolidated yet (held resends apart)
    evaluated_behind: bool  # a consolidation was published after the last evaluation
    waiting_runs: dict[str, str] = field(default_factory=dict)  # paused run → its batch


def gather(settings: Settings, now: datetime | None = None) -> Facts:
    """Everything ``massar status`` shows, read once."""
    now = now or datetime.now(UTC)
    database = ControlDatabase(settings.resolved_database_url)
    try:
        with database.session() as session:
            waiting = _in_state(session, WAITING)
            # an exchange run paused for a decision is waiting, however long: not stopped
            paused = {b.flow_run_id: b.batch_id for b in waiting if b.flow_run_id}
            flows = _flow_runs(session, now, paused)
            nights = session.scalars(
                select(Night)
                .where(Night.state == "completed")
                .order_by(Night.night_id.desc())
                .limit(NIGHT_LOOKBACK)
            ).all()
            changes = _night_changes(settings, session, list(nights), now)
            evaluation = next(
                (
                    (night.night_id, night.finished_at, night.summary["evaluation"])
                    for night in nights
                    if "evaluation" in (night.summary or {})
                ),
                None,
            )
            consolidated = next((n.night_id for n in nights if _kind(n) == "consolidation"), None)
            by_state = [
                (state, count, int(read or 0), int(quarantined or 0))
                for state, count, read, quarantined in session.execute(
                    select(
                        Submission.state,
                        func.count(),
                        func.sum(Submission.rows_read),
                        func.sum(Submission.rows_quarantined),
                    )
                    .group_by(Submission.state)
                    .order_by(Submission.state)
                ).all()
            ]
            batches: dict[str, dict[str, int]] = {}
            for partner, state, count in session.execute(
                select(ExchangeBatch.partner, ExchangeBatch.state, func.count()).group_by(
                    ExchangeBatch.partner, ExchangeBatch.state
                )
            ).all():
                batches.setdefault(partner, {})[state] = count

            pending = session.scalar(
                select(func.count()).where(
                    Submission.state.in_(ACCEPTED),
                    Submission.consolidated_at.is_(None),
                    Submission.hold != "held",
                    Submission.school_code != _directorate(),
                )
            )
            return Facts(
                now=now,
                flows=flows,
                nights=changes,
                evaluation=evaluation,
                by_state=by_state,
                batches=batches,
                waiting=waiting,
                approved=_in_state(session, "approved"),
                delivered=_in_state(session, "delivered"),
                rejected=_rejected_schools(session),
                pending=int(pending or 0),
                evaluated_behind=consolidated is not None
                and (evaluation is None or evaluation[0] < consolidated),
                waiting_runs=paused,
            )
    finally:
        database.dispose()


def waiting_batches(settings: Settings) -> list[ExchangeBatch]:
    """The batches waiting for an approver's decision, oldest first."""
    database = ControlDatabase(settings.resolved_database_url)
    try:
        with database.session() as session:
            return _in_state(session, WAITING)
    finally:
        database.dispose()


def _in_state(session: Any, state: str) -> list[ExchangeBatch]:
    return list(
        session.scalars(
            select(ExchangeBatch)
            .where(ExchangeBatch.state == state)
            .order_by(ExchangeBatch.prepared_at)
        ).all()
    )


def batch_state(settings: Settings, batch_id: str) -> str | None:
    """The state of batch ``batch_id``, or None when there is no such batch."""
    database = ControlDatabase(settings.resolved_database_url)
    try:
        with database.session() as session:
            batch = session.get(ExchangeBatch, batch_id)
            return None if batch is None else batch.state
    finally:
        database.dispose()


# ---- runs ------------------------------------------------------------------------------------


def _partner(run: Run) -> str:
    parameters = (run.summary or {}).get("parameters") or {}
    return str(parameters.get("partner") or "")


def _flow_runs(session: Any, now: datetime, paused: dict[str, str]) -> list[FlowRuns]:
    """Per flow (and exchange partner): the last run, whatever its age, and the counts and last
    failure of the recent days."""
    since = now - timedelta(days=RECENT_DAYS)
    recent = session.scalars(
        select(Run).where(Run.started_at >= since).order_by(Run.started_at.desc())
    ).all()
    seen = {run.flow for run in recent}
    older = []
    for flow in session.scalars(select(Run.flow).distinct()).all():
        if flow not in seen:  # nothing lately: its last run all the same
            older.append(
                session.scalars(
                    select(Run).where(Run.flow == flow).order_by(Run.started_at.desc()).limit(1)
                ).first()
            )
    groups: dict[tuple[str, str], FlowRuns] = {}
    for run in [*recent, *older]:
        key = (run.flow, _partner(run))
        group = groups.get(key)
        if group is None:
            group = groups[key] = FlowRuns(run.flow, key[1], run)
        if run in older:
            continue
        group.runs += 1
        if run_failed(run, now, paused):
            group.failed += 1
            if group.last_failure is None:
                group.last_failure = run

    def order(group: FlowRuns) -> tuple[int, str, str]:
        rank = FLOW_ORDER.index(group.flow) if group.flow in FLOW_ORDER else len(FLOW_ORDER)
        return rank, group.flow, group.partner

    return sorted(groups.values(), key=order)


def _stale(run: Run, now: datetime, paused: dict[str, str] | None = None) -> bool:
    return (
        run.state == "running"
        and run.run_id not in (paused or {})
        and _utc(run.started_at) < now - timedelta(hours=STALE_RUN_HOURS)
    )


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment  # SQLite: naive UTC


def run_failed(run: Run, now: datetime, paused: dict[str, str] | None = None) -> bool:
    """The run failed, or stayed "running" so long that it most likely stopped (an exchange
    run paused for a decision, ``paused``, is waiting, not stopped)."""
    return run.state in FAILED or _stale(run, now, paused)


def run_sentence(run: Run, now: datetime, paused: dict[str, str] | None = None) -> str:
    """What a run did, or why it failed, in one sentence (from what the run recorded)."""
    summary = run.summary or {}
    if run.state in FAILED:
        return summary.get("failure") or "Failed; the run's log in Prefect says why."
    if run.state == "running":
        if paused and run.run_id in paused:
            return f"Waiting for an approver's decision on batch {paused[run.run_id]}."
        if _stale(run, now, paused):
            return (
                "Never finished: the process most likely stopped (a restart, a power cut); "
                "the run's log in Prefect may say more. Run the flow again."
            )
        return "Running."
    return outcome_sentence(run.flow, summary)


def outcome_sentence(flow: str, summary: dict[str, Any]) -> str:
    """A completed run's result in one sentence (counts only)."""
    if flow == "ingest_submissions":
        totals = summary.get("totals") or summary
        return (
            f"{totals.get('new_submissions', 0)} new file(s): {totals.get('accepted', 0)} "
            f"accepted, {totals.get('partially_accepted', 0)} partially accepted, "
            f"{totals.get('rejected', 0)} rejected."
        )
    if flow == "nightly_consolidation":
        return _night_sentence(summary)
    if flow == "nightly":
        night = _night_sentence(summary.get("consolidation") or {})
        return " ".join(part for part in (night, _evaluation_sentence(summary)) if part)
    if flow == "evaluate":
        return _evaluation_sentence({"evaluation": summary}) or "Done."
    if flow == "exchange":
        return (
            f"{summary.get('batches', 0)} batch(es) prepared, {summary.get('deliveries', 0)} "
            f"delivery(ies), {summary.get('acknowledgements', 0)} acknowledgement(s) read."
        )
    if flow == "watch":
        return f"{summary.get('due', 0)} alert(s) due, {summary.get('sent', 0)} e-mailed."
    if flow == "confirm_resend" and summary.get("submission_id") is not None:
        return (
            f"Submission {summary['submission_id']} confirmed by "
            f"{summary.get('confirmed_by', '?')}: the next night applies it."
        )
    if flow == "warehouse_maintenance" and "items" in summary:
        return f"{summary['items']} table(s) compacted and cleaned."
    return "Done."


def _night_sentence(summary: dict[str, Any]) -> str:
    if summary.get("night_id") is None:
        return ""
    return (
        f"Night {summary['night_id']}: {summary.get('schools_changed', 0)} school(s) changed, "
        f"{summary.get('transfers', 0)} pupil(s) moved between schools."
    )


def _evaluation_sentence(summary: dict[str, Any]) -> str:
    evaluation = summary.get("evaluation") or {}
    return " ".join(p for p in (evaluation.get("outcome"), evaluation.get("scope")) if p)


# ---- nights ----------------------------------------------------------------------------------


def _kind(night: Night) -> str:
    return "evaluation" if "evaluation" in (night.summary or {}) else "consolidation"


def _night_changes(
    settings: Settings, session: Any, nights: list[Night], now: datetime
) -> list[NightChange]:
    """The last published night: the last consolidation and the evaluations published after
    it (usually one: the nightly's), each against the night before it."""
    if not nights:
        return []
    last = next((i for i, n in enumerate(nights) if _kind(n) == "consolidation"), 0)
    changes = []
    for index in range(last, -1, -1):  # oldest first
        night = nights[index]
        before: dict[str, int] = {}  # each table as the latest earlier night published it
        for earlier in reversed(nights[index + 1 :]):  # a consolidation lists its tables only
            before.update(dict(earlier.versions))
        tables = [
            TableChange(
                table,
                before.get(table),
                version,
                _rows(settings, table, before.get(table)),
                _rows(settings, table, version),
            )
            for table, version in sorted(dict(night.versions).items())
            if before.get(table) != version
        ]
        schools: list[str] = []
        if _kind(night) == "consolidation":
            until = nights[index - 1].started_at if index > 0 else now
            schools = sorted(
                session.scalars(
                    select(Submission.school_code)
                    .where(
                        Submission.consolidated_at >= night.started_at,
                        Submission.consolidated_at < until,
                        Submission.school_code != _directorate(),
                    )
                    .distinct()
                ).all()
            )
        changes.append(NightChange(night, _kind(night), tables, schools))
    return changes


def _rows(settings: Settings, table: str, version: int | None) -> int | None:
    """Rows of ``table`` at ``version`` (None: no such version, or vacuumed)."""
    if version is None:
        return None
    from warehouse.delta import read_table

    try:
        return read_table(settings.warehouse, table, version).count_rows()
    except Exception:  # vacuumed or missing: the figure is left out
        return None


# ---- rejected files --------------------------------------------------------------------------


def _name_key(school_code: str, file_name: str) -> tuple[str, str]:
    stem = PurePosixPath(file_name).name.rsplit(".", 1)[0]
    return school_code, EXPORT_STAMP.sub("", stem).casefold()


def _directorate() -> str:
    from schemas.schools import DIRECTORATE

    return DIRECTORATE


def _rejected_schools(session: Any) -> list[RejectedSchool]:
    """Schools with rejected files that no later accepted file of the same name (the export's
    date aside) has replaced; with the rules that rejected them."""
    rejected = session.scalars(
        select(Submission)
        .where(Submission.state == "rejected", Submission.school_code != _directorate())
        .order_by(Submission.submission_id)
    ).all()
    if not rejected:
        return []
    replaced: dict[tuple[str, str], int] = {}
    for school, name, submission_id in session.execute(
        select(Submission.school_code, Submission.file_name, Submission.submission_id).where(
            Submission.state.in_(ACCEPTED),
            Submission.school_code.in_(sorted({s.school_code for s in rejected})),
        )
    ).all():
        key = _name_key(school, name)
        replaced[key] = max(replaced.get(key, 0), submission_id)
    still = [
        s
        for s in rejected
        if replaced.get(_name_key(s.school_code, s.file_name), 0) < s.submission_id
    ]
    rules: dict[int, set[str]] = {}
    for submission_id, rule_id in session.execute(
        select(Finding.submission_id, Finding.rule_id)
        .where(
            Finding.submission_id.in_([s.submission_id for s in still]),
            Finding.severity == "error",
        )
        .distinct()
    ).all():
        rules.setdefault(submission_id, set()).add(rule_id)
    schools: dict[str, RejectedSchool] = {}
    for submission in still:
        entry = schools.setdefault(
            submission.school_code,
            RejectedSchool(submission.school_code, [], submission.received_at, []),
        )
        entry.files.append(PurePosixPath(submission.file_name).name)
        entry.last_received = max(_utc(entry.last_received), _utc(submission.received_at))
        entry.rules = sorted(set(entry.rules) | rules.get(submission.submission_id, set()))
    return sorted(schools.values(), key=lambda s: s.school_code)

"""Submissions and findings in the control database.

A submission is one file from one school, known by its sha256: the same bytes sent twice are one
submission. A newer accepted submission of the same scope (school, year, dataset, and for marks
class × subject × semester) supersedes the older one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import Row, Table, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from ground.utc import as_utc
from warehouse.control import (
    FINDING_DETAIL,
    ControlDatabase,
    Finding,
    School,
    Submission,
    utcnow,
)

ACTIVE_STATES = ("accepted", "partially_accepted")
RECEIVED = "received"  # registered, not recorded yet
# The hold marker of a submission (its state stays a public one): a resend kept out of the
# warehouse until an officer confirms it, then confirmed.
HELD, CONFIRMED = "held", "confirmed"


def known_files(database: ControlDatabase, school_code: str) -> dict[str, int]:
    """sha256 → submission id of every file this school already sent."""
    with database.session() as session:
        rows = session.execute(
            select(Submission.sha256, Submission.submission_id).where(
                Submission.school_code == school_code
            )
        ).all()
    return {sha: sid for sha, sid in rows}


def known_files_by_school(database: ControlDatabase) -> dict[str, set[str]]:
    """school code → the sha256 of every file it already sent and the platform recorded (one
    query for the province); a file only registered (a run died on it) is not done yet."""
    known: dict[str, set[str]] = {}
    query = select(Submission.school_code, Submission.sha256).where(Submission.state != RECEIVED)
    with database.session() as session:
        for code, sha in session.execute(query):
            known.setdefault(code, set()).add(sha)
    return known


def unfinished_files(database: ControlDatabase, school_code: str) -> dict[str, int]:
    """sha256 → submission id of this school's files registered but never recorded: the run
    that registered them died (or failed) before the end; the next one does them again."""
    with database.session() as session:
        rows = session.execute(
            select(Submission.sha256, Submission.submission_id).where(
                Submission.school_code == school_code, Submission.state == RECEIVED
            )
        ).all()
    return {sha: sid for sha, sid in rows}


class RecordedFile(NamedTuple):
    """A submission as its run recorded it: what a school's outcome counts of it."""

    submission_id: int
    state: str  # accepted | partially_accepted | rejected (a superseded one: as it was)
    held: bool
    rows_read: int
    rows_accepted: int
    rows_quarantined: int
    errors: int
    queries: int


def recorded_since(
    database: ControlDatabase, school_code: str, since: datetime
) -> list[RecordedFile]:
    """The school's submissions recorded at ``since`` or later (its run's, when the run holds
    the school's lease from before ``since``), by submission id. One superseded since then
    (by a newer file of its scope, in the same run) counts as it was recorded: superseding
    never touches a rejected file, so it was accepted, partially when it quarantined rows."""
    moment = as_utc(since)
    with database.session() as session:
        files = session.execute(
            select(
                Submission.submission_id,
                Submission.state,
                Submission.hold,
                Submission.rows_read,
                Submission.rows_accepted,
                Submission.rows_quarantined,
            )
            .where(
                Submission.school_code == school_code,
                Submission.state != RECEIVED,
                Submission.processed_at >= moment,
            )
            .order_by(Submission.submission_id)
        ).all()
        severities = session.execute(
            select(Finding.submission_id, Finding.severity, func.count())
            .where(Finding.submission_id.in_([row[0] for row in files]))
            .group_by(Finding.submission_id, Finding.severity)
        ).all()
    counts = {(sid, severity): count for sid, severity, count in severities}
    recorded = []
    for sid, state, hold, rows_read, accepted, quarantined in files:
        if state == "superseded":
            state = "partially_accepted" if quarantined else "accepted"
        recorded.append(
            RecordedFile(
                sid,
                state,
                hold == HELD,
                rows_read,
                accepted,
                quarantined,
                counts.get((sid, "error"), 0),
                counts.get((sid, "query"), 0),
            )
        )
    return recorded


def register_submission(
    database: ControlDatabase,
    *,
    school_code: str,
    file_name: str,
    sha256: str,
    size_bytes: int,
    archive_path: str,
    received_at: datetime | None = None,
) -> int:
    """Record a newly received file; returns its submission id."""
    with database.session() as session:
        submission = Submission(
            school_code=school_code,
            file_name=file_name,
            sha256=sha256,
            size_bytes=size_bytes,
            archive_path=archive_path,
            state="received",
            received_at=received_at or utcnow(),
        )
        session.add(submission)
        session.flush()
        return submission.submission_id


def register_submissions(database: ControlDatabase, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Record newly received files in one transaction (each dict: school_code, file_name,
    sha256, size_bytes, archive_path, optionally arrived_at); returns their submission ids in
    the same order. Idempotent by (school, sha256): a file already registered (by a run that
    died, or by another run at the same instant) keeps its submission and its id is returned;
    it is never registered twice."""
    if not rows:
        return []
    for _attempt in range(3):
        existing = _registered(database, rows)
        new = [row for row in rows if (row["school_code"], row["sha256"]) not in existing]
        new = list({(r["school_code"], r["sha256"]): r for r in new}.values())
        now = utcnow()
        try:
            with database.session() as session:
                if new:
                    # Rows of the same keys (the ingest's): on the table, Core's executemany
                    # without the ORM's bulk work per row (a school registers hundreds of
                    # files at once); the ORM's insert groups rows of different keys.
                    table = _SUBMISSIONS
                    same = len({frozenset(row) for row in new}) == 1
                    result = session.execute(
                        insert(table if same else Submission).returning(
                            table.c.school_code,
                            table.c.sha256,
                            table.c.submission_id,
                        ),
                        [{"state": RECEIVED, "received_at": now, **row} for row in new],
                    )
                    existing.update({(code, sha): sid for code, sha, sid in result})
        except IntegrityError:  # another run registered one of them meanwhile: read it back
            continue
        return [existing[(row["school_code"], row["sha256"])] for row in rows]
    raise RuntimeError("the files could not be registered: other runs kept registering them")


def _registered(
    database: ControlDatabase, rows: Sequence[dict[str, Any]]
) -> dict[tuple[str, str], int]:
    """(school, sha256) → submission id of those of ``rows`` already registered."""
    found: dict[tuple[str, str], int] = {}
    by_school: dict[str, set[str]] = {}
    for row in rows:
        by_school.setdefault(row["school_code"], set()).add(row["sha256"])
    with database.session() as session:
        for code, shas in by_school.items():
            for sha, sid in session.execute(_REGISTERED, {"code": code, "shas": sorted(shas)}):
                found[(code, sha)] = sid
    return found


def active_submissions(
    database: ControlDatabase,
    school_code: str,
    dataset: str | None = None,
    *,
    include_held: bool = False,
) -> list[Submission]:
    """The school's accepted or partially accepted submissions that nothing superseded; a
    resend held until an officer confirms it (``hold == "held"``) only with ``include_held``."""
    query = select(Submission).where(
        Submission.school_code == school_code, Submission.state.in_(ACTIVE_STATES)
    )
    if not include_held:
        query = query.where(Submission.hold != HELD)
    if dataset is not None:
        query = query.where(Submission.dataset == dataset)
    with database.session() as session:
        return list(session.scalars(query.order_by(Submission.submission_id)))


def _active_of(dataset: str) -> tuple[Any, ...]:
    return (
        Submission.dataset == dataset,
        Submission.state.in_(ACTIVE_STATES),
        Submission.hold != HELD,
    )


class ActiveSubmission(NamedTuple):
    """What a consolidation reads of an active submission: a row, not an ORM object (the
    province's 30 k NotesCC submissions in ~0.1 s of CPU instead of ~0.6 s)."""

    submission_id: int
    school_code: str
    rows_accepted: int
    received_at: datetime
    arrived_at: datetime | None
    exported_on: date | None
    exported_on_source: str


def active_rows_by_school(
    database: ControlDatabase, dataset: str
) -> dict[str, list[ActiveSubmission]]:
    """The active submissions of one dataset (accepted or partially, nothing superseding them,
    not held) for every school at once (one query for the province), by school code."""
    query = select(*(getattr(Submission, name) for name in ActiveSubmission._fields))
    found: dict[str, list[ActiveSubmission]] = {}
    with database.session() as session:
        for row in session.execute(
            query.where(*_active_of(dataset)).order_by(Submission.submission_id)
        ):
            found.setdefault(row.school_code, []).append(ActiveSubmission(*row))
    return found


def record_outcomes(database: ControlDatabase, outcomes: Sequence[dict[str, Any]]) -> list[int]:
    """Store what validation decided about submissions and their findings, in one transaction.

    Each dict holds submission_id, dataset, state, school_year, scope_key, rows_read,
    rows_accepted, rows_quarantined, detail and findings (rows for the findings table), and
    optionally ``hold_rows_before`` and ``hold_rows_after`` (the lines the school had and the
    lines this file would leave: the submission is held, see tasks/resends.py),
    ``exported_on`` and ``exported_on_source`` (the date the export carries). When a
    submission is (partially) accepted, earlier active submissions of the same scope become
    ``superseded``, held ones included; a held submission supersedes only earlier held ones
    (what the warehouse holds stays until it is confirmed). The ids superseded are returned.
    Recording again replaces the findings.
    """
    superseded: list[int] = []
    if not outcomes:
        return superseded
    now = utcnow()
    for outcome in outcomes:
        if outcome["rows_read"] != outcome["rows_accepted"] + outcome["rows_quarantined"]:
            raise ValueError(f"submission {outcome['submission_id']}: rows do not add up")
    ids = [o["submission_id"] for o in outcomes]
    with_findings = [o["submission_id"] for o in outcomes if o["findings"]]
    with database.session() as session:
        named = {  # the findings' school and file (a clean batch has none to name)
            sid: (school_code, file_name)
            for sid, school_code, file_name in (
                session.execute(_NAMES, {"ids": with_findings}) if with_findings else ()
            )
        }
        # Core's executemany of one UPDATE by key (the ORM's bulk update by primary key did
        # the same with more work per row); parameters are named apart from the columns.
        session.execute(
            _RECORD,
            [
                {
                    "_id": o["submission_id"],
                    "_dataset": o["dataset"],
                    "_state": o["state"],
                    "_school_year": o["school_year"],
                    "_scope_key": o["scope_key"],
                    "_rows_read": o["rows_read"],
                    "_rows_accepted": o["rows_accepted"],
                    "_rows_quarantined": o["rows_quarantined"],
                    "_processed_at": now,
                    "_detail": o.get("detail", ""),
                    "_hold": HELD if o.get("hold_rows_before") is not None else "",
                    "_hold_rows_before": o.get("hold_rows_before"),
                    "_hold_rows_after": o.get("hold_rows_after"),
                    "_exported_on": o.get("exported_on"),
                    "_exported_on_source": o.get("exported_on_source", ""),
                }
                for o in outcomes
            ],
        )
        session.execute(_FORGET_FINDINGS, {"ids": ids})
        findings = [
            {
                **row,
                "submission_id": o["submission_id"],
                "school_code": named[o["submission_id"]][0],
                "file_name": named[o["submission_id"]][1],
            }
            for o in outcomes
            for row in o["findings"]
        ]
        if findings:
            session.execute(insert(Finding), findings)
        # Newest first: a scope sent twice in one batch keeps its latest version only. A
        # held resend replaces earlier held ones only; an applied one replaces everything.
        latest: dict[tuple[str, bool], int] = {}
        for o in outcomes:
            if o["state"] in ACTIVE_STATES and o["scope_key"]:
                key = (o["scope_key"], o.get("hold_rows_before") is not None)
                latest[key] = max(latest.get(key, 0), o["submission_id"])
        # The active submissions of these scopes, in one query (a school sends hundreds of
        # NotesCC files, each its own scope): superseded in one statement per newest.
        active: dict[str, list[tuple[int, bool]]] = {}
        done: set[int] = set()
        keys = sorted({scope_key for scope_key, _ in latest})
        for start in range(0, len(keys), _IN_CHUNK):
            for scope_key, submission_id, hold in session.execute(
                _ACTIVE_OF_SCOPES, {"keys": keys[start : start + _IN_CHUNK]}
            ):
                active.setdefault(scope_key, []).append((submission_id, hold == HELD))
        for (scope_key, held), newest in sorted(latest.items(), key=lambda item: item[1]):
            older = sorted(
                sid
                for sid, is_held in active.get(scope_key, ())
                if sid < newest and (is_held or not held) and sid not in done
            )
            if older:
                _supersede(session, older, newest)
                superseded.extend(older)
                done.update(older)
    return superseded


# The submissions table itself, for Core statements (executemany without the ORM's work).
_SUBMISSIONS = cast(Table, Submission.__table__)
# The columns record_outcomes sets on each submission.
_RECORDED = (
    "dataset",
    "state",
    "school_year",
    "scope_key",
    "rows_read",
    "rows_accepted",
    "rows_quarantined",
    "processed_at",
    "detail",
    "hold",
    "hold_rows_before",
    "hold_rows_after",
    "exported_on",
    "exported_on_source",
)

# Values per IN (...) list: SQLite allows 32 766 bound parameters per statement.
_IN_CHUNK = 5000

# The statements of registering and recording a batch, made once: their lists of values are
# expanding parameters, given at execution, rather than literals of a statement built per
# call, which SQLAlchemy coerced one by one (a school's hundreds of ids, digests and scope
# keys: ~1/6 of registering and recording). Core statements on the tables: no ORM work.
_FINDINGS = cast(Table, Finding.__table__)
_REGISTERED = select(_SUBMISSIONS.c.sha256, _SUBMISSIONS.c.submission_id).where(
    _SUBMISSIONS.c.school_code == bindparam("code"),
    _SUBMISSIONS.c.sha256.in_(bindparam("shas", expanding=True)),
)
_NAMES = select(
    _SUBMISSIONS.c.submission_id, _SUBMISSIONS.c.school_code, _SUBMISSIONS.c.file_name
).where(_SUBMISSIONS.c.submission_id.in_(bindparam("ids", expanding=True)))
_RECORD = (
    update(_SUBMISSIONS)
    .where(_SUBMISSIONS.c.submission_id == bindparam("_id"))
    .values({name: bindparam(f"_{name}") for name in _RECORDED})
)
_FORGET_FINDINGS = delete(_FINDINGS).where(
    _FINDINGS.c.submission_id.in_(bindparam("ids", expanding=True))
)
_ACTIVE_OF_SCOPES = select(
    _SUBMISSIONS.c.scope_key, _SUBMISSIONS.c.submission_id, _SUBMISSIONS.c.hold
).where(
    _SUBMISSIONS.c.scope_key.in_(bindparam("keys", expanding=True)),
    _SUBMISSIONS.c.state.in_(ACTIVE_STATES),
)


def _supersede(session: Any, older: Sequence[int], newest: int) -> None:
    session.execute(
        update(Submission)
        .where(Submission.submission_id.in_(older))
        .values(state="superseded", superseded_by=newest)
    )


def scope_lines(database: ControlDatabase, scope_keys: Iterable[str]) -> dict[str, list[int]]:
    """Per scope key, the applied active submissions (not held) that hold its rows now."""
    keys = sorted(set(scope_keys))
    found: dict[str, list[int]] = {}
    if not keys:
        return found
    with database.session() as session:
        rows = session.execute(
            select(Submission.scope_key, Submission.submission_id)
            .where(
                Submission.scope_key.in_(keys),
                Submission.state.in_(ACTIVE_STATES),
                Submission.hold != HELD,
            )
            .order_by(Submission.submission_id)
        ).all()
    for scope_key, submission_id in rows:
        found.setdefault(scope_key, []).append(submission_id)
    return found


def held_submissions(database: ControlDatabase) -> list[Submission]:
    """Resends waiting for an officer's confirmation (held, not superseded since)."""
    with database.session() as session:
        return list(
            session.scalars(
                select(Submission)
                .where(Submission.hold == HELD, Submission.state.in_(ACTIVE_STATES))
                .order_by(Submission.school_code, Submission.submission_id)
            )
        )


def confirm_held(
    database: ControlDatabase, submission_id: int, confirmed_by: str
) -> tuple[Submission, list[int]]:
    """Apply a held resend: it supersedes the submissions of its scope and waits for the next
    night (``consolidated_at`` cleared). Returns it and the ids it superseded. Raises
    ``LookupError`` when there is no such submission and ``ValueError`` when it is not held
    (never held, confirmed already, or replaced since by a newer file)."""
    with database.session() as session:
        submission = session.get(Submission, submission_id)
        if submission is None:
            raise LookupError(submission_id)
        if submission.hold != HELD or submission.state not in ACTIVE_STATES:
            raise ValueError(submission.hold or "not held")
        older = list(
            session.scalars(
                select(Submission.submission_id).where(
                    Submission.scope_key == submission.scope_key,
                    Submission.submission_id != submission_id,
                    Submission.state.in_(ACTIVE_STATES),
                )
            )
        )
        if older:
            _supersede(session, older, submission_id)
        submission.hold = CONFIRMED
        submission.confirmed_by = confirmed_by
        submission.confirmed_at = utcnow()
        submission.consolidated_at = None
        session.flush()
        session.expunge(submission)
        return submission, older


def add_findings(database: ControlDatabase, findings: Iterable[dict[str, Any]]) -> int:
    """Attach findings to existing submissions (each dict carries its submission_id)."""
    rows = list(findings)
    if not rows:
        return 0
    with database.session() as session:
        names = dict(
            session.execute(
                select(Submission.submission_id, Submission.file_name).where(
                    Submission.submission_id.in_({row["submission_id"] for row in rows})
                )
            ).all()
        )
        schools = dict(
            session.execute(
                select(Submission.submission_id, Submission.school_code).where(
                    Submission.submission_id.in_({row["submission_id"] for row in rows})
                )
            ).all()
        )
        session.execute(
            insert(Finding),
            [
                {
                    **row,
                    "file_name": names[row["submission_id"]],
                    "school_code": schools[row["submission_id"]],
                }
                for row in rows
            ],
        )
    return len(rows)


def delete_findings(
    database: ControlDatabase, submission_ids: Iterable[int], rule_ids: Iterable[str]
) -> None:
    """Remove findings of some rules (e.g. province checks about to be recomputed)."""
    ids, rules = list(submission_ids), list(rule_ids)
    if not ids or not rules:
        return
    with database.session() as session:
        session.execute(
            delete(Finding).where(Finding.submission_id.in_(ids), Finding.rule_id.in_(rules))
        )


def schools_with_findings(database: ControlDatabase, rule_ids: Iterable[str]) -> set[str]:
    """The schools that have at least one finding of these rules (e.g. the province checks)."""
    with database.session() as session:
        return set(
            session.scalars(
                select(Finding.school_code).where(Finding.rule_id.in_(list(rule_ids))).distinct()
            )
        )


def school_findings(database: ControlDatabase, school_code: str) -> tuple[list[Row], list[Row]]:
    """The school's current submissions and all their findings: not superseded, and not a
    rejected file the school has sent again since under the same name (its findings would
    repeat the new attempt's, or be answered by it). Rows of the columns a report shows
    (``_REPORTED_SUBMISSION``, ``_REPORTED_FINDING``), not ORM objects: ~3 instead of ~6-8 ms
    of CPU for a school's ~230 files, each school's report at every ingest."""
    with database.session() as session:
        current = session.execute(_SCHOOL_CURRENT, {"code": school_code}).all()
        latest = dict(session.execute(_SCHOOL_LATEST, {"code": school_code}).all())
        submissions = [
            s
            for s in current
            if s.state != "rejected" or latest.get(s.file_name, 0) <= s.submission_id
        ]
        findings = session.execute(
            _REPORTED_FINDINGS, {"ids": [s.submission_id for s in submissions]}
        ).all()
    return list(submissions), list(findings)


_REPORTED_SUBMISSION = (
    "submission_id",
    "file_name",
    "dataset",
    "state",
    "rows_read",
    "rows_accepted",
    "rows_quarantined",
    "hold",
)
_REPORTED_FINDING = ("submission_id", "file_name", *FINDING_DETAIL)
# school_findings' statements, made once (its ids an expanding parameter: see _REGISTERED)
_SCHOOL_CURRENT = (
    select(*(_SUBMISSIONS.c[name] for name in _REPORTED_SUBMISSION))
    .where(_SUBMISSIONS.c.school_code == bindparam("code"), _SUBMISSIONS.c.state != "superseded")
    .order_by(_SUBMISSIONS.c.submission_id)
)
_SCHOOL_LATEST = (
    select(_SUBMISSIONS.c.file_name, func.max(_SUBMISSIONS.c.submission_id))
    .where(_SUBMISSIONS.c.school_code == bindparam("code"))
    .group_by(_SUBMISSIONS.c.file_name)
)
_REPORTED_FINDINGS = (
    select(*(_FINDINGS.c[name] for name in _REPORTED_FINDING))
    .where(_FINDINGS.c.submission_id.in_(bindparam("ids", expanding=True)))
    .order_by(
        _FINDINGS.c.submission_id, _FINDINGS.c.sheet, _FINDINGS.c.sheet_row, _FINDINGS.c.rule_id
    )
)


def counts_by_school(database: ControlDatabase, submission_ids: Sequence[int]) -> dict[str, Any]:
    """Per school: files by state, rows accepted/quarantined, errors and queries."""
    with database.session() as session:
        per_state = session.execute(
            select(
                Submission.school_code,
                Submission.state,
                func.count(),
                func.sum(Submission.rows_accepted),
                func.sum(Submission.rows_quarantined),
            )
            .where(Submission.submission_id.in_(submission_ids))
            .group_by(Submission.school_code, Submission.state)
        ).all()
        per_severity = session.execute(
            select(Finding.school_code, Finding.severity, func.count())
            .where(Finding.submission_id.in_(submission_ids))
            .group_by(Finding.school_code, Finding.severity)
        ).all()
    table: dict[str, dict[str, int]] = {}
    for school, state, count, accepted, quarantined in per_state:
        row = table.setdefault(school, {})
        row[state] = row.get(state, 0) + count
        row["rows_accepted"] = row.get("rows_accepted", 0) + (accepted or 0)
        row["rows_quarantined"] = row.get("rows_quarantined", 0) + (quarantined or 0)
    for school, severity, count in per_severity:
        table.setdefault(school, {})[f"{severity}s"] = count
    return table


def upsert_schools(database: ControlDatabase, schools: Iterable[dict[str, Any]]) -> int:
    """Create or update the province's schools from a reference list."""
    rows = list(schools)
    with database.session() as session:
        for row in rows:
            school = session.get(School, row["school_code"]) or School(
                school_code=row["school_code"]
            )
            for key, value in row.items():
                setattr(school, key, value)
            session.add(school)
    return len(rows)

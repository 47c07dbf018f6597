"""The nightly consolidation: the schools' active submissions become the warehouse tables.

Plain functions; the consolidation flow wraps them as Prefect tasks. A night goes:

1. ``changed_schools(database, dataset)`` for each dataset: the schools to look at;
2. ``consolidate_table(settings, table, schools)`` for each table of that dataset
   (warehouse/tables.py ``tables_of``): one Delta commit per table replacing those schools'
   rows with the rows of their active submissions; ``enrollments`` also resolves pupils
   enrolled in two schools (``consolidate_enrollments`` returns the transfers for the
   province report, ``write_transfer_report``) and ``schools`` comes from the control
   database (``consolidate_school_reference``);
3. the flow records the night's table versions (``warehouse.delta.table_versions``) in the
   control database, then ``mark_consolidated`` on the submissions of step 1.

Nothing here logs a pupil's name, code or birth date: the functions return versions and counts,
and the transfer report (which names pupils' codes) goes to ``reports/province/`` only.
"""

from __future__ import annotations

import csv
import html
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime, tzinfo
from pathlib import Path
from typing import TypeVar

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import select, update

from ground.settings import Settings
from schemas.datasets import STUDENTS
from schemas.rules import render, severity
from tasks.bidi import isolated
from tasks.packing import packed
from tasks.validation.province_rules import ENROLMENT_MOVED, LISTS_OF_SAME_DATE
from warehouse.control import ControlDatabase, School, Submission, utcnow
from warehouse.delta import (
    WarehouseError,
    current_version,
    read_table,
    replace_school_rows,
)
from warehouse.staging import read_staged_schools
from warehouse.submissions import (
    HELD,
    ActiveSubmission,
    active_rows_by_school,
    add_findings,
    delete_findings,
)
from warehouse.tables import (
    TABLES,
    SchoolContext,
    WarehouseTable,
    as_utc,
    school_reference_rows,
)
from warehouse.tables import (
    table as table_spec,
)

log = logging.getLogger(__name__)
_Value = TypeVar("_Value")

# Declared in tasks/validation/province_rules.py (placeholders, where raised).
TRANSFER_RULE = ENROLMENT_MOVED.rule_id
TIE_RULE = LISTS_OF_SAME_DATE.rule_id  # two schools list the pupil with lists of the same date
# States of a processed submission. Every one may change what a school stands by: accepted and
# partially accepted add rows, superseded ones lose theirs, and a rejected one is looked at too
# (cheaply: its school is written only if its active submissions differ from the warehouse's).
PROCESSED_STATES = ("accepted", "partially_accepted", "superseded", "rejected")
# Groups of schools derived ahead of the Delta writer, each in its own thread (polars releases
# the GIL); memory stays at a few groups' rows.
PREFETCH_SCHOOLS = 4
# A table's schools are derived together up to this many accepted rows (a small table's
# schools in one pass, the marks' a few at a time): a derivation costs ~1-3 ms whatever its
# rows, ~135 schools x 10 tables on a province's first night.
ROWS_PER_DERIVATION = 50_000
# Measured on the ingested default province and not adopted (2026-12-06, load 3-9, CPU alternated
# in one process): 100 k rows a group (43 marks groups instead of 97) made the marks' derivation
# alone 1.67 -> 1.48 s (median, one polars thread) but consolidate_table's CPU moved within its
# noise (4.03 -> 3.79 median, 3.42 -> 3.59 min) for ~+140 MB of peak (two groups ahead instead
# of four kept the memory, CPU as noisy); the staged files read whole and filtered after, not
# through the scan, 0.50 -> 0.46 s of the marks' read with one polars thread, none with the
# pool; one scan of a table's files for all its schools (then split) helped rooms and classes
# only (~0.025 s each) and cost the larger tables more.


# ---- what changed -----------------------------------------------------------------------------


def pending_submissions(database: ControlDatabase, dataset: str) -> dict[str, list[int]]:
    """Per school, the processed submissions of ``dataset`` that no consolidation has taken
    into account yet (``consolidated_at`` is null). A held resend is not one of them: it
    changes nothing while held, and stays unconsolidated until the night after its
    confirmation, even when it is confirmed while a night runs."""
    return pending_by_dataset(database, [dataset]).get(dataset, {})


def pending_by_dataset(
    database: ControlDatabase, datasets: Iterable[str]
) -> dict[str, dict[str, list[int]]]:
    """:func:`pending_submissions` of several datasets in one query (a dataset none of whose
    submissions is pending is left out): a night's snapshot of what it consolidates. One query
    instead of one per dataset, its rows grouped as the cursor gives them (Core, not the ORM's
    session, which buffers every row first): a query a dataset read the province's pending
    submissions (~31 k on a first night) once per dataset through the index on
    ``consolidated_at``, and the ~31 k rows held at once made the collector go through every
    object of the flow's process (a full collection, ~0.1-0.15 s of CPU)."""
    pending: dict[str, dict[str, list[int]]] = {}
    with database.session() as session:
        for dataset, school_code, submission_id in session.connection().execute(
            select(Submission.dataset, Submission.school_code, Submission.submission_id)
            .where(
                Submission.dataset.in_(sorted(set(datasets))),
                Submission.consolidated_at.is_(None),
                Submission.state.in_(PROCESSED_STATES),
                Submission.hold != HELD,
            )
            .order_by(Submission.dataset, Submission.school_code, Submission.submission_id)
        ):
            pending.setdefault(dataset, {}).setdefault(school_code, []).append(submission_id)
    return pending


def changed_schools(database: ControlDatabase, dataset: str) -> list[str]:
    """Schools whose submissions of ``dataset`` changed since the last consolidation.

    A school counts when it has a processed submission not yet consolidated: a new accepted or
    partially accepted one (it adds rows and supersedes earlier ones), a superseded one, or a
    rejected one. A rejected resend changes nothing when an earlier submission stays active;
    ``consolidate_table`` finds that out cheaply (the active submissions equal those already
    in the warehouse) and writes nothing for that school.
    """
    return sorted(pending_submissions(database, dataset))


def mark_consolidated(database: ControlDatabase, submission_ids: Iterable[int]) -> int:
    """Record that these submissions are in the warehouse (call it after the night's table
    versions are recorded); returns how many were marked."""
    ids = sorted(set(submission_ids))
    if not ids:
        return 0
    with database.session() as session:
        session.execute(
            update(Submission)
            .where(Submission.submission_id.in_(ids))
            .values(consolidated_at=utcnow())
        )
    return len(ids)


# ---- one table --------------------------------------------------------------------------------


def _warehouse_counts(
    settings: Settings, table: str, schools: Sequence[str]
) -> dict[str, dict[int, int]] | None:
    """Per school, the rows per submission the table holds now; None when there is no table."""
    if current_version(settings.warehouse, table) < 0:
        return None
    if not schools:
        return {}
    held = read_table(settings.warehouse, table).to_table(
        columns=["school_code", "submission_id"],
        filter=pc.field("school_code").isin(pa.array(schools, pa.string())),
    )
    counts: dict[str, dict[int, int]] = {}
    frame = pl.from_arrow(held)
    assert isinstance(frame, pl.DataFrame)
    for school, sid, n in frame.group_by("school_code", "submission_id").len().iter_rows():
        counts.setdefault(school, {})[int(sid)] = int(n)
    return counts


def _active(
    database: ControlDatabase, schools: Sequence[str], dataset: str
) -> dict[str, list[ActiveSubmission]]:
    # one query for the province (a query a school took ~5 ms each, 1,485 on a first night),
    # of the columns read only
    active = active_rows_by_school(database, dataset) if schools else {}
    return {code: active.get(code, []) for code in schools}


def _expected(submissions: Sequence[ActiveSubmission]) -> dict[int, int]:
    return {s.submission_id: s.rows_accepted for s in submissions if s.rows_accepted}


def _schools_to_write(
    settings: Settings, table: str, active: dict[str, list[ActiveSubmission]]
) -> list[str]:
    """The schools whose active submissions (and their accepted rows) differ from what the
    table holds: staged rows of a submission never change, so the others need no write."""
    held = _warehouse_counts(settings, table, list(active))
    if held is None:
        return sorted(active)
    return sorted(code for code, subs in active.items() if _expected(subs) != held.get(code, {}))


def _check_staged(
    dataset: str, code: str, subs: Sequence[ActiveSubmission], staged: pl.DataFrame | None
) -> None:
    """Refuse to consolidate a school whose staged rows (``staged``, read for its write) lack
    rows its submissions accepted (a staged file lost or not yet written): writing would
    silently drop them. Raised while the table's write pulls the rows, it stops the write
    before its commit."""
    expected = _expected(subs)
    if not expected:
        return
    found: dict[int, int] = {}
    if staged is not None:
        counts = staged.group_by("submission_id").len()
        found = {int(sid): int(n) for sid, n in counts.iter_rows()}
    short = sorted(sid for sid, n in expected.items() if found.get(sid, 0) != n)
    if short:
        raise WarehouseError(
            f"The staging of school {code} does not hold the accepted {dataset} rows of "
            f"submissions {', '.join(map(str, short))}; re-run the ingest of that school "
            "before consolidating it."
        )


def schools_rows(
    settings: Settings, spec: WarehouseTable, active: Mapping[str, Sequence[ActiveSubmission]]
) -> dict[str, pa.Table]:
    """The table's rows of these schools from the staged rows of their active submissions
    (``active``: school → submissions), derived in one pass; a school without staged rows has
    none. Raises (WarehouseError) when a school's staging lacks accepted rows."""
    assert spec.dataset is not None
    frames = read_staged_schools(
        settings.staging,
        spec.dataset,
        {code: [s.submission_id for s in submissions] for code, submissions in active.items()},
    )
    for code, submissions in active.items():  # read once, checked here
        _check_staged(spec.dataset, code, submissions, frames.get(code))
    if not frames:
        return {}
    by_id = {s.submission_id: s for code in frames for s in active[code]}
    context = SchoolContext(
        ", ".join(frames),
        PerSubmission(by_id, arrival),
        PerSubmission(by_id, lambda s: list_date(s, settings.zone)),
    )
    return spec.rows_of_schools(frames, context)


class PerSubmission(Mapping[int, _Value]):
    """``value`` of each submission (``submissions``: id → submission), computed when a
    derivation reads it: only the enrolments read the arrivals and list dates, and the marks'
    ~30 k submissions of a province's first night cost ~0.09 s of CPU to date for nothing."""

    def __init__(
        self,
        submissions: Mapping[int, ActiveSubmission],
        value: Callable[[ActiveSubmission], _Value],
    ) -> None:
        self._submissions = submissions
        self._value = value

    def __getitem__(self, submission_id: int) -> _Value:
        return self._value(self._submissions[submission_id])

    def __iter__(self) -> Iterator[int]:
        return iter(self._submissions)

    def __len__(self) -> int:
        return len(self._submissions)


def derivation_groups(
    active: Mapping[str, Sequence[ActiveSubmission]], rows: int = ROWS_PER_DERIVATION
) -> list[list[str]]:
    """The schools of ``active`` in order, in groups derived together: as many as hold up to
    ``rows`` accepted rows (a school with more is a group of its own)."""
    return packed(
        (
            (code, sum(s.rows_accepted or 0 for s in submissions))
            for code, submissions in active.items()
        ),
        rows,
    )


def arrival(submission: ActiveSubmission) -> datetime:
    """When the file arrived in the inbox (submissions registered before that was recorded:
    when it was registered)."""
    return as_utc(submission.arrived_at or submission.received_at)


def list_date(submission: ActiveSubmission, zone: tzinfo) -> tuple[date, str]:
    """The date a list carries and where it was read; failing that, the day it arrived in the
    inbox (local time), marked ``arrival``."""
    if submission.exported_on is not None:
        return submission.exported_on, submission.exported_on_source or "file name"
    return arrival(submission).astimezone(zone).date(), ARRIVAL


def _stream_rows(
    settings: Settings, spec: WarehouseTable, active: dict[str, list[ActiveSubmission]]
) -> Iterator[pa.RecordBatch]:
    """The rows of these schools, a school at a time, derived a few groups of schools
    (derivation_groups) ahead of the writer."""

    def derive(group: list[str]) -> dict[str, pa.Table]:
        return schools_rows(settings, spec, {code: active[code] for code in group})

    with ThreadPoolExecutor(max_workers=PREFETCH_SCHOOLS) as pool:
        waiting: deque[Future[dict[str, pa.Table]]] = deque()
        groups = iter(derivation_groups(active))
        for group in groups:
            waiting.append(pool.submit(derive, group))
            if len(waiting) >= PREFETCH_SCHOOLS:
                break
        while waiting:
            rows = waiting.popleft().result()
            following = next(groups, None)
            if following is not None:
                waiting.append(pool.submit(derive, following))
            for school in rows.values():  # one school's rows a batch (the writer's partition)
                yield from school.to_batches()


def consolidate_table(
    settings: Settings, table: str, schools: Iterable[str], *, rebuild: bool = False
) -> int:
    """Replace the rows of ``schools`` in ``table`` by those of their active submissions of
    the table's dataset, in one Delta commit; returns the table's version afterwards.

    A school without an active submission left loses its rows. Schools whose active
    submissions are already those in the table are not rewritten; when no school changed,
    nothing is written and the current version is returned (-1: the table does not exist and
    there was nothing to write). ``enrollments`` goes through the province resolution
    (:func:`consolidate_enrollments`), ``schools`` through :func:`consolidate_school_reference`.
    ``rebuild=True`` rewrites every given school even if its submissions did not change (after
    a change of a table's derivation in warehouse/tables.py).
    """
    spec = table_spec(table)
    if spec.dataset is None:
        return consolidate_school_reference(settings)
    if table == "enrollments":
        return consolidate_enrollments(settings, schools)[0]
    codes = sorted(set(schools))
    database = ControlDatabase(settings.resolved_database_url)
    try:
        active = _active(database, codes, spec.dataset)
    finally:
        database.dispose()
    write = codes if rebuild else _schools_to_write(settings, table, active)
    if not write:
        return current_version(settings.warehouse, table)
    reader = pa.RecordBatchReader.from_batches(
        spec.schema, _stream_rows(settings, spec, {code: active[code] for code in write})
    )
    return replace_school_rows(settings.warehouse, table, write, reader)


# ---- enrolments across the province -----------------------------------------------------------


@dataclass(frozen=True)
class Transfer:
    """A pupil listed by two schools the same year. The school whose list is newer by the
    list's own date (``listed_on``: its export date, else its arrival) keeps him; with lists
    of the same date (``tie``) neither is chosen: both enrolments stay active and both schools
    and the officers are told."""

    student_code: str
    school_year: str
    school_kept: str
    enrolled_kept: datetime
    school_left: str
    enrolled_left: datetime
    # where the pupil's row is in each school's list (for the X012 / X015 findings)
    submission_kept: int
    sheet_kept: str
    row_kept: int | None
    submission_left: int
    sheet_left: str
    row_left: int | None
    # the dates that decided, and where each was read (file name, file metadata, arrival)
    listed_kept: date | None = None
    source_kept: str = ""
    listed_left: date | None = None
    source_left: str = ""
    tie: bool = False  # same date: both kept (school_kept is only the first by code)


ARRIVAL = "arrival"
REPORT_COLUMNS = (
    "student_code",
    "school_year",
    "outcome",
    "school_kept",
    "listed_kept",
    "source_kept",
    "enrolled_kept",
    "school_left",
    "listed_left",
    "source_left",
    "enrolled_left",
)
PUPIL_YEAR = ["student_code", "school_year"]


@dataclass(frozen=True)
class _Listing:
    """One school's enrolment of a pupil, as the resolution compares it."""

    school_code: str
    day: date
    moment: datetime | None  # the exact arrival, when the day is the arrival's (else None)


def _newest(listings: list[_Listing]) -> list[_Listing]:
    """The listings that keep the pupil: the one with the newest date, or several when the
    newest dates are equal (a tie). Two arrivals of the same day are told apart by their time;
    an export date is a day only, so it ties with any list of the same day."""
    top = max(listing.day for listing in listings)
    newest = [listing for listing in listings if listing.day == top]
    if len(newest) > 1 and all(listing.moment is not None for listing in newest):
        latest = max(listing.moment for listing in newest if listing.moment is not None)
        newest = [listing for listing in newest if listing.moment == latest]
    return newest


def _listed_day(frame: pl.DataFrame) -> pl.Expr:
    """The list's date; rows written before lists were dated fall back to their arrival."""
    fallback = pl.col("enrolled_from").dt.date()
    if "listed_on" not in frame.columns:
        return fallback
    return pl.coalesce(pl.col("listed_on"), fallback)


def _exact_arrival(frame: pl.DataFrame) -> pl.Expr:
    if "listed_on_source" not in frame.columns:
        return pl.lit(True)
    return pl.col("listed_on_source").is_null() | (pl.col("listed_on_source") == ARRIVAL)


def resolve_enrollments(frame: pl.DataFrame) -> pl.DataFrame:
    """``status`` per enrolment row. A pupil listed by several schools the same year stays
    ``active`` in the school whose list is newest by the list's own date (``listed_on``: the
    export's date, else the day it arrived; two arrivals of the same day by their time), and
    becomes ``transferred_out`` in the others. Lists of the same date are a tie: the tied
    schools all keep him ``active`` (:func:`transfers_of` reports it). The answer depends on
    the rows only, never on the order in which schools were ingested or written."""
    if frame.height == 0:
        return frame
    keyed = frame.with_columns(
        _listed_day(frame).alias("_day"),
        pl.when(_exact_arrival(frame)).then(pl.col("enrolled_from")).alias("_moment"),
    )
    listed = keyed.filter(pl.col("student_code").is_not_null())
    shared = (
        listed.group_by(PUPIL_YEAR)
        .agg(pl.col("school_code").n_unique().alias("_schools"))
        .filter(pl.col("_schools") > 1)
        .drop("_schools")
    )
    kept: list[tuple[str, str, str]] = []
    if shared.height:
        candidates = (
            listed.join(shared, on=PUPIL_YEAR)
            # a school's own latest row of the pupil speaks for that school
            .sort("_day", "_moment", nulls_last=False)
            .group_by([*PUPIL_YEAR, "school_code"], maintain_order=True)
            .agg(pl.col("_day").last(), pl.col("_moment").last())
        )
        groups: dict[tuple[str, str], list[_Listing]] = {}
        for row in candidates.iter_rows(named=True):
            groups.setdefault((row["student_code"], row["school_year"]), []).append(
                _Listing(row["school_code"], row["_day"], row["_moment"])
            )
        for (student, year), listings in groups.items():
            kept.extend((student, year, listing.school_code) for listing in _newest(listings))
    winners = pl.DataFrame(
        kept,
        schema={"student_code": pl.Utf8, "school_year": pl.Utf8, "school_code": pl.Utf8},
        orient="row",
    ).with_columns(pl.lit(True).alias("_kept"))
    contested = shared.with_columns(pl.lit(True).alias("_shared"))
    keys = [*PUPIL_YEAR, "school_code"]
    resolved = (
        keyed.join(contested, on=PUPIL_YEAR, how="left", nulls_equal=False, maintain_order="left")
        .join(winners, on=keys, how="left", nulls_equal=False, maintain_order="left")
        .with_columns(
            pl.when(pl.col("_shared").is_null() | pl.col("_kept").fill_null(False))
            .then(pl.lit("active"))
            .otherwise(pl.lit("transferred_out"))
            .alias("status")
        )
    )
    return resolved.drop("_day", "_moment", "_shared", "_kept")


def transfers_of(resolved: pl.DataFrame) -> list[Transfer]:
    """Each transferred_out row with the enrolment that was kept (the first school by code
    when several tied), then each tie: pairs of schools both keeping a pupil, the one listed
    first by code as ``school_kept``."""
    if resolved.height == 0:
        return []
    frame = resolved.with_columns(
        _listed_day(resolved).alias("listed_on"),
        (
            pl.col("listed_on_source").fill_null(ARRIVAL)
            if "listed_on_source" in resolved.columns
            else pl.lit(ARRIVAL)
        ).alias("listed_on_source"),
    )

    def side(name: str) -> list[pl.Expr]:
        return [
            pl.col("school_code").alias(f"school_{name}"),
            pl.col("enrolled_from").alias(f"enrolled_{name}"),
            pl.col("submission_id").alias(f"submission_{name}"),
            pl.col("sheet").alias(f"sheet_{name}"),
            pl.col("sheet_row").alias(f"row_{name}"),
            pl.col("listed_on").alias(f"listed_{name}"),
            pl.col("listed_on_source").alias(f"source_{name}"),
        ]

    active = frame.filter((pl.col("status") == "active") & pl.col("student_code").is_not_null())
    first = (
        active.sort("school_code", "submission_id", "sheet_row", nulls_last=True)
        .unique(PUPIL_YEAR, keep="first", maintain_order=True)
        .select(*PUPIL_YEAR, *side("kept"))
    )
    left = frame.filter(pl.col("status") == "transferred_out").select(*PUPIL_YEAR, *side("left"))
    moved = left.join(first, on=PUPIL_YEAR, how="inner").with_columns(pl.lit(False).alias("tie"))
    # one row per tied school (its own latest row), paired with every later one by code
    tied = (
        active.sort("school_code", "submission_id", "sheet_row", nulls_last=True)
        .unique([*PUPIL_YEAR, "school_code"], keep="last", maintain_order=True)
        .filter(pl.len().over(PUPIL_YEAR) > 1)
    )
    ties = (
        tied.select(*PUPIL_YEAR, *side("kept"))
        .join(tied.select(*PUPIL_YEAR, *side("left")), on=PUPIL_YEAR)
        .filter(pl.col("school_kept") < pl.col("school_left"))
        .with_columns(pl.lit(True).alias("tie"))
    )
    names = [f.name for f in fields(Transfer)]
    pairs = pl.concat([moved.select(names), ties.select(names)], how="vertical_relaxed").sort(
        "tie", "student_code", "school_kept", "school_left"
    )
    return [Transfer(**row) for row in pairs.iter_rows(named=True)]


def _enrollment_frame(table: pa.Table | None) -> pl.DataFrame:
    """Enrolment rows with the table's schema; columns added since the rows were written
    (``listed_on``, ``listed_on_source``) are null."""
    spec = TABLES["enrollments"]
    if table is None:
        table = spec.empty()
    for column in spec.columns:
        if column.name not in table.column_names:
            table = table.append_column(column.arrow, pa.nulls(table.num_rows, column.type))
    frame = pl.from_arrow(table.select(list(spec.names)).cast(spec.schema))
    assert isinstance(frame, pl.DataFrame)
    return frame


def _read_enrollments(settings: Settings, where: pc.Expression | None = None) -> pl.DataFrame:
    """Rows of the enrollments table (those matching ``where``), whatever columns it had
    when written."""
    dataset = read_table(settings.warehouse, "enrollments")
    names = [name for name in TABLES["enrollments"].names if name in dataset.schema.names]
    return _enrollment_frame(dataset.to_table(columns=names, filter=where))


def decided_by(listed: date | None, source: str, enrolled: datetime, zone: tzinfo) -> str:
    """The date that decided, as a school or an officer reads it: the export's date, or the
    day and time the list arrived (local time)."""
    if source == ARRIVAL or listed is None:
        return as_utc(enrolled).astimezone(zone).strftime("%Y-%m-%d %H:%M")
    return listed.isoformat()


def _record_transfer_findings(
    database: ControlDatabase, transfers: list[Transfer], zone: tzinfo
) -> int:
    """X012 on both schools' student lists of a pupil who moved, X015 on both lists of a tie;
    recomputed from scratch (reruns never duplicate)."""
    with database.session() as session:
        lists = list(
            session.scalars(
                select(Submission.submission_id).where(Submission.dataset == STUDENTS.name)
            )
        )
    delete_findings(database, lists, [TRANSFER_RULE, TIE_RULE])
    column = STUDENTS.column("student_code").header_ar
    rows = []

    def finding(rule_id: str, params: dict, submission: int, sheet: str, row: int | None) -> None:
        message_ar, message_fr = render(rule_id, params)
        rows.append(
            {
                "submission_id": submission,
                "sheet": sheet or None,
                "sheet_row": row,
                "column_name": column,
                "value": params["value"],
                "rule_id": rule_id,
                "severity": severity(rule_id),
                "message_ar": message_ar,
                "message_fr": message_fr,
            }
        )

    for t in transfers:
        kept = decided_by(t.listed_kept, t.source_kept, t.enrolled_kept, zone)
        left = decided_by(t.listed_left, t.source_left, t.enrolled_left, zone)
        if t.tie:
            for submission, sheet, row, other in (
                (t.submission_kept, t.sheet_kept, t.row_kept, t.school_left),
                (t.submission_left, t.sheet_left, t.row_left, t.school_kept),
            ):
                params = {"value": t.student_code, "other_school": other, "date": kept}
                finding(TIE_RULE, params, submission, sheet, row)
            continue
        params = {
            "value": t.student_code,
            "school_left": t.school_left,
            "school_kept": t.school_kept,
            "date_left": left,
            "date_kept": kept,
        }
        finding(TRANSFER_RULE, params, t.submission_left, t.sheet_left, t.row_left)
        finding(TRANSFER_RULE, params, t.submission_kept, t.sheet_kept, t.row_kept)
    return add_findings(database, rows)


def _current_transfers(settings: Settings) -> list[Transfer]:
    """The transfers and ties the enrollments table holds now: only the rows of pupils
    transferred out or active in two schools are read whole."""
    dataset = read_table(settings.warehouse, "enrollments")
    who = pl.from_arrow(
        dataset.to_table(columns=["student_code", "school_year", "school_code", "status"])
    )
    assert isinstance(who, pl.DataFrame)
    concerned = (
        who.filter(pl.col("student_code").is_not_null())
        .group_by("student_code")
        .agg(
            (pl.col("status") == "transferred_out").any().alias("_moved"),
            pl.col("school_code").filter(pl.col("status") == "active").n_unique().alias("_kept"),
        )
        .filter(pl.col("_moved") | (pl.col("_kept") > 1))
        .get_column("student_code")
    )
    if concerned.len() == 0:
        return []
    rows = _read_enrollments(
        settings, pc.field("student_code").isin(pa.array(concerned.to_list(), pa.string()))
    )
    return transfers_of(rows)


def consolidate_enrollments(
    settings: Settings, schools: Iterable[str]
) -> tuple[int, list[Transfer]]:
    """Rewrite the enrolments of ``schools`` from their active student lists and resolve, over
    the whole province, pupils listed by two schools the same year (:func:`resolve_enrollments`:
    the newer list by its own date keeps the pupil, the other enrolment becomes
    transferred_out; lists of the same date are a tie and both stay active). Schools whose
    statuses change are part of the same commit. Returns the table's version and every
    transfer and tie of the province; X012 (transfer) and X015 (tie) findings are attached to
    both schools' student lists (the previous ones replaced).
    """
    spec = TABLES["enrollments"]
    codes = sorted(set(schools))
    version = current_version(settings.warehouse, "enrollments")
    if not codes and version >= 0:
        # Nothing changed: the statuses and X012 findings of the last write stand; read back
        # only the transferred pupils' rows.
        return version, _current_transfers(settings)
    database = ControlDatabase(settings.resolved_database_url)
    try:
        active = _active(database, codes, "students")
        # schools_rows refuses a school whose staging lacks accepted rows
        fresh = list(schools_rows(settings, spec, active).values())
        existing = _read_enrollments(settings) if version >= 0 else _enrollment_frame(None)
        others = existing.filter(~pl.col("school_code").is_in(codes))
        combined = pl.concat(
            [_enrollment_frame(pa.concat_tables(fresh)) if fresh else others.clear(), others]
        )
        resolved = resolve_enrollments(combined)
        # Other schools are rewritten only where a status changed.
        provenance = ["school_code", "submission_id", "sheet", "sheet_row", "student_code"]
        before = others.select(*provenance, pl.col("status").alias("_before"))
        moved = (
            resolved.filter(~pl.col("school_code").is_in(codes))
            .join(before, on=provenance, how="left", nulls_equal=True)
            .filter(pl.col("status") != pl.col("_before"))
            .get_column("school_code")
            .unique()
            .to_list()
        )
        write = sorted(set(codes) | set(moved))
        rows = resolved.filter(pl.col("school_code").is_in(write))
        if write:
            version = replace_school_rows(
                settings.warehouse, "enrollments", write, spec.to_arrow(rows)
            )
        transfers = transfers_of(resolved)
        _record_transfer_findings(database, transfers, settings.zone)
        if moved:
            log.info("enrolment statuses changed in %d other schools", len(moved))
        return version, transfers
    finally:
        database.dispose()


def write_transfer_report(
    reports_dir: Path, duplicates: Sequence[Transfer], night: date | datetime | str
) -> list[Path]:
    """The province's transfers and ties of the night as CSV and a small static HTML page under
    ``reports/province/`` (officers only: it names pupils' codes, so it is never a Prefect
    artifact nor a log line), with the dates that decided. Returns the two files."""
    stamp = night.strftime("%Y-%m-%d") if isinstance(night, date) else str(night)
    folder = Path(reports_dir) / "province"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for transfer in duplicates:
        row = asdict(transfer)
        row["outcome"] = "tie" if transfer.tie else "transfer"
        rows.append({name: _cell_text(row[name]) for name in REPORT_COLUMNS})
    csv_path = folder / f"transfers-{stamp}.csv"
    with csv_path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=REPORT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    html_path = folder / f"transfers-{stamp}.html"
    html_path.write_text(_transfer_page(list(duplicates), stamp), encoding="utf-8")
    return [csv_path, html_path]


def _cell_text(value: object) -> object:
    if isinstance(value, datetime):
        return _moment(value)
    if isinstance(value, date):
        return value.isoformat()
    return "" if value is None else value


def _moment(value: datetime) -> str:
    return as_utc(value).strftime("%Y-%m-%d %H:%M UTC")


def _decisive(listed: date | None, source: str, enrolled: datetime) -> str:
    """The date that decided, as the page shows it (an arrival with its time, in UTC)."""
    if source == ARRIVAL or listed is None:
        return _moment(enrolled)
    return listed.isoformat()


SOURCE_WORDS = {
    "file name": ("اسم الملف", "nom du fichier"),
    "file metadata": ("خصائص الملف", "métadonnées du fichier"),
    ARRIVAL: ("تاريخ الوصول", "arrivée dans la boîte de dépôt"),
}
REPORT_HEADERS = (
    ("رقم التلميذ", "Code élève"),
    ("السنة الدراسية", "Année scolaire"),
    ("المؤسسة المحتفظ بها", "Établissement retenu"),
    ("تاريخ لائحتها", "Date de sa liste"),
    ("مصدر التاريخ", "Date lue dans"),
    ("المؤسسة المغادرة", "Établissement quitté"),
    ("تاريخ لائحتها", "Date de sa liste"),
    ("مصدر التاريخ", "Date lue dans"),
)
TIE_HEADERS = (
    ("رقم التلميذ", "Code élève"),
    ("السنة الدراسية", "Année scolaire"),
    ("المؤسسة الأولى", "Premier établissement"),
    ("تاريخ لائحتها", "Date de sa liste"),
    ("مصدر التاريخ", "Date lue dans"),
    ("المؤسسة الثانية", "Second établissement"),
    ("تاريخ لائحتها", "Date de sa liste"),
    ("مصدر التاريخ", "Date lue dans"),
)


def _transfer_row(t: Transfer) -> str:
    e = html.escape

    def source(name: str) -> str:
        ar, fr = SOURCE_WORDS.get(name, (name, name))
        return f"<td>{e(ar)}<br><small lang='fr' dir='ltr'>{e(fr)}</small></td>"

    # codes, years and dates isolated so that the right-to-left page shows them as written
    return (
        "<tr>"
        + "".join(
            f"<td>{isolated(value, 'ltr')}</td>"
            for value in (
                t.student_code,
                t.school_year,
                t.school_kept,
                _decisive(t.listed_kept, t.source_kept, t.enrolled_kept),
            )
        )
        + source(t.source_kept)
        + "".join(
            f"<td>{isolated(value, 'ltr')}</td>"
            for value in (
                t.school_left,
                _decisive(t.listed_left, t.source_left, t.enrolled_left),
            )
        )
        + source(t.source_left)
        + "</tr>"
    )


def _table(headers: tuple[tuple[str, str], ...], rows: list[Transfer]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(ar)}<br><small>{e(fr)}</small></th>" for ar, fr in headers)
    body = "".join(_transfer_row(t) for t in rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>{body}</tbody>\n</table>"


def _transfer_page(transfers: list[Transfer], stamp: str) -> str:
    e = html.escape
    moved = [t for t in transfers if not t.tie]
    ties = [t for t in transfers if t.tie]
    empty = (
        ""
        if moved
        else "<p>لا يوجد تلميذ مسجل في مؤسستين. · Aucun élève inscrit dans deux établissements.</p>"
    )
    tie_section = ""
    if ties:
        count = isolated(len(ties), "ltr")
        tie_section = f"""<h2>لوائح بنفس التاريخ · Listes de même date ({count})</h2>
<p>تتضمن لائحتا المؤسستين التلميذ بنفس التاريخ: لم تحسم المنصة بينهما ويحتسب التلميذ في
المؤسستين معا إلى أن تتم تسوية الانتقال في منظومة مسار وإرسال لائحة محينة. تم إخبار المؤسستين.
 · Les deux listes portent l'élève à la même date : la plateforme ne tranche pas et le compte dans
les deux établissements jusqu'à ce que le transfert soit régularisé dans Massar et qu'une liste à
jour soit envoyée. Les deux établissements en sont informés.</p>
{_table(TIE_HEADERS, ties)}
"""
    return f"""<!DOCTYPE html>
<html lang="ar" dir="rtl">
<head>
<meta charset="utf-8">
<title>Transferts {e(stamp)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; margin-bottom: 2em; }}
th, td {{ border: 1px solid #999; padding: 0.3em 0.6em; }}
th {{ background: #eee; }}
</style>
</head>
<body>
<h1>التلاميذ المسجلون في مؤسستين · Élèves inscrits dans deux établissements</h1>
<p>{isolated(stamp, "ltr")} · {isolated(len(moved), "ltr")} —
يحتسب التسجيل في المؤسسة التي تحمل لائحتها التاريخ الأحدث (تاريخ الاستخراج من مسار المكتوب في
اسم الملف أو في خصائصه، وإلا تاريخ وصول الملف)؛ المرجو تسوية الانتقال في منظومة مسار.
 · L'inscription retenue est celle de l'établissement dont la liste est la plus récente (date
d'export de Massar lue dans le nom du fichier ou ses métadonnées, sinon date d'arrivée du
fichier) ; régularisez le transfert dans Massar.</p>
{empty}
{_table(REPORT_HEADERS, moved)}
{tie_section}</body>
</html>
"""


# ---- reference ------------------------------------------------------------------------------


def consolidate_school_reference(settings: Settings) -> int:
    """Write the ``schools`` table from the control database's schools; returns its version
    (unchanged when the reference did not change, -1 when there is no school at all)."""
    database = ControlDatabase(settings.resolved_database_url)
    try:
        with database.session() as session:
            schools = [
                {
                    "school_code": s.school_code,
                    "name_ar": s.name_ar,
                    "name_fr": s.name_fr,
                    "commune": s.commune,
                    "cycle": s.cycle,
                    "school_type": s.school_type,
                    "parent_school_code": s.parent_school_code,
                }
                for s in session.scalars(select(School).order_by(School.school_code))
            ]
    finally:
        database.dispose()
    codes: set[str] = {str(row["school_code"]) for row in schools}
    if current_version(settings.warehouse, "schools") >= 0:
        held = read_table(settings.warehouse, "schools").to_table(columns=["school_code"])
        codes |= {code for code in held.column("school_code").to_pylist() if code}
    return replace_school_rows(settings.warehouse, "schools", codes, school_reference_rows(schools))

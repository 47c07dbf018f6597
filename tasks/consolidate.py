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
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import select, update

from massar.settings import Settings
from schemas.datasets import STUDENTS
from schemas.rules import render, severity
from tasks.bidi import isolated
from warehouse.control import ControlDatabase, School, Submission, utcnow
from warehouse.delta import (
    WarehouseError,
    current_version,
    read_table,
    replace_school_rows,
)
from warehouse.staging import read_staged
from warehouse.submissions import active_submissions, add_findings, delete_findings
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

TRANSFER_RULE = "X012"
# States of a processed submission. Every one may change what a school stands by: accepted and
# partially accepted add rows, superseded ones lose theirs, and a rejected one is looked at too
# (cheaply: its school is written only if its active submissions differ from the warehouse's).
PROCESSED_STATES = ("accepted", "partially_accepted", "superseded", "rejected")
# Schools derived ahead of the Delta writer, each in its own thread (polars releases the GIL);
# memory stays at a few schools' rows.
PREFETCH_SCHOOLS = 4


# ---- what changed -----------------------------------------------------------------------------


def pending_submissions(database: ControlDatabase, dataset: str) -> dict[str, list[int]]:
    """Per school, the processed submissions of ``dataset`` that no consolidation has taken
    into account yet (``consolidated_at`` is null)."""
    with database.session() as session:
        rows = session.execute(
            select(Submission.school_code, Submission.submission_id)
            .where(
                Submission.dataset == dataset,
                Submission.consolidated_at.is_(None),
                Submission.state.in_(PROCESSED_STATES),
            )
            .order_by(Submission.school_code, Submission.submission_id)
        ).all()
    pending: dict[str, list[int]] = {}
    for school_code, submission_id in rows:
        pending.setdefault(school_code, []).append(submission_id)
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


def _active(database: ControlDatabase, schools: Sequence[str], dataset: str) -> dict:
    return {code: active_submissions(database, code, dataset) for code in schools}


def _expected(submissions: Sequence[Submission]) -> dict[int, int]:
    return {s.submission_id: s.rows_accepted for s in submissions if s.rows_accepted}


def _schools_to_write(
    settings: Settings, table: str, active: dict[str, list[Submission]]
) -> list[str]:
    """The schools whose active submissions (and their accepted rows) differ from what the
    table holds: staged rows of a submission never change, so the others need no write."""
    held = _warehouse_counts(settings, table, list(active))
    if held is None:
        return sorted(active)
    return sorted(code for code, subs in active.items() if _expected(subs) != held.get(code, {}))


def _check_staged(settings: Settings, dataset: str, code: str, subs: list[Submission]) -> None:
    """Refuse to consolidate a school whose staging lacks rows its submissions accepted
    (a staged file lost or not yet written): writing would silently drop them."""
    expected = _expected(subs)
    if not expected:
        return
    paths = sorted((settings.staging / code / dataset).glob("*.parquet"))
    found: dict[int, int] = {}
    if paths:
        counts = (
            pl.scan_parquet(paths, missing_columns="insert")
            .select("submission_id")
            .filter(pl.col("submission_id").is_in(list(expected)))
            .group_by("submission_id")
            .len()
            .collect()
        )
        found = {int(sid): int(n) for sid, n in counts.iter_rows()}
    short = sorted(sid for sid, n in expected.items() if found.get(sid, 0) != n)
    if short:
        raise WarehouseError(
            f"The staging of school {code} does not hold the accepted {dataset} rows of "
            f"submissions {', '.join(map(str, short))}; re-run the ingest of that school "
            "before consolidating it."
        )


def school_rows(
    settings: Settings, spec: WarehouseTable, school_code: str, submissions: Sequence[Submission]
) -> pa.Table | None:
    """The table's rows for one school from the staged rows of its active submissions."""
    assert spec.dataset is not None
    ids = [s.submission_id for s in submissions]
    frame = read_staged(settings.staging, school_code, spec.dataset, ids)
    if frame is None:
        return None
    context = SchoolContext(school_code, {s.submission_id: s.received_at for s in submissions})
    return spec.rows(frame, context)


def _stream_rows(
    settings: Settings, spec: WarehouseTable, active: dict[str, list[Submission]]
) -> Iterator[pa.RecordBatch]:
    """The rows of these schools, derived a few schools ahead of the writer."""
    with ThreadPoolExecutor(max_workers=PREFETCH_SCHOOLS) as pool:
        waiting: deque[Future[pa.Table | None]] = deque()
        codes = iter(active)
        for code in codes:
            waiting.append(pool.submit(school_rows, settings, spec, code, active[code]))
            if len(waiting) >= PREFETCH_SCHOOLS:
                break
        while waiting:
            rows = waiting.popleft().result()
            following = next(codes, None)
            if following is not None:
                waiting.append(
                    pool.submit(school_rows, settings, spec, following, active[following])
                )
            if rows is not None:
                yield from rows.to_batches()


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
    for code in write:
        _check_staged(settings, spec.dataset, code, active[code])
    reader = pa.RecordBatchReader.from_batches(
        spec.schema, _stream_rows(settings, spec, {code: active[code] for code in write})
    )
    return replace_school_rows(settings.warehouse, table, write, reader)


# ---- enrolments across the province -----------------------------------------------------------


@dataclass(frozen=True)
class Transfer:
    """A pupil enrolled in two schools the same year: the later enrolment is kept."""

    student_code: str
    school_year: str
    school_kept: str
    enrolled_kept: datetime
    school_left: str
    enrolled_left: datetime
    # where the pupil's row is in each school's list (for the X012 findings)
    submission_kept: int
    sheet_kept: str
    row_kept: int | None
    submission_left: int
    sheet_left: str
    row_left: int | None


REPORT_COLUMNS = (
    "student_code",
    "school_year",
    "school_kept",
    "enrolled_kept",
    "school_left",
    "enrolled_left",
)


def resolve_enrollments(frame: pl.DataFrame) -> pl.DataFrame:
    """``status`` per enrolment row: for each pupil and year, the school whose enrolment is
    the latest (the list received last, then the highest submission id) keeps ``active``;
    the pupil's rows in other schools become ``transferred_out``."""
    if frame.height == 0:
        return frame
    winner = (
        pl.col("school_code")
        .sort_by(
            [pl.col("enrolled_from").cast(pl.Int64).fill_null(-1), pl.col("submission_id")],
            descending=[True, True],
        )
        .first()
        .over("student_code", "school_year")
    )
    status = (
        pl.when(pl.col("student_code").is_null() | (pl.col("school_code") == winner))
        .then(pl.lit("active"))
        .otherwise(pl.lit("transferred_out"))
    )
    return frame.with_columns(status.alias("status"))


def transfers_of(resolved: pl.DataFrame) -> list[Transfer]:
    """Each transferred_out row with the enrolment that was kept."""
    if resolved.height == 0:
        return []
    keys = ["student_code", "school_year"]
    kept = (
        resolved.filter(pl.col("status") == "active")
        .unique(keys, keep="last")
        .select(
            *keys,
            pl.col("school_code").alias("school_kept"),
            pl.col("enrolled_from").alias("enrolled_kept"),
            pl.col("submission_id").alias("submission_kept"),
            pl.col("sheet").alias("sheet_kept"),
            pl.col("sheet_row").alias("row_kept"),
        )
    )
    left = resolved.filter(pl.col("status") == "transferred_out").select(
        *keys,
        pl.col("school_code").alias("school_left"),
        pl.col("enrolled_from").alias("enrolled_left"),
        pl.col("submission_id").alias("submission_left"),
        pl.col("sheet").alias("sheet_left"),
        pl.col("sheet_row").alias("row_left"),
    )
    pairs = left.join(kept, on=keys, how="inner").sort("student_code", "school_left")
    names = [f.name for f in fields(Transfer)]
    return [Transfer(**row) for row in pairs.select(names).iter_rows(named=True)]


def _enrollment_frame(table: pa.Table | None) -> pl.DataFrame:
    spec = TABLES["enrollments"]
    frame = pl.from_arrow(spec.empty() if table is None else table.cast(spec.schema))
    assert isinstance(frame, pl.DataFrame)
    return frame


def _record_transfer_findings(database: ControlDatabase, transfers: list[Transfer]) -> int:
    """X012 on both schools' student lists, recomputed from scratch (reruns never duplicate)."""
    with database.session() as session:
        lists = list(
            session.scalars(
                select(Submission.submission_id).where(Submission.dataset == STUDENTS.name)
            )
        )
    delete_findings(database, lists, [TRANSFER_RULE])
    column = STUDENTS.column("student_code").header_ar
    rows = []
    for transfer in transfers:
        message_ar, message_fr = render(
            TRANSFER_RULE,
            {
                "value": transfer.student_code,
                "school_left": transfer.school_left,
                "school_kept": transfer.school_kept,
            },
        )
        for submission, sheet, row in (
            (transfer.submission_left, transfer.sheet_left, transfer.row_left),
            (transfer.submission_kept, transfer.sheet_kept, transfer.row_kept),
        ):
            rows.append(
                {
                    "submission_id": submission,
                    "sheet": sheet or None,
                    "sheet_row": row,
                    "column_name": column,
                    "value": transfer.student_code,
                    "rule_id": TRANSFER_RULE,
                    "severity": severity(TRANSFER_RULE),
                    "message_ar": message_ar,
                    "message_fr": message_fr,
                }
            )
    return add_findings(database, rows)


def _current_transfers(settings: Settings) -> list[Transfer]:
    """The transfers the enrollments table holds now (without reading every row)."""
    names = list(TABLES["enrollments"].names)
    dataset = read_table(settings.warehouse, "enrollments")
    left = dataset.to_table(columns=names, filter=pc.field("status") == "transferred_out")
    if left.num_rows == 0:
        return []
    pupils = pc.unique(left.column("student_code"))
    kept = dataset.to_table(
        columns=names,
        filter=(pc.field("status") == "active") & pc.field("student_code").isin(pupils),
    )
    return transfers_of(_enrollment_frame(pa.concat_tables([left, kept])))


def consolidate_enrollments(
    settings: Settings, schools: Iterable[str]
) -> tuple[int, list[Transfer]]:
    """Rewrite the enrolments of ``schools`` from their active student lists and resolve, over
    the whole province, pupils enrolled in two schools the same year (the later enrolment
    stays active, the other becomes transferred_out). Schools whose statuses change are part
    of the same commit. Returns the table's version and every transfer of the province; X012
    findings are attached to both schools' student lists (previous X012 findings replaced).
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
        for code in codes:
            _check_staged(settings, "students", code, active[code])
        fresh = [
            rows
            for code in codes
            if (rows := school_rows(settings, spec, code, active[code])) is not None
        ]
        held = None
        if version >= 0:
            held = read_table(settings.warehouse, "enrollments").to_table(columns=list(spec.names))
        existing = _enrollment_frame(held)
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
        _record_transfer_findings(database, transfers)
        if moved:
            log.info("enrolment statuses changed in %d other schools", len(moved))
        return version, transfers
    finally:
        database.dispose()


def write_transfer_report(
    reports_dir: Path, duplicates: Sequence[Transfer], night: date | datetime | str
) -> list[Path]:
    """The province's transfers of the night as CSV and a small static HTML page under
    ``reports/province/`` (officers only: it names pupils' codes, so it is never a Prefect
    artifact nor a log line). Returns the two files."""
    stamp = night.strftime("%Y-%m-%d") if isinstance(night, date) else str(night)
    folder = Path(reports_dir) / "province"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for transfer in duplicates:
        row = asdict(transfer)
        rows.append(
            {
                name: _moment(row[name]) if isinstance(row[name], datetime) else row[name]
                for name in REPORT_COLUMNS
            }
        )
    csv_path = folder / f"transfers-{stamp}.csv"
    with csv_path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=REPORT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    html_path = folder / f"transfers-{stamp}.html"
    html_path.write_text(_transfer_page(rows, stamp), encoding="utf-8")
    return [csv_path, html_path]


def _moment(value: datetime) -> str:
    return as_utc(value).strftime("%Y-%m-%d %H:%M UTC")


REPORT_HEADERS = (
    ("رقم التلميذ", "Code élève"),
    ("السنة الدراسية", "Année scolaire"),
    ("المؤسسة المحتفظ بها", "Établissement retenu"),
    ("تاريخ التسجيل المحتفظ به", "Inscription retenue reçue le"),
    ("المؤسسة المغادرة", "Établissement quitté"),
    ("تاريخ التسجيل السابق", "Inscription précédente reçue le"),
)


def _transfer_page(rows: list[dict[str, object]], stamp: str) -> str:
    e = html.escape
    head = "".join(f"<th>{e(ar)}<br><small>{e(fr)}</small></th>" for ar, fr in REPORT_HEADERS)
    body = "".join(
        # codes, years and dates isolated so that the right-to-left page shows them as written
        "<tr>"
        + "".join(f"<td>{isolated(row[name], 'ltr')}</td>" for name in REPORT_COLUMNS)
        + "</tr>"
        for row in rows
    )
    empty = (
        ""
        if rows
        else "<p>لا يوجد تلميذ مسجل في مؤسستين. · Aucun élève inscrit dans deux établissements.</p>"
    )
    return f"""<!DOCTYPE html>
<html lang="ar" dir="rtl">
<head>
<meta charset="utf-8">
<title>Transferts {e(stamp)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #999; padding: 0.3em 0.6em; }}
th {{ background: #eee; }}
</style>
</head>
<body>
<h1>التلاميذ المسجلون في مؤسستين · Élèves inscrits dans deux établissements</h1>
<p>{isolated(stamp, "ltr")} · {isolated(len(rows), "ltr")} —
التسجيل الأحدث هو المحتسب؛ المرجو تسوية الانتقال في منظومة مسار.
 · L'inscription la plus récente est retenue ; régularisez le transfert dans Massar.</p>
{empty}
<table>
<thead><tr>{head}</tr></thead>
<tbody>{body}</tbody>
</table>
</body>
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

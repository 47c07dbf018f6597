"""The published warehouse evaluated school batch by school batch, so that memory follows the
batch (``Settings.evaluation_batch_rows`` marks), not the country.

    evaluate_warehouse(settings, rules, year=None, semester=None) -> EvaluationRun

A school's subject, semester and annual results need only its own marks and enrolments (ranks
are within a class), so the marks are read one batch of school partitions at a time, restricted
as :func:`tasks.evaluable.evaluable` restricts a whole warehouse, computed by the SQL of
:mod:`tasks.results_sql` (inside DuckDB from the batch's Parquet files, a run of one semester
too: tasks/evaluation_duckdb.py; files not laid out by school folder are read with polars) and
written with one commit per result table and batch (the night published afterwards names the
last version; readers never see a batch alone), while DuckDB computes the next batch. What
crosses schools is read apart, small: the school years of the marks (a first pass over the
school_year column), the accepted lists (school, year), the active enrolments elsewhere of the
batch's held pupils, and the exams (a pupil's regional exam may lie in his former school): the
exam marks, the annual results of the exam levels and of the exam candidates, computed and
written once after the batches.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from ground.settings import Settings
from schemas.evaluation_rules import EvaluationRules
from tasks.evaluable import (
    EARLIER_EXAM_MARKS,
    NO_MARKS,
    NO_WAREHOUSE,
    SKIPPED_SCHEMA,
    YEAR_ABSENT,
    Elsewhere,
    Evaluable,
    _rows,
    _schools_without_marks,
    _skip,
    _split_enrolled,
    evaluable,
)
from tasks.evaluation_duckdb import MARK_COLUMNS, OtherSemester, evaluate_batch
from tasks.output_fingerprints import kept_results, unchanged_results
from tasks.packing import packed
from tasks.results_formulas import (
    ENGINE,
    annual_results,
    exam_results,
    semester_results,
    subject_results,
)
from tasks.results_sql import connect
from warehouse.control import ControlDatabase
from warehouse.delta import (
    current_version,
    partition_files,
    partition_rows,
    read_table,
    replace_school_rows,
    scan_table,
)
from warehouse.nights import last_completed_night

RESULT_TABLES = ("subject_results", "semester_results", "annual_results", "exam_results")
SCORED_TABLES = ("subject_results", "semester_results", "annual_results")
EXAM_COLUMNS = [
    "school_code",
    "school_year",
    "class_code",
    "student_code",
    "exam",
    "session",
    "subject_code",
    "mark",
    "absent",
    "mark_scale",
]
ENROLMENT_COLUMNS = ["school_code", "school_year", "class_code", "level_code", "student_code"]
CC_COLUMNS = ["school_code", "school_year", "class_code", "level_code", "student_code", "average"]


@dataclass
class EvaluationRun:
    """What a run evaluated and wrote: ``plan`` (years, what was held back and why, the years
    and schools looked at; no input frames), the versions written per result table, the rows
    computed per table, the pupils and schools with annual results, and the night read."""

    plan: Evaluable
    versions: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    pupils: int = 0
    schools_evaluated: int = 0
    night_versions: dict[str, int] = field(default_factory=dict)
    batches: int = 0


def batches_of(partitions: dict[str, int], batch_rows: int) -> list[list[str]]:
    """Schools in order, packed into batches of at most ``batch_rows`` rows (a school larger
    than that is a batch of its own)."""
    return packed(sorted(partitions.items()), batch_rows)


def _schools(codes: list[str]) -> pl.Expr:
    return pl.col("school_code").is_in(pl.Series(codes, dtype=pl.Utf8).implode())


def _read(table: pl.LazyFrame, columns: list[str], where: pl.Expr) -> pl.DataFrame:
    present = [name for name in columns if name in table.collect_schema().names()]
    return table.filter(where).select(present).collect(engine=ENGINE)


def _years_present(marks: pl.LazyFrame) -> list[str]:
    """The school years of the marks, sorted: the school_year column alone, streamed."""
    years = marks.select(pl.col("school_year").unique()).collect(engine="streaming")
    return sorted(year for year in years.get_column("school_year").to_list() if year is not None)


def _published(settings: Settings) -> tuple[int, dict[str, int]] | None:
    database = ControlDatabase(settings.resolved_database_url)
    try:
        night = last_completed_night(database)
    finally:
        database.dispose()
    return None if night is None else (night.night_id, dict(night.versions))


def _marks_filter(schools: list[str], year: str | None) -> pl.Expr:
    where = _schools(schools)
    if year is None:
        return where
    # marks without a year are counted as held back whatever the year asked for
    return where & ((pl.col("school_year") == year) | pl.col("school_year").is_null())


def evaluate_warehouse(
    settings: Settings,
    rules: EvaluationRules,
    year: str | None = None,
    semester: int | None = None,
    batch_rows: int | None = None,
) -> EvaluationRun:
    """Evaluate the last published night's marks school batch by school batch and write the
    four result tables (see the module's docstring); returns what was done. The results equal
    those of :func:`tasks.evaluation_steps.compute_results` over the whole warehouse."""
    batch_rows = batch_rows or settings.evaluation_batch_rows
    published = _published(settings)
    if published is None:
        return EvaluationRun(Evaluable({}, [], _rows([_skip(NO_WAREHOUSE)])))
    _, versions = published
    warehouse = settings.warehouse
    enrollments = (
        scan_table(warehouse, "enrollments", versions["enrollments"])
        if "enrollments" in versions
        else None
    )
    partitions = (
        partition_rows(warehouse, "marks", versions["marks"]) if "marks" in versions else {}
    )
    if not sum(partitions.values()):
        active = _active(enrollments, None)
        listed = active if year is None else active.filter(pl.col("school_year") == year)
        nothing = pl.concat([_rows([_skip(NO_MARKS, year)]), _schools_without_marks(listed, None)])
        return EvaluationRun(Evaluable({}, [], nothing), night_versions=versions)

    marks = scan_table(warehouse, "marks", versions["marks"])
    # schools whose inputs are those their results were made from keep them (issue 17, item 2)
    unchanged = unchanged_results(settings, versions, rules, year, semester)
    batches = batches_of({s: n for s, n in partitions.items() if s not in unchanged}, batch_rows)
    present = _years_present(marks)
    if year is not None and year not in present:
        absent = _rows([_skip(YEAR_ABSENT, year, detail=", ".join(present))])
        return EvaluationRun(Evaluable({}, [], absent), night_versions=versions)
    looked_at = [year] if year is not None else present
    exams = _Exams.of(settings, versions, looked_at, enrollments, rules)

    run = EvaluationRun(Evaluable({}, [], _rows([]), looked_at, []), night_versions=versions)
    skipped: list[pl.DataFrame] = []
    years: set[str] = set()
    schools: set[str] = set()
    files = partition_files(warehouse, "marks", versions["marks"])
    connection = evaluation_connection(settings)
    # a batch's writes (delta-rs' writer, one thread) and exams (polars) run while DuckDB
    # computes the next batch; at most one batch is being written, so memory holds two
    # batches' results at most, whatever the country; the commits stay in batch order
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evaluation-writes")
    pending: Future[_Written] | None = None

    def written_before() -> None:
        nonlocal pending
        if pending is not None:
            done, pending = pending.result(), None
            run.versions.update(done.versions)
            for table, count in done.rows.items():
                run.rows[table] = run.rows.get(table, 0) + count
            skipped.extend(done.skipped)

    try:
        for batch in batches:
            run.batches += 1
            if semester is not None:  # reads the result tables the last batch writes
                written_before()
            enrolled = _enrolments_of(enrollments, batch)
            active = _active_frame(enrolled)
            elsewhere = _reader_of_elsewhere(enrollments)
            results: dict[str, pl.DataFrame | pa.Table]
            # the marks stay in DuckDB (tasks/evaluation_duckdb.py)
            fast = evaluate_batch(
                connection,
                files,
                batch,
                rules,
                active,
                year,
                looked_at,
                elsewhere,
                semester,
                _reader_of_other_semester(settings, semester) if semester else None,
            )
            written_before()
            if fast is not None:
                if fast.empty:
                    skipped.append(fast.plan.skipped)
                    continue
                plan = fast.plan
                results = dict(fast.results) if plan.years else {}
            else:
                frames = {"marks": _read(marks, MARK_COLUMNS, _marks_filter(batch, year))}
                frames["enrollments"] = enrolled
                if not frames["marks"].height:
                    skipped.append(_schools_without_marks(_in(active, looked_at), None))
                    continue
                plan = evaluable(
                    frames, rules.level_cycle, year, years_present=present, elsewhere=elsewhere
                )
                if plan.years:
                    kept = other_semester_results(settings, plan, semester) if semester else None
                    results = dict(compute_results(plan.inputs, rules, semester, kept, connection))
                else:
                    results = {}
            skipped.append(plan.skipped)
            schools.update(plan.schools)
            years.update(plan.years)
            for table, frame in results.items():
                run.rows[table] = run.rows.get(table, 0) + _height(frame)
            annual = _polars(results.get("annual_results"))
            if annual is not None:
                run.pupils += annual.height
                run.schools_evaluated += annual.get_column("school_code").n_unique()
            pending = writer.submit(
                _write_batch,
                settings,
                results,
                plan,
                batch,
                active,
                annual,
                exams,
                rules,
                bool(years),
            )
            del results
            fast = None  # the writer holds the batch's results alone, and lets them go
        written_before()
    finally:
        writer.shutdown(wait=True)
        connection.close()

    if unchanged:  # what the evaluation said of the kept schools when it made their results
        kept_back = kept_results(unchanged, SKIPPED_SCHEMA, warehouse, versions)
        skipped.append(kept_back.skipped)
        years.update(kept_back.years)
        schools.update(kept_back.schools)
        run.pupils += kept_back.pupils
        run.schools_evaluated += kept_back.schools_evaluated
        for table, count in kept_back.rows.items():  # their rows stand as published
            run.rows[table] = run.rows.get(table, 0) + count
            run.versions.setdefault(table, versions[table])
    # schools with exam marks but no marks (their candidates come from the exam marks alone)
    exam_only = {code: rows for code, rows in exams.schools.items() if code not in partitions}
    if years and exams.years and exam_only:
        scope = Evaluable({}, sorted(years), _rows([]), looked_at, [])
        for batch in batches_of(exam_only, batch_rows):
            run.batches += 1
            exam_plan = exams.of_batch(
                batch, _active_frame(_enrolments_of(enrollments, batch)), scope
            )
            skipped.append(exam_plan.skipped)
            computed = exams.results(exam_plan, batch, None, rules)
            run.rows["exam_results"] = run.rows.get("exam_results", 0) + computed.height
            exam_tables = {"exam_results": computed}
            run.versions.update(
                write_results(settings, exam_tables, scope, tables=("exam_results",))
            )
    without_marks = sorted(set(_partition_schools(warehouse, versions)) - set(partitions))
    if without_marks and enrollments is not None:
        active = _active_frame(_enrolments_of(enrollments, without_marks))
        skipped.append(_schools_without_marks(_in(active, looked_at), None))
    plan = Evaluable({}, sorted(years), _ordered(skipped), looked_at, sorted(schools))
    run.plan = plan
    return run


@dataclass
class _Written:
    """What a batch's writes did: versions per table, exam rows computed, exams held back."""

    versions: dict[str, int]
    rows: dict[str, int]
    skipped: list[pl.DataFrame]


def _write_batch(
    settings: Settings,
    results: dict[str, pl.DataFrame | pa.Table],
    plan: Evaluable,
    batch: list[str],
    active: pl.DataFrame,
    annual: pl.DataFrame | None,
    exams: _Exams,
    rules: EvaluationRules,
    any_years: bool,
) -> _Written:
    """A batch's results written, then its exams computed and written (they need its annual
    results: the candidates' continuous-assessment averages)."""
    versions: dict[str, int] = {}
    for table in SCORED_TABLES:  # a table's rows let go once written (the next batch grows)
        versions.update(write_results(settings, results, plan, tables=(table,)))
        results.pop(table, None)
    rows: dict[str, int] = {}
    skipped: list[pl.DataFrame] = []
    if exams.years:
        exam_plan = exams.of_batch(batch, active, plan)
        skipped.append(exam_plan.skipped)
        if any_years:
            computed = exams.results(exam_plan, batch, annual, rules)
            rows["exam_results"] = computed.height
            exam_tables = {"exam_results": computed}
            versions.update(write_results(settings, exam_tables, plan, tables=("exam_results",)))
    return _Written(versions, rows, skipped)


def evaluation_connection(settings: Settings) -> duckdb.DuckDBPyConnection:
    """The DuckDB connection of a run: memory bounded by ``evaluation_memory_mb``, spilling
    under the home, on the machine's cores."""
    memory = settings.evaluation_memory_mb or None
    spill = settings.home / "tmp" / "evaluation"  # DuckDB makes the last folder, removes it
    spill.parent.mkdir(parents=True, exist_ok=True)
    return connect(memory, spill, os.cpu_count())


def _partition_schools(warehouse: Path, versions: dict[str, int]) -> list[str]:
    if "enrollments" not in versions:
        return []
    return list(partition_rows(warehouse, "enrollments", versions["enrollments"]))


@dataclass
class _Exams:
    """The exams, batch by batch: a batch's candidates and papers are its schools' (their
    annual results and exam marks); what crosses schools is the baccalaureate's regional exam,
    taken the year before, maybe in another school: the regional papers of the earlier years
    are read once (``regional``: their pupils actively enrolled where they sat them)."""

    table: pl.LazyFrame | None
    enrollments: pl.LazyFrame | None
    years: list[str]  # the years looked at with exam marks (none: no exam results written)
    looked_at: list[str]
    regional: pl.DataFrame
    earlier: bool = False  # exam marks of years before those looked at exist
    schools: dict[str, int] = field(default_factory=dict)  # exam marks per school partition

    @classmethod
    def of(
        cls,
        settings: Settings,
        versions: dict[str, int],
        looked_at: list[str],
        enrollments: pl.LazyFrame | None,
        rules: EvaluationRules,
    ) -> _Exams:
        empty = pl.DataFrame(schema=dict.fromkeys(EXAM_COLUMNS, pl.Utf8))
        if "exam_marks" not in versions or not looked_at:
            return cls(None, enrollments, [], looked_at, empty)
        table = scan_table(settings.warehouse, "exam_marks", versions["exam_marks"])
        found = (
            table.filter(pl.col("school_year").is_in(looked_at))
            .select(pl.col("school_year").unique())
            .collect(engine="streaming")
        )
        years = sorted(found.get_column("school_year").to_list())
        before = table.filter(pl.col("school_year") < min(looked_at)).select(pl.len())
        has_earlier = bool(before.collect(engine="streaming").item())
        earlier = any(exam.regional_from == "earlier_year" for exam in rules.exams().values())
        regional = empty
        if years and earlier:
            papers = _read(
                table,
                EXAM_COLUMNS,
                (pl.col("exam") == "regional")
                & (pl.col("session") == "normal")
                & (pl.col("school_year") < max(looked_at)),
            )
            active = _active_of_pupils(enrollments, papers.get_column("student_code").unique())
            regional = _split_enrolled(papers, active, "exam_marks")[0]
        schools = partition_rows(settings.warehouse, "exam_marks", versions["exam_marks"])
        return cls(table, enrollments, years, looked_at, regional, has_earlier, schools)

    def of_batch(
        self,
        schools: list[str],
        active: pl.DataFrame,
        plan: Evaluable,
    ) -> Evaluable:
        """The batch's exam marks of the years looked at whose pupil is actively enrolled
        there (``inputs``), those of the years before, and what is held back (``skipped``)."""
        assert self.table is not None
        looked_at = self.looked_at
        exam = _read(
            self.table,
            EXAM_COLUMNS,
            _schools(schools)
            & (pl.col("school_year").is_in(looked_at) | (pl.col("school_year") < min(looked_at))),
        )
        current = exam.filter(pl.col("school_year").is_in(looked_at))
        elsewhere = _reader_of_elsewhere(self.enrollments)
        kept, held = _split_enrolled(current, active, "exam_marks", elsewhere=elsewhere)
        inputs = {"exam_marks": kept}
        before = exam.filter(pl.col("school_year") < min(looked_at))
        if before.height:
            inputs[EARLIER_EXAM_MARKS] = _split_enrolled(before, active, "exam_marks")[0]
        return Evaluable(inputs, plan.years, held, looked_at, plan.schools)

    def results(
        self,
        plan: Evaluable,
        schools: list[str],
        annual: pl.DataFrame | None,
        rules: EvaluationRules,
    ) -> pl.DataFrame:
        """The exam results of the batch's candidates (its schools' rows only)."""
        cc = (
            annual.select(CC_COLUMNS)
            if annual is not None
            else pl.DataFrame(schema={**dict.fromkeys(CC_COLUMNS, pl.Utf8), "average": pl.Float64})
        )
        pupils = pl.concat(
            [cc.get_column("student_code"), plan.inputs["exam_marks"].get_column("student_code")]
        ).unique()
        regional = self.regional.filter(
            pl.col("student_code").is_in(pupils.implode()) & ~_schools(schools)
        )
        inputs = dict(plan.inputs)
        earlier = [
            frame for frame in (inputs.get(EARLIER_EXAM_MARKS), regional) if frame is not None
        ]
        inputs[EARLIER_EXAM_MARKS] = pl.concat(earlier, how="diagonal_relaxed")
        # the whole warehouse's results keep the years of the exam marks when earlier years'
        # papers are read with them, else every year of the candidates (all looked at)
        kept = self.years if self.earlier else self.looked_at
        computed = _exam_results(inputs, cc, rules, kept)
        return computed.filter(_schools(schools))


# ---- one batch: computing and writing ------------------------------------------------------


def compute_results(
    inputs: dict[str, pl.DataFrame],
    rules: EvaluationRules,
    semester: int | None = None,
    other_semester: dict[str, pl.DataFrame] | None = None,
    connection: duckdb.DuckDBPyConnection | None = None,
) -> dict[str, pl.DataFrame]:
    """Subject, semester, annual and exam results of the school years of ``inputs``.

    With ``semester``, only that semester's subject and semester results are computed from the
    marks; the other semester's are ``other_semester`` (the warehouse's rows, unchanged, from
    :func:`other_semester_results`). The annual and exam results are computed from both, so
    they never contradict the semester results the warehouse holds after the run."""
    marks = inputs["marks"]
    if semester is not None:
        marks = marks.filter(pl.col("semester") == semester)
    subjects = subject_results(marks, rules, connection)
    semesters = semester_results(subjects, rules, connection)
    if other_semester:
        subjects = _stacked(subjects, other_semester.get("subject_results"))
        semesters = _stacked(semesters, other_semester.get("semester_results"))
    annual = annual_results(semesters, rules, connection)
    results = {"subject_results": subjects, "semester_results": semesters, "annual_results": annual}
    if "exam_marks" in inputs and inputs["exam_marks"].height:
        results["exam_results"] = _exam_results(inputs, annual, rules)
    return results


def _exam_results(
    inputs: dict[str, pl.DataFrame],
    annual: pl.DataFrame,
    rules: EvaluationRules,
    years: list[str] | None = None,
) -> pl.DataFrame:
    """Exam results of the years evaluated (``years``, default those of the exam marks); the
    papers of earlier years (the baccalaureate's regional exam) are read with them, their
    results not kept."""
    earlier = inputs.get(EARLIER_EXAM_MARKS)
    kept = years or inputs["exam_marks"].get_column("school_year").unique().to_list()
    if earlier is None or not earlier.height:
        papers = inputs["exam_marks"]
    else:
        papers = pl.concat([inputs["exam_marks"], earlier], how="diagonal_relaxed")
    results = exam_results(papers, annual, rules)
    if earlier is None or not earlier.height:
        return results if years is None else results.filter(pl.col("school_year").is_in(kept))
    return results.filter(pl.col("school_year").is_in(kept))


def other_semester_results(
    settings: Settings, plan: Evaluable, semester: int
) -> dict[str, pl.DataFrame]:
    """The warehouse's subject and semester results that a run of ``semester`` keeps: the
    other semester's, in the schools and school years the run looks at."""
    kept = {}
    for table in ("subject_results", "semester_results"):
        if not plan.schools or current_version(settings.warehouse, table) < 0:
            continue
        scope = (
            pc.field("school_code").isin(pa.array(plan.schools, pa.string()))
            & pc.field("school_year").isin(pa.array(plan.looked_at, pa.string()))
            & (pc.field("semester") != semester)
        )
        frame = pl.from_arrow(read_table(settings.warehouse, table).to_table(filter=scope))
        assert isinstance(frame, pl.DataFrame)
        kept[table] = frame
    return kept


def _reader_of_other_semester(settings: Settings, semester: int) -> OtherSemester:
    """How a run of ``semester`` reads the other semester's stored results of a batch."""

    def read(schools: list[str], looked_at: list[str]) -> dict[str, pl.DataFrame]:
        scope = Evaluable({}, [], _rows([]), looked_at, schools)
        return other_semester_results(settings, scope, semester)

    return read


def _stacked(computed: pl.DataFrame, stored: pl.DataFrame | None) -> pl.DataFrame:
    """``computed`` and the ``stored`` rows, typed as the computed ones (the warehouse stores
    no unsigned integers)."""
    if stored is None or not stored.height:
        return computed
    return pl.concat([computed, _typed_as(stored, computed.schema)])


def _typed_as(frame: pl.DataFrame, schema: pl.Schema) -> pl.DataFrame:
    return frame.select(
        pl.col(name).cast(dtype) if name in frame.columns else pl.lit(None, dtype).alias(name)
        for name, dtype in schema.items()
    )


def write_results(
    settings: Settings,
    results: Mapping[str, pl.DataFrame | pa.Table],
    plan: Evaluable,
    tables: tuple[str, ...] = RESULT_TABLES,
) -> dict[str, int]:
    """One commit per result table: in the schools whose marks were looked at, the results of
    the school years looked at are replaced by ``results``; their rows of other years are
    kept, as are other schools' rows. A school whose marks are all held back loses its
    results of those years: results say what the inputs allow tonight. Exam results are
    written only when computed (a warehouse without exam marks keeps its rows). ``tables``:
    the result tables this call writes (the others are left as they are)."""
    versions = {}
    for table in tables:
        computed = results.get(table)
        if computed is None and table == "exam_results":
            continue
        schools = sorted(set(plan.schools) | set(_column(computed, "school_code")))
        if not schools:
            continue
        kept = _rows_outside(settings, table, schools, plan.looked_at)
        if computed is None and kept is None:
            continue
        rows: pa.Table
        if computed is None:
            assert kept is not None
            rows = kept.to_arrow()
        elif kept is not None and kept.height:
            frame = _polars(computed)
            assert frame is not None
            rows = pl.concat([frame, _typed_as(kept, frame.schema)]).to_arrow()
        else:
            rows = computed if isinstance(computed, pa.Table) else computed.to_arrow()
        versions[table] = replace_school_rows(settings.warehouse, table, schools, rows)
    return versions


def _column(frame: pl.DataFrame | pa.Table | None, name: str) -> list[Any]:
    if isinstance(frame, pa.Table):
        present = name in frame.column_names
        return list(frame.column(name).unique().to_pylist()) if present else []
    if frame is None or name not in frame.columns:
        return []
    return frame.get_column(name).unique().to_list()


def _height(frame: pl.DataFrame | pa.Table) -> int:
    return frame.num_rows if isinstance(frame, pa.Table) else frame.height


def _polars(frame: pl.DataFrame | pa.Table | None) -> pl.DataFrame | None:
    if frame is None or isinstance(frame, pl.DataFrame):
        return frame
    converted = pl.from_arrow(frame)
    assert isinstance(converted, pl.DataFrame)
    return converted


def _rows_outside(
    settings: Settings, table: str, schools: list[str], years: list[str]
) -> pl.DataFrame | None:
    """The rows of ``schools`` in the result table of school years other than ``years``
    (None: no table yet)."""
    if current_version(settings.warehouse, table) < 0:
        return None
    # the schools' files only (a dataset of the whole table would cost, batch after batch,
    # time in proportion to the schools already written)
    other_years = ~pl.col("school_year").is_in(pl.Series(years, dtype=pl.Utf8).implode())
    outside = _schools(schools) & other_years
    return scan_table(settings.warehouse, table).filter(outside).collect(engine=ENGINE)


# ---- enrolments --------------------------------------------------------------------------------


PUPIL_KEYS = ["school_code", "school_year", "student_code"]


def _active(enrollments: pl.LazyFrame | None, schools: list[str] | None) -> pl.DataFrame:
    if enrollments is None:
        return pl.DataFrame(schema=dict.fromkeys(PUPIL_KEYS, pl.Utf8))
    where = pl.col("status") == "active"
    if schools is not None:
        where = where & _schools(schools)
    return _read(enrollments, PUPIL_KEYS, where)


def _enrolments_of(enrollments: pl.LazyFrame | None, schools: list[str]) -> pl.DataFrame:
    if enrollments is None:
        return pl.DataFrame(schema=dict.fromkeys([*ENROLMENT_COLUMNS, "status"], pl.Utf8))
    return _read(enrollments, [*ENROLMENT_COLUMNS, "status"], _schools(schools))


def _active_frame(enrolled: pl.DataFrame) -> pl.DataFrame:
    return enrolled.filter(pl.col("status") == "active").select(PUPIL_KEYS)


def _in(frame: pl.DataFrame, years: list[str]) -> pl.DataFrame:
    return frame.filter(pl.col("school_year").is_in(years))


def _active_of_pupils(enrollments: pl.LazyFrame | None, pupils: pl.Series) -> pl.DataFrame:
    if enrollments is None or not pupils.len():
        return pl.DataFrame(schema=dict.fromkeys(PUPIL_KEYS, pl.Utf8))
    where = (pl.col("status") == "active") & pl.col("student_code").is_in(pupils.implode())
    return _read(enrollments, PUPIL_KEYS, where)


def _reader_of_elsewhere(enrollments: pl.LazyFrame | None) -> Elsewhere:
    """How to read the active enrolments (school_year, student_code), in any school, of the
    pupils whose marks are held back in their school (usually none: never read)."""
    if enrollments is None:
        return None

    def read(pupils: pl.Series) -> pl.DataFrame:
        return _active_of_pupils(enrollments, pupils).select("school_year", "student_code")

    return read


def _ordered(parts: list[pl.DataFrame]) -> pl.DataFrame:
    """The held-back rows of every batch in one frame, by reason, year and school."""
    frames = [part.select(list(SKIPPED_SCHEMA)) for part in parts if part.height]
    if not frames:
        return _rows([])
    order = {"no_year": 0, "no_rules": 2, "school_without_marks": 4}
    rank = (
        pl.col("reason")
        .replace_strict(order, default=1, return_dtype=pl.Int8)
        .add(pl.when(pl.col("dataset") == "exam_marks").then(2).otherwise(0))
    )
    return (
        pl.concat(frames)
        .with_columns(rank.alias("_order"))
        .sort("_order", "school_year", "school_code", "level_code", maintain_order=True)
        .drop("_order")
    )

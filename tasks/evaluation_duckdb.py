"""One batch of schools evaluated inside DuckDB, straight from the published Parquet files.

    evaluate_batch(connection, files, schools, ...) -> BatchEvaluation | None

What tasks/evaluable.py and tasks/results_formulas.py do for a batch, without taking the marks
out of DuckDB: the batch's Parquet files (the published version's, from the Delta log) are read
by DuckDB with only the marks' columns, summed per pupil × subject × semester
(results_sql.subject_sums_query), and the restriction to active enrolments is applied to these
groups, not to the marks: every key of the restriction (school, year, pupil, level) is a key of
the group, so a group is wholly kept or wholly held, and the held groups carry their count of
marks. The kept groups then go through the same SQL as the province's frames (subject, semester,
annual), handed from one step to the next as Arrow (what the writes take). What is held back is
counted as :func:`tasks.evaluable.evaluable` counts it (tests/tasks/test_evaluation_duckdb.py).

None is returned when the files are not laid out as ``school_code=<code>/`` folders (the caller
then reads the batch with polars, as before).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from schemas.evaluation_rules import EvaluationRules
from tasks.evaluable import (
    ENROLMENT_KEYS,
    NO_RULES,
    NO_YEAR,
    SKIPPED_SCHEMA,
    Elsewhere,
    Evaluable,
    _rows,
    _schools_without_marks,
    held_reasons,
)
from tasks.results_sql import (
    STREAM_ROWS,
    SUBJECT_KEYS,
    annual_query,
    semester_query,
    subject_finish_query,
    subject_sums_query,
)

# the marks' columns an evaluation reads (mark_scale may be absent from older files)
MARK_COLUMNS = [*SUBJECT_KEYS, "slot", "mark", "absence", "mark_scale"]
# the warehouse's subject and semester results of the other semester, by table, in the schools
# and school years given (a run of one semester keeps them)
OtherSemester = Callable[[list[str], list[str]], dict[str, pl.DataFrame]]


@dataclass
class BatchEvaluation:
    """A batch's plan (years evaluated, what was held back, the years and schools looked at;
    no input frames) and its subject, semester and annual results as Arrow tables (none when
    the batch has no marks of the years looked at: ``empty``)."""

    plan: Evaluable
    results: dict[str, pa.Table]
    empty: bool = False


def _text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _hive_laid_out(files: dict[str, list[str]], schools: list[str]) -> list[str] | None:
    """The batch's files, when each lies in its school's ``school_code=<code>`` folder (the
    school code then comes from the path, as a string)."""
    paths = []
    for school in schools:
        for path in files.get(school, []):
            if Path(path).parent.name != f"school_code={school}":
                return None
            paths.append(path)
    return paths


def _arrow(connection: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    # streamed: a materialised result would count against the memory limit and not spill
    return connection.sql(sql).to_arrow_reader(STREAM_ROWS).read_all()


def evaluate_batch(
    connection: duckdb.DuckDBPyConnection,
    files: dict[str, list[str]],
    schools: list[str],
    rules: EvaluationRules,
    active: pl.DataFrame,
    year: str | None,
    looked_at: list[str],
    elsewhere: Elsewhere = None,
    semester: int | None = None,
    other_semester: OtherSemester | None = None,
) -> BatchEvaluation | None:
    """The batch ``schools`` evaluated from their marks' Parquet ``files`` (school → paths of
    the published version), with ``active`` their active enrolments (school_code, school_year,
    student_code), ``year`` the year asked for (None: every year), ``looked_at`` the years
    looked at and ``elsewhere`` how to read the active enrolments in other schools of pupils
    held back. With ``semester``, that semester's subject and semester results are computed
    and stacked with ``other_semester(schools, years)``, the warehouse's rows of the other
    semester, before the annual results (what is held back is counted over both semesters, as
    :func:`tasks.evaluable.evaluable` counts it). None: the files are not laid out by school
    folder."""
    paths = _hive_laid_out(files, schools)
    if paths is None:
        return None
    if not paths:
        return _empty(active, looked_at)
    listing = "[" + ", ".join(_text(path) for path in paths) + "]"
    scan = (
        f"read_parquet({listing}, hive_partitioning = true, "
        "hive_types = {'school_code': VARCHAR}, union_by_name = true)"
    )
    present = {row[0] for row in connection.sql(f"DESCRIBE SELECT * FROM {scan}").fetchall()}
    columns = [name for name in MARK_COLUMNS if name in present]  # school_code: the folders
    where = "" if year is None else f" WHERE school_year = {_text(year)} OR school_year IS NULL"
    marks = f"(SELECT {', '.join(columns)} FROM {scan}{where})"
    keys = active.select(ENROLMENT_KEYS).unique().to_arrow()
    known = ", ".join(_text(level) for level in rules.level_cycle) or "NULL"
    sums = f"({subject_sums_query(marks, rules, columns)})"
    connection.register("batch_active", keys)
    try:
        every = _arrow(connection, subject_finish_query(sums, rules, passed_on=("marks_read",)))
        if not every.num_rows:
            return _empty(active, looked_at)
        if semester is None:
            # the results of every group first: the restriction's keys (school, year, pupil,
            # level) are keys of the annual results too, so when each of those rows is kept,
            # every group was (the usual case), checked on a row a pupil instead of joining
            # the enrolments to every group
            semesters, annual = _semesters_and_annual(connection, every, rules)
            if _all_kept(connection, annual, known):
                held = _NONE_HELD
                subjects = every.drop_columns(["marks_read"])
            else:  # the held groups dropped, and the results computed again without them
                held, subjects = _restricted(connection, every, known)
                semesters, annual = _semesters_and_annual(connection, subjects, rules)
            del every
            # the (year, school) pairs with marks: those of the kept groups are the annual
            # results' (every kept group reaches them), far fewer rows than the groups; and the
            # held ones'
            pairs = _pairs(annual, held)
            evaluated = annual.column("school_year").unique().to_pylist()  # years of kept groups
        else:
            held, subjects = _restricted(connection, every, known)
            del every
            pairs = _pairs(subjects, held)
            evaluated = subjects.column("school_year").unique().to_pylist()
            schools = pairs.get_column("school_code").unique().sort().to_list()
            other = other_semester(schools, looked_at) if other_semester is not None else {}
            subjects, semesters, annual = _one_semester(
                connection, subjects, semester, other, rules
            )
    finally:
        connection.unregister("batch_active")
    years = sorted(value for value in evaluated if value)
    skipped = pl.concat(
        [
            _held(held, active, elsewhere),
            _schools_without_marks(_in_years(active, looked_at), pairs),
        ]
    )
    school_list = pairs.get_column("school_code").unique().sort().to_list()
    plan = Evaluable({}, years, skipped, looked_at, school_list)
    results = {
        "subject_results": subjects,
        "semester_results": semesters,
        "annual_results": annual,
    }
    return BatchEvaluation(plan, results)


# no group held back: the held groups' columns, without rows
_NONE_HELD = pl.DataFrame(
    schema={
        "school_year": pl.Utf8,
        "school_code": pl.Utf8,
        "level_code": pl.Utf8,
        "student_code": pl.Utf8,
        "marks": pl.Int64,
        "enrolled": pl.Boolean,
    }
)


def _unruled(level: str, known: str) -> str:
    """SQL: the level ``level`` has no rules (``known``: the listed levels with rules)."""
    return f"NOT coalesce({level} IN ({known}), FALSE)"


def _all_kept(connection: duckdb.DuckDBPyConnection, annual: pa.Table, known: str) -> bool:
    """Whether every row of the ``annual`` results is of a year, of a pupil actively
    enrolled in that school that year (``batch_active``) and of a level with rules."""
    enrolled = " AND ".join(f"a.{k} = r.{k}" for k in ENROLMENT_KEYS)
    connection.register("batch_annual", annual)
    try:
        found = connection.sql(
            f"""
            SELECT count(*) FROM batch_annual r LEFT JOIN batch_active a ON {enrolled}
            WHERE a.student_code IS NULL OR {_unruled("r.level_code", known)}
            """
        ).fetchall()
    finally:
        connection.unregister("batch_annual")
    return not found[0][0]


def _restricted(
    connection: duckdb.DuckDBPyConnection, every: pa.Table, known: str
) -> tuple[pl.DataFrame, pa.Table]:
    """The groups ``every`` (subject results with ``marks_read``) parted into the held ones,
    counted by (school_year, school_code, level_code, student_code, enrolled) with their
    marks, and the subject results of the kept ones: of a year, of a pupil actively enrolled
    in that school that year (``batch_active``), at a level with rules."""
    enrolled = " AND ".join(f"a.{k} = g.{k}" for k in ENROLMENT_KEYS)
    flagged = (
        "(SELECT g.*, a.student_code IS NOT NULL AS enrolled "
        f"FROM batch_groups g LEFT JOIN batch_active a ON {enrolled})"
    )
    connection.register("batch_groups", every)
    try:
        held = connection.sql(
            f"""
            SELECT school_year, school_code, level_code, student_code,
                CAST(sum(marks_read) AS BIGINT) AS marks, enrolled
            FROM {flagged}
            WHERE school_year IS NULL OR NOT enrolled OR {_unruled("level_code", known)}
            GROUP BY ALL
            """
        ).pl()
        if not held.height:
            return held, every.drop_columns(["marks_read"])
        subjects = _arrow(
            connection,
            f"SELECT * EXCLUDE (enrolled, marks_read) FROM {flagged} "
            f"WHERE enrolled AND NOT {_unruled('level_code', known)}",
        )
        return held, subjects
    finally:
        connection.unregister("batch_groups")


def _arrow_of(connection: duckdb.DuckDBPyConnection, sql: str, **sources: pa.Table) -> pa.Table:
    """``sql`` over the Arrow ``sources``, registered by their names for the query."""
    for name, table in sources.items():
        connection.register(name, table)
    try:
        return _arrow(connection, sql)
    finally:
        for name in sources:
            connection.unregister(name)


def _semesters_and_annual(
    connection: duckdb.DuckDBPyConnection, subjects: pa.Table, rules: EvaluationRules
) -> tuple[pa.Table, pa.Table]:
    """The semester results of the subject results ``subjects``, and the annual results."""
    semesters = _arrow_of(connection, semester_query("batch_subjects"), batch_subjects=subjects)
    annual = _arrow_of(
        connection, annual_query("batch_semesters", rules), batch_semesters=semesters
    )
    return semesters, annual


def _one_semester(
    connection: duckdb.DuckDBPyConnection,
    subjects: pa.Table,
    semester: int,
    other: dict[str, pl.DataFrame],
    rules: EvaluationRules,
) -> tuple[pa.Table, pa.Table, pa.Table]:
    """The subject and semester results of ``semester`` from the kept groups ``subjects``,
    each stacked with the ``other`` semester's stored rows, and the annual results of both."""
    chosen = subjects.filter(pc.equal(subjects.column("semester"), semester))
    semesters = _arrow_of(connection, semester_query("batch_subjects"), batch_subjects=chosen)
    chosen = _stacked(chosen, other.get("subject_results"))
    semesters = _stacked(semesters, other.get("semester_results"))
    annual = _arrow_of(
        connection, annual_query("batch_semesters", rules), batch_semesters=semesters
    )
    return chosen, semesters, annual


def _stacked(computed: pa.Table, stored: pl.DataFrame | None) -> pa.Table:
    """``computed`` and the ``stored`` rows, typed as the computed ones (the warehouse stores
    no unsigned integers; a column it lacks is null)."""
    if stored is None or not stored.height:
        return computed
    rows = stored.to_arrow()
    columns = [
        rows.column(field.name).cast(field.type)
        if field.name in rows.column_names
        else pa.nulls(rows.num_rows, field.type)
        for field in computed.schema
    ]
    return pa.concat_tables([computed, pa.Table.from_arrays(columns, schema=computed.schema)])


def _pairs(results: pa.Table, held: pl.DataFrame) -> pl.DataFrame:
    """The distinct (school_year, school_code) of ``results`` and the held groups (years
    unknown aside)."""
    kept = pl.from_arrow(results.select(["school_year", "school_code"]))
    assert isinstance(kept, pl.DataFrame)
    frames = [kept, held.select("school_year", "school_code")]
    return pl.concat(frames, how="vertical_relaxed").drop_nulls("school_year").unique()


def _empty(active: pl.DataFrame, looked_at: list[str]) -> BatchEvaluation:
    skipped = _schools_without_marks(_in_years(active, looked_at), None)
    return BatchEvaluation(Evaluable({}, [], skipped, looked_at, []), {}, empty=True)


def _in_years(frame: pl.DataFrame, years: list[str]) -> pl.DataFrame:
    return frame.filter(pl.col("school_year").is_in(years))


def _held(held: pl.DataFrame, active: pl.DataFrame, elsewhere: Elsewhere) -> pl.DataFrame:
    """The held groups (school_year, school_code, level_code, student_code, marks, enrolled)
    counted with their reasons, as tasks/evaluable.py counts held marks: a year unknown, then
    the enrolment (no list, enrolled elsewhere, not on the list), then the level's rules."""
    if not held.height:
        return _rows([])
    parts = []
    unknown = held.filter(pl.col("school_year").is_null())
    if unknown.height:
        parts.append(_counted(unknown, NO_YEAR, ["school_year", "school_code"]))
    dated = held.filter(pl.col("school_year").is_not_null())
    missing = dated.filter(~pl.col("enrolled"))
    if missing.height:
        if callable(elsewhere):
            elsewhere = elsewhere(missing.get_column("student_code").unique())
        reasons = held_reasons(missing, active, active, elsewhere)
        parts.append(_counted(reasons, None, ["school_year", "school_code"]))
    unruled = dated.filter(pl.col("enrolled"))
    if unruled.height:
        parts.append(_counted(unruled, NO_RULES, ["school_year", "school_code", "level_code"]))
    return pl.concat(parts) if parts else _rows([])


def _counted(groups: pl.DataFrame, reason: str | None, by: list[str]) -> pl.DataFrame:
    """Held groups counted per ``by`` and reason: their marks and distinct pupils."""
    if reason is not None:
        groups = groups.with_columns(pl.lit(reason).alias("reason"))
    out = groups.group_by([*by, "reason"]).agg(
        pl.col("marks").sum().cast(pl.Int64),
        pl.col("student_code").n_unique().cast(pl.Int64).alias("pupils"),
    )
    out = out.with_columns(pl.lit("marks").alias("dataset"))
    return out.select(
        pl.col(name).cast(dtype) if name in out.columns else pl.lit(None, dtype).alias(name)
        for name, dtype in SKIPPED_SCHEMA.items()
    ).sort([*by, "reason"])

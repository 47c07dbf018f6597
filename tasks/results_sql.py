"""The subject, semester and annual results as DuckDB SQL: the one implementation of these
formulas (tasks/results_formulas.py's functions call it), for a province's frames in memory and
for the warehouse's batches alike.

    connect(memory_mb, spill, threads)       a DuckDB connection with its memory bounded
    subject_sql(connection, marks, rules)    pupil × subject × semester, as Arrow
    semester_sql(connection, subjects, ...)  pupil × semester, ranked within class × semester
    annual_sql(connection, semesters, ...)   pupil × year, ranked within class, with decision

Each is one query (``subject_sums_query`` + ``subject_finish_query``, ``semester_query``,
``annual_query``) over a named source, so that the warehouse's batches run the same SQL over
their Parquet files (tasks/evaluation_duckdb.py).

Determinism: DuckDB sums a group's rows in whatever order its threads meet them, and a float
sum's last bits depend on that order. Every sum here is exact (DECIMAL, summed in 128-bit
integers) and turned into a float only for the division, so the same marks give the same bits
whatever the threads, and the 6-decimal rounding (STORED_DECIMALS) the same results night after
night. The rows come out in no fixed order (sorting millions of rows costs a third of the work):
the warehouse compares a school's rows as a set before it writes (warehouse/delta.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from schemas.evaluation_rules import EvaluationRules

EPS = 1e-9  # threshold comparisons tolerate floating-point noise (9.9999999999 → 10)
RANK_DECIMALS = 9  # averages equal to 9 decimals share a rank
STORED_DECIMALS = 6  # averages are stored rounded to 6 decimals
# (no FILTER clause on an aggregate: DuckDB does not spill those; CASE WHEN instead)
# a mark (or a mark brought to the level's scale) summed exactly to 9 decimals: far below the
# stored 6, and 9 integer digits leave room for any scale
MARK = "DECIMAL(18, 9)"
AVERAGE = "DECIMAL(18, 6)"  # stored averages and coefficients are exact at 6 decimals
STREAM_ROWS = 1 << 17  # rows per Arrow batch handed back by DuckDB

SUBJECT_KEYS = (
    "school_code",
    "school_year",
    "class_code",
    "level_code",
    "student_code",
    "subject_code",
    "semester",
)
SEMESTER_KEYS = (
    "school_code",
    "school_year",
    "class_code",
    "level_code",
    "student_code",
    "semester",
)
ANNUAL_KEYS = ("school_code", "school_year", "level_code", "student_code")


def connect(
    memory_mb: int | None = None, spill: Path | None = None, threads: int | None = None
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection whose memory is bounded by ``memory_mb`` (None: DuckDB's
    default, 80 % of the machine), spilling to ``spill`` beyond it, on ``threads`` threads."""
    connection = duckdb.connect()
    if memory_mb is not None:
        connection.execute(f"SET memory_limit = '{int(memory_mb)}MB'")
    if spill is not None:  # created by DuckDB when it first spills
        connection.execute("SET temp_directory = ?", [str(spill)])
    if threads is not None:
        connection.execute(f"SET threads = {int(threads)}")
    # no result depends on the order of the rows (see the module's docstring)
    connection.execute("SET preserve_insertion_order = false")
    return connection


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(float(value))
    return "'" + str(value).replace("'", "''") + "'"


def _values(rows: list[dict[str, Any]], columns: dict[str, str]) -> str:
    """A VALUES list of ``rows`` with typed ``columns`` (name → SQL type), as a subquery."""
    names = list(columns)
    if not rows:
        nulls = ", ".join(f"CAST(NULL AS {kind}) AS {name}" for name, kind in columns.items())
        return f"(SELECT {nulls} WHERE FALSE)"
    body = ", ".join(
        "(" + ", ".join(f"CAST({_literal(row[n])} AS {columns[n]})" for n in names) + ")"
        for row in rows
    )
    return f"(SELECT * FROM (VALUES {body}) AS t({', '.join(names)}))"


def _levels(rules: EvaluationRules) -> str:
    return _values(
        rules.level_rows(),
        {
            "level_code": "VARCHAR",
            "cycle": "VARCHAR",
            "scale": "DOUBLE",
            "pass_mark": "DOUBLE",
            "default_activities_weight": "DOUBLE",
            "promote_at": "DOUBLE",
            "oriented": "BOOLEAN",
        },
    )


def _weights(rules: EvaluationRules) -> str:
    """Per level × subject of the rules: its coefficient and activities weight (the level's
    default when the subject has none, else 0), so that a group needs one join, not two."""
    defaults = {row["level_code"]: row["default_activities_weight"] for row in rules.level_rows()}
    rows = []
    for row in rules.subject_rows():
        weight = row["activities_weight"]
        if weight is None:
            weight = defaults.get(row["level_code"])
        rows.append({**row, "weight": 0.0 if weight is None else weight})
    columns = {"level_code": "VARCHAR", "subject_code": "VARCHAR", "coefficient": "DOUBLE"}
    return _values(rows, {**columns, "weight": "DOUBLE"})


def _default_weight(level: str, rules: EvaluationRules) -> str:
    """The activities weight of a subject the rules do not list: its level's default (NULL
    for a level without rules)."""
    cases = [
        f"WHEN {_literal(row['level_code'])} "
        f"THEN CAST({_literal(row['default_activities_weight'])} AS DOUBLE)"
        for row in rules.level_rows()
    ]
    return f"CASE {level} {' '.join(cases)} END" if cases else "CAST(NULL AS DOUBLE)"


def _mention(value: str, cycle: str, rules: EvaluationRules) -> str:
    """The mention band of ``value`` per the rules of ``cycle`` (NULL when none applies)."""
    cases = []
    for name, cycle_rules in rules.cycles.items():
        if not cycle_rules.mentions.apply:
            continue
        for band in cycle_rules.mentions.bands:
            condition = f"{cycle} = {_literal(name)} AND {value} >= {band.lower!r} - {EPS}"
            if band.upper is not None:
                condition += f" AND {value} < {band.upper!r} - {EPS}"
            cases.append(f"WHEN {condition} THEN {_literal(band.name)}")
    if not cases:
        return "CAST(NULL AS VARCHAR)"
    return f"CASE {' '.join(cases)} ELSE NULL END"


def _ranked(average: str, window: tuple[str, ...]) -> tuple[str, str]:
    """(rank: ties share the lowest, highest average first, NULL without an average;
    class_size: the averages of the window)."""
    # one partitioning and one order for both (DuckDB then sorts the rows once, not twice):
    # the pupils without an average come last, so they precede no ranked pupil
    order = (
        f"PARTITION BY {', '.join(window)} "
        f"ORDER BY round({average}, {RANK_DECIMALS}) DESC NULLS LAST"
    )
    rank = f"CASE WHEN {average} IS NOT NULL THEN CAST(rank() OVER ({order}) AS UINTEGER) END"
    whole = "ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING"
    size = f"CAST(count({average}) OVER ({order} {whole}) AS UINTEGER)"
    return rank, size


def _run(connection: duckdb.DuckDBPyConnection, sql: str, inputs: dict[str, Any]) -> pa.Table:
    for name, frame in inputs.items():
        connection.register(name, frame)
    try:
        # streamed: a materialised result would count against the memory limit and not spill
        return connection.sql(sql).to_arrow_reader(STREAM_ROWS).read_all()
    finally:
        for name in inputs:
            connection.unregister(name)


def subject_sums_query(marks: str, rules: EvaluationRules, columns: list[str]) -> str:
    """The marks of ``marks`` (a table, view or subquery with ``columns``) summed exactly per
    pupil × subject × semester (SUBJECT_KEYS) with ``marks_read``, the rows of each group:
    the first half of :func:`subject_sql`, apart so that a caller may restrict the groups
    (tasks/evaluation_duckdb.py) before :func:`subject_finish_query`."""
    keys = ", ".join(f"m.{k}" for k in SUBJECT_KEYS)
    absence = "m.absence" if "absence" in columns else "CAST(NULL AS VARCHAR)"
    mark = "CAST(m.mark AS DOUBLE)"
    if "mark_scale" in columns:
        given = "CAST(m.mark_scale AS DOUBLE)"
        mark = (
            f"CASE WHEN {given} IS NOT NULL AND {given} <> l.scale AND {given} > 0 "
            f"THEN {mark} * l.scale / {given} ELSE {mark} END"
        )
    excused = f"coalesce({absence} IN ('justified', 'exempt'), FALSE)"
    value = (
        f"CASE WHEN {absence} = 'unjustified' THEN 0.0 WHEN {excused} THEN NULL "
        f"ELSE CAST({mark} AS {MARK}) END"
    )
    return f"""
    WITH rows AS (
        SELECT {keys},
            starts_with(CAST(m.slot AS VARCHAR), 'test') AS is_test,
            CAST({value} AS {MARK}) AS value,
            {excused} AS excused,
            coalesce({absence} = 'exempt', FALSE) AS exempt
        FROM {marks} m LEFT JOIN {_levels(rules)} l ON l.level_code = m.level_code
    )
    SELECT {", ".join(SUBJECT_KEYS)},
        sum(CASE WHEN is_test THEN value END) AS test_sum,
        count(CASE WHEN is_test THEN value END) AS test_count,
        sum(CASE WHEN NOT is_test THEN value END) AS activity_sum,
        count(CASE WHEN NOT is_test THEN value END) AS activity_count,
        -- every slot excused (excused is never NULL): bool_and, cheaper than counting them
        bool_or(exempt) OR bool_and(excused) AS is_exempt,
        count(*) AS marks_read
    FROM rows GROUP BY ALL
    """


def subject_finish_query(sums: str, rules: EvaluationRules, passed_on: tuple[str, ...] = ()) -> str:
    """Subject results from the groups of :func:`subject_sums_query` (``sums``: a table, view
    or subquery), followed by the columns ``passed_on`` of ``sums`` as they are."""
    mean = "CASE WHEN {n} > 0 THEN round(CAST({s} AS DOUBLE) / {n}, {d}) END"
    return f"""
    WITH means AS (
        SELECT s.*,
            {mean.format(n="test_count", s="test_sum", d=STORED_DECIMALS)} AS tests_mean,
            {mean.format(n="activity_count", s="activity_sum", d=STORED_DECIMALS)} AS act_mean,
            coalesce(j.weight, {_default_weight("s.level_code", rules)}, 0.0) AS weight,
            j.coefficient
        FROM {sums} s
        LEFT JOIN {_weights(rules)} j
            ON j.level_code = s.level_code AND j.subject_code = s.subject_code
    ), averaged AS (
        SELECT *, CASE WHEN weight > 0 THEN act_mean END AS activities FROM means
    ), combined AS (
        SELECT *,
            CASE WHEN tests_mean IS NOT NULL AND activities IS NOT NULL
                THEN tests_mean * (1 - weight) + activities * weight
                WHEN tests_mean IS NOT NULL THEN tests_mean ELSE activities END AS raw_average
        FROM averaged
    )
    SELECT {", ".join(SUBJECT_KEYS)},
        tests_mean,
        CAST(test_count AS UINTEGER) AS tests_counted,
        activities,
        CASE WHEN NOT is_exempt THEN round(raw_average, {STORED_DECIMALS}) END AS average,
        weight AS activities_weight,
        coefficient,
        CASE WHEN is_exempt THEN 'exempt' WHEN raw_average IS NULL THEN 'no_mark'
            ELSE 'ok' END AS status{"".join(f", {name}" for name in passed_on)}
    FROM combined
    """


def subject_sql(
    connection: duckdb.DuckDBPyConnection,
    marks: Any,
    rules: EvaluationRules,
    columns: list[str],
) -> pa.Table:
    """Per pupil × subject × semester (see results_formulas.subject_results). ``marks``: an
    Arrow table (or anything DuckDB scans) with ``columns``."""
    sums = f"({subject_sums_query('marks', rules, columns)})"
    return _run(connection, subject_finish_query(sums, rules), {"marks": marks})


def semester_query(subjects: str) -> str:
    """Semester results from the subject results ``subjects`` (a table or view)."""
    counted = "status = 'ok' AND coefficient IS NOT NULL"
    uncoefficient = "coefficient IS NULL AND status = 'ok'"
    window = ("school_code", "school_year", "class_code", "semester")
    rank, size = _ranked("average", window)
    count = "CAST(sum(CASE WHEN {c} THEN 1 ELSE 0 END) AS UINTEGER) AS {n}"
    return f"""
    WITH sums AS (
        SELECT {", ".join(SEMESTER_KEYS)},
            sum(CASE WHEN {counted} THEN CAST(average AS {AVERAGE})
                * CAST(coefficient AS {AVERAGE}) END) AS points,
            sum(CASE WHEN {counted} THEN CAST(coefficient AS {AVERAGE}) END) AS coefficients,
            {count.format(c=counted, n="subjects_counted")},
            {count.format(c="status = 'no_mark'", n="subjects_no_mark")},
            {count.format(c="status = 'exempt'", n="subjects_exempt")},
            {count.format(c=uncoefficient, n="subjects_without_coefficient")}
        FROM {subjects} GROUP BY ALL
    ), averaged AS (
        SELECT *, CASE WHEN coefficients > 0 THEN round(CAST(points AS DOUBLE)
            / CAST(coefficients AS DOUBLE), {STORED_DECIMALS}) END AS average
        FROM sums
    )
    SELECT {", ".join(SEMESTER_KEYS)}, average, {rank} AS rank, {size} AS class_size,
        subjects_counted, subjects_no_mark, subjects_exempt, subjects_without_coefficient
    FROM averaged
    """


def semester_sql(connection: duckdb.DuckDBPyConnection, subjects: Any) -> pa.Table:
    """Per pupil × semester (see results_formulas.semester_results), from subject results."""
    return _run(connection, semester_query("subjects"), {"subjects": subjects})


def annual_query(semesters: str, rules: EvaluationRules) -> str:
    """Annual results from the semester results ``semesters`` (a table or view)."""
    window = ("school_code", "school_year", "class_code")
    rank, size = _ranked("average", window)
    at_least = f"average >= promote_at - {EPS}"
    return f"""
    WITH grouped AS (
        SELECT {", ".join(ANNUAL_KEYS)},
            -- the class of the last semester (max: a pupil moved within a semester keeps
            -- the same class night after night, whatever the threads)
            coalesce(max(CASE WHEN semester = 2 THEN class_code END), max(class_code))
                AS class_code,
            max(CASE WHEN semester = 1 THEN average END) AS average_s1,
            max(CASE WHEN semester = 2 THEN average END) AS average_s2,
            -- the mean of two 6-decimal averages often ends in an exact half: rounded
            -- half away from zero in integers of 1e-6, as the decimal figures say
            CAST(sign(sum(micro)) * ((2 * abs(sum(micro)) + count(micro))
                // (2 * count(micro))) AS DOUBLE) / {10**STORED_DECIMALS} AS average,
            CAST(count(average) AS UINTEGER) AS semesters_counted
        FROM (SELECT *, CAST(round(average * {10**STORED_DECIMALS}) AS BIGINT) AS micro
            FROM {semesters})
        GROUP BY ALL
    ), decided AS (
        SELECT g.*, l.cycle,
            CASE WHEN average IS NULL THEN NULL
                WHEN {at_least} AND coalesce(l.oriented, FALSE) THEN 'oriented'
                WHEN {at_least} THEN 'promoted' ELSE 'repeats' END AS decision
        FROM grouped g LEFT JOIN {_levels(rules)} l ON l.level_code = g.level_code
    )
    SELECT school_code, school_year, class_code, level_code, student_code,
        average_s1, average_s2, average, semesters_counted,
        {rank} AS rank, {size} AS class_size, decision,
        {_mention("average", "cycle", rules)} AS mention
    FROM decided
    """


def annual_sql(
    connection: duckdb.DuckDBPyConnection, semesters: Any, rules: EvaluationRules
) -> pa.Table:
    """Per pupil × school year (see results_formulas.annual_results), from semester results."""
    return _run(connection, annual_query("semesters", rules), {"semesters": semesters})

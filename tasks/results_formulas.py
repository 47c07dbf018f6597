"""Averages, ranks, decisions and exam results from the warehouse marks: the subject, semester
and annual results computed by DuckDB SQL (tasks/results_sql.py, exact sums), the exams in
polars (a few papers a candidate).

    subject_results(marks, rules)            pupil × subject × semester
    semester_results(subject_results, rules) pupil × semester, ranked within class × semester
    annual_results(semester_results, rules)  pupil × year, ranked within class, with decision
    exam_results(exam_marks, cc, rules)      pupil × exam × session (certificates, bac)

Every formula, weight and threshold comes from schemas/evaluation/<cycle>.toml (see
schemas/evaluation_rules.py); the behaviour for missing marks, absences, exemptions and missing
papers is defined in docs/evaluation-rules.md. All functions are vectorised (no per-pupil Python)
and accept a DataFrame or a LazyFrame; they return DataFrames (the continuous assessment's rows
in no fixed order).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import duckdb
import polars as pl
import pyarrow as pa

from schemas.evaluation_rules import EvaluationRules, Exam
from tasks.results_sql import (
    EPS,
    SEMESTER_KEYS,
    STORED_DECIMALS,
    SUBJECT_KEYS,
    annual_sql,
    connect,
    semester_sql,
    subject_sql,
)

# polars' in-memory engine (the exams): the streaming engine sums in the order its threads meet
# the rows, which changes the last bit, and so now and then the 6th decimal, from run to run.
ENGINE: Literal["in-memory"] = "in-memory"

EXAM_COLUMNS = (
    "school_code",
    "school_year",
    "class_code",
    "level_code",
    "student_code",
    "exam",
    "cc_average",
    "local_average",
    "provincial_average",
    "regional_average",
    "national_average",
    "final_average",
    "session",
    "result",
    "mention",
    "missing_components",
    "missing_papers",
)

Frame = pl.DataFrame | pl.LazyFrame


def _lazy(frame: Frame) -> pl.LazyFrame:
    return frame.lazy() if isinstance(frame, pl.DataFrame) else frame


def _levels(rules: EvaluationRules) -> pl.LazyFrame:
    return pl.LazyFrame(
        rules.level_rows(),
        schema={
            "level_code": pl.Utf8,
            "cycle": pl.Utf8,
            "scale": pl.Float64,
            "pass_mark": pl.Float64,
            "default_activities_weight": pl.Float64,
            "promote_at": pl.Float64,
            "oriented": pl.Boolean,
        },
    )


def _subjects(rules: EvaluationRules) -> pl.LazyFrame:
    return pl.LazyFrame(
        rules.subject_rows(),
        schema={
            "level_code": pl.Utf8,
            "subject_code": pl.Utf8,
            "coefficient": pl.Float64,
            "activities": pl.Boolean,
            "activities_weight": pl.Float64,
            "exams": pl.Utf8,
        },
    )


def _cast_keys(frame: pl.LazyFrame, names: tuple[str, ...]) -> pl.LazyFrame:
    """Join keys as plain strings (inputs may carry categoricals or enums)."""
    schema = frame.collect_schema()
    return frame.with_columns(
        pl.col(name).cast(pl.Utf8)
        for name in names
        if name in schema and schema[name] != pl.Utf8 and name != "semester"
    )


def _at_least(value: pl.Expr, bound: pl.Expr | float) -> pl.Expr:
    return value >= (bound - EPS)


def _below(value: pl.Expr, bound: pl.Expr | float) -> pl.Expr:
    return value < (bound - EPS)


def _mention(value: pl.Expr, cycle: pl.Expr, rules: EvaluationRules) -> pl.Expr:
    """The mention band of ``value`` per the rules of ``cycle`` (null when none applies)."""
    expr: Any = None  # pl.when(...).then(...), then chained: polars types each step apart
    for name, cycle_rules in rules.cycles.items():
        if not cycle_rules.mentions.apply:
            continue
        for band in cycle_rules.mentions.bands:
            condition = (cycle == name) & _at_least(value, band.lower)
            if band.upper is not None:
                condition = condition & _below(value, band.upper)
            expr = (pl.when(condition) if expr is None else expr.when(condition)).then(
                pl.lit(band.name)
            )
    if expr is None:
        return pl.lit(None, pl.Utf8)
    return expr.otherwise(pl.lit(None, pl.Utf8))


# ---- continuous assessment (DuckDB SQL: tasks/results_sql.py) ----------------------------------


def _arrow(frame: Frame, keys: tuple[str, ...]) -> pa.Table:
    """``frame`` with plain string keys, as Arrow (what DuckDB scans without a copy)."""
    data = _cast_keys(_lazy(frame), keys).collect(engine=ENGINE)
    return data.to_arrow()


def _frame(table: pa.Table, semester: pl.DataType | None) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    if semester is not None and "semester" in frame.columns:
        frame = frame.with_columns(pl.col("semester").cast(semester))
    return frame


def _semester_type(frame: Frame) -> pl.DataType | None:
    return _lazy(frame).collect_schema().get("semester")


@contextmanager
def _connected(
    connection: duckdb.DuckDBPyConnection | None,
) -> Iterator[duckdb.DuckDBPyConnection]:
    if connection is not None:
        yield connection
        return
    fresh = connect()
    try:
        yield fresh
    finally:
        fresh.close()


def subject_results(
    marks: Frame, rules: EvaluationRules, connection: duckdb.DuckDBPyConnection | None = None
) -> pl.DataFrame:
    """Per pupil × subject × semester: tests_mean, activities, average, coefficient, status
    (ok | no_mark | exempt) and the tests counted.

    A slot counts when it holds a mark and no justified absence; an unjustified absence
    (never recorded by NotesCC, accepted if present) counts 0; marks are brought to the level's
    scale when ``mark_scale`` differs. average = tests_mean × (1 - w) + activities × w where w
    is the subject's activities weight; without an activities mark, the plain tests mean.
    ``connection``: the DuckDB connection to compute in (default: a fresh one).
    """
    table = _arrow(marks, SUBJECT_KEYS)
    with _connected(connection) as duck:
        computed = subject_sql(duck, table, rules, table.column_names)
    return _frame(computed, _semester_type(marks))


def semester_results(
    subject_results: Frame,
    rules: EvaluationRules,
    connection: duckdb.DuckDBPyConnection | None = None,
) -> pl.DataFrame:
    """Per pupil × semester: average = Σ(subject average × coefficient) / Σ coefficients over
    the subjects with status ok and a coefficient; rank within class × semester (ties share the
    lowest rank; pupils without an average are unranked); class_size = pupils ranked."""
    table = _arrow(subject_results, SUBJECT_KEYS)
    with _connected(connection) as duck:
        computed = semester_sql(duck, table)
    return _frame(computed, _semester_type(subject_results))


def annual_results(
    semester_results: Frame,
    rules: EvaluationRules,
    connection: duckdb.DuckDBPyConnection | None = None,
) -> pl.DataFrame:
    """Per pupil × school year: average = mean of the semesters with an average (inferred rule),
    rank within the class (of the last semester), decision promoted | oriented | repeats
    (provisional: the class council decides below the threshold; ``excluded`` is never produced
    because the one-repeat rule needs a repeat history) and mention where the cycle has them."""
    table = _arrow(semester_results, SEMESTER_KEYS)
    with _connected(connection) as duck:
        computed = annual_sql(duck, table, rules)
    return _frame(computed, None)


# ---- exams ------------------------------------------------------------------------------------


CLASS_LEVEL = pl.col("_class_level")  # _level_from_class of the exam marks, computed once
PAPER_KEYS = ["school_year", "student_code", "level_code", "exam", "session", "subject_code"]


def _level_from_class(class_code: pl.Expr, rules: EvaluationRules) -> pl.Expr:
    """1APIC-2 → 1APIC when it is a known level."""
    prefix = class_code.str.replace(r"-\d{1,2}$", "")
    known = list(rules.level_cycle)
    return pl.when(prefix.is_in(known)).then(prefix)


def _papers(exam_marks: pl.LazyFrame, cc: pl.LazyFrame, rules: EvaluationRules) -> pl.LazyFrame:
    """One row per pupil × exam × session × subject: level_code, value (absent or missing
    counts ``absent_counts``), coefficient; papers expected by curriculum.csv but absent from
    the data for a pupil who sat that exam are added with value 0 and ``missing`` true.
    ``cc``: one row per pupil and school year (`_one_per_pupil`)."""
    schema = exam_marks.collect_schema()
    levels_by_year = cc.select(
        "school_year", "student_code", pl.col("level_code").alias("_cc_level")
    )
    absent = pl.col("absent").fill_null(False) if "absent" in schema else pl.lit(False)
    given = pl.col("mark_scale").cast(pl.Float64) if "mark_scale" in schema else pl.lit(None)
    rows = (
        exam_marks.join(levels_by_year, on=["school_year", "student_code"], how="left")
        .with_columns(
            pl.coalesce(
                "_cc_level",
                *(["level_code"] if "level_code" in schema else []),
                CLASS_LEVEL,
            ).alias("level_code"),
            pl.when(absent).then(None).otherwise(pl.col("mark").cast(pl.Float64)).alias("_mark"),
            given.cast(pl.Float64).alias("_given"),
        )
        .select(*PAPER_KEYS, "_mark", "_given", "school_code", "class_code")
        .collect(engine=ENGINE)
    )
    # a paper entered twice keeps its best mark; usually none is, and the check costs less
    # than grouping every paper (a group of one row is the row)
    if rows.select(pl.struct(PAPER_KEYS).is_duplicated().any()).item():
        rows = rows.group_by(PAPER_KEYS).agg(
            pl.col("_mark").max(),
            pl.col("_given").first(),
            pl.col("school_code").first(),
            pl.col("class_code").first(),
        )
    papers = rows.lazy()
    # a mark given on another scale than the level's is brought to the level's scale
    scales = _levels(rules).select("level_code", "scale")
    papers = papers.join(scales, on="level_code", how="left").with_columns(
        pl.when(
            pl.col("_given").is_not_null() & (pl.col("_given") > 0) & pl.col("scale").is_not_null()
        )
        .then(pl.col("_mark") * pl.col("scale") / pl.col("_given"))
        .otherwise(pl.col("_mark"))
        .alias("_mark")
    )
    expected = (
        _subjects(rules)
        .select("level_code", "subject_code", pl.col("exams").str.split(";").alias("exam"))
        .explode("exam")
        .filter(pl.col("exam") != "")
        .collect(engine=ENGINE)
    )
    marked = papers.collect(engine=ENGINE)
    sat = marked.select("school_year", "student_code", "level_code", "exam", "session").unique()
    expected_papers = sat.join(expected, on=["level_code", "exam"])
    # the papers are unique by PAPER_KEYS: as many of them expected (keys not null) as
    # expected papers, and none is absent (usually; counted for less than the anti-join)
    present = marked.drop_nulls(PAPER_KEYS).join(
        expected, on=["level_code", "exam", "subject_code"], how="semi"
    )
    papers = marked.lazy()
    if present.height < expected_papers.height:
        # the expected papers absent from the data, added (what a full join would add, cheaper)
        absent_papers = expected_papers.lazy().join(papers, on=PAPER_KEYS, how="anti")
        papers = pl.concat([papers, absent_papers], how="diagonal")
    # rows added from `expected` have no row in the data
    papers = papers.with_columns(
        pl.col("school_code").is_null().alias("missing"),
    )
    coefficients = _subjects(rules).select("level_code", "subject_code", "coefficient")
    return papers.join(coefficients, on=["level_code", "subject_code"], how="left").select(
        "school_year",
        "student_code",
        "level_code",
        "exam",
        "session",
        "subject_code",
        pl.col("_mark").alias("value"),
        pl.col("coefficient").fill_null(1.0),
        "missing",
    )


def _component(papers: pl.LazyFrame, exam: str, absent_counts: float) -> pl.LazyFrame:
    """Coefficient-weighted average of one exam's normal-session papers per pupil × year; an
    absent, unmarked or missing paper counts ``absent_counts``."""
    return (
        papers.filter((pl.col("exam") == exam) & (pl.col("session") == "normal"))
        .with_columns(pl.col("value").fill_null(absent_counts))
        .group_by("school_year", "student_code")
        .agg(
            ((pl.col("value") * pl.col("coefficient")).sum() / pl.col("coefficient").sum())
            .round(STORED_DECIMALS)
            .alias(f"{exam}_average"),
            pl.col("subject_code").filter(pl.col("missing")).sort().alias(f"_{exam}_missing"),
            (pl.col("value") <= 0).any().alias(f"_{exam}_zero"),
        )
    )


def exam_results(exam_marks: Frame, cc: Frame, rules: EvaluationRules) -> pl.DataFrame:
    """Per candidate × exam × session: the certificate of 6th primary, the collège certificate
    and the baccalaureate, with the columns of ``EXAM_COLUMNS``.

    ``cc`` gives the continuous-assessment average per pupil and year (``annual_results`` output
    or any frame with school_code, school_year, class_code, level_code, student_code, average);
    candidates are its pupils at an exam level, plus pupils with exam marks whose class code
    names an exam level. The bac's regional component is the pupil's latest regional exam of an
    earlier school year in the same data; without one the final average is null, the result is
    null and ``missing_components`` says ``regional``.
    """
    marks = _cast_keys(_lazy(exam_marks), ("school_code", "school_year", "class_code"))
    cc_frame = _cast_keys(_lazy(cc), ("school_code", "school_year", "class_code", "level_code"))
    cc_frame = _one_per_pupil(
        cc_frame.select(
            "school_code",
            "school_year",
            "class_code",
            "level_code",
            "student_code",
            pl.col("average").alias("cc_average"),
        ),
        rules,
    )
    # computed once, each exam reads them (a lazy .cache() is not shared across the concat):
    # the level named by each mark's class, then the papers
    marks = (
        marks.with_columns(_level_from_class(pl.col("class_code"), rules).alias("_class_level"))
        .collect(engine=ENGINE)
        .lazy()
    )
    cc_frame = cc_frame.collect(engine=ENGINE).lazy()
    papers = _papers(marks, cc_frame, rules).collect(engine=ENGINE).lazy()
    exams = rules.exams()
    if not exams:
        return pl.DataFrame(schema=dict.fromkeys(EXAM_COLUMNS, pl.Utf8))
    # an exam none of whose levels is present has no candidate: its frame would be empty but
    # cost the joins of every paper (one is kept when none has, for the columns' types)
    present = set(cc_frame.select(pl.col("level_code").unique()).collect().to_series().to_list())
    present |= set(marks.select(CLASS_LEVEL.unique()).collect().to_series().to_list())
    sat = [name for name, exam in exams.items() if present & set(exam.levels)] or list(exams)[:1]
    frames = [_one_exam(name, exams[name], marks, cc_frame, papers, rules) for name in sat]
    return pl.concat(frames, how="vertical_relaxed").collect(engine=ENGINE)


def _one_per_pupil(frame: pl.LazyFrame, rules: EvaluationRules) -> pl.LazyFrame:
    """One row per pupil and school year. A pupil with results at two levels in a year (a
    defect the school is told about) keeps a row at an exam's level first, then the first by
    level, class and school: the same row whatever order the results come in. Kept as they
    came (DuckDB's order), such a pupil got an exam result in one run and none in the next."""
    exam_levels = sorted({level for exam in rules.exams().values() for level in exam.levels})
    ties = ["_not_exam", "level_code", "class_code", "school_code"]
    return (
        frame.with_columns((~pl.col("level_code").is_in(exam_levels)).alias("_not_exam"))
        .sort(["school_year", "student_code", *ties], nulls_last=True)
        .unique(subset=["school_year", "student_code"], keep="first", maintain_order=True)
        .drop("_not_exam")
    )


def _candidates(
    levels: list[str], marks: pl.LazyFrame, cc: pl.LazyFrame, rules: EvaluationRules
) -> pl.LazyFrame:
    from_cc = cc.filter(pl.col("level_code").is_in(levels))
    from_marks = (
        marks.select(
            "school_code",
            "school_year",
            "class_code",
            CLASS_LEVEL.alias("level_code"),
            "student_code",
        )
        .filter(pl.col("level_code").is_in(levels))
        .unique(subset=["school_year", "student_code"], keep="first")
        .join(cc, on=["school_year", "student_code"], how="anti")
        .with_columns(pl.lit(None, pl.Float64).alias("cc_average"))
    )
    return pl.concat([from_cc, from_marks.select(from_cc.collect_schema().names())])


def _one_exam(
    name: str,
    exam: Exam,
    marks: pl.LazyFrame,
    cc: pl.LazyFrame,
    papers: pl.LazyFrame,
    rules: EvaluationRules,
) -> pl.LazyFrame:
    components = [part for part in exam.weights if part != "cc"]
    frame = _candidates(exam.levels, marks, cc, rules)
    for part in components:
        if part == "regional" and exam.regional_from == "earlier_year":
            regional = (
                papers.filter((pl.col("exam") == "regional") & (pl.col("session") == "normal"))
                .select("school_year", "student_code")
                .unique()
                .rename({"school_year": "_regional_year"})
            )
            latest = (
                frame.select("school_year", "student_code")
                .join(regional, on="student_code", how="inner")
                .filter(pl.col("_regional_year") < pl.col("school_year"))
                .group_by("school_year", "student_code")
                .agg(pl.col("_regional_year").max())
            )
            component = _component(papers, "regional", exam.absent_counts).rename(
                {"school_year": "_regional_year"}
            )
            frame = frame.join(latest, on=["school_year", "student_code"], how="left").join(
                component, on=["_regional_year", "student_code"], how="left"
            )
        else:
            frame = frame.join(
                _component(papers, part, exam.absent_counts),
                on=["school_year", "student_code"],
                how="left",
            )
    for part in ("local", "provincial", "regional", "national"):
        if f"{part}_average" not in frame.collect_schema().names():
            frame = frame.with_columns(
                pl.lit(None, pl.Float64).alias(f"{part}_average"),
                pl.lit(None, pl.List(pl.Utf8)).alias(f"_{part}_missing"),
                pl.lit(None, pl.Boolean).alias(f"_{part}_zero"),
            )

    def final(national: pl.Expr) -> pl.Expr:
        total = pl.lit(0.0)
        for part, weight in exam.weights.items():
            value = national if part == "national" else pl.col(f"{part}_average")
            if part == "cc":
                value = pl.col("cc_average")
            total = total + value * weight
        return total.round(STORED_DECIMALS)

    missing_components = pl.concat_list(
        [
            pl.when(pl.col("cc_average" if part == "cc" else f"{part}_average").is_null())
            .then(pl.lit(part))
            .otherwise(pl.lit(None, pl.Utf8))
            for part in exam.weights
        ]
    ).list.drop_nulls()
    missing_papers = pl.concat_list(
        [pl.col(f"_{part}_missing").fill_null(pl.lit([], pl.List(pl.Utf8))) for part in components]
    ).list.sort()
    zero_national = (
        pl.col("_national_zero").fill_null(False)
        if exam.zero_national_fails and "national" in components
        else pl.lit(False)
    )
    mg = pl.col("final_average")
    if exam.makeup is not None:
        low, high = exam.makeup.lower, exam.makeup.upper
        above_low = _at_least(mg, low) if exam.makeup.lower_inclusive else mg > low + EPS
        below_high = (
            _at_least(mg, high).not_() if not exam.makeup.upper_inclusive else (mg <= high + EPS)
        )
        in_window = above_low & below_high
        if exam.zero_blocks_makeup:
            in_window = in_window & ~zero_national
    else:
        in_window = pl.lit(False)
    passed = _at_least(mg, exam.pass_mark) & ~zero_national
    # with an upper-inclusive window, MG = upper is a make-up, not a pass
    if exam.makeup is not None and exam.makeup.upper_inclusive:
        passed = passed & ~in_window
    result = (
        pl.when(mg.is_null())
        .then(pl.lit(None, pl.Utf8))
        .when(passed)
        .then(pl.lit("passed"))
        .when(in_window)
        .then(pl.lit("makeup"))
        .otherwise(pl.lit("failed"))
    )
    cycle = rules.level_cycle[exam.levels[0]]
    normal = (
        frame.with_columns(
            final(pl.col("national_average")).alias("final_average"),
            missing_components.alias("missing_components"),
            missing_papers.alias("missing_papers"),
            pl.lit(name).alias("exam"),
            pl.lit("normal").alias("session"),
        )
        .with_columns(result.alias("result"))
        .with_columns(
            pl.when(pl.col("result") == "passed")
            .then(_mention(mg, pl.lit(cycle), rules))
            .alias("mention")
        )
    )
    out = [normal.select(EXAM_COLUMNS)]
    if exam.makeup is not None and "national" in components:
        best = (
            papers.filter(pl.col("exam") == "national")
            .with_columns(pl.col("value").fill_null(exam.absent_counts))
            .group_by("school_year", "student_code", "subject_code")
            .agg(
                pl.col("value").max().alias("value"),
                pl.col("coefficient").first(),
                (pl.col("session") == "makeup").any().alias("_retaken"),
            )
            .group_by("school_year", "student_code")
            .agg(
                ((pl.col("value") * pl.col("coefficient")).sum() / pl.col("coefficient").sum())
                .round(STORED_DECIMALS)
                .alias("_best_national"),
                (pl.col("value") <= 0).any().alias("_best_zero"),
                pl.col("_retaken").any().alias("_retaken"),
            )
        )
        makeup = (
            normal.filter(pl.col("result") == "makeup")
            .join(best, on=["school_year", "student_code"], how="inner")
            .filter(pl.col("_retaken"))
            .with_columns(
                pl.col("_best_national").alias("national_average"),
                final(pl.col("_best_national")).alias("final_average"),
                pl.lit("makeup").alias("session"),
            )
        )
        zero_after = pl.col("_best_zero") if exam.zero_national_fails else pl.lit(False)
        makeup = makeup.with_columns(
            pl.when(_at_least(mg, exam.pass_mark) & ~zero_after)
            .then(pl.lit("passed"))
            .otherwise(pl.lit("failed"))
            .alias("result")
        ).with_columns(
            pl.when(pl.col("result") == "passed")
            .then(_mention(mg, pl.lit(cycle), rules))
            .alias("mention")
        )
        out.append(makeup.select(EXAM_COLUMNS))
    return pl.concat(out, how="vertical_relaxed")

"""Results statistics for the directorate: counts and rates only, never a pupil.

``compute_statistics`` turns the year's annual (and semester) results into tables per class,
school, commune and province, by sex and by cycle, with the distribution of averages; given
last year's results it adds the change in pass rate and mean. Given the exam results it adds
the exams' candidates, passes, pass rates and means per exam, province, commune and school
(against last year's when given). ``headline_table`` is the short table for a Prefect artifact;
the page and its charts are written by :mod:`tasks.statistics_report`.

Conventions (a newcomer would ask):

- a pupil is one row of ``annual_results`` (school, year, pupil); the pass rate is the share of
  them whose decision counts as a pass in the rules of the pupil's cycle
  (``decisions.pass_decisions`` of schemas/evaluation/<cycle>.toml: promoted, and oriented in
  collège and lycée); a pupil still waiting for the class council (``council``) or without a
  decision counts as not passed; a pupil whose cycle is unknown passes with a decision that is a
  pass in any cycle;
- an exam candidate is one row per (school, year, pupil, exam) of ``exam_results``, taken after
  the make-up session when he sat it; he passed when its ``result`` is ``passed``; the exam's
  mean is the mean of the candidates' final averages on the exam's own scale (/10 for the
  sixth-year primary exam);
- every annual average is put on the /20 scale before it is averaged or binned (a primary /10
  average is doubled), so schools of every cycle compare; the bins are 0-5, 5-10, 10-12, 12-14,
  14-16, 16-20 on /20, i.e. 0-2.5, 2.5-5, 5-6, 6-7, 7-8, 8-10 for a primary /10 average; a bin
  holds its lower bound, the last one also holds 20;
- the mark scale of a level comes from ``levels`` (``mark_scale``), else its cycle (primary
  /10, others /20);
- a pupil's cycle is its level's, else its school's; a sex or cycle not known is ``unknown``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from schemas.evaluation_rules import DECISIONS, EvaluationRules, load_rules
from schemas.reference_data import LEVELS, reference_frame

# (lower, upper, column) on the /20 scale; the last bin includes its upper bound.
BINS = (
    (0.0, 5.0, "bin_0_5"),
    (5.0, 10.0, "bin_5_10"),
    (10.0, 12.0, "bin_10_12"),
    (12.0, 14.0, "bin_12_14"),
    (14.0, 16.0, "bin_14_16"),
    (16.0, 20.0, "bin_16_20"),
)
UNKNOWN = "unknown"
PUPIL_KEY = ("school_code", "school_year", "student_code")

# Group keys of each table (school_year always first).
GROUPS: dict[str, tuple[str, ...]] = {
    "province": ("school_year",),
    "commune": ("school_year", "commune"),
    "school": ("school_year", "school_code"),
    "class": ("school_year", "school_code", "class_code", "level_code"),
    "sex": ("school_year", "sex"),
    "cycle": ("school_year", "cycle"),
    "cycle_sex": ("school_year", "cycle", "sex"),
}
COMPARED = ("province", "commune", "school", "cycle")
# Group keys of the exam tables (one row per exam in each).
EXAM_GROUPS: dict[str, tuple[str, ...]] = {
    "exam_province": ("school_year", "exam"),
    "exam_commune": ("school_year", "exam", "commune"),
    "exam_school": ("school_year", "exam", "school_code"),
}
EXAMS = ("primary_certificate", "college_certificate", "baccalaureate")


# ---- computation -------------------------------------------------------------------------------


def _column(frame: pl.DataFrame, name: str, dtype: Any) -> pl.Expr:
    if name in frame.columns:
        return pl.col(name).cast(dtype)
    return pl.lit(None, dtype).alias(name)


def _levels(levels: pl.DataFrame | None) -> pl.DataFrame:
    if levels is None:
        levels = reference_frame(LEVELS)
    if levels is None or "level_code" not in levels.columns:
        return pl.DataFrame(
            schema={"level_code": pl.Utf8, "level_cycle": pl.Utf8, "level_scale": pl.Float64}
        )
    return levels.select(
        pl.col("level_code").cast(pl.Utf8),
        _column(levels, "cycle", pl.Utf8).alias("level_cycle"),
        _column(levels, "mark_scale", pl.Float64).alias("level_scale"),
    ).unique("level_code", keep="first")


def _schools(schools: pl.DataFrame | None) -> pl.DataFrame:
    if schools is None or "school_code" not in schools.columns:
        schools = pl.DataFrame(schema={"school_code": pl.Utf8})
    return schools.select(
        pl.col("school_code").cast(pl.Utf8),
        _column(schools, "name_ar", pl.Utf8),
        _column(schools, "name_fr", pl.Utf8),
        _column(schools, "commune", pl.Utf8),
        _column(schools, "cycle", pl.Utf8).alias("school_cycle"),
    ).unique("school_code", keep="first")


def _on_20(average: pl.Expr) -> pl.Expr:
    return average * 20.0 / pl.col("scale")


def _passed(cycle: pl.Expr, decision: pl.Expr, rules: EvaluationRules) -> pl.Expr:
    """True when ``decision`` is a pass in the rules of ``cycle`` (any cycle's when unknown)."""
    passed = decision.is_in(list(rules.pass_decisions()))
    for name in sorted(rules.cycles, reverse=True):
        passed = (
            pl.when(cycle == name)
            .then(decision.is_in(list(rules.pass_decisions(name))))
            .otherwise(passed)
        )
    return passed.fill_null(False).alias("passed")


def pass_decisions(rules: EvaluationRules) -> pl.DataFrame:
    """The rules' pass definition, for the page: one row per cycle and decision counted."""
    rows = [(cycle, d) for cycle in rules.cycles for d in rules.pass_decisions(cycle)]
    return pl.DataFrame(rows, schema={"cycle": pl.Utf8, "decision": pl.Utf8}, orient="row")


def pupil_outcomes(
    annual_results: pl.DataFrame,
    semester_results: pl.DataFrame | None,
    students: pl.DataFrame | None,
    schools: pl.DataFrame | None,
    levels: pl.DataFrame | None,
    rules: EvaluationRules | None = None,
) -> pl.DataFrame:
    """One row per pupil: the group columns (year, commune, school, class, level, cycle, sex)
    and the outcomes (averages on /20, passed by the rules of its cycle, decision). Internal:
    it holds pupil codes."""
    rules = rules or load_rules()
    annual = annual_results.select(
        *(pl.col(c).cast(pl.Utf8) for c in PUPIL_KEY),
        _column(annual_results, "class_code", pl.Utf8),
        _column(annual_results, "level_code", pl.Utf8),
        _column(annual_results, "average", pl.Float64).fill_nan(None),
        _column(annual_results, "decision", pl.Utf8),
    ).unique(list(PUPIL_KEY), keep="first", maintain_order=True)

    if students is not None and "sex" in students.columns:
        sexes = students.select(
            *(pl.col(c).cast(pl.Utf8) for c in PUPIL_KEY), pl.col("sex").cast(pl.Utf8)
        ).unique(list(PUPIL_KEY), keep="first")
        annual = annual.join(sexes, on=list(PUPIL_KEY), how="left")
    else:
        annual = annual.with_columns(pl.lit(None, pl.Utf8).alias("sex"))

    semester = pl.DataFrame(schema={**{c: pl.Utf8 for c in PUPIL_KEY}, "s1": pl.Float64})
    semester = semester.with_columns(pl.lit(None, pl.Float64).alias("s2"))
    if semester_results is not None and semester_results.height:
        rows = semester_results.select(
            *(pl.col(c).cast(pl.Utf8) for c in PUPIL_KEY),
            pl.col("semester").cast(pl.Int8),
            pl.col("average").cast(pl.Float64).fill_nan(None),
        )
        semester = rows.group_by(list(PUPIL_KEY)).agg(
            pl.col("average").filter(pl.col("semester") == 1).first().alias("s1"),
            pl.col("average").filter(pl.col("semester") == 2).first().alias("s2"),
        )
    annual = annual.join(semester, on=list(PUPIL_KEY), how="left")

    base = annual.join(_levels(levels), on="level_code", how="left").join(
        _schools(schools), on="school_code", how="left"
    )
    cycle = pl.coalesce(pl.col("level_cycle"), pl.col("school_cycle"))
    return (
        base.with_columns(
            cycle.fill_null(UNKNOWN).alias("cycle"),
            pl.coalesce(
                pl.col("level_scale"),
                pl.when(cycle == "primary").then(pl.lit(10.0)).otherwise(pl.lit(20.0)),
            ).alias("scale"),
            pl.col("sex").fill_null(UNKNOWN),
            pl.col("commune").fill_null(UNKNOWN),
        )
        .with_columns(
            _on_20(pl.col("average")).alias("average_20"),
            _on_20(pl.col("s1")).alias("s1_20"),
            _on_20(pl.col("s2")).alias("s2_20"),
            _passed(pl.col("cycle"), pl.col("decision"), rules),
        )
        .drop("level_cycle", "level_scale", "school_cycle")
    )


def _measures() -> list[pl.Expr]:
    average = pl.col("average_20")
    bins = []
    for index, (low, high, name) in enumerate(BINS):
        upper = average <= high if index == len(BINS) - 1 else average < high
        bins.append(((average >= low) & upper).sum().cast(pl.Int64).alias(name))
    return [
        pl.len().cast(pl.Int64).alias("pupils"),
        (pl.col("sex") == "F").sum().cast(pl.Int64).alias("girls"),
        (pl.col("sex") == "M").sum().cast(pl.Int64).alias("boys"),
        pl.col("passed").sum().cast(pl.Int64).alias("passed"),
        (pl.col("passed").sum() / pl.len()).cast(pl.Float64).alias("pass_rate"),
        average.mean().alias("mean_average"),
        pl.col("s1_20").mean().alias("mean_semester_1"),
        pl.col("s2_20").mean().alias("mean_semester_2"),
        *(
            (pl.col("decision") == decision).sum().cast(pl.Int64).alias(decision)
            for decision in DECISIONS
        ),
        pl.col("decision").is_null().sum().cast(pl.Int64).alias("no_decision"),
        *bins,
    ]


def _aggregate(pupils: pl.DataFrame, name: str) -> pl.DataFrame:
    keys = list(GROUPS[name])
    table = pupils.group_by(keys).agg(_measures()).sort(keys, nulls_last=True)
    if name == "school":
        info = pupils.group_by("school_code").agg(
            pl.col("name_ar").first(),
            pl.col("name_fr").first(),
            pl.col("commune").first(),
            pl.col("cycle").mode().sort().first().alias("cycle"),
        )
        table = table.join(info, on="school_code", how="left").select(
            "school_year", "school_code", "name_ar", "name_fr", "commune", "cycle",
            pl.exclude("school_year", "school_code", "name_ar", "name_fr", "commune", "cycle"),
        )  # fmt: skip
    if name == "class":
        info = pupils.group_by("school_code", "class_code").agg(pl.col("cycle").first())
        table = table.join(info, on=["school_code", "class_code"], how="left", nulls_equal=True)
    return table


def _distribution(pupils: pl.DataFrame) -> pl.DataFrame:
    """Long table: per year and cycle (and ``all``), the pupils in each bin and their share."""
    rows: list[dict[str, Any]] = []
    scopes = [("all", pupils)] + [
        (cycle, pupils.filter(pl.col("cycle") == cycle))
        for cycle in sorted(pupils.get_column("cycle").unique().to_list())
    ]
    years = sorted(pupils.get_column("school_year").drop_nulls().unique().to_list())
    for year in years:
        for scope, frame in scopes:
            frame = frame.filter(pl.col("school_year") == year)
            averages = frame.get_column("average_20").drop_nulls()
            total = averages.len()
            for index, (low, high, name) in enumerate(BINS):
                inside = averages >= low
                inside &= averages <= high if index == len(BINS) - 1 else averages < high
                count = int(inside.sum())
                rows.append(
                    {
                        "school_year": year,
                        "cycle": scope,
                        "bin": name,
                        "range_20": f"{low:g}-{high:g}",
                        "range_10": f"{low / 2:g}-{high / 2:g}",
                        "pupils": count,
                        "share": count / total if total else None,
                    }
                )
    schema = {
        "school_year": pl.Utf8,
        "cycle": pl.Utf8,
        "bin": pl.Utf8,
        "range_20": pl.Utf8,
        "range_10": pl.Utf8,
        "pupils": pl.Int64,
        "share": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


def _compare(
    current: pl.DataFrame, before: pl.DataFrame, keys: Sequence[str], measures: Sequence[str]
) -> pl.DataFrame:
    """``current`` with each measure's last-year value and change, matched on ``keys``."""
    last = before.select(*keys, *(pl.col(m).alias(f"{m}_previous") for m in measures))
    if keys:
        joined = current.join(last, on=list(keys), how="left", nulls_equal=True)
    else:
        joined = current.join(last.head(1), how="cross")
    return joined.with_columns(
        (pl.col(m) - pl.col(f"{m}_previous")).alias(f"{m}_change") for m in measures
    )


def _latest_year(frame: pl.DataFrame) -> pl.DataFrame:
    if "school_year" in frame.columns and frame.height:
        latest = frame.get_column("school_year").drop_nulls().max()
        return frame.filter(pl.col("school_year") == latest)
    return frame


# ---- exams -------------------------------------------------------------------------------------


def exam_outcomes(
    exam_results: pl.DataFrame, schools: pl.DataFrame | None, rules: EvaluationRules
) -> pl.DataFrame:
    """One row per candidate and exam, after the make-up session when he sat it: school,
    commune, exam, result, final average and the exam's scale. Internal: it holds pupil codes."""
    key = ["school_code", "school_year", "student_code", "exam"]
    frame = exam_results.select(
        *(pl.col(c).cast(pl.Utf8) for c in key),
        _column(exam_results, "session", pl.Utf8),
        _column(exam_results, "result", pl.Utf8),
        _column(exam_results, "final_average", pl.Float64).fill_nan(None),
    )
    scales = pl.DataFrame(
        {
            "exam": list(rules.exams()),
            "scale": [float(exam.scale) for exam in rules.exams().values()],
        },
        schema={"exam": pl.Utf8, "scale": pl.Float64},
    )
    final = (
        frame.with_columns((pl.col("session") == "makeup").fill_null(False).alias("makeup"))
        .sort([*key, "makeup"])
        .group_by(key, maintain_order=True)
        .agg(
            pl.col("result").last(),
            pl.col("final_average").last(),
            pl.col("makeup").any().alias("sat_makeup"),
        )
    )
    return (
        final.join(scales, on="exam", how="left")
        .join(_schools(schools), on="school_code", how="left")
        .with_columns(pl.col("commune").fill_null(UNKNOWN))
        .drop("school_cycle")
    )


def _exam_measures() -> list[pl.Expr]:
    result = pl.col("result")
    passed = (result == "passed").fill_null(False)
    return [
        pl.len().cast(pl.Int64).alias("candidates"),
        passed.sum().cast(pl.Int64).alias("passed"),
        (passed.sum() / pl.len()).cast(pl.Float64).alias("pass_rate"),
        (passed & pl.col("sat_makeup")).sum().cast(pl.Int64).alias("passed_after_makeup"),
        (result == "makeup").sum().cast(pl.Int64).alias("awaiting_makeup"),
        (result == "failed").sum().cast(pl.Int64).alias("failed"),
        result.is_null().sum().cast(pl.Int64).alias("no_result"),
        pl.col("final_average").mean().alias("mean_final"),
        pl.col("scale").first().alias("scale"),
    ]


def _exam_aggregate(candidates: pl.DataFrame, name: str) -> pl.DataFrame:
    keys = list(EXAM_GROUPS[name])
    table = candidates.group_by(keys).agg(_exam_measures())
    if name == "exam_school":
        info = candidates.group_by("school_code").agg(
            pl.col("name_ar").first(), pl.col("name_fr").first(), pl.col("commune").first()
        )
        table = table.join(info, on="school_code", how="left")
    order = {exam: index for index, exam in enumerate(EXAMS)}
    return (
        table.with_columns(
            pl.col("exam")
            .replace_strict(order, default=len(EXAMS), return_dtype=pl.Int32)
            .alias("_order")
        )
        .sort(["school_year", "_order", *keys[2:]], nulls_last=True)
        .drop("_order")
    )


def exam_statistics(
    exam_results: pl.DataFrame,
    schools: pl.DataFrame | None,
    rules: EvaluationRules,
    previous: pl.DataFrame | None = None,
) -> dict[str, pl.DataFrame]:
    """Per exam: ``exam_province``, ``exam_commune`` and ``exam_school`` with candidates,
    passed, pass_rate (0-1), passed_after_makeup, awaiting_makeup, failed, no_result,
    mean_final (on the exam's scale) and scale; given last year's ``exam_results`` (its latest
    year is used), pass_rate and mean_final gain ``_previous`` and ``_change``."""
    candidates = exam_outcomes(exam_results, schools, rules)
    stats = {name: _exam_aggregate(candidates, name) for name in EXAM_GROUPS}
    if previous is not None and previous.height:
        last = exam_outcomes(_latest_year(previous), schools, rules)
        for name in EXAM_GROUPS:
            keys = [k for k in EXAM_GROUPS[name] if k != "school_year"]
            before = _exam_aggregate(last, name)
            stats[name] = _compare(stats[name], before, keys, ("pass_rate", "mean_final"))
    return stats


def school_list_coverage(
    annual_results: pl.DataFrame, schools: pl.DataFrame | None
) -> dict[str, pl.DataFrame]:
    """``schools_listed`` (one row: how many schools the directorate's list holds) and
    ``unlisted_schools`` (the codes of schools with results that the list lacks: shown with
    no name, commune or cycle until the list is imported)."""
    listed = _schools(schools).get_column("school_code")
    with_results = annual_results.get_column("school_code").cast(pl.Utf8).unique().sort()
    return {
        "schools_listed": pl.DataFrame({"schools": [listed.len()]}, schema={"schools": pl.Int64}),
        "unlisted_schools": pl.DataFrame(
            {"school_code": with_results.filter(~with_results.is_in(listed.implode()))}
        ),
    }


def compute_statistics(
    annual_results: pl.DataFrame,
    semester_results: pl.DataFrame | None,
    students: pl.DataFrame | None,
    schools: pl.DataFrame | None,
    levels: pl.DataFrame | None,
    previous: pl.DataFrame | Mapping[str, pl.DataFrame] | None = None,
    *,
    rules: EvaluationRules | None = None,
    exam_results: pl.DataFrame | None = None,
    previous_exam_results: pl.DataFrame | None = None,
) -> dict[str, pl.DataFrame]:
    """The year's statistics, one frame per name of ``GROUPS`` (province, commune, school,
    class, sex, cycle, cycle_sex) plus ``distribution`` (long: year, cycle, bin, pupils, share)
    and ``pass_decisions`` (cycle, decision: what the rules count as a pass), and what
    :func:`school_list_coverage` says of the directorate's list of schools.

    Each grouped frame holds: pupils, girls, boys, passed, pass_rate (0-1), mean_average and
    mean_semester_1/2 (on /20), one count per decision and ``no_decision``, and the six bin
    counts. ``previous`` is last year's ``annual_results`` (or last year's statistics): the
    province, commune, school and cycle frames then gain pass_rate_previous, pass_rate_change,
    mean_average_previous and mean_average_change (matched on commune / school / cycle).
    ``rules`` are the evaluation rules (default: schemas/evaluation). With ``exam_results``
    (and last year's in ``previous_exam_results``) the frames of :func:`exam_statistics` are
    added. No frame holds a pupil's code or name."""
    rules = rules or load_rules()
    pupils = pupil_outcomes(annual_results, semester_results, students, schools, levels, rules)
    stats = {name: _aggregate(pupils, name) for name in GROUPS}
    stats["distribution"] = _distribution(pupils)
    stats["pass_decisions"] = pass_decisions(rules)
    stats.update(school_list_coverage(annual_results, schools))
    if previous is not None:
        if isinstance(previous, pl.DataFrame):
            last = pupil_outcomes(_latest_year(previous), None, None, schools, levels, rules)
            before = {name: _aggregate(last, name) for name in COMPARED}
        else:
            before = {name: previous[name] for name in COMPARED if name in previous}
        for name, frame in before.items():
            keys = [k for k in GROUPS[name] if k != "school_year"]
            stats[name] = _compare(stats[name], frame, keys, ("pass_rate", "mean_average"))
    if exam_results is not None and exam_results.height:
        stats.update(exam_statistics(exam_results, schools, rules, previous_exam_results))
    return stats


def headline_table(stats: Mapping[str, pl.DataFrame]) -> list[dict[str, Any]]:
    """Rows for a Prefect table artifact: the province, then each school (pupils, pass rate in
    percent, mean /20, change in pass rate in points when last year is known)."""

    def row(scope: str, record: Mapping[str, Any]) -> dict[str, Any]:
        change = record.get("pass_rate_change")
        rate = record.get("pass_rate")
        mean = record.get("mean_average")
        return {
            "scope": scope,
            "school_year": record.get("school_year"),
            "school_code": record.get("school_code", ""),
            "school": record.get("name_fr") or record.get("name_ar") or "",
            "pupils": record.get("pupils"),
            "pass_rate_pct": None if rate is None else round(100 * rate, 1),
            "mean_average_20": None if mean is None else round(mean, 2),
            "pass_rate_change_pts": None if change is None else round(100 * change, 1),
        }

    rows = [row("province", r) for r in stats["province"].iter_rows(named=True)]
    rows += [row("school", r) for r in stats["school"].iter_rows(named=True)]
    return rows

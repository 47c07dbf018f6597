"""What the published warehouse allows to evaluate, and what it holds back and why.

    evaluable(frames, levels, year=None) -> Evaluable

The evaluation counts a pupil's marks where his enrolment is active: in the school and year of
an accepted student list that holds him. Marks without one are not lost: they stay in the
warehouse and are evaluated the first night a list holds the pupil, without the school sending
them again. Everything held back is counted per school year, school and level with its reason
(``skipped``: counts and codes only, never a pupil), and the officers read it as sentences
(``skipped_sentences``) in the run's log, its artifact and ``massar status``.

Plain polars over whole tables (no per-row Python): a join against the active enrolments and a
membership test on the level codes; the held rows, usually few, are then grouped by reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl

# Why marks are held back (the ``reason`` column of ``skipped``).
NO_WAREHOUSE = "no_warehouse"  # no consolidated night yet
NO_MARKS = "no_marks"  # the warehouse holds no marks at all
YEAR_ABSENT = "year_absent"  # the year asked for has no marks
NO_YEAR = "no_year"  # marks whose school year is unknown
NO_LIST = "no_list"  # the school has no accepted student list for the year
NOT_ON_LIST = "not_on_list"  # the school's list does not hold the pupil (X014)
ENROLLED_ELSEWHERE = "enrolled_elsewhere"  # a later list of another school holds him (X012)
NO_RULES = "no_rules"  # the level has no evaluation rules
SCHOOL_WITHOUT_MARKS = "school_without_marks"  # a list but no marks yet

SKIPPED_SCHEMA: dict[str, Any] = {
    "school_year": pl.Utf8,
    "school_code": pl.Utf8,
    "level_code": pl.Utf8,
    "dataset": pl.Utf8,
    "reason": pl.Utf8,
    "marks": pl.Int64,
    "pupils": pl.Int64,
    "detail": pl.Utf8,
}
ENROLMENT_KEYS = ["school_code", "school_year", "student_code"]
# Active enrolments in other schools (school_year, student_code), or how to read those of the
# pupils whose codes are given: see _split_enrolled.
Elsewhere = pl.DataFrame | Callable[[pl.Series], pl.DataFrame] | None
# The inputs restricted to the years evaluated; any other table passes through.
YEAR_TABLES = ("marks", "exam_marks", "students", "enrollments")
EARLIER_EXAM_MARKS = "earlier_exam_marks"  # exam marks of the years before those evaluated


@dataclass
class Evaluable:
    """The inputs of the evaluation restricted to what can be evaluated, the school years they
    cover (``years``), what was held back (``SKIPPED_SCHEMA``), and the school years and
    schools whose marks were looked at, evaluated or held (``looked_at``, ``schools``: their
    results of those years are replaced)."""

    inputs: dict[str, pl.DataFrame]
    years: list[str]
    skipped: pl.DataFrame
    looked_at: list[str] = field(default_factory=list)
    schools: list[str] = field(default_factory=list)


def _skip(reason: str, year: str | None = None, **counts: Any) -> dict[str, Any]:
    row = dict.fromkeys(SKIPPED_SCHEMA)
    row.update(reason=reason, school_year=year, marks=0, pupils=0, **counts)
    return row


def _rows(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=SKIPPED_SCHEMA, orient="row")


def _counted(held: pl.DataFrame, dataset: str, by: list[str]) -> pl.DataFrame:
    """Held rows counted per ``by`` (+ reason): rows and distinct pupils."""
    out = held.group_by([*by, "reason"]).agg(
        pl.len().cast(pl.Int64).alias("marks"),
        pl.col("student_code").n_unique().cast(pl.Int64).alias("pupils"),
    )
    out = out.with_columns(pl.lit(dataset).alias("dataset"))
    return out.select(
        pl.col(name).cast(dtype) if name in out.columns else pl.lit(None, dtype).alias(name)
        for name, dtype in SKIPPED_SCHEMA.items()
    ).sort(by)


def _active(frames: Mapping[str, pl.DataFrame]) -> pl.DataFrame:
    enrollments = frames.get("enrollments")
    if enrollments is None or enrollments.height == 0:
        return pl.DataFrame(schema=dict.fromkeys(ENROLMENT_KEYS, pl.Utf8))
    return enrollments.filter(pl.col("status") == "active").select(ENROLMENT_KEYS).unique()


def _split_enrolled(
    frame: pl.DataFrame,
    active: pl.DataFrame,
    dataset: str,
    listed: pl.DataFrame | None = None,
    elsewhere: Elsewhere = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(rows whose pupil is actively enrolled in that school and year, the others counted per
    school year and school with their reason). ``active`` holds at least the enrolments of the
    rows' schools; ``listed`` (school_code, school_year: the lists accepted) and ``elsewhere``
    (school_year, student_code: active enrolments in other schools, or a function giving those
    of the held pupils' codes) default to what ``active`` says, for a caller that holds only
    part of the enrolments."""
    # the pupils first (a pupil's rows come in runs), then only their rows that are held
    missing = _distinct(frame, ENROLMENT_KEYS).join(active, on=ENROLMENT_KEYS, how="anti")
    if not missing.height:
        return frame, _rows([])
    if callable(elsewhere):
        elsewhere = elsewhere(missing.get_column("student_code").unique())
    kept = frame.join(
        missing, on=ENROLMENT_KEYS, how="anti", nulls_equal=True, maintain_order="left"
    )
    held = frame.join(
        missing, on=ENROLMENT_KEYS, how="semi", nulls_equal=True, maintain_order="left"
    ).select(ENROLMENT_KEYS)
    held = held_reasons(held, active, active if listed is None else listed, elsewhere)
    return kept, _counted(held, dataset, ["school_year", "school_code"])


def held_reasons(
    held: pl.DataFrame,
    active: pl.DataFrame,
    listed: pl.DataFrame,
    elsewhere: pl.DataFrame | None,
) -> pl.DataFrame:
    """``held`` (rows of pupils not actively enrolled in their school and year) with the column
    ``reason``: the school has no accepted list for that year (NO_LIST), the pupil is actively
    enrolled in another school (ENROLLED_ELSEWHERE), or not on the school's list (NOT_ON_LIST).
    ``listed``: (school_code, school_year) of the lists accepted; ``elsewhere``: (school_year,
    student_code) of active enrolments beyond ``active``'s."""
    lists = (
        listed.select("school_code", "school_year")
        .unique()
        .with_columns(pl.lit(True).alias("_listed"))
    )
    enrolled = (
        pl.concat([active.select("school_year", "student_code"), *_present(elsewhere)])
        .unique()
        .with_columns(pl.lit(True).alias("_elsewhere"))
    )
    return (
        held.join(lists, on=["school_code", "school_year"], how="left")
        .join(enrolled, on=["school_year", "student_code"], how="left")
        .with_columns(
            pl.when(pl.col("_listed").is_null())
            .then(pl.lit(NO_LIST))
            .when(pl.col("_elsewhere").is_not_null())
            .then(pl.lit(ENROLLED_ELSEWHERE))
            .otherwise(pl.lit(NOT_ON_LIST))
            .alias("reason")
        )
    )


def _present(frame: pl.DataFrame | None) -> list[pl.DataFrame]:
    if frame is None:
        return []
    return [frame.select(pl.col("school_year", "student_code").cast(pl.Utf8))]


def _distinct(frame: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """The distinct values of ``keys``, by polars' lazy engine: a table read from the warehouse
    comes in hundreds of chunks (a province's marks: ~490 a column), over which an eager pass
    is slow (comparing each row with the one before: 0.3-0.6 s of CPU over 3.5 M marks, the
    same rows made one chunk first 0.2-0.4 s more; the lazy engine 0.04-0.17 s)."""
    return frame.lazy().select(keys).unique().collect()


def _in_years(frame: pl.DataFrame | None, years: list[str]) -> pl.DataFrame | None:
    if frame is None or "school_year" not in frame.columns:
        return frame
    return frame.filter(pl.col("school_year").is_in(years))


def evaluable(
    frames: Mapping[str, pl.DataFrame],
    levels: Iterable[str],
    year: str | None = None,
    *,
    years_present: list[str] | None = None,
    elsewhere: Elsewhere = None,
    marks_kept: bool = False,
) -> Evaluable:
    """Restrict the published tables ``frames`` (marks, exam_marks, students, enrollments with
    every status, schools, history: earlier annual results) to what can be evaluated.

    The school years are those of the marks (``year``: that one only); within them, a mark
    counts when its pupil's enrolment in that school and year is active and its level has
    evaluation rules (``levels``: the level codes the rules know). Everything else is counted
    in ``skipped`` with its reason; a school with a list but no marks is named too.

    A caller that evaluates the warehouse school batch by school batch
    (tasks/evaluation_batches.py) gives the frames of a batch of schools, the school years of
    the whole warehouse's marks (``years_present``, which also means that ``year`` was found
    there) and the active enrolments of the batch's pupils in other schools (``elsewhere``:
    school_year, student_code; or how to read those of the held pupils).

    ``marks_kept``: the caller knows that no mark of these tables is held back (an evaluation
    of the same night held none: the reports' inputs, tasks/evaluation_steps.py), so the
    marks' enrolment and rules checks, passes over every mark (0.4-0.9 s of CPU for a
    province's 3.5 M), are left out; the result is the same.
    """
    if not frames:  # no night published yet
        return Evaluable({}, [], _rows([_skip(NO_WAREHOUSE)]))
    marks = frames.get("marks")
    active = _active(frames)
    skipped: list[pl.DataFrame] = []
    if marks is None or marks.height == 0:
        listed = active if year is None else active.filter(pl.col("school_year") == year)
        skipped.append(_rows([_skip(NO_MARKS, year)]))
        skipped.append(_schools_without_marks(listed, None))
        return Evaluable({}, [], pl.concat(skipped))

    if marks.get_column("school_year").null_count():
        unknown = marks.filter(pl.col("school_year").is_null()).with_columns(
            pl.lit(NO_YEAR).alias("reason")
        )
        skipped.append(_counted(unknown, "marks", ["school_year", "school_code"]))
    # (year, school) pairs with marks: one pass gives the years, the schools and, later, the
    # schools with a list but no marks
    pairs = _distinct(marks, ["school_year", "school_code"]).drop_nulls("school_year")
    present = years_present
    if present is None:
        present = pairs.get_column("school_year").unique().sort().to_list()
    if year is not None and year not in present:
        skipped.append(_rows([_skip(YEAR_ABSENT, year, detail=", ".join(present))]))
        return Evaluable({}, [], pl.concat(skipped))
    years = [year] if year is not None else present
    if year is not None or marks.get_column("school_year").null_count():
        marks = marks.filter(pl.col("school_year").is_in(years))
    pairs = pairs.filter(pl.col("school_year").is_in(years))
    schools = pairs.get_column("school_code").unique().sort().to_list()

    if not marks_kept:
        marks, held = _split_enrolled(marks, active, "marks", elsewhere=elsewhere)
        skipped.append(held)
        known = list(levels)
        has_rules = pl.col("level_code").is_in(known).fill_null(False)
        if not _distinct(marks, ["level_code"]).select(has_rules.all()).item():
            ruled = marks.select(has_rules).to_series()
            unruled = marks.filter(~ruled).with_columns(pl.lit(NO_RULES).alias("reason"))
            skipped.append(_counted(unruled, "marks", ["school_year", "school_code", "level_code"]))
            marks = marks.filter(ruled)

    inputs: dict[str, pl.DataFrame] = {"marks": marks}
    exam_marks = frames.get("exam_marks")
    if exam_marks is not None:
        inputs["exam_marks"], held = _split_enrolled(
            exam_marks.filter(pl.col("school_year").is_in(years)), active, "exam_marks"
        )
        skipped.append(held)
        # The baccalaureate's regional exam is taken the year before: a run of one year reads
        # the earlier years' papers (as a run of every year does), it does not evaluate them.
        earlier = exam_marks.filter(pl.col("school_year") < min(years))
        if earlier.height:
            inputs[EARLIER_EXAM_MARKS] = _split_enrolled(earlier, active, "exam_marks")[0]
    for table in ("students", "enrollments"):
        frame = _in_years(frames.get(table), years)
        if frame is not None:
            inputs[table] = frame
    if "enrollments" in inputs:
        inputs["enrollments"] = inputs["enrollments"].filter(pl.col("status") == "active")
    for table, frame in frames.items():  # schools, earlier results: not of the year
        if table not in YEAR_TABLES and not table.startswith("_"):
            inputs[table] = frame
    if marks_kept:  # every mark of the years kept: the years of their (year, school) pairs
        evaluated = pairs.get_column("school_year").unique().sort().to_list()
    else:
        evaluated = _distinct(marks, ["school_year"]).get_column("school_year").sort().to_list()
    skipped.append(_schools_without_marks(_in_years(active, years), pairs))
    return Evaluable(inputs, evaluated, pl.concat(skipped), years, schools)


def _schools_without_marks(
    active: pl.DataFrame | None, with_marks: pl.DataFrame | None
) -> pl.DataFrame:
    """Schools with an accepted list for a year but no marks for it (``with_marks``: the
    (school_year, school_code) pairs that have some), with the pupils listed."""
    if active is None or active.height == 0:
        return _rows([])
    lists = active.group_by("school_year", "school_code").agg(
        pl.col("student_code").n_unique().cast(pl.Int64).alias("pupils")
    )
    if with_marks is not None and with_marks.height:
        lists = lists.join(with_marks, on=["school_year", "school_code"], how="anti")
    return lists.with_columns(
        pl.lit(SCHOOL_WITHOUT_MARKS).alias("reason"),
        pl.lit("marks").alias("dataset"),
        pl.lit(0, pl.Int64).alias("marks"),
        pl.lit(None, pl.Utf8).alias("level_code"),
        pl.lit(None, pl.Utf8).alias("detail"),
    ).select(list(SKIPPED_SCHEMA))


# ---- sentences -----------------------------------------------------------------------------


def skipped_sentence(row: Mapping[str, Any]) -> str:
    """One sentence for an officer about one row of ``skipped`` (codes and counts only)."""
    reason, year, school = row["reason"], row["school_year"], row["school_code"]
    marks, pupils = row.get("marks") or 0, row.get("pupils") or 0
    noun = "exam mark(s)" if row.get("dataset") == "exam_marks" else "mark(s)"
    held = f"{marks} {noun} of {pupils} pupil(s)"
    where = f"School {school}, {year}" if year else f"School {school}"
    if reason == NO_WAREHOUSE:
        return "There is no consolidated warehouse yet: run 'massar nightly' first."
    if reason == NO_MARKS:
        return (
            "The warehouse holds no marks yet (no NotesCC file accepted)"
            + (f" for {year}" if year else "")
            + ": nothing to evaluate."
        )
    if reason == YEAR_ABSENT:
        return (
            f"The warehouse has no marks for the school year {year}; years with marks: "
            f"{row.get('detail') or 'none'}."
        )
    if reason == NO_YEAR:
        return (
            f"{where}: {held} not evaluated: their files did not say the school year; "
            "ask the school to export them again from Massar."
        )
    if reason == NO_LIST:
        return (
            f"{where}: {held} kept but not evaluated: the school has no accepted student list "
            f"for {year} yet (none sent, or rejected: its report says why); they will be "
            "evaluated the night one is accepted."
        )
    if reason == NOT_ON_LIST:
        return (
            f"{where}: {held} kept but not evaluated: these pupils are not on the school's "
            "accepted student list (queries X014); they will be evaluated once a list holds "
            "them."
        )
    if reason == ENROLLED_ELSEWHERE:
        return (
            f"{where}: {held} not evaluated here: a later student list of another school "
            "holds these pupils (X012); the schools should settle the transfer in Massar."
        )
    if reason == NO_RULES:
        level = row.get("level_code") or "unknown"
        return (
            f"{where}, level {level}: {held} not evaluated: the level has no evaluation rules "
            "(schemas/evaluation, levels.csv)."
        )
    if reason == SCHOOL_WITHOUT_MARKS:
        return (
            f"{where}: {pupils} pupil(s) listed but no marks accepted yet: nothing to "
            "evaluate there."
        )
    return f"{where}: {held} not evaluated ({reason})."


def skipped_sentences(skipped: pl.DataFrame) -> list[str]:
    return [skipped_sentence(row) for row in skipped.iter_rows(named=True)]


def outcome_sentence(years: list[str], pupils: int, schools: int, skipped: pl.DataFrame) -> str:
    """What the evaluation did, in one sentence."""
    held = skipped.filter(pl.col("reason") != SCHOOL_WITHOUT_MARKS)
    if years:
        text = f"Evaluation {', '.join(years)}: {pupils} pupil(s) of {schools} school(s) evaluated."
        if held.height:
            text += f" {held.height} part(s) held back, with their reasons."
        return text
    if skipped.filter(pl.col("reason").is_in([NO_WAREHOUSE, NO_MARKS, YEAR_ABSENT])).height:
        first = skipped.filter(pl.col("reason").is_in([NO_WAREHOUSE, NO_MARKS, YEAR_ABSENT]))
        sentence = skipped_sentence(first.row(0, named=True))
        return "Nothing could be evaluated: " + sentence[0].lower() + sentence[1:]
    waiting = held.get_column("school_code").drop_nulls().n_unique()
    return (
        f"Nothing could be evaluated: the marks of {waiting} school(s) are kept but none can "
        "be evaluated yet (reasons below); ingest and consolidation went through."
    )

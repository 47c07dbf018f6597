"""The e-service extract: what pupils and parents see online (Moutamadris), one file per school.

Per pupil and school year, exactly what the e-services show (DOMAIN.md §1):

- the continuous-assessment table: per subject × semester, the mark of each test with its
  justified-absence marker, the integrated activities, the subject average and coefficient;
- the exam table: one row per exam and session with its averages, result and mention;
- the semester averages with the class rank, the annual average with the decision and mention;
- the schooling history: year, school, level, average, result of the previous years.

Nothing else leaves: no names or birth dates, no guardian, no discipline, no social support, no
absence other than the per-test justified marker (DOMAIN.md §5). The record's shape is fixed by
the ``*_FIELDS`` tuples below; input frames may carry more columns, they are never read.

Files (``write_school_extracts``), under ``<folder>/<school_code>/``:

- ``eservices.jsonl``: UTF-8 JSON Lines, one object per pupil, sorted by year, class, pupil;
- ``manifest.json``: school code, years, counts, the sha256 and size of the JSONL file, and
  ``inputs_sha256``, the fingerprint of the inputs it was made from (a night rebuilds only the
  extracts whose inputs changed).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any

import polars as pl

from schemas.reference_data import reference_rows

EXTRACT_NAME = "eservices.jsonl"
MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1
# The changed schools' records are built SCHOOLS_PER_BUILD schools at a time, BUILDERS
# builds side by side (the machine's two cores; memory: a few builds' rows, not the province's).
SCHOOLS_PER_BUILD = 32
BUILDERS = 2

PUPIL_FIELDS = (
    "student_code",
    "school_code",
    "school_year",
    "class_code",
    "level_code",
    "level_ar",
    "level_fr",
    "mark_scale",
    "assessments",
    "exams",
    "semesters",
    "annual",
    "history",
)
ASSESSMENT_FIELDS = (
    "subject_code",
    "subject_ar",
    "subject_fr",
    "semester",
    "tests",
    "activities",
    "average",
    "coefficient",
    "status",
)
TEST_FIELDS = ("slot", "mark", "justified_absence")
ACTIVITIES_FIELDS = ("mark", "justified_absence")
EXAM_FIELDS = (
    "exam",
    "session",
    "cc_average",
    "local_average",
    "regional_average",
    "national_average",
    "final_average",
    "result",
    "mention",
)
SEMESTER_FIELDS = ("semester", "average", "rank", "class_size")
ANNUAL_FIELDS = ("average", "rank", "class_size", "decision", "mention")
HISTORY_FIELDS = ("school_year", "school_code", "level_code", "average", "result")

PUPIL_KEY = ("school_code", "school_year", "student_code")
LISTS = ("assessments", "exams", "semesters", "history")  # an empty list, never null
Records = Sequence[Mapping[str, Any]] | pl.DataFrame  # a school's records: dicts, or a frame
TEST_SLOTS = ("test1", "test2", "test3", "test4")
_SCHOOL_FOLDER = re.compile(r"^[A-Za-z0-9_-]+$")

# The columns read from each input (name → type); anything else in a frame is ignored.
_STUDENTS = {"school_code": pl.Utf8, "school_year": pl.Utf8, "student_code": pl.Utf8}
_MARKS = {
    **_STUDENTS,
    "class_code": pl.Utf8,
    "level_code": pl.Utf8,
    "subject_code": pl.Utf8,
    "semester": pl.Int8,
    "slot": pl.Utf8,
    "mark": pl.Float64,
    "absence": pl.Utf8,
    "mark_scale": pl.Float64,
}
_SUBJECT_RESULTS = {
    **_STUDENTS,
    "class_code": pl.Utf8,
    "level_code": pl.Utf8,
    "subject_code": pl.Utf8,
    "semester": pl.Int8,
    "average": pl.Float64,
    "coefficient": pl.Float64,
    "status": pl.Utf8,
}
_SEMESTER_RESULTS = {
    **_STUDENTS,
    "class_code": pl.Utf8,
    "level_code": pl.Utf8,
    "semester": pl.Int8,
    "average": pl.Float64,
    "rank": pl.Int32,
    "class_size": pl.Int32,
}
_ANNUAL_RESULTS = {
    **_STUDENTS,
    "class_code": pl.Utf8,
    "level_code": pl.Utf8,
    "average": pl.Float64,
    "rank": pl.Int32,
    "decision": pl.Utf8,
    "mention": pl.Utf8,
}
_EXAM_RESULTS = {
    **_STUDENTS,
    "class_code": pl.Utf8,
    "level_code": pl.Utf8,
    "exam": pl.Utf8,
    "session": pl.Utf8,
    "cc_average": pl.Float64,
    "local_average": pl.Float64,
    "regional_average": pl.Float64,
    "national_average": pl.Float64,
    "final_average": pl.Float64,
    "result": pl.Utf8,
    "mention": pl.Utf8,
}
_OPTIONAL = {
    "marks": {"class_code", "level_code", "absence", "mark_scale"},
    "subject_results": {"class_code", "level_code", "coefficient", "status"},
    "semester_results": {"class_code", "level_code", "rank", "class_size"},
    "annual_results": {"class_code", "level_code", "rank", "decision", "mention"},
    "exam_results": {
        "class_code",
        "level_code",
        "session",
        "cc_average",
        "local_average",
        "regional_average",
        "national_average",
        "mention",
    },
    "history": {"class_code", "rank", "decision", "mention"},
}


def _conform(frame: pl.DataFrame | None, columns: Mapping[str, Any], name: str) -> pl.DataFrame:
    """The frame reduced to ``columns`` with their types; an optional column it lacks is null,
    a required one raises. ``None``, or a frame without columns (a result table nothing
    could be computed for, e.g. no exam level in the province), is an empty frame."""
    if frame is None or frame.width == 0:
        return pl.DataFrame(schema=dict(columns))
    optional = _OPTIONAL.get(name, set())
    missing = [c for c in columns if c not in frame.columns and c not in optional]
    if missing:
        raise ValueError(f"{name} lacks columns {', '.join(missing)}")
    # NaN is no mark: JSON has no NaN, the e-services show a blank.
    return frame.select(
        [
            (pl.col(c).cast(t).fill_nan(None) if t == pl.Float64 else pl.col(c).cast(t))
            if c in frame.columns
            else pl.lit(None, t).alias(c)
            for c, t in columns.items()
        ]
    )


@cache
def _reference(name: str, key: str) -> dict[str, Mapping[str, str]]:
    return {row[key]: row for row in reference_rows(name) if row.get(key)}


def _labels(codes: pl.Expr, name: str, key: str, column: str) -> pl.Expr:
    table = {code: row.get(column) or None for code, row in _reference(name, key).items()}
    return codes.replace_strict(table, default=None, return_dtype=pl.Utf8)


def _mark_scale(level: pl.Expr) -> pl.Expr:
    scales = {
        code: float(row["mark_scale"])
        for code, row in _reference("levels.csv", "level_code").items()
        if row.get("mark_scale")
    }
    return level.replace_strict(scales, default=None, return_dtype=pl.Float64)


def _justified(absence: pl.Expr) -> pl.Expr:
    # Only the justified marker is shown; an unjustified or unknown absence shows as false.
    return (absence == "justified").fill_null(False)


ASSESSMENT_KEY = [*PUPIL_KEY, "subject_code", "semester"]


def _test_struct() -> pl.Expr:
    return pl.struct(
        pl.col("slot"), pl.col("mark"), _justified(pl.col("absence")).alias("justified_absence")
    )


def _activities_struct() -> pl.Expr:
    return pl.struct(pl.col("mark"), _justified(pl.col("absence")).alias("justified_absence"))


def _slots_by_key(marks: pl.DataFrame) -> pl.DataFrame:
    """Per pupil × subject × semester of ``marks`` (slots of the assessment table only), its
    tests sorted by slot and its first activities, grouped by the key's columns."""
    test = pl.col("slot") != "activities"
    return marks.group_by(ASSESSMENT_KEY).agg(
        _test_struct().filter(test).sort_by(pl.col("slot").filter(test)).alias("tests"),
        _activities_struct().filter(pl.col("slot") == "activities").first().alias("activities"),
    )


def _slots(marks: pl.DataFrame) -> pl.DataFrame:
    """:func:`_slots_by_key` of the assessment table's slots of ``marks``, the same rows.

    A NotesCC row holds one pupil's slots of a subject and semester, so the warehouse's marks
    come in runs of one key: the runs are grouped by their number (an integer; the tests
    sorted by run and slot in one sort) instead of hashing the key's five columns of every
    mark and sorting each group (a province's 3.5 M marks: ~2.5 -> ~0.9 s of CPU). When a key
    spans two runs, or a run repeats a slot (whose order is then the grouping's), the key's
    grouping is used."""
    marks = marks.filter(pl.col("slot").is_in([*TEST_SLOTS, "activities"]))
    starts = pl.any_horizontal(
        pl.col(name).ne_missing(pl.col(name).shift()) for name in ASSESSMENT_KEY
    ).fill_null(True)
    marks = marks.with_columns(starts.alias("_start")).with_columns(
        pl.col("_start").cum_sum().alias("_run")
    )
    runs = marks.select("_start", "_run", *ASSESSMENT_KEY).filter("_start").drop("_start")
    if runs.select(ASSESSMENT_KEY).is_duplicated().any():
        return _slots_by_key(marks.drop("_start", "_run"))
    slots = marks.select("_run", "slot", "mark", "absence")  # filtered without the key
    tests = slots.filter(pl.col("slot") != "activities").sort("_run", "slot", maintain_order=True)
    again = (pl.col("_run") == pl.col("_run").shift()) & (pl.col("slot") == pl.col("slot").shift())
    if tests.select(again.any()).item():
        return _slots_by_key(marks.drop("_start", "_run"))
    listed = tests.group_by("_run", maintain_order=True).agg(_test_struct().alias("tests"))
    activities = (
        slots.filter(pl.col("slot") == "activities")
        .filter(pl.col("_run").ne_missing(pl.col("_run").shift()))  # a run's first
        .select("_run", _activities_struct().alias("activities"))
    )
    # runs, listed and activities are in run order, a run at most once in each: when every
    # run has its tests (its activities), they are the runs' column as it stands, no join
    if listed.height == runs.height:
        runs = runs.with_columns(listed.get_column("tests"))
    else:
        runs = runs.join(listed, on="_run", how="left").with_columns(
            pl.col("tests").fill_null(pl.lit([], dtype=listed.schema["tests"]))
        )
    if activities.height == runs.height:
        runs = runs.with_columns(activities.get_column("activities"))
    else:
        runs = runs.join(activities, on="_run", how="left")
    return runs.drop("_run")


def _assessments(marks: pl.DataFrame, subject_results: pl.DataFrame) -> pl.DataFrame:
    """Per pupil, the list of subject × semester rows of the continuous-assessment table."""
    key = ASSESSMENT_KEY
    slots = _slots(marks)
    columns = [*key, "average", "coefficient", "status"]
    results = subject_results.select(columns).unique(key, keep="first", maintain_order=True)
    if results.height < subject_results.height:
        # a pupil's subject results at two levels (a defect): the first by level, then class,
        # as the placement takes them, not the first in the order they come in (DuckDB's)
        results = (
            subject_results.sort(_AT_TWO_LEVELS, nulls_last=True, maintain_order=True)
            .select(columns)
            .unique(key, keep="first", maintain_order=True)
        )
    rows = results.join(slots, on=key, how="full", coalesce=True, nulls_equal=True)
    rows = rows.with_columns(
        pl.col("tests").fill_null(pl.lit([], dtype=slots.schema["tests"])),
        _labels(pl.col("subject_code"), "subjects.csv", "subject_code", "name_ar").alias(
            "subject_ar"
        ),
        _labels(pl.col("subject_code"), "subjects.csv", "subject_code", "name_fr").alias(
            "subject_fr"
        ),
    )
    return rows.group_by(list(PUPIL_KEY)).agg(
        pl.struct(list(ASSESSMENT_FIELDS)).sort_by("semester", "subject_code").alias("assessments")
    )


# Ties of a pupil's rows at two levels (a defect) broken by level, then class: the same record
# whatever order the results come in.
_AT_TWO_LEVELS = ["level_code", "class_code"]


def _listed(frame: pl.DataFrame, fields: Sequence[str], order: Sequence[str], name: str):
    # a pupil's rows of one semester or exam at two levels (a defect) both listed, by level,
    # class, then their values: the same list whatever order they come in
    ties = [*_AT_TWO_LEVELS, *(f for f in fields if f not in order)]
    nulls_last = [False] * (len(PUPIL_KEY) + len(order)) + [True] * len(ties)
    return (
        frame.sort([*PUPIL_KEY, *order, *ties], nulls_last=nulls_last)
        .group_by(list(PUPIL_KEY), maintain_order=True)
        .agg(pl.struct(list(fields)).alias(name))
    )


def _history(history: pl.DataFrame, pupils: pl.DataFrame) -> pl.DataFrame:
    """Per pupil, the previous years' results (any school of the province), oldest first."""
    past = history.select(
        pl.col("student_code"),
        pl.col("school_year").alias("past_year"),
        pl.col("school_code").alias("past_school"),
        pl.col("level_code"),
        pl.col("average"),
        pl.col("decision").alias("result"),
    )
    joined = pupils.select(*PUPIL_KEY).join(past, on="student_code", how="inner")
    joined = joined.filter(pl.col("past_year") < pl.col("school_year")).sort(
        [*PUPIL_KEY, "past_year", "past_school"]
    )
    return joined.group_by(list(PUPIL_KEY), maintain_order=True).agg(
        pl.struct(
            pl.col("past_year").alias("school_year"),
            pl.col("past_school").alias("school_code"),
            pl.col("level_code"),
            pl.col("average"),
            pl.col("result"),
        ).alias("history")
    )


def extract_records(
    students: pl.DataFrame,
    marks: pl.DataFrame,
    subject_results: pl.DataFrame,
    semester_results: pl.DataFrame,
    annual_results: pl.DataFrame,
    exam_results: pl.DataFrame,
    history: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The e-service records, one row per pupil and school with the ``PUPIL_FIELDS`` (lists
    empty, never null), sorted by school, school year, class and pupil code.

    A pupil of a school and year is one on its list (``students``) or with a result there;
    every table is joined on (school_code, school_year, student_code), so a pupil enrolled in
    two schools appears in each with that school's results only. ``history`` holds earlier
    years' annual results (the ``annual_results`` columns, any school); a pupil's history is
    its rows of years before the record's year.
    """
    students = _conform(students, _STUDENTS, "students")
    marks = _conform(marks, _MARKS, "marks")
    subject_results = _conform(subject_results, _SUBJECT_RESULTS, "subject_results")
    semester_results = _conform(semester_results, _SEMESTER_RESULTS, "semester_results")
    annual_results = _conform(annual_results, _ANNUAL_RESULTS, "annual_results")
    exam_results = _conform(exam_results, _EXAM_RESULTS, "exam_results")
    history = _conform(history, _ANNUAL_RESULTS, "history")

    # A pupil's classes and levels in the marks (a few at most) with the highest scale of
    # each: one pass over the marks for the placement and the scale (in no order: the records
    # are sorted by their key at the end)
    marked = marks.group_by([*PUPIL_KEY, "class_code", "level_code"]).agg(
        pl.col("mark_scale").max().alias("_scale")
    )
    # Class and level: the annual result's, else a semester's, a subject's, an exam's, a mark's.
    placed = pl.concat(
        [
            frame.select(*PUPIL_KEY, "class_code", "level_code").with_columns(
                pl.lit(order, pl.Int8).alias("_order")
            )
            for order, frame in enumerate(
                (
                    annual_results,
                    semester_results,
                    # a pupil's subjects share his class: their distinct placements, so that
                    # the sort below takes ~50 k rows, not the province's 880 k subject results
                    # (0.5 -> 0.12 s of CPU)
                    subject_results.select(*PUPIL_KEY, "class_code", "level_code").unique(),
                    exam_results,
                    # the province's marks, sorted whole below, cost more than the rest of
                    # the placement
                    marked,
                )
            )
        ]
    )
    placement = (
        placed.filter(pl.col("class_code").is_not_null() | pl.col("level_code").is_not_null())
        # level and class break ties: the same placement whatever order the results come in
        .sort([*PUPIL_KEY, "_order", "level_code", "class_code"], nulls_last=True)
        .unique(list(PUPIL_KEY), keep="first", maintain_order=True)
        .drop("_order")
    )
    scales = marked.group_by(list(PUPIL_KEY)).agg(pl.col("_scale").max())
    pupils = (
        pl.concat([students.select(*PUPIL_KEY), placed.select(*PUPIL_KEY)])
        .drop_nulls(list(PUPIL_KEY))
        .unique(maintain_order=True)
        .join(placement, on=list(PUPIL_KEY), how="left")
        .with_columns(
            _labels(pl.col("level_code"), "levels.csv", "level_code", "label_ar").alias("level_ar"),
            _labels(pl.col("level_code"), "levels.csv", "level_code", "label_fr").alias("level_fr"),
        )
        .join(scales, on=list(PUPIL_KEY), how="left")
        # The level's scale (levels.csv), else the scale the marks were entered on.
        .with_columns(
            pl.coalesce(_mark_scale(pl.col("level_code")), pl.col("_scale")).alias("mark_scale")
        )
        .drop("_scale")
    )

    class_sizes = annual_results.group_by("school_code", "school_year", "class_code").agg(
        pl.len().cast(pl.Int32).alias("class_size")
    )
    annual = (
        # a pupil's annual results at two levels (a defect): the placement's, by the same order
        annual_results.sort([*PUPIL_KEY, "level_code", "class_code"], nulls_last=True)
        .unique(list(PUPIL_KEY), keep="first", maintain_order=True)
        .join(
            class_sizes,
            on=["school_code", "school_year", "class_code"],
            how="left",
            nulls_equal=True,
        )
        .select(*PUPIL_KEY, pl.struct(list(ANNUAL_FIELDS)).alias("annual"))
    )
    parts = (
        _assessments(marks, subject_results),
        _listed(exam_results, EXAM_FIELDS, ("exam", "session"), "exams"),
        _listed(semester_results, SEMESTER_FIELDS, ("semester",), "semesters"),
        annual,
        _history(history, pupils),
    )
    records = pupils
    for part in parts:
        records = records.join(part, on=list(PUPIL_KEY), how="left")
    records = records.sort("school_code", "school_year", "class_code", "student_code")
    return records.select(
        pl.col(name).fill_null(pl.lit([], dtype=records.schema[name])) if name in LISTS else name
        for name in PUPIL_FIELDS
    )


def build_extract(
    students: pl.DataFrame,
    marks: pl.DataFrame,
    subject_results: pl.DataFrame,
    semester_results: pl.DataFrame,
    annual_results: pl.DataFrame,
    exam_results: pl.DataFrame,
    history: pl.DataFrame | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Per school code, the e-service records of its pupils (:func:`extract_records` as
    JSON-ready dicts of the ``PUPIL_FIELDS``), sorted by school year, class and pupil code."""
    records = extract_records(
        students, marks, subject_results, semester_results, annual_results, exam_results, history
    )
    extracts: dict[str, list[dict[str, Any]]] = {}
    for row in records.iter_rows(named=True):
        extracts.setdefault(row["school_code"], []).append(row)
    return extracts


_CODE = (
    Path(__file__),
    *sorted((Path(__file__).parent.parent / "schemas" / "reference").glob("*.csv")),
)


def _code_digest() -> str:
    hasher = hashlib.sha256(str(FORMAT_VERSION).encode())
    for path in _CODE:
        hasher.update(path.read_bytes())
    return hasher.hexdigest()


def _per_school(frame: pl.DataFrame, school: str = "school_code") -> pl.DataFrame:
    """Per school, the count and the sum of the row hashes of ``frame`` (rows in any order)."""
    columns = [c for c in frame.columns if c != school]
    # the rows hashed as one column, then summed per school: the same sums, ~3x less CPU than
    # hashing inside the grouping (a province's marks: 0.43-0.74 -> 0.18-0.19 s)
    hashed = frame.select(school, pl.struct(columns).hash(seed=0).alias("h"))
    return hashed.group_by(school).agg(pl.len().alias("n"), pl.col("h").sum())


def _conformed(
    students: pl.DataFrame | None,
    marks: pl.DataFrame,
    subject_results: pl.DataFrame,
    semester_results: pl.DataFrame,
    annual_results: pl.DataFrame | None,
    exam_results: pl.DataFrame | None,
) -> dict[str, pl.DataFrame]:
    """The inputs of an extract reduced to the columns it reads (:func:`_conform`), by name."""
    return {
        "students": _conform(students, _STUDENTS, "students"),
        "marks": _conform(marks, _MARKS, "marks"),
        "subject_results": _conform(subject_results, _SUBJECT_RESULTS, "subject_results"),
        "semester_results": _conform(semester_results, _SEMESTER_RESULTS, "semester_results"),
        "annual_results": _conform(annual_results, _ANNUAL_RESULTS, "annual_results"),
        "exam_results": _conform(exam_results, _EXAM_RESULTS, "exam_results"),
    }


def extract_inputs(
    students: pl.DataFrame | None,
    marks: pl.DataFrame,
    subject_results: pl.DataFrame,
    semester_results: pl.DataFrame,
    annual_results: pl.DataFrame | None,
    exam_results: pl.DataFrame | None,
    history: pl.DataFrame | None = None,
) -> dict[str, str]:
    """Per school, the fingerprint of what its extract is made from: the columns the extract
    reads of the school's rows in every input, the history rows of its pupils (any school),
    and this module with the reference tables it labels with. Hashed column by column in
    polars (no record is built): the same inputs give the same extract."""
    frames = _conformed(
        students, marks, subject_results, semester_results, annual_results, exam_results
    )
    return _fingerprints(frames, _conform(history, _ANNUAL_RESULTS, "history"))


def _fingerprints(frames: Mapping[str, pl.DataFrame], history: pl.DataFrame) -> dict[str, str]:
    """:func:`extract_inputs` of the conformed inputs (:func:`_conformed`) and history."""
    frames = {**frames, "history": _histories(frames, history)}
    parts = [
        _per_school(frame, "_school" if name == "history" else "school_code")
        .rename({"_school": "school_code"} if name == "history" else {})
        .with_columns(pl.lit(name).alias("input"))
        for name, frame in frames.items()
    ]
    rows = (
        pl.concat(parts)
        .filter(pl.col("school_code").is_not_null())
        .sort("school_code", "input")
        .group_by("school_code", maintain_order=True)
        .agg(pl.col("input"), pl.col("n"), pl.col("h"))
    )
    code = _code_digest()
    return {
        school: hashlib.sha256(
            json.dumps([code, inputs, counts, hashes]).encode("utf-8")
        ).hexdigest()
        for school, inputs, counts, hashes in rows.iter_rows()
    }


def _histories(frames: Mapping[str, pl.DataFrame], history: pl.DataFrame) -> pl.DataFrame:
    """The rows :func:`_history` reads for the inputs' pupils: their results of years before
    the record's year (``_school``: the record's school). Only history rows of a year before
    the inputs' latest, and only pupils with such rows, can be read: on a province's first
    night the history holds this year's results only, and the marks' millions of pupil keys
    are not made distinct for nothing."""
    past = history.rename({"school_code": "past_school", "school_year": "past_year"})
    latest = pl.concat([frame.select(pl.col("school_year").max()) for frame in frames.values()])
    past = past.filter(pl.col("past_year") < latest.get_column("school_year").max())
    codes = past.get_column("student_code").unique().implode()
    pupils = pl.concat(
        [
            frame.select(PUPIL_KEY).filter(pl.col("student_code").is_in(codes))
            for frame in frames.values()
        ]
    ).unique()
    return (
        pupils.rename({"school_code": "_school"})
        .join(past, on="student_code", how="inner")
        .filter(pl.col("past_year") < pl.col("school_year"))
    )


def _made_of(target: Path) -> str | None:
    """The inputs fingerprint the school's extract on disk was made from (None: no extract)."""
    try:
        manifest = json.loads((target / MANIFEST_NAME).read_text(encoding="utf-8"))
        if not (target / EXTRACT_NAME).is_file():
            return None
        return str(manifest["inputs_sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def changed_extracts(
    folder: Path | str,
    students: pl.DataFrame | None,
    marks: pl.DataFrame,
    subject_results: pl.DataFrame,
    semester_results: pl.DataFrame,
    annual_results: pl.DataFrame | None,
    exam_results: pl.DataFrame | None,
    history: pl.DataFrame | None = None,
) -> tuple[dict[str, pl.DataFrame], dict[str, str]]:
    """The records (:func:`extract_records`, a frame per school) of the schools whose inputs
    differ from those their extract under ``folder`` was made from (or that have none), and
    every school's inputs fingerprint, for :func:`write_school_extracts`: a night builds only
    what changed."""
    frames = _conformed(
        students, marks, subject_results, semester_results, annual_results, exam_results
    )
    history = _conform(history, _ANNUAL_RESULTS, "history")
    made_of = _fingerprints(frames, history)
    changed = sorted(s for s, d in made_of.items() if _made_of(Path(folder) / s) != d)
    if not changed:
        return {}, made_of

    # a school's records depend on its own rows (and its pupils' history) only: built a few
    # schools at a time, side by side (polars' sorts and groupings of a few schools use both
    # cores better than one of the province's, for ~10 % less CPU)
    chunks = [changed[i : i + SCHOOLS_PER_BUILD] for i in range(0, len(changed), SCHOOLS_PER_BUILD)]
    built_in = {school: n for n, chunk in enumerate(chunks) for school in chunk}
    numbers = {
        name: frame.get_column("school_code").replace_strict(
            built_in, default=None, return_dtype=pl.Int32
        )
        for name, frame in frames.items()
    }

    def build(number: int) -> dict[str, pl.DataFrame]:
        # each input's rows of the chunk's schools, in their order (the marks' runs kept), as
        # one contiguous block: polars' groupings and shifts over the blocks of the night's
        # per-school reads cost ~1/3 more CPU, and a filter copies less than a gather
        part = {
            name: frame.filter(numbers[name] == number).rechunk() for name, frame in frames.items()
        }
        records = extract_records(**part, history=history)
        built = records.partition_by("school_code", as_dict=True, maintain_order=True)
        return {s: built.get((s,), records.clear()) for s in chunks[number]}

    extracts: dict[str, pl.DataFrame] = {}
    with ThreadPoolExecutor(max_workers=BUILDERS) as pool:
        for part in pool.map(build, range(len(chunks))):
            extracts.update(part)
    return extracts, made_of


def _write_atomic(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def _same_extract(target: Path, sha256: str, size: int, inputs: str | None = None) -> bool:
    """The school's extract on disk holds exactly these bytes (its manifest's sha256 and the
    file's size say so) and says it was made from ``inputs``: nothing to write, and its files
    keep their dates."""
    try:
        manifest = json.loads((target / MANIFEST_NAME).read_text(encoding="utf-8"))
        entry = manifest["files"][0]
        return (
            manifest.get("format_version") == FORMAT_VERSION
            and manifest.get("inputs_sha256") == inputs
            and entry["sha256"] == sha256
            and (target / EXTRACT_NAME).stat().st_size == size == entry["bytes"]
        )
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return False


def _json_lines(records: Records) -> bytes:
    """The records as UTF-8 JSON Lines (compact separators); a frame is serialised by polars
    itself (no Python object per mark: the province's extract took ~25 s of CPU that way)."""
    if isinstance(records, pl.DataFrame):
        if not records.height:
            return b""
        buffer = io.BytesIO()  # polars writes UTF-8 bytes: no str to encode again
        records.write_ndjson(buffer)
        return buffer.getvalue()
    return b"".join(
        json.dumps(record, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
        + b"\n"
        for record in records
    )


def _described(records: Records) -> tuple[set[Any], list[str], int, dict[str, int]]:
    """The schools, school years, pupils and manifest counts of ``records``."""
    if isinstance(records, pl.DataFrame):
        lengths = {name: int(records.get_column(name).list.len().sum()) for name in LISTS}
        return (
            set(records.get_column("school_code").unique().to_list()),
            sorted({str(y) for y in records.get_column("school_year").unique().to_list()}),
            records.height,
            {
                "pupils": records.height,
                "assessments": lengths["assessments"],
                "exams": lengths["exams"],
                "semesters": lengths["semesters"],
                "annual": records.height - records.get_column("annual").null_count(),
                "history": lengths["history"],
            },
        )
    return (
        {r.get("school_code") for r in records},
        sorted({str(r.get("school_year")) for r in records}),
        len(records),
        {
            "pupils": len(records),
            "assessments": sum(len(r.get("assessments") or []) for r in records),
            "exams": sum(len(r.get("exams") or []) for r in records),
            "semesters": sum(len(r.get("semesters") or []) for r in records),
            "annual": sum(1 for r in records if r.get("annual")),
            "history": sum(len(r.get("history") or []) for r in records),
        },
    )


def write_school_extracts(
    folder: Path | str,
    extracts: Mapping[str, Records],
    made_of: Mapping[str, str] | None = None,
) -> list[Path]:
    """Write each school's records (dicts, or a frame of :func:`extract_records`) to
    ``<folder>/<school_code>/eservices.jsonl`` and its ``manifest.json`` (sha256, size,
    counts, and ``inputs_sha256`` from ``made_of``: the fingerprint of its inputs,
    :func:`extract_inputs`); returns the files of every school, extract then manifest per
    school, schools in code order, those of ``made_of`` whose extract stands included. A
    school whose extract on disk already holds the same records is not rewritten, so its
    files keep their dates."""
    made_of = made_of or {}
    written: list[Path] = []
    for school_code in sorted(set(made_of) - set(extracts)):  # built from the same inputs
        target = Path(folder) / school_code
        written.extend([target / EXTRACT_NAME, target / MANIFEST_NAME])
    for school_code in extracts:  # every name checked before anything is written
        if not _SCHOOL_FOLDER.match(school_code):
            raise ValueError(f"school code {school_code!r} cannot name a folder")

    def write(school_code: str) -> list[Path]:
        return _write_school(Path(folder) / school_code, extracts[school_code], made_of)

    # serialising, hashing and writing release the GIL: two schools at a time
    with ThreadPoolExecutor(max_workers=BUILDERS) as pool:
        for paths in pool.map(write, sorted(extracts)):
            written.extend(paths)
    return written


def _write_school(target: Path, records: Records, made_of: Mapping[str, str]) -> list[Path]:
    """One school's extract and manifest under ``target`` (not rewritten when the same)."""
    school_code = target.name
    schools, years, count, counts = _described(records)
    if schools - {school_code}:
        raise ValueError(f"the extract of {school_code} holds records of other schools")
    target.mkdir(parents=True, exist_ok=True)
    data = _json_lines(records)
    extract = target / EXTRACT_NAME
    sha256 = hashlib.sha256(data).hexdigest()
    manifest_path = target / MANIFEST_NAME
    inputs = made_of.get(school_code)
    if _same_extract(target, sha256, len(data), inputs):
        return [extract, manifest_path]
    _write_atomic(extract, data)
    manifest = {
        "format": "massar-eservices",
        "format_version": FORMAT_VERSION,
        "school_code": school_code,
        "school_years": years,
        "inputs_sha256": inputs,
        "files": [{"name": EXTRACT_NAME, "sha256": sha256, "bytes": len(data), "records": count}],
        "counts": counts,
    }
    text = json.dumps(manifest, ensure_ascii=False, indent=2) + "\n"
    _write_atomic(manifest_path, text.encode("utf-8"))
    return [extract, manifest_path]

"""Cross-record rules of one school (X003-X011, X013, X014): each compares the school's
datasets with one another (its list of pupils, classes, rooms, marks, timetable, ...), over the
school's current picture (every accepted or quarantined row of its active submissions).

Each rule is a small function over the ``SchoolPicture`` and a declaration in ``SCHOOL_RULES``:
the datasets it needs (it does not run without them), the placeholders its findings fill. They
run in the order declared (the order of the findings). Declaring one: its row in
schemas/rules.csv, a function and a declaration below, a failing and a passing example in
tests/tasks/validation/test_school_rules.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import polars as pl

from schemas import datasets as ds
from schemas.rules import Rule, catalogue
from tasks.normalise import ensure_normalised, with_original_columns
from tasks.validation.declared import Retired, SchoolRule
from tasks.validation.findings import ColumnType, cross_select
from tasks.validation.levels import level_code_expr, levels, levels_info

# Weekday of a date (polars: Monday = 1 ... Sunday = 7) → the timetable's day label.
WEEKDAYS: tuple[str, ...] = ds.TIMETABLE.column("day").values  # Monday .. Saturday
CLASS_DATASETS = ("students", "marks", "timetable", "absences", "exam_marks")


@dataclass
class SchoolPicture:
    """One school's datasets, normalised with their original text beside (``frames``), each
    row with its ``submission_id`` (of ``submission_dtype``), and the levels reference."""

    frames: dict[str, pl.DataFrame]
    submission_dtype: ColumnType
    reference: Any = None
    rules: dict[str, Rule] = field(default_factory=catalogue)

    @classmethod
    def of(cls, frames: Mapping[str, pl.DataFrame], reference: Any = None) -> SchoolPicture:
        """The picture of read or normalised frames by dataset name (other names ignored)."""
        dtype: ColumnType = pl.Utf8
        known = {n: f for n, f in frames.items() if f is not None and n in ds.DATASETS}
        for frame in known.values():
            if "submission_id" in frame.columns and frame.schema["submission_id"] != pl.Null:
                dtype = frame.schema["submission_id"]
        prepared = {}
        for name, frame in known.items():
            frame = with_original_columns(name, ensure_normalised(name, frame))
            if "submission_id" not in frame.columns:
                frame = frame.with_columns(pl.lit(None, dtype).alias("submission_id"))
            prepared[name] = frame
        return cls(prepared, dtype, reference)

    def __getitem__(self, dataset: str) -> pl.DataFrame:
        return self.frames[dataset]

    def get(self, dataset: str) -> pl.DataFrame | None:
        return self.frames.get(dataset)

    def findings(
        self,
        dataset: str,
        rows: pl.DataFrame,
        column: str,
        rule_id: str,
        params: Mapping[str, Any],
    ) -> list[pl.DataFrame]:
        """The rule's findings at ``column`` of these rows of ``dataset`` (none without rows)."""
        if rows.height == 0:
            return []
        select = cross_select(dataset, column, rule_id, params, self.submission_dtype, self.rules)
        return [rows.select(select)]

    @cached_property
    def marked_off_list(self) -> pl.DataFrame:
        """The pupils' rows of the marks files whose (pupil, class) is not on the school's list,
        one per pupil's row of a file (not one per slot), with ``_listed``: the classes the
        list places the pupil in (null when the list does not hold him). X013 and X014."""
        listed = self["students"].select("student_code_key", "class_code_key")
        listed = listed.drop_nulls().unique()
        outside = (
            self["marks"]
            .filter(
                pl.col("student_code_key").is_not_null() & pl.col("class_code_key").is_not_null()
            )
            .join(
                listed, on=["student_code_key", "class_code_key"], how="anti", maintain_order="left"
            )
            .unique(
                subset=["submission_id", "sheet", "sheet_row"], keep="first", maintain_order=True
            )
        )
        if outside.height == 0:
            return outside.with_columns(pl.lit(None, pl.Utf8).alias("_listed"))
        classes_of = listed.group_by("student_code_key").agg(
            pl.col("class_code_key").sort().str.join(", ").alias("_listed")
        )
        return outside.join(classes_of, on="student_code_key", how="left", maintain_order="left")


def not_enrolled(frame: pl.DataFrame, students: pl.DataFrame) -> pl.DataFrame:
    """The rows of ``frame`` whose pupil is not on the school's list."""
    enrolled = students.select("student_code_key").drop_nulls().unique()
    return frame.filter(pl.col("student_code_key").is_not_null()).join(
        enrolled, on="student_code_key", how="anti", maintain_order="left"
    )


# ---- the rules -------------------------------------------------------------------------------
# Queries, not errors, for X013 and X014: the marks stay accepted and are evaluated wherever the
# pupil's enrolment is (genuine lists lag behind class changes; the list, not the marks, is
# usually behind).


def marked_pupil_in_another_class(picture: SchoolPicture) -> list[pl.DataFrame]:
    """X013: a marked pupil the school's list places in another class (named)."""
    rows = picture.marked_off_list.filter(pl.col("_listed").is_not_null())
    params = {
        "value": pl.col("student_code_key"),
        "class_code": pl.col("class_code_key"),
        "listed_class": pl.col("_listed"),
    }
    return picture.findings("marks", rows, "student_code", "X013", params)


def marked_pupil_not_listed(picture: SchoolPicture) -> list[pl.DataFrame]:
    """X014: a marked pupil the school's list does not hold."""
    rows = picture.marked_off_list.filter(pl.col("_listed").is_null())
    params = {"value": pl.col("student_code_key"), "class_code": pl.col("class_code_key")}
    return picture.findings("marks", rows, "student_code", "X014", params)


def code_in_two_classes(picture: SchoolPicture) -> list[pl.DataFrame]:
    """X003: one student code in two classes of the list (every row of it)."""
    placed = picture["students"].filter(
        pl.col("student_code_key").is_not_null() & pl.col("class_code_key").is_not_null()
    )
    classes_of = (
        placed.group_by("student_code_key")
        .agg(pl.col("class_code_key").unique(maintain_order=True).alias("_classes"))
        .filter(pl.col("_classes").list.len() > 1)
    )
    twice = placed.join(classes_of, on="student_code_key", maintain_order="left")
    other = pl.col("_classes").list.set_difference(pl.concat_list("class_code_key")).list.first()
    params = {
        "value": pl.col("student_code_key"),
        "class_code": pl.col("class_code_key"),
        "other_class": other,
    }
    return picture.findings("students", twice, "student_code", "X003", params)


def class_above_room_capacity(picture: SchoolPicture) -> list[pl.DataFrame]:
    """X004: a class with more pupils on the list than its room's capacity."""
    sizes = (
        picture["students"]
        .filter(pl.col("class_code_key").is_not_null())
        .group_by("class_code_key")
        .agg(pl.col("student_code_key").n_unique().alias("_size"))
    )
    capacity = (
        picture["rooms"]
        .filter(pl.col("room_code_key").is_not_null())
        .group_by("room_code_key")
        .agg(pl.col("capacity_value").max().alias("_capacity"))
    )
    crowded = (
        picture["classes"]
        .join(sizes, on="class_code_key", maintain_order="left")
        .join(capacity, on="room_code_key", maintain_order="left")
        .filter(pl.col("_size") > pl.col("_capacity"))
    )
    params = {
        "class_code": pl.col("class_code_key"),
        "size": pl.col("_size"),
        "room_code": pl.col("room_code_key"),
        "capacity": pl.col("_capacity"),
    }
    # the room assignment (or its capacity) is what to check
    return picture.findings("classes", crowded, "room_code", "X004", params)


def levels_with_ages(reference: Any) -> str | None:
    """Why X005 cannot run with this levels reference (None when it can)."""
    table = levels(reference)
    if table is None or not {"min_age", "max_age"} <= set(table.columns):
        return "no levels reference with min_age / max_age"
    return None


def age_implausible_for_level(picture: SchoolPicture) -> list[pl.DataFrame]:
    """X005: age on 31 December of the school year's first calendar year outside the level's
    min_age..max_age (levels.csv). Level: the classes file, else the level label, else the
    class code's prefix."""
    info = levels_info(picture.reference)
    table = info.table
    assert table is not None  # levels_with_ages said so
    bounds = table.select(
        pl.col("level_code").alias("_level"),
        pl.col("min_age").alias("_min"),
        pl.col("max_age").alias("_max"),
    ).unique(subset="_level")
    frame = picture["students"]
    level = level_code_expr(
        frame.drop("level_code_key", strict=False), table, (info.codes, info.labels)
    )
    classes = picture.get("classes")
    if classes is not None and "level_code_key" in classes.columns:
        class_levels = (
            classes.select("class_code_key", pl.col("level_code_key").alias("_class_level"))
            .drop_nulls()
            .unique(subset="class_code_key")
        )
        frame = frame.join(class_levels, on="class_code_key", how="left", maintain_order="left")
        level = pl.coalesce(pl.col("_class_level"), level)
    year = pl.col("school_year_key").str.slice(0, 4).cast(pl.Int32, strict=False)
    age = year - pl.col("birth_date_value").dt.year()
    odd = (
        frame.with_columns(level.alias("_level"), age.alias("_age"))
        .join(bounds, on="_level", maintain_order="left")
        .filter(
            pl.col("_age").is_not_null()
            & ((pl.col("_age") < pl.col("_min")) | (pl.col("_age") > pl.col("_max")))
        )
    )
    params = {
        "age": pl.col("_age"),
        "level_code": pl.col("_level"),
        "min_age": pl.col("_min"),
        "max_age": pl.col("_max"),
    }
    return picture.findings("students", odd, "birth_date", "X005", params)


def _booked_twice(picture: SchoolPicture, rule_id: str, who: str) -> list[pl.DataFrame]:
    """Every timetable row of a ``who`` (teacher, room) given two classes in one slot."""
    key = f"{who}_key"
    slot_keys = [key, "day_value", "slot_value"]
    rows = picture["timetable"].filter(
        pl.all_horizontal([pl.col(k).is_not_null() for k in slot_keys])
        & pl.col("class_code_key").is_not_null()
    )
    clashes = (
        rows.group_by(slot_keys)
        .agg(pl.col("class_code_key").unique().sort().alias("_classes"))
        .filter(pl.col("_classes").list.len() > 1)
    )
    involved = rows.join(clashes, on=slot_keys, maintain_order="left")
    params = {
        "value": pl.col(key),
        "day": pl.col("day_value"),
        "slot": pl.col("slot_value"),
        "classes": pl.col("_classes").list.join(", "),
    }
    return picture.findings("timetable", involved, who, rule_id, params)


def teacher_in_two_places(picture: SchoolPicture) -> list[pl.DataFrame]:
    """X006: a teacher given two classes in the same day and slot."""
    return _booked_twice(picture, "X006", "teacher_code")


def room_used_twice(picture: SchoolPicture) -> list[pl.DataFrame]:
    """X007: a room given two classes in the same day and slot."""
    return _booked_twice(picture, "X007", "room_code")


def absence_without_lesson(picture: SchoolPicture) -> list[pl.DataFrame]:
    """X008: an absence on a day and slot the class has no lesson, judged only for classes
    with at least one lesson in the timetable."""
    lessons = (
        picture["timetable"].select("class_code_key", "day_value", "slot_value").drop_nulls()
    ).unique()
    timetabled = lessons.select("class_code_key").unique()
    day = (
        pl.col("date_value")
        .dt.weekday()
        .replace_strict(
            {i + 1: label for i, label in enumerate(WEEKDAYS)}, default=None, return_dtype=pl.Utf8
        )
    )
    candidates = (
        picture["absences"]
        .filter(
            pl.col("date_value").is_not_null()
            & pl.col("slot_value").is_not_null()
            & pl.col("class_code_key").is_not_null()
        )
        .join(timetabled, on="class_code_key", how="semi", maintain_order="left")
        .with_columns(day.alias("day_value"))
    )
    no_lesson = candidates.join(
        lessons,
        on=["class_code_key", "day_value", "slot_value"],
        how="anti",
        maintain_order="left",
        nulls_equal=False,
    )
    params = {
        "value": pl.col("date_value").dt.strftime("%d/%m/%Y"),
        "slot": pl.col("slot_value"),
        "class_code": pl.col("class_code_key"),
    }
    # the date is usually right; the slot is what is typed by hand
    return picture.findings("absences", no_lesson, "slot", "X008", params)


def beneficiary_not_enrolled(picture: SchoolPicture) -> list[pl.DataFrame]:
    """X009: a support beneficiary not on the school's list."""
    rows = not_enrolled(picture["support"], picture["students"])
    params = {
        "value": pl.col("student_code_key"),
        "programme": pl.coalesce(pl.col("programme_value"), pl.col("programme")),
    }
    return picture.findings("support", rows, "student_code", "X009", params)


def class_not_declared(picture: SchoolPicture) -> list[pl.DataFrame]:
    """X010: a class code (of the list, marks, timetable, ...) the classes file lacks."""
    declared = picture["classes"].select("class_code_key").drop_nulls().unique()
    found = []
    for name in CLASS_DATASETS:
        frame = picture.get(name)
        if frame is None:
            continue
        unknown = frame.filter(pl.col("class_code_key").is_not_null()).join(
            declared, on="class_code_key", how="anti", maintain_order="left"
        )
        found += picture.findings(
            name, unknown, "class_code", "X010", {"value": pl.col("class_code_key")}
        )
    return found


def pupil_not_enrolled(picture: SchoolPicture) -> list[pl.DataFrame]:
    """X011: a guardian or an exam mark of a pupil not on the school's list."""
    found = []
    for name in ("guardians", "exam_marks"):
        frame = picture.get(name)
        if frame is None:
            continue
        rows = not_enrolled(frame, picture["students"])
        found += picture.findings(
            name, rows, "student_code", "X011", {"value": pl.col("student_code_key")}
        )
    return found


SCHOOL_RULES: tuple[SchoolRule, ...] = (
    SchoolRule(
        rule_id="X013",
        placeholders=("value", "class_code", "listed_class"),
        needs=("marks", "students"),
        check=marked_pupil_in_another_class,
    ),
    SchoolRule(
        rule_id="X014",
        placeholders=("value", "class_code"),
        needs=("marks", "students"),
        check=marked_pupil_not_listed,
    ),
    SchoolRule(
        rule_id="X003",
        placeholders=("value", "class_code", "other_class"),
        needs=("students",),
        check=code_in_two_classes,
    ),
    SchoolRule(
        rule_id="X004",
        placeholders=("class_code", "size", "room_code", "capacity"),
        needs=("students", "classes", "rooms"),
        check=class_above_room_capacity,
    ),
    SchoolRule(
        rule_id="X005",
        placeholders=("age", "level_code", "min_age", "max_age"),
        needs=("students",),
        ready=levels_with_ages,
        check=age_implausible_for_level,
    ),
    SchoolRule(
        rule_id="X006",
        placeholders=("value", "day", "slot", "classes"),
        needs=("timetable",),
        check=teacher_in_two_places,
    ),
    SchoolRule(
        rule_id="X007",
        placeholders=("value", "day", "slot", "classes"),
        needs=("timetable",),
        check=room_used_twice,
    ),
    SchoolRule(
        rule_id="X008",
        placeholders=("value", "slot", "class_code"),
        needs=("absences", "timetable"),
        check=absence_without_lesson,
    ),
    SchoolRule(
        rule_id="X009",
        placeholders=("value", "programme"),
        needs=("support", "students"),
        check=beneficiary_not_enrolled,
    ),
    SchoolRule(
        rule_id="X010",
        placeholders=("value",),
        needs=("classes",),
        needs_one_of=CLASS_DATASETS,
        one_of_reason="no dataset with class codes",
        check=class_not_declared,
    ),
    SchoolRule(
        rule_id="X011",
        placeholders=("value",),
        needs=("students",),
        needs_one_of=("guardians", "exam_marks"),
        check=pupil_not_enrolled,
    ),
)

RETIRED: tuple[Retired, ...] = (
    Retired(
        rule_id="X001",
        reason="an error that quarantined the marks; replaced by the queries X013 and X014",
    ),
)

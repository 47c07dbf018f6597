"""Cross-record rules of the province: a pupil on the lists of two schools.

X002 is checked here, by the ingest after the schools (``cross_check_province``), over every
school's staged list. X012 and X015 are decided by the nightly consolidation, from the
warehouse's enrolments and the lists' own dates (tasks/consolidate.py): declared here so that a
newcomer finds them beside X002, with where they are raised.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import polars as pl

from schemas.rules import Rule, catalogue
from tasks.normalise import ensure_normalised, with_original_columns
from tasks.validation.declared import ProvinceRule, RaisedElsewhere
from tasks.validation.findings import CROSS_COLUMNS, ColumnType, cross_select, empty_findings


@dataclass
class ProvincePicture:
    """Every school's list of pupils in one frame (``_school``: the school's code), each row
    with its ``submission_id`` (of ``submission_dtype``)."""

    students: pl.DataFrame | None
    submission_dtype: ColumnType
    rules: dict[str, Rule] = field(default_factory=catalogue)

    @classmethod
    def of(cls, students_by_school: Mapping[str, pl.DataFrame]) -> ProvincePicture:
        sid: ColumnType = pl.Utf8
        for frame in students_by_school.values():
            if "submission_id" in frame.columns and frame.schema["submission_id"] != pl.Null:
                sid = frame.schema["submission_id"]
        keep = ["sheet", "sheet_row", "student_code", "student_code_key", "_school"]
        prepared = []
        for school, frame in students_by_school.items():
            frame = with_original_columns("students", ensure_normalised("students", frame))
            if "submission_id" not in frame.columns:
                frame = frame.with_columns(pl.lit(None, sid).alias("submission_id"))
            prepared.append(
                frame.filter(pl.col("student_code_key").is_not_null())
                .with_columns(
                    pl.lit(school, pl.Utf8).alias("_school"),
                    pl.col("submission_id").cast(sid),
                )
                .select(*keep, "submission_id")
            )
        return cls(pl.concat(prepared) if prepared else None, sid)

    @property
    def columns(self) -> pl.Schema:
        """The columns of the province's findings: the cross-record ones and ``school_code``."""
        columns = {**CROSS_COLUMNS, "submission_id": self.submission_dtype, "school_code": pl.Utf8}
        return pl.Schema(columns)


def pupil_in_two_schools(picture: ProvincePicture) -> pl.DataFrame:
    """X002 (query): a pupil on the lists of two schools, reported on each school's row(s)
    with the other school(s) in the params."""
    everyone = picture.students
    if everyone is None:
        return empty_findings(picture.columns)
    schools_of = (
        everyone.group_by("student_code_key")
        .agg(pl.col("_school").unique().sort().alias("_schools"))
        .filter(pl.col("_schools").list.len() > 1)
    )
    twice = everyone.join(schools_of, on="student_code_key", maintain_order="left")
    if twice.height == 0:
        return empty_findings(picture.columns)
    others = pl.col("_schools").list.set_difference(pl.concat_list("_school")).list.join(", ")
    params = {"value": pl.col("student_code_key"), "other_school": others}
    select = cross_select(
        "students", "student_code", "X002", params, picture.submission_dtype, picture.rules
    )
    return twice.select(*select, pl.col("_school").alias("school_code")).cast(picture.columns)


PROVINCE_RULES: tuple[ProvinceRule, ...] = (
    ProvinceRule(
        rule_id="X002",
        placeholders=("value", "other_school"),
        needs=("students",),
        check=pupil_in_two_schools,
    ),
)

ENROLMENT_MOVED = RaisedElsewhere(
    rule_id="X012",
    placeholders=("value", "school_left", "school_kept", "date_left", "date_kept"),
    needs=("students",),
    where=("tasks/consolidate.py",),
    how="nightly: the newer list (by its own date) keeps the pupil; both schools are told",
)
LISTS_OF_SAME_DATE = RaisedElsewhere(
    rule_id="X015",
    placeholders=("value", "other_school", "date"),
    needs=("students",),
    where=("tasks/consolidate.py",),
    how="nightly: two schools' lists of the same date hold the pupil (a tie, not settled)",
)
RAISED_ELSEWHERE: tuple[RaisedElsewhere, ...] = (ENROLMENT_MOVED, LISTS_OF_SAME_DATE)

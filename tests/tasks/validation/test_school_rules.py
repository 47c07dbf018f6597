"""Cross-record rules of one school (X003-X011, X013, X014), one failing and one passing example
each over a small coherent school: the failing example raises that rule only, at the dataset and
column the school must look at, with a sentence that reads whole in both languages; the passing
one (as close to the edge as the rule allows) raises nothing; without a dataset the rule needs,
it does not run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl
import pytest

from tasks.validation.cross_record import cross_check_school, skipped_cross_rules
from tasks.validation.school_rules import SCHOOL_RULES
from tests.tasks.validation.read_frames import (
    SCHOOL,
    assert_readable,
    marks,
    school_picture,
    students,
    table,
)

Picture = dict[str, pl.DataFrame]
MONDAY, TUESDAY = "02/10/2023", "03/10/2023"  # a Monday and a Tuesday of 2023/2024


def lesson(class_code: str, slot: str, teacher: str, room: str) -> dict:
    return {
        "class_code": class_code,
        "day": "الإثنين",
        "slot": slot,
        "teacher_code": teacher,
        "room_code": room,
        "sheet_row": 9,
    }


def changed(**frames: pl.DataFrame) -> Picture:
    return {**school_picture(), **frames}


def with_lesson(row: dict) -> Picture:
    picture = school_picture()
    extra = table("timetable", [row], submission_id="s-timetable")
    timetable = pl.concat([picture["timetable"], extra], how="diagonal_relaxed")
    return {**picture, "timetable": timetable}


@dataclass(frozen=True)
class Example:
    failing: Callable[[], Picture]
    passing: Callable[[], Picture]
    where: tuple[str, str]  # (dataset, column header) of the findings
    count: int = 1


EXAMPLES = {
    "X013": Example(
        lambda: changed(marks=marks([{"student_code": "K100000003"}], submission_id="s-marks")),
        lambda: changed(marks=marks([{"student_code": "K100000001"}], submission_id="s-marks")),
        ("marks", "رقم التلميذ"),
    ),
    "X014": Example(
        lambda: changed(marks=marks([{"student_code": "K100000009"}], submission_id="s-marks")),
        lambda: changed(marks=marks([{"student_code": "K100000002"}], submission_id="s-marks")),
        ("marks", "رقم التلميذ"),
    ),
    "X003": Example(
        lambda: changed(
            students=pl.concat(
                [
                    school_picture()["students"],
                    students(
                        [{"student_code": "k100000001", "class_code": "1APIC-2", "sheet_row": 30}],
                        submission_id="s-students",
                    ),
                ]
            )
        ),
        school_picture,
        ("students", "الرمز"),
        count=2,  # both rows of the pupil
    ),
    "X004": Example(
        lambda: changed(rooms=table("rooms", [{"room_code": "S01", "capacity": "1"}])),
        lambda: changed(rooms=table("rooms", [{"room_code": "S01", "capacity": "2"}])),
        ("classes", "رمز القاعة"),
    ),
    "X005": Example(
        lambda: {
            "students": students([{"student_code": "K100000001", "birth_date": "31/12/2013"}])
        },
        lambda: {
            "students": students([{"student_code": "K100000001", "birth_date": "01/01/2012"}])
        },
        ("students", "تاريخ الإزدياد"),
    ),
    "X006": Example(
        lambda: with_lesson(lesson("1APIC-2", "2", "T2", "S02")),
        lambda: with_lesson(lesson("1APIC-2", "3", "T2", "S02")),
        ("timetable", "رقم التأجير"),  # the teacher's code
        count=2,  # every row of the clash
    ),
    "X007": Example(
        lambda: with_lesson(lesson("1APIC-2", "2", "T3", "S01")),
        lambda: with_lesson(lesson("1APIC-2", "3", "T3", "S01")),
        ("timetable", "رمز القاعة"),
        count=2,
    ),
    "X008": Example(
        lambda: changed(
            absences=table(
                "absences", [{"student_code": "K100000001", "date": TUESDAY, "slot": "1"}]
            )
        ),
        lambda: changed(
            absences=table(
                "absences", [{"student_code": "K100000001", "date": MONDAY, "slot": "2"}]
            )
        ),
        ("absences", "الحصة"),
    ),
    "X009": Example(
        lambda: changed(support=table("support", [{"student_code": "K100000009"}])),
        lambda: changed(support=table("support", [{"student_code": "K100000003"}])),
        ("support", "رقم التلميذ"),
    ),
    "X010": Example(
        lambda: changed(
            exam_marks=table(
                "exam_marks", [{"student_code": "K100000001", "class_code": "1APIC-9"}]
            )
        ),
        lambda: changed(
            exam_marks=table(
                "exam_marks", [{"student_code": "K100000001", "class_code": "1APIC-2"}]
            )
        ),
        ("exam_marks", "القسم"),
    ),
    "X011": Example(
        lambda: changed(guardians=table("guardians", [{"student_code": "K100000008"}])),
        lambda: changed(guardians=table("guardians", [{"student_code": "K100000002"}])),
        ("guardians", "رقم التلميذ"),
    ),
}
DECLARED = {rule.rule_id: rule for rule in SCHOOL_RULES}


def test_every_school_rule_has_its_examples():
    assert set(EXAMPLES) == set(DECLARED)


@pytest.mark.parametrize("rule_id", sorted(EXAMPLES))
def test_failing_example(rule_id: str):
    example, rule = EXAMPLES[rule_id], DECLARED[rule_id]
    findings = cross_check_school(example.failing(), school_code=SCHOOL)
    assert findings["rule_id"].to_list() == [rule_id] * example.count, findings
    assert set(findings.select("dataset", "column_name").rows()) == {example.where}
    assert set(findings["severity"]) == {rule.severity}
    assert_readable(findings, rule_id, rule.placeholders)


@pytest.mark.parametrize("rule_id", sorted(EXAMPLES))
def test_passing_example(rule_id: str):
    findings = cross_check_school(EXAMPLES[rule_id].passing(), school_code=SCHOOL)
    assert findings.height == 0, findings


@pytest.mark.parametrize("rule_id", sorted(EXAMPLES))
def test_without_a_dataset_it_needs_the_rule_does_not_run(rule_id: str):
    rule = DECLARED[rule_id]
    for needed in rule.needs:
        picture = {k: v for k, v in EXAMPLES[rule_id].failing().items() if k != needed}
        assert needed in skipped_cross_rules(picture)[rule_id]
        findings = cross_check_school(picture, school_code=SCHOOL)
        assert rule_id not in findings["rule_id"].to_list()


def test_rules_needing_one_of_several_datasets_say_so():
    picture = {k: v for k, v in school_picture().items() if k not in ("guardians", "exam_marks")}
    assert skipped_cross_rules(picture) == {"X011": "missing dataset: guardians or exam_marks"}
    assert skipped_cross_rules(["classes", "rooms"])["X010"] == "no dataset with class codes"


def test_x005_does_not_run_without_ages_in_the_levels_reference():
    levels = pl.DataFrame({"level_code": ["1APIC"], "cycle": ["MIDDLE"]})
    picture = EXAMPLES["X005"].failing()
    assert skipped_cross_rules(picture, {"levels": levels}) == {
        "X005": "no levels reference with min_age / max_age"
    } | skipped_cross_rules(picture)
    assert cross_check_school(picture, reference={"levels": levels}).height == 0

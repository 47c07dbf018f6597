"""Row rules (R001-R010), one failing and one passing example each, as a school sees them: the
rule at the row and column it broke, with the text it wrote, a sentence that reads whole in
both languages; an error quarantines the row, a query keeps it. Nothing on the passing row."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl
import pytest

from tasks.validation.row_rules import ROW_RULES
from tasks.validation.submission import validate_submission
from tests.tasks.validation.read_frames import SCHOOL, assert_readable, marks, students, table


@dataclass(frozen=True)
class Example:
    dataset: str
    failing: Callable[[], pl.DataFrame]
    passing: Callable[[], pl.DataFrame]
    column: str  # where the school reads the finding
    value: str | None  # what it wrote there


K1, K2 = "K100000001", "K100000002"
EXAMPLES = {
    "R001": Example(
        "marks",
        lambda: marks([{"student_code": "X12"}]),
        lambda: marks([{"student_code": K1}]),
        "رقم التلميذ",
        "X12",
    ),
    "R002": Example(
        "classes",
        lambda: table("classes", [{"class_code": "1APIC-1", "school_code": "12345A"}]),
        lambda: table("classes", [{"class_code": "1APIC-1"}]),
        "رمز المؤسسة",
        "12345A",
    ),
    "R003": Example(
        "marks",
        lambda: marks([{"student_code": K1, "mark": "21"}]),
        lambda: marks([{"student_code": K1, "mark": "20"}]),
        "الفرض الأول - النقطة",
        "21",
    ),
    "R004": Example(
        "marks",
        lambda: marks([{"student_code": K1, "birth_date": "31-02-2011"}]),
        lambda: marks([{"student_code": K1, "birth_date": "28-02-2011"}]),
        "تاريخ الإزدياد",
        "31-02-2011",
    ),
    "R005": Example(
        "students",
        lambda: students([{"student_code": K1, "sex": None}]),
        lambda: students([{"student_code": K1, "sex": "أنثى"}]),
        "النوع",
        None,
    ),
    "R006": Example(
        "students",
        lambda: students([{"student_code": K1, "sex": "؟"}]),
        lambda: students([{"student_code": K1, "sex": "ذكر"}]),
        "النوع",
        "؟",
    ),
    "R007": Example(
        "marks",
        lambda: marks([{"student_code": K1}, {"student_code": f" {K1.lower()}"}]),
        lambda: marks([{"student_code": K1}, {"student_code": K2}]),
        "رقم التلميذ",
        f" {K1.lower()}",
    ),
    "R008": Example(
        "classes",
        lambda: table("classes", [{"class_code": "1APIC 1"}]),
        lambda: table("classes", [{"class_code": "1APIC-1"}]),
        "القسم",
        "1APIC 1",
    ),
    "R009": Example(
        "guardians",
        lambda: table("guardians", [{"student_code": K1, "guardian_cin": "12"}]),
        lambda: table("guardians", [{"student_code": K1, "guardian_cin": "JK123456"}]),
        "رقم البطاقة الوطنية",
        "12",
    ),
    "R010": Example(
        "marks",
        lambda: marks([{"student_code": K1, "mark": "12", "absence": "مبرر"}]),
        lambda: marks([{"student_code": K1, "mark": None, "absence": "مبرر"}]),
        "الفرض الأول - النقطة",
        "12",
    ),
}
DECLARED = {rule.rule_id: rule for rule in ROW_RULES}


def test_every_row_rule_has_its_examples():
    assert set(EXAMPLES) == set(DECLARED)


@pytest.mark.parametrize("rule_id", sorted(EXAMPLES))
def test_failing_example(rule_id: str):
    example, rule = EXAMPLES[rule_id], DECLARED[rule_id]
    frame = example.failing()
    result = validate_submission(example.dataset, frame, school_code=SCHOOL)
    found = result.findings.filter(pl.col("rule_id") == rule_id)
    assert found.select("column_name", "value", "severity").rows() == [
        (example.column, example.value, rule.severity)
    ]
    assert found["sheet_row"].to_list() == frame["sheet_row"].tail(1).to_list()
    assert_readable(result.findings, rule_id, rule.placeholders)
    # an error quarantines the row that broke the rule; a query keeps it
    assert result.rows_quarantined == (1 if rule.severity == "error" else 0)
    assert result.rows_read == frame.height


@pytest.mark.parametrize("rule_id", sorted(EXAMPLES))
def test_passing_example(rule_id: str):
    example = EXAMPLES[rule_id]
    frame = example.passing()
    result = validate_submission(example.dataset, frame, school_code=SCHOOL)
    assert result.findings.height == 0, result.findings
    assert result.rows_accepted == frame.height

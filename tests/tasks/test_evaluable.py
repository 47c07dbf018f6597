"""What the evaluation can compute from the published tables, and what it holds back: marks
of pupils without an active enrolment are kept, counted with their reason and evaluated the
night a list holds them; nothing here raises for missing or rejected inputs."""

from __future__ import annotations

from collections import Counter

import polars as pl

from schemas.evaluation_rules import load_rules
from tasks.evaluable import (
    ENROLLED_ELSEWHERE,
    NO_LIST,
    NO_MARKS,
    NO_RULES,
    NO_WAREHOUSE,
    NO_YEAR,
    NOT_ON_LIST,
    SCHOOL_WITHOUT_MARKS,
    YEAR_ABSENT,
    evaluable,
    outcome_sentence,
    skipped_sentences,
)
from tasks.evaluation_batches import compute_results
from tasks.evaluation_steps import plan_evaluation

RULES = load_rules()
LEVELS = RULES.level_cycle
YEAR, PREVIOUS = "2023/2024", "2022/2023"
SUBJECTS = ("0010", "0060")


def marks(pupils: list[tuple[str, str, str]], year: str | None = YEAR) -> pl.DataFrame:
    """Two subjects × two slots × semester 1 for each (school, class, pupil)."""
    rows = [
        {
            "school_code": school,
            "school_year": year,
            "class_code": class_code,
            "level_code": class_code.split("-")[0],
            "student_code": pupil,
            "subject_code": subject,
            "semester": 1,
            "slot": slot,
            "mark": mark,
            "absence": None,
            "mark_scale": 20.0,
        }
        for school, class_code, pupil in pupils
        for subject in SUBJECTS
        for slot, mark in (("test1", 12.0), ("test2", 16.0))
    ]
    return pl.DataFrame(
        rows,
        schema_overrides={"semester": pl.Int8, "absence": pl.Utf8, "school_year": pl.Utf8},
    )


def enrollments(pupils: list[tuple[str, str, str]], status: str = "active", year: str = YEAR):
    return pl.DataFrame(
        [
            {
                "school_code": school,
                "school_year": year,
                "class_code": class_code,
                "level_code": class_code.split("-")[0],
                "student_code": pupil,
                "status": status,
            }
            for school, class_code, pupil in pupils
        ]
    )


def skipped_counts(plan) -> dict[tuple, tuple[int, int]]:
    return {
        (r["school_year"], r["school_code"], r["level_code"], r["reason"]): (
            r["marks"],
            r["pupils"],
        )
        for r in plan.skipped.iter_rows(named=True)
    }


def held(rows: list[tuple[str, str, str]]) -> tuple[int, int]:
    """The independent count: marks rows (2 subjects × 2 slots each) and distinct pupils."""
    return len(rows) * len(SUBJECTS) * 2, len({pupil for _, _, pupil in rows})


A, B = "11111A", "22222B"
LISTED = [(A, "1APIC-1", "K100000001"), (A, "1APIC-1", "K100000002")]


def test_marks_before_the_list_are_kept_then_evaluated_when_the_list_arrives():
    # night 1: the school's marks are in, its list was rejected (no enrolment)
    night1 = {"marks": marks(LISTED), "schools": pl.DataFrame({"school_code": [A]})}
    plan = plan_evaluation(night1, RULES)
    assert plan.years == [] and plan.looked_at == [YEAR] and plan.schools == [A]
    assert skipped_counts(plan) == {(YEAR, A, None, NO_LIST): held(LISTED)}
    (sentence,) = skipped_sentences(plan.skipped)
    assert A in sentence and YEAR in sentence and "no accepted student list" in sentence
    assert "K1000" not in sentence  # no pupil code in what officers and logs see
    assert outcome_sentence(plan.years, 0, 0, plan.skipped).startswith("Nothing could be evaluated")
    # a later night: the same marks (not resent), and now the list
    night2 = {**night1, "enrollments": enrollments(LISTED)}
    plan = plan_evaluation(night2, RULES)
    assert plan.years == [YEAR] and plan.skipped.height == 0
    assert plan.inputs["marks"].height == night1["marks"].height
    results = compute_results(plan.inputs, RULES)
    annual = results["annual_results"].sort("student_code")
    assert annual["student_code"].to_list() == ["K100000001", "K100000002"]
    assert annual["average"].to_list() == [14.0, 14.0]  # (12 + 16) / 2 in both subjects


def test_a_pupil_missing_from_the_list_is_held_the_others_evaluated():
    missing = [(A, "1APIC-1", "K100000009")]
    frames = {"marks": marks(LISTED + missing), "enrollments": enrollments(LISTED)}
    plan = evaluable(frames, LEVELS)
    assert plan.years == [YEAR]
    assert skipped_counts(plan) == {(YEAR, A, None, NOT_ON_LIST): held(missing)}
    assert set(plan.inputs["marks"]["student_code"]) == {"K100000001", "K100000002"}


def test_a_pupil_listed_in_another_class_of_the_school_is_evaluated_in_the_marks_class():
    other_class = [(A, "1APIC-2", "K100000002")]  # listed in 1APIC-2, marked in 1APIC-1
    frames = {
        "marks": marks(LISTED),
        "enrollments": enrollments(LISTED[:1] + other_class),
    }
    plan = evaluable(frames, LEVELS)
    assert plan.skipped.height == 0
    results = compute_results(plan.inputs, RULES)
    assert set(results["annual_results"]["class_code"]) == {"1APIC-1"}
    assert results["annual_results"].height == 2


def test_a_pupil_whose_enrolment_is_active_elsewhere_is_not_evaluated_here():
    moved = [(A, "1APIC-1", "K100000002")]
    frames = {
        "marks": marks(LISTED),
        "enrollments": pl.concat(
            [
                enrollments(LISTED[:1]),
                enrollments(moved, status="transferred_out"),
                enrollments([(B, "1APIC-3", "K100000002")]),
            ]
        ),
    }
    plan = evaluable(frames, LEVELS)
    counts = skipped_counts(plan)
    assert counts[(YEAR, A, None, ENROLLED_ELSEWHERE)] == held(moved)
    # school B lists him but has no marks: named as such, with its pupils
    assert counts[(YEAR, B, None, SCHOOL_WITHOUT_MARKS)] == (0, 1)
    assert plan.inputs["marks"]["student_code"].unique().to_list() == ["K100000001"]


def test_a_level_without_evaluation_rules_is_held_per_level():
    odd = [(A, "9XYZ-1", "K100000005")]
    frames = {"marks": marks(LISTED + odd), "enrollments": enrollments(LISTED + odd)}
    plan = evaluable(frames, LEVELS)
    assert skipped_counts(plan) == {(YEAR, A, "9XYZ", NO_RULES): held(odd)}
    assert "level 9XYZ" in skipped_sentences(plan.skipped)[0]
    assert compute_results(plan.inputs, RULES)["annual_results"].height == 2


def test_no_marks_at_all_says_so_and_names_the_schools_with_a_list():
    plan = evaluable({"enrollments": enrollments(LISTED)}, LEVELS)
    assert plan.years == [] and plan.inputs == {}
    assert skipped_counts(plan) == {
        (None, None, None, NO_MARKS): (0, 0),
        (YEAR, A, None, SCHOOL_WITHOUT_MARKS): (0, 2),
    }
    outcome = outcome_sentence(plan.years, 0, 0, plan.skipped)
    assert outcome == (
        "Nothing could be evaluated: the warehouse holds no marks yet (no NotesCC file "
        "accepted): nothing to evaluate."
    )
    empty = evaluable({"marks": marks(LISTED).clear()}, LEVELS)
    assert skipped_counts(empty) == {(None, None, None, NO_MARKS): (0, 0)}


def test_no_published_night_is_a_sentence_not_an_error():
    plan = evaluable({}, LEVELS)
    assert plan.skipped["reason"].to_list() == [NO_WAREHOUSE]
    assert "massar nightly" in skipped_sentences(plan.skipped)[0]


def test_the_school_years_come_from_the_data_never_none():
    frames = {
        "marks": pl.concat(
            [marks(LISTED), marks(LISTED, year=PREVIOUS), marks(LISTED[:1], year=None)]
        ),
        "enrollments": pl.concat([enrollments(LISTED), enrollments(LISTED, year=PREVIOUS)]),
    }
    plan = evaluable(frames, LEVELS)
    assert plan.years == [PREVIOUS, YEAR]
    assert skipped_counts(plan) == {(None, A, None, NO_YEAR): held(LISTED[:1])}
    results = compute_results(plan.inputs, RULES)
    assert Counter(results["annual_results"]["school_year"]) == {YEAR: 2, PREVIOUS: 2}
    only = evaluable(frames, LEVELS, year=PREVIOUS)
    assert only.years == [PREVIOUS]
    assert skipped_counts(only) == {(None, A, None, NO_YEAR): held(LISTED[:1])}
    assert set(only.inputs["marks"]["school_year"]) == {PREVIOUS}


def test_a_year_asked_for_without_marks_lists_the_years_there_are():
    frames = {"marks": marks(LISTED), "enrollments": enrollments(LISTED)}
    plan = evaluable(frames, LEVELS, year="2019/2020")
    assert plan.years == [] and plan.skipped["reason"].to_list() == [YEAR_ABSENT]
    assert skipped_sentences(plan.skipped) == [
        f"The warehouse has no marks for the school year 2019/2020; years with marks: {YEAR}."
    ]


def test_exam_marks_of_pupils_without_a_list_are_held_too():
    exam = pl.DataFrame(
        {
            "school_code": [A, A],
            "school_year": [YEAR, YEAR],
            "class_code": ["3APIC-1", "3APIC-1"],
            "student_code": ["K100000001", "K100000007"],
            "exam": ["local", "local"],
            "session": ["normal", "normal"],
            "subject_code": ["0010", "0010"],
            "mark": [12.0, 9.0],
        }
    )
    frames = {"marks": marks(LISTED), "enrollments": enrollments(LISTED), "exam_marks": exam}
    plan = evaluable(frames, LEVELS)
    rows = plan.skipped.filter(pl.col("dataset") == "exam_marks").to_dicts()
    assert [(r["reason"], r["marks"], r["pupils"]) for r in rows] == [(NOT_ON_LIST, 1, 1)]
    assert plan.inputs["exam_marks"]["student_code"].to_list() == ["K100000001"]
    assert (
        "exam mark(s)"
        in skipped_sentences(plan.skipped.filter(pl.col("dataset") == "exam_marks"))[0]
    )


def _same_plan(left, right) -> None:
    assert left.years == right.years and left.looked_at == right.looked_at
    assert left.schools == right.schools
    assert left.skipped.equals(right.skipped)
    assert sorted(left.inputs) == sorted(right.inputs)
    for name, frame in left.inputs.items():
        assert frame.equals(right.inputs[name]), name


def test_marks_known_kept_give_what_the_checks_give():
    """The reports' inputs after an evaluation that held no mark skip the marks' checks
    (``marks_kept``): the same inputs, years, schools and held rows as with them, for every
    year or one, with exam marks held and a school with a list but no marks."""
    exam = pl.DataFrame(
        {
            "school_code": [A, A],
            "school_year": [YEAR, PREVIOUS],
            "class_code": ["3APIC-1", "3APIC-1"],
            "student_code": ["K100000001", "K100000007"],
            "exam": ["local", "regional"],
            "session": ["normal", "normal"],
            "subject_code": ["0010", "0010"],
            "mark": [12.0, 9.0],
        }
    )
    frames = {
        "marks": pl.concat([marks(LISTED, year=PREVIOUS), marks(LISTED)]),
        "enrollments": pl.concat(
            [
                enrollments(LISTED, year=PREVIOUS),
                enrollments(LISTED),
                enrollments([(B, "2APIC-1", "K100000005")]),
                enrollments([(B, "2APIC-1", "K100000006")], status="left"),
            ]
        ),
        "exam_marks": exam,
        "schools": pl.DataFrame({"school_code": [A, B]}),
    }
    for year in (None, YEAR, PREVIOUS):
        checked = evaluable(frames, LEVELS, year)
        assert checked.inputs["marks"].height and checked.skipped.height
        assert not checked.skipped.filter(
            (pl.col("dataset") == "marks") & (pl.col("reason") != SCHOOL_WITHOUT_MARKS)
        ).height
        _same_plan(evaluable(frames, LEVELS, year, marks_kept=True), checked)

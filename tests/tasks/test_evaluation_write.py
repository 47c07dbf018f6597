"""Writing results replaces what was evaluated and nothing else: other school years and the
other semester keep their rows (the annual results follow both semesters), and a school whose
marks are all held back loses its results of that year (results say what tonight's inputs
allow)."""

from __future__ import annotations

from collections import Counter

import polars as pl

from schemas.evaluation_rules import load_rules
from tasks.evaluation_batches import compute_results, other_semester_results, write_results
from tasks.evaluation_steps import plan_evaluation
from tests.tasks.test_evaluable import LISTED, PREVIOUS, YEAR, enrollments, marks
from warehouse.delta import read_table

RULES = load_rules()
B_LISTED = [("22222B", "1APIC-1", "K200000001")]


def _stored(settings, table: str) -> pl.DataFrame:
    frame = pl.from_arrow(read_table(settings.warehouse, table).to_table())
    assert isinstance(frame, pl.DataFrame)
    return frame


def _two_semesters(pupils, year=YEAR) -> pl.DataFrame:
    first = marks(pupils, year=year)
    return pl.concat([first, first.with_columns(pl.lit(2, pl.Int8).alias("semester"))])


def _evaluate(settings, frames, year=None, semester=None):
    plan = plan_evaluation(frames, RULES, year)
    kept = other_semester_results(settings, plan, semester) if semester else None
    results = compute_results(plan.inputs, RULES, semester, kept) if plan.years else {}
    return plan, write_results(settings, results, plan)


def test_other_years_and_the_other_semester_keep_their_rows(massar_home):
    both = {
        "marks": pl.concat(
            [_two_semesters(LISTED + B_LISTED), _two_semesters(LISTED, year=PREVIOUS)]
        ),
        "enrollments": pl.concat(
            [enrollments(LISTED + B_LISTED), enrollments(LISTED, year=PREVIOUS)]
        ),
    }
    _evaluate(massar_home, both)
    annual = _stored(massar_home, "annual_results")
    assert Counter(annual["school_year"]) == {YEAR: 3, PREVIOUS: 2}

    # this year only, with other marks: last year's rows stay as they were
    changed = {
        **both,
        "marks": both["marks"].with_columns(
            pl.when(pl.col("school_year") == YEAR).then(8.0).otherwise("mark").alias("mark")
        ),
    }
    _evaluate(massar_home, changed, year=YEAR)
    annual = _stored(massar_home, "annual_results")
    assert Counter(annual["school_year"]) == {YEAR: 3, PREVIOUS: 2}
    averages = dict(annual.group_by("school_year").agg(pl.col("average").max()).iter_rows())
    assert averages == {YEAR: 8.0, PREVIOUS: 14.0}

    # semester 1 only, every mark now 10: semester 2 keeps its averages (8, as the warehouse
    # holds them), the annual results follow both semesters
    again = {**changed, "marks": changed["marks"].with_columns(pl.lit(10.0).alias("mark"))}
    _evaluate(massar_home, again, year=YEAR, semester=1)
    semesters = _stored(massar_home, "semester_results").filter(pl.col("school_year") == YEAR)
    by_semester = dict(semesters.group_by("semester").agg(pl.col("average").max()).iter_rows())
    assert by_semester == {1: 10.0, 2: 8.0}
    annual = _stored(massar_home, "annual_results")
    assert Counter(annual["school_year"]) == {YEAR: 3, PREVIOUS: 2}
    assert annual.filter(pl.col("school_year") == YEAR)["average"].to_list() == [9.0] * 3
    assert annual.filter(pl.col("school_year") == PREVIOUS)["average"].to_list() == [14.0] * 2


def test_a_school_whose_marks_are_all_held_loses_its_results_of_the_year(massar_home):
    frames = {
        "marks": _two_semesters(LISTED + B_LISTED),
        "enrollments": enrollments(LISTED + B_LISTED),
    }
    _evaluate(massar_home, frames)
    assert set(_stored(massar_home, "annual_results")["school_code"]) == {"11111A", "22222B"}
    # B's list is gone (say its pupils moved to a later list elsewhere): its marks are held
    plan, _ = _evaluate(massar_home, {**frames, "enrollments": enrollments(LISTED)})
    assert plan.skipped["school_code"].to_list() == ["22222B"]
    for table in ("subject_results", "semester_results", "annual_results"):
        assert set(_stored(massar_home, table)["school_code"]) == {"11111A"}, table
    # nothing evaluable at all: every school's results of the year go, no error
    plan, _ = _evaluate(massar_home, {"marks": frames["marks"]})
    assert plan.years == []
    assert _stored(massar_home, "annual_results").height == 0


BAC_NATIONAL = ("0060", "0070", "0080", "0090", "0110")  # 2BACSPF national papers
BAC_REGIONAL = ("0010", "0020", "0040", "0050")  # 1BACSEF regional papers, the year before


def _papers(school_year: str, class_code: str, exam: str, subjects, mark: float) -> list[dict]:
    return [
        {
            "school_code": "11111A",
            "school_year": school_year,
            "class_code": class_code,
            "student_code": "K300000001",
            "exam": exam,
            "session": "normal",
            "subject_code": subject,
            "mark": mark,
            "absent": False,
            "mark_scale": 20.0,
        }
        for subject in subjects
    ]


def test_a_run_of_one_year_reads_the_regional_exam_of_the_year_before(massar_home):
    """The baccalaureate of 2023/2024 counts the regional exam of 2022/2023: evaluating 2023/2024
    alone gives the candidate the result the evaluation of every year gives him, and leaves
    2022/2023's exam results as they were."""
    now = [("11111A", "2BACSPF-1", "K300000001")]
    before = [("11111A", "1BACSEF-1", "K300000001")]
    frames = {
        "marks": pl.concat([_two_semesters(now), _two_semesters(before, year=PREVIOUS)]),
        "enrollments": pl.concat([enrollments(now), enrollments(before, year=PREVIOUS)]),
        "exam_marks": pl.DataFrame(
            _papers(YEAR, "2BACSPF-1", "national", BAC_NATIONAL, 12.0)
            + _papers(PREVIOUS, "1BACSEF-1", "regional", BAC_REGIONAL, 14.0)
        ),
    }
    _evaluate(massar_home, frames)
    every_year = _stored(massar_home, "exam_results").sort("school_year", "exam", "session")
    bac = every_year.filter((pl.col("school_year") == YEAR) & (pl.col("exam") == "baccalaureate"))
    assert bac["regional_average"].to_list() == [14.0]
    assert bac["national_average"].to_list() == [12.0]

    plan, _ = _evaluate(massar_home, frames, year=YEAR)
    assert plan.looked_at == [YEAR]
    again = _stored(massar_home, "exam_results").sort("school_year", "exam", "session")
    assert again.equals(every_year)

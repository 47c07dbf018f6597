"""Writing results replaces what was evaluated and nothing else: other school years and the
other semester keep their rows, and a school whose marks are all held back loses its results
of that year (results say what tonight's inputs allow)."""

from __future__ import annotations

from collections import Counter

import polars as pl

from schemas.evaluation_rules import load_rules
from tasks.evaluation import compute_results, plan_evaluation, write_results
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
    results = compute_results(plan.inputs, RULES, semester) if plan.years else {}
    return plan, write_results(settings, results, plan, semester)


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

    # semester 1 only: semester 2 keeps its averages, annual results are not touched
    again = {**changed, "marks": changed["marks"].with_columns(pl.lit(10.0).alias("mark"))}
    _evaluate(massar_home, again, year=YEAR, semester=1)
    semesters = _stored(massar_home, "semester_results").filter(pl.col("school_year") == YEAR)
    by_semester = dict(semesters.group_by("semester").agg(pl.col("average").max()).iter_rows())
    assert by_semester == {1: 10.0, 2: 8.0}
    assert (
        _stored(massar_home, "annual_results")
        .filter(pl.col("school_year") == YEAR)["average"]
        .to_list()
        == [8.0] * 3
    )


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

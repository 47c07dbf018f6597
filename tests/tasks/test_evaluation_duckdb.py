"""A batch evaluated inside DuckDB from the published Parquet files (tasks/evaluation_duckdb.py)
holds back what the whole warehouse's polars restriction (tasks/evaluable.py) holds back, with
the same reasons and counts, and evaluates the same pupils: every reason at once, in batches
of one school."""

from __future__ import annotations

import polars as pl

from schemas.evaluation_rules import load_rules
from tasks.evaluation_batches import compute_results, evaluate_warehouse
from tasks.evaluation_steps import plan_evaluation, read_published
from tests.tasks.test_evaluable import YEAR, enrollments, marks
from warehouse.control import ControlDatabase
from warehouse.delta import read_table, replace_school_rows, table_versions
from warehouse.nights import finish_night, start_night

RULES = load_rules()


def _publish(home, tables: dict[str, pl.DataFrame]) -> None:  # type: ignore[no-untyped-def]
    for table, frame in tables.items():
        for school in frame.get_column("school_code").unique().to_list():
            rows = frame.filter(pl.col("school_code") == school)
            replace_school_rows(home.warehouse, table, [school], rows.to_arrow())
    database = ControlDatabase(home.resolved_database_url)
    try:
        night = start_night(database)
        finish_night(database, night, table_versions(home.warehouse), {})
    finally:
        database.dispose()


def test_every_reason_to_hold_marks_back_is_counted_as_the_polars_restriction_counts_it(
    massar_home,
) -> None:
    listed = [("11111A", "1APIC-1", "K100000001"), ("11111A", "1APIC-2", "K100000005")]
    unruled = [("11111A", "9ZZZ-1", "K100000006")]  # listed, but a level without rules
    moved = [("11111A", "1APIC-1", "K100000002")]  # listed by 22222B only
    unlisted = [("11111A", "1APIC-1", "K100000003")]  # on no list
    undated = [("11111A", "1APIC-1", "K100000001")]  # marks whose file gave no year
    no_list = [("33333C", "2APIC-1", "K100000004")]  # a school without any list
    _publish(
        massar_home,
        {
            "marks": pl.concat(
                [
                    marks(listed + unruled + moved + unlisted + no_list),
                    marks(undated, year=None),
                ]
            ),
            "enrollments": pl.concat(
                [
                    enrollments(listed + unruled),
                    enrollments([("22222B", "1APIC-1", "K100000002")]),
                ]
            ),
        },
    )
    whole = plan_evaluation(read_published(massar_home), RULES)
    run = evaluate_warehouse(massar_home, RULES, batch_rows=1)

    columns = ["school_year", "school_code", "level_code", "reason", "marks", "pupils"]
    told = sorted(run.plan.skipped.select(columns).rows(), key=str)
    assert told == sorted(whole.skipped.select(columns).rows(), key=str)
    reasons = {row[3] for row in told}
    assert reasons == {
        "no_year",
        "no_rules",
        "enrolled_elsewhere",
        "not_on_list",
        "no_list",
        "school_without_marks",
    }
    assert run.plan.years == whole.years
    assert run.plan.schools == whole.schools

    # the two listed pupils of the known level are the only ones evaluated, as in memory
    expected = compute_results(whole.inputs, RULES)
    for table in ("subject_results", "semester_results", "annual_results"):
        stored = pl.from_arrow(read_table(massar_home.warehouse, table).to_table())
        assert isinstance(stored, pl.DataFrame)
        keys = [name for name in expected[table].columns if name.endswith("_code")]
        left = stored.select(expected[table].columns).sort(keys)
        right = expected[table].sort(keys)
        assert (
            left.get_column("student_code").to_list() == right.get_column("student_code").to_list()
        )
        for name in ("average", "rank", "class_size") if table != "subject_results" else ():
            assert (
                left.get_column(name)
                .cast(pl.Float64)
                .equals(right.get_column(name).cast(pl.Float64))
            ), (table, name)
    assert run.pupils == 2


def _exam_marks(pupils: list[tuple[str, str, str]]) -> pl.DataFrame:
    """A local and a regional collège paper for each (school, class named by the paper,
    pupil)."""
    return pl.DataFrame(
        [
            {
                "school_code": school,
                "school_year": YEAR,
                "class_code": class_code,
                "student_code": pupil,
                "exam": exam,
                "session": "normal",
                "subject_code": "0010",
                "mark": mark,
                "absent": False,
                "mark_scale": 20.0,
            }
            for school, class_code, pupil in pupils
            for exam, mark in (("local", 11.0), ("regional", 13.5))
        ]
    )


def test_the_exams_of_a_batch_read_every_annual_row_they_depend_on(massar_home) -> None:
    """A batch's exam results are those of the whole warehouse when pupils' annual rows and
    papers disagree on the level: a pupil whose papers name 3APIC but whose year is 2APIC is no
    candidate (his annual row says so), a 3APIC pupil without papers is one."""
    at_exam_level = [("11111A", "3APIC-1", "K200000001"), ("11111A", "3APIC-1", "K200000002")]
    at_other_level = [("11111A", "2APIC-1", "K200000003"), ("11111A", "1APIC-1", "K200000004")]
    papers = [("11111A", "3APIC-1", "K200000001"), ("11111A", "3APIC-1", "K200000003")]
    listed = at_exam_level + at_other_level
    _publish(
        massar_home,
        {
            "marks": marks(listed),
            "enrollments": enrollments(listed),
            "exam_marks": _exam_marks(papers),
        },
    )
    whole = plan_evaluation(read_published(massar_home), RULES)
    expected = compute_results(whole.inputs, RULES)["exam_results"]
    assert sorted(expected.get_column("student_code").to_list()) == ["K200000001", "K200000002"]

    run = evaluate_warehouse(massar_home, RULES, batch_rows=1)
    stored = pl.from_arrow(read_table(massar_home.warehouse, "exam_results").to_table())
    assert isinstance(stored, pl.DataFrame)
    keys = ["student_code", "exam", "session"]
    assert run.rows["exam_results"] == expected.height
    assert stored.select(expected.columns).sort(keys).equals(expected.sort(keys))

"""The warehouse evaluated school batch by school batch (tasks/evaluation_batches.py) gives the
results of the whole warehouse evaluated at once, row for row, on a generated province: one
school per batch, so that every cross-school step (enrolments elsewhere, exams, years) is
crossed; and its averages, ranks with ties and decisions agree with an independent reading of
docs/evaluation-rules.md written in SQL (DuckDB) over the same Delta tables."""

from __future__ import annotations

import shutil

import duckdb
import polars as pl
import pytest

from massar.home import init_home
from schemas.evaluation_rules import load_rules
from tasks.consolidate import changed_schools, consolidate_enrollments, consolidate_table
from tasks.consolidation_steps import consolidated_tables
from tasks.evaluation_batches import (
    RESULT_TABLES,
    batches_of,
    compute_results,
    evaluate_warehouse,
    other_semester_results,
)
from tasks.evaluation_steps import plan_evaluation, read_published, results_for_reports
from tasks.ingest import discover_inbox, ingest_school
from warehouse.control import ControlDatabase
from warehouse.delta import (
    SchemaChangeRefused,
    read_table,
    replace_school_rows,
    table_versions,
)
from warehouse.nights import finish_night, start_night

RULES = load_rules()
TINY_MB = 48  # DuckDB's memory in the tests of a bounded evaluation
SCORED = ("subject_results", "semester_results", "annual_results")
KEYS = {
    "subject_results": [
        "school_code",
        "school_year",
        "class_code",
        "student_code",
        "subject_code",
        "semester",
    ],
    "semester_results": ["school_code", "school_year", "class_code", "student_code", "semester"],
    "annual_results": ["school_code", "school_year", "level_code", "student_code"],
    "exam_results": ["school_code", "school_year", "student_code", "exam", "session"],
}


@pytest.fixture(scope="module")
def consolidated(province, tmp_path_factory):
    """A home whose published night holds the generated province's tables (no evaluation)."""
    settings = init_home(tmp_path_factory.mktemp("batches-home") / "home")
    schools, _ = discover_inbox(province)
    for code, files in sorted(schools.items()):
        ingest_school(settings, code, files, province / code)
    database = ControlDatabase(settings.resolved_database_url)
    try:
        for table, dataset in consolidated_tables():
            changed = changed_schools(database, dataset)
            if table == "enrollments":
                consolidate_enrollments(settings, changed)
            elif changed:
                consolidate_table(settings, table, changed)
        night = start_night(database)
        finish_night(database, night, table_versions(settings.warehouse), {})
    finally:
        database.dispose()
    return settings


def _stored(settings, table: str, version: int) -> pl.DataFrame:
    frame = pl.from_arrow(read_table(settings.warehouse, table, version).to_table())
    assert isinstance(frame, pl.DataFrame)
    return frame


def _same(computed: pl.DataFrame, stored: pl.DataFrame, keys: list[str]) -> None:
    stored = stored.select(
        pl.col(name).cast(dtype) for name, dtype in computed.schema.items()
    ).sort(keys, nulls_last=True)
    computed = computed.sort(keys, nulls_last=True)
    assert stored.height == computed.height
    for name in computed.columns:
        assert stored[name].equals(computed[name]), name


def test_batches_pack_whole_schools_within_the_bound() -> None:
    assert batches_of({"A": 5, "B": 5, "C": 1, "D": 20}, 10) == [["A", "B"], ["C"], ["D"]]
    assert batches_of({}, 10) == []


def test_one_school_per_batch_gives_the_whole_warehouse_results(consolidated) -> None:
    settings = consolidated
    whole = read_published(settings)
    plan = plan_evaluation(whole, RULES)
    expected = compute_results(plan.inputs, RULES)
    assert {"subject_results", "annual_results", "exam_results"} <= set(expected)

    run = evaluate_warehouse(settings, RULES, batch_rows=1)
    assert run.batches == len({*whole["marks"]["school_code"]}) > 1
    assert run.plan.years == plan.years and run.plan.looked_at == plan.looked_at
    assert run.plan.schools == plan.schools
    assert run.plan.skipped.sort(pl.all()).equals(plan.skipped.sort(pl.all()))
    assert run.rows == {table: frame.height for table, frame in expected.items()}
    for table in RESULT_TABLES:
        _same(expected[table], _stored(settings, table, run.versions[table]), KEYS[table])


def test_a_tiny_memory_limit_gives_the_results_computed_in_memory(consolidated) -> None:
    """DuckDB held to 48 MB, with batches of a few schools, gives the province's results
    computed in memory with DuckDB's default memory, row for row and bit for bit. (The
    province's work fits in 48 MB, the Parquet reading of a batch's marks included since DuckDB
    reads them (24 MB, enough before, ran out now and then); that a limit DuckDB must spill
    beyond gives the same bits is shown on 1.2 M marks in tests/tasks/test_results_sql.py.)"""
    settings = consolidated.model_copy(update={"evaluation_memory_mb": TINY_MB})
    expected = compute_results(plan_evaluation(read_published(settings), RULES).inputs, RULES)
    run = evaluate_warehouse(settings, RULES, batch_rows=20_000)
    assert run.batches > 1
    assert run.rows == {table: frame.height for table, frame in expected.items()}
    for table in RESULT_TABLES:
        _same(expected[table], _stored(settings, table, run.versions[table]), KEYS[table])


def test_two_evaluations_of_the_same_warehouse_give_the_same_bits(consolidated) -> None:
    """An unchanged warehouse evaluated again, in other batches, with another memory limit and
    DuckDB's threads meeting the rows in another order, writes no new table version: every
    result row is equal, bit for bit, to the one written before (the sums are exact)."""
    first = evaluate_warehouse(consolidated, RULES, batch_rows=10**9)
    written = {table: _stored(consolidated, table, first.versions[table]) for table in KEYS}
    assert written["subject_results"]["average"].drop_nulls().len()
    tiny = consolidated.model_copy(update={"evaluation_memory_mb": TINY_MB})
    again = evaluate_warehouse(tiny, RULES, batch_rows=1)
    assert again.batches > 1
    assert again.versions == first.versions
    computed = compute_results(plan_evaluation(read_published(consolidated), RULES).inputs, RULES)
    for table in SCORED:
        _same(computed[table], written[table], KEYS[table])


def test_averages_ranks_and_decisions_agree_with_an_independent_sql_reading(consolidated) -> None:
    """Subject averages (justified absences ignored, activities weighted), semester averages
    (coefficients of curriculum.csv), ranks within the class with ties sharing the lowest
    rank, annual averages and decisions, from the marks and rules alone."""
    settings = consolidated
    run = evaluate_warehouse(settings, RULES, batch_rows=10**9)
    marks = _stored(settings, "marks", read_table_version(settings, "marks")).to_arrow()
    active = (  # noqa: F841 (read by DuckDB)
        _stored(settings, "enrollments", read_table_version(settings, "enrollments"))
        .filter(pl.col("status") == "active")
        .select("school_code", "school_year", "student_code")
        .unique()
        .to_arrow()
    )
    rules = pl.DataFrame(RULES.subject_rows()).to_arrow()  # noqa: F841
    levels = pl.DataFrame(RULES.level_rows()).to_arrow()  # noqa: F841
    results = {t: _stored(settings, t, run.versions[t]).to_arrow() for t in RESULT_TABLES}
    subject_results = results["subject_results"]
    semester_results = results["semester_results"]
    annual_results = results["annual_results"]  # noqa: F841
    assert marks.num_rows
    db = duckdb.connect()
    db.execute(
        """create table subjects as
        with m as (
          select m.*, l.scale,
            case when m.absence = 'justified' then null
                 when m.mark_scale is not null and m.mark_scale <> l.scale and m.mark_scale > 0
                 then m.mark * l.scale / m.mark_scale else m.mark end as v
          from marks m join active using (school_code, school_year, student_code)
          join levels l using (level_code))
        select school_code, school_year, class_code, level_code, student_code, subject_code,
          semester, avg(v) filter (where slot like 'test%') as t,
          avg(v) filter (where slot not like 'test%') as a,
          count(*) filter (where absence = 'justified') = count(*) as excused
        from m group by all"""
    )
    mine = _polars(
        db.execute(
            """select s.*, coalesce(r.activities_weight, l.default_activities_weight) as w,
           r.coefficient,
           case when s.excused then null
                when s.t is not null and s.a is not null and w > 0 then s.t * (1 - w) + s.a * w
                when s.t is not null then s.t when w > 0 then s.a end as avg
        from subjects s left join rules r using (level_code, subject_code)
        join levels l using (level_code)"""
        ).to_arrow_table()
    )
    theirs = pl.from_arrow(subject_results)
    both = mine.join(
        theirs,
        on=["school_code", "school_year", "class_code", "student_code", "subject_code", "semester"],
        how="full",
        coalesce=True,
    )
    assert both.height == theirs.height == mine.height
    gap = both.select((pl.col("avg") - pl.col("average")).abs().max()).item()
    assert both.filter(pl.col("avg").is_null() != pl.col("average").is_null()).height == 0
    assert gap is not None and gap < 2e-6

    semesters = _polars(
        db.execute(
            """with s as (select school_code, school_year, class_code, student_code, semester,
             sum(average * coefficient) filter (where status = 'ok' and coefficient is not null)
             / sum(coefficient) filter (where status = 'ok' and coefficient is not null) as avg
           from subject_results group by all)
        select s.*, r.average, r.rank, r.class_size,
          rank() over (partition by school_code, school_year, class_code, semester
                       order by round(r.average, 9) desc) as my_rank,
          count(r.average) over (partition by school_code, school_year, class_code, semester)
            as my_size
        from s join semester_results r using
          (school_code, school_year, class_code, student_code, semester)"""
        ).to_arrow_table()
    )
    assert semesters.height == semester_results.num_rows
    assert semesters.select((pl.col("avg") - pl.col("average")).abs().max()).item() < 2e-6
    ranked = semesters.filter(pl.col("average").is_not_null())
    assert (ranked["rank"].cast(pl.Int64) == ranked["my_rank"]).all()
    assert (ranked["class_size"].cast(pl.Int64) == ranked["my_size"]).all()
    assert ranked.select(pl.col("rank").is_duplicated().any()).item()  # ties were met

    annual = _polars(
        db.execute(
            """select a.average, a.decision, l.promote_at, l.oriented,
           (select avg(s.average) from semester_results s where s.school_code = a.school_code
              and s.school_year = a.school_year and s.student_code = a.student_code
              and s.level_code = a.level_code) as my_average
        from annual_results a join levels l using (level_code)"""
        ).to_arrow_table()
    )
    assert annual.select((pl.col("average") - pl.col("my_average")).abs().max()).item() < 2e-6
    decided = annual.with_columns(
        pl.when(pl.col("average").is_null())
        .then(None)
        .when(pl.col("average") >= pl.col("promote_at") - 1e-9)
        .then(pl.when(pl.col("oriented")).then(pl.lit("oriented")).otherwise(pl.lit("promoted")))
        .otherwise(pl.lit("repeats"))
        .alias("mine")
    )
    assert decided.filter(pl.col("mine").ne_missing(pl.col("decision"))).height == 0
    assert set(decided["decision"].drop_nulls()) >= {"promoted", "repeats"}


def read_table_version(settings, table: str) -> int:
    return table_versions(settings.warehouse)[table]


def _polars(table) -> pl.DataFrame:  # type: ignore[no-untyped-def]
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


def test_held_pupils_and_schools_without_marks_are_told_as_the_whole_warehouse_tells_them(
    massar_home,
) -> None:
    """A's marks of a pupil listed only by B (enrolled elsewhere) and of a pupil on no list,
    and B with a list but no marks: each batch sees only its school, yet the reasons are those
    of the whole warehouse."""
    from tests.tasks.test_evaluable import enrollments, marks
    from warehouse.delta import replace_school_rows

    listed = [("11111A", "1APIC-1", "K100000001")]
    moved = [("11111A", "1APIC-1", "K100000002")]
    unlisted = [("11111A", "1APIC-1", "K100000003")]
    tables = {
        "marks": marks(listed + moved + unlisted),
        "enrollments": pl.concat(
            [enrollments(listed), enrollments([("22222B", "1APIC-1", "K100000002")])]
        ),
    }
    for table, frame in tables.items():
        for school in ("11111A", "22222B"):
            rows = frame.filter(pl.col("school_code") == school)
            if rows.height:
                replace_school_rows(massar_home.warehouse, table, [school], rows.to_arrow())
    database = ControlDatabase(massar_home.resolved_database_url)
    try:
        night = start_night(database)
        finish_night(database, night, table_versions(massar_home.warehouse), {})
    finally:
        database.dispose()
    whole = plan_evaluation(read_published(massar_home), RULES)
    run = evaluate_warehouse(massar_home, RULES, batch_rows=1)
    assert run.batches == 1  # B has no marks partition
    reasons = sorted(run.plan.skipped.select("school_code", "reason", "pupils").rows())
    assert reasons == [
        ("11111A", "enrolled_elsewhere", 1),
        ("11111A", "not_on_list", 1),
        ("22222B", "school_without_marks", 1),
    ]
    assert reasons == sorted(whole.skipped.select("school_code", "reason", "pupils").rows())
    assert run.pupils == 1


def test_the_reports_take_the_inputs_the_whole_warehouse_restriction_gives(massar_home):
    """The e-services extract and the statistics read the night's inputs restricted as the
    evaluation restricted them: a pupil held back (on no list) has no mark among them, even
    though the evaluation that held him back is not asked again; the others' marks are all
    there."""
    from tests.tasks.test_evaluable import enrollments, marks

    listed = [("11111A", "1APIC-1", "K100000001"), ("11111A", "1APIC-1", "K100000002")]
    unlisted = [("11111A", "1APIC-1", "K100000003")]
    replace_school_rows(
        massar_home.warehouse, "marks", ["11111A"], marks(listed + unlisted).to_arrow()
    )
    replace_school_rows(
        massar_home.warehouse, "enrollments", ["11111A"], enrollments(listed).to_arrow()
    )
    database = ControlDatabase(massar_home.resolved_database_url)
    try:
        finish_night(database, start_night(database), table_versions(massar_home.warehouse), {})
    finally:
        database.dispose()
    whole = plan_evaluation(read_published(massar_home), RULES)
    run = evaluate_warehouse(massar_home, RULES)
    plan, _ = results_for_reports(massar_home, RULES, run, None)
    assert set(plan.inputs["marks"]["student_code"]) == {"K100000001", "K100000002"}
    assert plan.inputs["marks"].equals(whole.inputs["marks"])
    assert plan.years == whole.years


def test_the_reports_take_the_province_s_inputs_and_results_as_the_warehouse_holds_them(
    consolidated, tmp_path
):
    """After a run that held nothing back, the reports' inputs are the night's tables
    restricted as the whole warehouse's evaluation restricts them, and their results the
    rows the run wrote (as read from the tables, types included), in any order."""
    home = tmp_path / "home"
    shutil.copytree(consolidated.home, home)
    settings = consolidated.model_copy(update={"home": home})
    whole = plan_evaluation(read_published(settings), RULES)
    run = evaluate_warehouse(settings, RULES)
    assert run.plan.skipped.filter(pl.col("dataset") == "marks").height == 0
    plan, results = results_for_reports(settings, RULES, run, None)
    assert plan.years == whole.years and sorted(plan.inputs) == sorted(whole.inputs)
    for name, frame in whole.inputs.items():
        assert plan.inputs[name].equals(frame), name
    assert sorted(results) == sorted(RESULT_TABLES)
    for table in RESULT_TABLES:
        stored = _stored(settings, table, run.versions[table])
        assert results[table].schema == stored.schema, table
        names = stored.columns
        assert (
            results[table].sort(names, nulls_last=True).equals(stored.sort(names, nulls_last=True))
        ), table


def test_a_refused_write_stops_the_run_and_no_later_batch_is_written(consolidated, tmp_path):
    """A batch's writes run while the next batch is computed; a write refused by the warehouse
    (here: the subject results lack a column the table gained) stops the run with its error,
    and no table receives a commit after it: no later batch's results are written."""
    home = tmp_path / "home"
    shutil.copytree(consolidated.home, home)
    settings = consolidated.model_copy(update={"home": home})
    evaluate_warehouse(settings, RULES, batch_rows=10**9)
    stored = _stored(
        settings, "subject_results", table_versions(settings.warehouse)["subject_results"]
    )
    first = min(stored["school_code"].unique())
    rows = stored.filter(pl.col("school_code") == first)
    gained = rows.with_columns(pl.lit(None, pl.Utf8).alias("note")).to_arrow()
    replace_school_rows(settings.warehouse, "subject_results", [first], gained)
    before = table_versions(settings.warehouse)

    with pytest.raises(SchemaChangeRefused):
        evaluate_warehouse(settings, RULES, batch_rows=1)
    assert table_versions(settings.warehouse) == before


def test_a_semester_run_in_duckdb_gives_the_in_memory_results_with_the_stored_other_semester(
    consolidated, tmp_path
):
    """A run of the 2nd semester computes it inside DuckDB, batch by batch, and takes the 1st
    semester's results as the warehouse holds them (here: none, removed after a whole run), as
    the in-memory path does: the same rows, and annual results of the 2nd semester alone."""
    home = tmp_path / "home"
    shutil.copytree(consolidated.home, home)
    settings = consolidated.model_copy(update={"home": home})
    evaluate_warehouse(settings, RULES, batch_rows=10**9)
    for table in ("subject_results", "semester_results"):
        stored = _stored(settings, table, table_versions(settings.warehouse)[table])
        second = stored.filter(pl.col("semester") == 2)
        schools = stored["school_code"].unique().to_list()
        replace_school_rows(settings.warehouse, table, schools, second.to_arrow())
    whole = read_published(settings)
    plan = plan_evaluation(whole, RULES)
    kept = other_semester_results(settings, plan, 2)
    assert not any(frame.height for frame in kept.values())
    expected = compute_results(plan.inputs, RULES, 2, kept)

    run = evaluate_warehouse(settings, RULES, semester=2, batch_rows=20_000)
    assert run.batches > 1
    assert run.plan.years == plan.years and run.plan.schools == plan.schools
    assert run.plan.skipped.sort(pl.all()).equals(plan.skipped.sort(pl.all()))
    assert set(expected) == set(RESULT_TABLES)
    for table in RESULT_TABLES:
        assert run.rows[table] == expected[table].height
        _same(expected[table], _stored(settings, table, run.versions[table]), KEYS[table])
    annual = _stored(settings, "annual_results", run.versions["annual_results"])
    assert annual["average_s1"].null_count() == annual.height
    assert annual["average_s2"].drop_nulls().len()

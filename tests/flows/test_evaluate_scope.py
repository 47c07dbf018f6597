"""A re-run of the evaluation replaces exactly its scope, under Prefect, on a home whose
warehouse holds two school years and both semesters of each.

The home is built once: a night with the two years' lists and marks, except the NotesCC files
of four classes of one school (both years, both semesters). Before each evaluation, one of those
classes arrives and is consolidated (no evaluation): every (year, semester) of the warehouse then
has marks that its results do not reflect yet. Each combination of options is run once:

    --year Y --semester 1   --year Y   --semester 2   (none)

and after each, the rows of every result table per (year, semester) are checked against an
independent count made with DuckDB over the warehouse: the cells in the run's scope equal what
the marks give, the others are exactly as before (and differ from what the marks give, so that
a run overreaching its scope would be seen). The annual results of the years in scope follow the
semester results the warehouse holds after the run (semester re-runs included).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest

from flows.evaluate import evaluate
from flows.ingest import ingest_submissions
from flows.nightly import nightly, nightly_consolidation
from massar.home import init_home
from massar.synthetic import generate_province
from tests.conftest import TEST_SCHOOLS, TEST_SEED, TEST_YEAR
from warehouse.control import ControlDatabase
from warehouse.delta import current_version, read_table
from warehouse.query import run_query

EARLIER = "2022/2023"
LATER = TEST_YEAR  # the session's province
YEARS = (EARLIER, LATER)
CELLS = [(year, semester) for year in YEARS for semester in (1, 2)]
# the evaluations, in order: (year, semester) options, and the (year, semester) they rewrite
RUNS = [
    ((EARLIER, 1), [(EARLIER, 1)]),
    ((LATER, None), [(LATER, 1), (LATER, 2)]),
    ((None, 2), [(EARLIER, 2), (LATER, 2)]),
    ((None, None), CELLS),
]
TABLES = ("subject_results", "semester_results", "annual_results", "exam_results")


def _schools(province: Path) -> list[Path]:
    return sorted(p for p in province.iterdir() if p.is_dir() and p.name[:5].isdigit())


def _class_of(path: Path) -> str:
    """``export_notesCC_<class>_<n>.xlsx`` → the class code."""
    return path.stem.split("_")[2]


def _held_classes(province: Path) -> tuple[str, list[str]]:
    """A school whose NotesCC files lie in S1/ and S2/ folders, and four of its classes."""
    for school in _schools(province):
        files = sorted((school / "NotesCC" / "S1").glob("export_notesCC_*.xlsx"))
        classes = sorted({_class_of(f) for f in files})
        if len(classes) >= len(RUNS):
            return school.name, classes[: len(RUNS)]
    raise AssertionError("the generated province has no school with class folders per semester")


def _copy(source: Path, target: Path, keep) -> None:  # type: ignore[no-untyped-def]
    for path in sorted(source.rglob("*")):
        if path.is_file() and keep(path.relative_to(source)):
            (target / path.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / path.relative_to(source))


def _frame(settings, table: str) -> pl.DataFrame:
    """The table's current version (what the evaluation wrote or the consolidation left)."""
    if current_version(settings.warehouse, table) < 0:
        return pl.DataFrame()
    frame = pl.from_arrow(read_table(settings.warehouse, table).to_table())
    assert isinstance(frame, pl.DataFrame)
    return frame


def _counts(settings) -> dict[str, dict[tuple, int]]:
    """Rows of each result table: subject and semester results per (year, semester), annual
    results per (year, semesters counted), exam results per (year, exam, session)."""
    keys = {
        "subject_results": ["school_year", "semester"],
        "semester_results": ["school_year", "semester"],
        "annual_results": ["school_year", "semesters_counted"],
        "exam_results": ["school_year", "exam", "session"],
    }
    out = {}
    for table, by in keys.items():
        frame = _frame(settings, table)
        counted = frame.group_by(by).len().iter_rows() if frame.height else []
        out[table] = {tuple(row[:-1]): row[-1] for row in counted}
    return out


def _expected(settings) -> dict[str, dict[tuple, int]]:
    """What the warehouse's inputs give, counted with DuckDB: subject and semester results
    from the marks of actively enrolled pupils; annual results from the semester results the
    warehouse holds (a pupil's semesters with an average)."""
    marks = _frame(settings, "marks").to_arrow()  # noqa: F841 (read by DuckDB)
    enrollments = _frame(settings, "enrollments").to_arrow()  # noqa: F841
    semesters = _frame(settings, "semester_results").to_arrow()  # noqa: F841
    db = duckdb.connect()
    evaluable = """(select m.* from marks m join enrollments e using
                    (school_code, school_year, student_code) where e.status = 'active')"""
    subject = db.execute(
        f"""select school_year, semester::bigint, count(*) from (select distinct school_code,
            school_year, class_code, student_code, subject_code, semester from {evaluable})
            group by all"""
    ).fetchall()
    semester = db.execute(
        f"""select school_year, semester::bigint, count(*) from (select distinct school_code,
            school_year, student_code, semester from {evaluable}) group by all"""
    ).fetchall()
    annual = db.execute(
        """select school_year, counted, count(*) from (select school_code, school_year,
           student_code, count(average) as counted from semesters group by all) group by all"""
    ).fetchall()
    db.close()
    return {
        "subject_results": {(y, s): n for y, s, n in subject},
        "semester_results": {(y, s): n for y, s, n in semester},
        "annual_results": {(y, c): n for y, c, n in annual},
    }


def _published_counts(settings) -> dict[str, dict[tuple, int]]:
    """Rows per (year, semester) of the subject and semester results at the last published
    night, as 'massar query' reads them."""
    database = ControlDatabase(settings.resolved_database_url)
    try:
        return {
            table: {
                (row["school_year"], row["semester"]): row["n"]
                for row in run_query(
                    f"select school_year, semester, count(*) as n from {table} group by all",
                    warehouse=settings.warehouse,
                    database=database,
                ).to_pylist()
            }
            for table in ("subject_results", "semester_results")
        }
    finally:
        database.dispose()


@pytest.fixture(scope="module")
def scoped(prefect_server, province, tmp_path_factory):
    """Build the home, then run each evaluation of ``RUNS`` after the arrival of one held
    class; returns the home and, per run, the counts before, after, and expected."""
    earlier = tmp_path_factory.mktemp("province-earlier")
    generate_province(earlier, schools=TEST_SCHOOLS, seed=TEST_SEED, year=EARLIER)
    school, classes = _held_classes(province)
    settings = init_home(tmp_path_factory.mktemp("scope-home") / "home")

    def arrives(released: set[str]):  # type: ignore[no-untyped-def]
        def keep(relative: Path) -> bool:
            held = relative.parts[0] == school and relative.name.startswith("export_notesCC_")
            return not held or _class_of(relative) in released

        return keep

    def place(released: set[str]) -> None:
        keep = arrives(released)
        # the earlier year's lists, marks and exams, in a folder of their own per school
        for path in _schools(earlier):
            _copy(
                path,
                settings.inbox / path.name / "2022-2023",
                lambda r, code=path.name: (
                    (
                        r.name.startswith(("ListEleve", "export_notesCC_", "Export_"))
                        or r.name in ("exam_marks.csv", "classes.xlsx")
                    )
                    and keep(Path(code) / r)
                ),
            )
        for path in _schools(province):
            _copy(path, settings.inbox / path.name, lambda r, code=path.name: keep(Path(code) / r))

    place(set())
    state = nightly(settings, return_state=True)
    assert state.is_completed(), state.message
    baseline = _counts(settings)
    steps = []
    for number, ((year, semester), scope) in enumerate(RUNS):
        place(set(classes[: number + 1]))
        ingest_submissions(settings)
        nightly_consolidation(settings)
        before, marks_say = _counts(settings), _expected(settings)
        published = _published_counts(settings)  # the consolidation's night, as queries see it
        summary = evaluate(settings, year=year, semester=semester)
        after = _counts(settings)
        steps.append(
            {
                "options": (year, semester),
                "scope": scope,
                "before": before,
                "marks_say": marks_say,
                "after": after,
                "annual_say": _expected(settings)["annual_results"],
                "summary": summary,
                "published": published,
            }
        )
    return settings, baseline, steps


def test_the_home_holds_two_years_and_both_semesters(scoped):
    _, baseline, steps = scoped
    for table in ("subject_results", "semester_results"):
        assert set(baseline[table]) == set(CELLS), table
    assert {year for year, _ in baseline["annual_results"]} == set(YEARS)
    assert {year for year, *_ in baseline["exam_results"]} == set(YEARS)
    # every run finds marks its results do not reflect yet, in every (year, semester)
    for step in steps:
        for table in ("subject_results", "semester_results"):
            for cell in CELLS:
                assert step["before"][table][cell] < step["marks_say"][table][cell], (
                    step["options"],
                    table,
                    cell,
                )


def test_a_night_of_consolidation_keeps_the_results_published(scoped):
    """A night that consolidates new marks without evaluating them (the evaluation comes
    next, or failed) still publishes the results the warehouse holds: queries, statistics and
    the next evaluation's history read them."""
    _, _, steps = scoped
    for step in steps:
        for table in ("subject_results", "semester_results"):
            assert step["published"][table] == step["before"][table], table


@pytest.mark.parametrize("run", range(len(RUNS)), ids=["year+semester", "year", "semester", "none"])
def test_a_run_rewrites_its_scope_and_keeps_the_rest(scoped, run):
    _, _, steps = scoped
    step = steps[run]
    for table in ("subject_results", "semester_results"):
        for cell in CELLS:
            got = step["after"][table].get(cell)
            if cell in step["scope"]:
                assert got == step["marks_say"][table][cell], (table, cell)
            else:
                assert got == step["before"][table][cell], (table, cell)
    years = {year for year, _ in step["scope"]}
    annual_after = step["after"]["annual_results"]
    for key in {**step["before"]["annual_results"], **annual_after}:
        if key[0] in years:  # recomputed from the semester results the warehouse holds
            assert annual_after.get(key) == step["annual_say"].get(key), key
        else:
            assert annual_after.get(key) == step["before"]["annual_results"].get(key), key
    for key in step["annual_say"]:
        if key[0] in years:
            assert key in annual_after, key
    # exams: the years in scope are computed again (same candidates), the others kept
    assert step["after"]["exam_results"] == step["before"]["exam_results"]


def test_a_semester_run_moves_the_annual_results_with_it(scoped):
    """The annual results follow the semester re-run: pupils of the class that arrived count
    one more semester."""
    _, _, steps = scoped
    step = steps[0]  # --year EARLIER --semester 1: the first class's S1 and S2 arrived
    before, after = step["before"]["annual_results"], step["after"]["annual_results"]
    assert before != after
    assert sum(n for (y, _), n in after.items() if y == EARLIER) >= sum(
        n for (y, _), n in before.items() if y == EARLIER
    )


def test_the_summary_says_what_was_rewritten(scoped):
    _, _, steps = scoped
    scopes = [step["summary"]["scope"] for step in steps]
    assert scopes[0].startswith(f"Rewritten: semester 1 of school year {EARLIER},")
    assert "semester 2 as the warehouse holds it" in scopes[0]
    assert scopes[1] == (
        f"Rewritten: every result of school year {LATER}; results of other school years are kept."
    )
    assert scopes[2].startswith(
        f"Rewritten: semester 2 of every school year with marks ({EARLIER}, {LATER}),"
    )
    assert scopes[3] == (
        f"Rewritten: every result of every school year with marks ({EARLIER}, {LATER}); "
        "results of other school years are kept."
    )

"""The evaluate flow on a consolidated province: result tables published with the night,
the e-services extract per school and the statistics report."""

from __future__ import annotations

import json
import shutil

import pytest

from flows.evaluate import evaluate
from flows.nightly import nightly
from massar.home import init_home
from warehouse.control import ControlDatabase
from warehouse.query import run_query


def _query(settings, sql):
    database = ControlDatabase(settings.resolved_database_url)
    try:
        return run_query(sql, warehouse=settings.warehouse, database=database).to_pylist()
    finally:
        database.dispose()


@pytest.fixture(scope="module")
def evaluated(prefect_server, province, tmp_path_factory):
    settings = init_home(tmp_path_factory.mktemp("eval-home") / "home")
    for school in sorted(p for p in province.iterdir() if p.is_dir() and p.name[:5].isdigit()):
        shutil.copytree(school, settings.inbox / school.name)
    result = nightly(settings)
    return settings, result


def test_nightly_publishes_every_result_table(evaluated):
    settings, result = evaluated
    rows = result["evaluation"]["rows"]
    assert set(rows) >= {"subject_results", "semester_results", "annual_results"}
    pupils = _query(settings, "select count(*) as n from enrollments where status = 'active'")
    annual = _query(
        settings,
        "select count(*) as n, min(average) as low, max(average) as top from annual_results",
    )[0]
    assert annual["n"] == rows["annual_results"] > 0
    assert annual["n"] <= pupils[0]["n"]
    assert 0 <= annual["low"] <= annual["top"] <= 20
    ranks = _query(
        settings, "select count(*) as bad from semester_results where rank < 1 or rank > class_size"
    )[0]
    assert ranks["bad"] == 0


def test_each_school_gets_its_eservices_file_and_officers_their_report(evaluated):
    settings, result = evaluated
    year = result["evaluation"]["year"].replace("/", "-")
    folders = sorted((settings.exchange / "eservices" / year).iterdir())
    assert len(folders) == result["evaluation"]["eservices_files"] // 2
    for folder in folders:
        first = json.loads((folder / "eservices.jsonl").read_text("utf-8").splitlines()[0])
        assert first["school_code"] == folder.name
        assert not {"family_name", "first_name", "birth_date"} & set(first)
    report = settings.reports / "province" / f"statistics_{year}.html"
    assert report.is_file() and list(report.parent.glob("*.png"))


def test_evaluating_again_gives_the_same_results(evaluated):
    settings, _ = evaluated
    before = _query(
        settings, "select round(sum(average), 6) as s, count(*) as n from annual_results"
    )
    evaluate(settings)
    assert (
        _query(settings, "select round(sum(average), 6) as s, count(*) as n from annual_results")
        == before
    )


def _page_tables(page: str) -> dict[str, list[list[list[str]]]]:
    """French heading → the tables under it (rows of cell texts), in the page's order."""
    import html as markup
    import re

    tables = {}
    for heading, body in re.findall(r"<h[23]>(.*?)</h[23]>\s*<table>(.*?)</table>", page, re.S):
        french = re.sub(r"<[^>]+>", "", heading.split("<span lang='fr'>")[-1]).strip()
        rows = [
            [
                markup.unescape(re.sub(r"<[^>]+>", " ", cell)).strip()
                for cell in re.findall(r"<td[^>]*>(.*?)</td>", row)
            ]
            for row in re.findall(r"<tr>(.*?)</tr>", body)
        ]
        tables.setdefault(french, []).append([r for r in rows if r])
    return tables


def test_statistics_page_figures_match_the_warehouse(evaluated):
    """Pass rates by cycle and exam results on the page, against DuckDB over the published
    result tables, with what a pass is read from the rules files themselves."""
    import tomllib

    from schemas.evaluation_rules import RULES_DIR

    settings, result = evaluated
    year = result["evaluation"]["year"]
    page = (settings.reports / "province" / f"statistics_{year.replace('/', '-')}.html").read_text(
        "utf-8"
    )
    tables = _page_tables(page)
    passes = {
        cycle: tomllib.loads((RULES_DIR / f"{cycle}.toml").read_text("utf-8"))["decisions"][
            "pass_decisions"
        ]
        for cycle in ("primary", "college", "lycee")
    }
    levels = RULES_DIR.parent / "reference" / "levels.csv"
    pass_cases = " ".join(
        f"when l.cycle = '{cycle}' then a.decision in ({', '.join(repr(d) for d in ds)})"
        for cycle, ds in passes.items()
    )
    # the published results through massar query (which reads only published tables), the
    # levels' cycles from the reference file by DuckDB beside it
    import duckdb
    import pyarrow as pa

    published = pa.Table.from_pylist(  # noqa: F841 (read by DuckDB)
        _query(
            settings,
            f"select level_code, decision from annual_results where school_year = '{year}'",
        )
    )
    by_cycle = [
        dict(zip(("cycle", "pupils", "passed"), row, strict=True))
        for row in duckdb.sql(
            f"""select l.cycle, count(*) as pupils,
                       sum((case {pass_cases} else false end)::int) as passed
                from published a join read_csv('{levels}', all_varchar = true) l
                     using (level_code)
                group by l.cycle"""
        ).fetchall()
    ]
    assert {r["cycle"] for r in by_cycle} == {"primary", "college", "lycee"}
    french = {"primary": "Primaire", "college": "Collège", "lycee": "Lycée"}
    page_cycles = {row[0].split(" · ")[1]: row for row in tables["Par cycle"][0]}
    for row in by_cycle:
        cells = page_cycles[french[row["cycle"]]]
        assert (int(cells[1]), int(cells[3])) == (row["pupils"], row["passed"]), row
        assert cells[4] == f"{100 * row['passed'] / row['pupils']:.1f} %", row
    college = next(r for r in by_cycle if r["cycle"] == "college")
    assert college["passed"] > 0  # oriented pupils of 3APIC pass

    exams = _query(
        settings,
        f"""with final as (
                select * from exam_results where school_year = '{year}'
                qualify row_number() over (
                    partition by school_code, student_code, exam
                    order by session = 'makeup' desc) = 1)
            select exam, count(*) as candidates,
                   count(*) filter (result = 'passed') as passed, avg(final_average) as mean
            from final group by exam""",
    )
    assert exams, "the province has exam results"
    page_exams = {row[0].split(" · ")[1]: row for row in tables["Province"][1]}  # exams
    labels = {
        "primary_certificate": "Examen de 6e année primaire",
        "college_certificate": "Certificat du collège (3e année)",
        "baccalaureate": "Baccalauréat",
    }
    for row in exams:
        cells = page_exams[labels[row["exam"]]]
        assert (int(cells[1]), int(cells[2])) == (row["candidates"], row["passed"]), row
        assert cells[3] == f"{100 * row['passed'] / row['candidates']:.1f} %", row
        mean = "—" if row["mean"] is None else f"{row['mean']:.2f}"
        assert cells[4].split(" /")[0] == mean, row

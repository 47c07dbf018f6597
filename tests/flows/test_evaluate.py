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

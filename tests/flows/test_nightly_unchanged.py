"""Nothing recomputed that did not change (issue 17, item 2), under Prefect: after a first
night, a night with nothing new rewrites no output; a resubmission from one school rewrites
that school's outputs and the province-wide ones only; a change of a rules file recomputes
every school's results."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flows.nightly import nightly
from massar.home import init_home
from warehouse.control import ControlDatabase
from warehouse.delta import table_versions
from warehouse.query import run_query

SCHOOLS = 3
CAMPAIGNS = """
[[campaign]]
id = "s1-2023"
school_year = "2023/2024"
period = "semester_1"
datasets = ["classes", "students", "marks", "exam_marks"]
opens = 2024-01-15
deadline = 2024-02-10
"""


def _school_folders(province: Path) -> list[Path]:
    return sorted(p for p in province.iterdir() if p.is_dir() and p.name[:5].isdigit())


def _outputs(settings) -> dict[str, int]:
    """Every file the nights derive (school reports, province reports, e-services extract),
    with its modification time in nanoseconds."""
    found = {}
    for root in (settings.reports, settings.exchange / "eservices"):
        for path in root.rglob("*"):
            if path.is_file():
                found[str(path.relative_to(settings.home))] = path.stat().st_mtime_ns
    return found


def _changed(before: dict[str, int], after: dict[str, int]) -> set[str]:
    return {name for name, mtime in after.items() if before.get(name) != mtime}


def _snapshots(settings) -> int:
    from sqlalchemy import func, select

    from warehouse.coverage import CoverageSnapshot

    database = ControlDatabase(settings.resolved_database_url)
    try:
        with database.session() as session:
            return int(session.scalar(select(func.count()).select_from(CoverageSnapshot)) or 0)
    finally:
        database.dispose()


def _schools_with_results(settings) -> set[str]:
    database = ControlDatabase(settings.resolved_database_url)
    try:
        rows = run_query(
            "select distinct school_code from annual_results",
            warehouse=settings.warehouse,
            database=database,
        ).to_pylist()
    finally:
        database.dispose()
    return {row["school_code"] for row in rows}


@pytest.fixture(scope="module")
def first_night(prefect_server, province, tmp_path_factory):
    settings = init_home(tmp_path_factory.mktemp("unchanged-home") / "home")
    (settings.home / "campaigns.toml").write_text(CAMPAIGNS, encoding="utf-8")  # a coverage page
    for school in _school_folders(province)[:SCHOOLS]:
        shutil.copytree(school, settings.inbox / school.name)
    result = nightly(settings)
    assert result["evaluation"]["eservices_files"] > 0  # the first night made every output
    return settings, result


def test_an_unchanged_night_rewrites_no_output(first_night):
    settings, first = first_night
    assert not first["changes"].startswith("nothing changed")
    files, versions = _outputs(settings), table_versions(settings.warehouse)
    snapshots = _snapshots(settings)
    assert snapshots
    assert any(name.startswith("exchange/eservices/") for name in files)
    assert any("statistics_" in name for name in files)
    assert "reports/province/coverage.html" in files

    again = nightly(settings)

    assert again["changes"].startswith("nothing changed"), again["changes"]
    assert again["ingest"]["new_submissions"] == 0
    assert again["evaluation"]["fingerprints"] == {"unchanged": True}
    assert _snapshots(settings) == snapshots  # the coverage: no new point, the page stands
    assert table_versions(settings.warehouse) == versions  # no Delta table written
    assert _outputs(settings) == files  # no file written: same names, same dates


def test_a_resubmission_rewrites_its_school_and_the_province_outputs_only(first_night):
    settings, _ = first_night
    nightly(settings)  # whatever an earlier test left: a settled warehouse
    files, versions = _outputs(settings), table_versions(settings.warehouse)
    schools = sorted(p.name for p in _school_folders(settings.inbox))
    # one school sends its exam marks again with one mark of this year's local exam corrected
    # (a paper that counts this year: the regional paper of 1BAC counts only next year)
    school, path, lines, row = next(
        (code, path, lines, i)
        for code in schools
        for path in [settings.inbox / code / "exam_marks.csv"]
        for lines in [path.read_text(encoding="utf-8-sig").splitlines()]
        for i, line in enumerate(lines)
        if i and line.split(",")[4] == "محلي"
    )
    cells = lines[row].split(",")
    cells[-2] = "9.75" if cells[-2] != "9.75" else "8.5"
    lines[row] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8-sig")

    result = nightly(settings)

    assert result["ingest"]["new_submissions"] == 1
    fingerprints = result["evaluation"]["fingerprints"]
    assert fingerprints["recomputed"] == [school], fingerprints
    assert fingerprints["kept"] == SCHOOLS - 1
    changed = _changed(files, _outputs(settings))
    others = [code for code in schools if code != school]
    # that school's report and e-services extract, and the province's pages
    assert f"reports/{school}/rapport_{school}.html" in changed
    assert any(name.startswith("exchange/eservices/") and f"/{school}/" in name for name in changed)
    # the province's statistics were made again (the page is rewritten only if its bytes
    # differ: one corrected mark may not move a rate shown to a tenth)
    assert Path(result["evaluation"]["statistics_report"]).is_file()
    for name in changed:
        assert not any(
            f"/{code}/" in name or name.startswith(f"reports/{code}/") for code in others
        ), name
    # only the tables written from exam marks, and the exam results
    after = table_versions(settings.warehouse)
    written = {table for table, version in after.items() if versions.get(table) != version}
    assert written == {"exam_marks", "exam_results"}, written


def test_a_changed_rules_file_recomputes_every_school(first_night, monkeypatch, tmp_path):
    from schemas import evaluation_rules

    settings, _ = first_night
    nightly(settings)  # a settled warehouse
    files = _outputs(settings)
    rules = tmp_path / "evaluation"
    shutil.copytree(evaluation_rules.RULES_DIR, rules)
    for name in ("primary.toml", "college.toml", "lycee.toml"):
        text = (rules / name).read_text(encoding="utf-8")
        # an officer raises the bar of promotion by one point in every cycle
        lines = [
            f"promote_at = {float(line.split('=')[1].split('#')[0]) + 1}"
            if line.startswith("promote_at")
            else line
            for line in text.splitlines()
        ]
        (rules / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.setattr(evaluation_rules, "RULES_DIR", rules)

    result = nightly(settings)

    assert result["ingest"]["new_submissions"] == 0
    fingerprints = result["evaluation"]["fingerprints"]
    assert set(fingerprints["recomputed"]) >= _schools_with_results(settings)
    assert fingerprints["kept"] == 0
    changed = _changed(files, _outputs(settings))
    for school in _schools_with_results(settings):
        assert any(f"/{school}/" in name for name in changed if "eservices" in name), school

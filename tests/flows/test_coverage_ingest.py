"""Coverage where an officer looks, after the ingest flow under Prefect: the ``coverage``
artifact (the province's rate and the schools still owing, no pupil data), a snapshot per
ingest in the control database, the province's page with its chart and its table sorted by
what is missing, each school's report listing what it still owes, ``massar coverage`` and the
``coverage`` table of ``massar query``."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from flows.ingest import ingest_submissions
from massar.cli import main
from massar.demo import load_school_reference
from massar.home import init_home
from tasks.coverage_page import page_path
from tests.tasks.test_coverage_province import file_keys
from warehouse.control import ControlDatabase
from warehouse.coverage import CoverageSnapshot
from warehouse.query import run_query

STUDENT_CODE = re.compile(r"\b[A-Z]\d{9}\b")
SCHOOL = "73578M"  # the primary school with two satellites
CAMPAIGNS = """
[[campaign]]
id = "s1-2023"
school_year = "2023/2024"
period = "semester_1"
datasets = ["classes", "students", "marks"]
opens = 2024-01-15
deadline = 2024-02-10
"""


def _ingest(settings):
    state = ingest_submissions(settings, return_state=True)
    assert state.is_completed(), state.message
    return state.result(), state.state_details.flow_run_id


def _artifacts(flow_run_id):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async def read():
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
                )
            )

    return {a.key: a for a in asyncio.run(read())}


def _snapshots(settings):
    database = ControlDatabase(settings.resolved_database_url)
    try:
        with database.session() as session:
            return list(
                session.scalars(select(CoverageSnapshot).order_by(CoverageSnapshot.snapshot_id))
            )
    finally:
        database.dispose()


@pytest.fixture(scope="module")
def two_ingests(prefect_server, province, tmp_path_factory):
    """A first ingest without the first-semester NotesCC of one school's 1APG and 2APG
    classes, then a second one with them."""
    settings = init_home(tmp_path_factory.mktemp("coverage-flow") / "home")
    (settings.home / "campaigns.toml").write_text(CAMPAIGNS, encoding="utf-8")
    load_school_reference(settings, province / "schools.csv")
    later: list[Path] = []
    held: set[tuple[str, ...]] = set()
    for source in sorted(p for p in province.rglob("*") if p.is_file()):
        relative = source.relative_to(province)
        if len(relative.parts) < 2 or not re.fullmatch(r"\d{5}[A-Z]", relative.parts[0]):
            continue
        name = relative.name
        if relative.parts[0] == SCHOOL and re.match(r"export_notesCC_[12]APG-", name):
            keys = file_keys(source, SCHOOL, str(relative))
            if next(iter(keys))[4] == "1":
                later.append(relative)
                held |= keys
                continue
        (settings.inbox / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, settings.inbox / relative)
    first, first_run = _ingest(settings)
    page = page_path(settings).read_text(encoding="utf-8")
    xlsx = load_workbook(settings.reports / SCHOOL / f"rapport_{SCHOOL}.xlsx")
    snapshots_after_first = _snapshots(settings)
    for relative in later:
        (settings.inbox / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(province / relative, settings.inbox / relative)
    second, _ = _ingest(settings)
    return {
        "settings": settings,
        "held": held,
        "first": first,
        "first_run": first_run,
        "first_page": page,
        "first_xlsx": xlsx,
        "first_snapshots": snapshots_after_first,
        "second": second,
    }


def test_the_ingest_publishes_the_coverage_artifact_without_pupil_data(two_ingests):
    found = _artifacts(two_ingests["first_run"])
    assert "coverage" in found
    text = str(found["coverage"].data)
    assert "s1-2023" in text and SCHOOL in text
    assert f"| {SCHOOL} | primary | {len(two_ingests['held'])} |" in text
    assert not STUDENT_CODE.search(text)
    assert two_ingests["first"]["coverage"]["rates"]["s1-2023"] < 100
    assert two_ingests["second"]["coverage"]["rates"]["s1-2023"] == 100


def test_each_ingest_records_a_snapshot_per_cycle(two_ingests):
    first = two_ingests["first_snapshots"]
    assert {s.cycle for s in first} == {"primary", "college", "lycee"}
    primary = next(s for s in first if s.cycle == "primary")
    assert primary.missing == len(two_ingests["held"])
    everything = _snapshots(two_ingests["settings"])
    assert len(everything) == 2 * len(first)
    latest = [s for s in everything if s.snapshot_id > max(x.snapshot_id for x in first)]
    assert all(s.missing == 0 and s.rate == 1.0 for s in latest)


def test_the_province_page_has_its_chart_and_the_most_missing_school_first(two_ingests):
    page = two_ingests["first_page"]
    assert '<img alt="taux de couverture par cycle" src="data:image/png;base64,' in page
    first_row = page.split("<tbody>", 1)[1].split("</tr>", 1)[0]
    assert SCHOOL in first_row
    assert not STUDENT_CODE.search(page)


def test_the_school_report_lists_exactly_what_it_still_owes(two_ingests):
    sheet = two_ingests["first_xlsx"]["المستحقات - Couverture"]
    rows = list(sheet.iter_rows(min_row=2, values_only=True))
    listed = {
        (SCHOOL, "marks", row[3], row[4].split(" ", 1)[0], str(row[5]))
        for row in rows
        if row[0] == "s1-2023"
    }
    assert listed == two_ingests["held"]
    settings = two_ingests["settings"]
    html = (settings.reports / SCHOOL / f"rapport_{SCHOOL}.html").read_text(encoding="utf-8")
    assert "Ce qu'il reste à envoyer" in html  # after the second ingest: nothing left
    assert "لا شيء" in html


def test_massar_coverage_and_the_query_table(two_ingests, capsys):
    settings = two_ingests["settings"]
    home = ["--home", str(settings.home)]
    assert main(["coverage", *home, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["school_code"] for r in rows} == {"73121E", "73578M", "59819H", "50994X"}
    assert all(r["missing"] == 0 and r["rate"] == 100.0 for r in rows)
    assert main(["coverage", *home, "--school", "85851K", "--format", "csv"]) == 0
    assert capsys.readouterr().out.startswith('"campaign","school_code","dataset"')
    assert main(["coverage", *home, "--campaign", "s9"]) == 1
    assert "There is no campaign 's9'; the campaigns are s1-2023." in capsys.readouterr().err
    assert main(["coverage", *home, "--format", "xml"]) == 2
    database = ControlDatabase(settings.resolved_database_url)
    try:
        table = run_query(
            "select state, count(*) as n from coverage where school_code = '73578M' group by 1",
            warehouse=settings.warehouse,
            database=database,
        ).to_pylist()
    finally:
        database.dispose()
    assert table == [{"state": "accepted", "n": table[0]["n"]}]


def test_a_coverage_that_cannot_be_written_does_not_fail_the_ingest(
    prefect_server, province, tmp_path
):
    """The files are in whatever happens to the coverage's page: the ingest completes, its
    summary says in a sentence why the coverage is not up to date, and the school is ingested."""
    settings = init_home(tmp_path / "home")
    (settings.home / "campaigns.toml").write_text(CAMPAIGNS, encoding="utf-8")
    load_school_reference(settings, province / "schools.csv")
    shutil.copytree(province / SCHOOL, settings.inbox / SCHOOL)
    blocked = page_path(settings).parent
    blocked.parent.mkdir(parents=True, exist_ok=True)
    blocked.write_text("a file where the province's folder should be", encoding="utf-8")

    summary, _ = _ingest(settings)

    assert "could not be brought up to date" in summary["coverage"]["error"]
    assert "the files are ingested" in summary["coverage"]["error"]
    assert summary["coverage"]["campaigns"] == 0
    assert not page_path(settings).exists()
    database = ControlDatabase(settings.resolved_database_url)
    try:
        states = (
            run_query(
                "select distinct state from submissions",
                warehouse=settings.warehouse,
                database=database,
            )
            .column("state")
            .to_pylist()
        )
    finally:
        database.dispose()
    assert states and set(states) <= {"accepted", "partially_accepted", "rejected"}

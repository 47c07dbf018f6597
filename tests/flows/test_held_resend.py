"""The guardians case under Prefect: a school with 627 guardians resends a 4-line file. The
ingest flow holds it, the night leaves the warehouse as it was, the school's report and
``massar status`` say why; ``massar confirm`` lets the next night apply it, and a complete file
is applied without confirmation. A file dropped at the inbox's root is shown in the ingest
artifacts and in ``massar status``."""

from __future__ import annotations

import asyncio
import csv
import shutil
from pathlib import Path

import pytest
from lxml import html as lxml_html

from flows.ingest import ingest_submissions
from flows.nightly import nightly_consolidation
from ground.settings import Settings
from massar.cli import main
from massar.home import init_home
from warehouse.control import ControlDatabase
from warehouse.query import run_query

SCHOOL = "73578M"  # a school of the test province (conftest: 6 schools, seed 7)
GUARDIANS = 627
LOOSE = "notes_sans_dossier.xlsx"


def _lines(source: Path, count: int) -> str:
    text = source.read_text(encoding="utf-8-sig").splitlines()
    return "\n".join(text[: count + 1]) + "\n"


def _csv_rows(path: Path) -> int:
    """Guardians in a CSV file, counted without the platform."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return sum(1 for _ in csv.DictReader(handle))


def _ingest(settings: Settings) -> tuple[dict, str]:
    state = ingest_submissions(settings, return_state=True)
    assert state.is_completed(), state.message
    return state.result(), str(state.state_details.flow_run_id)


def _night(settings: Settings) -> int:
    """Consolidate; the school's guardians in the published warehouse."""
    state = nightly_consolidation(settings, return_state=True)
    assert state.is_completed(), state.message
    database = ControlDatabase(settings.resolved_database_url)
    try:
        table = run_query(
            f"select count(*) as n from guardians where school_code = '{SCHOOL}'",
            warehouse=settings.warehouse,
            database=database,
        )
    finally:
        database.dispose()
    return int(table.to_pylist()[0]["n"])


def _artifacts(flow_run_id: str) -> dict:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async def read():
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
                )
            )

    return {artifact.key: artifact for artifact in asyncio.run(read())}


def _report_text(settings: Settings) -> str:
    page = (settings.reports / SCHOOL / f"rapport_{SCHOOL}.html").read_text(encoding="utf-8")
    return lxml_html.fromstring(page).text_content()


def _command(capsys, *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(list(args))
    return code, capsys.readouterr().out


@pytest.fixture(scope="module")
def first_night(prefect_server, province, tmp_path_factory):
    """The school's whole folder, with 627 guardians, ingested and consolidated; a workbook
    was dropped at the inbox's root by mistake."""
    settings = init_home(tmp_path_factory.mktemp("held") / "home")
    shutil.copytree(province / SCHOOL, settings.inbox / SCHOOL)
    guardians = settings.inbox / SCHOOL / "guardians.csv"
    guardians.write_text(_lines(province / SCHOOL / "guardians.csv", GUARDIANS), encoding="utf-8")
    loose = next((province / SCHOOL / "NotesCC").rglob("*.xlsx"))
    shutil.copy(loose, settings.inbox / LOOSE)
    summary, flow_run_id = _ingest(settings)
    assert summary["totals"]["held"] == 0  # a first submission is never held
    assert _night(settings) == GUARDIANS == _csv_rows(guardians)
    return settings, summary, flow_run_id


def test_a_loose_file_is_in_the_ingest_artifacts(first_night):
    _, summary, flow_run_id = first_night
    assert summary["totals"]["stray_entries"] == [LOOSE]
    found = _artifacts(flow_run_id)
    strays = found["ingest-inbox-strays"]
    assert LOOSE in str(strays.data) and "inbox/<school code>/" in str(strays.data)
    assert LOOSE in str(found["ingest-by-school"].description)


def test_the_guardians_case(first_night, province, capsys):
    settings, _, _ = first_night
    source = province / SCHOOL / "guardians.csv"
    (settings.inbox / SCHOOL / "guardians.csv").write_text(_lines(source, 4), encoding="utf-8")
    summary, flow_run_id = _ingest(settings)
    assert (summary["totals"]["new_submissions"], summary["totals"]["held"]) == (1, 1)
    table = _artifacts(flow_run_id)["ingest-by-school"]
    assert '"held resends": 1' in str(table.data) and "1 resend(s) held" in table.description
    assert _night(settings) == GUARDIANS  # the night leaves the warehouse as it was

    report = _report_text(settings)
    assert "remplacerait les 627 lignes" in report and "par les 4 lignes acceptées" in report
    assert "627" in report and "en attente de confirmation" in report

    code, status = _command(capsys, "status", "--home", str(settings.home))
    assert code == 0 and "Resends held" in status and LOOSE in status
    database = ControlDatabase(settings.resolved_database_url)
    try:
        (held,) = run_query(
            "select submission_id, state from submissions where dataset = 'guardians' "
            "and state <> 'superseded' order by submission_id desc limit 1",
            warehouse=settings.warehouse,
            database=database,
        ).to_pylist()
    finally:
        database.dispose()
    assert held["state"] == "accepted"  # one of the public states
    assert f"│ {held['submission_id']} " in status

    code, said = _command(
        capsys,
        "confirm",
        str(held["submission_id"]),
        "--by",
        "Fatima",
        "--home",
        str(settings.home),
    )
    assert code == 0 and "confirmed by Fatima" in said and "627" in said
    assert _night(settings) == 4  # the next night applies it
    code, _ = _command(capsys, "confirm", str(held["submission_id"]), "--home", str(settings.home))
    assert code == 1  # nothing left to confirm

    # the school sends a complete file (a new export: one guardian more): applied at once
    (settings.inbox / SCHOOL / "guardians.csv").write_text(
        _lines(source, GUARDIANS + 1), encoding="utf-8"
    )
    summary, _ = _ingest(settings)
    assert (summary["totals"]["new_submissions"], summary["totals"]["held"]) == (1, 0)
    assert _night(settings) == GUARDIANS + 1


def test_the_prefect_form_confirms_a_held_resend(first_night, province):
    import yaml

    from flows.confirm import confirm_resend

    settings, _, _ = first_night
    source = province / SCHOOL / "guardians.csv"
    (settings.inbox / SCHOOL / "guardians.csv").write_text(_lines(source, 3), encoding="utf-8")
    summary, _ = _ingest(settings)
    assert summary["totals"]["held"] == 1
    before = _night(settings)
    assert before > 3  # held: the night kept the earlier lines

    # the deployment's run form: the submission and the officer's name, both required
    schema = confirm_resend.parameters
    assert {"submission", "confirmed_by"} <= set(schema.required or [])
    deployments = yaml.safe_load((Path(__file__).parents[2] / "prefect.yaml").read_text())
    (deployment,) = [d for d in deployments["deployments"] if d["name"] == "confirm-resend"]
    assert deployment["entrypoint"] == "flows/confirm.py:confirm_resend"
    assert "schedules" not in deployment

    database = ControlDatabase(settings.resolved_database_url)
    try:
        (held,) = run_query(
            "select submission_id from submissions where hold = 'held'",
            warehouse=settings.warehouse,
            database=database,
        ).to_pylist()
    finally:
        database.dispose()
    done = confirm_resend(held["submission_id"], "Fatima Zahra", settings=settings)
    assert (done["lines_before"], done["lines_after"]) == (before, 3)
    assert done["confirmed_by"] == "Fatima Zahra"
    assert _night(settings) == 3
    again = confirm_resend(
        held["submission_id"], "Fatima Zahra", settings=settings, return_state=True
    )
    assert again.is_failed() and "is not held" in again.message

"""The nightly chain under Prefect: ingest, then one Delta commit per table, published as a
night; safe to re-run, safe to kill."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from flows.nightly import nightly
from massar.home import init_home
from warehouse.control import ControlDatabase, Night
from warehouse.delta import read_table, table_versions
from warehouse.nights import published_versions
from warehouse.query import run_query

MASSAR = str(Path(sys.executable).with_name("massar"))


def _school_folders(province: Path) -> list[Path]:
    return sorted(p for p in province.iterdir() if p.is_dir() and p.name[:5].isdigit())


def _query(settings, sql, night_id=None):
    database = ControlDatabase(settings.resolved_database_url)
    try:
        return run_query(
            sql, warehouse=settings.warehouse, database=database, night_id=night_id
        ).to_pylist()
    finally:
        database.dispose()


@pytest.fixture(scope="module")
def night(prefect_server, province, tmp_path_factory):
    settings = init_home(tmp_path_factory.mktemp("night-home") / "home")
    for school in _school_folders(province)[:3]:
        shutil.copytree(school, settings.inbox / school.name)
    result = nightly(settings)
    return settings, result


def test_warehouse_holds_every_accepted_row(night):
    settings, result = night
    assert result["ingest"]["rejected"] == 0
    expected = {
        row["dataset"]: row["n"]
        for row in _query(
            settings,
            "select dataset, sum(rows_accepted) as n from submissions where state in "
            "('accepted', 'partially_accepted') group by dataset",
        )
    }
    counts = result["consolidation"]["rows"]
    for table in (
        "classes",
        "rooms",
        "students",
        "guardians",
        "marks",
        "exam_marks",
        "absences",
        "timetable",
        "support",
    ):
        assert counts[table] == expected[table], table
    assert counts["enrollments"] == expected["students"]
    marks = _query(
        settings, "select count(*) as n, count(distinct slot) as slots, max(mark) as top from marks"
    )[0]
    assert marks["n"] == expected["marks"] and marks["slots"] >= 3 and marks["top"] <= 20


def test_a_second_night_without_new_submission_changes_nothing(night):
    settings, _ = night
    before = table_versions(settings.warehouse)
    again = nightly(settings)
    assert again["ingest"]["new_submissions"] == 0
    assert table_versions(settings.warehouse) == before
    # the rows it reports are the last night's count, still those of the tables
    rows = again["consolidation"]["rows"]
    assert rows and rows == {t: read_table(settings.warehouse, t).count_rows() for t in rows}


def test_a_resubmission_replaces_its_rows_and_last_night_stays_readable(night):
    settings, _ = night
    before = table_versions(settings.warehouse)
    first_night = _query(settings, "select count(*) as n from guardians")[0]["n"]
    guardians = sorted(settings.inbox.glob("*/guardians.csv"))[0]
    lines = guardians.read_bytes().splitlines(keepends=True)
    guardians.write_bytes(b"".join(lines[:-2]))  # the school removed two pupils' guardians
    result = nightly(settings)
    after = table_versions(settings.warehouse)
    assert after["guardians"] == before["guardians"] + 1
    assert {t: v for t, v in after.items() if t != "guardians"} == {
        t: v for t, v in before.items() if t != "guardians"
    }
    assert result["consolidation"]["rows"]["guardians"] == first_night - 2
    previous = result["consolidation"]["night_id"] - 1
    assert (
        _query(settings, "select count(*) as n from guardians", night_id=previous)[0]["n"]
        == first_night
    )


def test_maintenance_compacts_and_vacuums_without_changing_any_answer(night):
    from flows.warehouse_maintenance import warehouse_maintenance

    settings, _ = night
    before = {
        t: _query(settings, f"select count(*) as n from {t}")[0]["n"]
        for t in ("marks", "guardians", "enrollments")
    }
    report = warehouse_maintenance(settings)
    assert {r["table"] for r in report} >= {"marks", "guardians", "enrollments"}
    after = {t: _query(settings, f"select count(*) as n from {t}")[0]["n"] for t in before}
    assert after == before


def test_killing_the_consolidation_leaves_last_night_readable(night, province):
    settings, _ = night
    before = _query(settings, "select count(*) as n from marks")[0]["n"]
    for school in _school_folders(province)[3:]:
        shutil.copytree(school, settings.inbox / school.name)
    env = {
        **os.environ,
        "PREFECT_API_URL": os.environ.get("PREFECT_API_URL", ""),
        "MASSAR_HOME": str(settings.home),
        # the killed run's warehouse lease expires 5 s after its death, not the default 120 s
        # the re-run would otherwise wait (tests/operations tests the expiry itself)
        "MASSAR_LEASES__EXPIRY_SECONDS": "5",
    }
    from prefect.settings import PREFECT_API_URL

    env["PREFECT_API_URL"] = PREFECT_API_URL.value()
    logs = {p: len(list(p.glob("*.json"))) for p in settings.warehouse.glob("*/_delta_log")}
    process = subprocess.Popen(
        [MASSAR, "nightly"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    # Poll (with a deadline) for the night's first table commit, then kill the run at once:
    # it dies in the middle of the night's writes, before the night is published.
    killed = False
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if any(len(list(p.glob("*.json"))) > n for p, n in logs.items()):
            process.send_signal(signal.SIGKILL)
            killed = True
            break
        time.sleep(0.005)  # the poll's interval: a commit of the next table comes within ms
    process.wait(timeout=60)
    assert killed, "the consolidation finished before it could be killed"
    published = _query(settings, "select count(*) as n from marks")[0]["n"]
    assert published == before  # readers still see the previous night

    rerun = subprocess.run(
        [MASSAR, "nightly"], env=env, capture_output=True, text=True, timeout=600
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert _query(settings, "select count(*) as n from marks")[0]["n"] > before
    expected = _query(
        settings,
        "select sum(rows_accepted) as n from submissions where "
        "dataset = 'marks' and state in ('accepted', "
        "'partially_accepted')",
    )[0]["n"]
    assert _query(settings, "select count(*) as n from marks")[0]["n"] == expected
    # Every table the re-run's consolidation wrote is published at that version, opens at it
    # and holds the rows the night recorded, which is what massar query counts.
    database = ControlDatabase(settings.resolved_database_url)
    try:
        with database.session() as session:
            completed = session.scalars(
                select(Night).where(Night.state == "completed").order_by(Night.night_id.desc())
            ).all()
            consolidation = next(
                (dict(n.versions), dict(n.summary)) for n in completed if "rows" in n.summary
            )
        now_published = published_versions(database)
    finally:
        database.dispose()
    versions, summary = consolidation
    rows = summary["rows"]
    assert rows["marks"] == expected and set(rows) <= set(versions)
    assert {"students", "enrollments", "guardians", "marks"} <= set(rows)
    for table, count in rows.items():
        assert now_published[table] == versions[table], table
        assert read_table(settings.warehouse, table, versions[table]).count_rows() == count, table
        assert _query(settings, f"select count(*) as n from {table}")[0]["n"] == count, table

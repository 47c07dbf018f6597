"""``massar status`` as the officer's home page, on a real home with real runs under Prefect: a
night where one school's student list is rejected, an exchange run that fails (a request and no
signing identity), then one whose batch waits for approval, is looked at with ``massar
approve`` (a wrong id, a "no" at the terminal, then the decision) and delivered.

Every section is checked against an independent reading: the control database's own tables,
Prefect's record of the same flow runs, and DuckDB over the warehouse at each night's versions.
No pupil code, name or birth date in any of it.
"""

from __future__ import annotations

import contextvars
import os
import pty
import re
import select as select_io
import shutil
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import func, select

from connectors.signing import make_test_certificate
from flows.exchange import exchange
from flows.nightly import nightly
from ground.errors import RequestsUnanswered
from ground.settings import load_settings
from massar.cli import main
from massar.home import init_home
from massar.status import installation_status, next_steps, runs_table
from massar.status_facts import STALE_RUN_HOURS, gather
from tasks.batch_preparation import batch_summary
from tests.harness.approvers import APPROVER, PREPARER, code, enrol_test_approvers
from tests.harness.prefect_runs import wait_paused
from warehouse.control import ControlDatabase, ExchangeBatch, Finding, Night, Run, Submission
from warehouse.query import run_query

PUPIL_CODE = re.compile(r"\b[A-Z]\d{9}\b")
BIRTH_DATE = re.compile(r"\b(19|20)\d\d-\d\d-\d\d\b(?! \d\d:\d\d)")  # a date without a time
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
REPO = Path(__file__).resolve().parents[2]


def _render(table) -> str:  # type: ignore[no-untyped-def]
    """A table as the terminal prints it, wide enough for every sentence to stay on a line."""
    console = Console(record=True, width=1000)
    console.print(table)
    return console.export_text()


def _text(settings) -> dict[str, str]:
    """Each table of the status as the terminal prints it, by title."""
    return {str(table.title): _render(table) for table in installation_status(settings)}


def _all(tables: dict[str, str]) -> str:
    return "\n".join(tables.values())


def _section(tables: dict[str, str], title: str) -> str:
    """The table whose title starts with ``title``."""
    return next(text for name, text in tables.items() if name.startswith(title))


def _row(section: str, first_cell: str) -> list[str]:
    """The cells of the row whose first cell is ``first_cell``."""
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("│┃").split("│")]
        if cells and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r} in:\n{section}")


def _db(settings):  # type: ignore[no-untyped-def]
    return ControlDatabase(settings.resolved_database_url)


def _settings_file(home: Path, **values: str) -> None:
    """Set top-level values in the home's massar.toml, as an officer edits it."""
    path = home / "massar.toml"
    text = path.read_text("utf-8")
    for key, value in values.items():
        line = f"{key} = {value}"
        pattern = re.compile(rf"^#? ?{key} = .*$", re.M)
        text = pattern.sub(line, text, count=1) if pattern.search(text) else line + "\n" + text
    path.write_text(text, "utf-8")


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _at_a_terminal(args: list[str], answer: bytes, prefect_api: str) -> tuple[int, str]:
    """Run ``massar ARGS`` with a terminal (a pseudo-terminal) on stdin and stdout, answer the
    first question with ``answer``; returns the exit code and what the terminal showed."""
    master, slave = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(REPO), "PREFECT_API_URL": prefect_api}
    command = "import sys; from massar.cli import main; sys.exit(main(sys.argv[1:]))"
    process = subprocess.Popen(
        [sys.executable, "-c", command, *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=REPO,
        env=env,
        close_fds=True,
    )
    os.close(slave)
    seen, answered = b"", False
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        ready, _, _ = select_io.select([master], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the other end closed: the command ended
                break
            if not chunk:
                break
            seen += chunk
        if not answered and b"as shown?" in seen:
            os.write(master, answer)
            answered = True
        if process.poll() is not None and not ready:
            break
    code = process.wait(timeout=60)
    os.close(master)
    return code, ANSI.sub("", seen.decode("utf-8", "replace")).replace("\r", "")


@pytest.fixture(scope="module")
def officer(prefect_server, province, tmp_path_factory):
    """The home after each step, with the status text at each one and what the commands said."""
    home = tmp_path_factory.mktemp("status-home") / "home"
    settings = init_home(home)
    schools = sorted(p for p in province.iterdir() if p.is_dir() and p.name[:5].isdigit())
    for school in schools:
        shutil.copytree(school, settings.inbox / school.name)
    rejected_school = schools[0].name
    (good,) = sorted((settings.inbox / rejected_school).glob("ListEleve_*"))
    good.write_bytes(b"PK\x03\x04" + b"\x00" * 64)  # cut short: rejected (F001)
    (home / "reference").mkdir(exist_ok=True)
    shutil.copy(province / "leavers.csv", home / "reference" / "leavers.csv")
    night = nightly(settings)

    # a CNSS request, and no signing identity yet: the exchange run fails
    fund = settings.partners["cnss"]
    outbox = settings.exchange / "cnss" / fund.remote_outbox
    outbox.mkdir(parents=True, exist_ok=True)
    (request,) = sorted((province / "partners" / "cnss").glob("*_SCOL_*.csv"))
    shutil.copy(request, outbox / request.name)
    with pytest.raises(RequestsUnanswered) as failed:
        exchange("cnss", settings, prepared_by=PREPARER)
    after_failure = _text(settings)

    # the officer sets the signing identity and the approvers; the next run waits for a decision
    now = datetime.now(UTC)
    key, certificate = make_test_certificate(
        home / "keys", now - timedelta(days=1), now + timedelta(days=30), "DP Tiznit (test)"
    )
    enrol_test_approvers(home)  # an administrator's 'massar approvers add'
    _settings_file(
        home,
        approval_poll_seconds="1",
        signing_key=f'"{key}"',
        signing_certificate=f'"{certificate}"',
    )
    settings = load_settings(home)
    seen: dict = {}

    def officer_at_the_terminal() -> None:
        try:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                database = _db(settings)
                try:
                    with database.session() as session:
                        waiting = session.scalars(
                            select(ExchangeBatch.batch_id).where(
                                ExchangeBatch.state == "waiting_approval"
                            )
                        ).first()
                finally:
                    database.dispose()
                if waiting:
                    break
                time.sleep(0.3)
            run_id = batch_summary(settings, waiting)["flow_run_id"]
            wait_paused(run_id, deadline)
            seen["batch"] = waiting
            seen["waiting"] = _text(settings)
            later = gather(settings, datetime.now(UTC) + timedelta(hours=STALE_RUN_HOURS + 1))
            seen["waiting later"] = (
                next_steps(settings, later),
                _render(runs_table(later, settings)),
            )
            seen["wrong id"] = subprocess_free_cli(["approve", "CNSS-2023-999999"])
            seen["no"] = _at_a_terminal(
                ["approve", waiting, "--by", APPROVER, "--home", str(home)], b"n\n", prefect_server
            )
            seen["state after no"] = _state(settings, waiting)
            seen["approve"] = subprocess_free_cli(
                ["approve", waiting, "--code", code(home, APPROVER)]
            )
        except BaseException as error:  # the test reads it
            seen["error"] = error

    def subprocess_free_cli(args: list[str]) -> tuple[int, str, str]:
        from io import StringIO
        from unittest import mock

        out, err = StringIO(), StringIO()
        with mock.patch.object(sys, "stdout", out), mock.patch.object(sys, "stderr", err):
            code = main([*args, "--by", APPROVER, "--home", str(home)])
        return code, out.getvalue(), err.getvalue()

    # the thread sees the test's Prefect server (a context variable threads do not inherit)
    thread = threading.Thread(
        target=contextvars.copy_context().run, args=(officer_at_the_terminal,), daemon=True
    )
    thread.start()
    answered = exchange("cnss", settings, prepared_by=PREPARER)
    thread.join(60)
    assert "error" not in seen, seen.get("error")
    after = _text(settings)
    return {
        "settings": settings,
        "night": night,
        "rejected_school": rejected_school,
        "failure": str(failed.value),
        "after_failure": after_failure,
        "answered": answered,
        "seen": seen,
        "after": after,
    }


def _state(settings, batch_id: str) -> str:
    database = _db(settings)
    try:
        with database.session() as session:
            return session.get(ExchangeBatch, batch_id).state
    finally:
        database.dispose()


def _runs(settings) -> list[Run]:
    database = _db(settings)
    try:
        with database.session() as session:
            return list(session.scalars(select(Run).order_by(Run.started_at)).all())
    finally:
        database.dispose()


# ---- runs ------------------------------------------------------------------------------------


def test_every_flow_that_ran_is_listed_with_its_state_as_prefect_recorded_it(officer):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    settings = officer["settings"]
    runs = _runs(settings)
    assert {r.flow for r in runs} == {
        "nightly",
        "ingest_submissions",
        "nightly_consolidation",
        "evaluate",
        "exchange",
    }
    # the platform's record says what Prefect says of the same runs
    with get_client(sync_client=True) as client:
        flow_runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[r.run_id for r in runs]))
        )
    prefect = {str(run.id): run.state.type.value.lower() for run in flow_runs}
    assert {r.run_id: r.state for r in runs} == prefect
    assert sorted(prefect.values()).count("failed") == 1

    section = _section(officer["after"], "Runs of every flow")
    for flow in ("nightly", "ingest_submissions", "nightly_consolidation", "evaluate"):
        (run,) = [r for r in runs if r.flow == flow]
        cells = _row(section, flow)
        assert cells[2] == run.state == "completed" and cells[4:6] == ["1", "0"], cells
    exchange_runs = [r for r in runs if r.flow == "exchange"]
    assert [r.state for r in exchange_runs] == ["failed", "completed"]
    cells = _row(section, "exchange cnss")
    assert cells[2] == "completed" and cells[4:6] == ["2", "1"], cells
    # what each did, from what it recorded; the failure's own sentence
    assert "1 batch(es) prepared, 1 delivery(ies)" in cells[6]
    assert "Last failure " in cells[6] and officer["failure"] in cells[6]
    evaluation = officer["night"]["evaluation"]
    assert evaluation["outcome"] in _row(section, "evaluate")[6]
    ingest = officer["night"]["ingest"]
    assert _row(section, "ingest_submissions")[6] == (
        f"{ingest['new_submissions']} new file(s): {ingest['accepted']} accepted, "
        f"{ingest['partially_accepted']} partially accepted, {ingest['rejected']} rejected."
    )


def test_a_failed_run_is_the_first_thing_to_do(officer):
    text = officer["after_failure"]
    steps = _section(text, "What to do next")
    (failed,) = [r for r in _runs(officer["settings"]) if r.state == "failed"]
    assert failed.summary["failure"] == officer["failure"]
    assert "No signing identity" in officer["failure"]
    first = next(line for line in steps.splitlines() if "│" in line)
    started = _row(_section(text, "Runs of every flow"), "exchange cnss")[1]
    assert _row(first, "1.")[1] == (
        f"The last run of exchange cnss ({started}) failed: {officer['failure']}"
    )
    cells = _row(_section(text, "Runs of every flow"), "exchange cnss")
    assert cells[2] == "failed" and cells[4:6] == ["1", "1"]
    assert cells[6] == officer["failure"]
    # once a later run of it completed, it is no longer something to do
    assert "The last run of exchange" not in _section(officer["after"], "What to do next")


# ---- the last night --------------------------------------------------------------------------


def test_the_last_night_lists_what_it_changed_against_the_warehouse(officer):
    settings = officer["settings"]
    database = _db(settings)
    try:
        with database.session() as session:
            nights = list(
                session.scalars(
                    select(Night).where(Night.state == "completed").order_by(Night.night_id)
                ).all()
            )
            schools = sorted(
                session.scalars(
                    select(Submission.school_code)
                    .where(Submission.consolidated_at.is_not(None))
                    .distinct()
                ).all()
            )
        consolidation, evaluation = nights[-2], nights[-1]
        assert "evaluation" in evaluation.summary and "evaluation" not in consolidation.summary
        section = _section(officer["after"], "Last published night")
        shown = {}
        for line in section.splitlines():
            cells = [c.strip() for c in line.strip().strip("│").split("│")]
            if len(cells) == 5 and cells[1] in ("consolidation", "evaluation"):
                shown[(cells[1], cells[2])] = (cells[3], cells[4])
        expected = {}
        for night, kind, before in (
            (consolidation, "consolidation", {}),
            (evaluation, "evaluation", consolidation.versions),
        ):
            for table, version in night.versions.items():
                if before.get(table) == version:
                    continue
                (count,) = run_query(
                    f"select count(*) as n from {table}",
                    warehouse=settings.warehouse,
                    database=database,
                    night_id=night.night_id,
                ).to_pylist()
                expected[(kind, table)] = (f"new → {version}", f"— → {count['n']:,}")
        assert shown == expected
    finally:
        database.dispose()
    assert {table for kind, table in shown if kind == "evaluation"} == {
        "subject_results",
        "semester_results",
        "annual_results",
        "exam_results",
    }
    caption = " ".join(section.split())
    assert (
        f"Night {consolidation.night_id}: {len(schools)} school(s) consolidated "
        f"({', '.join(schools)})" in caption
    )
    assert f"Night {evaluation.night_id}: {officer['night']['evaluation']['outcome']}" in caption


# ---- batches ---------------------------------------------------------------------------------


def test_a_waiting_batch_is_listed_with_the_command_to_approve_it(officer):
    seen = officer["seen"]
    batch = seen["batch"]
    assert re.fullmatch(r"CNSS-\d{4}-\d{6}", batch)
    text = seen["waiting"]
    assert f"1 batch(es) wait for approval: massar approve {batch}" in " ".join(
        _section(text, "What to do next").split()
    )
    cells = _row(_section(text, "Batches waiting for approval"), batch)
    database = _db(officer["settings"])
    try:
        with database.session() as session:
            row = session.get(ExchangeBatch, batch)
            statuses = row.counts["statuses"]
            assert cells[1:4] == ["cnss", row.school_year, str(row.children)]
    finally:
        database.dispose()
    assert cells[4] == ", ".join(f"{s} {n}" for s, n in statuses.items() if n)
    by_state = _row(_section(text, "Partner batches by state"), "CNSS")
    assert by_state[1:] == ["1", "0", "0", "0", "0", "0"]


def test_a_run_paused_for_a_decision_is_waiting_not_stopped(officer):
    batch = officer["seen"]["batch"]
    cells = _row(_section(officer["seen"]["waiting"], "Runs of every flow"), "exchange cnss")
    assert cells[2] == "waiting" and cells[3] == ""
    assert cells[6].startswith(f"Waiting for an approver's decision on batch {batch}.")
    assert cells[4:6] == ["2", "1"]  # the failure before it counts, the wait does not
    # long after (an approval may take days): still waiting, never "stopped"
    steps, runs = officer["seen"]["waiting later"]
    assert _row(runs, "exchange cnss")[2] == "waiting"
    assert not any("The last run of exchange" in step for step in steps)


def test_a_run_that_never_finished_is_said_to_have_stopped(tmp_path):
    """A run still recorded as running long after it started (its process was killed) is a
    failure to look at; a recent one is running."""
    from warehouse.runs import start_run

    settings = init_home(tmp_path / "home")
    start_run(settings.resolved_database_url, "run-killed", "nightly")
    now = datetime.now(UTC)
    recent = runs_table(gather(settings, now), settings)
    assert _row(_render(recent), "nightly")[2] == "running"
    later = gather(settings, now + timedelta(hours=STALE_RUN_HOURS + 1))
    cells = _row(_render(runs_table(later, settings)), "nightly")
    assert cells[2] == "stopped?" and cells[5] == "1"
    assert cells[6].startswith("Never finished: the process most likely stopped")
    assert next_steps(settings, later)[0].startswith("The last run of nightly (")
    assert "failed: Never finished" in next_steps(settings, later)[0]


def test_batches_by_state_are_those_of_the_control_database(officer):
    settings = officer["settings"]
    database = _db(settings)
    try:
        with database.session() as session:
            counts = dict(
                session.execute(
                    select(ExchangeBatch.state, func.count()).group_by(ExchangeBatch.state)
                ).all()
            )
    finally:
        database.dispose()
    assert counts == {"delivered": 1}
    section = _section(officer["after"], "Partner batches by state")
    assert _row(section, "CNSS")[1:] == ["0", "0", "1", "0", "0", "0"]
    batch = officer["seen"]["batch"]
    steps = " ".join(_section(officer["after"], "What to do next").split())
    assert (
        f"Batch {batch} was delivered to CNSS and is not acknowledged yet: 'massar exchange run "
        "cnss' reads the acknowledgement" in steps
    )
    assert "None waiting." in _section(officer["after"], "Batches waiting for approval")


def test_approve_names_the_waiting_batches_for_a_wrong_id(officer, capsys, tmp_path):
    batch = officer["seen"]["batch"]
    code, out, err = officer["seen"]["wrong id"]
    assert code == 1 and out == ""
    children = _row(_section(officer["seen"]["waiting"], "Batches waiting for approval"), batch)[3]
    assert err.strip() == (
        f"Error: There is no batch CNSS-2023-999999; the batches waiting for approval: {batch} "
        f"(CNSS, {children} children)."
    )
    # none waits any more: the sentence says so
    code, _, err = _cli(
        capsys,
        "approve",
        "CNSS-2023-999999",
        "--by",
        APPROVER,
        "--home",
        str(officer["settings"].home),
    )
    assert code == 1
    assert err.strip() == (
        "Error: There is no batch CNSS-2023-999999, and no batch waits for approval."
    )


def test_approve_shows_the_batch_and_asks_before_recording_at_a_terminal(officer):
    from tasks.exchange_batches import batch_folder

    settings, batch = officer["settings"], officer["seen"]["batch"]
    code, shown = officer["seen"]["no"]
    assert code == 0, shown
    assert officer["seen"]["state after no"] == "waiting_approval"  # nothing recorded
    text = " ".join(shown.split())
    database = _db(settings)
    try:
        with database.session() as session:
            row = session.get(ExchangeBatch, batch)
            statuses, manifest = dict(row.counts["statuses"]), row.manifest_sha256
    finally:
        database.dispose()
    assert f"Batch {batch} for CNSS" in text
    per_status = ", ".join(f"{status} {statuses.get(status, 0)}" for status in statuses)
    assert f"{sum(statuses.values())} children: {per_status}" in text
    review = batch_folder(settings, "cnss", batch) / "review.csv"
    assert f"Review list: {review}" in text
    assert manifest in text
    assert f"Approve batch {batch} as shown? [y/N]" in text
    assert text.endswith("Nothing was recorded.")
    assert text.index("children:") < text.index("as shown?")


def test_approve_without_a_terminal_shows_the_batch_then_records_the_decision(officer):
    batch = officer["seen"]["batch"]
    code, out, err = officer["seen"]["approve"]
    assert code == 0, err
    text = " ".join(out.split())
    assert text.index(f"Batch {batch} for CNSS") < text.index(
        f"Batch {batch} approved by {APPROVER}"
    )
    assert "The exchange run waiting on it goes on now." in text
    assert officer["answered"]["batches"][0]["state"] == "approved"


# ---- submissions and schools -----------------------------------------------------------------


def test_schools_with_rejected_files_and_submissions_by_state(officer):
    settings, school = officer["settings"], officer["rejected_school"]
    database = _db(settings)
    try:
        with database.session() as session:
            rejected = session.scalars(
                select(Submission).where(Submission.state == "rejected")
            ).all()
            rules = sorted(
                session.scalars(
                    select(Finding.rule_id)
                    .where(
                        Finding.submission_id.in_([s.submission_id for s in rejected]),
                        Finding.severity == "error",
                    )
                    .distinct()
                ).all()
            )
            by_state = session.execute(
                select(Submission.state, func.count()).group_by(Submission.state)
            ).all()
    finally:
        database.dispose()
    assert [s.school_code for s in rejected] == [school]
    cells = _row(_section(officer["after"], "Schools with rejected files"), school)
    assert cells[1] == Path(rejected[0].file_name).name
    assert cells[3] == ", ".join(rules) and rules == ["F001"]
    assert cells[4] == str(settings.reports / school)
    steps = " ".join(_section(officer["after"], "What to do next").split())
    assert f"1 school(s) have rejected files not replaced yet ({school})" in steps
    section = _section(officer["after"], "Submissions by state")
    for state, count in by_state:
        assert _row(section, state)[1] == str(count)


def test_the_status_holds_no_pupil_data(officer):
    for tables in (officer["after_failure"], officer["seen"]["waiting"], officer["after"]):
        text = _all(tables)
        assert not PUPIL_CODE.search(text)
        assert not BIRTH_DATE.search(text)
    assert not PUPIL_CODE.search(officer["seen"]["no"][1])
    assert not PUPIL_CODE.search(officer["seen"]["approve"][1])


def test_massar_status_prints_the_home_page(officer, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")
    code, out, err = _cli(capsys, "status", "--home", str(officer["settings"].home))
    assert code == 0 and err == ""
    for title in (
        "What to do next",
        "Runs of every flow",
        "Last published night",
        "Partner batches by state",
        "Batches waiting for approval",
        "Submissions by state",
        "Last evaluation",
        "Schools with rejected files",
        "List of schools",
    ):
        assert title in out, title

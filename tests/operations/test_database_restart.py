"""PostgreSQL stopped and started under running work.

Under a handle that stays open (as a running flow's does): the next statement reconnects, a
lease held before the restart is still held and renewed, and registering the same files again
(a step retried after the restart) registers nothing twice. Under a real ``massar exchange
run`` paused for its approval, the control database on PostgreSQL: the database goes away
while the run looks for its decision; the run keeps waiting, pauses again once the database is
back, is approved and delivers its batch once. Under a real ``massar ingest``: the database
stopped once files are registered, started again once a school's step waits for its retry
(45 s at most); the ingest retries that step and completes, or ends with a sentence; the next
ingest registers every file once. The restart on the stack (Prefect's own database on the
same server) is not tested here (docs/operations.md says what happens)."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from uuid import UUID

import pytest
from sqlalchemy import func, select

from tests.harness.postgres import PostgresServer, postgres_binaries
from warehouse.control import ControlDatabase, Submission, upgrade_database
from warehouse.leases import Holder, acquire, current_leases, renew
from warehouse.submissions import register_submissions


def restart(server: PostgresServer) -> None:
    """Stop PostgreSQL (connections cut, as a crash or a maintenance restart does) and start
    it again with the same data and options."""
    stop(server)
    start_again(server)


def stop(server: PostgresServer) -> None:
    server._run(str(server.bin / "pg_ctl"), "-D", str(server.data), "-m", "fast", "-w", "stop")


def start_again(server: PostgresServer) -> None:
    server._run(
        str(server.bin / "pg_ctl"),
        "-D",
        str(server.data),
        "-l",
        str(server.root / "server.log"),
        "-w",
        "-t",
        "60",
        "-o",
        f"-h 127.0.0.1 -p {server.port} -k {server.root}",
        "start",
    )


def arrival(index: int) -> dict:
    return {
        "school_code": "27783Y",
        "file_name": f"f{index}.csv",
        "sha256": f"{index:064x}",
        "size_bytes": 1,
        "archive_path": f"/archive/{index}",
    }


def test_a_restart_cuts_no_lease_and_registers_nothing_twice():
    if postgres_binaries() is None:
        pytest.fail("PostgreSQL is not installed: run scripts/system-packages.sh.")
    with PostgresServer() as server:
        upgrade_database(server.url)
        database = ControlDatabase(server.url)
        try:
            holder = Holder("host", 1, "run-before-restart", "ingest_submissions")
            assert acquire(database, "school:27783Y", holder, timedelta(minutes=2))
            first = register_submissions(database, [arrival(i) for i in range(4)])
            restart(server)
            # The step is retried after the restart: the same four files and four new ones.
            again = register_submissions(database, [arrival(i) for i in range(8)])
            assert again[:4] == first
            with database.session() as session:
                assert session.scalar(select(func.count()).select_from(Submission)) == 8
            assert renew(database, holder, timedelta(minutes=2)) == 1
            assert [h.run_id for h in current_leases(database, "school:")] == ["run-before-restart"]
        finally:
            database.dispose()


def test_a_command_whose_database_is_stopped_says_so_in_a_sentence(tmp_path):
    """``massar ingest`` and ``massar status`` while PostgreSQL is stopped: exit 1 and the
    sentence saying what to do, not "Unexpected error … report it" nor a traceback."""
    import subprocess

    from massar.home import init_home
    from tests.operations.runs import MASSAR

    if postgres_binaries() is None:
        pytest.fail("PostgreSQL is not installed: run scripts/system-packages.sh.")
    with PostgresServer() as server:
        upgrade_database(server.url)
        home = init_home(tmp_path / "home").home
        stop(server)
        for command in ("ingest", "status"):
            done = subprocess.run(
                [MASSAR, command, "--home", str(home)],
                env={**os.environ, "MASSAR_DATABASE_URL": server.url},
                capture_output=True,
                text=True,
                timeout=300,
            )
            said = " ".join((done.stdout + done.stderr).split())
            assert done.returncode == 1, said
            assert "The control database could not be used" in said, said
            assert "start it again" in said and "run the command again" in said
            assert "Unexpected error" not in said and "Traceback" not in said


def flow_run_logged(run_id: str, words: str) -> bool:
    """Whether the flow run sent a log line holding ``words`` to Prefect."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    only_run = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[UUID(run_id)]))
    with get_client(sync_client=True) as client:
        return any(words in log.message for log in client.read_logs(log_filter=only_run))


def flow_run_state(run_id: str) -> str:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        state = client.read_flow_run(UUID(run_id)).state
    return state.type.value if state is not None else ""


@pytest.mark.slow
def test_an_exchange_waiting_for_its_approval_outlives_a_restart(
    prefect_server, province, tmp_path, monkeypatch
):
    from ground.settings import load_settings
    from massar.runner import approve_batch
    from tasks.approval_rules import Claim
    from tasks.batch_preparation import batch_summary
    from tests.harness.approvers import PREPARER, PREPARER_ACCOUNT, code
    from tests.harness.prefect_runs import paused_state_id, wait_paused
    from tests.operations.conftest import make_exchange_home
    from tests.operations.runs import batches, delivered, finish, leases, start, wait_until

    if postgres_binaries() is None:
        pytest.fail("PostgreSQL is not installed: run scripts/system-packages.sh.")
    with PostgresServer() as server:
        monkeypatch.setenv("MASSAR_DATABASE_URL", server.url)
        # Two schools' night: the batch's wait and delivery do not depend on their number.
        home, env = make_exchange_home(province, tmp_path / "home", schools=2)
        # Leases renewed every 2 s: the heartbeat meets the outage too. Pause slices of 5 s
        # instead of 60 (60 x the poll): the run looks in the database sooner.
        env = {
            **env,
            "MASSAR_DATABASE_URL": server.url,
            "MASSAR_LEASES__EXPIRY_SECONDS": "6",
            "MASSAR_APPROVAL_PAUSE_SLICE_SECONDS": "5",
        }
        running = start(home, prefect_server, "exchange", "run", "cnss", **env)
        try:
            [batch] = wait_until(  # type: ignore[misc]
                lambda: [b for b in batches(home) if b.state == "waiting_approval"],
                600,
                "the batch is prepared and waits for its approval",
            )
            first = wait_paused(batch.flow_run_id, time.monotonic() + 120)
            stop(server)
            # The pause's slice ends (5 s): the run looks for a decision in the database,
            # which is away, and says so. It must keep waiting, not fail.
            wait_until(
                lambda: flow_run_logged(batch.flow_run_id, "still waits for its decision"),
                180,
                "the run ends its pause's slice and finds the database away",
            )
            assert paused_state_id(batch.flow_run_id) is None
            assert running.poll() is None
            start_again(server)
            again = wait_paused(batch.flow_run_id, time.monotonic() + 180, other_than=first)
            assert again != first and running.poll() is None
            assert flow_run_state(batch.flow_run_id) == "PAUSED"

            settings = load_settings(home)
            assert batch_summary(settings, batch.batch_id)["state"] == "waiting_approval"
            claim = Claim("cli", code=code(home, PREPARER), os_account=PREPARER_ACCOUNT)
            said = approve_batch(settings, batch.batch_id, claim, True, "")
            assert "goes on now" in said, said
            returned, out, err = finish(running, timeout=600)
        finally:
            if running.poll() is None:
                running.kill()
        assert returned == 0, err[-3000:]
        assert f"Batch {batch.batch_id}" in out
        # The run's warning, on its terminal (the terminal wraps long lines).
        assert "still waits for its decision" in " ".join(err.split())
        summary = batch_summary(settings, batch.batch_id)
        assert summary["state"] == "delivered"
        assert [b.batch_id for b in batches(home)] == [batch.batch_id]
        assert sorted(delivered(home)) == sorted(summary["files"])
        assert leases(home) == []


def schools_awaiting_retry() -> list[str]:
    """The names of the ingest's school steps Prefect will try again (AwaitingRetry)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        TaskRunFilter,
        TaskRunFilterName,
        TaskRunFilterState,
        TaskRunFilterStateName,
    )

    waiting = TaskRunFilter(
        name=TaskRunFilterName(like_="ingest-"),
        state=TaskRunFilterState(name=TaskRunFilterStateName(any_=["AwaitingRetry"])),
    )
    with get_client(sync_client=True) as client:
        return [run.name for run in client.read_task_runs(task_run_filter=waiting)]


@pytest.mark.slow
def test_an_ingest_outlives_a_restart_and_registers_each_file_once(
    prefect_server, province, tmp_path, monkeypatch
):
    """A real ``massar ingest``, the control database on PostgreSQL, which is stopped once the
    ingest has registered files and started again once the ingest has ended or waited long
    enough: the ingest either goes on or ends with a sentence (never a traceback on the
    operator's terminal), and the next ingest completes with every file registered once."""
    from massar.home import init_home
    from tests.operations.runs import (
        check_ingested_once,
        fill_inbox,
        finish,
        leases,
        start,
        submissions,
        wait_until,
    )

    if postgres_binaries() is None:
        pytest.fail("PostgreSQL is not installed: run scripts/system-packages.sh.")
    with PostgresServer() as server:
        monkeypatch.setenv("MASSAR_DATABASE_URL", server.url)
        home = init_home(tmp_path / "home").home
        files = fill_inbox(home, province)
        env = {"MASSAR_DATABASE_URL": server.url, "MASSAR_LEASES__EXPIRY_SECONDS": "6"}
        running = start(home, prefect_server, "ingest", **env)
        try:
            wait_until(lambda: submissions(home), 600, "the ingest registers files")
            assert running.poll() is None, "the ingest ended before the database was stopped"
            stop(server)
            # The database stays away until a school's step has failed on it and waits for
            # its retry, or the ingest has ended, or for 45 s at most.
            deadline = time.monotonic() + 45
            retried = False
            while running.poll() is None and time.monotonic() < deadline and not retried:
                retried = bool(schools_awaiting_retry())
                time.sleep(0.2)
            start_again(server)
            returned, out, err = finish(running, timeout=900)
        finally:
            if running.poll() is None:
                running.kill()
        said = out + " " + " ".join(err.split())
        assert "Traceback" not in said and "Unexpected error" not in said, said[-3000:]
        if retried:  # the school's step was tried again once the database was back
            assert returned == 0, said[-3000:]
        elif returned != 0:  # it failed the step it was in: one sentence, naming the database
            assert returned == 1 and "control database could not be used" in said, said[-3000:]
        # No file was registered twice, whatever the run had done.
        found = submissions(home)
        assert len({(s.school_code, s.sha256) for s in found}) == len(found)
        code, out, err = finish(start(home, prefect_server, "ingest", **env))
        assert code == 0, err[-3000:]
        check_ingested_once(home, files)
        assert leases(home) == []

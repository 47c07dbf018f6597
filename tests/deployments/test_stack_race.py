"""A terminal's ``massar ingest`` while the ``ingest`` deployment runs through the stack's
worker (deployments/stack: PostgreSQL, Prefect's server, the process worker): the two runs
are different processes on different sides of Prefect, and share the inbox through the
leases in the control database on PostgreSQL. Both complete, and every file is registered
once.

The stack is the package's (tests/deployments/conftest.py), whose home test_stack.py has
already ingested the session's province: this test drops a province of another seed (other
schools, other files) and counts the submissions of those files only.

The worker's run is frozen (SIGSTOP) once it holds the school folders, between two database
statements, while the terminal's ingest runs: however fast an ingest is, the terminal finds it
at work (the leases expire after 120 s, far beyond the terminal's run); it goes on (SIGCONT)
once the terminal's ingest has ended."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy

from tests.conftest import TEST_SEED, TEST_YEAR
from tests.harness.prefect_runs import wait_until
from tests.harness.stack import MASSAR, Stack, clean_env
from warehouse.control import ControlDatabase
from warehouse.leases import current_leases

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def other_province(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A province no other test of the stack ingests: the files are all new to its home."""
    from massar.synthetic import generate_province

    outdir = tmp_path_factory.mktemp("race-province")
    # Two schools: the worker's run is frozen while it holds them, whatever their number.
    generate_province(outdir, schools=2, seed=TEST_SEED + 1, year=TEST_YEAR)
    return outdir


def flow_run_processes(flow_run_id: str) -> list[int]:
    """The processes of a flow run the worker started: its own and its task runner's, which
    inherit its PREFECT__FLOW_RUN_ID."""
    marker = f"PREFECT__FLOW_RUN_ID={flow_run_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:  # gone, or not ours to read
                continue
    return found


def _signal(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            continue


@contextmanager
def frozen(
    flow_run_id: str, database_url: str, holding: Callable[[], bool], timeout: float = 300
) -> Iterator[None]:
    """The flow run's processes stopped (SIGSTOP) once ``holding()`` is true while they are
    stopped outside any statement or transaction on the control database (none of its
    connections busy: a frozen transaction could hold rows another run waits for); continued
    (SIGCONT) on leaving."""
    engine = sqlalchemy.create_engine(database_url, poolclass=sqlalchemy.pool.NullPool)
    busy = sqlalchemy.text(
        "select count(*) from pg_stat_activity where datname = current_database() "
        "and pid <> pg_backend_pid() and state is not null and state <> 'idle'"
    )

    def stopped_holding() -> bool:
        pids = flow_run_processes(flow_run_id)
        _signal(pids, signal.SIGSTOP)
        with engine.connect() as connection:
            if pids and connection.execute(busy).scalar_one() == 0 and holding():
                return True
        _signal(pids, signal.SIGCONT)  # let it go on to a moment that serves
        return False

    try:
        wait_until(stopped_holding, "the run holding school folders, stopped", timeout, 0.05)
        yield
    finally:
        _signal(flow_run_processes(flow_run_id), signal.SIGCONT)
        engine.dispose()


def test_a_terminal_ingest_during_the_ingest_deployment_registers_each_file_once(
    stack: Stack, other_province: Path
):
    home = stack.paths.home
    province = other_province
    schools = sorted(p for p in province.iterdir() if p.is_dir() and p.name[:5].isdigit())
    for school in schools:
        shutil.copytree(school, home / "inbox" / school.name)
    files = sum(1 for s in schools for f in s.rglob("*") if f.is_file())
    ours = ", ".join(
        sorted(
            f"'{s.name}:{hashlib.sha256(f.read_bytes()).hexdigest()}'"
            for s in schools
            for f in s.rglob("*")
            if f.is_file()
        )
    )

    deployment = stack.api("GET", "/deployments/name/ingest_submissions/ingest").json()
    created = stack.api("POST", f"/deployments/{deployment['id']}/create_flow_run", json={})
    assert created.status_code in (200, 201), created.text
    flow_run_id = created.json()["id"]
    # The terminal's ingest starts once the worker's run holds school folders (not after a
    # guess), that run frozen meanwhile; the lease table is read on the stack's PostgreSQL.
    database = ControlDatabase(stack.env["MASSAR_DATABASE_URL"])
    try:
        with frozen(
            flow_run_id,
            stack.env["MASSAR_DATABASE_URL"],
            lambda: bool(current_leases(database, "school:")),
        ):
            terminal = subprocess.run(
                [MASSAR, "ingest"],
                env={**clean_env(), **stack.env},
                capture_output=True,
                text=True,
                timeout=900,
            )
    finally:
        database.dispose()
    run = stack.wait(flow_run_id, timeout=900)
    assert terminal.returncode == 0, terminal.stdout + terminal.stderr[-3000:]
    assert "IntegrityError" not in terminal.stdout + terminal.stderr
    assert run["state"]["type"] == "COMPLETED", run["state"]
    # The terminal found the worker's run at work: it left it the school folders it held.
    said = " ".join(terminal.stdout.split())
    assert "were being ingested by another run" in said and "left to it" in said, said

    counts = json.loads(
        stack.massar(
            "query",
            "select count(*) as n, count(distinct school_code || ':' || sha256) as files, "
            "count(case when state = 'received' then 1 end) as received "
            f"from submissions where school_code || ':' || sha256 in ({ours})",
            "--format",
            "json",
        )
    )
    assert counts == [{"n": files, "files": files, "received": 0}], counts

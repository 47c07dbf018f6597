"""A terminal's ``massar ingest`` while the ``ingest`` deployment runs through the stack's
worker (deployments/stack: PostgreSQL, Prefect's server, the process worker): the two runs
are different processes on different sides of Prefect, and share the inbox through the
leases in the control database on PostgreSQL. Both complete, and every file is registered
once.

The stack is the package's (tests/deployments/conftest.py), whose home test_stack.py has
already ingested the session's province: this test drops a province of another seed (other
schools, other files) and counts the submissions of those files only."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import TEST_SCHOOLS, TEST_SEED, TEST_YEAR
from tests.harness.stack import MASSAR, Stack, clean_env
from warehouse.control import ControlDatabase
from warehouse.leases import current_leases

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def other_province(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A province no other test of the stack ingests: the files are all new to its home."""
    from massar.synthetic import generate_province

    outdir = tmp_path_factory.mktemp("race-province")
    generate_province(outdir, schools=TEST_SCHOOLS, seed=TEST_SEED + 1, year=TEST_YEAR)
    return outdir


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
    # guess); the lease table is read on the stack's PostgreSQL.
    database = ControlDatabase(stack.env["MASSAR_DATABASE_URL"])
    try:
        deadline = time.monotonic() + 300
        while not current_leases(database, "school:"):
            assert time.monotonic() < deadline, "the ingest deployment's run claims no school"
            time.sleep(0.1)
    finally:
        database.dispose()
    terminal = subprocess.run(
        [MASSAR, "ingest"],
        env={**clean_env(), **stack.env},
        capture_output=True,
        text=True,
        timeout=900,
    )
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

"""The deployments of prefect.yaml really run: applied to the test server with
`prefect deploy --all`, the nightly deployment is run once by a process worker."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from massar.home import init_home
from warehouse.control import ControlDatabase
from warehouse.query import run_query

REPO = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))


def _run(args: list[str], env: dict[str, str], timeout: int = 300) -> str:
    result = subprocess.run(
        args, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{args}: {result.stdout[-1500:]} {result.stderr[-1500:]}"
    return result.stdout


def test_prefect_yaml_schedules():
    import yaml

    deployments = {
        d["name"]: d for d in yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
    }
    nightly = deployments["nightly"]["schedules"][0]
    assert nightly["cron"] == "0 2 * * *" and nightly["timezone"] == "Africa/Casablanca"
    assert deployments["ingest"]["schedules"][0]["interval"] == 900
    housekeeping = deployments["housekeeping"]
    assert housekeeping["entrypoint"] == "flows/housekeeping.py:housekeeping"
    assert housekeeping["schedules"][0]["cron"] == "30 5 * * *"
    assert housekeeping["schedules"][0]["timezone"] == "Africa/Casablanca"
    assert housekeeping["concurrency_limit"] == 1
    assert {d["work_pool"]["name"] for d in deployments.values()} == {"massar"}


@pytest.mark.slow
def test_nightly_deployment_runs_once_through_a_worker(prefect_server, province, tmp_path):
    settings = init_home(tmp_path / "home")
    schools = sorted(p for p in province.iterdir() if p.is_dir() and p.name[:5].isdigit())[:2]
    for school in schools:
        shutil.copytree(school, settings.inbox / school.name)
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_server,
        "MASSAR_HOME": str(settings.home),
        "MASSAR_CODE_DIR": str(REPO),
    }
    _run([PREFECT, "work-pool", "create", "massar", "--type", "process", "--overwrite"], env)
    _run([PREFECT, "--no-prompt", "deploy", "--all"], env)

    from prefect.deployments import run_deployment

    flow_run = run_deployment("nightly/nightly", timeout=0)
    _run([PREFECT, "worker", "start", "--pool", "massar", "--run-once"], env, timeout=600)

    from prefect.client.orchestration import get_client

    async def state():
        async with get_client() as client:
            return (await client.read_flow_run(flow_run.id)).state

    final = asyncio.run(state())
    assert final.is_completed(), final

    database = ControlDatabase(settings.resolved_database_url)
    try:
        accepted = run_query(
            "select count(*) as n from submissions where state = 'accepted'",
            warehouse=settings.warehouse,
            database=database,
        ).to_pylist()
        pupils = run_query(
            "select count(*) as n from enrollments", warehouse=settings.warehouse, database=database
        ).to_pylist()
    finally:
        database.dispose()
    assert accepted[0]["n"] > 10
    assert pupils[0]["n"] > 50

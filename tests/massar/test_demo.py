"""`massar demo` end to end, as an officer runs it: a province generated into the home and
ingested through the flow, then looked at with `massar status` and `massar query`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

MASSAR = str(Path(sys.executable).with_name("massar"))


def massar(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MASSAR, *args], capture_output=True, text=True, env=env, timeout=600)


def test_demo_then_status_and_query(prefect_server, tmp_path):
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "MASSAR_HOME": str(tmp_path / "h")}
    result = massar("demo", "--schools", "3", "--seed", "11", env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Ingest:" in result.stdout and "rows accepted" in result.stdout
    assert "Night 1:" in result.stdout
    assert "Evaluation 20" in result.stdout and "statistics_" in result.stdout
    for fund in ("cnss", "cmr"):  # answered, approved by the demo officer, delivered, acknowledged
        assert f"is delivered to {fund}" in result.stdout
    assert result.stdout.count("Acknowledgement ") == 2
    assert "Traceback" not in result.stdout + result.stderr

    status = massar("status", env=env)
    assert status.returncode == 0
    assert "ingest_submissions" in status.stdout and "accepted" in status.stdout

    counts = massar(
        "query",
        "select state, count(*) as n from submissions group by state",
        "--format",
        "json",
        env=env,
    )
    assert counts.returncode == 0, counts.stderr
    states = {row["state"]: row["n"] for row in json.loads(counts.stdout)}
    assert states.get("accepted", 0) > 50 and "rejected" not in states

    pupils = massar(
        "query",
        "select count(*) as n from enrollments where status = 'active'",
        "--format",
        "json",
        env=env,
    )
    assert pupils.returncode == 0, pupils.stderr
    assert json.loads(pupils.stdout)[0]["n"] > 100

    # Running the ingest again finds nothing new.
    again = massar("ingest", env=env)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "Ingest: 0 new file(s)" in again.stdout

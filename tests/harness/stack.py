"""The production stack of deployments/stack, really started for the tests: PostgreSQL from
the machine's binaries, Prefect's server on PostgreSQL behind its auth string, the process
worker and the deployments of prefect.yaml. Started once for tests/deployments (its conftest)
because bringing it up takes minutes on a small machine."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from massar.stack import StackPaths, api_request, free_port, load_config, read_env_file

REPO = Path(__file__).resolve().parents[2]
STACK = REPO / "deployments" / "stack"
MASSAR = str(Path(sys.executable).with_name("massar"))


def clean_env() -> dict[str, str]:
    """The environment without the tests' Prefect and Massar settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MASSAR_"))}


class Stack:
    def __init__(self, root: Path, report: dict) -> None:
        self.root = root
        self.paths = StackPaths(root)
        self.report = report
        self.config = load_config(self.paths)
        self.env = read_env_file(self.paths.massar_env)
        self.auth = (self.paths.secrets / "prefect-auth").read_text().strip()

    def api(self, method: str, path: str, auth: bool = True, **kwargs) -> httpx.Response:
        return api_request(self.config, self.auth if auth else None, method, path, **kwargs)

    def massar(self, *args: str) -> str:
        result = subprocess.run(
            [MASSAR, *args],
            env={**clean_env(), **self.env},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def run_deployment(self, name: str, timeout: float = 600) -> dict:
        """Start a run of deployment ``name`` as the scheduler would and wait for its end."""
        deployment = self.api("GET", f"/deployments/name/{name}").json()
        flow_run = self.api("POST", f"/deployments/{deployment['id']}/create_flow_run", json={})
        assert flow_run.status_code in (200, 201), flow_run.text
        return self.wait(flow_run.json()["id"], timeout)

    def wait_paused(self, flow_run_id: str, timeout: float = 300) -> dict:
        """Wait until the run is paused on its form (PAUSED), with a deadline."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.api("GET", f"/flow_runs/{flow_run_id}").json()
            if run["state"]["type"] == "PAUSED":
                return run
            time.sleep(0.5)
        raise AssertionError(f"flow run {flow_run_id} did not pause: {run['state']['type']}")

    def wait(self, flow_run_id: str, timeout: float = 600) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.api("GET", f"/flow_runs/{flow_run_id}").json()
            if run["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                return run
            time.sleep(0.3)
        raise AssertionError(f"flow run {flow_run_id} still {run['state']['type']}")


@contextmanager
def running_stack() -> Iterator[Stack]:
    """``deployments/stack up`` on free loopback ports; ``down`` and its folder removed after."""
    # Not under pytest's 0700 temporary folders: as root, PostgreSQL runs as 'postgres'.
    base = Path(tempfile.mkdtemp(prefix="massar-stack-"))
    base.chmod(0o755)
    root = base / "massar-stack"
    # The worker looks for scheduled runs every second instead of Prefect's 10 s: each run a
    # test starts through it waited 5 s on average before it began. Set as an operator would,
    # in the profile of the services' Prefect home (massar.env's PREFECT_HOME), not in the stack.
    profile = root / "prefect-client" / "profiles.toml"
    profile.parent.mkdir(parents=True)
    profile.write_text(
        'active = "default"\n\n[profiles.default]\nPREFECT_WORKER_QUERY_SECONDS = "1"\n',
        encoding="utf-8",
    )
    command = [
        str(STACK),
        "--root",
        str(root),
        "up",
        "--pg-port",
        str(free_port()),
        "--prefect-port",
        str(free_port()),
    ]
    started = subprocess.run(command, capture_output=True, text=True, timeout=600, env=clean_env())
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        report = json.loads(started.stdout.strip().splitlines()[-1])
        print(f"\nstack up in {report['seconds']} s: {report['timings']}")
        yield Stack(root, report)
    finally:
        stopping = time.monotonic()
        subprocess.run(
            [str(STACK), "--root", str(root), "down"], timeout=180, env=clean_env(), check=False
        )
        print(f"\nstack down in {time.monotonic() - stopping:.1f} s")
        shutil.rmtree(base, ignore_errors=True)

"""The embedded Prefect API as the command line starts it (massar/runner.prefect_api), in a
process of its own as 'massar nightly' runs: a second fresh home starts from the
installation's migrated database and runs a flow on it, without flow-run heartbeats, the
flow's module imported while the API started, the API listening on 127.0.0.1 only; the
installation's template holds no run."""

from __future__ import annotations

import asyncio
import json
import os
import select
import sqlite3
import subprocess
import sys
from pathlib import Path

import sqlalchemy.exc
from starlette.requests import Request

from massar.prefect_api import RETRY_LOCKED_AFTER, _application, retry_soon_when_locked

REPO = Path(__file__).resolve().parents[2]
SCRIPT = """
import json, sys
from pathlib import Path
from massar.home import init_home
from massar.prefect_database import template_path
from massar.runner import prefect_api

settings = init_home(sys.argv[1])
database = settings.prefect_home / "prefect.db"
template = template_path().is_file()
with prefect_api(settings, warm=("json.tool",)):
    from prefect import flow
    from prefect.settings import get_current_settings

    warmed = "json.tool" in sys.modules
    from prefect.settings import PREFECT_API_URL

    port = int(PREFECT_API_URL.value().rsplit(":", 1)[1].split("/", 1)[0])
    listening = []  # (local address, in /proc's hex) of the sockets listening on the port
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, _, hex_port = fields[1].partition(":")
            if fields[3] == "0A" and int(hex_port, 16) == port:
                listening.append(address)

    @flow
    def answer() -> int:
        return 42

    print(json.dumps({
        "template_before": template,
        "result": answer(),
        "heartbeat": get_current_settings().flows.heartbeat_frequency,
        "warmed": warmed,
        "database": database.is_file(),
        "template_after": template_path().is_file(),
        "template": str(template_path()),
        "listening": listening,
    }))
"""


def _run(script: str, home: Path) -> tuple[dict, str]:
    """``script`` run for ``home`` in a process of its own, as a command runs (no Prefect or
    massar variables of the test session): the JSON of its last line and all it printed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MASSAR_"))}
    done = subprocess.run(
        [sys.executable, "-c", script, str(home)],
        env={**env, "PYTHONPATH": str(REPO)},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stdout + done.stderr


def _start(home: Path) -> dict:
    return _run(SCRIPT, home)[0]


def test_a_fresh_home_runs_its_flows_on_a_copy_of_the_installations_database(
    tmp_path: Path,
) -> None:
    first = _start(tmp_path / "first")  # keeps the installation's template if it had none
    assert first["result"] == 42 and first["database"] and first["template_after"]

    second = _start(tmp_path / "second")
    assert second["template_before"]  # started from the copy
    assert second["result"] == 42 and second["database"]
    assert second["heartbeat"] is None  # the API ends with the command: no heartbeats
    assert second["warmed"]
    assert second["listening"] == ["0100007F"]  # 127.0.0.1, no other interface, no IPv6
    with sqlite3.connect(f"file:{second['template']}?mode=ro", uri=True) as template:
        (runs,) = template.execute("select count(*) from flow_run").fetchone()
    assert runs == 0  # kept before the API served anything: Prefect's schema and blocks only


WORKERS = """
import json, sys
from pathlib import Path
from massar.home import init_home
from massar.runner import prefect_api

settings = init_home(sys.argv[1])
with prefect_api(settings, workers=True):
    import os

    from prefect import flow, get_run_logger, task
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker
    from prefect.server.api.server import SubprocessASGIServer

    from flows.runners import school_task_runner

    @task
    def greet(n: int) -> dict:
        import polars

        get_run_logger().info("worker line %s", n)
        return {"n": n, "parent": os.getppid(), "polars_threads": polars.thread_pool_size()}

    @flow
    def fan_out() -> list[dict]:
        with school_task_runner(settings) as runner:
            futures = [runner.submit(greet, {"n": n}) for n in range(2)]
            return [future.result() for future in futures]

    state = fan_out(return_state=True)
    # the runner's end joined the thread forwarding the workers' lines to the log worker;
    # draining it returns once they are written to the API
    APILogWorker.drain_all()
    flow_run = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id]))
    with get_client(sync_client=True) as client:
        lines = sorted(
            log.message for log in client.read_logs(flow_run)
            if log.message.startswith("worker line")
        )
    print(json.dumps({
        "result": state.result(),
        "command": os.getpid(),
        "lines": lines,
        "temporary_servers": [p for p, s in SubprocessASGIServer._instances.items() if s.running],
    }))
"""


def test_the_workers_logs_reach_the_commands_api_and_no_other_is_started(
    tmp_path: Path,
) -> None:
    """The ingest's task runs in worker processes: their log lines, forwarded by a thread of
    the flow's process, are in the API the command started (what an officer reads), and no
    temporary API of Prefect's own was started beside it: that thread has no settings context
    and used to start one (seconds of CPU, a second server on the same database). The workers
    are forked from the server started with the API (their parent is not the command), and
    run polars on one thread each."""
    seen, printed = _run(WORKERS, tmp_path / "home")
    assert sorted(run["n"] for run in seen["result"]) == [0, 1]
    assert all(run["parent"] != seen["command"] for run in seen["result"])
    assert [run["polars_threads"] for run in seen["result"]] == [1, 1]
    assert seen["lines"] == ["worker line 0", "worker line 1"]
    assert seen["temporary_servers"] == []
    assert "Starting temporary server" not in printed


KILLED = """
import json, os, signal, sys
from massar.home import init_home
from massar.prefect_api import EmbeddedAPI
from ground.settings import apply_prefect_environment

apply_prefect_environment(init_home(sys.argv[1]))
api = EmbeddedAPI()
api.start()
api.wait(120)
print(json.dumps({"api": api.process.pid}), flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # killed: no exit handler stops the API
"""


def _ends_within(pid: int, seconds: float) -> bool:
    """Whether the process ``pid`` (not a child of this one) ends within ``seconds``: its
    pidfd becomes readable when it terminates, so the wait is for that state, no polling."""
    try:
        handle = os.pidfd_open(pid)
    except ProcessLookupError:  # ended (and reaped) already
        return True
    try:
        ready, _, _ = select.select([handle], [], [], seconds)
        return bool(ready)
    finally:
        os.close(handle)


def test_the_api_of_a_killed_command_ends_with_it(tmp_path: Path) -> None:
    """A command killed outright (its exit handlers never run) does not leave its API serving
    the home's database: the API's process sees its parent gone and shuts down."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MASSAR_"))}
    printed = tmp_path / "printed.txt"  # a file, not a pipe: the API writes to it too
    with printed.open("w") as output:
        done = subprocess.run(
            [sys.executable, "-c", KILLED, str(tmp_path / "home")],
            env={**env, "PYTHONPATH": str(REPO)},
            cwd=REPO,
            stdout=output,
            stderr=subprocess.STDOUT,
            timeout=300,
            check=False,
        )
    text = printed.read_text()
    assert done.returncode == -9, text[-2000:]
    api = json.loads(next(line for line in text.splitlines() if line.startswith('{"api"')))["api"]
    ended = _ends_within(api, 60)
    if not ended:
        os.kill(api, 9)  # leave nothing behind, then fail
    assert ended


def _request() -> Request:
    return Request({"type": "http", "method": "POST", "path": "/api/task_runs/", "headers": []})


def _sqlite_error(message: str) -> sqlalchemy.exc.OperationalError:
    """An error of the API's database as SQLAlchemy raises it, SQLite's ``message`` inside."""
    return sqlalchemy.exc.OperationalError(
        "INSERT INTO task_run ...", {}, sqlite3.OperationalError(message)
    )


def test_a_request_that_found_the_database_locked_is_tried_again_soon() -> None:
    """A request of the embedded API that met another connection's write (SQLite's 'database
    is locked') gets Prefect's 503 with a Retry-After of a fraction of a second, not Prefect's
    client's 2 s backoff; any other error gets Prefect's answer as it was, without it."""
    locked = asyncio.run(retry_soon_when_locked(_request(), _sqlite_error("database is locked")))
    assert locked.status_code == 503
    assert locked.headers["Retry-After"] == RETRY_LOCKED_AFTER
    assert 0 < float(RETRY_LOCKED_AFTER) < 2  # sooner than the client's first backoff

    for error, status in (
        (_sqlite_error("disk I/O error"), 500),  # not worth trying again, as Prefect says
        (sqlalchemy.exc.DBAPIError("SELECT 1", {}, ConnectionError("gone")), 503),
        (ValueError("a bug"), 500),
    ):
        answer = asyncio.run(retry_soon_when_locked(_request(), error))
        assert answer.status_code == status
        assert "Retry-After" not in answer.headers  # Prefect's backoff for other errors


def test_the_embedded_api_answers_errors_with_the_retry_after() -> None:
    """The application the API's process serves answers its requests' errors through
    retry_soon_when_locked (the handler FastAPI uses for any exception)."""
    application = _application(None)
    assert application.api_app.exception_handlers[Exception] is retry_soon_when_locked

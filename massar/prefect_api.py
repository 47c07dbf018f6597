"""The embedded Prefect API of a command: a process of its own on 127.0.0.1, started before the
command imports its flows, so that the two go on at once on the two cores.

Prefect's own ``SubprocessASGIServer`` needs ``prefect.server.api.server`` imported in the
command's process first (~1.5 s of CPU the command never uses again, before the API's
process even starts) and picks a port by trying random ones. Here the command binds a free
port of 127.0.0.1 itself and hands the listening socket to the API's process (so the address
is known at once and never taken by another program meanwhile), spawns that process without
importing Prefect, and only waits for the API's answer when its flows are imported. The API's
process (``python -m massar.prefect_api``, :func:`serve`) gives a fresh home a copy of the
installation's migrated database (massar/prefect_database.py), keeps one when there is none
yet, and serves Prefect's application (the same ``create_app`` as Prefect's ephemeral mode:
no UI, the services of an ephemeral server).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import select
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.requests import Request
    from starlette.responses import Response

HOST = "127.0.0.1"  # never another interface: the API has no authentication
# As Prefect's ephemeral server (no UI, the services of one process, the app built once),
# without what only a UI or automations use: the platform creates no automation, and nothing
# subscribes to the event stream or reads the events table of an embedded home. Their start
# (imports, reading the automations' state) was ~0.5 s of the API's CPU before it answers.
SERVER_ENVIRONMENT = {
    "PREFECT_UI_ENABLED": "0",
    "PREFECT__SERVER_EPHEMERAL": "1",
    "PREFECT__SERVER_FINAL": "1",
    "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "false",
    "PREFECT_SERVER_EVENTS_STREAM_OUT_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED": "false",
}
# Seconds a client waits before trying again a request that found the database locked
# (retry_soon_when_locked). Prefect's client tries 5 more times, each after this wait (up to
# 1.2 times it): a request gives up after ~3 s of such answers in a row, where Prefect's
# backoff waited 62 s; each try is a new transaction, so one more rarely meets a commit.
RETRY_LOCKED_AFTER = "0.5"


class EmbeddedAPI:
    """The API's process: :meth:`start` spawns it (no wait), :meth:`wait` returns its URL once
    it answers, :meth:`stop` ends it (also at the command's exit)."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.port: int | None = None

    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.port}/api"

    def start(self) -> None:
        listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listening.bind((HOST, 0))
            listening.listen(128)
            self.port = listening.getsockname()[1]
            self.process = subprocess.Popen(
                [sys.executable, "-m", "massar.prefect_api", str(listening.fileno())],
                env={**os.environ, **SERVER_ENVIRONMENT, "PYTHONPATH": _python_path()},
                pass_fds=(listening.fileno(),),
            )
        finally:
            listening.close()  # the API's process holds its own copy
        # after Prefect's own exit handlers registered later (they run first: the last run's
        # logs and events are sent before the API ends)
        atexit.register(self.stop)

    def wait(self, timeout: float, clock: Callable[[], float] = time.monotonic) -> str:
        """Poll the API's health until it answers 200; its URL. A process that ended, or no
        answer within ``timeout`` seconds, raises RuntimeError."""
        import httpx

        if self.process is None:
            raise RuntimeError("The embedded Prefect API was not started.")
        deadline = clock() + timeout
        with httpx.Client(timeout=max(timeout, 1.0)) as client:
            while True:
                code = self.process.poll()
                if code is not None:
                    raise RuntimeError(
                        f"The embedded Prefect API stopped at its start (exit code {code}); "
                        "its error is above."
                    )
                with contextlib.suppress(httpx.TransportError):
                    # the socket listens already: the request waits until the API serves
                    if client.get(f"{self.api_url}/health").status_code == 200:
                        return self.api_url
                if clock() >= deadline:
                    self.stop()
                    raise RuntimeError(
                        f"The embedded Prefect API did not answer within {timeout:.0f} s."
                    )
                time.sleep(0.05)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _python_path() -> str:
    """The command's import path for the API's process, this project's folder first (a
    checkout run from elsewhere, as the benchmarks do, serves its own massar package)."""
    project = str(Path(__file__).resolve().parent.parent)
    inherited = os.environ.get("PYTHONPATH", "")
    return os.pathsep.join([project, *([inherited] if inherited else [])])


def serve(fd: int) -> None:
    """In the API's process: Prefect's application on the listening socket ``fd``, on a copy
    of the installation's migrated database when the home has none."""
    from prefect.settings import (
        PREFECT_API_BLOCKS_REGISTER_ON_START,
        PREFECT_API_DATABASE_CONNECTION_URL,
        temporary_settings,
    )

    from massar.prefect_database import sqlite_file, start_from_template

    database = sqlite_file(str(PREFECT_API_DATABASE_CONNECTION_URL.value()))
    fresh = database is not None and not database.exists()
    copied = database is not None and start_from_template(database)
    keep = database if fresh and not copied else None
    import uvicorn

    listening = socket.socket(fileno=fd)
    config = uvicorn.Config(
        lambda: _application(keep), factory=True, log_level="error", lifespan="on"
    )
    # the copy holds Prefect's block types already: registering them again costs ~1 s of CPU
    with temporary_settings(updates={PREFECT_API_BLOCKS_REGISTER_ON_START: not copied}):
        server = uvicorn.Server(config)
        _ends_with_the_command(server, os.getppid())
        server.run(sockets=[listening])
    if not server.started:
        sys.exit(3)  # as uvicorn's command: the application did not start


def _ends_with_the_command(server: Any, command: int) -> threading.Thread:
    """A thread that stops ``server`` (uvicorn's: it shuts down as on SIGTERM) once the command
    that started it, its parent ``command``, has ended without stopping it (killed: its exit
    handlers never ran). It waits on the command's pidfd, readable when the process ends.
    Without it, the API of a killed 'massar nightly' went on serving the home's database
    until someone found it."""

    def watch() -> None:
        try:
            handle = os.pidfd_open(command)
        except ProcessLookupError:  # gone already
            handle = None
        if handle is not None and os.getppid() == command:  # still ours: not a reused pid
            select.select([handle], [], [])
        server.should_exit = True

    watcher = threading.Thread(target=watch, name="massar-api-ends-with-command", daemon=True)
    watcher.start()
    return watcher


def _application(keep: Path | None) -> FastAPI:
    """Prefect's application, its answer to a locked database saying when to try again
    (:func:`retry_soon_when_locked`); with ``keep``, the database just migrated is kept as
    the installation's template before the API serves anything (no run recorded in it yet)."""
    from prefect.server.api.server import create_app

    from massar.prefect_database import keep_as_template

    app = create_app()
    # the REST API's own application (create_app sets the attribute), whose handlers are read
    # when its middleware is built, at its first request
    api: FastAPI = app.api_app  # type: ignore[attr-defined]
    api.exception_handlers[Exception] = retry_soon_when_locked
    if keep is None:
        return app
    prefect_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(served: Any) -> AsyncIterator[Any]:
        async with prefect_lifespan(served) as state:
            keep_as_template(keep)  # migrated, blocks registered, nothing served yet
            yield state

    app.router.lifespan_context = lifespan
    return app


async def retry_soon_when_locked(request: Request, error: Exception) -> Response:
    """Prefect's answer to an error in a request (a 503 for a database error worth trying
    again), with ``Retry-After`` (:data:`RETRY_LOCKED_AFTER`) when the error is SQLite's
    database found locked or changed by another of the API's connections. Without it Prefect's
    client waits 2 s (±20 %) before its second try: a write that met another connection's
    commit (a task run created as the logs and events of the flow before are written) cost
    the night those 2 s with both processes idle, at the boundary of two flows, in 9 of 19
    nights of the 40-school province (two in one of them), and once in the province's night.
    Such an error is over at once: the next try reads the database anew. Other database
    errors keep Prefect's backoff (2, 4, 8 ... s)."""
    from prefect.server.api.server import (
        custom_internal_exception_handler,
        is_client_retryable_exception,
    )

    response = await custom_internal_exception_handler(request, error)
    cause = getattr(error, "orig", None)
    if isinstance(cause, sqlite3.OperationalError) and is_client_retryable_exception(error):
        response.headers["Retry-After"] = RETRY_LOCKED_AFTER
    return response


if __name__ == "__main__":
    serve(int(sys.argv[1]))

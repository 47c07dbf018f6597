"""``deployments/stack down`` stops a service that ignores its first SIGTERM (as Prefect's
worker was seen to after a flow run) without waiting its whole grace, and still lets a worker
whose flow run goes on finish it. Stand-in services (small Python processes started as the
stack starts its services), so that no stack needs to come up."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from massar.stack import StackPaths, _alive, _spawn, _stop
from tests.harness.prefect_runs import wait_until

# A service that records every SIGTERM: the first is ignored (Prefect's worker turns it into
# a SIGINT it may sit on), the second ends it (Prefect's worker SIGKILLs itself then). With
# a child (a flow run in its own session, waiting for the file 'finish'), the first SIGTERM
# lets the child end, then the service ends by itself.
SERVICE = """
import os, signal, subprocess, sys, time
from pathlib import Path
marks = Path(sys.argv[1])
def note(word):
    with marks.open("a") as out:
        out.write(word + "\\n")
terms = []
def on_term(*_):
    terms.append(1)
    note("TERM")
    if len(terms) > 1:
        os._exit(0)
signal.signal(signal.SIGTERM, on_term)
child = None
if sys.argv[2] == "with-run":
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import pathlib, time, sys\\n"
         "while not pathlib.Path(sys.argv[1]).exists(): time.sleep(0.05)",
         str(marks.parent / "finish")],
        start_new_session=True,
    )
note("ready")
while True:
    if terms and child is not None:
        child.wait()
        note("graceful")
        sys.exit(0)
    time.sleep(0.05)
"""


def _marks(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def _start_service(tmp_path: Path, mode: str) -> tuple[StackPaths, Path]:
    paths = StackPaths(tmp_path / "stack")
    paths.logs.mkdir(parents=True)
    paths.run.mkdir()
    marks = tmp_path / "marks"
    _spawn(paths, "worker", [sys.executable, "-c", SERVICE, str(marks), mode], {})
    wait_until(lambda: "ready" in _marks(marks), "the service ready", 60, 0.05)
    return paths, marks


def test_an_idle_service_that_ignores_its_first_sigterm_is_stopped_without_its_grace(tmp_path):
    paths, marks = _start_service(tmp_path, "idle")
    # A grace of 10 minutes: a stop that waited it out would fail the test's own timeout.
    stopped = threading.Thread(target=_stop, args=(paths, "worker", 600.0, 0.2), daemon=True)
    stopped.start()
    stopped.join(120)
    assert not stopped.is_alive(), "down waited the whole grace for an idle service"
    assert _marks(marks) == ["ready", "TERM", "TERM"]  # stopped by its second SIGTERM
    assert _alive(paths, "worker") is None
    assert not (paths.run / "worker.pid").exists()


def test_a_worker_whose_flow_run_goes_on_is_left_to_finish_it(tmp_path):
    paths, marks = _start_service(tmp_path, "with-run")
    stopped = threading.Thread(target=_stop, args=(paths, "worker", 600.0, 0.1), daemon=True)
    stopped.start()
    wait_until(lambda: "TERM" in _marks(marks), "the first SIGTERM", 60, 0.05)
    # Time for a wrong stop to signal again past its idle grace (0.1 s) while the run goes on.
    time.sleep(1.0)
    (tmp_path / "finish").touch()  # the flow run ends
    stopped.join(120)
    assert not stopped.is_alive()
    assert _marks(marks) == ["ready", "TERM", "graceful"]
    assert _alive(paths, "worker") is None

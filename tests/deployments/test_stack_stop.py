"""``deployments/stack down`` stops a service that ignores its first SIGTERM (as Prefect's
worker was seen to after a flow run) without waiting its whole grace, and still lets a worker
whose flow run goes on finish it. Stand-in services (small Python processes started as the
stack starts its services), so that no stack needs to come up."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import massar.stack as stack
from massar.stack import StackPaths, _alive, _spawn, _stop
from tests.harness.prefect_runs import wait_until

# A service that records every SIGTERM: the first is ignored (Prefect's worker turns it into
# a SIGINT it may sit on), the second ends it (Prefect's worker SIGKILLs itself then). With
# a child (a flow run in its own session, blocked on the FIFO 'finish' until the test writes
# to it), the first SIGTERM lets the child end, then the service ends by itself.
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
         "import sys; open(sys.argv[1]).read()",
         str(marks.parent / "finish")],
        start_new_session=True,
    )
note("ready")
while True:
    signal.pause()  # until a signal's handler ran
    if terms and child is not None:
        child.wait()
        note("graceful")
        sys.exit(0)
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


def test_a_worker_whose_flow_run_goes_on_is_left_to_finish_it(tmp_path, monkeypatch):
    os.mkfifo(tmp_path / "finish")
    paths, marks = _start_service(tmp_path, "with-run")
    # The stop looks for children only once past its idle grace: seen a few times finding
    # the flow run, it has had every chance to signal again wrongly.
    looked: list[int] = []
    real_children = stack._children

    def children(pid: int) -> list[int]:
        found = real_children(pid)
        looked.append(len(found))
        return found

    monkeypatch.setattr("massar.stack._children", children)
    stopped = threading.Thread(target=_stop, args=(paths, "worker", 600.0, 0.1), daemon=True)
    stopped.start()
    wait_until(lambda: looked.count(1) >= 3, "the stop past its idle grace", 60, 0.05)
    with (tmp_path / "finish").open("w") as fifo:  # the flow run ends
        fifo.write("done")
    stopped.join(120)
    assert not stopped.is_alive()
    assert _marks(marks) == ["ready", "TERM", "graceful"]
    assert _alive(paths, "worker") is None

"""The server the ingest's workers are forked from (flows/runners.start_worker_server): what it
imports must start no thread, since a forked worker would not have the threads its parent had
(polars' and pyarrow's allocator and clean-up threads, for instance)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from flows.runners import WORKER_PRELOAD

REPO = Path(__file__).resolve().parents[2]
COUNT = """
import importlib, json, os, sys
before = len(os.listdir("/proc/self/task"))
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps({"before": before, "after": len(os.listdir("/proc/self/task")),
                  "polars": "polars" in sys.modules, "pyarrow": "pyarrow" in sys.modules}))
"""


def _threads_after_importing(*modules: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", COUNT, *modules],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_the_worker_servers_imports_start_no_thread() -> None:
    seen = _threads_after_importing(*WORKER_PRELOAD)
    assert seen == {"before": 1, "after": 1, "polars": False, "pyarrow": False}


def test_the_check_sees_a_module_that_starts_threads() -> None:
    """The count above is able to fail: polars starts threads when imported."""
    assert _threads_after_importing("polars")["after"] > 1

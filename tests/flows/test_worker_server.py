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


def test_a_worker_imports_the_ingest_without_pyarrow() -> None:
    """The ingest's modules (a worker imports them before its first chunk) leave pyarrow and
    numpy alone (~0.1 s of CPU a worker): the coverage table's Arrow columns are made when the
    table is (warehouse/coverage.py)."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, tasks.ingest_chunks\n"
            "print(sorted({'pyarrow', 'numpy'} & set(sys.modules)))",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_the_coverage_columns_are_arrow_types() -> None:
    import pyarrow as pa

    from warehouse.coverage import COVERAGE_COLUMNS

    assert [str(kind) for _, kind, _ in COVERAGE_COLUMNS][-2:] == ["int64", "timestamp[us, tz=UTC]"]
    assert all(isinstance(kind, pa.DataType) for _, kind, _ in COVERAGE_COLUMNS)

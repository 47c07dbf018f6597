"""A Prefect task for checking where a task runner runs tasks: each run leaves its process id in
a folder and waits (with a deadline) until ``expected`` runs have arrived, so ``expected`` runs
meet only when that many run at the same time, in as many processes."""

from __future__ import annotations

import os
import time
from pathlib import Path

from prefect import task


@task(name="meet_other_runs")
def meet(folder: Path, expected: int, timeout: float = 120.0) -> int:
    """This process's id, once ``expected`` runs (this one included) are running; fails when
    they are not all there within ``timeout`` seconds."""
    (folder / f"{os.getpid()}-{time.monotonic_ns()}").touch()
    deadline = time.monotonic() + timeout
    while len(list(folder.iterdir())) < expected:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(list(folder.iterdir()))} of {expected} runs met")
        time.sleep(0.05)
    return os.getpid()

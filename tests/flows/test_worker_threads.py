"""The ingest's worker processes run polars on one thread each (the processes already take
every core), and the flow's own process keeps its polars threads for the night's work."""

from __future__ import annotations

import os

import polars as pl
from prefect import task

from flows.runners import school_task_runner
from ground.settings import Settings


@task
def polars_threads() -> tuple[int, int]:
    return os.getpid(), pl.thread_pool_size()


def test_workers_run_polars_on_one_thread_and_the_flow_keeps_its_own(prefect_server):
    before = os.environ.get("POLARS_MAX_THREADS")
    own = pl.thread_pool_size()
    with school_task_runner(Settings()) as runner:
        pid, threads = runner.submit(polars_threads, {}).result()
    assert pid != os.getpid() and threads == 1
    assert pl.thread_pool_size() == own
    assert os.environ.get("POLARS_MAX_THREADS") == before  # as it was

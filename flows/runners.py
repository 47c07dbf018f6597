"""Where a flow's per-school tasks run, as the settings say.

Only tasks submitted to the runner this module gives go there; everything a flow calls
directly (SFTP transfers, province checks, warehouse commits, signing) stays in the flow run's
own process, so a worker lost by Dask, which then recomputes its tasks, never repeats them.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from datetime import datetime
from multiprocessing import forkserver
from typing import Any

import polars
from prefect import get_run_logger
from prefect.futures import PrefectFuture
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner

from ground.environment import environment_variable
from ground.settings import Settings
from tasks.ingest import SchoolOutcome, count_recorded_since
from tasks.ingest_chunks import SchoolFolder, chunk_label, ingest_chunk_task

# Schools are CPU work (reading workbooks, validating): processes use both cores.
DEFAULT_PROCESSES = 2

# What every worker imports that starts no thread when imported: the server process the
# workers are forked from imports these once (start_worker_server). polars and pyarrow are
# not among them: importing them starts allocator and clean-up threads, which a fork would
# not carry over, so each worker imports them itself (tests/flows/test_worker_server.py
# checks that these imports leave one thread).
WORKER_PRELOAD = (
    "prefect",
    "prefect.context",
    "prefect.flows",
    "prefect.task_engine",
    "sqlalchemy",
    "ground.settings",
    "warehouse.control",
)


def start_worker_server() -> None:
    """Start, if it is not running, the process the ingest's workers are forked from, with
    ``WORKER_PRELOAD`` imported in it. It returns at once: the server imports meanwhile, and
    the first worker asked for waits for it. Started while something else runs (the embedded
    API's start, the inbox's pre-check), the workers are there when the schools are: a worker
    spawned afresh spent ~2.6 s of CPU importing before its first file, both at once.
    The server keeps polars on one thread for the workers (see below)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(WORKER_PRELOAD))  # no effect once it runs
    with environment_variable(_POLARS_THREADS, "1"):  # the server's environment is theirs
        forkserver.ensure_running()


class ForkedProcessPoolTaskRunner(ProcessPoolTaskRunner):
    """Prefect's process pool task runner, its worker processes forked from the worker server
    (``start_worker_server``) instead of spawned, each importing Prefect again. The same
    runner otherwise: Prefect's worker set-up (log and event forwarding) runs in each worker,
    and each task run gets this process's context and environment as before."""

    def __enter__(self) -> ForkedProcessPoolTaskRunner:
        super().__enter__()
        spawning: Any = self._executor  # Prefect's pool: no process is started before a submit
        if isinstance(spawning, ProcessPoolExecutor):
            start_worker_server()
            self._executor = ProcessPoolExecutor(
                max_workers=self._max_workers,
                mp_context=multiprocessing.get_context("forkserver"),
                initializer=spawning._initializer,  # Prefect's worker set-up and its queue
                initargs=spawning._initargs,
            )
            spawning.shutdown(wait=False)
        return self


@contextmanager
def school_task_runner(settings: Settings) -> Iterator[TaskRunner]:
    """The started task runner for the per-school tasks of one flow run; submit with
    ``runner.submit(task, parameters)`` and collect the results inside the ``with`` block.

    ``task_runner = "default"``: two worker processes of this machine. ``"dask"``: Prefect's
    Dask task runner, connected to the scheduler at ``dask_address``, or, when it is empty, on
    a cluster of ``dask_workers`` single-threaded worker processes started for the run and
    reachable on 127.0.0.1 only, without dashboard.
    """
    with (
        _embedded_api_for_workers(),
        _one_polars_thread_per_worker(),
        choose_task_runner(settings) as runner,
    ):
        try:
            yield runner
        finally:
            waiting = _WINDING_DOWN.pop(id(runner), None)
            if waiting is not None:  # let go early: their exit is awaited here
                waiting.join()


@contextmanager
def _one_polars_thread_per_worker() -> Iterator[None]:
    """Worker processes started meanwhile run polars on one thread: the processes already use
    every core, and a pool of polars threads per process, woken for each of thousands of small
    frames, spent ~8% more CPU for no gain in time. This process's polars keeps its threads:
    its pool is made first (a night goes on with polars' work in this process)."""
    polars.thread_pool_size()
    with environment_variable(_POLARS_THREADS, "1"):
        yield


_POLARS_THREADS = "POLARS_MAX_THREADS"


def let_workers_go(runner: TaskRunner) -> None:
    """Tell the default runner's worker processes to exit once their tasks are done, without
    waiting for them here: each takes ~1.5 s to wind down (Prefect's log and event services
    stopping), idle time for this process, which goes on with the flow's next steps meanwhile.
    The ``school_task_runner`` block still waits for them at its end (and for their last log
    lines). Submit nothing after. A Dask cluster's workers: left as they are."""
    executor = getattr(runner, "_executor", None)  # Prefect's pool; absent: nothing to do
    if isinstance(executor, ProcessPoolExecutor) and id(runner) not in _WINDING_DOWN:
        # The public shutdown, waiting in a thread of its own: a shutdown that does not wait
        # would drop the pool's own handle on its processes, and the runner's exit with it.
        waiting = threading.Thread(
            target=executor.shutdown, kwargs={"wait": True}, name="massar-workers-exit"
        )
        waiting.start()
        _WINDING_DOWN[id(runner)] = waiting


_WINDING_DOWN: dict[int, threading.Thread] = {}


def in_flow_process(settings: Settings, files: int) -> bool:
    """Whether ``files`` new files are few enough (below ``small_night_files``) to ingest in the
    flow run's own process, without starting workers (the default runner only: a Dask cluster is
    used as asked)."""
    return settings.task_runner == "default" and files < settings.small_night_files


def worker_count(settings: Settings) -> int:
    """How many workers run the per-school tasks (a scheduler's own cluster: as declared)."""
    return settings.dask_workers if settings.task_runner == "dask" else DEFAULT_PROCESSES


def choose_task_runner(settings: Settings) -> TaskRunner:
    """The task runner the settings ask for, not started."""
    if settings.task_runner == "default":
        return ForkedProcessPoolTaskRunner(max_workers=DEFAULT_PROCESSES)
    from prefect_dask import DaskTaskRunner

    if settings.dask_address:
        return DaskTaskRunner(address=settings.dask_address)
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": settings.dask_workers,
            "threads_per_worker": 1,
            "processes": True,
            "host": "127.0.0.1",
            # The scheduler's HTTP endpoint (health, metrics) cannot be turned off: loopback,
            # any free port. The dashboard stays off.
            "dashboard_address": "127.0.0.1:0",
            "scheduler_kwargs": {"dashboard": False},
            "worker_dashboard_address": None,
        }
    )


@contextmanager
def _embedded_api_for_workers() -> Iterator[None]:
    """With Prefect's embedded API, point worker processes at the one this process started
    (on 127.0.0.1); without it each worker would start its own on the same database."""
    if PREFECT_API_URL.value():
        yield
        return
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()  # the one instance this process started, if any
    if not server.running:
        yield
        return
    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        yield


def submit_chunk(
    runner: TaskRunner,
    settings: Settings,
    chunk: list[SchoolFolder],
    reports_at: datetime | None,
) -> PrefectFuture[Any]:
    """The ingest task of a chunk of schools, submitted to ``runner``. Here rather than in the
    flow's module: the flow's own function travels by value with each task's context, and a
    name of its module in its body made every worker import the flow's module (deltalake and
    pyarrow with it, ~0.5 s each at its start)."""
    parameters = {
        "settings": settings,
        "chunk": chunk,
        "label": chunk_label(chunk),
        "reports_at": reports_at,
    }
    return runner.submit(ingest_chunk_task, parameters)


def ingest_stranded(
    settings: Settings, stranded: list[SchoolFolder], reports_at: datetime | None
) -> list[SchoolOutcome]:
    """The schools of chunks whose worker process died (killed for memory, or a library's
    native code aborting on a file: no Python exception to catch), ingested again one at a
    time in a fresh pool, so that one school's fault stops no other school. A school done
    before the death has its files already known the second time; those its dead worker had
    recorded since ``reports_at`` (when this run's chunks were submitted) are counted as this
    run's new submissions (tasks/ingest.count_recorded_since), and its report is written
    again by the flow. A school whose own worker dies is the culprit: its files are counted
    unreadable (a fault of the platform, which makes the command fail with a sentence), a
    sentence names it, and the next school gets a fresh pool. When ``DEATHS_IN_A_ROW``
    schools in a row lose their worker, the workers themselves cannot work (they die as they
    start, e.g. a broken installation or no memory left): the schools left are not tried, their
    files are counted unreadable as well and left in the inbox, and one sentence says so."""
    logger = get_run_logger()
    logger.error(
        "A worker process of this ingest died; the %d school(s) it had not reported on are "
        "ingested again one at a time (already registered files are recognised).",
        len(stranded),
    )
    outcomes: list[SchoolOutcome] = []
    pending = list(stranded)
    deaths = 0  # schools in a row whose worker died
    while pending and deaths < DEATHS_IN_A_ROW:
        with school_task_runner(settings) as runner:
            before = len(outcomes)
            _until_the_pool_breaks(runner, settings, pending, reports_at, outcomes)
        # the pool broke on its first school (or ended the list): one more in a row
        deaths = deaths + 1 if len(outcomes) - before == 1 else 1
    if pending:
        logger.error(
            "The ingest's worker processes died for %d schools in a row, each in a fresh "
            "process: they cannot work on this machine now (a fault of the platform, not of "
            "the schools). The %d school(s) left (%d file(s)) were not tried; their files stay "
            "in the inbox for the next run. Report it to the platform's maintainers with this "
            "run's logs.",
            deaths,
            len(pending),
            sum(len(school.files) for school in pending),
        )
        outcomes.extend(
            SchoolOutcome(
                school.school_code, files_seen=len(school.files), unreadable=len(school.files)
            )
            for school in pending
        )
    return outcomes


# Schools in a row whose worker died in `ingest_stranded` before the others are given up: one
# culprit school is followed by a fresh pool that works; three deaths in a row are the workers.
DEATHS_IN_A_ROW = 3


def _until_the_pool_breaks(
    runner: TaskRunner,
    settings: Settings,
    pending: list[SchoolFolder],
    reports_at: datetime | None,
    outcomes: list[SchoolOutcome],
) -> None:
    """`ingest_stranded`'s pending schools, one at a time in ``runner``'s pool, until none is
    left or a school's worker dies (the pool is then broken)."""
    while pending:
        school = pending.pop(0)
        try:
            done = submit_chunk(runner, settings, [school], reports_at).result()
        except BrokenProcessPool:
            get_run_logger().error(
                "School %s: the worker process reading its files died again (a fault of the "
                "platform, not of the school). Its %d file(s) are left in the inbox and tried "
                "again on the next run; the other schools went on. Report it to the "
                "platform's maintainers with this run's logs.",
                school.school_code,
                len(school.files),
            )
            outcomes.append(
                SchoolOutcome(
                    school.school_code,
                    files_seen=len(school.files),
                    unreadable=len(school.files),
                )
            )
            return
        if reports_at is not None:
            done = [count_recorded_since(settings, outcome, reports_at) for outcome in done]
        outcomes.extend(done)

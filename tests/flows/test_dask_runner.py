"""The per-school work on Prefect's Dask task runner gives the same submissions, findings and
warehouse as the default runner on the same province: once on a local cluster the run starts
(two worker processes), once on a scheduler and two workers started with the ``dask`` command,
as on real machines (all on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import psutil
import pytest
from deltalake import DeltaTable
from polars.testing import assert_frame_equal

from flows.ingest import ingest_submissions
from flows.nightly import nightly_consolidation
from flows.runners import DEFAULT_PROCESSES, choose_task_runner, school_task_runner
from ground.settings import SETTINGS_FILE, Settings, load_settings
from massar.demo import stage_inbox
from massar.home import init_home
from tests.harness.runner_probe import meet
from warehouse.control import ControlDatabase
from warehouse.query import control_table, delta_tables

ROOT = Path(__file__).resolve().parents[2]
DASK = str(Path(sys.executable).with_name("dask"))
# Both commands start an HTTP endpoint even without dashboard, on every interface by default.
LOOPBACK = ["--host", "127.0.0.1", "--dashboard-address", "127.0.0.1:0", "--no-dashboard"]


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory) -> Iterator[str]:
    """A scheduler and two single-threaded workers, each a ``dask`` command of its own; yields
    the scheduler's address."""
    scheduler_file = tmp_path_factory.mktemp("dask") / "scheduler.json"
    scheduler = subprocess.Popen(
        [DASK, "scheduler", *LOOPBACK, "--port", "0", "--scheduler-file", str(scheduler_file)],
        cwd=ROOT,
        stderr=subprocess.DEVNULL,
    )
    workers = None
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists():
            assert scheduler.poll() is None and time.monotonic() < deadline, "no scheduler"
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        workers = subprocess.Popen(
            [DASK, "worker", address, *LOOPBACK, "--nworkers", "2", "--nthreads", "1"],
            cwd=ROOT,
            stderr=subprocess.DEVNULL,
        )
        from distributed import Client

        with Client(address, timeout=60) as client:  # both workers joined, not hoped for
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        started = [process for process in (workers, scheduler) if process is not None]
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _home(root: Path, settings_lines: str) -> Settings:
    """A fresh home whose settings file chooses the runner, as an operator would."""
    settings = init_home(root / "home")
    with (settings.home / SETTINGS_FILE).open("a", encoding="utf-8") as handle:
        handle.write(f"\n{settings_lines}\n")
    return load_settings(settings.home)


@pytest.fixture(scope="module")
def runs(
    prefect_server, defects_province, dask_cluster, tmp_path_factory
) -> dict[str, tuple[Settings, dict]]:
    """Ingest and consolidate the same province once per runner, each in its own home."""
    homes = {
        "default": 'task_runner = "default"',
        "local": 'task_runner = "dask"\ndask_workers = 2',
        "cluster": f'task_runner = "dask"\ndask_address = "{dask_cluster}"',
    }
    runs = {}
    for name, settings_lines in homes.items():
        settings = _home(tmp_path_factory.mktemp(f"{name}-runner"), settings_lines)
        stage_inbox(defects_province, settings.inbox)
        state = ingest_submissions(settings, return_state=True)
        assert state.is_completed(), state.message
        # Schools run side by side: nothing in the night may follow which one was registered
        # first (a pupil listed by two schools goes by the lists' own dates, tasks/consolidate).
        night = nightly_consolidation(settings)
        runs[name] = (settings, {"ingest": state.result(), "night": night})
    return runs


def _control(settings: Settings, name: str) -> pl.DataFrame:
    database = ControlDatabase(settings.resolved_database_url)
    try:
        return pl.from_arrow(control_table(database, name))
    finally:
        database.dispose()


def _files(settings: Settings) -> pl.DataFrame:
    """submission_id → the file it is (schools run concurrently: ids differ between runs)."""
    return _control(settings, "submissions").select(
        "submission_id", "school_code", "file_name", "sha256"
    )


def _stable(frame: pl.DataFrame, files: pl.DataFrame) -> pl.DataFrame:
    """Rows with the submission id replaced by the file's sha256, sorted."""
    if "submission_id" in frame.columns:
        frame = frame.join(files.select("submission_id", "sha256"), on="submission_id")
        frame = frame.drop("submission_id")
    return frame.sort(frame.columns, nulls_last=True)


DASK_RUNS = ("local", "cluster")


def test_every_runner_ingests_the_same_schools(runs):
    summaries = {name: result["ingest"] for name, (_, result) in runs.items()}
    assert summaries["default"]["totals"]["new_submissions"] > 0
    assert summaries["default"]["totals"]["errors"] > 0  # the defects province has findings
    for summary in summaries.values():  # what was measured differs from run to run
        for row in [*summary["schools"], summary["totals"]]:
            row.pop("seconds")
            row.pop("cpu_seconds", None)
    for name in DASK_RUNS:
        assert summaries[name] == summaries["default"], name


@pytest.mark.parametrize("name", DASK_RUNS)
def test_submissions_and_findings_are_identical(runs, name):
    default, dask = runs["default"][0], runs[name][0]
    for table in ("submissions", "findings"):
        frames = [
            _stable(_control(s, table).drop("received_at", strict=False), _files(s))
            for s in (default, dask)
        ]
        assert frames[0].height > 0, table
        assert_frame_equal(frames[1], frames[0])


@pytest.mark.parametrize("name", DASK_RUNS)
def test_every_warehouse_table_holds_the_same_rows(runs, name):
    (default, default_result), (dask, dask_result) = runs["default"], runs[name]
    assert dask_result["night"]["rows"] == default_result["night"]["rows"]
    tables = delta_tables(default.warehouse)
    assert set(delta_tables(dask.warehouse)) == set(tables)
    assert {"students", "marks", "enrollments"} <= set(tables)
    for table in sorted(tables):
        frames = [
            _stable(
                pl.from_arrow(DeltaTable(str(s.warehouse / table)).to_pyarrow_table()),
                _files(s),
            )
            for s in (default, dask)
        ]
        assert frames[0].height > 0, table
        assert_frame_equal(frames[1], frames[0])


def test_the_cluster_started_with_the_dask_command_listens_on_loopback_only(dask_cluster):
    scheduler = next(p for p in psutil.Process().children() if "scheduler" in " ".join(p.cmdline()))
    assert _listening_hosts([scheduler]) == {"127.0.0.1"}
    workers = [p for p in psutil.Process().children() if " worker " in f" {' '.join(p.cmdline())} "]
    assert workers and _listening_hosts(workers) == {"127.0.0.1"}


def _listening_hosts(processes: list[psutil.Process]) -> set[str]:
    processes = [q for p in processes for q in (p, *p.children(recursive=True))]
    return {
        connection.laddr.ip
        for process in processes
        for connection in process.net_connections(kind="inet")
        if connection.status == psutil.CONN_LISTEN
    }


def test_the_local_cluster_listens_on_loopback_only(prefect_server):
    settings = Settings(task_runner="dask", dask_workers=2)
    assert pickle.loads(pickle.dumps(settings)) == settings  # Dask ships it to the workers
    with school_task_runner(settings) as runner:
        client = runner.client
        assert len(client.scheduler_info()["workers"]) == 2
        processes = [psutil.Process(), *psutil.Process().children(recursive=True)]
        listening = {
            connection.laddr
            for process in processes
            for connection in process.net_connections(kind="inet")
            if connection.status == psutil.CONN_LISTEN
        }
        # The scheduler, its HTTP endpoint (health, metrics; no dashboard), two nannies and
        # two workers, besides the test's Prefect server.
        assert len(listening) >= 6
        assert {address.ip for address in listening} == {"127.0.0.1"}, listening
        assert 8787 not in {address.port for address in listening}


def test_the_default_runner_runs_schools_side_by_side_in_two_processes(prefect_server, tmp_path):
    # Two schools meet only when both run at the same time (both cores), each in a worker
    # process of its own, not in the flow's.
    assert DEFAULT_PROCESSES == 2
    with school_task_runner(Settings()) as runner:
        futures = [
            runner.submit(meet, {"folder": tmp_path, "expected": DEFAULT_PROCESSES})
            for _ in range(DEFAULT_PROCESSES)
        ]
        processes = {future.result() for future in futures}
    assert len(processes) == DEFAULT_PROCESSES and os.getpid() not in processes


def test_the_settings_choose_the_runner():
    from prefect.task_runners import ProcessPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    assert isinstance(choose_task_runner(Settings()), ProcessPoolTaskRunner)
    local = choose_task_runner(Settings(task_runner="dask", dask_workers=3))
    assert isinstance(local, DaskTaskRunner) and local.cluster_kwargs["n_workers"] == 3
    remote = choose_task_runner(
        Settings(task_runner="dask", dask_address="tcp://dask-scheduler:8786")
    )
    assert remote.address == "tcp://dask-scheduler:8786"  # connects only when a run submits

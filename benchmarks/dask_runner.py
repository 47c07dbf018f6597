"""Benchmark: the same province ingested and consolidated with the default runner (two worker
processes) and with Prefect's Dask task runner (a local cluster of two single-threaded worker
processes on 127.0.0.1), each into a fresh home, under one embedded Prefect API.

Prints, per runner and round: the ingest flow's time, the consolidation's time (it runs in the
flow's own process with either runner), whether the two homes hold the same submissions and
warehouse rows, and what starting and stopping the local Dask cluster alone costs. The embedded
API is started before anything is timed.

    .venv/bin/python benchmarks/dask_runner.py [--schools N] [--province DIR] [--workers N]
        [--rounds N]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RUNNERS = ("default", "dask")


def ingest_and_consolidate(settings) -> dict:  # type: ignore[no-untyped-def]
    from flows.ingest import ingest_submissions
    from flows.nightly import nightly_consolidation

    started = time.perf_counter()
    summary = ingest_submissions(settings)
    ingested = time.perf_counter() - started
    started = time.perf_counter()
    night = nightly_consolidation(settings)
    consolidated = time.perf_counter() - started
    return {"ingest": ingested, "night": consolidated, "summary": summary, "rows": night["rows"]}


def warehouse_rows(settings) -> dict[str, list[tuple]]:  # type: ignore[no-untyped-def]
    """Every table's rows, sorted, with the submission id replaced by the file's sha256 and the
    reception time left out (both depend on the order schools were processed in)."""
    import polars as pl
    from deltalake import DeltaTable

    from warehouse.control import ControlDatabase
    from warehouse.query import control_table, delta_tables

    database = ControlDatabase(settings.resolved_database_url)
    try:
        files = pl.from_arrow(control_table(database, "submissions"))
    finally:
        database.dispose()
    sha = files.select("submission_id", "sha256")
    tables = {"submissions": files.drop("submission_id", "received_at")}
    for name, path in delta_tables(settings.warehouse).items():
        frame = pl.from_arrow(DeltaTable(str(path)).to_pyarrow_table())
        if "submission_id" in frame.columns:
            frame = frame.join(sha, on="submission_id").drop("submission_id")
        tables[name] = frame.drop("enrolled_from", strict=False)
    return {name: sorted(frame.rows()) for name, frame in tables.items()}


def start_embedded_api() -> None:
    from prefect.client.orchestration import get_client

    started = time.perf_counter()
    with get_client(sync_client=True) as client:
        client.hello()
    print(f"embedded Prefect API started in {time.perf_counter() - started:.1f} s (not timed)")


def cluster_start_stop(settings) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    from flows.runners import school_task_runner

    dask = settings.model_copy(update={"task_runner": "dask"})
    started = time.perf_counter()
    with school_task_runner(dask) as runner:
        runner.client.wait_for_workers(settings.dask_workers)  # type: ignore[attr-defined]
        up = time.perf_counter()
    return up - started, time.perf_counter() - up


def report(results: dict, workers: int, round_number: int) -> None:
    totals = results["default"]["summary"]["totals"]
    print(
        f"round {round_number}: {totals['new_submissions']} submissions from "
        f"{totals['schools']} schools, {totals['rows_read']:,} rows"
    )
    for runner in RUNNERS:
        result = results[runner]
        where = "2 worker processes" if runner == "default" else f"Dask, {workers} workers"
        print(
            f"  {runner:>7} ({where}): ingest {result['ingest']:.2f} s, "
            f"consolidation {result['night']:.2f} s, "
            f"total {result['ingest'] + result['night']:.2f} s"
        )
    ratio = results["dask"]["ingest"] / results["default"]["ingest"]
    same = results["dask"]["tables"] == results["default"]["tables"]
    print(f"  Dask / default ingest time: {ratio:.2f}")
    print(f"  same submissions and warehouse rows: {'yes' if same else 'NO'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schools", type=int, default=40, help="schools to generate")
    parser.add_argument("--province", type=Path, default=None, help="an already generated province")
    parser.add_argument("--workers", type=int, default=2, help="Dask worker processes")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each runner")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    from ground.settings import SETTINGS_FILE, apply_prefect_environment, load_settings
    from massar.demo import stage_inbox
    from massar.home import init_home

    work = Path(tempfile.mkdtemp(prefix="massar-bench-dask-"))
    try:
        province = args.province
        if province is None:
            from massar.synthetic import generate_province

            province = work / "province"
            generated = generate_province(province, schools=args.schools, seed=2024)
            print(
                f"province: {generated.schools} schools, {generated.pupils} pupils, "
                f"{generated.files} files"
            )
        first = True
        for round_number in range(1, args.rounds + 1):
            results = {}
            for runner in RUNNERS:
                home = init_home(work / f"{runner}-{round_number}").home
                with (home / SETTINGS_FILE).open("a", encoding="utf-8") as handle:
                    handle.write(f'\ntask_runner = "{runner}"\ndask_workers = {args.workers}\n')
                settings = load_settings(home)
                apply_prefect_environment(settings)
                if first:
                    start_embedded_api()
                    first = False
                stage_inbox(province, settings.inbox)
                results[runner] = ingest_and_consolidate(settings)
                results[runner]["tables"] = warehouse_rows(settings)
            report(results, args.workers, round_number)
        started, stopped = cluster_start_stop(settings)
        print(
            f"Dask local cluster of {args.workers} workers alone: start {started:.2f} s, "
            f"stop {stopped:.2f} s"
        )
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

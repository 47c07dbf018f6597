"""Benchmark: the nightly consolidation of a Tiznit-like province into the Delta warehouse.

Ingests the province once (plain ``tasks.ingest.ingest_school`` in worker processes), then for
each scale K (1×, 2×, 4× by default) builds a home holding K copies of the province (copies 2..K
are the staged rows and submissions of the original with school codes, pupil codes and
submission ids remapped, so the copies are other schools with other pupils), and measures, each
in a fresh process (so peak memory is the consolidation's own):

- the full night: every school's tables written from its active submissions;
- an incremental night after 5% of the schools resubmitted one NotesCC workbook (one mark
  corrected, so its sha256 changes; re-ingested): its time and its ratio to the full night
  (target <= 10%).

    .venv/bin/python benchmarks/consolidate_province.py [--province /tmp/tiznit]
        [--scales 1,2,4] [--resubmit 0.05] [--work DIR] [--keep]

Why the province's first consolidation took 12-13.5 s of wall for ~10 s of CPU in the night
(issue 17; 2026-12-06 12:18-12:45 UTC, the ingested default province, 2 cores shared, load
5-18: walls are the machine's). ``nightly_consolidation`` alone under the embedded API, on a
copy of the ingested home, its task runs' times from Prefect's database:

- not the GIL: py-spy ``--gil`` over the whole flow (100 Hz) finds ~2 s of samples holding it
  in the tables' threads (writer, prefetch, Prefect's) over ~16 s of their wall; polars and
  delta-rs release it;
- not one core idle: the steps as plain functions in one process (no Prefect), every table
  but the enrolments, one table at a time against two side by side, alternating (load 5.6-6.6):
  one at a time 6.62 / 5.73 / 6.25 s wall for 10.62 / 9.32 / 10.09 s of CPU, two at a time
  5.43 / 6.02 / 5.53 s wall for 9.55 / 10.38 / 9.68 s. One table already keeps ~1.6 cores busy
  (its four schools derived ahead, polars' pool, delta-rs' writer), so on 2 cores the second
  writer adds little; ~10 s of CPU cannot take less than ~5 s of wall, and at load 6-18 the
  process gets less than both cores;
- a serial tail in the main thread: Prefect visited every submission id handed to
  ``publish_night`` (~31 k on a first night, twice) looking for futures before the task
  started: the last table's end to publish_night's start 1.20 / 0.77 / 0.28 s before, 0.01 /
  0.01 / 0.01 s with the ids quoted (flows/nightly.py); the flow's CPU 13.71 / 11.16 / 11.05
  s before against 12.12 / 10.64 / 10.90 s after (load 7-18, alternating). At load 4.5-5
  (alternating old, new, new, old, old, new): the flow 7.53 / 8.09 / 7.78 s wall and 11.42 /
  12.40 / 11.96 s of CPU before, 7.40 / 7.19 / 7.40 s and 11.35 / 11.07 / 11.29 s after (the
  gap 0.27-0.28 -> 0.01 s): the night's consolidation is ~7.5 s on a quieter machine, the
  12-13.5 s measured in the night were the load. Same night: the versions and rows published,
  the 31,413 submissions marked, the Delta logs equal apart from timestamps, ids, file names
  and execution times;
- the rest of the flow's head and tail is small: the pending submissions of the 11 datasets
  0.12-0.25 s of CPU (0.23-0.62 s wall), marking the 31 k submissions consolidated 0.12 s of
  CPU (0.36 s wall), publish_night 0.24-1.20 s wall in all.

Measured and not adopted: two schools derived ahead of the Delta writer instead of four
(``PREFETCH_SCHOOLS``), the marks then the classes (both read the NotesCC rows), alternating
in one process: CPU 3.94-4.61 s with two against 4.08-4.42 s with four over two rounds
(load 7.8-12.6), no clear gain; one ahead 4.42-4.49 s of CPU and a slower wall (3.2-6.6 s).
"""

from __future__ import annotations

import argparse
import math
import random
import resource
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ID_OFFSET = 1_000_000  # submission ids of copy k start at k × ID_OFFSET
CODE_STEP = 12_347  # school code digits of copy k: (digits + k × step) mod 100000


# ---- ingest -------------------------------------------------------------------------------


def _ingest_one(home: str, code: str, files: list[str], folder: str) -> tuple[str, int, int]:
    from ground.settings import load_settings
    from tasks.ingest import ingest_school

    settings = load_settings(home)
    outcome = ingest_school(settings, code, [Path(f) for f in files], Path(folder))
    return code, len(outcome.new_submissions), outcome.rows_accepted


def ingest(home: Path, jobs: dict[str, tuple[list[Path], Path]], workers: int) -> float:
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        futures = [
            pool.submit(_ingest_one, str(home), code, [str(f) for f in files], str(folder))
            for code, (files, folder) in sorted(jobs.items())
        ]
        for future in futures:
            future.result()
    return time.perf_counter() - started


def load_reference(home: Path, schools_csv: Path, copies: int) -> int:
    import csv

    from ground.settings import load_settings
    from warehouse.control import ControlDatabase
    from warehouse.submissions import upsert_schools

    with schools_csv.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    reference = []
    for k in range(copies):
        for r in rows:
            reference.append(
                {
                    "school_code": school_copy(r["school_code"], k),
                    "name_ar": r.get("name_ar", ""),
                    "name_fr": r.get("name_fr", ""),
                    "commune": r.get("commune", ""),
                    "cycle": r.get("cycle", ""),
                    "school_type": r.get("type", "main"),
                    "parent_school_code": (
                        school_copy(r["parent_school_code"], k)
                        if r.get("parent_school_code")
                        else None
                    ),
                }
            )
    database = ControlDatabase(load_settings(home).resolved_database_url)
    try:
        return upsert_schools(database, reference)
    finally:
        database.dispose()


# ---- copies of the province -----------------------------------------------------------------


def school_copy(code: str, k: int) -> str:
    if k == 0:
        return code
    return f"{(int(code[:5]) + k * CODE_STEP) % 100_000:05d}{code[5:]}"


def pupil_copy_expr(column: str, k: int):  # type: ignore[no-untyped-def]
    """K100000123 → K(1+k)00000123: the first digit shifted (originals all start with 1)."""
    import polars as pl

    text = pl.col(column)
    shifted = (text.str.slice(1, 1).cast(pl.Int64, strict=False) + k) % 10
    return (
        pl.when(text.str.contains(r"^[A-Z]\d{9}$"))
        .then(text.str.slice(0, 1) + shifted.cast(pl.Utf8) + text.str.slice(2))
        .otherwise(text)
        .alias(column)
    )


def add_copies(home: Path, copies: int) -> None:
    """Copies 1..copies-1 of every school of the home: staged rows and submissions."""
    import polars as pl
    from sqlalchemy import insert, select

    from ground.settings import load_settings
    from warehouse.control import ControlDatabase, Submission

    settings = load_settings(home)
    database = ControlDatabase(settings.resolved_database_url)
    originals = sorted(p.name for p in settings.staging.iterdir() if p.is_dir())
    first_digits = set()
    for path in settings.staging.glob("*/students/*.parquet"):
        codes = pl.read_parquet(path, columns=["student_code_key"]).get_column("student_code_key")
        first_digits |= set(codes.str.slice(1, 1).drop_nulls().unique().to_list())
    if len(first_digits) > 1:
        print(f"warning: pupil codes start with digits {sorted(first_digits)}; copies may collide")
    with database.session() as session:
        submissions = list(session.scalars(select(Submission)))
    columns = [c.key for c in Submission.__table__.columns]
    try:
        for k in range(1, copies):
            offset = k * ID_OFFSET
            rows = []
            for s in submissions:
                row = {c: getattr(s, c) for c in columns}
                code = school_copy(s.school_code, k)
                row.update(
                    submission_id=s.submission_id + offset,
                    school_code=code,
                    sha256=s.sha256,
                    scope_key=s.scope_key.replace(f"|{s.school_code}|", f"|{code}|"),
                    superseded_by=None if s.superseded_by is None else s.superseded_by + offset,
                    consolidated_at=None,
                )
                rows.append(row)
            with database.session() as session:
                session.execute(insert(Submission), rows)
            for code in originals:
                for path in (settings.staging / code).glob("*/*.parquet"):
                    frame = pl.read_parquet(path)
                    fixes = [pl.col("submission_id") + offset]
                    fixes += [
                        pupil_copy_expr(c, k)
                        for c in ("student_code", "student_code_key")
                        if c in frame.columns
                    ]
                    first, last = (int(part) + offset for part in path.stem.split("-"))
                    target = settings.staging / school_copy(code, k) / path.parent.name
                    target.mkdir(parents=True, exist_ok=True)
                    frame.with_columns(fixes).write_parquet(target / f"{first}-{last}.parquet")
    finally:
        database.dispose()


# ---- a night --------------------------------------------------------------------------------


def run_night(home: str) -> dict[str, Any]:
    """What the consolidation flow does, timed: every dataset's changed schools into its
    tables, the school reference, then the submissions marked consolidated."""
    from ground.settings import load_settings
    from schemas.datasets import DATASETS
    from tasks.consolidate import (
        changed_schools,
        consolidate_enrollments,
        consolidate_school_reference,
        consolidate_table,
        mark_consolidated,
        pending_submissions,
        write_transfer_report,
    )
    from warehouse.control import ControlDatabase
    from warehouse.delta import table_versions
    from warehouse.tables import tables_of

    settings = load_settings(home)
    database = ControlDatabase(settings.resolved_database_url)
    started = time.perf_counter()
    seconds: dict[str, float] = {}
    changed: dict[str, int] = {}
    pending: list[int] = []
    transfers = 0
    for dataset in DATASETS:
        schools = changed_schools(database, dataset)
        changed[dataset] = len(schools)
        pending += [i for ids in pending_submissions(database, dataset).values() for i in ids]
        for table in tables_of(dataset):
            began = time.perf_counter()
            if table == "enrollments":
                _, found = consolidate_enrollments(settings, schools)
                write_transfer_report(settings.reports, found, "bench")
                transfers = len(found)
            else:
                consolidate_table(settings, table, schools)
            seconds[table] = time.perf_counter() - began
    began = time.perf_counter()
    consolidate_school_reference(settings)
    seconds["schools"] = time.perf_counter() - began
    versions = table_versions(settings.warehouse)
    mark_consolidated(database, pending)
    database.dispose()
    return {
        "seconds": time.perf_counter() - started,
        "tables": seconds,
        "changed": changed,
        "versions": versions,
        "transfers": transfers,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def in_child(function, *args):  # type: ignore[no-untyped-def]
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def warehouse_rows(home: str) -> dict[str, int]:
    from ground.settings import load_settings
    from warehouse.delta import read_table, table_versions

    warehouse = load_settings(home).warehouse
    return {name: read_table(warehouse, name).count_rows() for name in table_versions(warehouse)}


# ---- resubmissions ------------------------------------------------------------------------


def resubmit(province: Path, inbox: Path, schools: list[str]) -> dict[str, tuple[list[Path], Path]]:
    """One NotesCC workbook per school with its first mark corrected, in a fresh inbox."""
    import openpyxl

    jobs = {}
    for code in schools:
        notes = sorted((province / code).rglob("*.xlsx"))
        notes = [p for p in notes if "notes" in p.parent.name.lower() or "Export" in p.name]
        if not notes:
            continue
        workbook = openpyxl.load_workbook(notes[0])
        sheet = workbook["NotesCC"]
        cell = sheet.cell(18, 7)
        cell.value = 19.25 if cell.value != 19.25 else 18.5
        folder = inbox / code
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / (notes[0].stem + "_corrige.xlsx")
        workbook.save(target)
        jobs[code] = ([target], folder)
    return jobs


# ---- main ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--province", type=Path, default=Path("/tmp/tiznit"))
    parser.add_argument("--scales", default="1,2,4", help="copies of the province, e.g. 1,2,4")
    parser.add_argument("--resubmit", type=float, default=0.05, help="share of schools resending")
    parser.add_argument("--workers", type=int, default=2, help="ingest processes")
    parser.add_argument("--work", type=Path, default=None, help="working folder (kept)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    scales = [int(k) for k in args.scales.split(",")]

    from massar.home import init_home
    from tasks.ingest import discover_inbox

    work = args.work or Path(tempfile.mkdtemp(prefix="massar-bench-consolidate-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        schools, _ = discover_inbox(args.province)
        base = work / "base"
        if not (base / "massar.db").exists():
            init_home(base)
            jobs = {code: (files, args.province / code) for code, files in schools.items()}
            seconds = ingest(base, jobs, args.workers)
            print(
                f"ingest of {len(schools)} school folders ({args.workers} processes): "
                f"{seconds:.1f} s"
            )
        else:
            print(f"reusing the ingested home {base}")
        results = []
        for k in scales:
            home = work / f"x{k}"
            if home.exists():
                shutil.rmtree(home)
            shutil.copytree(
                base, home, ignore=shutil.ignore_patterns("archive", "warehouse", "reports")
            )
            for folder in ("archive", "warehouse", "reports"):
                (home / folder).mkdir(exist_ok=True)
            started = time.perf_counter()
            add_copies(home, k)
            load_reference(home, args.province / "schools.csv", k)
            prepared = time.perf_counter() - started
            full = in_child(run_night, str(home))
            rows = in_child(warehouse_rows, str(home))
            total = len(schools) * k
            chosen = sorted(
                random.Random(k).sample(sorted(schools), math.ceil(args.resubmit * total))
            )
            jobs = resubmit(args.province, work / f"inbox-x{k}", chosen)
            reingest = ingest(home, jobs, args.workers)
            incremental = in_child(run_night, str(home))
            ratio = incremental["seconds"] / full["seconds"]
            results.append((k, total, rows, full, incremental, ratio))
            print(f"\n== {k}× : {total} schools (copies prepared in {prepared:.1f} s)")
            print(f"rows: {rows}")
            print(
                f"full night: {full['seconds']:.2f} s, peak {full['peak_mb']:.0f} MB; "
                f"{full['transfers']} transfers"
            )
            print("  per table: " + ", ".join(f"{t} {s:.2f}" for t, s in full["tables"].items()))
            print(
                f"incremental night ({len(jobs)} schools resent one workbook, re-ingest "
                f"{reingest:.1f} s): {incremental['seconds']:.2f} s, peak "
                f"{incremental['peak_mb']:.0f} MB; {100 * ratio:.1f}% of the full night "
                "(target <= 10%)"
            )
            print(
                "  per table: "
                + ", ".join(f"{t} {s:.2f}" for t, s in incremental["tables"].items())
            )
            moved = {
                t: incremental["versions"][t] - full["versions"][t] for t in incremental["versions"]
            }
            print(f"  new versions per table: {moved}")
        print("\ngrowth (full night):")
        print("scale  schools  marks rows   full s  peak MB  incremental s  ratio")
        for k, total, rows, full, incremental, ratio in results:
            print(
                f"{k:>4}×  {total:>7}  {rows.get('marks', 0):>10}  {full['seconds']:>7.2f}  "
                f"{full['peak_mb']:>7.0f}  {incremental['seconds']:>13.2f}  {100 * ratio:>4.1f}%"
            )
    finally:
        if args.keep or args.work:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

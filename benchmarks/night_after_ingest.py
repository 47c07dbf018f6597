"""Benchmark: the first night's work after its ingest (consolidation, evaluation, e-services
extract, statistics report), checkout against checkout on the same ingested home.

    .venv/bin/python benchmarks/night_after_ingest.py --code before=DIR --code after=DIR
        [--province DIR | --quick] [--rounds 2] [--work DIR]

The province's inbox is ingested once (``flows.ingest.ingest_submissions`` under the embedded
API, with this checkout). Then, round after round and checkout after checkout (the order
alternates, so a change of the machine's load falls on both), a copy of that ingested home
runs ``flows.nightly.nightly`` in a process of its own: its ingest finds nothing new (a
pre-check), its consolidation takes in every submission, the evaluation and its reports run
as on the first night. Per run: wall and CPU seconds of the night (the process and its
children; the API's start apart, not counted), the load average before and after, and the
Prefect task runs' wall seconds by task. The machine may be shared: compare CPU first.

Figures (default province, 135 schools, 31,413 files; 2 cores shared with four other
engineers' work, load 8.9-10.3 throughout, so wall times are high and noisy: compare CPU).
before = 40cb72b, after = the same tree with this round's night changes (polars' reader for
the reports' inputs, tables written two at a time, e-services and statistics side by side,
the extract built 32 schools at a time), 2 rounds, alternating:

    run       wall      CPU      consolidation  read_results  e-services  statistics  evaluate
    before 1  70.93 s   36.03 s  18.2 s         6.8 s         22.3 s      7.7 s       42.9 s
    after 1   60.15 s   31.39 s  14.5 s         3.2 s         26.4 s*     18.6 s*     37.0 s
    after 2   50.19 s   28.86 s  15.3 s         2.2 s         15.6 s*     6.4 s*      27.3 s
    before 2  66.73 s   33.78 s  18.1 s         7.4 s         16.8 s      5.0 s       39.4 s
    (* side by side: their walls overlap; "evaluate" is the subflow, reports included)

Means: 68.8 -> 55.2 s wall (-20 %), 34.9 -> 30.1 s CPU (-14 %). Each night includes the
ingest's pre-check of the 31,413 files already known (4.5-6.0 s, another engineer's part).
On this saturated machine the two tables written at a time gain little (the cores are busy
anyway: 18.2 -> 14.5-15.3 s); on a quiet machine the marks (~5 s) and the nine others (~6 s)
overlap. Peak RSS of the night's process (fresh pair at load 3-6): before 2,678 MB, after
3,375 MB, 38.0 -> 33.8 s wall, 33.3 -> 30.3 s CPU; the +700 MB came from the e-services extract
and the statistics side by side (their peaks added): they run one after the other again,
2,664 MB (25.9 s wall at load 3.0, 35.6 s CPU: the overlap's gain is within the noise).

The final code (reports one after the other) against before, two pairs in alternate order on
a quieter machine (load 1.4-2.0): before 33.3 / 35.3 s wall, 42.5 / 44.5 s CPU, peak 2,709 /
2,617 MB; after 23.2 / 26.0 s wall, 31.0 / 34.8 s CPU, peak 2,701 / 2,618 MB. Means 34.3 ->
24.6 s wall (-28 %), 43.5 -> 32.9 s CPU (-24 %), the same peak.

Next round (2026-12-06 06:29-06:36 UTC, 2 cores shared, load 1.6-5.2): before = 563703a, after
= 9970213 (the consolidation reads its active submissions as rows of the columns it uses, not
ORM objects; the e-services extracts written two at a time; with the other engineers' commits
of the round: the evaluation batch's SQL, the ingest chunks' garbage collector), 2 rounds,
alternating (before, after, after, before):

    run       wall      CPU      load      consolidation  marks  e-services  statistics  batches
    before 1  40.92 s   35.24 s  5.2-5.1   15.3 s         8.3 s  8.3 s       2.4 s       5.3 s
    after 1   20.33 s   27.46 s  3.0-3.2    7.2 s         2.9 s  4.9 s       1.6 s       1.8 s
    after 2   21.31 s   30.42 s  2.2-2.8    8.1 s         3.4 s  4.1 s       1.8 s       2.1 s
    before 2  38.39 s   36.19 s  1.6-2.5   13.8 s         6.5 s  9.3 s       3.0 s       4.2 s

Means 39.7 -> 20.8 s wall, 35.7 -> 28.9 s CPU. Of the consolidation's CPU, the active
submissions as rows are ~0.5 s (measured apart: 30 k rows in 0.1-0.2 s against 0.5-0.7 s as
ORM objects); that alone does not explain the halved wall of the consolidation, whose cause is
not established (load differences between the runs are part of it). The e-services write
phase alone, alternating at load 4.8-8: 3.1-4.2 s -> 2.2-3.4 s wall, the same CPU. The
batches (evaluate_by_school_batches) are another engineer's change of the round.

Next round (2026-12-06 09:20-09:40 UTC, 2 cores shared with three other engineers' work, load
5.2-11.4 throughout: walls are the machine's, compare CPU, and even CPU moves ±10 % at that
load): before = 6bd7fef, after = 3bf1421 (the statistics report beside the e-services extract
again, the statistics taking only the inputs they read, not a copy of the year's marks; the
extract reads the marks once for a pupil's classes and scale), worktrees of both, alternating:

    run       wall      CPU      load       peak      consolidation  e-services  statistics
    before 1  79.84 s   40.41 s  5.2-8.3    2,492 MB  20.0 s         23.4 s      7.2 s
    after 1   59.72 s   37.85 s  8.3-9.7    2,535 MB  17.2 s         22.8 s*     14.5 s*
    after 2   57.20 s   35.56 s  8.2-11.4   2,562 MB  18.5 s         18.8 s*     12.0 s*
    before 2  85.67 s   40.12 s  8.8-10.3   2,512 MB  21.8 s         32.0 s      8.0 s
    (* side by side; "evaluate", the subflow: 47.4 / 54.3 s before, 32.6 / 31.8 s after)

Means 82.8 -> 58.5 s wall, 40.3 -> 36.7 s CPU, peak +45 MB (the last try side by side, with
the statistics' copy of the marks: +700 MB). On this saturated machine most of the wall gained
is two runnable threads getting a larger share of the cores than one, not an idle core put to
work; on a quiet machine the statistics' ~1.5 s of CPU (its charts, matplotlib, one core)
should hide behind the extract's polars work. The reports alone (one process, the extract and
the statistics of the evaluated province, alternating at load 4.5-6.4): one after the other
15.5-24.7 s wall, 9.5-12.8 s CPU; side by side 15.7-23.7 s, 9.2-12.2 s CPU: no idle core then.

Measured and not adopted this round:
- the consolidation's rows converted to the table's schema a group of schools at a time (up
  to 32 schools / 100 k rows) instead of once a school: every table consolidated alone,
  alternating, 12.3-12.7 s of CPU against 10.3-11.3 s before (the Delta writer then splits
  each batch by school); undone (faa4b54). A school's rows per table cost ~3-7 ms of fixed
  polars and pyarrow calls (7 collects a school), 135 schools × 10 tables: a derivation over
  several schools at once would need warehouse/tables.py's derivations to take a school column
  instead of a school's context;
- the e-services' assessments grouped after one sort by slot (an Enum) instead of a sort
  within each group, and the pupils' assessments after one sort by semester and subject: the
  same records, 2.6-3.3 s of CPU either way (the grouping's filter, not the sort, is its cost:
  the plain grouping of the marks' 3.5 M rows is ~0.5 s, with the tests' struct ~1.8 s);
- the reports' reads restricted to the columns the extract and the statistics read (marks 11
  of 14 columns, students 4 of 11): 0.25-0.68 s of CPU either way, 80 MB less;
- what the e-services cost now (default province, alone): their fingerprints 1.1 s of CPU,
  building the records 4.8 s (the assessments 2.6-3.3 of it), the JSON Lines 1.4 s for 352 MB
  (polars' writer), sha256 0.2 s; the statistics report 1.4 s (the chart by school 0.7 s, its
  constrained layout measuring 135 tick labels twice), computing the statistics 0.2 s.

Next round (2026-12-06 11:20-12:10 UTC, 2 cores shared, load 3.4-10.7 throughout: compare
CPU). The code at 7d98905, the default province (135 schools with marks), three nights:

    run        wall      CPU      load       peak      consolidation  evaluate  e-services
    before a   43.95 s   37.91 s  4.0-5.0    2,518 MB  12.1 s         27.2 s    18.0 s*
    before b   40.64 s   33.02 s  5.0-5.7    2,631 MB  13.2 s         20.9 s    12.4 s*
    before c   54.08 s   40.96 s  3.4-5.6    2,535 MB  13.5 s         34.6 s    20.6 s*
    (* beside the statistics: 10.3 / 7.5 / 15.1 s; read_results_for_reports 3.9 / 2.3 / 4.2 s)

Where the CPU goes, the same steps as plain functions in one process, one table at a time, on
a copy of the ingested home (three runs, load 4-10): the consolidation 8.95-10.4 s (marks
3.6-4.1, each of the nine others 0.35-0.8, the enrolments 0.6-1.0; wall = CPU: one table uses
one core), the evaluation's batches 3.4-4.2 s, read_results_for_reports 2.0-3.2 s (of it the
province's marks restricted again by tasks/evaluable.evaluable: 2.1 s wall, five _distinct
passes over 3.5 M rows; reading the tables 0.7 s), the e-services 6.9-8.8 s (their inputs'
fingerprints 2.1 s wall, the records' polars collects 6.0 s of two threads' time, the writes
1.7 s). About 28 s of CPU after the ingest: on 2 cores the 15 s goal needs both cores busy
throughout and a few seconds of CPU less.

Measured and not adopted this round:
- the statistics report started beside the marks' restriction instead of beside the records
  (the result tables read once; the statistics reading their four inputs themselves; the
  e-services task restricting the marks): the same files (extracts and report compared byte
  for byte), but the reports alone, alternating old/new/new/old/new/old at load 5.4-9.4, took
  21.8 / 21.0 / 12.3 s wall before against 25.7 / 37.1 / 15.2 s after, CPU 13.3 / 12.4 /
  11.0 s against 13.4 / 12.3 / 11.2 s: at that load no core was idle to take them, the wall worse
  every time. Two whole nights with it (34.6 / 47.7 s wall, 28.9 / 34.9 s CPU, beside
  before b and c) looked better, but within the hour's noise, which the reports alone contradict;
- the tables' rows handed to Arrow in polars' oldest layout (large strings) before their cast to the
  table's schema (warehouse/tables.to_arrow): the province's marks 0.32-0.36 s of CPU against
  0.27-0.46 s: no gain;
- the reports' inputs (the night's tables read and restricted by tasks/evaluable.evaluable, the
  2-3 s of read_results_for_reports that are not the results) read in a Prefect task submitted
  beside the batches, the results alone read after them (diff: /tmp/n2/reports-inputs-beside-
  batches.diff, with a test that the inputs equal those restricted after the batches and one
  that inputs of another night are read again). Before = a70a50d, after = it with the change,
  12:13-12:23 UTC, load 5.4-9.9, alternating:

    run       wall      CPU      load       peak      inputs beside  batches  results  evaluate
    before 1  30.60 s   25.81 s  6.6-6.1    2,645 MB  -              3.5 s    1.8 s    15.1 s
    after 1   30.96 s   27.33 s  5.4-8.8    2,637 MB  2.2 s          5.1 s    0.5 s    15.3 s
    after 2   55.26 s   29.89 s  6.7-9.6    2,554 MB  3.9 s          9.1 s    0.7 s    38.9 s
    before 2  66.42 s   35.42 s  8.2-9.9    2,512 MB  -              5.0 s    3.0 s    30.9 s
    ("results": read_results_for_reports, the inputs' restriction included before; "evaluate":
    the subflow, reports included)

  The same files (exchange and reports, 682 files, 371 MB, byte for byte in all four nights),
  the same peak. The restriction left the reports' path (3.0 / 1.8 -> 0.5 / 0.7 s) but the
  batches grew by as much (3.5 -> 5.1 s at the same load): no idle core took it; the
  subflow 15.1 -> 15.3 s at load 6, the second pair too loaded to say. The night process's
  CPU sampled every 0.2 s during a night (old code, load 7-11): 0.42 cores during the batches,
  0.37 during the e-services: the machine's load, not the night, fills the cores. Not adopted
  (no clear gain in two pairs). Whether a core is idle during the batches on a quiet machine
  (DuckDB's aggregation uses two threads, delta-rs' writer one) is not established: to
  measure again when the machine is quiet. What there is to move is small in CPU: on a
  consolidated copy of the home (a70a50d, one process, load 11-15), read_published 0.66 s of
  CPU (0.91 s wall) and tasks/evaluable.evaluable over the 3,522,752 marks 0.66-0.84 s of CPU
  in 2.9-5.3 s wall, three runs (its five _distinct passes 0.07-0.42 s of CPU each): the
  "2.1 s wall" of the restriction is mostly waiting for a core at that load, not work.

Next round (2026-12-06 14:13-14:56 UTC, 2 cores shared, load 3.7-8.4 throughout: compare CPU).
The default province (/tmp/a3/province: 135 schools with files, 31,413 files, 3.52 M marks).
Where the CPU goes, the steps as plain functions in one process on a copy of the ingested home
(0c5aeac, load 3.7): consolidation 10.0 s (marks 3.91; the nine others 0.36-0.79 each, 5.73 in
all, mostly a fixed ~3 ms a school: read 1.1, derive 0.3-1, to Arrow 0.5), the batches 3.40,
read_results_for_reports 1.88, statistics 1.56 (matplotlib: the PNGs' drawing and constrained
layout), e-services 6.58 (fingerprints 1.1, records 5.1 of which the tests' grouping 2.6, the
JSON Lines 1.5), about 23.6 s in all. Changed (a worktree of 0c5aeac with this round's three
commits, against 0c5aeac):

- e-services: a pupil's tests and activities grouped by the marks' runs (a NotesCC row gives
  one pupil's slots together), the key's grouping kept for marks not in runs: 2.6-2.9 -> 0.94-
  0.99 s of CPU; the fingerprints' row hashes computed as a column before the grouping:
  extract_inputs 1.11 -> 0.75 s;
- consolidation: a table's schools derived together up to 50 k accepted rows (ROW_SCHOOL
  names each row's school), handed to the writer a school a batch as before: the nine tables
  other than the marks 5.73 -> 4.01 s of CPU (one process, load 5-6.6).

Same outputs: every consolidated table equal school by school in file order, the result
tables equal as sets of rows (their order is DuckDB's, not fixed: two runs of the old code
differ too), reports and e-services files byte for byte (manifests apart from inputs_sha256,
which holds the module's code), findings and submissions equal, on the default province, the
40-school one and a 10-school province with defects. On the latter, one pupil's extract
(marked in two classes, annual results at two levels in one school) names 6APG-2 or 4APG-2
from run to run with the old code as with the new: tasks/eservices.extract_records' placement
sorts ties unstably over results whose row order is DuckDB's; the same pupil gets a second
primary-certificate exam result (6APG-2, no final average) in 1 of 5 runs of the old code
(exam_results 545 rows instead of 544). Both reported, not changed here.

Alternating nights (this script, --code before=0c5aeac --code after=the worktree, 2 rounds):

    run       wall      CPU      load        peak      consolidation  batches  e-services  stats
    before 1  32.29 s   26.14 s  5.6 -> 8.2  2,513 MB  8.7 s          3.7 s    13.4 s*     7.0 s*
    after 1   26.19 s   22.86 s  6.0 -> 6.2  2,620 MB  7.8 s          3.2 s     7.6 s*     3.9 s*
    after 2   39.61 s   24.40 s  4.5 -> 8.4  2,538 MB  8.3 s          5.3 s    15.3 s*    10.5 s*
    before 2  36.72 s   26.39 s  5.8 -> 7.7  2,617 MB  9.7 s          5.2 s    13.9 s*     9.4 s*
    (* side by side)

Means 34.5 -> 32.9 s wall (the load's), 26.27 -> 23.63 s CPU (-10 %), the same peak.

Next round (2026-12-06 16:42-18:15 UTC, 2 cores shared with four other engineers' work, load
3-11). The night's timeline (its Prefect flow and task runs, the night's and the API's
processes' CPU sampled every 0.2 s, the Prefect client's answers of 400 and more recorded;
a script of this round, not kept) showed both processes idle (0.00-0.08 cores) for 2.0-2.3 s
at the boundary of two flows (the ingest's pre-check and the consolidation, or the
consolidation and the evaluation) in 9 of 19 nights of the 40-school province (two in one
night) and in 1 of 3 of the default province's: a POST /api/task_runs/ answered 503 (SQLite's
database locked: a write of the API met another of its connections' commit, the flow
before's logs and events), which Prefect's client tries again after a backoff of 2 s.
Changed (22ca774, massar/prefect_api.py): that answer carries Retry-After 0.5 s (0.2 s while
measured: 2 of 11 nights met the 503, the boundary 0.37-0.38 s instead of ~2.3 s). Other
nights are unchanged: the default province after its ingest, before (e0b45dc) and after
(22ca774) alternating, no 503 in any of the four, load 3.1-6.1: before 23.60 / 24.76 s wall,
23.66 / 23.46 s CPU; after 23.74 / 27.79 s wall, 23.04 / 24.62 s CPU.
The whole first night (benchmarks/second_night.py, default province, --code of each worktree,
old / new / new / old, 17:39-17:50 UTC, load 4.7-8.9): API start 10.2 / 10.6 / 6.6 / 9.3 s
(3.5-4.0 s CPU in the command, 3.3-3.6 s in the API's), first night 87.6 / 134.1 / 100.3 /
105.8 s wall (the load's: a test suite ran beside the first "new"), 73.3 / 77.5 / 73.5 / 73.4 s
CPU; unchanged night 2.12 / 2.73 / 2.93 / 2.09 s wall, 1.11 / 1.08 / 1.16 / 1.10 s CPU. The
change removes a wait, not CPU: at a 503 in 2-5 nights of 10, ~1.5-1.8 s of wall each.

Where the night's time went then (default province, one night at load 6, old code): the
ingest's pre-check 2.0 s, the consolidation 8.8 s (~1 core: the machine's share), the
evaluation's batches 4.2 s, read_results_for_reports 1.8 s, the e-services extract and the
statistics side by side 4.8 s. In one process: the marks' consolidation 3.8-3.9 s of CPU (its
rows derived, staged reads included, 1.6 s; the Delta write of 3.5 M rows ~1.4 s), the staged
reads of all eleven datasets 1.7 s (the marks' 39 columns 0.49 s, the others 0.09-0.14 s each).

Measured and not adopted this round:
- warm-up requests to the API sent by a thread of the command as soon as it answers (GET
  /api/admin/version, POST /api/flows/filter): the API's first answers beyond its health cost
  0.4-0.6 s of its CPU (the first flow 0.86-1.5 s of wall at load 5-11, the next 0.1-0.2 s),
  but on this machine the API's start (3.6-3.8 s of its CPU) ends after the command's imports
  (2.4-2.7 s), so the warm-up only races the first flow: old / new alternating at load 6.8-11.5,
  start + first flow 13.45 / 14.46 / 9.52 s against 14.46 / 10.49 / 10.65 s, the API's CPU in
  the first flow 0.59-0.68 against 0.53-0.60 s. No gain: not kept;
- SQLAlchemy's mappers configured in the API at its start (py-spy credited the first request's
  time to their configuration): measured directly, 0.06 s of CPU: not the cost;
- ZSTD level 1 for the consolidated tables (their writer's default level otherwise): the
  marks' Delta write 1.33 / 1.35 s of CPU against 1.38-1.45 s, the same 4.9 MB: no gain;
- the modules a night imports after its flow's import (157: fastapi, graphviz, Prefect's
  engines, SQLAlchemy's SQLite dialect) cost 0.17 s of CPU: importing them while the API starts
  would save that much at most; not done (benchmarks/second_night.py passes only
  massar.runner.REPORT_CHARTS to the warm-up).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from second_night import _cpu, _env, _load, _province, _schools  # noqa: E402


def _ingest_main(home: Path) -> None:
    """In a subprocess: the ingest flow alone on ``home``."""
    sys.path.insert(0, str(Path.cwd()))
    from ground.settings import load_settings
    from massar.runner import prefect_api

    settings = load_settings(str(home))
    with prefect_api(settings):
        from flows.ingest import ingest_submissions

        ingest_submissions(settings.without_secrets())


def _night_main(home: Path, out: Path) -> None:
    """In a subprocess: the nightly flow on an ingested ``home``, timed after the API's start."""
    sys.path.insert(0, str(Path.cwd()))
    from ground.settings import load_settings
    from massar.runner import prefect_api

    settings = load_settings(str(home))
    with prefect_api(settings):
        from flows.nightly import nightly

        load = _load()
        wall, cpu = time.perf_counter(), _cpu()
        summary = nightly(settings)
        figures = {
            "wall_s": time.perf_counter() - wall,
            "cpu_s": _cpu() - cpu,
            "load_before": load,
            "load_after": _load(),
            "changes": summary.get("changes", ""),
            # the night's process (nothing new: no ingest worker), in MB
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        }
    out.write_text(json.dumps(figures))


def task_seconds(home: Path) -> dict[str, float]:
    """Wall seconds of the last nightly flow run's tasks and subflows, by name (summed)."""
    database = sqlite3.connect(home / "prefect" / "prefect.db")
    try:
        (start,) = database.execute(
            "select max(start_time) from flow_run "
            "where flow_id in (select id from flow where name = 'nightly')"
        ).fetchone()
        rows = database.execute(
            "select t.name, (julianday(t.end_time) - julianday(t.start_time)) * 86400 "
            "from task_run t where t.start_time >= ? and t.end_time is not null",
            (start,),
        ).fetchall()
    finally:
        database.close()
    seconds: dict[str, float] = {}
    for name, wall in rows:
        key = name.rsplit("-", 1)[0] if not name.startswith("consolidate-") else name
        seconds[key] = round(seconds.get(key, 0.0) + float(wall or 0.0), 2)
    return seconds


def _run(args: list[str], code: Path, log: Path) -> None:
    with log.open("w") as handle:
        done = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), *args],
            env=_env(code),
            cwd=code,
            stdout=handle,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if done.returncode:
        tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-8:])
        raise SystemExit(f"{args[0]} failed: {tail}")


def ingested_home(province: Path, work: Path) -> Path:
    """A fresh home whose inbox (the province) is ingested, nothing consolidated yet."""
    home = work / "ingested"
    if (home / "massar.toml").exists():
        return home
    init = "from massar.home import init_home; import sys; init_home(sys.argv[1])"
    subprocess.run([sys.executable, "-c", init, str(home)], env=_env(ROOT), cwd=ROOT, check=True)
    for school in _schools(province):
        shutil.copytree(school, home / "inbox" / school.name)
    started = time.perf_counter()
    _run(["--ingest", str(home)], ROOT, work / "ingest.log")
    print(f"ingested in {time.perf_counter() - started:.1f} s: {home}", flush=True)
    return home


def night(home: Path, code: Path, work: Path, name: str) -> dict[str, Any]:
    """The night after the ingest on a copy of ``home`` with checkout ``code``."""
    copy = work / f"night-{name}"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(home, copy)
    out = work / f"night-{name}.json"
    _run(["--night", str(copy), str(out)], code, work / f"night-{name}.log")
    figures: dict[str, Any] = json.loads(out.read_text())
    figures["tasks"] = task_seconds(copy)
    shutil.rmtree(copy, ignore_errors=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--code", action="append", default=[], help="NAME=DIR, one per checkout")
    parser.add_argument("--province", type=Path, help="an already generated province")
    parser.add_argument("--quick", action="store_true", help="a province of 6 schools")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--work", type=Path, help="keep the working folder (and the ingest) here")
    parser.add_argument("--ingest", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--night", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ingest:
        return _ingest_main(args.ingest)
    if args.night:
        return _night_main(*args.night)
    codes = dict(item.split("=", 1) for item in args.code) or {"this": str(ROOT)}
    work = args.work or Path(tempfile.mkdtemp(prefix="massar-night-after-ingest-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        province = args.province or _province(work, 6 if args.quick else None)
        home = ingested_home(province, work)
        names = list(codes)
        for round_ in range(args.rounds):
            for name in names if round_ % 2 == 0 else reversed(names):
                figures = night(home, Path(codes[name]).resolve(), work, name)
                steps = ", ".join(f"{task} {s:.1f}" for task, s in figures["tasks"].items())
                print(
                    f"{name:>8} round {round_ + 1}: {figures['wall_s']:6.2f} s wall, "
                    f"{figures['cpu_s']:6.2f} s CPU, load {figures['load_before']} -> "
                    f"{figures['load_after']}, peak {figures.get('peak_rss_mb', '?')} MB\n"
                    f"          tasks (wall s): {steps}",
                    flush=True,
                )
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

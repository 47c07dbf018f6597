"""Benchmark: ingest a Tiznit-like province through the real flow (embedded Prefect).

Prints: total time and its split (register / read / validate / cross / write, wall and CPU
seconds summed over the worker threads), the time python-calamine alone takes to read the same
workbooks (plus the stdlib csv module for the CSV files) side by side, a re-ingest of the
unchanged inbox, the number of task runs, the peak memory and the load average before and
after (the machine may be shared: CPU seconds are less sensitive to load than wall time).

    .venv/bin/python benchmarks/ingest_province.py [--schools N] [--province DIR]
        [--json OUT.json]

``--json`` also writes the figures (seconds, CPU seconds, ratio, peak memory) to a file;
``run(quick, province=None)`` returns the row of benchmarks/report.py.

Figures, default province (136 schools, 31,413 files, 3.94 M rows), 2 cores shared with
other sessions (load average 5-12: wall times follow the load, CPU seconds much less):

                                   before (99d892a)        after (issue 17, item 1)
    ingest / bare read, wall       167.5 / 30.0 s = 5.59×  111.7 / 19.6 s = 5.70×
      load average at the start    9.3                     5.1
    workers' CPU / bare read's     103.4 / 12.3 s = 8.4×   90.1 / 12.2 s = 7.4×
                                   (reports in the flow)   (reports included)
    CPU: register, read,           9.2, 41.0, 14.3,        9.0, 39.5, 10.5,
      validate, cross, write       3.9, 11.7               4.5, 10.4
    task runs                      143 (one a school)      16 (8 chunks of schools)
    peak RSS                       507 MB                  434 MB
    unchanged re-ingest            -                       5.2 s (4.7 % of the first)

A second run after, started at load 3.0 (rising to 5.2 meanwhile): 101.2 s / 12.2 s = 8.28×,
workers' CPU 101.8 s; runs differ by ±10 % in CPU and far more in wall on this shared machine.
With 6 schools (--quick) the ratio is ~35×: two worker processes' start (imports) and
Prefect's engine cost ~7 s of CPU whatever the size.

Target ≤ 2× missed: the steps alone cost ~6× the bare read's CPU (per-file Python work over
each sheet's header rows, a file created in the archive per submission, polars per file).

Later (each file read once: hashed, archived and parsed from the same bytes; small nights in
the flow's process; validation's vertical stack), the same generated province run back to
back with the tree before (3030b19), load average 6-7 all along:

                                   before (3030b19)        after
    ingest / bare read, wall       120.0 / 29.9 s = 4.02×  126.6 / 23.4 s = 5.40×
      load average at the start    7.4                     5.7
    workers' CPU / bare read's     91.9 / 12.8 s           94.0 / 12.4 s
    CPU: register, read,           9.8, 40.4, 10.2,        13.9, 38.4, 9.7,
      validate, cross, write       4.5, 10.5               4.4, 10.9

Two more runs of the after tree: workers' CPU 82.7 s (load 5.5; register 8.9, read 34.6) and
89.1 s (load 7.2; register 10.8, read 37.4): the gain (a few %) is within this machine's
noise. The register step is mostly the kernel creating the archive's files: user CPU 0.31 ->
0.18 s for 4,404 files, system CPU 0.6 to 1.9 s for the same work from one run to the next.
A small night (``--schools 3``: 643 files) no longer starts workers: 13.40 s -> 4.39 s wall,
9.3 -> 2.0 s CPU (workers' and flow's), ratio 50 -> 8.9.

Issue 17, item 1, the steps after reading (a chunk's schools share one control-database handle;
pandera imported only when a frame fails; Core statements to register and record; an empty
quarantine not sliced; staged rows at zstd level 1; reports assembled in memory). Generated
province of 250 schools, 31,413 files, 3.94 M rows (``--province``, --no-reingest), run back to
back: the tree at 4bde448 with the ingest's seven files as they were at 40cb72b, then as is.
Load average 8.4-12.5 all along (2 cores shared with four sessions): wall times are noise here.

                                   before (40cb72b's steps)   after (4bde448)
    ingest / bare read, wall       200.4 / 55.6 s = 3.61×     169.2 / 42.3 s = 4.00×
    load average at the start      8.4                        11.1
    workers' CPU / bare read's     88.2 / 13.9 s              86.5 / 14.4 s
    CPU: register, read,           7.9, 36.4, 10.5,           7.7, 37.2, 10.2,
      validate, cross, write       4.2, 11.2                  4.1, 10.8
    workers' CPU outside the steps 18.0 s                     16.4 s
      (start, Prefect, reports)

The difference (-1.7 s of 88) is inside this machine's noise (±10 % from run to run). Measured
apart, in one process (30 schools of the same province through ``ingest_schools`` with their
reports, three runs of each tree alternated, load 4.9-7.1): CPU outside the read 10.46 -> 9.42 s
(mean; -10 %), the write step 2.34 -> 1.79 s; a worker's import of the ingest 1.12-1.25 ->
0.80-1.03 s. Still missed by far: the read alone (36-37 s of CPU, 2.6× the bare read's) is above
the 2× target before any other step. What is left after reading is proportional to the rows,
not per school: validation (normalising: one select of typed columns, ~14 ms for a school's
30,000 marks rows; the pre-check's code patterns over every pupil's code, ~6 ms), the Parquet
encoding of the staged rows (~19 ms a school uncompressed as well as compressed) and the
cross-record joins (~15 ms a school). Validating a chunk's schools in one call was measured
first and gave nothing (8 schools: 0.41-0.56 s together against 0.45-0.47 s one by one), so
the validation stays per school.

Issue 17, item 1, the worker's CPU (this round). Where a worker's CPU goes, measured in one
process (POLARS_MAX_THREADS=1, as in a worker; the province's first schools through
``ingest_schools``, load 5-11): the read ~1.0 ms a file of which python-calamine's parse ~0.4
(py-spy: ``get_sheet_by_index`` 29 % of the read's samples, ``to_python`` 4.5 %, opening 4.6 %)
and the reader's Python ~0.6 (layout and header 77 us, zip checks 66, metadata 88, marks grid
87, frame 68, technical row 36 us a NotesCC file); the register step mostly the kernel creating
the archive's files (0.6-1.0 ms of system CPU a file on this busy ext4, ~50 us of Python);
validation ~39 ms a school (marks, 27 k rows: 24 ms of polars selects; ~1.5 ms fixed for each
other dataset); the staged Parquet ~16 ms a school's marks; the reports 24-28 ms a school
(xlsxwriter 12-18, the school's findings from the control database 5-8, HTML 3); a worker's
start ~2.0 s of CPU (importing Prefect 1.2 s). Adopted: the cyclic garbage collector out of
the way during a chunk (tasks/ingest_chunks.fewer_collections): its passes took 2.24 s of
78.4 s of CPU for the whole province in one process (load ~11; 1.64 s in 12 full passes over
the objects alive since the imports), 0.02 s for 12 schools after (0.19 s before).

The flow, back to back (``--province``, --no-reingest); "before" is the tree with
tasks/ingest_chunks.py as it was (563703a, or HEAD's other files with it: "HEAD-"); wall
times follow four sessions' load, and workers' CPU varies ±10 % from run to run:

    run (load at start)      ingest / bare read, wall   workers' CPU (user + system)
    563703a (5.2)            81.5 / 28.2 s = 2.89x      81.1 s
    after   (4.8)            117.9 / 16.9 s = 6.97x     89.1 s
    after*  (4.4)            150.1 / 20.6 s = 7.29x     102.1 s (88.1 + 14.0)
    563703a (6.8)            76.7 / 20.7 s = 3.71x      90.7 s (78.8 + 11.9)
    after   (1.7)            56.0 / 16.2 s = 3.46x      85.3 s (74.0 + 11.3)
    563703a (3.0)            95.7 / 14.1 s = 6.81x      85.5 s (74.4 + 11.1)
    HEAD-   (4.6)            110.1 / 14.0 s = 7.87x     93.9 s (79.4 + 14.5)
    after   (5.6)            67.0 / 14.3 s = 4.70x      79.7 s (67.1 + 12.6)

(* with the X-rule variant below, not adopted, and other tests of this session running.) The
collector's ~3 % is below this noise (means: before 87.8 s, after 89.0 s). Target ≤ 2x
still missed by far: the reader's Python alone is ~1.5x python-calamine's parse, and the steps
after it cost more than the read. Measured and not adopted: the flow's own process taking
chunks beside one worker (one worker's start saved, and its first seconds, but the flow's
process runs polars on two threads: every step of its chunks cost ~10 % more, 12 schools
5.17-5.32 s of CPU on one thread against 5.49-5.91 s on two; the province 84.3 -> 86.7 s of
CPU in all); the cross-record rules X009-X014 joining on the key columns alone rather than
the wide marks rows (13.6-15.8 ms a school either way: polars already shares the columns);
archive files created under their final name without the temporary one (601-819 against
709-1008 us of system CPU a file, inside the noise, and a half-written file possible); the
staged rows through pyarrow (72-93 ms against polars' 16 ms a school's marks) or as Arrow IPC
(9-14 ms, but another format for the consolidation); xlsxwriter's reports cost 11 ms for 230
files, three quarters in its own XML at ``close``.

Issue 17, item 1, the idle wall (this round: flows/ingest.py, flows/runners.py). The
benchmark now also prints, from the task runs' times, where the flow waits rather than
ingests: its start to the first chunk running, the last two chunks' ends apart (one worker
idle), the last chunk's end to the flow's end. Found (40-school province, 9,112 files, timed
per task run, load 2.5-5.4): the flow waited ~1.5 s after the last chunk for the worker
processes to wind down (Prefect's services stopping; no CPU) before the province check; equal
chunks left one worker idle 0.25-2.6 s at the end (five runs). Adopted: the workers are let go
as soon as the last result is in (``let_workers_go``) and the province check, its reports, the
summary and the coverage run meanwhile: last chunk -> province check 1.53-1.64 s before,
0.04-0.16 s after. Tried and taken back: chunks heaviest first, their shares falling to a
quarter (a simulation of two workers, chunk times off by 5-15 %: 0.3-0.75 s sooner of ~37 s;
ends 0.10, 2.46 and 0.75 s apart in three runs), because both flow runs with it below spent
6-7 s more of workers' CPU (+20-25 %, the read step as much as the others) and one process
ingesting the same chunks showed 21.7-22.4 s (equal) against 22.9-25.9 s (heaviest first): no
cause found, and the gain sought was smaller than that doubt (letting the workers go
early only stops this process waiting, but these runs do not separate the two). Back to
back, 684c2e4 and the same tree with both changes ("after"), 40 schools, load 6.6-9.6 (four
sessions' benchmarks: wall is noise here, the gaps less so):

    run (load at start)   wall     workers' CPU  bare read CPU  to 1st chunk  last two apart  tail
    before (9.6)          61.9 s   29.6 s        3.85 s         8.9 s         3.31 s          7.07 s
    after  (9.5)          89.2 s   37.1 s        4.86 s         21.7 s        2.46 s          4.42 s
    before (6.7)          57.8 s   30.5 s        5.00 s         11.1 s        2.27 s          4.87 s
    after  (6.6)          81.8 s   36.8 s        4.56 s         11.9 s        0.75 s          2.94 s

The default province at the same hours (load 3.5-4.5 at the start, rising to 8): before
130.1 and 228.9 s wall, workers' CPU 99.6 and 109.7 s; after 178.8 s, 107.1 s (a second after
run stopped at load 8-10): the ~1.5-3 s these changes save are far inside that noise, and
the figures of 08:25 (40.1 s, 70.7 s of workers' CPU, quiet machine) stand as the reference.
Measured and not adopted: check_province is not the tail's cost (86 ms for 40 schools, ~0.5 s
for 250: reading the staged lists in threads would gain little); the reports (24-42 ms of CPU
a school, ~7.5 s for 250, the largest cost of a worker outside the steps) are xlsxwriter's
cell XML, and tasks/feedback.py is part of every report's fingerprint: any change there would
write every school's reports again once; the staged Parquet costs ~1 ms per string column of a
school's marks (27 k rows) whatever its distinct values, 14 ms in all, the same uncompressed,
lz4 or with other page and group sizes (Arrow IPC 2.6 ms: another format); a worker's start is
~2.6 s of CPU (Prefect 1.2, the ingest's modules 0.8, Prefect's context 0.5 of which 0.3-0.4
importing prefect-dask through its entry point, for a block lookup), not cut: only through
Prefect's private state. py-spy put 14.7 % of a worker's samples in SchoolOutcome.add_time;
timed directly, 2,322 calls took 85 ms wall and 16 ms of CPU (py-spy counts time waiting for a
core on a loaded machine). The archive's files: 210-400 us of system CPU each on this disk's
ext4 against 16-26 us on tmpfs, with or without the temporary name: the kernel's, not ours.

Issue 17, item 1, the ingest's head and tail (this round: flows/ingest.py,
tasks/ingest_chunks.py). The benchmark now also prints the embedded API's CPU during the
ingest (1.8-2.0 s: every task run, state, log line and artifact of the flow and the workers)
and the flow's call to its run's start (0.9 s: Prefect's engine; the API's first answer alone
took 0.86 s at load 7, the next ones 25 ms). Where the head went (the province, the flow and
its workers timed from inside, load 5.8; the 21-school province at load 4.4 in brackets): the
flow's pre-check 0.78 s (0.27), of which the inbox's listing 0.57 s (discover_inbox: 0.15-0.30
s of CPU, a bare os.scandir of the same tree 0.022 s: the rest is its Path objects and their
sort); the eight submissions 1.9 s (0.87) of the flow's main thread, Prefect's
serialize_context dumping its settings twice a submission (~0.1 s each); the workers forked
0.55 s (0.25) after the first submission; their import of the ingest's modules 1.8-2.2 s
(1.6; 0.55 s of CPU); Prefect's first task context 1.4 s (0.9-1.3), loading Prefect's
collections for a block lookup, which imports prefect_dask (0.35 s of CPU). Between two
chunks of a worker 0.15-0.6 s (Prefect: the context and its settings rebuilt, two API clients
and their TLS context, ~20 ms each, the task run's calls). Adopted: the chunk's schools no
longer walked by Prefect for futures (three walks of every file path; 0.23 s -> 0.001 s of
CPU for resolve and inputs over the 8 chunks, and the flow's submit thread's walk), and the
outcomes handed to the summary quoted (two walks of every new submission id on the serial
end: 0.25 s -> 0). Back to back, "before" the tree at 0f07c11 (this round's start) and
"after" the same with both changes, the default province, --no-reingest, 2 cores shared with
three sessions (the wall follows their load):

    run (load at the ingest's start)  wall      workers' CPU  flow's CPU  head    apart   tail
    before (6.6)                      79.8 s    54.6 s        2.19 s      3.83 s  0.93 s  1.04 s
    after  (7.4)                      46.9 s    55.4 s        1.77 s      1.76 s  0.31 s  0.79 s
    before (4.1)                      60.9 s    58.3 s        2.33 s      3.22 s  0.62 s  0.95 s
    after  (4.0)                      28.4 s    50.3 s        1.83 s      1.59 s  0.14 s  0.77 s
    before (3.0; API 2.02 s of CPU)   68.0 s    58.3 s        2.29 s      2.65 s  0.28 s  1.12 s
    after  (4.7; API 1.84 s of CPU)   33.7 s    59.8 s        2.32 s      1.66 s  0.16 s  0.85 s

(head: the flow's start to the first chunk; apart: the last two chunks' ends; tail: the last
chunk's end to the flow's end.) The tail is 0.2-0.3 s shorter, as the quote's measure says;
the head's gain is larger than the walks' CPU (the submit thread's walk held the GIL against
the main thread's submissions, delaying the forks) but rides on this machine's load; the
walls are load, not code. Measured and not adopted: 2 chunks a worker instead of 4 (the
21-school province, alternated twice, load 4-7: all CPU, workers + flow + API, 14.95 and
16.01 s against 14.99 and 16.49 s; the flow 0.14 s less, the rest noise; a simulation of the
two workers' list scheduling with speeds varying ±5-40 % put 8 equal chunks, 4 equal, and
heaviest-first shapes within 0.3 s of each other: the chunk plan is not where the wall goes);
the progress artifact created after the submissions, and the first chunk of each worker
submitted before the others (head 1.2-3.4 s with or without them, load 5-7.5: no difference
seen); the pre-check chunk by chunk: after the listing, a first night's pre-check is 0.05-0.1
s (split_known_schools 0.02-0.06 s: one file hashed a school; the leases 0.016 s; the chunks
0.03 s), nothing to start earlier. What is left of the head is outside these files: the
workers forked at the first submission rather than with the API, their imports and
Prefect's first context, and Prefect's submissions.

Issue 17, item 1, the workers' CPU beyond the read (this round: the worker's steps other than
the reader, warehouse/submissions.py, warehouse/coverage.py). Where it goes, one process
(POLARS_MAX_THREADS=1, ``ingest_schools`` over the 40-school province's 21 schools, 4,679
files, CPU timers around each call, load 4-11): of ~7.2-8 s, the reader (connectors,
read_submission) 3.4-3.8 s; the archive's files 0.6-2.7 s, nearly all system CPU (the kernel
creating and renaming them, varying with the other sessions' writes: 55-90 us a file when
the disk is quiet); the staged Parquet 0.70 s (polars' encoder, ~1 ms per text column of a
school's 43 k marks rows, compressed or not); validation 0.71 s (a school's marks 13.5 ms:
normalising 6.4, the pre-check 3.3, the mark scales 2.1); the reports 0.24-0.35 s; registering
and recording in the control database 0.35 s; the cross-record rules 0.26 s (eleven rules of
1-2 ms a school, none ahead). A worker's own start ~0.95 s of CPU before its first chunk and
~0.1 s between two chunks; the server it is forked from ~1.3 s. Adopted: pyarrow (and numpy)
no longer imported by the workers (warehouse/coverage.py's Arrow types made with the coverage
table: ~0.1 s a worker); an archive folder made when creating a file in it fails, not asked
for once per folder and school (4,679 files: 3,069 mkdir calls of ~10 us -> 259); the
control database's statements of registering, recording and the reports' findings made once,
their lists as expanding parameters (a school of 230 files on SQLite: register 6.7-7.8 ->
5.4-6.8 ms, record 7.9-9.1 -> 5.7-6.6 ms, the report's query 1.6 -> 1.15 ms). Same outputs:
control tables, staged and quarantined Parquet (byte for byte), archive and reports (their
contents; the workbook's creation time aside) on the 40-school province, a 20-school --defects
one and the genuine-layout replicas, against efa51f5. The 21 schools in one process, efa51f5
and after alternated three times (load 4.0-4.9): user CPU 6.37, 6.41, 6.48 -> 6.19, 6.24,
6.36 s (-0.16 s, ~-1.1 s for the province, plus the two workers' pyarrow ~0.2 s); record
0.18-0.20 -> 0.13 s. The flow on the default province, --no-reingest, efa51f5 and after in
turn twice each:

    run (load at start)   wall     workers' CPU (user + system)   bare read (CPU)
    before (5.2)          61.7 s   53.06 s (47.12 + 5.94)         18.5 s (11.77 s)
    after  (6.4)          71.7 s   56.43 s (49.10 + 7.33)         20.1 s (12.03 s)
    before (4.7)          99.4 s   59.30 s (49.18 + 10.12)        15.3 s (11.80 s)
    after  (6.7)          84.8 s   58.76 s (51.81 + 6.95)         25.6 s (12.47 s)

The ~1.3 s saved is far inside these runs' spread (the untouched read step alone 24.7-27.3 s
of CPU from run to run). Target <= 2x still missed: beside the reader's Python (the read step
~25 s of CPU against the bare read's ~12), what is left after it is fixed work (the archive's
file per original, the staged Parquet's encoding, Prefect's and the workers' start, ~15 s) or
spread thin over many polars calls of ~0.1-2 ms each. Measured and not adopted: a
submission's scope read from its dataset's files stacked, in one gather, rather than each
file's first row (a school's 317 files 2.0 -> 1.0 ms: ~0.14 s for the province, for 30 lines);
the read step timed once per school instead of per file (31,413 CPU clock pairs cost 0.05 s);
a file's bytes by os.read of the size its status gave instead of Path.read_bytes (19.0-19.3 ->
15.1 us a file: ~0.13 s); the staged Parquet written from one chunk instead of the batch's
slices (31.0 against 32.2 ms with the rechunk, the same bytes); the archive's fchmod left to
the open's mode (54-88 us of system CPU a file either way); prefect_dask imported in the
worker server (0.37 s of a worker's first task context) is not possible: its import starts a
thread, which a forked worker would not have.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from inspect import signature
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
QUICK_SCHOOLS = 6
TARGET = "<= 2x"
sys.path.insert(0, str(ROOT))


def bare_read(inbox: Path) -> tuple[float, int, int]:
    """python-calamine alone over every workbook (every sheet to Python), csv over the CSVs."""
    from python_calamine import CalamineWorkbook

    started = time.perf_counter()
    files = cells = 0
    for path in sorted(inbox.rglob("*")):
        if not path.is_file():
            continue
        files += 1
        if path.suffix.lower() in (".xlsx", ".xls"):
            workbook = CalamineWorkbook.from_path(str(path))
            for name in workbook.sheet_names:
                rows = workbook.get_sheet_by_name(name).to_python()
                cells += sum(len(row) for row in rows)
        else:
            raw = path.read_bytes()
            try:
                text = raw.decode("utf-8-sig")
            except UnicodeDecodeError:
                text = raw.decode("cp1256")
            cells += sum(len(row) for row in csv.reader(io.StringIO(text)))
    return time.perf_counter() - started, files, cells


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _children_system_cpu() -> float:
    """The kernel's share (creating the archive's files, mostly): it varies most with the load."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_stime


def worker_server_cpu() -> tuple[float, float]:
    """CPU seconds (all, system) of the server the workers are forked from (flows/runners.py)
    and of its children it has reaped, the workers: they are not this process's children, and
    the server lives as long as this process: all of it is counted, its imports while the API
    started included. (0, 0) when there is none (an older tree)."""
    from multiprocessing import forkserver

    pid = getattr(forkserver._forkserver, "_forkserver_pid", None)
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0, 0.0
    # utime, stime, cutime, cstime: fields 14-17 of proc(5), in clock ticks
    utime, stime, cutime, cstime = (int(f) / os.sysconf("SC_CLK_TCK") for f in fields[11:15])
    return utime + stime + cutime + cstime, stime + cstime


def api_cpu() -> float:
    """CPU seconds of the embedded Prefect API's process (this process's child running
    massar.prefect_api): it answers every call of the flow and of the workers (task runs,
    states, logs, artifacts) on the same cores. 0 when there is none."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes()
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # not a process, or gone
            continue
        if b"massar.prefect_api" in command and int(fields[1]) == os.getpid():
            total += sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return total


def _phases(seconds: dict[str, float]) -> str:
    total = sum(seconds.values())
    return ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()) + f" (total {total:.1f})"


def task_runs_of(flow_run_id) -> tuple[list[Any], Any]:  # type: ignore[no-untyped-def]
    """The flow run's task runs and the flow run itself (their start and end times)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async def read() -> tuple[list[Any], Any]:
        runs: list[Any] = []
        async with get_client() as client:
            while True:
                page = await client.read_task_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                    limit=200,
                    offset=len(runs),
                )
                runs.extend(page)
                if len(page) < 200:
                    return runs, await client.read_flow_run(flow_run_id)

    return asyncio.run(read())


def idle_wall(
    runs: list[Any], flow_run: Any, called_at: float | None = None
) -> dict[str, float] | None:
    """Where the flow waits rather than ingests, from its task runs' times (load-independent
    more than the wall itself): the flow's start to the first chunk running (the flow's
    pre-check and the workers' start), the last two chunk ends apart (one worker idle at the
    end: a lower bound with two workers), the last chunk's end to the flow's end (the province
    check, the reports of its findings, the summary, the coverage); with ``called_at`` (the
    epoch second the flow was called), the call to the flow run's start (Prefect's engine:
    the flow run created, the API's first answers), inside the ingest's wall too. None
    without chunks."""
    chunks = [r for r in runs if r.name.startswith("ingest-") and r.start_time and r.end_time]
    if not chunks or flow_run.start_time is None or flow_run.end_time is None:
        return None
    ends = sorted(r.end_time.timestamp() for r in chunks)
    first = min(r.start_time.timestamp() for r in chunks)
    idle = {
        "to_first_chunk_s": first - flow_run.start_time.timestamp(),
        "last_chunks_apart_s": ends[-1] - ends[-2] if len(ends) > 1 else 0.0,
        "tail_s": flow_run.end_time.timestamp() - ends[-1],
    }
    if called_at is not None:
        idle["call_to_flow_start_s"] = flow_run.start_time.timestamp() - called_at
    return idle


def measure(
    province: Path | None, schools: int | None = None, reingest: bool = True, keep: bool = False
) -> dict[str, Any]:
    """Ingest ``province`` (else one generated, ``schools`` or the default) into a fresh home
    through the real flow, beside the bare read of the same inbox; the figures, printed as
    they come."""
    load_before = os.getloadavg()
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in load_before)}")

    from ground.settings import apply_prefect_environment
    from massar.demo import stage_inbox
    from massar.home import init_home

    work = Path(tempfile.mkdtemp(prefix="massar-bench-ingest-"))
    api = None
    try:
        if province is None:
            from massar.synthetic import generate_province

            province = work / "province"
            started = time.perf_counter()
            generated = generate_province(province, schools=schools, seed=2024)
            print(
                f"generated {generated.schools} schools, {generated.pupils} pupils, "
                f"{generated.files} files in {time.perf_counter() - started:.1f} s"
            )
        settings = init_home(work / "home")
        apply_prefect_environment(settings)
        stage_inbox(province, settings.inbox)
        files = sum(1 for p in settings.inbox.rglob("*") if p.is_file())
        size = sum(p.stat().st_size for p in settings.inbox.rglob("*") if p.is_file())
        print(f"inbox: {files} files, {size / 1e6:.1f} MB")

        bare_cpu = time.process_time()
        bare_seconds, bare_files, cells = bare_read(settings.inbox)
        bare_cpu = time.process_time() - bare_cpu
        print(
            f"bare read (python-calamine + csv, one process): {bare_seconds:.2f} s "
            f"({bare_cpu:.2f} s CPU) for {bare_files} files, {cells} cells"
        )

        from flows.ingest import ingest_submissions
        from massar.runner import prefect_api

        started = time.perf_counter()
        # as 'massar ingest' does: the embedded API, started once, and the workers' server
        # meanwhile (an older tree's prefect_api: without it)
        workers = {"workers": True} if "workers" in signature(prefect_api).parameters else {}
        api = prefect_api(settings, **workers)
        api.__enter__()
        print(
            f"embedded Prefect API started in {time.perf_counter() - started:.1f} s (not counted)"
        )

        api_before = api_cpu()
        children_cpu, flow_cpu = _children_cpu(), time.process_time()
        children_system = _children_system_cpu()
        load_ingest = os.getloadavg()
        called_at = time.time()
        started = time.perf_counter()
        state = ingest_submissions(settings, return_state=True)
        first = time.perf_counter() - started
        server_cpu, server_system = worker_server_cpu()
        children_cpu = _children_cpu() - children_cpu + server_cpu
        children_system = _children_system_cpu() - children_system + server_system
        flow_cpu = time.process_time() - flow_cpu
        ingest_api_cpu = api_cpu() - api_before
        summary = state.result()
        totals = summary["totals"]
        from flows.runners import in_flow_process

        where = "in the flow's process" if in_flow_process(settings, files) else "2 workers"
        print(
            f"ingest (flow, {where}): {first:.2f} s for {totals['new_submissions']} "
            f"submissions, {totals['rows_read']} rows ({totals['rows_read'] / first:,.0f} "
            "rows/s)"
        )
        print(f"  split, wall s (summed over threads): {_phases(totals['seconds'])}")
        print(f"  split, CPU s (summed over threads):  {_phases(totals['cpu_seconds'])}")
        print(
            f"  CPU of the worker processes: {children_cpu:.2f} s "
            f"({children_cpu / bare_cpu:.2f}× the bare read's CPU; user "
            f"{children_cpu - children_system:.2f} s, system {children_system:.2f} s); the flow's "
            "own process "
            f"(inbox pre-check, province check, summary, Prefect's engine) {flow_cpu:.2f} s; "
            f"load average at the ingest's start {load_ingest[0]:.2f}"
        )
        print(
            f"  CPU of the embedded Prefect API's process meanwhile: {ingest_api_cpu:.2f} s "
            "(its answers to the flow and the workers)"
        )
        print(
            f"  outcome: {totals['accepted']} accepted, {totals['partially_accepted']} "
            f"partially accepted, {totals['rejected']} rejected; {totals['errors']} errors, "
            f"{totals['queries']} queries"
        )
        print(f"  ratio ingest / bare read: {first / bare_seconds:.2f} (target <= 2)")
        runs, flow_run = task_runs_of(state.state_details.flow_run_id)
        task_runs = len(runs)
        print(f"  task runs in the flow run: {task_runs}")
        idle = idle_wall(runs, flow_run, called_at)
        if idle is not None:
            print(
                f"  the flow's start to the first chunk {idle['to_first_chunk_s']:.2f} s; the "
                f"last two chunks ended {idle['last_chunks_apart_s']:.2f} s apart; the last "
                f"chunk's end to the flow's end {idle['tail_s']:.2f} s"
            )
            print(
                f"  the flow's call to its run's start {idle['call_to_flow_start_s']:.2f} s "
                "(Prefect's engine, inside the ingest's wall)"
            )

        second = None
        if reingest:
            started = time.perf_counter()
            again = ingest_submissions(settings, return_state=True).result()
            second = time.perf_counter() - started
            print(
                f"re-ingest of the unchanged inbox: {second:.2f} s "
                f"({100 * second / first:.1f}% of the first; target < 5%), "
                f"{again['totals']['new_submissions']} new submissions"
            )
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"peak memory: {peak:.0f} MB (this process), {children:.0f} MB (largest child)")
        load_after = os.getloadavg()
        print(f"load average at end: {' '.join(f'{x:.2f}' for x in load_after)}")
        return {
            "files": files,
            "rows": totals["rows_read"],
            "bare_s": bare_seconds,
            "bare_cpu_s": bare_cpu,
            "ingest_s": first,
            "ingest_worker_cpu_s": children_cpu,
            "ingest_worker_system_cpu_s": children_system,
            "ingest_flow_cpu_s": flow_cpu,
            "ingest_api_cpu_s": ingest_api_cpu,
            "ratio": first / bare_seconds,
            "split_s": totals["seconds"],
            "split_cpu_s": totals["cpu_seconds"],
            "reingest_s": second,
            "task_runs": task_runs,
            "idle_wall": idle,
            "peak_rss_mb": max(peak, children),
            "load_start": load_before,
            "load_ingest": load_ingest,
            "load_end": load_after,
        }
    finally:
        if api is not None:
            api.__exit__(None, None, None)
        if keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def run(quick: bool, province: Path | None = None) -> list[dict[str, Any]]:
    """The row for benchmarks/report.py: the ingest against the bare read of the same inbox
    (``province``, else one generated: quick, 6 schools; else the default province)."""
    figures = measure(province, QUICK_SCHOOLS if quick and province is None else None, False)
    cpu = figures["split_cpu_s"]
    note = (
        f"{figures['files']} files, {figures['rows']:,} rows, {figures['task_runs']} task runs; "
        f"worker CPU {figures['ingest_worker_cpu_s']:.1f} s, flow process CPU "
        f"{figures['ingest_flow_cpu_s']:.1f} s vs bare read CPU "
        f"{figures['bare_cpu_s']:.1f} s; CPU split "
        + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items())
        + f"; load {figures['load_start'][0]:.1f} -> {figures['load_end'][0]:.1f}"
    )
    return [
        {
            "measure": "ingest / bare read",
            "ours_s": round(figures["ingest_s"], 2),
            "baseline_s": round(figures["bare_s"], 2),
            "peak_rss_mb": round(figures["peak_rss_mb"]),
            "target": TARGET,
            "note": note,
        }
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--schools",
        type=int,
        default=None,
        help="schools to generate (default: the Tiznit-like province)",
    )
    parser.add_argument(
        "--province", type=Path, default=None, help="an already generated province to ingest"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here too")
    parser.add_argument(
        "--no-reingest", action="store_true", help="skip the re-ingest of the unchanged inbox"
    )
    args = parser.parse_args()
    figures = measure(args.province, args.schools, not args.no_reingest, args.keep)
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()

"""Benchmark: one partner request of 200 000 children, end to end (target <= 15 s, issue 17).

Steps timed, on the code the exchange flow runs (``tasks.batch_preparation.prepare_batch``):

1. ``parse_request``: the request FILE in the fund's layout (CNSS ``;`` CRLF dd/mm/yyyy, or CMR
   ``,`` LF ISO dates and no sex column), written beforehand the way the generator writes
   requests (``massar/synthetic/partners.py``);
2. ``register_from_frames``: the province register from the warehouse's frames (the part of
   ``load_province_register`` after the Delta tables are read; reading them is not measured);
3. ``match_children``: one answer per child, name cache cold (a fresh process, as a batch is);
4. ``build_batch_files``: the response XML signed (XML-DSig, enveloped), the CSV, its detached
   CMS ``.p7s`` and the manifest, with a test identity (``make_test_certificate`` +
   ``load_signing_identity``); the files are then written to a temporary folder;
5. ``verify_file`` as a partner runs it (``massar exchange verify``) on the XML, the CSV (with
   its ``.p7s``) and the manifest, with the certificate the directorate gave the fund.

Steps 1-5 make the total set against the target. Outside it, as independent checks:
``xmlsec1 --verify --trusted-pem cert.pem <xml>`` and ``openssl cms -verify`` of the CSV.

The data. The register is the Tiznit-like province of ``benchmarks/match_children.py`` (its
``province_frames``, the default plan: about 48 700 pupils in 136 schools, 98 500 guardians,
350 leaving records). No province directorate has 200 000 pupils aged 12-21, and a fund that
sends 200 000 children does not send them because they are all in one province: it sends its
whole regional (or national) list of insured parents' children in the benefit's age window to
every directorate, and each directorate answers for its own pupils. So the request is built by
``match_children.build_requests``, where every pupil of the province aged 12-21 is asked once
(about 20 000, their names as the exact Latin spelling 55 %, a spelling variant 25 %, Arabic
20 %, the Massar code given for 25 %, 4 % with a wrong birth date and no code → REVIEW), plus
the province's leavers (LEFT / NOT_SCHOOLED / REVIEW), and the rest (about 89 %) are children
schooled in other provinces or not schooled at all (NOT_FOUND). A child is never asked twice.
It is rewritten as the fund's file (its column headers, date format, line ending, benefit code,
references as the generator writes them). ``--schools N`` scales the register (e.g. 700 schools
≈ 250 000 pupils, a region) for a request where more of the children are known.

    .venv/bin/python benchmarks/exchange_batch.py [--children 200000] [--fund cnss]
        [--seed 2024] [--year 2024/2025] [--schools N] [--keep DIR]

It exits with status 1 when the target is missed or a check does not hold.

Measured on this machine (2 vCPU shared with other work, 23 GB RAM, Python 3.11.7, lxml 6.1.3 /
libxml2 2.14.6, signxml 5.2.0, OpenSSL 3.0.19, xmlsec1 1.2.37), ``--children 200000 --fund cnss``,
default province, the quietest run (load average 3.7; wall seconds, CPU seconds):

    set-up (not timed): 48 737 pupils; request of 200 000 children, 17.2 MB; by the truth
    SCHOOLED 20 519, NOT_SCHOOLED 25, LEFT 163, REVIEW 1 058, NOT_FOUND 178 235
    1. parse_request                    2.61 s   cpu  2.36 s    76 765 rows/s  peak RSS   731 MB
    2. register_from_frames             3.30 s   cpu  2.12 s    14 758 pupils/s          791 MB
    3. match_children                  27.42 s   cpu 18.09 s     7 294 rows/s            850 MB
    4. build_batch_files                6.17 s   cpu  4.57 s    32 401 rows/s          1 884 MB
       write the 4 files                0.07 s   cpu  0.05 s                           1 884 MB
    5a. verify_file XML                 8.95 s   cpu  7.09 s    22 344 rows/s          2 555 MB
    5b. verify_file CSV + .p7s          1.12 s   cpu  0.80 s   178 914 rows/s          2 555 MB
    5c. verify_file manifest            0.05 s   cpu  0.03 s
    total of 1-5                       49.69 s   cpu 35.11 s     4 025 children/s; MISSES 30 s
    independent: xmlsec1 --verify 1.65 s (its peak RSS 406 MB), openssl cms -verify 0.03 s
    files: XML 32.6 MB, CSV 8.4 MB, .p7s 1.5 kB, manifest 0.8 kB; all checks hold; answers
    SCHOOLED 20 519, NOT_SCHOOLED 25, LEFT 163, REVIEW 1 590, NOT_FOUND 177 703 (99.73 % agree
    with the truth: 532 unknown children sent to REVIEW; none answered about the wrong pupil)

After this stop's changes (one pass per child in verify, remembered birth dates, matching in
two processes), on a quiet machine (load 0.4): parse 1.84 s, register 2.06 s, match 15.72 s
(2 processes), build and sign 4.38 s, write 0.12 s, verify XML 5.71 s, CSV 0.81 s, manifest
0.02 s: total 30.67 s wall, MISSES the 30 s target by 0.7 s; peak RSS 2,606 MB. The CPU column
does not count the matching processes (children of the forkserver, not of this process).

Issue 17 (target 15 s). Measured on a shared machine (load average 7-10 on 2 CPUs: wall times
are 2-4x the CPU times; compare CPU seconds, which now include the forkserver's matching
processes), the code before and after in the same half hour, ``--children 200000 --fund cnss``
(CPU seconds per step, before -> after):

    1. parse_request              2.18 -> 2.24   (unchanged in the benchmark; the flow's second
                                                  read of a request, when it answers it, is gone)
    2. register_from_frames       2.34 -> 2.29
    3. match_children, 1 process    ~18 -> 10.8  (same answers; 2 processes: 20.2 s CPU, see below)
    4. build_batch_files          5.12 -> 1.88   (the same bytes: XML as text, one parse to sign)
    5a. verify_file XML           5.10 -> 1.97   (one parse, own XML-DSig check, XPath content)
    5b. verify_file CSV           1.00 -> 0.83
    total, 1 matching process     ~34 -> 20.4 s CPU (56.6 s wall at load 8.4)
    total, 2 matching processes   18.4 + workers not counted -> 29.5 s CPU (87.0 s wall at load 9.5)
    peak RSS                      2 609 -> 1 383 MB

The target was not met on CPU time: 20 s of CPU on one core, or ~15 s of wall on two only if the
matching parallelised without overhead, which it did not (two workers spent ~20 s of CPU where
one process spent ~11: the forkserver's import of the platform, the matcher pickled to each
worker, and each worker's name caches filled again).

Before those changes: six CNSS runs: 40.4-86.3 s wall at load 2.5-10 (others' tests),
35.1-40.5 s CPU; CMR once: 120.5
s wall at load 6-10, 42.7 s CPU, the same answers. The target is missed even on CPU time, i.e.
on an idle machine. Where the time goes (py-spy, share of steps 1-5): match_children 52 % (per
child ~90 us if unknown, ~140 us if the province's: ``_Matcher.candidates`` 80 % of it,
``_score`` alone 43 %: 11.7 register candidates per child from the exact / swapped birth-date
blocks, 0.5 surviving the family-name test, ~5.5 us each; ``Register.lookup`` with
``_Index.lookup`` 20 %; ``_request_keys`` 16 %); verify 24 %, the XML 22 %
(``_check_xml_content`` 4.3 s: seven namespaced ``child.find`` per child; one pass over each
child's elements does the same checks in 0.9 s; signxml verify 2.0 s, XSD 0.4 s, parse 0.3 s);
build 12 % (``build_response_xml`` 50 %, ``sign_xml`` 30 %, mostly signxml re-parsing the tree;
``_answer_rows`` run twice with ``canonical_school_year`` per answer ~0.4 s); parse 7 %
(``strptime`` 0.7 s for 3 783 distinct dates; cached, 0.06 s); register 5 %. Memory peaks at 2.6
GB: +1.0 GB while the XML of 200 000 children is built and signed (lxml trees, signxml parses it
again), +0.7 GB while it is verified (parsed by verify, by verify_xml_signature and by signxml).

Issue 17, second stop (the matching process forked, the garbage collector paused). The machine
was never quiet (load average 10-12 on 2 CPUs: five engineers' tests), so the wall times below
are 2-4x what an idle machine gives and the CPU times are inflated too; the code before and
after ran one after the other, ``--children 200000 --fund cnss --processes 2`` (CPU seconds per
step, before -> after; the answers, the CSV and the XML apart from its signature and
GeneratedAt identical, compared file to file with ``--keep``; CMR as well: CPU 29.5 -> 18.9 s,
critical path 13.8 s, wall 68.6 -> 40.0 s at load 11-12):

    1. parse_request              2.19 -> 1.26   (collector paused; well-formed rows without a
                                                  dict of values)
    2. register_from_frames       2.35 -> 1.01   (collector paused; pupils from column lists)
    3. match_children, 2 procs   19.88 -> 9.97   this process 5.19, the forked one 4.78 (was:
                                                  the forkserver's workers; one process 9.3)
    4. build_batch_files          1.88 -> 2.91   (unchanged code: the collector's one pass,
                                                  deferred, over the records made while it
                                                  was paused, ~0.6 s; and the load)
    5a. verify_file XML           2.01 -> 1.96   (unchanged, one more check of KeyInfo)
    5b. verify_file CSV           0.81 -> 0.81
    total CPU                    29.2  -> 18.0 s; wall 58.8 -> 45.7 s at load 10.6 -> 12.3
    critical path                       13.3 s   (each step's CPU, of the matching step its
                                                  busiest process: the wall of an idle machine)

On an idle 2-core machine the steps should therefore take about 11-13 s (an estimate: the
critical path, measured under load, overstates CPU times by ~10 %, from runs of a step alone):
within the 15 s target, which this machine's load never let a run show in wall time. Where
the time went: a third of parse, register and matching was Python's cyclic garbage collector
passing again and again over everything the process held while hundreds of thousands of
records were made (none of them in a cycle); the forkserver workers re-imported the platform
and unpickled the matcher (~10 s of CPU), a forked process inherits both; about half of the
children from elsewhere meet none of the province's (birth date, consonant key) pairs and are
answered without index look-ups (a small gain: the costly children are those with candidates
to score, about 94 000 of the 200 000, 50 us each).

Issue 17, third stop (the margin). Where we started: 13.26 s wall on a quiet machine, 13.7-15.2 s
at load 2-2.5. The machine was never quiet this time either (load 4-10: four engineers on two
cores), so wall times say little; below, CPU seconds of the code before (6bd7fef) and after,
run back to back in the same five minutes, ``--children 200000 --fund cnss``, three pairs at
load 4, 6.5 and 6 (ranges over the pairs; the "after" of these pairs is the code up to f92cb77,
without the matching's shared spans and the request's inline cells, see below):

    step                        before (s CPU)       after (s CPU)
    1. parse_request            1.34-1.89            1.45-1.69      (unchanged then)
    2. register_from_frames     1.17-1.28            1.12-1.60      (unchanged code)
    3. match_children, 2 procs  10.8-13.5            10.5-14.5      (the gain of the code, ~8 %
       its busiest process      5.8-7.1              5.5-7.8         per child, is under this
                                                                     noise; see below)
    4. build_batch_files        3.18-4.03            1.23-1.67      the clearest gain
    5a. verify_file XML         2.32-3.08            2.22-2.40
    5b. verify_file CSV         0.83-1.07            0.55-0.82
    critical path (CPU)         15.0 / 17.9 / 16.0   13.1 / 15.7 / 13.4   (pair by pair)
    total wall                  23.8 / 57.2 / 28.9   16.6 / 47.9 / 19.9
    peak RSS                    1 377 MB             1 409 MB

Two more pairs on the final code, at load 9-10, do not separate before from after (critical path
before 14.0 and 19.7 s, after 15.8 and 16.3 s: two runs of the same code differ by 40 % there).
Then the load fell to 2-2.7 (one-minute average; the others' work between runs) and two pairs
on the final code (1fe8aff + 5ef6c9c), one run each way round, gave (wall / CPU seconds):

    step                        before                    after
    1. parse_request            1.57/1.43  1.55/1.54      1.73/1.73  1.25/1.25
    2. register_from_frames     1.11/1.09  1.21/1.14      1.43/1.56  0.98/1.09   (unchanged code)
    3. match_children, 2 procs  10.17/10.67 11.55/11.80   6.22/10.79  5.46/9.70
    4. build_batch_files        3.29/3.22  3.77/3.77      1.32/1.32  1.18/1.18
    5a. verify_file XML         2.43/2.43  2.03/2.02      2.26/2.26  2.16/2.16
    5b. verify_file CSV         1.05/1.05  0.84/0.83      0.58/0.56  0.55/0.54
    total of steps 1-5          19.78/20.04 21.09/21.22   13.66/18.33 11.71/16.04  PASS (15 s)
    critical path (CPU)         14.98      15.61          13.38      11.47
    peak RSS                    1 380 MB   1 377 MB       1 406 MB   1 410 MB

The matching's wall is where the two differ most: before, its two halves barely overlapped on
this busy machine (wall ~ the CPU of both processes added, in both pairs); after, the processes
share the spans and the step takes about the busier one's CPU. Build and the CSV check are the
steady gains (-2.0 to -2.6 s and -0.3 to -0.5 s of CPU); the XML check's is within the noise.

Each change measured alone, before and after in the same minutes (CPU seconds, 200 000 children):
build 2.7 -> 1.8 (the XML written as its own exclusive canonical form: its digest is taken over
the written bytes and the signature spliced before the root's end tag, the same bytes as parsing,
canonicalising and serialising 1.4 million elements again, which signxml and lxml are compared
with in tests/connectors/test_sign_canonical.py; the collector paused while a row per child is
made, 0.74 s of collections in this process's state) and its CSV 0.37-0.42 -> 0.16-0.24 (values
joined when the counts of delimiters, quotes and line breaks show none needs quoting, else the
csv module); verify XML 2.0 -> 1.6 (per status, the children and those carrying each field counted
by libxml2 on the schema's one Status per child, instead of a dozen-clause predicate per child
and six counts); verify CSV 0.86 -> 0.57 (fields by position, each distinct year and date checked
once, the row's shape looked up, line endings from counts); a half of the matching 4.96 -> 4.56
(a request's names' keys remembered per pair of names, its code and parent looked up once,
its keys a named tuple: 3.1 -> 1.4 us each). The answers of all 200 000 children, the CSV and the
XML up to its signature value are identical before and after (compared with ``--keep``); the
partner checks, xmlsec1 and openssl cms hold.

The matching's two processes now take small spans (about 32 each) in turn from a shared counter
instead of one half each: a process the other engineers' work slows down takes fewer, and both
end within a span (~0.1 s) instead of the slower half setting the step's wall time. The line
"this process / the others" then says how the spans fell, not an imbalance of the work; the
critical path above (the busiest process's CPU) overstates what an idle machine takes by up to
half the difference between the two.

Estimate for a quiet machine: the code before took 13.26 s wall for a critical path measured
at 13.6-15.6 s of CPU under load; after, 11.5-13.4 s in the same conditions, i.e. about 2 s
less: ~11 s wall, the bottom of the 10-11 s aimed at, not below it (11.7 s measured at load 2).
Not measured on an idle machine this session (none was).

Tried and dropped: the school year's check cached per answer (the regular expression costs 0.04 s
for 200 000: nothing to gain); a path back from each field to its child's status in the partner
check (``m:StudentCode/../m:Status``): libxml2 merges such node sets in quadratic time, minutes
for 200 000 children (the filter ``m:Child[m:StudentCode]/m:Status`` takes 0.1 s); splitting the
batch by first name so that each process meets fewer names (the second half of a batch in a
process whose name caches the first half filled takes as long as the first: the misses are not
where the time goes); ``gc.freeze`` after each paused step (the deferred passes cost 0.1-0.3 s a
step, but freezing is process-wide and keeps the cycles of a long-lived worker for ever).

Where the time goes now (critical path ~13 s of CPU under load): matching ~5-5.5 s in the busier
process (per child ~45 us: ~47 % of the children share a birth date and a consonant key with
someone of the province and have candidates to look up and score, ~75 us each; the others ~15 us:
their keys, the answer record and the age window), verify XML ~1.6-2 (parse 0.34, XSD 0.53, c14n
of the digest 0.23, the content counts 0.6), parse 1.1-1.4, register 1.1-1.3 (of which 0.2-0.3 s
is the collector's deferred pass over the requests), build 1.2-1.6, CSV 0.5-0.6.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.match_children import (  # noqa: E402
    build_requests,
    leaving_records,
    province_frames,
)
from connectors.exchange.batch_files import build_batch_files  # noqa: E402
from connectors.exchange.file_names import batch_file_names, school_year_tag  # noqa: E402
from connectors.exchange.profile import Profile  # noqa: E402
from connectors.exchange.registry import profile_for  # noqa: E402
from connectors.exchange.request_file import parse_request  # noqa: E402
from connectors.signing import load_signing_identity, make_test_certificate  # noqa: E402
from connectors.verify import verify_file  # noqa: E402
from ground.settings import PartnerSettings, Settings  # noqa: E402
from massar.synthetic.partners import CMR_COLUMNS, CNSS_COLUMNS  # noqa: E402
from schemas.exchange import (  # noqa: E402
    LEFT,
    NOT_SCHOOLED,
    REVIEW,
    SCHOOLED,
    STATUSES,
    ChildRequest,
)
from tasks.match import match_children  # noqa: E402
from tasks.province_register import register_from_frames  # noqa: E402

TARGET_SECONDS = 15.0  # for 200 000 children (issue 17 item 4)
HEADERS = {"cnss": CNSS_COLUMNS, "cmr": CMR_COLUMNS}  # the generator's column order


def _cpu_seconds() -> float:
    """CPU seconds of this process and of everything it started: its waited-for children
    (``RUSAGE_CHILDREN``) and the processes still alive below it, each with the children they
    waited for (a forkserver's processes, which this process never waits for; the matching
    process is forked from this one and waited for)."""
    me, children = (resource.getrusage(r) for r in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime + _descendants_cpu()


def _own_cpu() -> float:
    """CPU seconds of this process alone."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    return me.ru_utime + me.ru_stime


def _descendants_cpu() -> float:
    """utime + stime + cutime + cstime of the live processes below this one (Linux /proc)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return 0.0
    parent_of: dict[int, int] = {}
    times: dict[int, int] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent_of[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = sum(int(value) for value in fields[11:15])
    below, todo = set(), [os.getpid()]
    while todo:
        pid = todo.pop()
        for child, parent in parent_of.items():
            if parent == pid and child not in below:
                below.add(child)
                todo.append(child)
    return sum(times[pid] for pid in below) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def fund_reference(fund: str, year: str, k: int) -> str:
    """References as the generator writes them (``_request`` in massar/synthetic/partners.py),
    with one digit more: a request of 200 000 children overflows five digits."""
    tag = year.replace("/", "")
    return f"{tag}{k:06d}" if fund == "cnss" else f"CMR/{tag[:4]}/{k:06d}"


def write_request(
    profile: Profile, folder: Path, year: str, children: list[ChildRequest]
) -> tuple[Path, dict[str, str]]:
    """Write ``children`` as the fund's request file; returns its path and, for the truth, the
    fund reference written for each child's benchmark reference."""
    layout = profile.request
    header = HEADERS[profile.fund]
    to_field = {column: fld for fld, column in layout.columns.items()}
    assert set(header) == {*to_field, layout.benefit_column}, "layout and generator disagree"
    benefit_code = {benefit: code for code, benefit in reversed(layout.benefits.items())}
    renamed: dict[str, str] = {}
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=layout.delimiter, lineterminator=layout.line_ending)
    writer.writerow(header)
    for k, child in enumerate(children, start=1):
        reference = fund_reference(profile.fund, year, k)
        renamed[child.fund_reference] = reference
        row = []
        for column in header:
            if column == layout.benefit_column:
                row.append(benefit_code[child.benefit])
                continue
            fld = to_field[column]
            if fld == "fund_reference":
                value = reference
            elif fld == "birth_date":
                value = child.birth_date.strftime(layout.date_format) if child.birth_date else ""
            else:
                value = getattr(child, fld) or ""
            row.append(value)
        writer.writerow(row)
    path = folder / f"{profile.code}_SCOL_{school_year_tag(year)}_0001.csv"
    path.write_bytes(buffer.getvalue().encode(layout.encoding))
    return path, renamed


class Steps:
    """One printed line per step (wall and CPU seconds, with the load average: the machine may
    be shared); the steps counted in the total are summed, and kept for ``run``'s rows."""

    def __init__(self) -> None:
        self.total = 0.0
        self.cpu = 0.0
        # CPU seconds of each step, but of a step whose processes run side by side only the
        # busiest's: what the steps would take on an idle machine with enough cores
        self.critical = 0.0
        self.timed: list[tuple[str, float, float, float]] = []  # label, wall, cpu, peak RSS

    def start(self) -> None:
        self._wall, self._cpu, self._own = time.perf_counter(), _cpu_seconds(), _own_cpu()

    def stop(
        self, label: str, rows: int | None, *, counted: bool = True, side_by_side: bool = False
    ) -> float:
        wall, cpu = time.perf_counter() - self._wall, _cpu_seconds() - self._cpu
        own = _own_cpu() - self._own
        note = f"  load {load_average()}"
        if side_by_side:
            note = f"  (this process {own:.2f} s, the others {cpu - own:.2f} s){note}"
        if counted:
            self.total += wall
            self.cpu += cpu
            self.critical += max(own, cpu - own) if side_by_side else cpu
            self.timed.append((label, wall, cpu, peak_rss_mb()))
        self.line(label, wall, f"{cpu:6.2f} s", rows, peak_rss_mb(), note)
        return wall

    def line(
        self, label: str, wall: float, cpu: str, rows: int | None, rss: float, note: str = ""
    ) -> None:
        rate = f"{rows / wall:>10,.0f} rows/s" if rows and wall > 0 else " " * 17
        print(
            f"  {label:<42} {wall:7.2f} s  cpu {cpu:>8} {rate}  peak RSS {rss:6,.0f} MB{note}",
            flush=True,
        )


def load_average() -> str:
    loadavg = Path("/proc/loadavg")
    return " ".join(loadavg.read_text().split()[:3]) if loadavg.exists() else "unknown"


def run_tool(command: list[str]) -> tuple[float, int, str, float]:
    """Wall seconds, exit status, last line said and peak RSS (MB, from /usr/bin/time: the
    kernel's RUSAGE_CHILDREN would count this process's memory before the exec)."""
    timed = ["/usr/bin/time", "-f", "maxrss_kb=%M", *command]
    if not Path(timed[0]).exists():
        timed = command
    started = time.perf_counter()
    try:
        done = subprocess.run(timed, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return 0.0, 127, f"{command[0]} is not installed", 0.0
    elapsed = time.perf_counter() - started
    lines = (done.stderr + done.stdout).strip().splitlines()
    rss = [float(line.split("=")[1]) / 1024 for line in lines if line.startswith("maxrss_kb=")]
    said = [line for line in lines if not line.startswith("maxrss_kb=")]
    return elapsed, done.returncode, said[-1] if said else "", rss[0] if rss else 0.0


def size(data: bytes) -> str:
    return f"{len(data) / 1e6:.1f} MB" if len(data) >= 100_000 else f"{len(data) / 1e3:.1f} kB"


QUICK_CHILDREN = 20_000  # --quick: a tenth of the children, in a province a tenth the size
QUICK_SCHOOLS = 14


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=None, help="default 200000")
    parser.add_argument("--quick", action="store_true", help="20 000 children, 14 schools")
    parser.add_argument("--fund", choices=("cnss", "cmr"), default="cnss")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--year", default="2024/2025")
    parser.add_argument("--schools", type=int, default=None, help="default: the Tiznit plan")
    parser.add_argument(
        "--processes", type=int, default=2, help="matching processes, as the exchange flow uses"
    )
    parser.add_argument("--keep", type=Path, default=None, help="keep the files in this folder")
    parser.add_argument("--json", type=Path, default=None, help="write run()'s rows here")
    args = parser.parse_args()
    if args.children is None:
        args.children = QUICK_CHILDREN if args.quick else 200_000
    if args.quick and args.schools is None:
        args.schools = QUICK_SCHOOLS
    rows, ok = measure(args)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    if not ok:
        sys.exit(1)


def run(quick: bool) -> list[dict[str, Any]]:
    """The rows of benchmarks/report.py: the total of steps 1-5 first, then each step, as
    ``{measure, ours_s, baseline_s, peak_rss_mb, target}`` (wall seconds; no baseline: the
    target is a number of seconds). ``quick``: 20 000 children against a province a tenth the
    size (14 schools), its target scaled to a tenth."""
    args = argparse.Namespace(
        children=QUICK_CHILDREN if quick else 200_000,
        quick=quick,
        fund="cnss",
        seed=2024,
        year="2024/2025",
        schools=QUICK_SCHOOLS if quick else None,
        processes=2,
        keep=None,
    )
    return measure(args)[0]


def measure(args: argparse.Namespace) -> tuple[list[dict[str, Any]], bool]:
    profile = profile_for(args.fund)
    partner = Settings().partners[args.fund]
    work = Path(tempfile.mkdtemp(prefix="massar-exchange-bench-"))
    try:
        return timed_steps(args, profile, partner, work)
    finally:
        if args.keep:
            shutil.copytree(work, args.keep, dirs_exist_ok=True)
            print(f"files kept in {args.keep}")
        shutil.rmtree(work, ignore_errors=True)


def timed_steps(
    args: argparse.Namespace, profile: Profile, partner: PartnerSettings, work: Path
) -> tuple[list[dict[str, Any]], bool]:
    target = TARGET_SECONDS * args.children / 200_000
    # ---- set-up (not timed against the target) ---------------------------------------------
    started = time.perf_counter()
    students, enrollments, guardians, pupils, leavers = province_frames(
        args.seed, args.year, args.schools
    )
    records = leaving_records(leavers)
    children, truth = build_requests(
        random.Random(args.seed), pupils, leavers, args.year, args.children
    )
    request_path, renamed = write_request(profile, work, args.year, children)
    truth = {renamed[ref]: value for ref, value in truth.items()}
    now = datetime.now(UTC)
    key_path, cert_path = make_test_certificate(
        work / "pki", now - timedelta(days=1), now + timedelta(days=365), "DP Tiznit benchmark"
    )
    identity = load_signing_identity(key_path, cert_path, at=now)
    expected = Counter(status for status, _code in truth.values())
    print(
        f"set-up {time.perf_counter() - started:.1f} s (not timed): register of {len(pupils):,} "
        f"pupils, {guardians.height:,} guardians, {len(records)} leaving records; "
        f"{profile.code} request {request_path.name} of {len(children):,} children "
        f"({request_path.stat().st_size / 1e6:.1f} MB), by the truth "
        + ", ".join(f"{s} {expected[s]:,}" for s in STATUSES if expected[s])
    )
    print(f"peak RSS after set-up: {peak_rss_mb():,.0f} MB")
    print(f"steps (load average {load_average()}, {os.cpu_count()} CPUs):")
    steps = Steps()

    # ---- 1. parse ---------------------------------------------------------------------------
    steps.start()
    requests = parse_request(profile, request_path)
    steps.stop("1. parse_request", len(requests))
    assert len(requests) == len(children)

    # ---- 2. register -------------------------------------------------------------------------
    steps.start()
    register = register_from_frames(students, enrollments, guardians, args.year)
    steps.stop("2. register_from_frames", len(register))

    # ---- 3. match -----------------------------------------------------------------------------
    steps.start()
    answers = match_children(
        requests, register, records, args.year, partner.age_windows, processes=args.processes
    )
    steps.stop(
        f"3. match_children ({args.processes} process(es))",
        len(answers),
        side_by_side=args.processes > 1,
    )

    # ---- 4. build and sign --------------------------------------------------------------------
    steps.start()
    files = build_batch_files(
        profile,
        f"{profile.code}-{args.year[:4]}-000001",
        1,
        args.year,
        answers,
        now,
        identity,
        legal_basis=partner.legal_basis,
    )
    steps.stop("4. build_batch_files (sign XML and CSV)", len(answers))
    steps.start()
    for name, content in files.items():
        (work / name).write_bytes(content)
    steps.stop("   write the 4 files", None)

    # ---- 5. verify as the partner would -------------------------------------------------------
    names = batch_file_names(profile, args.year, 1)
    reports = []
    for label, name in (
        ("5a. verify_file XML (XSD, content, DSig)", names.xml),
        ("5b. verify_file CSV (layout, rows, .p7s)", names.csv),
        ("5c. verify_file manifest (sha256)", names.manifest),
    ):
        steps.start()
        report = verify_file(work / name, cert_path)
        steps.stop(label, None if name == names.manifest else len(answers))
        reports.append(report)
    total = steps.total

    # ---- independent checks -------------------------------------------------------------------
    xmlsec = run_tool(
        ["xmlsec1", "--verify", "--trusted-pem", str(cert_path), str(work / names.xml)]
    )
    print("independent checks (not in the total; the tool's own peak RSS):")
    steps.line("xmlsec1 --verify --trusted-pem", xmlsec[0], "-", len(answers), xmlsec[3])
    cms = run_tool(
        [
            *("openssl", "cms", "-verify", "-binary", "-inform", "DER"),
            *("-in", str(work / names.csv_signature), "-content", str(work / names.csv)),
            *("-CAfile", str(cert_path), "-purpose", "any", "-out", "/dev/null"),
        ]
    )
    steps.line("openssl cms -verify (CSV + .p7s)", cms[0], "-", len(answers), cms[3])

    # ---- results ------------------------------------------------------------------------------
    print(
        f"total of steps 1-5: {total:.2f} s wall ({steps.cpu:.2f} s cpu) for "
        f"{len(answers):,} children = {len(answers) / total:,.0f} children/s"
    )
    print(
        f"critical path: {steps.critical:.2f} s of CPU (each step's CPU, the matching step's "
        "busiest process only): the wall time to expect on an idle machine"
    )
    print(f"peak RSS: {peak_rss_mb():,.0f} MB (this process, set-up included)")
    print("files: " + ", ".join(f"{name} {size(data)}" for name, data in files.items()))
    got = Counter(answer.status for answer in answers)
    agree = wrong_pupil = 0
    for request, answer in zip(requests, answers, strict=True):
        status, code = truth[request.fund_reference]
        agree += status == answer.status
        wrong_pupil += (
            answer.status in (SCHOOLED, LEFT, NOT_SCHOOLED) and answer.student_code != code
        )
    print(
        "answers: "
        + ", ".join(f"{s} {got[s]:,}" for s in STATUSES if got[s])
        + f"; {agree / len(answers):.2%} agree with the truth; {wrong_pupil} answered about "
        "the wrong pupil"
    )
    reasons = Counter(answer.reason_code for answer in answers if answer.status == REVIEW)
    print("REVIEW by reason: " + ", ".join(f"{code} {n:,}" for code, n in reasons.most_common()))
    problems = [p for report in reports for p in report.problems]
    print(
        "partner checks: "
        + ("all hold" if not problems else f"{len(problems)} problems, first: {problems[0]}")
        + f"; xmlsec1 {'OK' if xmlsec[1] == 0 else f'FAILED ({xmlsec[2]})'}"
        + f"; openssl cms {'OK' if cms[1] == 0 else f'FAILED ({cms[2]})'}"
    )
    ok = total <= target and not problems and xmlsec[1] == 0 and cms[1] == 0
    print(
        f"verdict: {'PASS' if ok else 'FAIL'}: {total:.1f} s wall "
        f"{'MEETS' if total <= target else 'MISSES'} the {target:.1f} s target for "
        f"{len(answers):,} children ({TARGET_SECONDS:.0f} s for 200 000); CPU {steps.cpu:.1f} s "
        f"(the matching processes included); load average {load_average()}"
    )
    label = f"exchange, {len(answers):,} children end to end (parse ... verify)"
    rows: list[dict[str, Any]] = [
        {
            "measure": label,
            "ours_s": round(total, 2),
            "baseline_s": None,
            "peak_rss_mb": round(peak_rss_mb()),
            "target": f"<= {target:.1f} s",
            "cpu_s": round(steps.cpu, 2),
            "note": f"load average {load_average()}; critical path {steps.critical:.1f} s "
            "of CPU; partner checks "
            + ("hold" if not problems and not xmlsec[1] and not cms[1] else "FAIL"),
        }
    ]
    rows += [
        {
            "measure": f"  {step}",
            "ours_s": round(wall, 2),
            "baseline_s": None,
            "peak_rss_mb": round(rss),
            "target": "",
            "cpu_s": round(cpu, 2),
        }
        for step, wall, cpu, rss in steps.timed
    ]
    return rows, ok


if __name__ == "__main__":
    main()

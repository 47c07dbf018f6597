"""The schools' feedback reports as the ingest writes them at the end of a chunk
(``tasks.ingest.write_reports``: each school's submissions and findings from the control
database, then ``tasks.feedback.write_school_report``, workbook and page), timed apart from the
ingest, in one process.

    .venv/bin/python benchmarks/school_reports.py --province DIR [--schools N] [--home DIR]
        [--repeat 3]

The province's schools (its first N, all by default) are ingested once into a home (``--home``:
kept, and used again without ingesting when it already holds them), with the campaigns of
benchmarks/coverage_province.py so that each report has its coverage section. Then every report
is written ``--repeat`` times into an emptied reports folder (nothing is left unwritten by the
reports' fingerprints) and the CPU seconds (user + system) are printed for the whole step and
for its parts: what each school still owes (tasks/coverage.py, once for all), the findings'
query, the fingerprint, the workbook, the page, the rest (the records, the files). To compare
two checkouts, run this file from each one's folder (its directory is put first on the import
path) on the same ``--home``.

Figures (issue 17, item 1: the reports' CPU halved). The default province (/tmp/a3/province:
135 of its 250 schools send files, ~230 files each, all accepted), before (f056f5a) and after
(159d524), run in turn twice each, load 6.1-7.1, CPU seconds for the 135 schools (2 passes each):

    run      in all         coverage     query        workbook     page         rest + fp.
    before   3.911-3.982 s  0.961-0.995  0.403-0.432  1.752-1.803  0.480-0.483  0.280-0.302
    after    2.468-2.532 s  0.882-0.947  0.340-0.372  0.724-0.783  0.200-0.220  0.257-0.274
    before   3.752-4.048 s  0.976-1.131  0.371-0.388  1.703-1.772  0.438-0.474  0.265-0.282
    after    2.378-2.444 s  0.890-0.909  0.285-0.305  0.720-0.766  0.199-0.221  0.247-0.282

The reports' own part (in all less the coverage, which the province benchmarks leave out: no
campaign declared there) fell from 2.78-3.02 s to 1.47-1.65 s, 21-22 -> 11-12 ms a school: the
workbook's rows written without xlsxwriter's per-cell paths (tasks/feedback.ReportSheet), the
page's recurring cells made once. The two files alone, the three versions of tasks/feedback.py
alternated school by school in one process (135 schools, 3 passes, load 4-5): workbook 13.8
(f056f5a) -> 8.4 (cells as xlsxwriter's tuples, written by ReportSheet) -> 5.8 ms (a template
per row pattern), page 3.5 -> 1.6 ms. The 40-school province (21 schools), before and after
503a267, twice each at load 5.1-5.3: 0.53-0.58 -> 0.37-0.41 s in all. A school with 1,750
findings (synthetic: 230 files, R003 on 3,000 and 500 cells): workbook 91 -> 27 ms, page 99 ->
94 ms (the page's findings are tasks/bidi.isolated_message's, whose regular expression of the
quoted values is compiled again once Python's cache of 512 is full: 95 -> 74 ms with those
patterns cached, the same pages).

In the flow (benchmarks/ingest_province.py --province /tmp/a3/province --no-reingest, 47c819c
with f056f5a's tasks/feedback.py, then as is, in turn twice each, load 4.5-7.4 at the start):
workers' CPU 58.00, 59.03 s before, 55.44, 56.19 s after; outside the timed steps (where the
reports are) 9.9, 9.4 s before, 8.0, 8.4 s after.

What is left of the workbook is xlsxwriter's fixed parts: styles, theme, the shared strings'
escaping (~0.8 ms a school) and the zip at zlib's level 6 (~1.3 ms; level 1 would save ~0.7,
but xlsxwriter does not let it be chosen). Measured and not adopted: one findings query per
chunk instead of per school (tasks/ingest.py: 0.26 -> 0.21 s for 135 schools, the rows
themselves cost), the code's hash kept across reports (0.05 ms a school). Found: with
campaigns declared, the coverage each chunk's reports ask for (tasks/coverage.owed_sections)
reads every submission of the province whatever the schools (warehouse/coverage.py
``_read_submissions``): 0.2-0.36 s a call, 5.4 s for 15 chunks of 9 schools against 1.2 s for
the 135 at once, more than the reports themselves.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NOW = datetime(2024, 3, 1, 9, 30)


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def ingest(province: Path, schools: int, home: Path) -> list[str]:
    """The province's first ``schools`` schools ingested into ``home`` (no reports); their
    codes. A home that already holds them is used as it is."""
    from benchmarks.coverage_province import CAMPAIGNS
    from massar.demo import load_school_reference
    from massar.home import init_home
    from tasks.ingest import discover_inbox, ingest_school
    from warehouse.control import ControlDatabase

    done = home / "schools.txt"
    if done.is_file():
        return done.read_text(encoding="utf-8").split()
    settings = init_home(home)
    (settings.home / "campaigns.toml").write_text(CAMPAIGNS, encoding="utf-8")
    if (province / "schools.csv").is_file():
        load_school_reference(settings, province / "schools.csv")
    found, _ = discover_inbox(province)
    codes = sorted(found)[:schools]
    database = ControlDatabase(settings.resolved_database_url)
    started = time.perf_counter()
    try:
        for code in codes:
            for path in found[code]:
                target = settings.inbox / code / path.relative_to(province / code)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
            ingest_school(settings, code, found[code], settings.inbox / code, database)
    finally:
        database.dispose()
    print(f"ingested {len(codes)} schools in {time.perf_counter() - started:.0f} s")
    done.write_text("\n".join(codes), encoding="utf-8")
    return codes


def timed(spent: dict[str, float], label: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def run(*args: Any, **kwargs: Any) -> Any:
        started = cpu()
        try:
            return function(*args, **kwargs)
        finally:
            spent[label] += cpu() - started

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--province", type=Path, required=True)
    parser.add_argument("--schools", type=int, default=10_000)
    parser.add_argument("--home", type=Path, help="kept; used again when already ingested")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from massar.home import init_home
    from tasks import feedback
    from tasks import ingest as ingest_module
    from tasks.ingest import write_reports
    from tasks.ingest_chunks import fewer_collections
    from warehouse.control import ControlDatabase

    home = args.home or Path(tempfile.mkdtemp(prefix="massar-reports-bench-")) / "home"
    codes = ingest(args.province, args.schools, home)
    settings = init_home(home)
    spent: dict[str, float] = defaultdict(float)
    ingest_module.owed_sections = timed(spent, "coverage", ingest_module.owed_sections)
    ingest_module.school_findings = timed(spent, "query", ingest_module.school_findings)
    feedback._report_fingerprint = timed(spent, "fingerprint", feedback._report_fingerprint)
    feedback.write_xlsx_report = timed(spent, "workbook", feedback.write_xlsx_report)
    feedback.write_html_report = timed(spent, "page", feedback.write_html_report)
    print(f"{len(codes)} schools' reports, {feedback.__file__}, load {os.getloadavg()[0]:.1f}")
    database = ControlDatabase(settings.resolved_database_url)
    try:
        for _ in range(args.repeat):
            shutil.rmtree(settings.reports, ignore_errors=True)
            spent.clear()
            started, wall = cpu(), time.perf_counter()
            with fewer_collections():  # as in a worker's chunk
                write_reports(settings, codes, NOW, database)
            total, wall = cpu() - started, time.perf_counter() - wall
            parts = ", ".join(f"{label} {seconds:.3f}" for label, seconds in spent.items())
            rest = total - sum(spent.values())
            print(
                f"  {total:.3f} s CPU ({1000 * total / len(codes):.1f} ms a school), "
                f"{wall:.3f} s wall: {parts}, rest {rest:.3f}"
            )
    finally:
        database.dispose()
    print(f"load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

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

Figures (issue 17, item 1: the reports' CPU halved). The 40-school province (/tmp/s8/prov40:
21 schools send files, ~230 files each, all accepted), before (f056f5a) and after, run in turn
twice each, load 5.1-5.3, CPU seconds for the 21 schools (3 passes each):

    run      in all         coverage     query        workbook     page         rest
    before   0.557-0.582 s  0.149-0.153  0.053-0.062  0.239-0.267  0.061-0.063  0.024-0.041
    after    0.379-0.403 s  0.154-0.176  0.040-0.044  0.117-0.124  0.025        0.021-0.031
    before   0.529-0.541 s  0.133-0.156  0.051-0.055  0.234-0.239  0.053-0.060  0.023-0.041
    after    0.372-0.410 s  0.150-0.155  0.042-0.050  0.119-0.125  0.025-0.028  0.022-0.037

(the fingerprint 0.011-0.014 s in every run.)

The reports' own part (in all less the coverage, which tasks/coverage.py computes once per chunk
and the generated province's ingest benchmark leaves out: no campaigns declared there) fell from
~0.40 to ~0.23 s, 19 -> 11 ms a school: the workbook's rows written without xlsxwriter's per-cell
paths (tasks/feedback.ReportSheet, 11.5 -> 5.7 ms a school), the page's recurring cells made once
(2.9 -> 1.2 ms). What is left: xlsxwriter's fixed parts (styles, theme, shared strings, the zip
at zlib's level 6: ~1.3 ms a school of which level 1 would save 0.7, but xlsxwriter does not let
it be chosen), ~0.7 us a cell to write the sheet's XML, the findings' query (~2 ms, in
tasks/ingest.py), and the coverage (7 ms a school here, once per chunk: tasks/coverage.py).
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

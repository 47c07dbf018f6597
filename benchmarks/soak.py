"""Soak: a month of nights on one home, to see whether it holds together and how it grows.

A small generated province (``--schools``, default 4) is ingested on the first night; each
following night brings what a month brings: resubmissions (a school sends a file again with a
few lines changed), corrections (a value corrected in a file), a transfer now and then (a
pupil of one school listed by another, with a newer export date), and once a week a fund's
exchange (a new request from CNSS or CMR in turn, answered, approved by the demo's officer,
delivered, acknowledged). Every night runs the ``nightly`` flow (ingest, consolidation,
evaluation); every seventh night also the weekly warehouse maintenance (compaction, then
deleting what only nights older than ``--keep-days`` read) and housekeeping.

The nights' clock is injected: night N is published at 02:00 of day N (the moment a night is
recorded, warehouse/nights.py, and the maintenance's ``now``), so that a retention counted in
days is exercised although the soak's nights follow each other within minutes. The default
``--keep-days 7`` is shorter than the platform's 30 days so that a 30-night soak shows the
warehouse levelling off; with ``--keep-days 30`` it levels off after the 30th night.

After each night the home is checked as a backup checks it (warehouse/backup/home_check.py:
the control database at its newest migration, every table of the last published night
readable at its version, every original in the archive under its sha256, every active
submission's staged rows there, the message log's chain intact), and the submissions' counts
must add up; after a maintenance, every night inside the window must still read. Printed per
night: seconds, warehouse size, its data files and log entries, control-database size, file
count of the home, whether the check passed.

    .venv/bin/python benchmarks/soak.py [--nights 30] [--schools 4] [--seed 11] [--keep-days 7]
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os
import random
import shutil
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

YEAR = "2023/2024"
START = datetime(2024, 2, 1, 2, 0, tzinfo=UTC)  # night N is published at START + N - 1 days


def maintained_at(night: datetime) -> datetime:
    """The weekly maintenance runs two hours after the night (Sunday 04:00): its window of
    ``keep_days`` is counted from then, and so is the soak's check of the nights it keeps."""
    return night + timedelta(hours=2)


def delta_files(warehouse: Path) -> tuple[int, int]:
    """(data files, log entries) of the warehouse's Delta tables."""
    data = log = 0
    for item in warehouse.rglob("*"):
        if not item.is_file():
            continue
        if item.parent.name == "_delta_log":
            log += 1
        else:
            data += 1
    return data, log


def folder_size(path: Path) -> tuple[int, int]:
    """(bytes, files) under ``path``."""
    size = files = 0
    for item in path.rglob("*"):
        if item.is_file():
            size += item.stat().st_size
            files += 1
    return size, files


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def csv_files(inbox: Path) -> list[Path]:
    return sorted(p for p in inbox.glob("*/*.csv") if p.stat().st_size > 200)


def resubmit(path: Path, rng: random.Random, night: int) -> str:
    """The school sends the file again with one or two of its lines dropped (new bytes)."""
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    header, body = lines[0], lines[1:]
    for _ in range(min(2, max(0, len(body) - 5))):
        body.pop(rng.randrange(len(body)))
    path.write_text("\ufeff" + "\n".join([header, *body]) + "\n", encoding="utf-8")
    return f"resubmitted {path.parent.name}/{path.name}"


def correct(path: Path, rng: random.Random, night: int) -> str:
    """The school corrects a value: the last column of one line (a reason, a remark)."""
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    if len(lines) < 3:
        return ""
    index = rng.randrange(1, len(lines))
    cells = lines[index].split(",")
    cells[-1] = f"تصحيح {night}" if cells[-1] != f"تصحيح {night}" else ""
    lines[index] = ",".join(cells)
    path.write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")
    return f"corrected {path.parent.name}/{path.name}"


def transfer(inbox: Path, rng: random.Random, night: int) -> str:
    """A pupil of school A appears in school B's list too, with a newer export date."""
    import xlrd

    from massar.synthetic.massar_layouts import (
        LIST_COLUMNS,
        LIST_FIRST_ROW,
        LIST_HEADERS,
        LIST_META_CELLS,
        ListSheet,
        ListWorkbook,
        cell_index,
        col_index,
        write_list_xls,
    )

    def newest(school: Path) -> Path | None:
        lists = sorted(school.glob("ListEleve_*.xls"))
        return lists[-1] if lists else None

    schools = [s for s in sorted(inbox.iterdir()) if newest(s) is not None]
    if len(schools) < 2:
        return ""
    source, target = rng.sample(schools, 2)

    def sheets(path: Path) -> list[ListSheet]:
        book = xlrd.open_workbook(str(path))
        found = []
        for sheet in book.sheets():

            def cell(r: int, c: int, sheet=sheet, book=book) -> object:
                if r >= sheet.nrows or c >= sheet.ncols:
                    return ""
                item = sheet.cell(r, c)
                if item.ctype == xlrd.XL_CELL_DATE:
                    return xlrd.xldate_as_datetime(item.value, book.datemode).date()
                return item.value

            meta = {
                name: str(cell(*cell_index(ref))) for name, (_, _, ref) in LIST_META_CELLS.items()
            }
            rows = []
            r = LIST_FIRST_ROW - 1
            while r < sheet.nrows and cell(r, col_index(LIST_COLUMNS[1][0])):
                rows.append([cell(r, col_index(letter)) for letter, _ in LIST_COLUMNS])
                r += 1
            found.append(ListSheet(meta, list(LIST_HEADERS), rows))
        return found

    moving = rng.choice([row for sheet in sheets(newest(source)) for row in sheet.rows])
    target_sheets = sheets(newest(target))
    target_sheets[0].rows.append([len(target_sheets[0].rows) + 1, *moving[1:]])
    exported = date(2024, 2, 1) + timedelta(days=night)
    name = f"ListEleve_{exported:%Y%m%d}.xls"
    write_list_xls(ListWorkbook(name, "xls", target_sheets), target / name)
    return f"transfer {source.name} -> {target.name}"


def weekly_exchange(settings, province: Path, week: int, work: Path) -> str:
    """A new request of one fund (CNSS, CMR in turn), answered as the demo answers it."""
    from ground.funds import FUND_KEYS
    from massar.demo import run_demo_exchanges

    fund = FUND_KEYS[week % len(FUND_KEYS)]
    requests = work / f"week-{week}"
    folder = requests / "partners" / fund
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(province / "leavers.csv", requests / "leavers.csv")
    original = next((province / "partners" / fund).glob("*_SCOL_*.csv"))
    shutil.copy(original, folder / original.name.replace("_0001.csv", f"_{week + 1:04d}.csv"))
    lines = run_demo_exchanges(settings, requests)
    return f"{fund.upper()}: " + " / ".join(line for line in lines if "Batch" in line)[:120]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nights", type=int, default=30)
    parser.add_argument("--schools", type=int, default=4)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--keep-days", type=int, default=7, help="days of nights the weekly maintenance keeps"
    )
    parser.add_argument("--keep", action="store_true", help="keep the home afterwards")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="massar-soak-"))
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")
    from massar.home import init_home
    from massar.synthetic import generate_province

    province = work / "province"
    generate_province(province, schools=args.schools, seed=args.seed, year=YEAR, workers=1)
    settings = init_home(work / "home")
    from massar.runner import prefect_api

    rng = random.Random(args.seed)
    sent: set[tuple[str, str]] = set()  # (school, sha256) of every file ever sent
    print(
        f"soak: {args.nights} nights, {args.schools} schools, keep {args.keep_days} days, "
        f"home {settings.home}\n"
        f"{'night':>5} {'seconds':>8} {'warehouse MB':>12} {'wh files':>8} {'wh data':>7} "
        f"{'wh log':>6} {'control MB':>10} {'home files':>10} {'submissions':>11} check  "
        "what happened",
        flush=True,
    )
    rows = []
    import warehouse.nights

    clock = {"now": START}
    warehouse.nights.utcnow = lambda: clock["now"]  # type: ignore[assignment]
    with prefect_api(settings):
        from flows.housekeeping import housekeeping
        from flows.nightly import nightly
        from flows.warehouse_maintenance import warehouse_maintenance
        from warehouse.backup.home_check import check_home
        from warehouse.control import ControlDatabase, Night, Submission
        from warehouse.delta import read_table

        for night in range(1, args.nights + 1):
            happened = []
            clock["now"] = START + timedelta(days=night - 1)
            if night == 1:
                for school in sorted(p for p in province.iterdir() if p.name[:5].isdigit()):
                    shutil.copytree(school, settings.inbox / school.name)
                happened.append("first ingest")
            else:
                for _ in range(rng.randint(1, 3)):
                    happened.append(resubmit(rng.choice(csv_files(settings.inbox)), rng, night))
                for _ in range(rng.randint(0, 2)):
                    happened.append(correct(rng.choice(csv_files(settings.inbox)), rng, night))
                if rng.random() < 0.3:
                    happened.append(transfer(settings.inbox, rng, night))
            sent |= {(f.parent.name, sha256_file(f)) for f in settings.inbox.glob("*/**/*.*")}
            started = time.perf_counter()
            failures = []
            try:
                result = nightly(settings)
            except Exception as error:  # a failed night is a finding: the soak goes on
                result = {"ingest": {}}
                failures.append(f"the nightly failed: {type(error).__name__}: {str(error)[:200]}")
            if night % 7 == 0:
                happened.append(weekly_exchange(settings, province, night // 7, work))
                tidied = warehouse_maintenance(
                    settings, keep_days=args.keep_days, now=maintained_at(clock["now"])
                )
                housekeeping(settings)
                happened.append(
                    f"maintenance ({len(tidied)} tables, "
                    f"{sum(t['files_vacuumed'] for t in tidied)} files and "
                    f"{sum(t['log_entries_dropped'] for t in tidied)} log entries deleted)"
                )
            seconds = time.perf_counter() - started
            problems = failures + check_home(settings)
            database = ControlDatabase(settings.resolved_database_url)
            try:
                with database.session() as session:
                    states = [s.state for s in session.query(Submission)]
                    published = [
                        n.versions or {}
                        for n in session.query(Night).filter(Night.state == "completed")
                        if n.finished_at is not None
                        and n.finished_at.replace(tzinfo=UTC)
                        >= maintained_at(clock["now"]) - timedelta(days=args.keep_days)
                    ]
            finally:
                database.dispose()
            if night % 7 == 0:  # every night inside the window still reads
                for versions in published:
                    for table, version in versions.items():
                        try:
                            read_table(settings.warehouse, table, version).count_rows()
                        except Exception as error:
                            problems.append(f"{table} v{version}: {error}")
            if len(states) != len(sent) or "received" in states:
                problems.append(f"{len(states)} submissions for {len(sent)} files sent")
            if result["ingest"].get("unreadable"):
                problems.append("unreadable files")
            warehouse_bytes, warehouse_files = folder_size(settings.warehouse)
            control = (settings.home / "massar.db").stat().st_size + sum(
                p.stat().st_size for p in settings.home.glob("massar.db-*")
            )
            data_files, log_entries = delta_files(settings.warehouse)
            _, home_files = folder_size(settings.home)
            row = (
                night,
                seconds,
                warehouse_bytes / 1e6,
                warehouse_files,
                control / 1e6,
                home_files,
                len(states),
                "ok" if not problems else "FAIL",
                data_files,
                log_entries,
            )
            rows.append(row)
            print(
                f"{row[0]:>5} {row[1]:>8.1f} {row[2]:>12.2f} {row[3]:>8} {row[8]:>7} {row[9]:>6} "
                f"{row[4]:>10.2f} {row[5]:>10} {row[6]:>11} {row[7]:<5}  "
                f"{'; '.join(h for h in happened if h)}",
                flush=True,
            )
            for problem in problems:
                print(f"      problem: {problem}", flush=True)
    weeks = [r for r in rows if r[0] % 7 == 0]
    if len(weeks) >= 2:
        growth = [round(b[2] - a[2], 2) for a, b in itertools.pairwise(weeks)]
        print(f"warehouse MB after each maintenance: {[round(w[2], 2) for w in weeks]}")
        print(f"growth from one maintenance to the next (MB): {growth}")
        print(f"warehouse files after each maintenance: {[w[3] for w in weeks]}")
        print(
            "files from one maintenance to the next: "
            f"{[b[3] - a[3] for a, b in itertools.pairwise(weeks)]}"
        )
    failed = any(r[7] != "ok" for r in rows)
    sys.stdout.flush()
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    # The demo's officer threads of a fund without a request that week are still polling the
    # home: end the process here rather than let them read a deleted home.
    os._exit(1 if failed else 0)


if __name__ == "__main__":
    main()

"""Benchmark: the school-file reader against python-calamine alone, file by file.

For every file of a province folder (one process, files read once beforehand so that both
sides find them in the page cache) it times:

- bare: python-calamine alone (open the workbook, `to_python()` every sheet) for workbooks, the
  stdlib csv module (UTF-8 / Windows-1256 decoding) for CSVs;
- ours: `connectors.school_files.read_submission` (rejections included, counted apart).

and prints both totals, the ratio ours / bare, and the same per layout (ListEleve, NotesCC,
tables). Files go in groups (a school's files of one layout) read by both sides in turn,
`--repeat` times; the best time of each side per group is kept.

    .venv/bin/python benchmarks/read_files.py [PROVINCE] [--limit-schools N] [--repeat R]
        [--profile OUT.prof]
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LAYOUTS = ("ListEleve", "NotesCC", "tables")


def layout_of(school: Path, path: Path) -> str:
    parts = path.relative_to(school).parts
    if parts[0] == "NotesCC":
        return "NotesCC"
    if path.name.lower().startswith("listeleve"):
        return "ListEleve"
    return "tables"


def collect(province: Path, limit: int | None) -> list[tuple[str, Path, str]]:
    """(school code, path, layout) for every file of the first `limit` school folders."""
    schools = sorted(p for p in province.iterdir() if p.is_dir() and p.name[:5].isdigit())
    if limit is not None:
        schools = schools[:limit]
    files = []
    for school in schools:
        for path in sorted(p for p in school.rglob("*") if p.is_file()):
            files.append((school.name, path, layout_of(school, path)))
    return files


def bare_one(path: Path) -> None:
    from python_calamine import CalamineWorkbook

    if path.suffix.lower() in (".xlsx", ".xls", ".xlsm", ".xlsb"):
        with CalamineWorkbook.from_path(str(path)) as workbook:
            for name in workbook.sheet_names:
                workbook.get_sheet_by_name(name).to_python()
    else:
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = raw.decode("cp1256")
        list(csv.reader(io.StringIO(text)))


def ours_one(school: str, path: Path) -> bool:
    from connectors.school_files import FileRejected, read_submission

    try:
        read_submission(path, school_code=school)
    except FileRejected:
        return False
    return True


def timed(files, repeat: int) -> tuple[dict[str, float], dict[str, float]]:  # type: ignore[no-untyped-def]
    """Seconds per layout for bare and ours. Files are taken in groups (one school's files of
    one layout); each group is read `repeat` times by each side in turn and the best time of
    each side kept, so that a burst of load on the machine hits both sides alike."""
    groups: dict[tuple[str, str], list[Path]] = defaultdict(list)
    for school, path, layout in files:
        groups[(school, layout)].append(path)
    bare: dict[str, float] = defaultdict(float)
    ours: dict[str, float] = defaultdict(float)
    clock = time.perf_counter
    for (school, layout), paths in groups.items():
        best_bare = best_ours = float("inf")
        for _ in range(repeat):
            t0 = clock()
            for path in paths:
                bare_one(path)
            t1 = clock()
            for path in paths:
                ours_one(school, path)
            t2 = clock()
            best_bare, best_ours = min(best_bare, t1 - t0), min(best_ours, t2 - t1)
        bare[layout] += best_bare
        ours[layout] += best_ours
    return bare, ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("province", nargs="?", default="/tmp/tiznit", type=Path)
    parser.add_argument("--limit-schools", type=int, default=None, metavar="N")
    parser.add_argument("--repeat", type=int, default=1, metavar="R")
    parser.add_argument("--profile", type=Path, default=None, help="cProfile ours into this file")
    args = parser.parse_args()

    files = collect(args.province, args.limit_schools)
    if not files:
        sys.exit(f"no school files under {args.province}")
    counts: dict[str, int] = defaultdict(int)
    size = 0
    for _, path, layout in files:  # warm the page cache
        counts[layout] += 1
        size += len(path.read_bytes())
    # Import and warm both sides (module imports, label caches) outside the timings.
    ours_one(files[0][0], files[0][1])
    bare_one(files[0][1])
    print(f"{len(files)} files, {size / 2**20:.0f} MB, {args.province}")

    rejected = sum(1 for school, path, _ in files if not ours_one(school, path))
    if args.profile is not None:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
        for school, path, _ in files:
            ours_one(school, path)
        profiler.disable()
        profiler.dump_stats(str(args.profile))
        print(f"profile of ours written to {args.profile}")

    bare, ours = timed(files, args.repeat)
    print(f"{'':<10} {'files':>6} {'bare s':>8} {'ours s':>8} {'ratio':>6} {'ours ms/file':>13}")
    for layout in LAYOUTS:
        n = counts.get(layout, 0)
        if not n:
            continue
        b, o = bare[layout], ours[layout]
        print(f"{layout:<10} {n:>6} {b:>8.2f} {o:>8.2f} {o / b:>6.2f} {1000 * o / n:>13.2f}")
    total_bare, total_ours = sum(bare.values()), sum(ours.values())
    print(
        f"{'total':<10} {len(files):>6} {total_bare:>8.2f} {total_ours:>8.2f} "
        f"{total_ours / total_bare:>6.2f} {1000 * total_ours / len(files):>13.2f}"
    )
    print(f"({rejected} files rejected by read_submission)")


if __name__ == "__main__":
    main()

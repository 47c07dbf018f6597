"""Benchmark: generate the default Tiznit-like province (or --schools N) into a temp dir.

    .venv/bin/python benchmarks/generate_province.py [--schools N] [--workers N] [--defects]
        [--keep DIR]

Prints wall time, CPU time, processes used, files, rows written per dataset and bytes.
The requirement: the default province (both semesters) in under 120 s on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from massar.synthetic import generate_province


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schools", type=int, default=None)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--defects", action="store_true")
    parser.add_argument("--keep", type=Path, default=None, help="write here and keep the output")
    args = parser.parse_args()

    outdir = args.keep or Path(tempfile.mkdtemp(prefix="massar-bench-"))
    cpu0, t0 = _cpu_seconds(), time.perf_counter()
    try:
        summary = generate_province(
            outdir,
            schools=args.schools,
            seed=args.seed,
            defects=args.defects,
            workers=args.workers,
        )
        wall = time.perf_counter() - t0
        cpu = _cpu_seconds() - cpu0
        print(
            f"province        : {summary.schools} schools ({summary.folders} submitting), "
            f"{summary.pupils} pupils"
        )
        print(f"wall time       : {wall:.1f} s  (limit for the default province: 120 s)")
        print(
            f"cpu time        : {cpu:.1f} s on {summary.workers} process(es), "
            f"{os.cpu_count()} CPU(s) on this machine"
        )
        print(f"files           : {summary.files}")
        print(f"bytes           : {summary.bytes:,} ({summary.bytes / 1e6:.1f} MB)")
        print("rows written    :")
        for name, n in summary.rows.items():
            print(f"  {name:<14}: {n:,}")
        if args.defects:
            print(
                f"ground truth    : {summary.ground_truth_rows} rows, defect schools "
                f"{', '.join(summary.defect_schools)}"
            )
        print(f"files per second: {summary.files / wall:,.0f}")
    finally:
        if args.keep is None:
            shutil.rmtree(outdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

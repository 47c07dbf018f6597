"""Per-school cost of validation, as the ingest pays it (tasks/ingest.py ``_validate`` and the
cross-record step): ``validate_submission`` once per dataset (all of the school's files of a
dataset concatenated, each with its ``submission_id``), then ``cross_check_school`` once.

    .venv/bin/python benchmarks/validate_school.py [--province /tmp/tiznit] [--schools 10]
        [--repeat 3] [--marks-rows 2000000]

A province with defects (some schools' rows break rules, so pandera's detailed pass runs):
``benchmarks/generate_province.py --schools 12 --defects --keep /tmp/tiznit-defects``.

The schools' files are read once (python-calamine through connectors.school_files; not timed).
Prints the first (cold) school separately, then the per-school average over the warm passes,
the per-dataset breakdown, and the split between normalisation, the pandera model (with its
pre-check), the other row rules (R007, mark scales) and the cross-record checks. Finally runs
benchmarks/validate_marks.py's throughput measure on the synthetic marks frame
(target ≥ 1 M rows/s). Target here: ≤ 0.15 s per school for validate × datasets + cross checks.

Issue 17, item 1 (the steps after reading), this round. A dataset's files stacked kept a chunk
per file in every column (a school's marks: 166-330 NotesCC workbooks), and every polars select
over such a frame paid for each (~3 ms a select over 234 chunks, 0.02 ms over one, the rechunk
1.5-4.8 ms once): tasks/ingest.py ``_validate`` now rechunks once (and this benchmark stacks
its frames the same way). The pre-check's code pattern checks (R001, R008, R009) are cleared
when each distinct code matches, not only when the column repeats one value (a clean school's
pupils', classes' and subjects' codes had gone on to the row by row pass): pandera_findings
10.5-16.5 -> 6.5-11.1 ms a school (8 schools, both alternated in one process). The staged
Parquet is encoded in memory and written at once (the same bytes, ~10 % less CPU). The default
province (250 schools, --no-reingest), the tree at 7d98905 against the same tree with these
three files, back to back, CPU seconds summed over the workers:

    pair (load at start)   validate     cross       write       workers' CPU in all
    1 (6.6 / 5.5)          10.4 -> 8.2  4.3 -> 2.1  9.8 -> 9.6  81.6 -> 69.6 s
    2 (2.9 / 3.5)          9.4 -> 7.5   3.8 -> 2.1  9.6 -> 8.9  72.8 -> 66.7 s

Normalising (tasks/normalise.py, 9e11582): whether a column needs the full normalisation is
asked of its distinct texts (runs of equal texts, then unique) rather than of every row, and on
a frame of 4096 rows or more dates are parsed once per distinct text among the runs and labels
looked up per run in a dict (a school's marks: 27 k rows, ~6.8 k runs of pupils' birth dates,
2 runs of semesters). 35 schools, POLARS_MAX_THREADS=1, 01fca4d's normalise and the new one
alternated per frame in one process (best of 5, CPU): marks 345-391 -> 183-201 ms, all
datasets 0.53-0.62 -> 0.35-0.39 s (load 8-11). This benchmark, 20 schools, old and new
alternated twice (load 9-11, wall): normalise 15.3 / 19.8 -> 10.9 / 10.5 ms a school,
validate + cross 40.7 / 53.4 -> 37.5 / 37.1 ms. Measured and not adopted: labels looked up in
Python on frames under 4096 rows (exam_marks 29 -> 36 ms for 35 schools: the list's
conversions cost more than replace_strict there). Not tried: codes and numbers per run (a
marks column's runs cost 0.09-0.20 ms, its code 0.015 ms as it is, its number cast 0.2 ms).

Measured and not adopted: staged rows as Arrow IPC (35 schools' 343 frames: written in 0.40-0.50
s against 1.0-1.1 s of Parquet, but read back in 0.62-0.80 s against 0.25-0.55 s, and 525 MB
uncompressed, 17 MB lz4, 7.8 MB zstd against 6.0 MB of Parquet: the consolidation would read it
slower); the reports' cells written by type (write_string / write_number instead of write_row:
best and median 0.44 and 0.46 s against 0.43 and 0.60 s, 35 schools: noise) and xlsxwriter's
constant_memory (0.65-0.68 s, slower: a temporary file per sheet); the X013/X014 and X010 joins
as one filter with is_in (4.4 against 4.6 ms on a 234-chunk marks frame, whose filter alone cost
3.9 ms: the chunks, not the joins, were the cost); a submission's scope read column by column
rather than as its first row (9 us a file either way).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import polars as pl  # noqa: E402

SCHOOL_FOLDER = re.compile(r"^\d{5}[A-Z]$")  # as tasks/ingest.py
# Phases: (module, function name) → label. Wrapped with timers while a school is validated
# (in the module that calls them: tasks/validation/submission.py).
PHASES = {
    ("tasks.validation.submission", "normalise"): "normalise",
    ("tasks.validation.submission", "mark_scales"): "mark scales",
    ("tasks.validation.submission", "pandera_findings"): "pandera model",
}
# The row rules with a check of their own (R007 duplicates), timed by rule id.
OWN_CHECKS = ("tasks.validation.submission", "_OWN_CHECKS")


def read_schools(province: Path, count: int) -> dict[str, dict[str, pl.DataFrame]]:
    """``count`` schools spread over the province: dataset → the school's frames concatenated,
    each file with its ``submission_id`` (as tasks/ingest.py ``_read`` / ``_validate``)."""
    from connectors.school_files import FileRejected, read_submission

    folders = sorted(p for p in province.iterdir() if p.is_dir() and SCHOOL_FOLDER.match(p.name))
    step = max(1, len(folders) // max(1, count))
    chosen = folders[::step][:count]
    schools: dict[str, dict[str, pl.DataFrame]] = {}
    submission_id = 0
    for folder in chosen:
        grouped: dict[str, list[pl.DataFrame]] = defaultdict(list)
        for path in sorted(folder.rglob("*")):
            if not path.is_file() or path.name.startswith("."):
                continue
            submission_id += 1
            try:
                result = read_submission(path, school_code=folder.name)
            except FileRejected:
                continue
            if result.frame.height == 0:
                continue
            grouped[result.dataset].append(
                result.frame.with_columns(pl.lit(submission_id, pl.Int64).alias("submission_id"))
            )
        schools[folder.name] = {  # in one chunk, as tasks/ingest.py ``_validate`` stacks them
            name: pl.concat(parts, how="diagonal_relaxed").rechunk()
            for name, parts in grouped.items()
        }
    return schools


class Timers:
    """Wraps the phase functions of validation with accumulating timers."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._saved: list[tuple[object, str, Callable]] = []

    def __enter__(self) -> Timers:
        import importlib

        for (module_name, attribute), label in PHASES.items():
            module = importlib.import_module(module_name)
            original = getattr(module, attribute, None)
            if original is None:
                continue
            self._saved.append((module, attribute, original))
            setattr(module, attribute, self._timed(original, label))
        from tasks.validation.row_rules import ROW_RULES

        module = importlib.import_module(OWN_CHECKS[0])
        checks = getattr(module, OWN_CHECKS[1])
        self._saved.append((module, OWN_CHECKS[1], checks))
        labels = {
            rule.check: f"{rule.rule_id} {rule.check.__name__}" for rule in ROW_RULES if rule.check
        }
        timed = tuple(self._timed(check, labels.get(check, "row rule")) for check in checks)
        setattr(module, OWN_CHECKS[1], timed)
        return self

    def _timed(self, function: Callable, label: str) -> Callable:
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - started

        return wrapper

    def __exit__(self, *exc) -> None:
        for module, attribute, original in self._saved:
            setattr(module, attribute, original)


def forget_schools() -> None:
    """Empty the caches keyed by a school code (schemas built for a school...), so that every
    pass sees its schools for the first time, as the ingest does; process-wide caches stay."""
    import importlib
    import inspect

    for module_name in ("schemas.models", "tasks.normalise", "tasks.validation.model_check"):
        module = importlib.import_module(module_name)
        for value in vars(module).values():
            if callable(value) and hasattr(value, "cache_clear"):
                try:
                    parameters = inspect.signature(value).parameters
                except (TypeError, ValueError):
                    continue
                if "school_code" in parameters:
                    value.cache_clear()


def run_school(
    school: str, frames: dict[str, pl.DataFrame], per_dataset: dict[str, float]
) -> tuple[float, float]:
    """(validate seconds, cross-check seconds) of one school, as the ingest runs them."""
    from tasks.validation.cross_record import cross_check_school
    from tasks.validation.submission import validate_submission

    started = time.perf_counter()
    picture = {}
    for dataset, frame in frames.items():
        begun = time.perf_counter()
        validated = validate_submission(dataset, frame, school_code=school)
        per_dataset[dataset] += time.perf_counter() - begun
        picture[dataset] = pl.concat(
            [validated.accepted, validated.quarantined], how="diagonal_relaxed"
        )
    validate = time.perf_counter() - started
    started = time.perf_counter()
    cross_check_school(picture, school_code=school)
    return validate, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--province", type=Path, default=Path("/tmp/tiznit"))
    parser.add_argument("--schools", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--marks-rows", type=int, default=2_000_000, help="0 to skip")
    args = parser.parse_args()

    started = time.perf_counter()
    schools = read_schools(args.province, args.schools)
    rows = sum(f.height for frames in schools.values() for f in frames.values())
    print(
        f"read {len(schools)} schools, {rows:,} rows "
        f"({rows / max(1, len(schools)):,.0f} per school) in {time.perf_counter() - started:.1f} s"
        " (not timed below)"
    )

    started = time.perf_counter()
    from tasks.validation import cross_record, submission  # noqa: F401

    print(f"import tasks.validation: {time.perf_counter() - started:.2f} s")
    first_school, first_frames = next(iter(schools.items()))
    cold = run_school(first_school, first_frames, defaultdict(float))
    print(
        f"cold first school {first_school}: validate {cold[0]:.3f} s + cross {cold[1]:.3f} s "
        "(one-time imports and schema builds included)"
    )

    best_total = float("inf")
    best: tuple = ()
    for _ in range(args.repeat):
        per_dataset: dict[str, float] = defaultdict(float)
        validate = cross = 0.0
        forget_schools()
        with Timers() as timers:
            for school, frames in schools.items():
                v, c = run_school(school, frames, per_dataset)
                validate += v
                cross += c
        if validate + cross < best_total:
            best_total = validate + cross
            best = (validate, cross, dict(per_dataset), dict(timers.seconds))
    validate, cross, per_dataset, phases = best
    n = len(schools)
    print(
        f"\nper school (best of {args.repeat} passes over {n} schools, each pass forgetting the "
        f"schools' cached schemas): "
        f"{best_total / n * 1000:.1f} ms = validate {validate / n * 1000:.1f} ms "
        f"+ cross checks {cross / n * 1000:.1f} ms   (target ≤ 150 ms)"
    )
    print("\nper dataset (ms per school, rows per school):")
    for dataset, seconds in sorted(per_dataset.items(), key=lambda item: -item[1]):
        dataset_rows = sum(f[dataset].height for f in schools.values() if dataset in f)
        print(f"  {dataset:<12} {seconds / n * 1000:7.1f} ms  {dataset_rows / n:9,.0f} rows")
    print("\nshare of the per-school time:")
    other = validate - sum(phases.values())
    for label, seconds in [*phases.items(), ("other validate", other), ("cross checks", cross)]:
        print(f"  {label:<24} {seconds / n * 1000:7.1f} ms  {seconds / best_total * 100:5.1f} %")

    if args.marks_rows:
        from benchmarks.validate_marks import SCHOOL, synthetic_marks
        from tasks.validation.submission import validate_submission

        frame = synthetic_marks(args.marks_rows)
        validate_submission("marks", frame.head(1000), school_code=SCHOOL)
        seconds = float("inf")
        for _ in range(args.repeat):
            started = time.perf_counter()
            validate_submission("marks", frame, school_code=SCHOOL)
            seconds = min(seconds, time.perf_counter() - started)
        print(
            f"\nmarks throughput (benchmarks/validate_marks.py, {frame.height:,} rows): "
            f"{seconds:.2f} s → {frame.height / seconds:,.0f} rows/s (target ≥ 1,000,000)"
        )


if __name__ == "__main__":
    main()

"""National-scale semester results: tasks/evaluate.py vs plain pandas vs DuckDB's bare GROUP BY.

    .venv/bin/python benchmarks/evaluate_national.py [--pupils 1000000] [--subjects 10]
        [--slots 2] [--skip-pandas]

Builds in memory a marks frame shaped like the warehouse ``marks`` table: pupils in classes of
40 across the six collège levels, ``--subjects`` subjects × 2 semesters × ``--slots`` slots
(test1, test2, … and the last slot ``activities`` when --slots ≥ 3), ~2 % of marks not entered
and ~1 % justified absences. 1 M pupils × 10 × 2 × 2 = 40 M rows. Then times:

* ours: ``semester_results(subject_results(marks))`` (subject averages with the activities
  weights, coefficients, statuses, semester averages, ranks), peak memory via ``resource``;
* pandas: a straightforward groupby implementation of the same formulas (key columns as
  categoricals, else 40 M Python strings do not fit): the ratio ours / pandas (target ≥ 5×);
* DuckDB: the floor, ``SELECT …, avg(mark) GROUP BY pupil, subject, semester`` on the same
  Arrow data (target: ours within 2× of it).

Target: all semester results in ≤ 60 s. Figures on the 2-core, 23 GB reference machine are in
the module's final report (see docs/evaluation-rules.md).
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import polars as pl

from schemas.evaluation_rules import load_rules
from tasks.evaluate import semester_results, subject_results

LEVELS = ("1APIC", "2APIC", "3APIC", "1ASCG", "2ASCG", "3ASCG")
PUPILS_PER_CLASS = 40
CLASSES_PER_SCHOOL = 30


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(pupils: int, subjects: int, slots: int, seed: int = 7) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    rules = load_rules()
    level_subjects = {
        level: [code for (lvl, code) in rules.subjects if lvl == level][:subjects]
        for level in LEVELS
    }
    if min(len(codes) for codes in level_subjects.values()) < subjects:
        raise SystemExit(f"the collège levels have fewer than {subjects} subjects")
    index = np.arange(pupils)
    klass = index // PUPILS_PER_CLASS
    school = klass // CLASSES_PER_SCHOOL
    level = klass % len(LEVELS)
    pupil_frame = pl.DataFrame(
        {
            "school_code": pl.Series(school).cast(pl.Utf8).str.zfill(6),
            "level_code": pl.Series(np.array(LEVELS)[level]),
            "class_no": pl.Series(klass % 1000),
            "student_code": pl.Series(index).cast(pl.Utf8).str.zfill(10).str.replace("^", "P"),
        }
    ).select(
        "school_code",
        pl.lit("2024/2025").alias("school_year"),
        (pl.col("level_code") + "-" + pl.col("class_no").cast(pl.Utf8)).alias("class_code"),
        "level_code",
        "student_code",
    )
    slot_names = [f"test{i + 1}" for i in range(slots)]
    if slots >= 3:
        slot_names[-1] = "activities"
    per_pupil = subjects * 2 * slots
    rows = pupils * per_pupil
    pupil_of_row = np.repeat(index, per_pupil)
    within = np.tile(np.arange(per_pupil), pupils)
    subject_no = within // (2 * slots)
    semester = (within // slots) % 2 + 1
    slot_no = within % slots
    codes = np.array([level_subjects[lv] for lv in LEVELS])  # level × subject
    subject = codes[level[pupil_of_row], subject_no]
    mark = np.round(rng.uniform(0, 20, rows) * 4) / 4
    draw = rng.random(rows)
    entered = draw >= 0.03
    justified = (draw >= 0.02) & (draw < 0.03)
    marks = pupil_frame[pupil_of_row].with_columns(
        pl.Series("subject_code", subject),
        pl.Series("semester", semester.astype(np.int8)),
        pl.Series("slot", np.array(slot_names)[slot_no]),
        pl.Series("mark", np.where(entered, mark, np.nan)).fill_nan(None),
        pl.when(pl.Series(justified)).then(pl.lit("justified")).alias("absence"),
        pl.lit(20.0).alias("mark_scale"),
    )
    return marks


def pandas_semesters(marks: pl.DataFrame, rules) -> object:
    """The same formulas with a plain pandas groupby (no mark-scale conversion: all /20)."""
    import pandas as pd

    keys = ["school_code", "school_year", "class_code", "level_code", "student_code"]
    frame = marks.with_columns(pl.col([*keys, "subject_code", "slot"]).cast(pl.Categorical))
    frame = frame.to_pandas()
    subject_rules = pd.DataFrame(rules.subject_rows())[
        ["level_code", "subject_code", "coefficient", "activities_weight"]
    ]
    value = frame["mark"].where(frame["absence"].isna())
    is_test = frame["slot"].astype(str).str.startswith("test")
    frame["test"] = value.where(is_test)
    frame["act"] = value.where(~is_test)
    frame["excused"] = frame["absence"].notna()
    grouped = (
        frame.groupby([*keys, "subject_code", "semester"], observed=True)
        .agg(
            tests_mean=("test", "mean"),
            act=("act", "mean"),
            rows=("mark", "size"),
            excused=("excused", "sum"),
        )
        .reset_index()
    )
    for column in ("level_code", "subject_code"):
        grouped[column] = grouped[column].astype(str)
    grouped = grouped.merge(subject_rules, on=["level_code", "subject_code"], how="left")
    w = grouped["activities_weight"].fillna(0.25)
    both = grouped["tests_mean"].notna() & grouped["act"].notna() & (w > 0)
    average = grouped["tests_mean"].where(grouped["tests_mean"].notna(), grouped["act"])
    average = average.where(~both, grouped["tests_mean"] * (1 - w) + grouped["act"] * w)
    average = average.where(grouped["excused"] < grouped["rows"])
    counted = average.notna() & grouped["coefficient"].notna()
    grouped["points"] = (average * grouped["coefficient"]).where(counted, 0.0)
    grouped["coefs"] = grouped["coefficient"].where(counted, 0.0)
    semester = (
        grouped.groupby([*keys, "semester"], observed=True)
        .agg(points=("points", "sum"), coefs=("coefs", "sum"))
        .reset_index()
    )
    semester["average"] = (semester["points"] / semester["coefs"]).where(semester["coefs"] > 0)
    window = semester.groupby(
        ["school_code", "school_year", "class_code", "semester"], observed=True
    )
    semester["rank"] = window["average"].rank(method="min", ascending=False)
    semester["class_size"] = window["average"].transform("count")
    return semester


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pupils", type=int, default=1_000_000)
    parser.add_argument("--subjects", type=int, default=10)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--skip-pandas", action="store_true")
    args = parser.parse_args()
    rules = load_rules()

    started = time.perf_counter()
    marks = build(args.pupils, args.subjects, args.slots)
    print(
        f"built {marks.height:,} mark rows for {args.pupils:,} pupils in "
        f"{time.perf_counter() - started:.1f} s (peak RSS {peak_mb():,.0f} MB, "
        f"frame {marks.estimated_size() / 2**20:,.0f} MB)"
    )

    before = peak_mb()
    started = time.perf_counter()
    subjects = subject_results(marks, rules)
    middle = time.perf_counter()
    semesters = semester_results(subjects, rules)
    ours = time.perf_counter() - started
    print(
        f"ours:   {ours:6.2f} s  (subject_results {middle - started:.2f} s, semester_results "
        f"{ours - (middle - started):.2f} s) → {subjects.height:,} subject rows, "
        f"{semesters.height:,} semester rows; peak RSS {peak_mb():,.0f} MB "
        f"(+{peak_mb() - before:,.0f} MB); target ≤ 60 s: {'met' if ours <= 60 else 'MISSED'}"
    )
    del subjects

    import duckdb

    table = marks.to_arrow()
    connection = duckdb.connect()
    connection.register("marks", table)
    started = time.perf_counter()
    floor = connection.sql(
        "SELECT student_code, subject_code, semester, avg(mark) AS average FROM marks "
        "GROUP BY student_code, subject_code, semester"
    ).to_arrow_table()
    duck = time.perf_counter() - started
    rows = floor.num_rows if hasattr(floor, "num_rows") else len(floor)
    print(
        f"duckdb: {duck:6.2f} s  (bare GROUP BY pupil, subject, semester → {rows:,} rows); "
        f"ours / duckdb = {ours / duck:.2f}× (target ≤ 2×: "
        f"{'met' if ours <= 2 * duck else 'MISSED'})"
    )
    del floor, table
    connection.close()

    if args.skip_pandas:
        return
    before = peak_mb()
    started = time.perf_counter()
    reference = pandas_semesters(marks, rules)
    pandas_time = time.perf_counter() - started
    print(
        f"pandas: {pandas_time:6.2f} s  → {len(reference):,} semester rows; peak RSS "
        f"{peak_mb():,.0f} MB; pandas / ours = {pandas_time / ours:.1f}× (target ≥ 5×: "
        f"{'met' if pandas_time >= 5 * ours else 'MISSED'})"
    )
    check = semesters.join(
        pl.from_pandas(
            reference[["student_code", "semester", "average"]].astype({"student_code": str})
        ),
        on=["student_code", "semester"],
        suffix="_pandas",
    )
    worst = (check["average"] - check["average_pandas"]).abs().max()
    print(f"max |ours - pandas| semester average: {worst}")


if __name__ == "__main__":
    main()

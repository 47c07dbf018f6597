"""Throughput of normalise + validate on a synthetic NotesCC marks frame (long format).

    .venv/bin/python benchmarks/validate_marks.py [--rows 2000000] [--invalid 0.03] [--repeat 3]

Builds ~2 M rows shaped like a read frame of marks (pupil × slot; Utf8 original text, metadata
repeated per row, a few % invalid values: marks out of scale or unreadable, decimal commas,
Arabic-Indic digits, malformed codes, impossible dates, duplicates) and prints rows/s for
``tasks.validation.submission.validate_submission``. Target on the 2-core reference machine:
≥ 1 M rows/s.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import polars as pl

from tasks.validation.submission import validate_submission

SLOTS = (
    ("test1", "الفرض الأول"),
    ("test2", "الفرض الثاني"),
    ("test3", "الفرض الثالث"),
    ("activities", "الأنشطة المندمجة"),
)
LEVELS = ("1APIC", "2APIC", "3APIC", "1ASCG", "2ASCG", "3ASCG")
SCHOOL = "27783Y"
PUPILS_PER_CLASS = 40
SUBJECTS_PER_CLASS = 10
ASCII = list("0123456789")
INDIC = list("٠١٢٣٤٥٦٧٨٩")


def _replace(column: str, *cases: tuple[np.ndarray, pl.Expr]) -> pl.Expr:
    """``column`` with the rows of each mask replaced by the case's expression."""
    expr = pl.col(column)
    for mask, value in cases:
        expr = pl.when(pl.lit(pl.Series(mask))).then(value).otherwise(expr)
    return expr.alias(column)


def synthetic_marks(rows: int, invalid: float = 0.03, seed: int = 7) -> pl.DataFrame:
    """A marks read frame of about ``rows`` rows: NotesCC files of 40 pupils × 4 slots, one
    per class × subject; ``invalid`` of the rows carry a defect."""
    rng = np.random.default_rng(seed)
    per_file = PUPILS_PER_CLASS * len(SLOTS)
    files = max(1, rows // per_file)
    n = files * per_file
    row = np.arange(n)
    file = row // per_file
    pupil_in_class = (row % per_file) // len(SLOTS)
    slot = row % len(SLOTS)
    klass = file // SUBJECTS_PER_CLASS
    subject = file % SUBJECTS_PER_CLASS
    pupil = klass * PUPILS_PER_CLASS + pupil_in_class
    level = np.array(LEVELS)[klass % len(LEVELS)]
    constant = {
        "sheet": "NotesCC",
        "full_name": "العلوي محمد",
        "school_code": SCHOOL,
        "semester": "1",
        "school_year": "2023/2024",
        "level_label": "الأولى إعدادي مسار دولي",
        "teacher": "أستاذ",
        "subject_name": "مادة",
        "academy": "سوس ماسة",
        "directorate": "تيزنيت",
        "school_name": "إعدادية",
        "session_label": "الدورة الأولى",
    }
    marks = np.round(rng.uniform(0, 20, n) * 4) / 4
    frame = pl.DataFrame(
        {
            "sheet_row": 18 + pupil_in_class,
            "internal_id": (1_000_000 + pupil).astype(str),
            "student_code": np.char.add("K", (100_000_000 + pupil).astype(str)),
            "birth_date": np.char.add(
                np.char.add(np.char.zfill((1 + pupil % 28).astype(str), 2), "-"),
                np.char.add(np.char.zfill((1 + pupil % 12).astype(str), 2), "-2011"),
            ),
            "slot": np.array([name for name, _ in SLOTS])[slot],
            "slot_label": np.array([label for _, label in SLOTS])[slot],
            "mark": np.char.mod("%g", marks),
            "subject_code": np.char.zfill(((subject + 1) * 10).astype(str), 4),
            "class_code": np.char.add(np.char.add(level, "-"), (1 + klass // 6 % 99).astype(str)),
            "level_code": level,
        },
        schema_overrides={"sheet_row": pl.Int64},
    ).with_columns(
        *(pl.lit(value, pl.Utf8).alias(name) for name, value in constant.items()),
        pl.lit(None, pl.Utf8).alias("absence"),
        pl.lit(None, pl.Utf8).alias("remark"),
        pl.format("{} - النقطة", pl.col("slot_label")).alias("mark_column"),
        pl.format("{} - التغيب", pl.col("slot_label")).alias("absence_column"),
    )
    # Harmless variants (no finding expected): decimal commas, Arabic-Indic digits, spaces.
    draw = rng.random(n)
    frame = frame.with_columns(
        _replace(
            "mark",
            (draw < 0.05, pl.col("mark").str.replace(".", ",", literal=True)),
            ((draw >= 0.05) & (draw < 0.06), pl.col("mark").str.replace_many(ASCII, INDIC)),
        ),
        _replace(
            "student_code", ((draw >= 0.06) & (draw < 0.07), pl.format(" {} ", "student_code"))
        ),
    )
    # Defects: out of scale, not a number, malformed code, impossible date, mark with a
    # justified absence (a query), a pupil row repeated.
    bad = rng.random(n) < invalid
    kind = rng.integers(0, 6, n)
    return frame.with_columns(
        _replace("mark", (bad & (kind == 0), pl.lit("25")), (bad & (kind == 1), pl.lit("abc"))),
        _replace(
            "student_code",
            (bad & (kind == 2), pl.format("K{}", pl.col("student_code").str.slice(-6))),
            (bad & (kind == 5), pl.col("student_code").shift(len(SLOTS))),
        ),
        _replace("birth_date", (bad & (kind == 3), pl.lit("31-02-2011"))),
        _replace("absence", (bad & (kind == 4), pl.lit("مبرر"))),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--invalid", type=float, default=0.03)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    frame = synthetic_marks(args.rows, args.invalid)
    print(f"frame: {frame.height:,} rows × {frame.width} columns")
    validate_submission("marks", frame.head(1000), school_code=SCHOOL)  # warm up
    best = float("inf")
    for _ in range(args.repeat):
        start = time.perf_counter()
        result = validate_submission("marks", frame, school_code=SCHOOL)
        best = min(best, time.perf_counter() - start)
    counts = result.findings.group_by("rule_id").len().sort("rule_id").rows()
    print(
        f"accepted {result.rows_accepted:,} · quarantined {result.rows_quarantined:,} · "
        f"findings {result.findings.height:,} {dict(counts)}"
    )
    print(f"normalise + validate: {best:.2f} s → {frame.height / best:,.0f} rows/s")


if __name__ == "__main__":
    main()

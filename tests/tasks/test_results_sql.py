"""The results' SQL (tasks/results_sql.py) under a memory limit too small for its work: DuckDB
spills to disk and gives the same bits as with all the memory it wants."""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from schemas.evaluation_rules import load_rules
from tasks.results_sql import annual_sql, connect, semester_sql, subject_sql

RULES = load_rules()
LIMIT_MB = 128  # DuckDB needs about this much to spill at all (2 threads)


def _marks(pupils: int, seed: int = 3) -> pa.Table:
    """About 40 marks a pupil (10 subjects × 2 semesters × 2 tests) in classes of 40, with
    justified absences and marks not entered."""
    rng = np.random.default_rng(seed)
    subjects = [code for (level, code) in RULES.subjects if level == "1APIC"][:10]
    pupil = pl.DataFrame({"n": np.arange(pupils)}).select(
        pl.lit("S000001").alias("school_code"),
        pl.lit("2024/2025").alias("school_year"),
        (pl.lit("1APIC-") + (pl.col("n") // 40).cast(pl.Utf8)).alias("class_code"),
        pl.lit("1APIC").alias("level_code"),
        (pl.lit("K") + pl.col("n").cast(pl.Utf8).str.zfill(9)).alias("student_code"),
    )
    rows = (
        pupil.join(pl.DataFrame({"subject_code": subjects}), how="cross")
        .join(pl.DataFrame({"semester": pl.Series([1, 2], dtype=pl.Int8)}), how="cross")
        .join(pl.DataFrame({"slot": ["test1", "test2"]}), how="cross")
    )
    draw = rng.random(rows.height)
    mark = np.round(rng.uniform(0, 20, rows.height) * 4) / 4
    return rows.with_columns(
        pl.Series("mark", np.where(draw >= 0.03, mark, np.nan)).fill_nan(None),
        pl.when(pl.Series((draw >= 0.02) & (draw < 0.03)))
        .then(pl.lit("justified"))
        .otherwise(pl.lit(None, pl.Utf8))
        .alias("absence"),
        pl.lit(20.0).alias("mark_scale"),
    ).to_arrow()


def _all_results(connection: duckdb.DuckDBPyConnection, marks: pa.Table) -> list[pl.DataFrame]:
    subjects = subject_sql(connection, marks, RULES, marks.column_names)
    semesters = semester_sql(connection, subjects)
    annual = annual_sql(connection, semesters, RULES)
    frames = [pl.from_arrow(table) for table in (subjects, semesters, annual)]
    return [frame.sort(pl.all(), nulls_last=True) for frame in frames]  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def marks() -> pa.Table:
    return _marks(30_000)  # 1.2 M marks


def test_the_limit_is_too_small_without_spilling(marks, tmp_path) -> None:
    connection = connect(LIMIT_MB, tmp_path / "spill", threads=2)
    connection.execute("SET max_temp_directory_size = '0KB'")
    with pytest.raises(duckdb.OutOfMemoryException):
        subject_sql(connection, marks, RULES, marks.column_names)


def test_spilled_results_equal_those_computed_in_memory_bit_for_bit(marks, tmp_path) -> None:
    bounded = _all_results(connect(LIMIT_MB, tmp_path / "spill", threads=2), marks)
    free = _all_results(connect(threads=1), marks)
    assert [frame.height for frame in bounded] == [600_000, 60_000, 30_000]
    for spilled, computed in zip(bounded, free, strict=True):
        assert spilled.equals(computed)
    subjects, semesters, annual = bounded
    assert subjects["average"].null_count() < subjects.height
    assert semesters["rank"].max() == 40  # ranked within the class of 40
    assert set(annual["decision"].drop_nulls()) <= {"promoted", "repeats", "oriented"}

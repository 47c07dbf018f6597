"""One level per row: the resolver that validation and the warehouse share
(schemas/level_codes.py), and the reference tables read once (schemas/reference_data.py)."""

from __future__ import annotations

import os
import shutil

import polars as pl

from schemas.level_codes import LevelCodes, level_code_expr, level_codes
from schemas.reference_data import REFERENCE_DIR, reference_frame, reference_rows
from warehouse.tables import SchoolContext, derive_classes


def _levels(frame: dict[str, list[str | None]]) -> list[str | None]:
    data = pl.DataFrame(frame, schema={name: pl.Utf8 for name in frame})
    return data.select(level_code_expr(data).alias("level")).get_column("level").to_list()


def test_a_level_is_found_by_its_code_its_massar_internal_code_its_label_or_its_class():
    assert _levels({"level_code_key": ["1APIC", "2A31101110", "3102"]}) == [
        "1APIC",
        "1APIC",
        "TCSF",
    ]
    # The label as a school types it: hamza and spaces differ from levels.csv.
    assert _levels({"level_label": ["الاولى  إعدادي مسار دولي"]}) == ["1APIC"]
    assert _levels({"class_code_key": ["1APIC-1", "TCSF-12"]}) == ["1APIC", "TCSF"]


def test_the_level_code_wins_over_the_label_and_the_class():
    frame = {
        "level_code_key": ["TCSF", None],
        "level_label": ["الأولى إعدادي مسار دولي", "الأولى إعدادي مسار دولي"],
        "class_code_key": ["2BACSPF-1", "2BACSPF-1"],
    }
    assert _levels(frame) == ["TCSF", "1APIC"]


def test_a_level_the_reference_does_not_know_is_null_never_a_guess():
    frame = {"level_code_key": ["9XYZ", None], "class_code_key": ["9XYZ-1", "QQQ-3"]}
    assert _levels(frame) == [None, None]
    assert _levels({"school_code": ["12345A"]}) == [None]


def test_the_warehouse_gives_a_class_of_an_unknown_level_no_level():
    staged = pl.DataFrame(
        {
            "school_year_key": ["2023/2024", "2023/2024"],
            "class_code_key": ["1APIC-1", "9XYZ-2"],
            "level_label": [None, None],
            "submission_id": [1, 1],
            "sheet": ["s", "s"],
            "sheet_row": [2, 3],
        },
        schema_overrides={"level_label": pl.Utf8},
    )
    classes = derive_classes(staged, SchoolContext("12345A"))
    assert classes.get_column("level_code").to_list() == ["1APIC", None]


def test_levels_given_as_a_table_resolve_the_same_way():
    table = pl.DataFrame({"level_code": [" 1apic "], "internal_code": ["x1"], "label_ar": ["أ"]})
    known = LevelCodes.from_frame(table)
    frame = pl.DataFrame({"level_code_key": ["X1", "1APIC", "TCSF"]})
    levels = frame.select(level_code_expr(frame, known).alias("l")).get_column("l").to_list()
    assert levels == ["1APIC", "1APIC", None]


def test_reference_tables_are_read_once_and_again_when_the_file_changes(tmp_path):
    shutil.copy(REFERENCE_DIR / "levels.csv", tmp_path / "levels.csv")
    first = reference_rows("levels.csv", tmp_path)
    assert reference_rows("levels.csv", tmp_path) is first  # read once
    assert level_codes(tmp_path).codes["1APIC"] == "1APIC"

    path = tmp_path / "levels.csv"
    path.write_text("level_code,label_ar\nNEW1,جديد\n", encoding="utf-8")
    os.utime(path, ns=(1, 1))  # another modification time, whatever the clock's resolution
    assert [row["level_code"] for row in reference_rows("levels.csv", tmp_path)] == ["NEW1"]
    assert dict(level_codes(tmp_path).codes) == {"NEW1": "NEW1"}
    frame = reference_frame("levels.csv", tmp_path)
    assert frame is not None and frame.get_column("level_code").to_list() == ["NEW1"]


def test_a_missing_reference_file_is_no_rows_not_an_error(tmp_path):
    assert reference_rows("levels.csv", tmp_path) == ()
    assert reference_frame("levels.csv", tmp_path) is None
    assert dict(level_codes(tmp_path).codes) == {}

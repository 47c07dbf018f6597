"""warehouse.delta.read_frame: the table read whole into polars gives what the pyarrow dataset
gives (rows, their order, types), at any version, and says when a version cannot be read."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from warehouse.delta import TableMissing, read_frame, read_table, replace_school_rows

SCHEMA = pa.schema(
    [
        pa.field("school_code", pa.string(), nullable=False),
        pa.field("student_code", pa.string()),
        pa.field("semester", pa.int8()),
        pa.field("mark", pa.float64()),
    ]
)


def rows(*items: tuple[str, str, int, float | None]) -> pa.Table:
    return pa.table({name: [i[n] for i in items] for n, name in enumerate(SCHEMA.names)}, SCHEMA)


def through_arrow(warehouse: Path, version: int | None = None) -> pl.DataFrame:
    frame = pl.from_arrow(read_table(warehouse, "t", version).to_table())
    assert isinstance(frame, pl.DataFrame)
    return frame


def test_read_frame_gives_the_rows_of_each_version_as_the_pyarrow_dataset_does(
    tmp_path: Path,
) -> None:
    first = rows(("22222B", "K3", 1, 14.0), ("11111A", "K1", 2, None), ("11111A", "K2", 1, 9.5))
    replace_school_rows(tmp_path, "t", ["11111A", "22222B"], first)
    replace_school_rows(tmp_path, "t", ["11111A"], rows(("11111A", "K9", 2, 17.25)))

    for version in (0, 1, None):
        frame = read_frame(tmp_path, "t", version)
        assert frame.equals(through_arrow(tmp_path, version))
        assert frame.schema == pl.Schema(
            {
                "school_code": pl.Utf8,
                "student_code": pl.Utf8,
                "semester": pl.Int8,
                "mark": pl.Float64,
            }
        )
    assert sorted(read_frame(tmp_path, "t", 0).get_column("student_code")) == ["K1", "K2", "K3"]
    assert sorted(read_frame(tmp_path, "t").get_column("student_code")) == ["K3", "K9"]
    assert read_frame(tmp_path, "t", 0, columns=["mark", "school_code"]).columns == [
        "mark",
        "school_code",
    ]


def test_read_frame_of_a_missing_table_or_version_says_so(tmp_path: Path) -> None:
    with pytest.raises(TableMissing, match="no table t yet"):
        read_frame(tmp_path, "t")
    replace_school_rows(tmp_path, "t", ["11111A"], rows(("11111A", "K1", 1, 12.0)))
    with pytest.raises(TableMissing, match="Version 5 of table t cannot be read"):
        read_frame(tmp_path, "t", 5)

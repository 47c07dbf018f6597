"""Delta tables of the warehouse: per-school replacement in one commit, versions, schema policy."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from warehouse.delta import (
    SchemaChangeRefused,
    TableMissing,
    WarehouseError,
    compact,
    current_version,
    read_table,
    replace_school_rows,
    table_rows,
    table_versions,
    vacuum,
)
from warehouse.tables import TABLES

SCHEMA = pa.schema(
    [
        pa.field("school_code", pa.string(), nullable=False),
        pa.field("student_code", pa.string()),
        pa.field("mark", pa.float64()),
    ]
)


def rows(*items: tuple[str, str, float | None], schema: pa.Schema = SCHEMA) -> pa.Table:
    return pa.table(
        {
            "school_code": [i[0] for i in items],
            "student_code": [i[1] for i in items],
            "mark": [i[2] for i in items],
        },
        schema=schema,
    )


def content(warehouse: Path, table: str = "t", version: int | None = None) -> list[tuple]:
    frame = pl.from_arrow(read_table(warehouse, table, version).to_table())
    assert isinstance(frame, pl.DataFrame)
    return sorted(frame.select("school_code", "student_code", "mark").iter_rows())


def test_replacing_a_school_leaves_the_other_schools_untouched(tmp_path: Path) -> None:
    first = rows(("11111A", "K1", 12.0), ("11111A", "K2", 9.5), ("22222B", "K3", 14.0))
    assert replace_school_rows(tmp_path, "t", ["11111A", "22222B"], first) == 0
    assert (tmp_path / "t" / "school_code=11111A").is_dir()  # partitioned by school

    assert replace_school_rows(tmp_path, "t", ["11111A"], rows(("11111A", "K1", 13.0))) == 1
    assert content(tmp_path) == [("11111A", "K1", 13.0), ("22222B", "K3", 14.0)]


def test_versions_increase_by_one_and_an_earlier_version_reads_the_earlier_rows(
    tmp_path: Path,
) -> None:
    versions = [
        replace_school_rows(tmp_path, "t", ["11111A"], rows(("11111A", "K1", mark)))
        for mark in (10.0, 11.0, 12.0)
    ]
    assert versions == [0, 1, 2]
    assert current_version(tmp_path, "t") == 2
    assert content(tmp_path, version=0) == [("11111A", "K1", 10.0)]
    assert content(tmp_path, version=1) == [("11111A", "K1", 11.0)]
    assert content(tmp_path) == [("11111A", "K1", 12.0)]
    assert table_versions(tmp_path) == {"t": 2}
    with pytest.raises(TableMissing, match="no version 7"):
        read_table(tmp_path, "t", version=7)


def test_nothing_to_change_writes_no_version(tmp_path: Path) -> None:
    data = rows(("11111A", "K1", 12.0), ("11111A", "K2", None), ("22222B", "K3", 14.0))
    assert replace_school_rows(tmp_path, "t", ["11111A", "22222B"], data) == 0
    # the same rows in another order
    assert replace_school_rows(tmp_path, "t", ["11111A", "22222B"], data.take([2, 1, 0])) == 0
    # no school at all
    assert replace_school_rows(tmp_path, "t", [], rows()) == 0
    # an empty stream for a school that has no rows
    empty = pa.RecordBatchReader.from_batches(SCHEMA, iter([]))
    assert replace_school_rows(tmp_path, "t", ["33333C"], empty) == 0
    assert current_version(tmp_path, "t") == 0


def test_a_school_without_rows_loses_its_rows(tmp_path: Path) -> None:
    replace_school_rows(
        tmp_path, "t", ["11111A", "22222B"], rows(("11111A", "K1", 1.0), ("22222B", "K2", 2.0))
    )
    empty = pa.RecordBatchReader.from_batches(SCHEMA, iter([]))
    assert replace_school_rows(tmp_path, "t", ["11111A"], empty) == 1
    assert content(tmp_path) == [("22222B", "K2", 2.0)]


def test_rows_may_come_as_a_stream_of_batches_one_school_at_a_time(tmp_path: Path) -> None:
    def per_school():
        for code in ("11111A", "22222B", "33333C"):
            yield from rows((code, "K1", 10.0), (code, "K2", 11.0)).to_batches()

    version = replace_school_rows(
        tmp_path, "t", ["11111A", "22222B", "33333C"], per_school(), schema=SCHEMA
    )
    assert version == 0
    assert len(content(tmp_path)) == 6


def test_a_new_nullable_column_is_merged(tmp_path: Path) -> None:
    replace_school_rows(
        tmp_path, "t", ["11111A", "22222B"], rows(("11111A", "K1", 1.0), ("22222B", "K2", 2.0))
    )
    wider = SCHEMA.append(pa.field("remark", pa.string()))
    new = pa.table(
        {"school_code": ["11111A"], "student_code": ["K1"], "mark": [3.0], "remark": ["ok"]},
        schema=wider,
    )
    assert replace_school_rows(tmp_path, "t", ["11111A"], new) == 1
    table = read_table(tmp_path, "t").to_table()
    assert "remark" in table.column_names
    by_school = {row["school_code"]: row["remark"] for row in table.to_pylist()}
    assert by_school == {"11111A": "ok", "22222B": None}


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        (
            pa.schema(
                [("school_code", pa.string()), ("student_code", pa.string()), ("mark", pa.string())]
            ),
            "Column mark of table t is double in the warehouse but string",
        ),
        (
            pa.schema([("school_code", pa.string()), ("student_code", pa.string())]),
            "lack its column mark",
        ),
        (
            SCHEMA.append(pa.field("rank", pa.int32(), nullable=False)),
            "new column rank of table t is not nullable",
        ),
    ],
)
def test_other_schema_changes_are_refused(tmp_path: Path, schema: pa.Schema, message: str) -> None:
    replace_school_rows(tmp_path, "t", ["11111A"], rows(("11111A", "K1", 1.0)))
    with pytest.raises(SchemaChangeRefused, match=message):
        replace_school_rows(tmp_path, "t", ["11111A"], schema.empty_table())
    assert current_version(tmp_path, "t") == 0


def test_rows_of_a_school_not_being_replaced_are_refused_without_naming_pupils(
    tmp_path: Path,
) -> None:
    replace_school_rows(tmp_path, "t", ["11111A"], rows(("11111A", "K1", 1.0)))
    with pytest.raises(WarehouseError) as raised:
        replace_school_rows(tmp_path, "t", ["11111A"], rows(("22222B", "K9", 1.0)))
    assert "22222B" in str(raised.value) and "K9" not in str(raised.value)
    assert current_version(tmp_path, "t") == 0


def test_declared_tables_are_created_with_their_schema(tmp_path: Path) -> None:
    spec = TABLES["rooms"]
    data = pa.table(
        {
            "school_code": ["11111A"],
            "room_code": ["S01"],
            "room_name": ["القاعة 1"],
            "room_type": ["مختبر"],
            "capacity": [30],
            "submission_id": [4],
            "sheet": ["القاعات"],
            "sheet_row": [2],
        }
    ).cast(spec.schema)
    assert replace_school_rows(tmp_path, "rooms", ["11111A"], data) == 0
    stored = DeltaTable(str(tmp_path / "rooms")).schema().to_arrow()
    assert set(pa.schema(stored).names) == set(spec.names)
    assert read_table(tmp_path, "rooms").to_table().num_rows == 1


def test_reading_a_table_that_does_not_exist_says_so(tmp_path: Path) -> None:
    with pytest.raises(TableMissing, match="no table marks yet"):
        read_table(tmp_path, "marks")
    assert current_version(tmp_path, "marks") == -1
    assert table_versions(tmp_path / "nowhere") == {}


def test_compaction_merges_the_small_files_of_crowded_partitions(tmp_path: Path) -> None:
    replace_school_rows(
        tmp_path, "t", ["11111A", "22222B"], rows(("11111A", "K0", 0.0), ("22222B", "K0", 0.0))
    )
    path = str(tmp_path / "t")
    for i in range(1, 5):  # small appends pile files up in one partition
        write_deltalake(path, rows(("11111A", f"K{i}", float(i))), mode="append")
    before = content(tmp_path)
    version = current_version(tmp_path, "t")
    metrics = compact(tmp_path, "t", min_files=3)
    assert metrics["partitions"] == ["11111A"]
    assert metrics["numFilesRemoved"] == 5 and metrics["numFilesAdded"] == 1
    assert current_version(tmp_path, "t") == version + 1
    assert content(tmp_path) == before
    assert compact(tmp_path, "t", min_files=3)["partitions"] == []


def test_vacuum_deletes_files_only_old_versions_needed(tmp_path: Path) -> None:
    replace_school_rows(tmp_path, "t", ["11111A"], rows(("11111A", "K1", 1.0)))
    replace_school_rows(tmp_path, "t", ["11111A"], rows(("11111A", "K1", 2.0)))
    assert vacuum(tmp_path, "t", retain_hours=24) == []  # inside the window: kept
    deleted = vacuum(tmp_path, "t", retain_hours=0)
    assert len(deleted) == 1
    assert content(tmp_path) == [("11111A", "K1", 2.0)]


def test_a_tables_rows_at_each_version_are_those_a_reader_counts(tmp_path: Path) -> None:
    first = rows(("11111A", "K1", 12.0), ("11111A", "K2", 9.5), ("22222B", "K3", 14.0))
    replace_school_rows(tmp_path, "t", ["11111A", "22222B"], first)
    replace_school_rows(tmp_path, "t", ["11111A"], rows(("11111A", "K1", 13.0)))
    assert table_rows(tmp_path, "t") == read_table(tmp_path, "t").count_rows() == 2
    assert table_rows(tmp_path, "t", 0) == 3  # the night that published version 0 saw 3
    with pytest.raises(TableMissing):
        table_rows(tmp_path, "absent")


def test_a_table_written_by_an_earlier_codec_reads_whole_after_a_night_rewrites_a_school(
    tmp_path: Path,
) -> None:
    """The consolidated tables' files were ZSTD and are now written with the writer's codec
    (warehouse/delta.py _WRITER): a warehouse holds both after its first night with the new
    code, and every reader of the platform (pyarrow datasets: massar query; polars; DuckDB
    over the partitions' files: the evaluation) reads the table whole."""
    import duckdb
    import pyarrow.parquet as pq
    from deltalake import WriterProperties

    from warehouse.delta import partition_files, read_frame

    earlier = rows(("11111A", "K1", 12.0), ("11111A", "K2", None), ("22222B", "K3", 14.0))
    write_deltalake(
        str(tmp_path / "t"),
        earlier,
        partition_by=["school_code"],
        writer_properties=WriterProperties(compression="ZSTD"),
    )
    assert replace_school_rows(tmp_path, "t", ["22222B"], rows(("22222B", "K4", 8.5))) == 1
    files = partition_files(tmp_path, "t")
    codec = {
        code: {pq.ParquetFile(path).metadata.row_group(0).column(0).compression for path in paths}
        for code, paths in files.items()
    }
    assert codec["11111A"] == {"ZSTD"}  # left as the earlier code wrote it
    assert codec["22222B"] == {"SNAPPY"}  # the night's file: both codecs in one table
    expected = [("11111A", "K1", 12.0), ("11111A", "K2", None), ("22222B", "K4", 8.5)]
    assert content(tmp_path) == expected
    assert sorted(read_frame(tmp_path, "t").select(*SCHEMA.names).iter_rows()) == expected
    paths = [path for code in sorted(files) for path in files[code]]
    read = duckdb.sql(
        f"SELECT student_code, mark FROM read_parquet({paths!r}) ORDER BY student_code"
    ).fetchall()
    assert read == [(s, m) for _, s, m in expected]

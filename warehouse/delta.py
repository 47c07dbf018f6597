"""Writing and reading the warehouse's Delta tables (``<warehouse>/<table>/``).

Every table is partitioned by ``school_code`` (the reference table ``schools`` excepted: one
small file). A night replaces the rows of the schools whose submissions changed with ONE atomic
commit per table (``mode="overwrite"`` with a ``school_code IN (...)`` predicate): readers see
the table before or after, never half of it, and every commit is a version that can be read
again (time travel) until it leaves the retention window. docs/warehouse-policy.md is the
written policy; this module is its code.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeAlias
from urllib.parse import unquote

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
from deltalake import CommitProperties, DeltaTable, Schema, WriterProperties, write_deltalake
from deltalake.exceptions import DeltaError, TableNotFoundError

from warehouse.tables import TABLES

PARTITION = "school_code"
# Removed files and log entries are kept this long: the time-travel window (30 days).
DEFAULT_RETAIN_HOURS = 30 * 24
TABLE_CONFIGURATION = {
    "delta.logRetentionDuration": "interval 30 days",
    "delta.deletedFileRetentionDuration": "interval 30 days",
}
# A partition with at least this many data files is worth compacting.
COMPACT_MIN_FILES = 8
# Row groups of 8192 rows: the writer keeps an open row group per school partition until the
# end of the write, so smaller groups keep its memory down (about -35% on marks). Snappy, not
# ZSTD: a night writes a file per school partition and table (~1,500 on a province's first
# night) and ZSTD's cost per column chunk doubled the small tables' writes (rooms 0.066 ->
# 0.036 s of CPU, guardians 0.225 -> 0.146 s); a first night's tables -9 to -10 % of CPU, the
# files ~12 % larger, read by polars, pyarrow and DuckDB in the same time. Files written with
# ZSTD stay readable beside them (a Parquet file names its codec).
# Measured and not adopted (2026-12-06, the province's first marks write, medians of 8-10
# alternated in one process, load 4-4.3): row-group statistics only, no page index, 1.50 ->
# 1.33 then 1.42 -> 1.47 s of CPU (two rounds); no dictionary for sheet_row, mark and
# submission_id 1.50 -> 1.30 s (with row-group statistics only as well: 1.42 -> 1.35 s), for
# files twice as large (5.5 -> 10.3 MB); 32 k rows a row group 1.50 -> 1.44 s; no predicate on
# a table's first write (it replaces nothing) 1.40 -> 1.42 s through replace_school_rows. The
# Delta log's statistics are the same with each.
_WRITER = WriterProperties(compression="SNAPPY", max_row_group_size=8192)
# The evaluation's result tables, rewritten school by school at each evaluation: the fastest
# ZSTD level (about -5 % CPU on their writes, the files as small). Their column statistics
# stay: delta-rs' pyarrow datasets skip files by them, and without them filtered out rows
# that matched (the other semester's results were lost: tests/tasks/test_evaluation_write.py).
RESULT_TABLES = ("subject_results", "semester_results", "annual_results", "exam_results")
_RESULT_WRITER = WriterProperties(compression="ZSTD", compression_level=1, max_row_group_size=8192)
_CODE = re.compile(r"^[0-9A-Za-z_-]{1,40}$")

Rows: TypeAlias = pa.Table | pa.RecordBatchReader | Iterable[pa.RecordBatch]


class WarehouseError(Exception):
    """A warehouse operation that cannot be done; the message says why in one sentence."""


class SchemaChangeRefused(WarehouseError):
    """New rows whose columns differ from the table's other than by new nullable columns."""


class TableMissing(WarehouseError, LookupError):
    """The table, or the version asked for, does not exist."""


def table_path(warehouse: Path, table: str) -> Path:
    if not _CODE.match(table):
        raise ValueError(f"not a table name: {table!r}")
    return Path(warehouse) / table


def _open(warehouse: Path, table: str, version: int | None = None) -> DeltaTable | None:
    path = table_path(warehouse, table)
    if not DeltaTable.is_deltatable(str(path)):
        return None
    return DeltaTable(str(path), version=version)


def current_version(warehouse: Path, table: str) -> int:
    """The table's current version, -1 when it does not exist yet."""
    delta = _open(warehouse, table)
    return -1 if delta is None else delta.version()


# ---- writing ----------------------------------------------------------------------------------


def _school_codes(schools: Iterable[str]) -> list[str]:
    codes = sorted(set(schools))
    for code in codes:
        if not isinstance(code, str) or not _CODE.match(code):
            raise ValueError(f"not a school code: {code!r}")
    return codes


def _predicate(schools: list[str]) -> str:
    return f"{PARTITION} IN ({', '.join(repr(code) for code in schools)})"


def _delta_type(field: pa.Field) -> str:
    """The Delta type an Arrow field is stored as (string, long, double, date, ...)."""
    stored = Schema.from_arrow(pa.schema([field])).fields[0].type
    name = getattr(stored, "type", None)
    return name if isinstance(name, str) else str(stored)


def merged_schema(table: str, existing: pa.Schema, incoming: pa.Schema) -> tuple[pa.Schema, bool]:
    """The schema to write ``incoming`` rows with, and whether new columns are added.

    Policy (docs/warehouse-policy.md): a new nullable column is merged (older rows read it as
    null); a column missing from the new rows, a changed type or a new non-nullable column is
    refused: such a change needs a migration decided by a person, not a nightly write.
    """
    names = set(incoming.names)
    for field in existing:
        if field.name not in names:
            raise SchemaChangeRefused(
                f"The new rows of table {table} lack its column {field.name}; dropping a column "
                "needs a migration (docs/warehouse-policy.md), not a nightly write."
            )
        new = incoming.field(field.name)
        if _delta_type(new) != _delta_type(field):
            raise SchemaChangeRefused(
                f"Column {field.name} of table {table} is {_delta_type(field)} in the warehouse "
                f"but {_delta_type(new)} in the new rows; changing a column's type needs a "
                "migration (docs/warehouse-policy.md)."
            )
    added = [field for field in incoming if field.name not in set(existing.names)]
    for field in added:
        if not field.nullable:
            raise SchemaChangeRefused(
                f"The new column {field.name} of table {table} is not nullable; a new column "
                "must accept null, since rows written earlier have no value for it."
            )
    return pa.schema([*existing, *added]), bool(added)


def _batches(rows: Rows, schema: pa.Schema | None) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    if isinstance(rows, pa.Table):
        return rows.schema, iter(rows.to_batches())
    if isinstance(rows, pa.RecordBatchReader):
        return rows.schema, iter(rows)
    iterator: Iterator[pa.RecordBatch] = iter(rows)
    if schema is not None:
        return schema, iterator
    first = next(iterator, None)
    if first is None:
        raise ValueError("an empty iterator of rows needs its schema (schema=...)")

    def chained() -> Iterator[pa.RecordBatch]:
        yield first
        yield from iterator

    return first.schema, chained()


def _conform(
    table: str, batch: pa.RecordBatch, target: pa.Schema, allowed: pa.Array
) -> pa.RecordBatch:
    """The batch in the table's column order and types, after checking that every row
    belongs to one of the schools being replaced (the message names no pupil)."""
    if batch.num_rows and not pc.all(pc.is_in(batch.column(PARTITION), allowed)).as_py():
        strays = pc.unique(
            pc.filter(
                batch.column(PARTITION), pc.invert(pc.is_in(batch.column(PARTITION), allowed))
            )
        )
        raise WarehouseError(
            f"Rows for table {table} belong to schools {', '.join(map(str, strays.to_pylist()))} "
            "that this write does not replace."
        )
    columns = [
        batch.column(field.name).cast(field.type)
        if field.name in batch.schema.names
        else pa.nulls(batch.num_rows, field.type)
        for field in target
    ]
    return pa.RecordBatch.from_arrays(columns, schema=target)


def _current_rows(delta: DeltaTable, schools: list[str]) -> pa.Table:
    # the schools' files only: a dataset of every file costs time in proportion to the table,
    # once per write (the national evaluation writes thousands of schools, batch by batch)
    partitioned = PARTITION in delta.metadata().partition_columns
    pruned = [(PARTITION, "in", list(schools))] if partitioned and schools else None
    only = delta.to_pyarrow_dataset(file_pruning_predicate=pruned)
    return only.to_table(filter=pc.field(PARTITION).isin(pa.array(schools, pa.string())))


def _same_rows(current: pa.Table, incoming: pa.Table, target: pa.Schema) -> bool:
    """Whether two sets of rows are equal, in any order."""
    if current.num_rows != incoming.num_rows:
        return False
    if current.num_rows == 0:
        return True
    names = target.names
    left = pl.from_arrow(current.select(names).cast(target))
    right = pl.from_arrow(incoming.select(names).cast(target))
    assert isinstance(left, pl.DataFrame) and isinstance(right, pl.DataFrame)
    return left.sort(names, nulls_last=True).equals(right.sort(names, nulls_last=True))


def replace_school_rows(
    warehouse: Path,
    table: str,
    schools: Iterable[str],
    rows: Rows,
    *,
    schema: pa.Schema | None = None,
) -> int:
    """Replace every row of ``schools`` in ``table`` by ``rows``, in one atomic commit.

    ``rows`` is an Arrow table, a RecordBatchReader or an iterable of record batches (so a
    caller can produce them one school at a time); every row must belong to one of
    ``schools``, and a school without rows loses its rows. The table is created on the first
    write (partitioned by school_code unless tables.py declares it otherwise). New nullable
    columns are merged into the table's schema; any other change is refused
    (:class:`SchemaChangeRefused`). Returns the table's version after the write.

    Nothing is written (the current version is returned) when there is no school, or when an
    Arrow table holds exactly the schools' current rows, or when a stream holds no row and the
    schools have none either. A stream is not compared row by row: a caller that streams
    decides beforehand which schools changed (tasks/consolidate.py does, from submissions).
    """
    codes = _school_codes(schools)
    path = table_path(warehouse, table)
    delta = _open(warehouse, table)
    declared = TABLES.get(table)
    if (
        schema is None
        and declared is not None
        and not isinstance(rows, pa.Table | pa.RecordBatchReader)
    ):
        schema = declared.schema
    if not codes:
        return -1 if delta is None else delta.version()
    incoming, batches = _batches(rows, schema)
    if PARTITION not in incoming.names:
        raise WarehouseError(f"Rows for table {table} have no {PARTITION} column.")

    merge = False
    if delta is None:
        target = incoming
    else:
        existing = pa.schema(delta.schema().to_arrow())
        target, merge = merged_schema(table, existing, incoming)

    if delta is not None and not merge:
        if isinstance(rows, pa.Table):
            if _same_rows(_current_rows(delta, codes), rows, target):
                return delta.version()
        else:
            first = next((batch for batch in batches if batch.num_rows), None)
            if first is None and _current_rows(delta, codes).num_rows == 0:
                return delta.version()
            batches = _prepend(first, batches)

    allowed = pa.array(codes, pa.string())
    failures: list[BaseException] = []

    def conformed() -> Iterator[pa.RecordBatch]:
        # An error raised while the writer pulls rows reaches us wrapped in a DeltaError;
        # keep the original to raise it as it was (no commit happens either way).
        try:
            for batch in batches:
                yield _conform(table, batch, target, allowed)
        except BaseException as error:
            failures.append(error)
            raise

    partitioned = declared.partitioned if declared is not None else True
    try:
        write_deltalake(
            str(path),
            pa.RecordBatchReader.from_batches(target, conformed()),
            mode="overwrite",
            predicate=_predicate(codes),
            partition_by=[PARTITION] if partitioned and delta is None else None,
            schema_mode="merge" if merge else None,
            configuration=TABLE_CONFIGURATION if delta is None else None,
            writer_properties=_RESULT_WRITER if table in RESULT_TABLES else _WRITER,
            commit_properties=CommitProperties(
                custom_metadata={"massar.operation": "replace_school_rows", "massar.schools": codes}
            ),
        )
    except DeltaError:
        if failures:
            raise failures[0] from None
        raise
    return DeltaTable(str(path)).version()


def _prepend(
    first: pa.RecordBatch | None, rest: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    if first is not None:
        yield first
    yield from rest


# ---- reading ----------------------------------------------------------------------------------


def read_table(warehouse: Path, table: str, version: int | None = None) -> pads.Dataset:
    """The table as a pyarrow dataset, at its current version or at ``version`` (time travel:
    versions older than the retention window are vacuumed and cannot be read)."""
    try:
        delta = _open(warehouse, table)
        if delta is None:
            raise TableMissing(
                f"The warehouse has no table {table} yet; a consolidation writes it."
            )
        if version is not None and version != delta.version():
            latest = delta.version()
            if version < 0 or version > latest:
                raise TableMissing(
                    f"Table {table} has no version {version}; its current version is {latest}."
                )
            delta.load_as_version(version)
        return delta.to_pyarrow_dataset()
    except (DeltaError, TableNotFoundError, OSError) as error:
        raise TableMissing(
            f"Version {version} of table {table} cannot be read ({type(error).__name__}); "
            "versions older than the retention window are vacuumed."
        ) from error


def scan_table(warehouse: Path, table: str, version: int | None = None) -> pl.LazyFrame:
    """The table (at ``version``) as a polars LazyFrame: filters on ``school_code`` read only
    those schools' files, and columns not selected are not read."""
    if _open(warehouse, table, version) is None:
        raise TableMissing(f"The warehouse has no table {table} yet; a consolidation writes it.")
    return pl.scan_delta(str(table_path(warehouse, table)), version=version)


def read_frame(
    warehouse: Path, table: str, version: int | None = None, columns: list[str] | None = None
) -> pl.DataFrame:
    """The table (at ``version``; only ``columns``, when given) read whole into polars, rows in
    the order :func:`read_table` gives them. Polars' own Parquet reader: a province's marks
    (3.5 M rows) in ~0.5 s of CPU, against ~3 s through the pyarrow dataset and
    ``pl.from_arrow``. A version that cannot be read raises :class:`TableMissing`, as there."""
    try:
        scan = scan_table(warehouse, table, version)
        return (scan.select(columns) if columns is not None else scan).collect()
    except (DeltaError, TableNotFoundError, OSError) as error:
        raise TableMissing(
            f"Version {version} of table {table} cannot be read ({type(error).__name__}); "
            "versions older than the retention window are vacuumed."
        ) from error


def table_rows(warehouse: Path, table: str, version: int | None = None) -> int:
    """Rows of the table (at ``version``) from the record counts of its files in the Delta log
    (a count opening every file's footer took ~1.5 s for a province's tables); counted from
    the files when one has no count."""
    delta = _open(warehouse, table, version)
    if delta is None:
        raise TableMissing(f"The warehouse has no table {table} yet; a consolidation writes it.")
    actions = pa.table(delta.get_add_actions(flatten=True))
    if "num_records" in actions.column_names and not actions.column("num_records").null_count:
        return int(pc.sum(actions.column("num_records")).as_py() or 0)
    return int(delta.to_pyarrow_dataset().count_rows())


def partition_rows(warehouse: Path, table: str, version: int | None = None) -> dict[str, int]:
    """Rows per school partition of the table (at ``version``), from the Delta log alone:
    what a reader that goes school by school needs to size its batches."""
    delta = _open(warehouse, table, version)
    if delta is None:
        raise TableMissing(f"The warehouse has no table {table} yet; a consolidation writes it.")
    actions = pl.from_arrow(pa.table(delta.get_add_actions(flatten=True)))
    assert isinstance(actions, pl.DataFrame)
    column = f"partition.{PARTITION}"
    if column not in actions.columns or not actions.height:
        return {}
    counts = actions.group_by(column).agg(pl.col("num_records").sum()).sort(column)
    return {str(code): int(rows or 0) for code, rows in counts.iter_rows()}


def partition_files(
    warehouse: Path, table: str, version: int | None = None
) -> dict[str, list[str]]:
    """The data files of each school partition of the table (at ``version``), as paths, from
    the Delta log alone: what a reader that scans Parquet itself (DuckDB) needs."""
    delta = _open(warehouse, table, version)
    if delta is None:
        raise TableMissing(f"The warehouse has no table {table} yet; a consolidation writes it.")
    actions = pa.table(delta.get_add_actions(flatten=True))
    column = f"partition.{PARTITION}"
    if column not in actions.column_names:
        return {}
    root = table_path(warehouse, table)
    files: dict[str, list[str]] = {}
    for path, code in zip(
        actions.column("path").to_pylist(), actions.column(column).to_pylist(), strict=True
    ):
        files.setdefault(str(code), []).append(str(root / unquote(str(path))))
    return files


def table_versions(warehouse: Path) -> dict[str, int]:
    """The current version of every Delta table in the warehouse folder, by table name."""
    warehouse = Path(warehouse)
    if not warehouse.is_dir():
        return {}
    return {
        path.name: DeltaTable(str(path)).version()
        for path in sorted(warehouse.iterdir())
        if (path / "_delta_log").is_dir()
    }


# ---- maintenance ------------------------------------------------------------------------------


def compact(
    warehouse: Path,
    table: str,
    *,
    min_files: int = COMPACT_MIN_FILES,
    target_size: int | None = None,
) -> dict[str, Any]:
    """Rewrite the small files of the partitions holding at least ``min_files`` data files
    into larger ones (``optimize.compact``; one commit that changes no row). Returns the
    metrics, with ``partitions`` listing the schools compacted (empty: nothing done)."""
    delta = _open(warehouse, table)
    if delta is None:
        raise TableMissing(f"The warehouse has no table {table} yet; there is nothing to compact.")
    actions = pa.table(delta.get_add_actions(flatten=True))
    column = f"partition.{PARTITION}"
    if column in actions.column_names:
        files = pl.from_arrow(actions.select([column]))
        assert isinstance(files, pl.DataFrame)
        counts = files.group_by(column).len()
        crowded = sorted(counts.filter(pl.col("len") >= min_files).get_column(column).to_list())
        if not crowded:
            return {"partitions": [], "numFilesAdded": 0, "numFilesRemoved": 0}
        metrics = delta.optimize.compact(
            partition_filters=[(PARTITION, "in", crowded)], target_size=target_size
        )
    else:
        if actions.num_rows < min_files:
            return {"partitions": [], "numFilesAdded": 0, "numFilesRemoved": 0}
        crowded = []
        metrics = delta.optimize.compact(target_size=target_size)
    return {**metrics, "partitions": crowded}


def vacuum(warehouse: Path, table: str, retain_hours: int = DEFAULT_RETAIN_HOURS) -> list[str]:
    """Delete the files no version younger than ``retain_hours`` needs, then checkpoint the log
    and drop log entries older than the table's log retention. Versions older than the window
    can no longer be read. Returns the deleted files."""
    delta = _open(warehouse, table)
    if delta is None:
        raise TableMissing(f"The warehouse has no table {table} yet; there is nothing to vacuum.")
    deleted = delta.vacuum(
        retention_hours=retain_hours, dry_run=False, enforce_retention_duration=False
    )
    delta.create_checkpoint()
    delta.cleanup_metadata()
    return deleted


def vacuum_before(warehouse: Path, table: str, oldest_version: int) -> dict[str, int]:
    """Delete what only versions older than ``oldest_version`` need, whatever their age: the
    data files no version from ``oldest_version`` to the latest reads, and the log entries
    before it (the log is checkpointed at ``oldest_version``). That version and every later
    one stay readable; older ones no longer. The caller holds the warehouse (no writer runs:
    files removed by a commit are deleted at once). Returns counts."""
    delta = _open(warehouse, table)
    if delta is None:
        raise TableMissing(f"The warehouse has no table {table} yet; there is nothing to vacuum.")
    current = delta.version()
    oldest = max(0, min(oldest_version, current))
    deleted = delta.vacuum(
        retention_hours=0,
        dry_run=False,
        enforce_retention_duration=False,
        keep_versions=list(range(oldest, current + 1)),
    )
    path = table_path(warehouse, table)
    log = path / "_delta_log"
    if oldest and not (log / f"{oldest:020d}.checkpoint.parquet").exists():
        DeltaTable(str(path), version=oldest).create_checkpoint()
    DeltaTable(str(path)).create_checkpoint()  # loading the latest reads one file
    dropped = 0
    for entry in sorted(log.iterdir()):
        number = entry.name.split(".", 1)[0]
        if entry.is_file() and len(number) == 20 and number.isdigit() and int(number) < oldest:
            entry.unlink()
            dropped += 1
    return {"files_vacuumed": len(deleted), "log_entries_dropped": dropped}

"""How the portable dump of a control database is written and read back.

A dump is a folder: one JSON-lines file per table (``<table>.jsonl``, one JSON array per row,
in primary-key order) and ``database.json`` (migration revision, dialect, columns and row count
per table). It is how a PostgreSQL control database travels in a backup (docs/backup.md says
why not ``pg_dump``), and how a backed-up SQLite file is moved into another database.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, MetaData, select, text
from sqlalchemy.types import JSON, Date, DateTime, Integer, LargeBinary, Numeric, TypeEngine

from ground.utc import as_utc
from warehouse.backup.layout import BackupError
from warehouse.control import alembic_config, make_engine

_ROWS_PER_INSERT = 2000


def dump_database(url: str, folder: Path) -> str | None:
    """Write every table of the control database at ``url`` into ``folder``: one JSON-lines
    file per table (``<table>.jsonl``, one JSON array per row, in primary-key order) and
    ``database.json`` (migration revision, columns and row count per table), all read in one
    transaction. Returns the migration revision."""
    from alembic.runtime.migration import MigrationContext

    folder.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url)
    try:
        options = (
            {"isolation_level": "REPEATABLE READ"} if engine.dialect.name == "postgresql" else {}
        )
        with engine.connect().execution_options(**options) as connection, connection.begin():
            revision = MigrationContext.configure(connection).get_current_revision()
            metadata = MetaData()
            metadata.reflect(connection)
            tables: dict[str, Any] = {}
            for table in metadata.sorted_tables:
                if table.name == "alembic_version":
                    continue
                columns = [column.name for column in table.columns]
                order = list(table.primary_key.columns) or list(table.columns)
                result = connection.execute(
                    select(table).order_by(*order),
                    execution_options={"stream_results": True, "yield_per": 5000},
                )
                count = 0
                with (folder / f"{table.name}.jsonl").open("w", encoding="utf-8") as handle:
                    for row in result:
                        handle.write(json.dumps(list(row), ensure_ascii=False, default=_encode))
                        handle.write("\n")
                        count += 1
                tables[table.name] = {"columns": columns, "rows": count}
    finally:
        engine.dispose()
    (folder / "database.json").write_text(
        json.dumps(
            {"revision": revision, "dialect": engine.dialect.name, "tables": tables}, indent=1
        ),
        encoding="utf-8",
    )
    return revision


def load_database(folder: Path, url: str) -> None:
    """Load a dump written by :func:`dump_database` into the empty database at ``url``: the
    schema is created by the migrations up to the dump's revision, then every row goes in,
    in one transaction (PostgreSQL's id sequences are moved past the loaded ids)."""
    from alembic import command
    from alembic.util.exc import CommandError

    info = json.loads((folder / "database.json").read_text(encoding="utf-8"))
    revision = info.get("revision")
    try:
        if revision is not None:
            command.upgrade(alembic_config(url), revision)
    except CommandError as error:
        raise BackupError(
            f"The dump's control database is at migration {revision}, which this platform "
            "cannot create; restore it with the platform version that made it."
        ) from error
    engine = make_engine(url)
    try:
        metadata = MetaData()
        metadata.reflect(engine)
        with engine.begin() as connection:
            for table in metadata.sorted_tables:
                dumped = info["tables"].get(table.name)
                if dumped is None or table.name == "alembic_version":
                    continue
                columns = dumped["columns"]
                unknown = [name for name in columns if name not in table.columns]
                if unknown:
                    raise BackupError(
                        f"Table {table.name} of the dump has columns {', '.join(unknown)} that "
                        f"migration {revision} does not create; the dump is damaged."
                    )
                decoders = [_decoder(table.columns[name].type) for name in columns]
                for chunk in _chunks(folder / f"{table.name}.jsonl"):
                    connection.execute(
                        table.insert(),
                        [
                            {
                                name: decode(value) if decode else value
                                for name, decode, value in zip(columns, decoders, row, strict=True)
                            }
                            for row in chunk
                        ],
                    )
            if engine.dialect.name == "postgresql":
                _move_sequences(connection, metadata)
    finally:
        engine.dispose()


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return as_utc(value).isoformat()  # stored as UTC everywhere
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    raise TypeError(f"cannot dump a {type(value).__name__}")


def _decoder(column_type: TypeEngine[Any]) -> Callable[[Any], Any] | None:
    """How a column's dumped JSON value becomes the value to insert (None: as it is)."""
    if isinstance(column_type, DateTime):
        aware = bool(getattr(column_type, "timezone", False))

        def moment(value: Any) -> Any:
            if not isinstance(value, str):
                return value
            parsed = datetime.fromisoformat(value).astimezone(UTC)
            return parsed if aware else parsed.replace(tzinfo=None)

        return moment
    if isinstance(column_type, Date):
        return lambda v: date.fromisoformat(v) if isinstance(v, str) else v
    if isinstance(column_type, Numeric) and getattr(column_type, "asdecimal", False):
        return lambda v: Decimal(v) if isinstance(v, str) else v
    if isinstance(column_type, LargeBinary):
        return lambda v: base64.b64decode(v) if isinstance(v, str) else v
    if isinstance(column_type, JSON):
        return lambda v: v
    return None


def _chunks(path: Path) -> Iterator[list[list[Any]]]:
    chunk: list[list[Any]] = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            chunk.append(json.loads(line))
            if len(chunk) >= _ROWS_PER_INSERT:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def _move_sequences(connection: Connection, metadata: MetaData) -> None:
    for table in metadata.sorted_tables:
        keys = list(table.primary_key.columns)
        if len(keys) != 1 or not isinstance(keys[0].type, Integer):
            continue
        column = keys[0].name
        connection.execute(
            text(
                f"select setval(pg_get_serial_sequence(:table, :column), "
                f'coalesce(max("{column}"), 0) + 1, false) from "{table.name}"'
            ),
            {"table": table.name, "column": column},
        )

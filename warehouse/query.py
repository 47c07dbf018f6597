"""SQL over the warehouse: DuckDB over the Delta tables and the control side's public tables."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from sqlalchemy import select

from warehouse.control import ControlDatabase, Finding, Submission

# Control-side tables of the public contract, with their public columns in order.
CONTROL_TABLES = {
    "submissions": (
        Submission,
        (
            "submission_id",
            "school_code",
            "dataset",
            "file_name",
            "sha256",
            "state",
            "rows_read",
            "rows_accepted",
            "rows_quarantined",
            "received_at",
        ),
    ),
    "findings": (
        Finding,
        (
            "submission_id",
            "school_code",
            "file_name",
            "sheet",
            "sheet_row",
            "column_name",
            "value",
            "rule_id",
            "severity",
            "message_ar",
            "message_fr",
        ),
    ),
}


class QueryError(Exception):
    """The SQL could not run; the message says why in one sentence."""


def delta_tables(warehouse: Path) -> dict[str, Path]:
    """Delta tables present in the warehouse folder, by table name."""
    if not warehouse.is_dir():
        return {}
    return {
        path.name: path for path in sorted(warehouse.iterdir()) if (path / "_delta_log").is_dir()
    }


def control_table(database: ControlDatabase, name: str) -> pa.Table:
    model, columns = CONTROL_TABLES[name]
    with database.session() as session:
        rows = session.execute(select(*(getattr(model, c) for c in columns))).all()
    return pa.table({c: [row[i] for row in rows] for i, c in enumerate(columns)})


def run_query(
    sql: str, *, warehouse: Path, database: ControlDatabase, night_id: int | None = None
) -> pa.Table:
    """Run ``sql`` with the warehouse tables (as of the last completed night, or of
    ``night_id``: never half a night) and the control tables registered by name."""
    import duckdb
    from deltalake import DeltaTable

    from warehouse.nights import published_versions

    versions = published_versions(database, night_id)
    connection = duckdb.connect()
    try:
        lowered = sql.lower()
        for name, path in delta_tables(warehouse).items():
            if name in lowered and name in versions:
                table = DeltaTable(str(path), version=versions[name])
                connection.register(name, table.to_pyarrow_dataset())
        for name in CONTROL_TABLES:
            if name in lowered:
                connection.register(name, control_table(database, name))
        try:
            return connection.sql(sql).to_arrow_table()
        except duckdb.Error as error:
            message = str(error).splitlines()[0]
            raise QueryError(message) from error
    finally:
        connection.close()

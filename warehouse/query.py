"""SQL over the warehouse: DuckDB over the Delta tables and the control side's public tables.

Read-only by construction (issue 15): the statement is parsed by DuckDB's own parser and must be
exactly one read (a SELECT, WITH … SELECT, VALUES, DESCRIBE, SHOW, SUMMARIZE); no table function
may read a file; the connection is opened without access to files, network or extensions, the
published tables are registered, then the configuration is locked. Every table is read through
Arrow's own (C++) file system and the result is materialised before the connection closes, so no
reader thread outlives the query (a scan stopped by ``LIMIT`` crashed the process at exit).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import func, select

from schemas.campaigns import CampaignError
from warehouse.control import FINDING_DETAIL, ControlDatabase, Finding, Submission
from warehouse.coverage import COVERAGE_COLUMNS, COVERAGE_DOC, coverage_table

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
            "hold",  # "held": kept out of the warehouse until massar confirm; "confirmed"
        ),
    ),
    "findings": (
        Finding,
        ("submission_id", "school_code", "file_name", *FINDING_DETAIL),
    ),
}


# What each result and control table holds (the Delta tables of warehouse/tables.py carry their
# own description).
TABLE_DOCS = {
    "subject_results": "Subject averages per pupil × subject × semester (massar evaluate).",
    "semester_results": "Semester averages, ranks and class sizes per pupil (massar evaluate).",
    "annual_results": "Annual averages, decisions, ranks and mentions per pupil (massar evaluate).",
    "exam_results": "Exam averages and results per pupil × exam × session (massar evaluate).",
    "submissions": "Every file a school sent: state and row counts (control database).",
    "findings": "What is wrong with a submitted file, row or cell, by rule (control database).",
}
SHOW_TABLES = re.compile(r"^\s*show\s+(all\s+)?tables\s*;?\s*$", re.IGNORECASE)
DESCRIBE = re.compile(r'^\s*(?:describe|desc)\s+(?:table\s+)?"?(\w+)"?\s*;?\s*$', re.IGNORECASE)


class QueryError(Exception):
    """The SQL could not run; the message says why in one sentence."""


class QueryRefused(QueryError):
    """The SQL asks for more than reading the published tables (a write, a file, an extension,
    a setting): refused before it runs; the message says why in one sentence."""


# DuckDB's configuration for massar query: no file, network or extension, whatever the SQL.
LOCKED_DOWN = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "allow_unsigned_extensions": False,
}
# Table functions that read nothing outside the query itself.
HARMLESS_TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest"})
ONLY_READS = (
    "massar query only reads the published tables ('massar query \"show tables\"' lists them)"
)
# Why each kind of statement is refused (the statement types of DuckDB's parser).
REFUSED_STATEMENTS = {
    "COPY": "COPY reads or writes files (to keep a result, use --format csv or json and "
    "redirect it)",
    "EXPORT": "EXPORT DATABASE writes files",
    "ATTACH": "ATTACH opens another database",
    "DETACH": "DETACH changes the databases the query sees",
    "LOAD": "INSTALL and LOAD add extensions to DuckDB",
    "SET": "SET, RESET and USE change DuckDB's configuration, which is locked",
    "VARIABLE_SET": "SET VARIABLE changes the query's state",
    "PRAGMA": "PRAGMA and IMPORT DATABASE change or read DuckDB's configuration or files",
    "CALL": "CALL runs a procedure",
}
FILE_LIKE = re.compile(r"[/\\]|\.(csv|tsv|txt|json|ndjson|parquet|db|duckdb|xlsx|gz|zst)$", re.I)


def _refused(kind: str) -> QueryRefused:
    why = REFUSED_STATEMENTS.get(kind, f"{kind} statements change data or the database")
    return QueryRefused(f"{why}; {ONLY_READS}: write one SELECT (or WITH … SELECT).")


def check_read_only(sql: str) -> None:
    """Refuse, with a sentence, what is not exactly one statement that reads: judged by
    DuckDB's own parser (the statement's type), never by the text alone."""
    import duckdb

    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as error:
        raise QueryError(str(error).splitlines()[0]) from error
    except ValueError as error:  # a statement type this duckdb's Python enum does not know
        raise QueryRefused(f"This kind of statement is refused; {ONLY_READS}.") from error
    if not statements:
        raise QueryRefused("There is no statement to run: give one SELECT.")
    if len(statements) > 1:
        raise QueryRefused(
            f"Give one statement: {len(statements)} were given, and massar query runs exactly "
            "one SELECT (or WITH … SELECT)."
        )
    kind = statements[0].type.name
    if kind != "SELECT":
        raise _refused(kind)


def _table_functions(tree: object) -> Iterator[str]:
    """Names of the table functions and of the tables (``FROM 'file'``) a parsed statement
    reads, in DuckDB's serialised syntax tree."""
    if isinstance(tree, dict):
        if tree.get("type") == "TABLE_FUNCTION":
            function = tree.get("function") or {}
            yield "()" + str(function.get("function_name", "")).lower()
        elif tree.get("type") == "BASE_TABLE":
            yield str(tree.get("table_name", ""))
        for value in tree.values():
            yield from _table_functions(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from _table_functions(value)


def _check_sources(connection: Any, sql: str) -> None:
    """Refuse a SELECT that reads a file (read_csv, read_text, read_blob, read_parquet, glob,
    ``FROM 'path'`` …) or hides a statement in a string (query): each named in the sentence."""
    serialised = connection.execute("select json_serialize_sql(?)", [sql]).fetchall()[0][0]
    tree = json.loads(serialised)
    if tree.get("error"):  # a SELECT DuckDB cannot serialise (PIVOT): the lock still holds
        return
    for source in _table_functions(tree):
        if source.startswith("()"):
            name = source[2:]
            if name not in HARMLESS_TABLE_FUNCTIONS:
                raise QueryRefused(
                    f"{name}() reads from outside the published tables; {ONLY_READS}."
                )
        elif FILE_LIKE.search(source):
            raise QueryRefused(f"'{source}' names a file; {ONLY_READS}.")


@dataclass(frozen=True)
class QueryResult:
    """The rows of a query (at most the limit asked for) and how many it gave in all."""

    table: pa.Table
    total_rows: int

    @property
    def limited(self) -> bool:
        return self.total_rows > self.table.num_rows


@dataclass(frozen=True)
class QueryableTable:
    """A table ``massar query`` can read: where it comes from, its columns and size."""

    name: str
    source: str  # warehouse | control
    doc: str
    columns: tuple[tuple[str, str, str], ...]  # (name, type, description)
    rows: int


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


def _published(warehouse: Path, database: ControlDatabase, night_id: int | None) -> dict[str, Any]:
    """Name → Delta table at its published version (of the last completed night, or of
    ``night_id``): never half a night."""
    from deltalake import DeltaTable

    from warehouse.nights import published_versions

    versions = published_versions(database, night_id)
    return {
        name: DeltaTable(str(path), version=versions[name])
        for name, path in delta_tables(warehouse).items()
        if name in versions
    }


def _arrow_dataset(delta: Any) -> Any:
    """The Delta table's files at its version as an Arrow dataset read by Arrow's own local
    file system: deltalake's default is a Python file system, whose reader threads, left
    running by a scan that ``LIMIT`` stopped, crashed the interpreter at exit."""
    import pyarrow.fs as pa_fs

    root = delta.table_uri.removeprefix("file://")
    return delta.to_pyarrow_dataset(
        filesystem=pa_fs.SubTreeFileSystem(root, pa_fs.LocalFileSystem())
    )


def queryable_tables(
    warehouse: Path, database: ControlDatabase, night_id: int | None = None
) -> list[QueryableTable]:
    """Every table a query can read (the published warehouse tables, then the control
    tables), with its columns (type and description) and its number of rows."""
    from warehouse.tables import TABLES

    found = []
    for name, delta in _published(warehouse, database, night_id).items():
        declared = TABLES.get(name)
        docs = {c.name: c.doc for c in declared.columns} if declared else {}
        schema = pa.schema(delta.schema().to_arrow())
        actions = pa.table(delta.get_add_actions(flatten=True))
        rows = int(pc.sum(actions["num_records"]).as_py() or 0) if actions.num_rows else 0
        found.append(
            QueryableTable(
                name,
                "warehouse",
                declared.doc if declared else TABLE_DOCS.get(name, ""),
                tuple((f.name, str(f.type), docs.get(f.name, "")) for f in schema),
                rows,
            )
        )
    for name, (model, columns) in CONTROL_TABLES.items():
        with database.session() as session:
            rows = session.scalar(select(func.count()).select_from(model)) or 0
        types = {column.name: str(column.type) for column in model.__table__.columns}
        found.append(
            QueryableTable(
                name,
                "control",
                TABLE_DOCS[name],
                tuple((c, types.get(c, ""), "") for c in columns),
                int(rows),
            )
        )
    try:  # the home holds campaigns.toml
        owed = coverage_table(warehouse.parent, database).num_rows
    except CampaignError:  # said when the table is queried
        owed = 0
    found.append(
        QueryableTable(
            "coverage",
            "control",
            COVERAGE_DOC,
            tuple((n, str(t), doc) for n, t, doc in COVERAGE_COLUMNS),
            owed,
        )
    )
    return found


def _catalogue_answer(sql: str, tables: list[QueryableTable]) -> pa.Table | None:
    """``show tables`` and ``describe TABLE`` answered from the catalogue (with the
    columns' descriptions); None for any other statement."""
    if SHOW_TABLES.match(sql):
        return pa.table(
            {
                "table": [t.name for t in tables],
                "rows": pa.array([t.rows for t in tables], pa.int64()),
                "columns": [", ".join(c[0] for c in t.columns) for t in tables],
                "about": [t.doc for t in tables],
            }
        )
    described = DESCRIBE.match(sql)
    if described:
        wanted = described.group(1).lower()
        for t in tables:
            if t.name == wanted:
                return pa.table(
                    {
                        "column": [c[0] for c in t.columns],
                        "type": [c[1] for c in t.columns],
                        "about": [c[2] for c in t.columns],
                    }
                )
        raise QueryError(f"There is no table {described.group(1)}. {_listing(tables)}")
    return None


def _listing(tables: list[QueryableTable]) -> str:
    names = ", ".join(t.name for t in tables)
    return f"Tables you can query: {names} ('massar query \"show tables\"' lists their columns)."


def query_rows(
    sql: str,
    *,
    warehouse: Path,
    database: ControlDatabase,
    limit: int | None = None,
    night_id: int | None = None,
) -> QueryResult:
    """Run ``sql`` with the warehouse tables (as of the last completed night, or of
    ``night_id``: never half a night) and the control tables registered by name; keep at
    most ``limit`` rows (None: all) and count them all. ``show tables`` and ``describe
    TABLE`` list what can be queried. A failure is a :class:`QueryError`; an unknown table's
    names the tables there are."""
    import duckdb

    lowered = sql.lower()
    if SHOW_TABLES.match(sql) or DESCRIBE.match(sql):
        answer = _catalogue_answer(sql, queryable_tables(warehouse, database, night_id))
        assert answer is not None
        return _cut(iter(answer.to_batches()), answer.schema, limit)
    check_read_only(sql)
    published = _published(warehouse, database, night_id)
    connection = duckdb.connect(config=dict(LOCKED_DOWN))
    try:
        for name, delta in published.items():
            if name in lowered:
                connection.register(name, _arrow_dataset(delta))
        for name in CONTROL_TABLES:
            if name in lowered:
                connection.register(name, control_table(database, name))
        if "coverage" in lowered:  # derived per campaign (warehouse/coverage.py)
            try:
                connection.register("coverage", coverage_table(warehouse.parent, database))
            except CampaignError as error:
                raise QueryError(str(error)) from error
        connection.execute("set lock_configuration = true")
        try:
            _check_sources(connection, sql)
            # Materialised whole before the connection closes: no scan is left running.
            table = connection.sql(sql).to_arrow_table()
            return _cut(iter(table.to_batches()), table.schema, limit)
        except duckdb.PermissionException as error:  # the lock caught what the parser let by
            raise QueryRefused(
                f"The statement asks for files, network or extensions ({_first_line(error)}); "
                f"{ONLY_READS}."
            ) from error
        except duckdb.CatalogException as error:
            message = _first_line(error)
            if message.startswith("Catalog Error: Table with name"):
                tables = queryable_tables(warehouse, database, night_id)
                raise QueryError(f"{message} {_listing(tables)}") from error
            raise QueryError(message) from error
        except duckdb.Error as error:
            raise QueryError(_first_line(error)) from error
    finally:
        connection.close()


def _first_line(error: BaseException) -> str:
    return (str(error).splitlines() or [""])[0]


def _cut(batches: Iterator[pa.RecordBatch], schema: pa.Schema, limit: int | None) -> QueryResult:
    """The first ``limit`` rows of ``batches`` and their total count."""
    kept: list[pa.RecordBatch] = []
    held = total = 0
    for batch in batches:
        total += batch.num_rows
        if limit is None or held < limit:
            part = batch if limit is None else batch.slice(0, limit - held)
            kept.append(part)
            held += part.num_rows
    return QueryResult(pa.Table.from_batches(kept, schema=schema), total)


def run_query(
    sql: str, *, warehouse: Path, database: ControlDatabase, night_id: int | None = None
) -> pa.Table:
    """Every row of ``sql`` (see :func:`query_rows`)."""
    return query_rows(sql, warehouse=warehouse, database=database, night_id=night_id).table

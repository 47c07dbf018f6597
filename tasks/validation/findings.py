"""What a finding is: the columns of a findings frame, the placeholders' JSON, the column a
school sees, one finding per cell, and the messages rendered in Arabic and French.

A findings frame has the columns ``sheet, sheet_row, column_name, value, rule_id, severity,
params`` (``params``: a JSON object of the message's placeholders). ``value`` is always the text
the school wrote; ``column_name`` is the Arabic header of the column in the file (for marks, the
row's ``mark_column`` / ``absence_column``). Cross-record findings add ``dataset`` and
``submission_id`` (and ``school_code`` for the province's rules).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import polars as pl

from schemas.models import Field, fields
from schemas.rules import Rule, catalogue, render
from warehouse.control import FINDING_DETAIL

ROW = "_row"  # the position of a row in the validated frame (dropped before anything leaves)
# A column's polars type: a class (pl.Utf8) or an instance (pl.Datetime("us", "UTC")).
ColumnType = pl.DataType | type[pl.DataType]
FINDING_COLUMNS: dict[str, ColumnType] = {
    "sheet": pl.Utf8,
    "sheet_row": pl.Int64,
    "column_name": pl.Utf8,
    "value": pl.Utf8,
    "rule_id": pl.Utf8,
    "severity": pl.Utf8,
    "params": pl.Utf8,
}
CROSS_COLUMNS: dict[str, ColumnType] = {
    **FINDING_COLUMNS,
    "dataset": pl.Utf8,
    "submission_id": pl.Utf8,
}
FINDINGS_TABLE_COLUMNS = FINDING_DETAIL  # the control database's columns of a finding


def empty_findings(columns: Mapping[str, ColumnType] = FINDING_COLUMNS) -> pl.DataFrame:
    """A frame of no finding with these columns (a new frame each call)."""
    # Building a frame from a schema takes ~0.5 ms in Python; clearing one, microseconds. The
    # types are told apart by their text (equal types may hash apart and vice versa).
    key = tuple((name, repr(dtype)) for name, dtype in columns.items())
    frame = _EMPTY.get(key)
    if frame is None:
        frame = _EMPTY[key] = pl.DataFrame(schema=dict(columns))
    return frame.clear()


_EMPTY: dict[tuple[tuple[str, str], ...], pl.DataFrame] = {}


def one_per_cell(findings: pl.DataFrame) -> pl.DataFrame:
    """One finding per rule and cell (the first). Marks are read one row per slot, so a cell
    of the pupil's line (his code, the class) failing a rule would otherwise be reported once
    per slot, up to five times. Findings without a row are kept as they are."""
    keys = [
        name
        for name in ("submission_id", "dataset", "sheet", "sheet_row", "column_name", "rule_id")
        if name in findings.columns
    ]
    if findings.height < 2 or "sheet_row" not in keys:
        return findings
    first = pl.int_range(pl.len()).over(keys) == 0
    return findings.filter(pl.col("sheet_row").is_null() | first)


def params_expr(params: Mapping[str, pl.Expr | Any]) -> pl.Expr:
    """The message's placeholders of each row as one JSON object."""
    if not params:
        return pl.lit("{}")
    exprs = [
        (value if isinstance(value, pl.Expr) else pl.lit(value)).alias(key)
        for key, value in params.items()
    ]
    return pl.struct(exprs).struct.json_encode()


def column_name_expr(item: Field) -> pl.Expr:
    """The column a school sees: the Arabic header, or for marks the row's pair label."""
    if item.dataset == "marks" and item.name == "mark":
        return pl.coalesce(pl.col("mark_column"), pl.lit(item.header_ar))
    if item.dataset == "marks" and item.name == "absence":
        return pl.coalesce(pl.col("absence_column"), pl.lit(item.header_ar))
    return pl.lit(item.header_ar)


def finding_select(
    item: Field, rule_id: str, severity: str, params: Mapping[str, Any]
) -> list[pl.Expr]:
    """A row rule's findings at the field ``item`` (with the row's ``ROW``)."""
    return [
        pl.col(ROW),
        pl.col("sheet"),
        pl.col("sheet_row"),
        column_name_expr(item).alias("column_name"),
        pl.col(item.name).alias("value"),
        pl.lit(rule_id).alias("rule_id"),
        pl.lit(severity).alias("severity"),
        params_expr(params).alias("params"),
    ]


def cross_select(
    dataset: str,
    column: str,
    rule_id: str,
    params: Mapping[str, Any],
    submission_dtype: ColumnType,
    rules: dict[str, Rule],
) -> list[pl.Expr]:
    """A cross-record rule's findings at the ``column`` of the ``dataset``'s rows."""
    item = next(f for f in fields(dataset) if f.name == column)
    return [
        pl.col("sheet"),
        pl.col("sheet_row"),
        column_name_expr(item).alias("column_name"),
        pl.col(item.name).alias("value"),
        pl.lit(rule_id).alias("rule_id"),
        pl.lit(rules[rule_id].severity).alias("severity"),
        params_expr(params).alias("params"),
        pl.lit(dataset).alias("dataset"),
        pl.col("submission_id").cast(submission_dtype).alias("submission_id"),
    ]


def finding_rows(
    findings: pl.DataFrame, rules: dict[str, Rule] | None = None
) -> list[dict[str, Any]]:
    """One dict per finding for the control database's ``findings`` table: sheet, sheet_row,
    column_name, value, rule_id, severity, message_ar, message_fr (plus ``submission_id``,
    ``dataset`` and ``school_code`` when the findings carry them)."""
    rules = rules or catalogue()
    extra = [c for c in ("submission_id", "school_code", "dataset") if c in findings.columns]
    rows = []
    for row in findings.iter_rows(named=True):
        params = json.loads(row["params"]) if row.get("params") else {}
        message_ar, message_fr = render(row["rule_id"], params, rules)
        out = {name: row.get(name) for name in FINDINGS_TABLE_COLUMNS[:6]}
        out["message_ar"] = message_ar
        out["message_fr"] = message_fr
        for name in extra:
            out[name] = row[name]
        rows.append(out)
    return rows


def with_messages(findings: pl.DataFrame, rules: dict[str, Rule] | None = None) -> pl.DataFrame:
    """The findings frame with ``message_ar`` and ``message_fr`` columns (params dropped)."""
    rows = finding_rows(findings, rules)
    schema: dict[str, ColumnType] = {
        **{c: findings.schema[c] for c in FINDINGS_TABLE_COLUMNS[:6]},
        "message_ar": pl.Utf8,
        "message_fr": pl.Utf8,
        **{
            c: findings.schema[c]
            for c in ("submission_id", "school_code", "dataset")
            if c in findings.columns
        },
    }
    return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)

"""Row rules (R001-R010): a rule on one row of a submission, or on rows of the same file.

Every rule but R007 is a check of the dataset's pandera model (schemas/models.py builds them per
column type, each check named by its rule id); its declaration here says what its findings
fill. R007 (duplicates) compares rows of the file: its check is ``duplicate_findings``.
Declaring a row rule: its row in schemas/rules.csv, its check in schemas/models.py (or here),
its declaration below, and a failing and a passing example in tests/tasks/validation/.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from schemas import datasets as ds
from schemas.models import Field, allowed_text, expected_text, fields
from schemas.rules import Rule
from tasks.validation.declared import RowRule
from tasks.validation.findings import (
    FINDING_COLUMNS,
    ROW,
    column_name_expr,
    empty_findings,
    finding_select,
)


def _value(item: Field, school_code: str | None) -> dict[str, Any]:
    return {"value": pl.col(item.name)}


def _value_of_school(item: Field, school_code: str | None) -> dict[str, Any]:
    return {"value": pl.col(item.name), "school": school_code}


def _value_on_scale(item: Field, school_code: str | None) -> dict[str, Any]:
    return {"value": pl.col(item.name), "scale": pl.col("mark_scale").cast(pl.Int64)}


def _column(item: Field, school_code: str | None) -> dict[str, Any]:
    return {"column": column_name_expr(item)}


def _allowed(item: Field, school_code: str | None) -> dict[str, Any]:
    return {
        "value": pl.col(item.name),
        "column": column_name_expr(item),
        "allowed": allowed_text(item),
    }


def _expected(item: Field, school_code: str | None) -> dict[str, Any]:
    return {
        "value": pl.col(item.name),
        "column": column_name_expr(item),
        "expected": expected_text(item),
    }


def _nothing(item: Field, school_code: str | None) -> dict[str, Any]:
    return {}


def _repeated_rows(frame: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """Rows whose complete key occurs more than once. A sorted 64-bit hash of the key finds
    the candidates (cheap on millions of rows); the exact comparison runs on them only."""
    complete = pl.all_horizontal([pl.col(k).is_not_null() for k in keys])
    hashes = frame.select(pl.when(complete).then(pl.struct(keys).hash())).to_series()
    ordered = hashes.drop_nulls().sort()
    collided = ordered.filter(ordered == ordered.shift(1))
    if collided.len() == 0:
        return frame.clear()
    candidates = frame.filter(hashes.is_in(collided.unique().implode()))
    return candidates.filter(pl.struct(keys).is_duplicated())


def duplicate_findings(dataset: str, frame: pl.DataFrame, rules: dict[str, Rule]) -> pl.DataFrame:
    """R007: every occurrence of a key after the first (rows with a blank key part are left to
    R005)."""
    declaration = ds.DATASETS[dataset]
    by_name = {item.name: item for item in fields(dataset)}
    keys = [by_name[name].checked for name in declaration.keys if name in by_name]
    if not keys:
        return empty_findings({ROW: pl.UInt32, **FINDING_COLUMNS})
    if "submission_id" in frame.columns:  # duplicates are judged within one submission
        keys = ["submission_id", *keys]
    repeated = _repeated_rows(frame, keys)
    if repeated.height == 0:
        return empty_findings({ROW: pl.UInt32, **FINDING_COLUMNS})
    first = by_name[declaration.keys[0]]
    key_names = "، ".join(by_name[name].header_ar for name in declaration.keys if name in by_name)
    first_row = (
        pl.when(pl.col("_first_sheet") != pl.col("sheet"))
        .then(pl.format("{} ({})", pl.col("_first_row"), pl.col("_first_sheet")))
        .otherwise(pl.col("_first_row").cast(pl.Utf8))
    )
    return (
        repeated.with_columns(
            pl.col("sheet_row").first().over(keys).alias("_first_row"),
            pl.col("sheet").first().over(keys).alias("_first_sheet"),
            pl.int_range(pl.len()).over(keys).alias("_occurrence"),
        )
        .filter(pl.col("_occurrence") > 0)
        .select(
            finding_select(
                first,
                "R007",
                rules["R007"].severity,
                {"keys": key_names, "first_row": first_row},
            )
        )
    )


ROW_RULES: tuple[RowRule, ...] = (
    RowRule(rule_id="R001", placeholders=("value",), params=_value),
    RowRule(rule_id="R002", placeholders=("value", "school"), params=_value_of_school),
    RowRule(rule_id="R003", placeholders=("value", "scale"), params=_value_on_scale),
    RowRule(rule_id="R004", placeholders=("value",), params=_value),
    RowRule(rule_id="R005", placeholders=("column",), params=_column),
    RowRule(rule_id="R006", placeholders=("value", "column", "allowed"), params=_allowed),
    RowRule(rule_id="R007", placeholders=("keys", "first_row"), check=duplicate_findings),
    RowRule(rule_id="R008", placeholders=("value", "column", "expected"), params=_expected),
    RowRule(rule_id="R009", placeholders=("value", "column", "expected"), params=_expected),
    RowRule(rule_id="R010", placeholders=(), params=_nothing),
)
_BY_ID = {rule.rule_id: rule for rule in ROW_RULES}


def row_rule_params(rule_id: str, item: Field, school_code: str | None) -> dict[str, Any]:
    """The placeholders of a model check's findings at the column ``item`` (none for a rule
    without a declaration: its message shows … where a placeholder is missing)."""
    rule = _BY_ID.get(rule_id)
    if rule is None or rule.params is None:
        return {}
    return rule.params(item, school_code)

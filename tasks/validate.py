"""Validation of a school's submission and the cross-record checks (plain functions; the Prefect
tasks wrap them).

- ``validate_submission(dataset, frame, *, school_code, scale=None, reference=None)``: normalise,
  run the dataset's pandera model (schemas/models.py, checks named by rule id) with ``lazy=True``,
  add the row rules computed with polars expressions (R007 duplicates), and split the rows into
  accepted / quarantined. Contract: docs/decisions/0002-ingest-frames.md.
- ``cross_check_school(frames, *, school_code, reference=None)``: X003-X011, X013, X014 on one
  school's current picture; ``skipped_cross_rules`` says which cannot run for lack of a dataset.
- ``cross_check_province(students_by_school)``: X002.
- ``finding_rows(findings)``: rows for the control database's ``findings`` table, with the
  messages in Arabic and French rendered from schemas/rules.csv.

A findings frame has the columns ``sheet, sheet_row, column_name, value, rule_id, severity,
params`` (``params``: a JSON object of the message's placeholders). ``value`` is always the text
the school wrote; ``column_name`` is the Arabic header of the column in the file (for marks, the
row's ``mark_column`` / ``absence_column``). Cross-record findings add ``dataset`` and
``submission_id`` (and ``school_code`` for X002).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import pandera.errors as pa_errors
import polars as pl

from schemas import datasets as ds
from schemas.models import (
    DEFAULT_SCALE,
    MARK_SCALE,
    Field,
    allowed_text,
    column_types,
    expected_text,
    fields,
    is_mark,
    model,
    model_of_columns,
    row_checks,
)
from schemas.rules import Rule, catalogue, render
from schemas.text import match_key
from tasks.normalise import (
    apply_per_value,
    code_key_expr,
    ensure_normalised,
    match_key_expr,
    normalise,
    with_original_columns,
)

ROW = "_row"
FINDING_COLUMNS: dict[str, pl.DataType] = {
    "sheet": pl.Utf8,
    "sheet_row": pl.Int64,
    "column_name": pl.Utf8,
    "value": pl.Utf8,
    "rule_id": pl.Utf8,
    "severity": pl.Utf8,
    "params": pl.Utf8,
}
CROSS_COLUMNS: dict[str, pl.DataType] = {
    **FINDING_COLUMNS,
    "dataset": pl.Utf8,
    "submission_id": pl.Utf8,
}
FINDINGS_TABLE_COLUMNS = (
    "sheet",
    "sheet_row",
    "column_name",
    "value",
    "rule_id",
    "severity",
    "message_ar",
    "message_fr",
)

# The placeholders each rule's findings fill (tests/schemas/test_rules.py checks them against
# the catalogue's messages).
PARAMS: dict[str, tuple[str, ...]] = {
    "R001": ("value",),
    "R002": ("value", "school"),
    "R003": ("value", "scale"),
    "R004": ("value",),
    "R005": ("column",),
    "R006": ("value", "column", "allowed"),
    "R007": ("keys", "first_row"),
    "R008": ("value", "column", "expected"),
    "R009": ("value", "column", "expected"),
    "R010": (),
    "X002": ("value", "other_school"),
    "X003": ("value", "class_code", "other_class"),
    "X004": ("class_code", "size", "room_code", "capacity"),
    "X005": ("age", "level_code", "min_age", "max_age"),
    "X006": ("value", "day", "slot", "classes"),
    "X007": ("value", "day", "slot", "classes"),
    "X008": ("value", "slot", "class_code"),
    "X009": ("value", "programme"),
    "X010": ("value",),
    "X011": ("value",),
    "X012": ("value", "school_left", "school_kept", "date_left", "date_kept"),
    "X013": ("value", "class_code", "listed_class"),
    "X014": ("value", "class_code"),
    "X015": ("value", "other_school", "date"),
}
# Rules of the catalogue no longer raised (kept there: findings recorded with them still render).
RETIRED_RULES: dict[str, str] = {
    "X001": "an error that quarantined the marks; replaced by the queries X013 and X014",
}

# Weekday of a date (polars: Monday = 1 ... Sunday = 7) → the timetable's day label.
WEEKDAYS: tuple[str, ...] = ds.TIMETABLE.column("day").values  # Monday .. Saturday
CLASS_DATASETS = ("students", "marks", "timetable", "absences", "exam_marks")

# What each cross-record rule reads.
CROSS_RULES: dict[str, tuple[str, ...]] = {
    "X003": ("students",),
    "X004": ("students", "classes", "rooms"),
    "X005": ("students",),
    "X006": ("timetable",),
    "X007": ("timetable",),
    "X008": ("absences", "timetable"),
    "X009": ("support", "students"),
    "X010": ("classes",),
    "X011": ("students",),
    "X013": ("marks", "students"),
    "X014": ("marks", "students"),
}

# Frames from this many rows are validated with the model's columns split over threads.
_PARALLEL_ROWS = 100_000
_WORKERS = max(2, min(4, os.cpu_count() or 2))

REFERENCE_DIR = Path(__file__).resolve().parent.parent / "schemas" / "reference"


@dataclass
class Validated:
    """The outcome of validating one submission."""

    dataset: str
    accepted: pl.DataFrame
    quarantined: pl.DataFrame
    findings: pl.DataFrame
    school_code: str | None = None

    @property
    def rows_read(self) -> int:
        return self.accepted.height + self.quarantined.height

    @property
    def rows_accepted(self) -> int:
        return self.accepted.height

    @property
    def rows_quarantined(self) -> int:
        return self.quarantined.height


# ---- reference data --------------------------------------------------------------------------


@cache
def _levels_csv(path: Path) -> pl.DataFrame | None:
    if not path.is_file():
        return None
    return pl.read_csv(path, infer_schema=False)  # all text; typed below


def _levels_source(reference: Any) -> Any:
    """The levels table as given (not yet typed), see ``levels``."""
    table: Any = None
    if isinstance(reference, pl.DataFrame):
        table = reference
    elif isinstance(reference, Mapping):
        table = reference.get("levels")
    elif isinstance(reference, str | Path):
        path = Path(reference)
        table = _levels_csv(path / "levels.csv" if path.is_dir() else path)
    elif reference is not None:
        table = getattr(reference, "levels", None)
    if isinstance(table, str | Path):
        table = _levels_csv(Path(table))
    if table is None:
        table = _levels_csv(REFERENCE_DIR / "levels.csv")
    return table


@dataclass(frozen=True)
class _Levels:
    table: pl.DataFrame | None
    codes: dict[str, str]  # code or internal code → level code
    labels: dict[str, str]  # match_key of the Arabic label → level code
    scales: dict[str, int]  # level code → mark scale


# Typed levels tables and their lookups by the identity of the source table (the same
# reference, e.g. schemas/reference/levels.csv read once, is typed once).
_LEVELS_MEMO: dict[int, tuple[Any, _Levels]] = {}
_LEVELS_MEMO_SIZE = 16


def _levels_info(reference: Any = None) -> _Levels:
    source = _levels_source(reference)
    hit = _LEVELS_MEMO.get(id(source))
    if hit is not None and hit[0] is source:
        return hit[1]
    table = _typed_levels(source)
    codes, labels = _level_lookup(table)
    info = _Levels(table, codes, labels, _scale_of(table))
    if len(_LEVELS_MEMO) >= _LEVELS_MEMO_SIZE:
        _LEVELS_MEMO.pop(next(iter(_LEVELS_MEMO)))
    _LEVELS_MEMO[id(source)] = (source, info)
    return info


def levels(reference: Any = None) -> pl.DataFrame | None:
    """The levels table (level_code, cycle, mark_scale, min_age, max_age, ...), from
    ``reference`` (a DataFrame, a mapping or object with ``levels``, a path) or else from
    schemas/reference/levels.csv when it exists; None when no levels are known."""
    return _levels_info(reference).table


def _typed_levels(table: Any) -> pl.DataFrame | None:
    if table is None or "level_code" not in table.columns:
        return None
    numeric = [c for c in ("mark_scale", "min_age", "max_age") if c in table.columns]
    text = [c for c in ("level_code", "internal_code", "cycle", "label_ar") if c in table.columns]
    return table.with_columns(
        [
            pl.col(c).cast(pl.Utf8).str.strip_chars().str.to_uppercase()
            for c in text
            if c != "label_ar"
        ]
        + [pl.col(c).cast(pl.Utf8).str.strip_chars().cast(pl.Int64, strict=False) for c in numeric]
    )


def _level_lookup(table: pl.DataFrame | None) -> tuple[dict[str, str], dict[str, str]]:
    """(code or internal code → level code, match_key of the Arabic label → level code)."""
    codes: dict[str, str] = {}
    labels: dict[str, str] = {}
    if table is None:
        return codes, labels
    for row in table.iter_rows(named=True):
        code = row["level_code"]
        if not code:
            continue
        codes[code] = code
        if row.get("internal_code"):
            codes.setdefault(row["internal_code"], code)
        if row.get("label_ar"):
            labels[match_key(row["label_ar"])] = code
    return codes, labels


def _scale_of(table: pl.DataFrame | None) -> dict[str, int]:
    if table is None:
        return {}
    out = {}
    for row in table.iter_rows(named=True):
        scale = row.get("mark_scale")
        if scale is None and row.get("cycle"):
            scale = 10 if row["cycle"] == "PRIMARY" else DEFAULT_SCALE
        if scale is not None:
            out[row["level_code"]] = int(scale)
    return out


def class_level_expr(class_key: str = "class_code_key") -> pl.Expr:
    """The level code a class code starts with: 1APIC-1 → 1APIC."""
    return pl.col(class_key).str.replace(r"-\d{1,2}$", "")


def _level_code_expr(frame: pl.DataFrame, table: pl.DataFrame | None, lookup=None) -> pl.Expr:
    """Per row, the level code (of levels.csv when known) from, in order: the level_code column
    (marks: O5, a code or an internal code), the level label, the class code's prefix.
    ``lookup``: ``_level_lookup(table)`` when already known."""
    codes, labels = lookup if lookup is not None else _level_lookup(table)
    candidates = []
    if "level_code_key" in frame.columns:
        candidates.append(
            pl.col("level_code_key").replace_strict(codes, default=None, return_dtype=pl.Utf8)
        )
    if "level_label" in frame.columns and labels:
        candidates.append(
            match_key_expr(pl.col("level_label")).replace_strict(
                labels, default=None, return_dtype=pl.Utf8
            )
        )
    if "class_code_key" in frame.columns:
        prefix = class_level_expr()
        candidates.append(prefix.replace_strict(codes, default=None, return_dtype=pl.Utf8))
        candidates.append(prefix)
    if "level_code_key" in frame.columns:
        candidates.append(pl.col("level_code_key"))
    return pl.coalesce(candidates) if candidates else pl.lit(None, pl.Utf8)


def mark_scales(
    frame: pl.DataFrame, *, scale: float | None = None, reference: Any = None
) -> pl.Series:
    """Per row, the mark scale: ``scale`` if given, else the level's (levels.csv mark_scale or
    cycle), else 10 for primary level codes (``…AP`` / ``…APG``), else 20. The level comes
    from the level code (marks: O5), else the level label, else the class code's prefix."""
    if scale is not None:
        return pl.repeat(float(scale), frame.height, dtype=pl.Float64, eager=True).alias(MARK_SCALE)
    info = _levels_info(reference)
    codes, labels, scales = info.codes, info.labels, info.scales

    def known(level: pl.Expr) -> pl.Expr:
        return level.replace_strict(codes, default=None, return_dtype=pl.Utf8).replace_strict(
            scales, default=None, return_dtype=pl.Float64
        )

    def by_prefix(level: pl.Expr) -> pl.Expr:
        guess = pl.when(level.str.contains(r"^\d?APG?$")).then(10.0).otherwise(DEFAULT_SCALE)
        return pl.coalesce(known(level), guess.cast(pl.Float64))

    stages: list[tuple[str, Any]] = []
    if "level_code_key" in frame.columns:
        stages.append(("level_code_key", known))
    if "level_label" in frame.columns and labels:
        stages.append(
            (
                "level_label",
                lambda label: (
                    match_key_expr(label)
                    .replace_strict(labels, default=None, return_dtype=pl.Utf8)
                    .replace_strict(scales, default=None, return_dtype=pl.Float64)
                ),
            )
        )
    if "class_code_key" in frame.columns:
        stages.append(("class_code_key", lambda code: by_prefix(code.str.replace(r"-\d+$", ""))))
    if "level_code_key" in frame.columns:
        stages.append(("level_code_key", by_prefix))
    # Each source repeats one value per file: evaluated per distinct value, and only while
    # some rows still have no scale.
    result = pl.repeat(None, frame.height, dtype=pl.Float64, eager=True)
    for column, build in stages:
        missing = result.is_null()
        if not missing.any():
            break
        found = apply_per_value(frame.get_column(column), build).cast(pl.Float64)
        result = pl.DataFrame({"a": result, "b": found}).select(pl.coalesce("a", "b")).to_series()
    return result.fill_null(float(DEFAULT_SCALE)).alias(MARK_SCALE)


# ---- findings --------------------------------------------------------------------------------


def empty_findings(columns: Mapping[str, pl.DataType] = FINDING_COLUMNS) -> pl.DataFrame:
    return pl.DataFrame(schema=dict(columns))


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


def _params_expr(params: Mapping[str, pl.Expr | Any]) -> pl.Expr:
    if not params:
        return pl.lit("{}")
    exprs = [
        (value if isinstance(value, pl.Expr) else pl.lit(value)).alias(key)
        for key, value in params.items()
    ]
    return pl.struct(exprs).struct.json_encode()


def _column_name_expr(item: Field) -> pl.Expr:
    """The column a school sees: the Arabic header, or for marks the row's pair label."""
    if item.dataset == "marks" and item.name == "mark":
        return pl.coalesce(pl.col("mark_column"), pl.lit(item.header_ar))
    if item.dataset == "marks" and item.name == "absence":
        return pl.coalesce(pl.col("absence_column"), pl.lit(item.header_ar))
    return pl.lit(item.header_ar)


def _rule_params(rule_id: str, item: Field, school_code: str | None) -> dict[str, Any]:
    value = pl.col(item.name)
    column = _column_name_expr(item)
    if rule_id in ("R001", "R004"):
        return {"value": value}
    if rule_id == "R002":
        return {"value": value, "school": school_code}
    if rule_id == "R003":
        return {"value": value, "scale": pl.col("mark_scale").cast(pl.Int64)}
    if rule_id == "R005":
        return {"column": column}
    if rule_id == "R006":
        return {"value": value, "column": column, "allowed": allowed_text(item)}
    if rule_id in ("R008", "R009"):
        return {"value": value, "column": column, "expected": expected_text(item)}
    return {}


def _finding_select(
    item: Field, rule_id: str, severity: str, params: Mapping[str, Any]
) -> list[pl.Expr]:
    return [
        pl.col(ROW),
        pl.col("sheet"),
        pl.col("sheet_row"),
        _column_name_expr(item).alias("column_name"),
        pl.col(item.name).alias("value"),
        pl.lit(rule_id).alias("rule_id"),
        pl.lit(severity).alias("severity"),
        _params_expr(params).alias("params"),
    ]


@lru_cache(maxsize=256)
def _model_parts(
    dataset: str, school_code: str | None, parts: int, columns: tuple[str, ...] | None = None
) -> tuple:
    """The dataset's model split into ``parts`` schemas over disjoint columns with about the
    same number of checks (validated side by side on large frames); with ``columns``, each
    part keeps only those (the same parts, in the same order, as for the whole model)."""
    schema = model(dataset, school_code)
    if parts <= 1:
        groups = [list(schema.columns)]
    else:
        groups = [[] for _ in range(parts)]
        weights = [0] * parts
        by_cost = sorted(schema.columns.items(), key=lambda item: -len(item[1].checks))
        for name, column in by_cost:
            lightest = weights.index(min(weights))
            groups[lightest].append(name)
            weights[lightest] += len(column.checks) + 1
    if columns is None:
        if parts <= 1:
            return (schema,)
        return tuple(schema.select_columns(group) for group in groups if group)
    groups = [[name for name in group if name in columns] for group in groups]
    return tuple(schema.select_columns(group) for group in groups if group)


def _failure_cases(schema, frame: pl.DataFrame) -> pl.DataFrame | None:
    try:
        schema.validate(frame, lazy=True)
    except pa_errors.SchemaErrors as errors:
        return errors.failure_cases
    return None


def _fits_model(dataset: str, frame: pl.DataFrame) -> bool:
    """Every column of the model is present with its type (what pandera checks besides the
    rules; a frame that does not fit goes through pandera whole, which says why)."""
    schema = frame.schema
    return all(schema.get(name) == dtype for name, dtype in column_types(dataset).items())


@dataclass(frozen=True)
class _Precheck:
    """The model's checks (schemas.models.RowCheck, the model's order) as expressions, built
    once per dataset and school: ``cleared`` (one boolean each), ``quick`` (per row, a cheap
    sufficient condition for passing, or None) and ``fails`` (per row, exact)."""

    columns: tuple[str, ...]  # the checked column of each check
    cleared: tuple[pl.Expr, ...]
    quick: tuple[pl.Expr | None, ...]
    fails: tuple[pl.Expr, ...]


@lru_cache(maxsize=1024)
def _precheck(dataset: str, school_code: str | None) -> _Precheck:
    checks = row_checks(dataset, school_code)
    return _Precheck(
        columns=tuple(c.column for c in checks),
        cleared=tuple(c.cleared().alias(str(i)) for i, c in enumerate(checks)),
        quick=tuple(c.quick() for c in checks),
        fails=tuple((~c.passes()).alias(str(i)) for i, c in enumerate(checks)),
    )


def _uncleared(dataset: str, frame: pl.DataFrame, school_code: str | None) -> list[int]:
    """The checks (indexes in ``row_checks``) that one ``select`` of cheap sufficient
    conditions does not clear: those that may fail on some row."""
    cleared = frame.select(_precheck(dataset, school_code).cleared).row(0)
    return [i for i, ok in enumerate(cleared) if not ok]


def _failing_rows(
    dataset: str, frame: pl.DataFrame, school_code: str | None
) -> tuple[tuple[str, ...], pl.Series]:
    """The pre-check: the model's checks (schemas.models.RowCheck) as two polars ``select``.
    Returns the checked columns with a failing row and the failing rows (``ROW`` values, in
    order); nothing when every row passes. First one boolean per check (a cheap sufficient
    condition); only the checks not cleared that way are evaluated per row."""
    pre = _precheck(dataset, school_code)
    none: tuple[tuple[str, ...], pl.Series] = ((), pl.Series(ROW, [], dtype=pl.UInt32))
    todo = _uncleared(dataset, frame, school_code)
    if not todo:
        return none
    fails = frame.select(pl.col(ROW), *(pre.fails[i] for i in todo)).filter(
        pl.any_horizontal(pl.exclude(ROW))
    )
    if fails.height == 0:
        return none
    counts = fails.select(pl.exclude(ROW).sum()).row(0)
    failing = [i for i, n in zip(todo, counts, strict=True) if n]
    return tuple(dict.fromkeys(pre.columns[i] for i in failing)), fails.get_column(ROW)


def _pandera_cases(
    dataset: str, frame: pl.DataFrame, school_code: str | None
) -> pl.DataFrame | None:
    """pandera's failure cases (``column, check, index, failure_case``; ``index`` a ``ROW``
    value) of the dataset's model over the frame, or None when it validates.

    The pre-check (``_failing_rows``) finds the rows and columns where some check fails; pandera
    then validates those rows against the model's columns concerned (same checks, lazily) and
    its failure cases are the findings. A clean frame never reaches pandera. On very large
    frames pandera validates the whole frame, but only the columns whose checks the pre-check's
    first step does not clear (its own checks look closely only where a shortcut fails). A
    frame that does not fit the model's columns and types is validated whole (pandera says
    what is wrong)."""
    if not _fits_model(dataset, frame):
        return _pandera_cases_whole(dataset, frame, school_code)
    if frame.height >= _PARALLEL_ROWS:
        pre = _precheck(dataset, school_code)
        todo = _uncleared(dataset, frame, school_code)
        if not todo:
            return None
        columns = tuple(dict.fromkeys(pre.columns[i] for i in todo))
        return _run_parts(_model_parts(dataset, school_code, _WORKERS, columns), frame)
    columns, rows = _failing_rows(dataset, frame, school_code)
    if not columns:
        return None
    if rows.len() * 8 >= frame.height:
        subset = frame
    else:
        subset = frame.filter(pl.col(ROW).is_in(rows.implode()))
    cases = _failure_cases(model_of_columns(dataset, school_code, columns), subset)
    if cases is None:
        return None
    cases = cases.select("column", "check", "index", "failure_case")
    if subset is frame:
        return cases
    positions = subset.get_column(ROW)
    return cases.with_columns(
        pl.when(pl.col("index").is_not_null()).then(
            positions.gather(pl.Series(cases["index"]).fill_null(0).cast(pl.UInt32)).alias("index")
        )
    )


def _pandera_cases_whole(
    dataset: str, frame: pl.DataFrame, school_code: str | None
) -> pl.DataFrame | None:
    """pandera's failure cases of the whole model over the whole frame (the reference the
    pre-check is tested against)."""
    parts = _model_parts(dataset, school_code, _WORKERS if frame.height >= _PARALLEL_ROWS else 1)
    return _run_parts(parts, frame)


def _run_parts(parts: tuple, frame: pl.DataFrame) -> pl.DataFrame | None:
    """Failure cases of schemas over disjoint columns; several are validated side by side
    (polars releases the GIL)."""
    if len(parts) == 1:
        outcomes = [_failure_cases(parts[0], frame)]
    else:
        with ThreadPoolExecutor(max_workers=len(parts)) as pool:
            outcomes = list(pool.map(lambda schema: _failure_cases(schema, frame), parts))
    failed = [
        cases.select("column", "check", "index", "failure_case")
        for cases in outcomes
        if cases is not None
    ]
    return pl.concat(failed) if failed else None


def _pandera_findings(
    dataset: str,
    frame: pl.DataFrame,
    school_code: str | None,
    rules: dict[str, Rule],
    *,
    whole: bool = False,
) -> pl.DataFrame:
    """Run the dataset's pandera model; its failure cases as findings (with the row index).
    ``whole``: validate the whole frame with the whole model, without the pre-check."""
    empty = empty_findings({ROW: pl.UInt32, **FINDING_COLUMNS})
    run = _pandera_cases_whole if whole else _pandera_cases
    cases = run(dataset, frame, school_code)
    if cases is None:
        return empty
    unknown = cases.filter(~pl.col("check").is_in(list(rules)) | pl.col("index").is_null())
    if unknown.height:
        raise RuntimeError(
            f"{dataset}: the normalised frame does not fit its model: "
            f"{unknown.select('column', 'check', 'failure_case').head(5).rows()}"
        )
    by_checked = {item.checked: item for item in fields(dataset)}
    found = []
    for (column, rule_id), group in cases.group_by(["column", "check"], maintain_order=True):
        item = by_checked[column]
        params = _rule_params(rule_id, item, school_code)
        select = _finding_select(item, rule_id, rules[rule_id].severity, params)
        needed = dict.fromkeys(name for expr in select for name in expr.meta.root_names())
        rows = group["index"].unique().sort()
        found.append(frame.select(pl.col(name).gather(rows) for name in needed).select(select))
    return pl.concat(found) if found else empty


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


def _duplicate_findings(dataset: str, frame: pl.DataFrame, rules: dict[str, Rule]) -> pl.DataFrame:
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
            _finding_select(
                first,
                "R007",
                rules["R007"].severity,
                {"keys": key_names, "first_row": first_row},
            )
        )
    )


def validate_submission(
    dataset: str | ds.Dataset,
    frame: pl.DataFrame,
    *,
    school_code: str | None,
    scale: float | None = None,
    reference: Any = None,
) -> Validated:
    """Normalise and validate one submission's read frame (docs/decisions/0002)."""
    name = dataset.name if isinstance(dataset, ds.Dataset) else dataset
    rules = catalogue()
    school = None if school_code is None else code_key_expr_value(school_code)
    frame_in = _without(frame, ROW, MARK_SCALE)
    normalised = normalise(name, frame_in).with_row_index(ROW)
    if _has_marks(name):
        normalised = normalised.with_columns(
            mark_scales(normalised, scale=scale, reference=reference)
        )
    found = [
        part
        for part in (
            _pandera_findings(name, normalised, school, rules),
            _duplicate_findings(name, normalised, rules),
        )
        if part.height
    ]
    with_submission = "submission_id" in normalised.columns  # several submissions together
    if not found:  # the usual case: nothing to sort, split or join
        columns = dict(FINDING_COLUMNS)
        if with_submission:
            columns["submission_id"] = normalised.schema["submission_id"]
        accepted = _without(normalised, ROW)
        result = Validated(
            dataset=name,
            accepted=accepted,
            quarantined=accepted.clear(),
            findings=empty_findings(columns),
            school_code=school,
        )
    else:
        findings = pl.concat(found).sort([ROW, "rule_id"], maintain_order=True)
        blocked = findings.filter(pl.col("severity") == "error").get_column(ROW).unique()
        if blocked.len() == 0:
            accepted, quarantined = normalised, normalised.clear()
        else:
            mask = normalised.get_column(ROW).is_in(blocked.implode())
            quarantined, accepted = normalised.filter(mask), normalised.filter(~mask)
        if with_submission:
            findings = findings.join(normalised.select(ROW, "submission_id"), on=ROW, how="left")
        findings = one_per_cell(findings)
        result = Validated(
            dataset=name,
            accepted=_without(accepted, ROW),
            quarantined=_without(quarantined, ROW),
            findings=_without(findings, ROW),
            school_code=school,
        )
    if result.rows_read != frame.height:  # the contract of docs/decisions/0002
        raise RuntimeError(f"{name}: {result.rows_read} rows out for {frame.height} read")
    return result


def _without(frame: pl.DataFrame, *names: str) -> pl.DataFrame:
    """The frame without these columns (when present); cheaper than ``drop`` (no query)."""
    present = [name for name in names if name in frame.columns]
    if not present:
        return frame
    frame = frame.clone()  # shares the columns' data; the copy loses them, not ``frame``
    for name in present:
        frame.drop_in_place(name)
    return frame


@cache
def _has_marks(dataset: str) -> bool:
    return any(is_mark(item) for item in fields(dataset))


@lru_cache(maxsize=1024)
def code_key_expr_value(code: str) -> str:
    """A single code normalised like a code column (clean, upper case)."""
    return pl.select(code_key_expr(pl.lit(code, pl.Utf8))).item() or ""


# ---- cross-record rules ----------------------------------------------------------------------


def skipped_cross_rules(datasets: Iterable[str], reference: Any = None) -> dict[str, str]:
    """Cross-record rules that cannot run with these datasets (rule id → reason)."""
    present = set(datasets)
    skipped = {}
    for rule_id, needed in CROSS_RULES.items():
        missing = [name for name in needed if name not in present]
        if missing:
            skipped[rule_id] = "missing dataset: " + ", ".join(missing)
    if "X005" not in skipped:
        table = levels(reference)
        if table is None or not {"min_age", "max_age"} <= set(table.columns):
            skipped["X005"] = "no levels reference with min_age / max_age"
    if "X011" not in skipped and not ({"guardians", "exam_marks"} & present):
        skipped["X011"] = "missing dataset: guardians or exam_marks"
    if "X010" not in skipped and not (set(CLASS_DATASETS) & present):
        skipped["X010"] = "no dataset with class codes"
    return skipped


def _cross_select(
    dataset: str,
    column: str,
    rule_id: str,
    params: Mapping[str, Any],
    submission_dtype: pl.DataType,
    rules: dict[str, Rule],
) -> list[pl.Expr]:
    item = next(f for f in fields(dataset) if f.name == column)
    return [
        pl.col("sheet"),
        pl.col("sheet_row"),
        _column_name_expr(item).alias("column_name"),
        pl.col(item.name).alias("value"),
        pl.lit(rule_id).alias("rule_id"),
        pl.lit(rules[rule_id].severity).alias("severity"),
        _params_expr(params).alias("params"),
        pl.lit(dataset).alias("dataset"),
        pl.col("submission_id").cast(submission_dtype).alias("submission_id"),
    ]


def _prepare(frames: Mapping[str, pl.DataFrame]) -> tuple[dict[str, pl.DataFrame], pl.DataType]:
    prepared = {}
    dtype: pl.DataType = pl.Utf8
    for name, frame in frames.items():
        if frame is None or name not in ds.DATASETS:
            continue
        if "submission_id" in frame.columns and frame.schema["submission_id"] != pl.Null:
            dtype = frame.schema["submission_id"]
    for name, frame in frames.items():
        if frame is None or name not in ds.DATASETS:
            continue
        frame = with_original_columns(name, ensure_normalised(name, frame))
        if "submission_id" not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype).alias("submission_id"))
        prepared[name] = frame
    return prepared, dtype


def _not_enrolled(frame: pl.DataFrame, students: pl.DataFrame) -> pl.DataFrame:
    enrolled = students.select("student_code_key").drop_nulls().unique()
    return frame.filter(pl.col("student_code_key").is_not_null()).join(
        enrolled, on="student_code_key", how="anti", maintain_order="left"
    )


def cross_check_school(
    frames: Mapping[str, pl.DataFrame], *, school_code: str | None = None, reference: Any = None
) -> pl.DataFrame:
    """Cross-record findings of one school's current picture (X003-X011, X013, X014).

    ``frames`` maps a dataset name to its frame (read or normalised, with ``submission_id``).
    A rule whose datasets are missing does not run: see ``skipped_cross_rules``. X008 judges
    only classes that have at least one lesson in the timetable. ``school_code`` is the school
    whose picture this is (the frames are already that school's)."""
    rules = catalogue()
    prepared, sid = _prepare(frames)
    skipped = skipped_cross_rules(prepared, reference)
    parts: list[pl.DataFrame] = []

    def add(dataset: str, subset: pl.DataFrame, column: str, rule_id: str, params) -> None:
        if subset.height:
            parts.append(subset.select(_cross_select(dataset, column, rule_id, params, sid, rules)))

    students = prepared.get("students")
    classes = prepared.get("classes")
    timetable = prepared.get("timetable")

    if "X013" not in skipped:
        parts.extend(_marked_off_list(prepared["marks"], students, sid, rules))

    if "X003" not in skipped:
        placed = students.filter(
            pl.col("student_code_key").is_not_null() & pl.col("class_code_key").is_not_null()
        )
        classes_of = (
            placed.group_by("student_code_key")
            .agg(pl.col("class_code_key").unique(maintain_order=True).alias("_classes"))
            .filter(pl.col("_classes").list.len() > 1)
        )
        twice = placed.join(classes_of, on="student_code_key", maintain_order="left")
        other = (
            pl.col("_classes").list.set_difference(pl.concat_list("class_code_key")).list.first()
        )
        add(
            "students",
            twice,
            "student_code",
            "X003",
            {
                "value": pl.col("student_code_key"),
                "class_code": pl.col("class_code_key"),
                "other_class": other,
            },
        )

    if "X004" not in skipped:
        rooms = prepared["rooms"]
        sizes = (
            students.filter(pl.col("class_code_key").is_not_null())
            .group_by("class_code_key")
            .agg(pl.col("student_code_key").n_unique().alias("_size"))
        )
        capacity = (
            rooms.filter(pl.col("room_code_key").is_not_null())
            .group_by("room_code_key")
            .agg(pl.col("capacity_value").max().alias("_capacity"))
        )
        crowded = (
            classes.join(sizes, on="class_code_key", maintain_order="left")
            .join(capacity, on="room_code_key", maintain_order="left")
            .filter(pl.col("_size") > pl.col("_capacity"))
        )
        add(
            "classes",
            crowded,
            "room_code",  # the room assignment (or its capacity) is what to check
            "X004",
            {
                "class_code": pl.col("class_code_key"),
                "size": pl.col("_size"),
                "room_code": pl.col("room_code_key"),
                "capacity": pl.col("_capacity"),
            },
        )

    if "X005" not in skipped:
        parts.extend(_age_findings(students, classes, reference, sid, rules))

    if timetable is not None:
        for rule_id, who in (("X006", "teacher_code"), ("X007", "room_code")):
            key = f"{who}_key"
            slot_keys = [key, "day_value", "slot_value"]
            rows = timetable.filter(
                pl.all_horizontal([pl.col(k).is_not_null() for k in slot_keys])
                & pl.col("class_code_key").is_not_null()
            )
            clashes = (
                rows.group_by(slot_keys)
                .agg(pl.col("class_code_key").unique().sort().alias("_classes"))
                .filter(pl.col("_classes").list.len() > 1)
            )
            involved = rows.join(clashes, on=slot_keys, maintain_order="left")
            add(
                "timetable",
                involved,
                who,
                rule_id,
                {
                    "value": pl.col(key),
                    "day": pl.col("day_value"),
                    "slot": pl.col("slot_value"),
                    "classes": pl.col("_classes").list.join(", "),
                },
            )

    if "X008" not in skipped:
        absences = prepared["absences"]
        lessons = (
            timetable.select("class_code_key", "day_value", "slot_value").drop_nulls().unique()
        )
        timetabled = lessons.select("class_code_key").unique()
        day = (
            pl.col("date_value")
            .dt.weekday()
            .replace_strict(
                {i + 1: label for i, label in enumerate(WEEKDAYS)},
                default=None,
                return_dtype=pl.Utf8,
            )
        )
        candidates = (
            absences.filter(
                pl.col("date_value").is_not_null()
                & pl.col("slot_value").is_not_null()
                & pl.col("class_code_key").is_not_null()
            )
            .join(timetabled, on="class_code_key", how="semi", maintain_order="left")
            .with_columns(day.alias("day_value"))
        )
        no_lesson = candidates.join(
            lessons,
            on=["class_code_key", "day_value", "slot_value"],
            how="anti",
            maintain_order="left",
            nulls_equal=False,
        )
        add(
            "absences",
            no_lesson,
            "slot",  # the date is usually right; the slot is what is typed by hand
            "X008",
            {
                "value": pl.col("date_value").dt.strftime("%d/%m/%Y"),
                "slot": pl.col("slot_value"),
                "class_code": pl.col("class_code_key"),
            },
        )

    if "X009" not in skipped:
        support = prepared["support"]
        add(
            "support",
            _not_enrolled(support, students),
            "student_code",
            "X009",
            {
                "value": pl.col("student_code_key"),
                "programme": pl.coalesce(pl.col("programme_value"), pl.col("programme")),
            },
        )

    if "X010" not in skipped:
        declared = classes.select("class_code_key").drop_nulls().unique()
        for name in CLASS_DATASETS:
            frame = prepared.get(name)
            if frame is None:
                continue
            unknown = frame.filter(pl.col("class_code_key").is_not_null()).join(
                declared, on="class_code_key", how="anti", maintain_order="left"
            )
            add(name, unknown, "class_code", "X010", {"value": pl.col("class_code_key")})

    if "X011" not in skipped:
        for name in ("guardians", "exam_marks"):
            frame = prepared.get(name)
            if frame is None:
                continue
            add(
                name,
                _not_enrolled(frame, students),
                "student_code",
                "X011",
                {"value": pl.col("student_code_key")},
            )

    columns = {**CROSS_COLUMNS, "submission_id": sid}
    if not parts:
        return empty_findings(columns)
    return one_per_cell(pl.concat([p.cast(columns) for p in parts]))


def _marked_off_list(
    marks: pl.DataFrame, students: pl.DataFrame, sid: pl.DataType, rules: dict[str, Rule]
) -> list[pl.DataFrame]:
    """X013 (the pupil is listed in another class of the school) and X014 (he is not on the
    school's list): one query per pupil's row of the marks file, not one per slot. Queries,
    not errors: the marks stay accepted and are evaluated wherever the pupil's enrolment is
    (genuine lists lag behind class changes; the list, not the marks, is usually behind)."""
    listed = students.select("student_code_key", "class_code_key").drop_nulls().unique()
    outside = (
        marks.filter(
            pl.col("student_code_key").is_not_null() & pl.col("class_code_key").is_not_null()
        )
        .join(listed, on=["student_code_key", "class_code_key"], how="anti", maintain_order="left")
        .unique(subset=["submission_id", "sheet", "sheet_row"], keep="first", maintain_order=True)
    )
    if outside.height == 0:
        return []
    classes_of = listed.group_by("student_code_key").agg(
        pl.col("class_code_key").sort().str.join(", ").alias("_listed")
    )
    outside = outside.join(classes_of, on="student_code_key", how="left", maintain_order="left")
    found = []
    for rule_id, rows in (
        ("X013", outside.filter(pl.col("_listed").is_not_null())),
        ("X014", outside.filter(pl.col("_listed").is_null())),
    ):
        params = {"value": pl.col("student_code_key"), "class_code": pl.col("class_code_key")}
        if rule_id == "X013":
            params["listed_class"] = pl.col("_listed")
        if rows.height:
            found.append(
                rows.select(_cross_select("marks", "student_code", rule_id, params, sid, rules))
            )
    return found


def _age_findings(
    students: pl.DataFrame,
    classes: pl.DataFrame | None,
    reference: Any,
    sid: pl.DataType,
    rules: dict[str, Rule],
) -> list[pl.DataFrame]:
    """X005: age on 31 December of the school year's first calendar year outside the level's
    min_age..max_age (levels.csv). Level: the classes file, else the level label, else the
    class code's prefix."""
    info = _levels_info(reference)
    table = info.table
    assert table is not None
    bounds = table.select(
        pl.col("level_code").alias("_level"),
        pl.col("min_age").alias("_min"),
        pl.col("max_age").alias("_max"),
    ).unique(subset="_level")
    frame = students
    level = _level_code_expr(
        frame.drop("level_code_key", strict=False), table, (info.codes, info.labels)
    )
    if classes is not None and "level_code_key" in classes.columns:
        class_levels = (
            classes.select("class_code_key", pl.col("level_code_key").alias("_class_level"))
            .drop_nulls()
            .unique(subset="class_code_key")
        )
        frame = frame.join(class_levels, on="class_code_key", how="left", maintain_order="left")
        level = pl.coalesce(pl.col("_class_level"), level)
    year = pl.col("school_year_key").str.slice(0, 4).cast(pl.Int32, strict=False)
    age = year - pl.col("birth_date_value").dt.year()
    odd = (
        frame.with_columns(level.alias("_level"), age.alias("_age"))
        .join(bounds, on="_level", maintain_order="left")
        .filter(
            pl.col("_age").is_not_null()
            & ((pl.col("_age") < pl.col("_min")) | (pl.col("_age") > pl.col("_max")))
        )
    )
    if odd.height == 0:
        return []
    params = {
        "age": pl.col("_age"),
        "level_code": pl.col("_level"),
        "min_age": pl.col("_min"),
        "max_age": pl.col("_max"),
    }
    return [odd.select(_cross_select("students", "birth_date", "X005", params, sid, rules))]


def cross_check_province(students_by_school: Mapping[str, pl.DataFrame]) -> pl.DataFrame:
    """X002 (query): a pupil enrolled in two schools, reported on each school's row(s) with the
    other school(s) in the params. Output adds ``school_code`` to the cross-record columns."""
    rules = catalogue()
    prepared: list[pl.DataFrame] = []
    sid: pl.DataType = pl.Utf8
    for frame in students_by_school.values():
        if "submission_id" in frame.columns and frame.schema["submission_id"] != pl.Null:
            sid = frame.schema["submission_id"]
    for school, frame in students_by_school.items():
        frame = with_original_columns("students", ensure_normalised("students", frame))
        if "submission_id" not in frame.columns:
            frame = frame.with_columns(pl.lit(None, sid).alias("submission_id"))
        prepared.append(
            frame.filter(pl.col("student_code_key").is_not_null()).with_columns(
                pl.lit(school, pl.Utf8).alias("_school"),
                pl.col("submission_id").cast(sid),
            )
        )
    columns = {**CROSS_COLUMNS, "submission_id": sid, "school_code": pl.Utf8}
    if not prepared:
        return empty_findings(columns)
    keep = ["sheet", "sheet_row", "student_code", "student_code_key", "_school", "submission_id"]
    everyone = pl.concat([frame.select(keep) for frame in prepared])
    schools_of = (
        everyone.group_by("student_code_key")
        .agg(pl.col("_school").unique().sort().alias("_schools"))
        .filter(pl.col("_schools").list.len() > 1)
    )
    twice = everyone.join(schools_of, on="student_code_key", maintain_order="left")
    if twice.height == 0:
        return empty_findings(columns)
    others = pl.col("_schools").list.set_difference(pl.concat_list("_school")).list.join(", ")
    out = twice.select(
        *_cross_select(
            "students",
            "student_code",
            "X002",
            {"value": pl.col("student_code_key"), "other_school": others},
            sid,
            rules,
        ),
        pl.col("_school").alias("school_code"),
    )
    return out.cast(columns)


# ---- messages --------------------------------------------------------------------------------


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
    schema = {
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

"""Which rows of a frame break its dataset's model (schemas/models.py, pandera, one check per
rule id), fast: a pre-check of cheap polars expressions clears most checks at once; pandera then
validates only the rows and columns where something may fail (its failure cases are the
findings); on very large frames the model's columns are validated side by side in threads.

    pandera_findings(dataset, frame, school_code, rules)   the row rules' findings
    failing_rows(dataset, frame, school_code)               the pre-check alone
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import polars as pl

from schemas.models import RowCheck, column_types, fields, model, model_of_columns, row_checks
from schemas.rules import Rule
from tasks.validation.findings import FINDING_COLUMNS, ROW, empty_findings, finding_select
from tasks.validation.row_rules import row_rule_params

# Frames from this many rows are validated with the model's columns split over threads.
_PARALLEL_ROWS = 100_000
_WORKERS = max(2, min(4, os.cpu_count() or 2))


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
    import pandera.errors as pa_errors  # imported with the model (schemas/models.py: lazily)

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


def _built(checks: tuple[RowCheck, ...]) -> _Precheck:
    return _Precheck(
        columns=tuple(c.column for c in checks),
        cleared=tuple(c.cleared().alias(str(i)) for i, c in enumerate(checks)),
        quick=tuple(c.quick() for c in checks),
        fails=tuple((~c.passes()).alias(str(i)) for i, c in enumerate(checks)),
    )


# R002 (the row's school code is the submitting school's) is the one check built with the
# school's code; a school's pre-check is the dataset's, built once, with its own R002.
_SCHOOL_RULE = "R002"
_ANY_SCHOOL = "\x00"


@lru_cache(maxsize=64)
def _dataset_precheck(dataset: str) -> _Precheck:
    return _built(row_checks(dataset, _ANY_SCHOOL))


@lru_cache(maxsize=1024)
def _precheck(dataset: str, school_code: str | None) -> _Precheck:
    checks = row_checks(dataset, school_code)
    shared = _dataset_precheck(dataset)
    rules = [c.rule_id for c in checks]
    if school_code is None or [c.rule_id for c in row_checks(dataset, _ANY_SCHOOL)] != rules:
        return _built(checks)
    cleared, quick, fails = list(shared.cleared), list(shared.quick), list(shared.fails)
    for i, check in enumerate(checks):
        if check.rule_id == _SCHOOL_RULE:
            cleared[i] = check.cleared().alias(str(i))
            quick[i] = check.quick()
            fails[i] = (~check.passes()).alias(str(i))
    return _Precheck(shared.columns, tuple(cleared), tuple(quick), tuple(fails))


def _uncleared(dataset: str, frame: pl.DataFrame, school_code: str | None) -> list[int]:
    """The checks (indexes in ``row_checks``) that one ``select`` of cheap sufficient
    conditions does not clear: those that may fail on some row."""
    cleared = frame.select(_precheck(dataset, school_code).cleared).row(0)
    return [i for i, ok in enumerate(cleared) if not ok]


def failing_rows(
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

    The pre-check (``failing_rows``) finds the rows and columns where some check fails; pandera
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
    columns, rows = failing_rows(dataset, frame, school_code)
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


def pandera_findings(
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
        params = row_rule_params(rule_id, item, school_code)
        select = finding_select(item, rule_id, rules[rule_id].severity, params)
        needed = dict.fromkeys(name for expr in select for name in expr.meta.root_names())
        rows = group["index"].unique().sort()
        found.append(frame.select(pl.col(name).gather(rows) for name in needed).select(select))
    return pl.concat(found) if found else empty

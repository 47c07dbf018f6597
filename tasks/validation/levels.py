"""Which level and mark scale a row has: the levels reference (schemas/reference/levels.csv, or
one given), typed once per source table, and the level of a row from its level code, its level
label or its class code's prefix.

    levels(reference)              the typed table (level_code, cycle, mark_scale, min_age, ...)
    level_code_expr(frame, ...)    per row, the level code
    mark_scales(frame, ...)        per row, the mark scale (10 in primary, else 20)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from schemas.level_codes import LevelCodes, class_level_expr
from schemas.level_codes import level_code_expr as resolve_level_code
from schemas.models import DEFAULT_SCALE, MARK_SCALE
from schemas.reference_data import LEVELS, read_frame, reference_file
from schemas.text import match_key
from tasks.normalise import apply_per_value, match_key_expr

__all__ = ["Levels", "class_level_expr", "level_code_expr", "levels", "levels_info", "mark_scales"]


def _levels_csv(path: Path) -> pl.DataFrame | None:
    """A levels file as all text (typed below), read once (schemas/reference_data.py)."""
    return read_frame(reference_file(path.name, path.parent))


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
        table = read_frame(reference_file(LEVELS))
    return table


@dataclass(frozen=True)
class Levels:
    table: pl.DataFrame | None
    codes: dict[str, str]  # code or internal code → level code
    labels: dict[str, str]  # match_key of the Arabic label → level code
    scales: dict[str, int]  # level code → mark scale


# Typed levels tables and their lookups by the identity of the source table (the same
# reference, e.g. schemas/reference/levels.csv read once, is typed once).
_LEVELS_MEMO: dict[int, tuple[Any, Levels]] = {}
_LEVELS_MEMO_SIZE = 16


def levels_info(reference: Any = None) -> Levels:
    """The typed levels table of ``reference`` and its lookups (see ``levels``)."""
    source = _levels_source(reference)
    hit = _LEVELS_MEMO.get(id(source))
    if hit is not None and hit[0] is source:
        return hit[1]
    table = _typed_levels(source)
    codes, labels = _level_lookup(table)
    info = Levels(table, codes, labels, _scale_of(table))
    if len(_LEVELS_MEMO) >= _LEVELS_MEMO_SIZE:
        _LEVELS_MEMO.pop(next(iter(_LEVELS_MEMO)))
    _LEVELS_MEMO[id(source)] = (source, info)
    return info


def levels(reference: Any = None) -> pl.DataFrame | None:
    """The levels table (level_code, cycle, mark_scale, min_age, max_age, ...), from
    ``reference`` (a DataFrame, a mapping or object with ``levels``, a path) or else from
    schemas/reference/levels.csv when it exists; None when no levels are known."""
    return levels_info(reference).table


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


def level_code_expr(
    frame: pl.DataFrame,
    table: pl.DataFrame | None,
    lookup: tuple[dict[str, str], dict[str, str]] | None = None,
) -> pl.Expr:
    """Per row, the level code of ``table``: the resolver the warehouse uses too
    (schemas/level_codes.py), so a row has one level; null when no known level is named.
    ``lookup``: ``_level_lookup(table)`` when already known."""
    codes, labels = lookup if lookup is not None else _level_lookup(table)
    return resolve_level_code(frame, LevelCodes(codes, labels))


def mark_scales(
    frame: pl.DataFrame, *, scale: float | None = None, reference: Any = None
) -> pl.Series:
    """Per row, the mark scale: ``scale`` if given, else the level's (levels.csv mark_scale or
    cycle), else 10 for primary level codes (``…AP`` / ``…APG``), else 20. The level comes
    from the level code (marks: O5), else the level label, else the class code's prefix."""
    if scale is not None:
        return pl.repeat(float(scale), frame.height, dtype=pl.Float64, eager=True).alias(MARK_SCALE)
    info = levels_info(reference)
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

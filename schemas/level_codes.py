"""Which level a row is at: the one resolver that validation and the warehouse share, so that
a row never gets two levels.

A row's level code comes from, in order: its level code column (``level_code_key``; a marks
file's hidden O5 holds Massar's internal code, mapped here), its Arabic level label
(``level_label``), the prefix of its class code (``class_code_key``: 1APIC-1 → 1APIC). Only a
level of levels.csv is ever returned: a code the reference does not know is null, never a guess
that looks like a code (a null level is visible in the warehouse; a wrong one is not).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

import polars as pl

from schemas.reference_data import LEVELS, ReferenceFile, read_rows, reference_file
from schemas.text import match_key

CLASS_SUFFIX = r"-\d{1,2}$"  # 1APIC-1, TCSF-12: the class number after the level


@dataclass(frozen=True)
class LevelCodes:
    """What a level is known by in a levels table."""

    codes: Mapping[str, str]  # level code or Massar internal code → level code
    labels: Mapping[str, str]  # match_key of the Arabic label → level code

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, object]]) -> LevelCodes:
        """From the rows of a levels table (level_code, internal_code, label_ar)."""
        codes: dict[str, str] = {}
        labels: dict[str, str] = {}
        for row in rows:
            code = str(row.get("level_code") or "").strip().upper()
            if not code:
                continue
            codes[code] = code
            internal = str(row.get("internal_code") or "").strip().upper()
            if internal:
                codes.setdefault(internal, code)
            if row.get("label_ar"):
                labels[match_key(str(row["label_ar"]))] = code
        return cls(MappingProxyType(codes), MappingProxyType(labels))

    @classmethod
    def from_frame(cls, table: pl.DataFrame | None) -> LevelCodes:
        """From a levels table given as a frame (None: nothing known)."""
        return cls.from_rows(() if table is None else table.iter_rows(named=True))


@lru_cache(maxsize=16)
def _level_codes(file: ReferenceFile) -> LevelCodes:
    return LevelCodes.from_rows(read_rows(file))


def level_codes(folder: Path | str | None = None) -> LevelCodes:
    """The level codes of levels.csv in ``folder`` (default schemas/reference/), read once."""
    return _level_codes(reference_file(LEVELS, folder))


def class_level_expr(class_key: str = "class_code_key") -> pl.Expr:
    """The level code a class code starts with: 1APIC-1 → 1APIC (not checked against levels)."""
    return pl.col(class_key).str.replace(CLASS_SUFFIX, "")


def level_code_expr(frame: pl.DataFrame, known: LevelCodes | None = None) -> pl.Expr:
    """Per row of ``frame``, its level code of ``known`` (default: schemas/reference/levels.csv)
    from its level code, else its level label, else its class code's prefix; null when none of
    them names a known level."""
    known = level_codes() if known is None else known
    codes, labels = dict(known.codes), dict(known.labels)
    candidates: list[pl.Expr] = []
    if "level_code_key" in frame.columns:
        candidates.append(
            pl.col("level_code_key").replace_strict(codes, default=None, return_dtype=pl.Utf8)
        )
    if "level_label" in frame.columns and labels:
        # A file repeats a few labels: each distinct one is keyed once, in Python.
        distinct = frame.get_column("level_label").drop_nulls().unique().to_list()
        keyed = {text: labels.get(match_key(str(text))) for text in distinct}
        found = {text: code for text, code in keyed.items() if code}
        if found:
            candidates.append(
                pl.col("level_label").replace_strict(found, default=None, return_dtype=pl.Utf8)
            )
    if "class_code_key" in frame.columns:
        candidates.append(
            class_level_expr().replace_strict(codes, default=None, return_dtype=pl.Utf8)
        )
    return pl.coalesce(candidates) if candidates else pl.lit(None, pl.Utf8)

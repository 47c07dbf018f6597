"""Shared pieces of the school-file readers: the rejection, the result, limits, cell rendering.

Internal module: import the public names from `connectors.school_files`.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field
from decimal import Decimal

import polars as pl

from schemas.text import label_key

# Safety limits (F006), checked before a workbook is parsed.
MAX_FILE_BYTES = 100 * 1024 * 1024
MAX_UNCOMPRESSED_BYTES = 200 * 1024 * 1024
MAX_ZIP_ENTRIES = 1_000
MAX_COMPRESSION_RATIO = 100
# The ratio limit applies to entries that inflate beyond this size: a 20 kB styles.xml made of
# repeated tags may legitimately compress 150:1, a decompression bomb is big by definition.
RATIO_MIN_BYTES = 1024 * 1024
MAX_COLUMNS = 200
MAX_ROWS = 200_000
# Rows × columns of one sheet: each cell becomes a Python object, keep a sheet under ~1 GB.
MAX_CELLS = 5_000_000
MAX_NAME_BYTES = 255


class FileRejected(Exception):
    """A whole file refused with a file-level rule (F001-F008 of schemas/rules.csv).

    `detail` is a short technical phrase inserted into the catalogue's sentence; `column` is the
    missing header label for F008; `value` the offending value (e.g. the school code for F004).
    """

    def __init__(
        self,
        rule_id: str,
        detail: str = "",
        *,
        column: str | None = None,
        value: str | None = None,
    ) -> None:
        super().__init__(f"{rule_id}: {detail}" if detail else rule_id)
        self.rule_id = rule_id
        self.detail = detail
        self.column = column
        self.value = value


@dataclass
class ReadResult:
    """What a reader hands to validation (docs/decisions/0002-ingest-frames.md)."""

    dataset: str
    frame: pl.DataFrame
    rows_read: int
    source_format: str  # "xls", "xlsx", "csv"
    encoding: str | None = None  # CSV only: "utf-8", "utf-8-sig", "cp1256", "utf-16"
    sheets: list[str] = field(default_factory=list)  # sheets the rows came from


key = functools.lru_cache(maxsize=1 << 16)(label_key)
"""label_key memoised: the same labels recur in every file of a province."""


def render(value: object) -> str | None:
    """A cell as the original text the school sees: numbers shortest, dates dd/mm/yyyy."""
    t = type(value)
    if t is str:
        return value if value.strip() else None  # type: ignore[union-attr]
    if t is float:
        if value.is_integer() and abs(value) < 1e16:  # type: ignore[union-attr]
            return str(int(value))  # type: ignore[call-overload]
        text = repr(value)
        if "e" in text or "E" in text:
            if text in ("inf", "-inf", "nan"):
                return text
            text = format(Decimal(text), "f")
        return text
    if t is int:
        return str(value)
    if t is bool:
        return "TRUE" if value else "FALSE"
    if t is dt.date:
        return f"{value.day:02d}/{value.month:02d}/{value.year:04d}"  # type: ignore[attr-defined]
    if t is dt.datetime:
        d = value
        text = f"{d.day:02d}/{d.month:02d}/{d.year:04d}"  # type: ignore[attr-defined]
        if d.hour or d.minute or d.second:  # type: ignore[attr-defined]
            text += f" {d.hour:02d}:{d.minute:02d}:{d.second:02d}"  # type: ignore[attr-defined]
        return text
    if t is dt.time:
        return value.strftime("%H:%M:%S")  # type: ignore[attr-defined]
    if value is None:
        return None
    text = str(value)
    return text if text.strip() else None


def build_frame(
    columns: dict[str, list], int_columns: tuple[str, ...] = ("sheet_row",)
) -> pl.DataFrame:
    """A frame of Utf8 columns (and Int64 `sheet_row`) from column lists (one Series per list:
    about twice as fast as a dict with a schema for the small frames of school files)."""
    return pl.DataFrame(
        [
            pl.Series(name, values, dtype=pl.Int64 if name in int_columns else pl.Utf8)
            for name, values in columns.items()
        ]
    )

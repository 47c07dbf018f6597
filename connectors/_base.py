"""Shared pieces of the school-file readers: the rejection, the result, limits, cell rendering.

Internal module: import the public names from `connectors.school_files`.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import chain
from typing import TYPE_CHECKING, Any

import polars as pl

from schemas.text import label_key

if TYPE_CHECKING:
    from connectors.massar_layout import ReadFinding, SheetLayout

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
    # Massar layouts: how each sheet was placed (metadata with its cells, header rows, slot
    # columns), and the reader's own findings (queries such as F010, F011; file-level).
    layouts: list[SheetLayout] = field(default_factory=list)
    findings: list[ReadFinding] = field(default_factory=list)


key = functools.lru_cache(maxsize=1 << 16)(label_key)
"""label_key memoised: the same labels recur in every file of a province."""


def render(value: object) -> str | None:
    """A cell as the original text the school sees: numbers shortest, dates dd/mm/yyyy."""
    t = type(value)
    if t is str:
        return value if value.strip() else None  # type: ignore[union-attr]
    if t is float:
        # repr is the shortest text; an integral float below 1e16 reads "12.0" (12 shown).
        text = repr(value)
        if text.endswith(".0"):
            return text[:-2] if text != "-0.0" else "0"
        if "e" in text:
            return format(Decimal(text), "f")
        return text  # a fraction, inf, -inf, nan
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


def render_all(values: Sequence[object]) -> list[str | None]:
    """`[render(v) for v in values]`, for a column of cells: the common columns (all empty,
    all text, numbers and empty cells) with a few C-level passes, numbers through a memo (marks,
    codes and ids recur from one file of a class to the next)."""
    types = set(map(type, values))
    if types == _STR:
        empty = values.count("")
        if empty == len(values):
            return [None] * empty
        if not any(map(str.isspace, values)):  # type: ignore[arg-type]
            # "" → None, other text as is
            return list(map(_EMPTY.get, values, values)) if empty else list(values)  # type: ignore[arg-type]
    elif types <= _STR_FLOAT:
        empty = values.count("") if str in types else 0
        texts = list(map(_FLOAT_TEXT.get, values))  # type: ignore[arg-type]
        if texts.count(None) == empty:  # every number known, and no text but ""
            return texts
    return [
        (v if v.strip() else None)  # type: ignore[attr-defined]
        if (t := type(v)) is str
        else _FLOAT_TEXT.get(v) or _render_float(v)  # type: ignore[arg-type]
        if t is float
        else render(v)
        for v in values
    ]


_EMPTY: dict[str, None] = {"": None}
_STR = {str}
_STR_FLOAT = {str, float}
_FLOAT_TEXT: dict[float, str] = {}
"""render() of the floats met so far (only floats: 1 == 1.0 == True as dict keys)."""


def _render_float(value: float) -> str:
    text = render(value)
    assert text is not None
    if len(_FLOAT_TEXT) >= 1 << 16:
        _FLOAT_TEXT.clear()
    _FLOAT_TEXT[value] = text
    return text


def is_blank(row: Sequence[object]) -> bool:
    """True when every cell of the row renders as None (empty, None or blank text)."""
    if row.count("") == len(row):
        return True
    for cell in row:
        if cell is None or cell == "":
            continue
        if render(cell) is not None:
            return False
    return True


# ------------------------------------------------------------------------------------ frames
# Frames are built through polars' native constructors (`PySeries.new_str`, `new_opt_i64`,
# `new_from_index`, `PyDataFrame.gather`): the public `pl.Series(...)` spends ~10 µs per column
# inspecting the values, which for the 26 columns of a NotesCC frame costs as much as parsing
# the workbook. They are checked once at import against the public API, which is used instead
# if they are missing or differ (another polars version).

_PyDataFrame: Any = None
_PySeries: Any = None


def _public_frame(columns: dict[str, list], int_columns: tuple[str, ...]) -> pl.DataFrame:
    return pl.DataFrame(
        [
            pl.Series(name, values, dtype=pl.Int64 if name in int_columns else pl.Utf8)
            for name, values in columns.items()
        ]
    )


def _native_frame(columns: dict[str, list], int_columns: tuple[str, ...]) -> pl.DataFrame:
    new_str, new_int = _PySeries.new_str, _PySeries.new_opt_i64
    return pl.DataFrame._from_pydf(
        _PyDataFrame(
            [
                (new_int if name in int_columns else new_str)(name, values, True)
                for name, values in columns.items()
            ]
        )
    )


def build_frame(
    columns: dict[str, list], int_columns: tuple[str, ...] = ("sheet_row",)
) -> pl.DataFrame:
    """A frame of Utf8 columns (and Int64 `sheet_row`) from column lists: values are `str` or
    None (Utf8), int or None (Int64)."""
    if _NATIVE:
        try:
            return _native_frame(columns, int_columns)
        except Exception:  # an unexpected value type: the public API decides
            pass
    return _public_frame(columns, int_columns)


class Grid:
    """Columns of a frame whose rows are `outer` × `inner` (e.g. pupils × mark slots, pupil
    major), each column given at its natural grain (see `grid_frame`)."""

    def __init__(self, outer: int, inner: int) -> None:
        self.outer, self.inner = outer, inner
        self.columns: dict[str, tuple[str, Any]] = {}

    def per_outer(self, name: str, values: list) -> None:
        """One value per outer row (`outer` values), repeated for each of its inner rows."""
        self.columns[name] = ("outer", values)

    def per_inner(self, name: str, values: list) -> None:
        """One value per inner row (`inner` values), the same for every outer row."""
        self.columns[name] = ("inner", values)

    def per_row(self, name: str, values: list) -> None:
        """One value per row (`outer * inner` values)."""
        self.columns[name] = ("row", values)

    def constant(self, name: str, value: str | None) -> None:
        self.columns[name] = ("constant", value)

    def lists(self) -> dict[str, list]:
        """The columns as plain lists of `outer * inner` values."""
        outer, inner = self.outer, self.inner
        out: dict[str, list] = {}
        for name, (kind, values) in self.columns.items():
            if kind == "outer":
                out[name] = (
                    list(values)
                    if inner == 1
                    else list(chain.from_iterable(zip(*[values] * inner, strict=True)))
                )
            elif kind == "inner":
                out[name] = list(values) * outer
            elif kind == "row":
                out[name] = list(values)
            else:
                out[name] = [values] * (outer * inner)
        return out


def grid_frame(grid: Grid, int_columns: tuple[str, ...] = ("sheet_row",)) -> pl.DataFrame:
    """The frame of `grid`: the same as `build_frame(grid.lists())`, without building the long
    lists in Python."""
    if _NATIVE:
        try:
            return _native_grid_frame(grid, int_columns)
        except Exception:  # an unexpected value type: the public API decides
            pass
    return _public_frame(grid.lists(), int_columns)


def _native_grid_frame(grid: Grid, int_columns: tuple[str, ...]) -> pl.DataFrame:
    new_str, new_int = _PySeries.new_str, _PySeries.new_opt_i64
    outer, inner = grid.outer, grid.inner
    total = outer * inner
    series: dict[str, Any] = {}
    per_outer = []
    for name, (kind, values) in grid.columns.items():
        new = new_int if name in int_columns else new_str
        if kind == "outer":
            per_outer.append(new(name, values, True))
        elif kind == "inner":
            series[name] = new(name, values * outer, True)
        elif kind == "row":
            series[name] = new(name, values, True)
        else:
            series[name] = new(name, [values], True).new_from_index(0, total)
    if per_outer:
        frame = _PyDataFrame(per_outer)
        if inner != 1:
            index = range(outer)
            frame = frame.gather(list(chain.from_iterable(zip(*[index] * inner, strict=True))))
        for column in frame.get_columns():
            series[column.name()] = column
    return pl.DataFrame._from_pydf(_PyDataFrame([series[name] for name in grid.columns]))


def _native_constructors() -> bool:
    """Whether this polars offers the native constructors and they give what the public API
    gives (checked once at import)."""
    global _PyDataFrame, _PySeries
    try:
        from polars._plr import PyDataFrame, PySeries  # type: ignore[attr-defined]

        _PyDataFrame, _PySeries = PyDataFrame, PySeries
        for probe in (
            {"sheet_row": [1, None, 3], "a": ["x", None, "é"], "b": [None, None, None]},
            {"sheet_row": [], "a": []},
        ):
            native = _native_frame(probe, ("sheet_row",))
            public = _public_frame(probe, ("sheet_row",))
            if native.schema != public.schema or not native.equals(public, null_equal=True):
                return False
        for outer, inner in ((3, 2), (2, 1), (0, 2), (1, 3)):
            grid = Grid(outer, inner)
            grid.per_outer("sheet_row", list(range(1, outer + 1)))
            grid.per_row("mark", [f"{i}" if i % 2 else None for i in range(outer * inner)])
            grid.per_inner("slot", [f"s{j}" for j in range(inner)])
            grid.constant("school", "x")
            grid.constant("teacher", None)
            grid.per_outer("name", [None if i == 1 else f"é{i}" for i in range(outer)])
            native = _native_grid_frame(grid, ("sheet_row",))
            public = _public_frame(grid.lists(), ("sheet_row",))
            if native.schema != public.schema or not native.equals(public, null_equal=True):
                return False
        return True
    except Exception:  # any failure: keep the public constructors
        return False


_NATIVE = _native_constructors()

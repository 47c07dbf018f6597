"""How column lists become the read frame: Utf8 columns and an Int64 `sheet_row`
(`build_frame`), or a NotesCC pupil × slot `Grid` expanded without long Python lists
(`grid_frame`).

Frames are built through polars' native constructors (`PySeries.new_str`, `new_opt_i64`,
`new_from_index`, `PyDataFrame.gather`): the public `pl.Series(...)` spends ~10 µs per column
inspecting the values, which for the 26 columns of a NotesCC frame costs as much as parsing
the workbook. They are checked once at import against the public API, which is used instead
if they are missing or differ (another polars version).
"""

from __future__ import annotations

from itertools import chain
from typing import Any

import polars as pl

Columns = dict[str, list[Any]]
"""Column name → values (str or None; int or None for `sheet_row`), in frame order."""

_PyDataFrame: Any = None
_PySeries: Any = None
_REPEATED: dict[tuple[Any, ...], Any] = {}
"""The repeated columns of grid frames (per inner row, constant) and gather indices made so far."""
_REPEATED_SIZE = 1 << 12


def _public_frame(columns: Columns, int_columns: tuple[str, ...]) -> pl.DataFrame:
    return pl.DataFrame(
        [
            pl.Series(name, values, dtype=pl.Int64 if name in int_columns else pl.Utf8)
            for name, values in columns.items()
        ]
    )


def _native_frame(columns: Columns, int_columns: tuple[str, ...]) -> pl.DataFrame:
    new_str, new_int = _PySeries.new_str, _PySeries.new_opt_i64
    return pl.DataFrame._from_pydf(
        _PyDataFrame(
            [
                (new_int if name in int_columns else new_str)(name, values, True)
                for name, values in columns.items()
            ]
        )
    )


def build_frame(columns: Columns, int_columns: tuple[str, ...] = ("sheet_row",)) -> pl.DataFrame:
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

    def per_outer(self, name: str, values: list[Any]) -> None:
        """One value per outer row (`outer` values), repeated for each of its inner rows."""
        self.columns[name] = ("outer", values)

    def per_inner(self, name: str, values: list[Any]) -> None:
        """One value per inner row (`inner` values), the same for every outer row."""
        self.columns[name] = ("inner", values)

    def per_row(self, name: str, values: list[Any]) -> None:
        """One value per row (`outer * inner` values)."""
        self.columns[name] = ("row", values)

    def constant(self, name: str, value: str | None) -> None:
        self.columns[name] = ("constant", value)

    def lists(self) -> Columns:
        """The columns as plain lists of `outer * inner` values."""
        outer, inner = self.outer, self.inner
        out: Columns = {}
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
    per_outer: list[Any] = []
    for name, (kind, values) in grid.columns.items():
        new = new_int if name in int_columns else new_str
        if kind == "outer":
            per_outer.append(new(name, values, True))
        elif kind == "row":
            series[name] = new(name, values, True)
        else:
            # Slot labels and a class's metadata recur from one file to the next: their
            # repeated columns are made once (polars series are immutable, safely shared).
            memo = (name, new, kind, tuple(values) if kind == "inner" else values, total)
            column = _REPEATED.get(memo)
            if column is None:
                if kind == "inner":
                    column = new(name, values * outer, True)
                else:
                    column = new(name, [values], True).new_from_index(0, total)
                if len(_REPEATED) >= _REPEATED_SIZE:
                    _REPEATED.clear()
                _REPEATED[memo] = column
            series[name] = column
    if per_outer and inner != 1:
        # Each column gathered on its own: a frame's gather hands the columns to polars' thread
        # pool (two context switches a file, milliseconds of waiting on a busy machine).
        rows = _REPEATED.get((outer, inner))
        if rows is None:
            index = range(outer)
            rows = _PySeries.new_opt_u32(
                "", list(chain.from_iterable(zip(*[index] * inner, strict=True))), True
            )
            _REPEATED[(outer, inner)] = rows
        per_outer = [column.gather_with_series(rows) for column in per_outer]
    for column in per_outer:
        series[column.name()] = column
    return pl.DataFrame._from_pydf(_PyDataFrame([series[name] for name in grid.columns]))


def _native_constructors() -> bool:
    """Whether this polars offers the native constructors and they give what the public API
    gives (checked once at import)."""
    global _PyDataFrame, _PySeries
    try:
        from polars._plr import PyDataFrame, PySeries  # type: ignore[attr-defined]

        _PyDataFrame, _PySeries = PyDataFrame, PySeries
        probes: tuple[Columns, ...] = (
            {"sheet_row": [1, None, 3], "a": ["x", None, "é"], "b": [None, None, None]},
            {"sheet_row": [], "a": []},
        )
        for probe in probes:
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

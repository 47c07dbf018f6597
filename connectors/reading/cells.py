"""How a cell reads: as the text the school sees (`render`), as a label (`key`), by its Excel
address (`cell_address`); and when a row counts as blank.

A sheet's rows come as python-calamine gives them (`Rows`): rows[0] is Excel row 1, column 0
is A; a cell is "", a str, a float, an int, a bool, a date, a datetime or a time.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from decimal import Decimal
from itertools import compress
from typing import Any

from schemas.text import label_key

Rows = list[list[Any]]
"""A sheet's cells, row by row, at their Excel positions."""


def _label_key(text: str) -> str:
    """`label_key`, ASCII text without the passes that cannot change it: no invisible mark,
    tatweel, Arabic digit, haraka or letter variant, NFKD and NFC leave ASCII as it is, and
    casefold is lower there; what remains is whitespace collapsed, case and trailing colon.
    A NotesCC technical row's identifier is new in every file (~11 us through label_key)."""
    if text.isascii():
        return " ".join(text.split()).lower().rstrip(":： ").strip()
    return label_key(text)


key = functools.lru_cache(maxsize=1 << 16)(_label_key)
"""label_key memoised: the same labels recur in every file of a province."""


def render(value: Any) -> str | None:
    """A cell as the original text the school sees: numbers shortest, dates dd/mm/yyyy."""
    t = type(value)
    if t is str:
        return value if value.strip() else None
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
        return f"{value.day:02d}/{value.month:02d}/{value.year:04d}"
    if t is dt.datetime:
        d = value
        text = f"{d.day:02d}/{d.month:02d}/{d.year:04d}"
        if d.hour or d.minute or d.second:
            text += f" {d.hour:02d}:{d.minute:02d}:{d.second:02d}"
        return text
    if t is dt.time:
        return dt.time.strftime(value, "%H:%M:%S")
    if value is None:
        return None
    text = str(value)
    return text if text.strip() else None


def render_all(values: Sequence[Any]) -> list[str | None]:
    """`[render(v) for v in values]`, for a column of cells: the common columns (all empty,
    all text, numbers and empty cells) with a few C-level passes, numbers through a memo (marks,
    codes and ids recur from one file of a class to the next)."""
    # An empty column (a NotesCC sheet's absences and remarks, mostly) by one count of its ""
    # cells (compared by identity: python-calamine gives the one empty str), before its types.
    empty = values.count("")
    if empty == len(values):
        return [None] * empty
    types = set(map(type, values))
    if types == _STR:
        if not any(map(str.isspace, values)):
            # "" → None, other text as is
            return list(map(_EMPTY.get, values, values)) if empty else list(values)
    elif types <= _STR_FLOAT:
        texts = list(map(_FLOAT_TEXT.get, values))
        if texts.count(None) == empty:  # every number known, and no text but ""
            return texts
    return [
        (v if v.strip() else None)
        if (t := type(v)) is str
        else _FLOAT_TEXT.get(v) or _render_float(v)
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


def row_index(cells: Sequence[object]) -> dict[str, int]:
    """The label keys of a row's text cells and the position of each key's first cell (shared
    between equal rows: read it, never change it).

    Remembered by the row's cells (`row_facts`): the rows above a header (titles, labels, a
    class's metadata) recur from one file of a school to the next (9 calls in 10 on a generated
    province)."""
    if cells.count("") == len(cells):  # an empty row: no memo lookup
        return NO_KEYS
    return row_facts(cells).index


NO_KEYS: dict[str, int] = {}
"""The label keys of an empty row (shared: read it, never change it)."""


def _index_of(cells: Sequence[object]) -> dict[str, int]:
    index: dict[str, int] = {}
    for i, cell in compress(enumerate(cells), cells):  # "" (and other falsy cells) skipped
        if type(cell) is str and cell.strip():
            k = key(cell)
            if k not in index:
                index[k] = i
    return index


class RowFacts:
    """What the steps of a read learn of a row's cells: its label keys (`index`, see
    `row_index`) and what a layout's steps note of it (`notes`: a NotesCC row's subject token,
    a layout's metadata label cells), each made once for equal rows.

    Facts are of the row's text cells and of which of its cells are filled, the same for equal
    rows whatever the type of their numbers (1.0 == 1 == True as keys): a step whose result
    depends on how a number renders must not note it here."""

    __slots__ = ("index", "notes")

    def __init__(self, cells: Sequence[object]) -> None:
        self.index = _index_of(cells)
        self.notes: dict[object, Any] = {}


_FACTS: dict[tuple[object, ...], RowFacts] = {}
_FACTS_SIZE = 1 << 13


def row_facts(cells: Sequence[object]) -> RowFacts:
    """The facts of a row, remembered by its cells (a row with an unhashable cell, not from
    python-calamine, gets facts of its own)."""
    try:
        cells_key = tuple(cells)
        facts = _FACTS.get(cells_key)
    except TypeError:
        return RowFacts(cells)
    if facts is None:
        if len(_FACTS) >= _FACTS_SIZE:
            _FACTS.clear()
        facts = _FACTS[cells_key] = RowFacts(cells)
    return facts


class SheetRows(dict[int, RowFacts | None]):
    """A sheet's rows with each row's facts looked up once for every step of its read (layout
    detection, NotesCC's technical row, the metadata): one memo lookup a row instead of one a
    step (the lookup hashes and compares every cell of the row). `sheet_rows[r]` is the facts
    of row `r`, None for an empty row (every cell ""); a dict, so that a row looked up already
    costs a subscript."""

    __slots__ = ("rows",)

    def __init__(self, rows: Sequence[Sequence[object]]) -> None:
        super().__init__()
        self.rows = rows

    def __missing__(self, r: int) -> RowFacts | None:
        row = self.rows[r]
        facts = self[r] = None if row.count("") == len(row) else row_facts(row)
        return facts


@functools.lru_cache(maxsize=1 << 10)  # ~40 calls a NotesCC file, on a few dozen columns
def column_letter(index: int) -> str:
    """0-based column index → Excel letters (0 → A, 26 → AA)."""
    out = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        out = chr(65 + rem) + out
    return out


@functools.lru_cache(maxsize=1 << 14)  # ~30 calls a NotesCC file, on the same few hundred cells
def cell_address(row: int, column: int) -> str:
    """0-based (row, column) → "C6"."""
    return f"{column_letter(column)}{row + 1}"

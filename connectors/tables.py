"""Datasets the platform defines as plain tables: CSV (UTF-8, UTF-8 BOM, Windows-1256) or an
XLSX sheet with the Arabic header labels of `schemas.datasets` in its first row."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import compress

import polars as pl

from connectors import _base
from connectors._base import FileRejected, build_frame, is_blank, key, render
from schemas.datasets import DATASETS, SCHOOL_CODE, Dataset
from schemas.text import clean_text

TABLE_DATASETS: tuple[Dataset, ...] = tuple(d for d in DATASETS.values() if d.layout == "table")
_TABLE_KEYS = {d.name: tuple(key(c.header_ar) for c in d.columns) for d in TABLE_DATASETS}
_ANY_TABLE_KEY = frozenset(k for keys in _TABLE_KEYS.values() for k in keys)

# How many leading rows may precede the header (blank lines, a title) in a table.
HEADER_SCAN_ROWS = 10
# A partial match names the dataset (then F008) when this share of its required labels is there.
PARTIAL_SHARE = 0.6
PARTIAL_MIN = 3

_SCHOOL_CODE_RE = re.compile(SCHOOL_CODE)


@dataclass(frozen=True)
class TableMatch:
    """The dataset a header row belongs to and where each declared column sits."""

    dataset: Dataset
    positions: dict[str, int]  # column name → index in the row; absent optional columns left out
    missing: tuple[str, ...] = ()  # Arabic labels of required columns not found (partial match)

    @property
    def complete(self) -> bool:
        return not self.missing


def row_index(cells: Sequence[object]) -> dict[str, int]:
    """The label keys of a row's text cells and the position of each key's first cell."""
    index: dict[str, int] = {}
    for i, cell in compress(enumerate(cells), cells):  # "" (and other falsy cells) skipped
        if type(cell) is str and cell.strip():
            k = key(cell)
            if k not in index:
                index[k] = i
    return index


def match_table_header(cells: Sequence[object]) -> TableMatch | None:
    """Match a header row against every table dataset's `headers_ar` (label_key comparison).

    Returns the complete match with the most labels found (ties: the dataset with the fewest
    declared columns left unmatched), else the best partial match when it is clear enough to
    name the dataset (its `missing` labels then give F008), else None.
    """
    return match_table_index(row_index(cells))


def match_table_index(index: dict[str, int]) -> TableMatch | None:
    """`match_table_header` on a row's `row_index`."""
    if len(_ANY_TABLE_KEY.intersection(index)) < PARTIAL_MIN:
        return None
    best: tuple[tuple, TableMatch] | None = None
    best_partial: tuple[tuple, TableMatch] | None = None
    for dataset in TABLE_DATASETS:
        keys = _TABLE_KEYS[dataset.name]
        pairs = zip(dataset.columns, keys, strict=True)
        positions = {c.name: index[k] for c, k in pairs if k in index}
        missing = tuple(
            c.header_ar for c in dataset.columns if c.required and c.name not in positions
        )
        found = len(positions)
        rank = (found, found / len(keys))
        match = TableMatch(dataset, positions, missing)
        if not missing:
            if best is None or rank > best[0]:
                best = (rank, match)
        else:
            required = sum(1 for c in dataset.columns if c.required)
            got = required - len(missing)
            prank = (got / required, found)
            if (
                got >= PARTIAL_MIN
                and got / required >= PARTIAL_SHARE
                and (best_partial is None or prank > best_partial[0])
            ):
                best_partial = (prank, match)
    if best is not None:
        return best[1]
    return best_partial[1] if best_partial is not None else None


def find_table_header(
    rows: Sequence[Sequence[object]], index_of: Callable[[int], dict[str, int]] | None = None
) -> tuple[int, TableMatch] | None:
    """The first row (among the first non-empty ones) that matches a table dataset completely,
    else the first partial match. `index_of(r)` may give `row_index(rows[r])` from a cache."""
    partial: tuple[int, TableMatch] | None = None
    seen = 0
    for r, row in enumerate(rows):
        if is_blank(row):
            continue
        match = match_table_index(index_of(r) if index_of is not None else row_index(row))
        if match is not None:
            if match.complete:
                return r, match
            if partial is None:
                partial = (r, match)
        seen += 1
        if seen >= HEADER_SCAN_ROWS:
            break
    return partial


def require_complete(match: TableMatch, where: str) -> None:
    """F008 naming the first required label missing from the header (`where`: its place)."""
    if match.missing:
        raise FileRejected("F008", where, column=match.missing[0])


def table_columns(
    match: TableMatch,
    rows: Sequence[Sequence[object]],
    first_row: int,
    row_numbers: Sequence[int],
    sheet: str,
    out: dict[str, list],
) -> None:
    """Append the data rows `rows[first_row:]` to the column lists `out` (rendering cells)."""
    names = [c.name for c in match.dataset.columns]
    wanted = [(n, match.positions.get(n)) for n in names]
    sheets = out["sheet"]
    sheet_rows = out["sheet_row"]
    lists = [(out[n], p) for n, p in wanted]
    for row, number in zip(rows[first_row:], row_numbers[first_row:], strict=True):
        if is_blank(row):
            continue
        width = len(row)
        sheets.append(sheet)
        sheet_rows.append(number)
        for values, p in lists:
            values.append(render(row[p]) if p is not None and p < width else None)


def empty_columns(dataset: Dataset) -> dict[str, list]:
    out: dict[str, list] = {"sheet": [], "sheet_row": []}
    for c in dataset.columns:
        out[c.name] = []
    return out


def check_school_codes(frame: pl.DataFrame, school_code: str) -> None:
    """F004 when every school code of the table belongs to one or more other schools.

    A file mixing the submitting school's code with others is left to row validation (R002);
    so is a column of values that look like no school code at all (R008)."""
    if "school_code" not in frame.columns:
        return
    mine = clean_text(school_code).upper()
    codes = [clean_text(v).upper() for v in frame["school_code"].drop_nulls().to_list()]
    codes = [c for c in codes if c]
    if not codes or mine in codes:
        return
    plausible = Counter(c for c in codes if _SCHOOL_CODE_RE.match(c))
    if plausible:
        value = plausible.most_common(1)[0][0]
        raise FileRejected("F004", f"school_code {value}", column="رمز المؤسسة", value=value)


# ---------------------------------------------------------------------------------------- CSV

# C0 control characters other than tab, LF and CR: their share tells binary content.
_CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 13))
_HTML_MARKERS = (b"<html", b"<!doctype", b"<?xml", b"<table", b"<head", b"<body")


def decode_csv(data: bytes) -> tuple[str, str]:
    """The text of a CSV file and the encoding used: UTF-16 by BOM, UTF-8 (with or without BOM)
    strictly, else Windows-1256. Raises F001 for HTML or binary content."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as exc:
            raise FileRejected("F001", "invalid UTF-16 text") from exc
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(_HTML_MARKERS) or b"<html" in head[:1024]:
        raise FileRejected("F001", "HTML page, not CSV")
    sample = data[:65536]
    if b"\x00" in sample:
        raise FileRejected("F001", "binary content, not CSV")
    controls = len(sample) - len(sample.translate(None, _CONTROL_BYTES))
    if controls > max(8, len(sample) // 100):
        raise FileRejected("F001", "binary content, not CSV")
    if data.startswith(b"\xef\xbb\xbf"):
        try:
            return data.decode("utf-8-sig"), "utf-8-sig"
        except UnicodeDecodeError as exc:
            raise FileRejected("F001", "invalid UTF-8 after BOM") from exc
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("cp1256"), "cp1256"


def sniff_delimiter(text: str) -> str:
    """`,` `;` or tab, whichever occurs most on the first non-empty line (outside quotes)."""
    line = _first_line(text)
    if line is not None:
        unquoted = _QUOTED_RE.sub("", line)
        counts = {d: unquoted.count(d) for d in (",", ";", "\t")}
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] else ","
    return ","


_QUOTED_RE = re.compile(r'"[^"]*"')


def _first_line(text: str) -> str | None:
    """The first non-blank line of `text.splitlines()`, splitting only a growing prefix."""
    size = 4096
    while True:
        head = text[:size]
        lines = head.splitlines()
        if len(head) < len(text):
            lines = lines[:-1]  # may be cut by the prefix
        for line in lines:
            if line.strip():
                return line
        if len(head) == len(text):
            return None
        size *= 4


def read_csv(
    data: bytes, *, school_code: str, allow_empty: bool = True
) -> tuple[Dataset, pl.DataFrame, str]:
    """A CSV submission as (dataset, frame, encoding). A header without data lines is an empty
    declaration (e.g. no discipline incident) unless `allow_empty` is false (then F005)."""
    text, encoding = decode_csv(data)
    if not text.strip():
        raise FileRejected("F005", "no content")
    delimiter = sniff_delimiter(text)
    try:
        records = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as exc:
        raise FileRejected("F001", f"CSV syntax error ({exc})") from exc
    # The header is the first non-empty record; it counts as line 1.
    start = 0
    while start < len(records) and not any(c.strip() for c in records[start]):
        start += 1
    records = records[start:]
    if not records:
        raise FileRejected("F005", "no content")
    if len(records) > _base.MAX_ROWS:
        raise FileRejected("F006", f"{len(records)} lines > {_base.MAX_ROWS}")
    found = find_table_header(records[:1])
    if found is None:
        raise FileRejected("F003", "CSV header matches no dataset")
    _, match = found
    require_complete(match, "line 1")
    out = empty_columns(match.dataset)
    table_columns(match, records, 1, range(1, len(records) + 1), "", out)
    frame = build_frame(out)
    if frame.height == 0 and not allow_empty:
        raise FileRejected("F005", "header without data rows")
    check_school_codes(frame, school_code)
    return match.dataset, frame, encoding

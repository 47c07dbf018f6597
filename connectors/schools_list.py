"""Reading the directorate's list of schools (CSV or XLSX) as it is written: the header row is
found by the labels of schemas/schools.py, every value is kept as text with its sheet and row.

    >>> listed = read_school_list(Path("etablissements.xlsx"))
    >>> listed.headers["cycle"], listed.rows[0]["sheet_row"]
    ('السلك', 2)

A file that cannot be read (F001), holds no school (F005) or lacks a required column (F008) is
refused with :class:`FileRejected`; the values are checked by tasks/schools.py.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.reading.cells import render
from connectors.reading.csv_text import decode_csv, sniff_delimiter
from connectors.reading.read_result import FileRejected
from connectors.reading.workbook_loading import load_sheets
from connectors.reading.workbook_safety import check_zip
from schemas.schools import COLUMNS
from schemas.text import clean_text, label_key

MAX_BYTES = 20 * 2**20  # a province's list is a few hundred rows
HEADER_SEARCH_ROWS = 20  # a title or a date may stand above the header row
_LABELS = {label_key(label): column.name for column in COLUMNS for label in column.labels}


@dataclass(frozen=True)
class SchoolList:
    """The rows of the list: each a dict of the declared columns found (text or None) plus
    ``sheet`` and ``sheet_row`` (1-based, as the officer sees it); ``headers`` maps each
    column found to its label as written in the file."""

    rows: list[dict[str, Any]]
    headers: dict[str, str]
    sheet: str
    file_format: str


def _header(rows: list[list[Any]]) -> tuple[int, dict[str, int], dict[str, str]] | None:
    """The first row holding the school code's label: (index, column → position, labels)."""
    for index, row in enumerate(rows[:HEADER_SEARCH_ROWS]):
        positions: dict[str, int] = {}
        labels: dict[str, str] = {}
        for position, cell in enumerate(row):
            text = render(cell)
            name = _LABELS.get(label_key(text)) if text else None
            if name and name not in positions:
                positions[name], labels[name] = position, clean_text(text or "")
        if "school_code" in positions:
            return index, positions, labels
    return None


def _table(rows: list[list[Any]], sheet: str, file_format: str) -> SchoolList | None:
    found = _header(rows)
    if found is None:
        return None
    index, positions, labels = found
    missing = [c for c in COLUMNS if c.header_required and c.name not in positions]
    if missing:
        raise FileRejected("F008", f"header row {index + 1}", column=missing[0].header_ar)
    out = []
    for number, row in enumerate(rows[index + 1 :], start=index + 2):
        values = {
            name: (clean_text(render(row[at]) or "") or None) if at < len(row) else None
            for name, at in positions.items()
        }
        if any(values.values()):
            out.append({"sheet": sheet, "sheet_row": number, **values})
    if not out:
        raise FileRejected("F005", "header without school rows")
    return SchoolList(out, labels, sheet, file_format)


def read_school_list(path: Path) -> SchoolList:
    """The list in ``path`` (CSV in UTF-8, UTF-8 with BOM, UTF-16 or Windows-1256, any of
    , ; or tab; or an XLSX/XLS workbook: the first sheet with a header row)."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise FileRejected("F001", error.strerror or type(error).__name__) from error
    if not data.strip():
        raise FileRejected("F005", "0 bytes")
    if len(data) > MAX_BYTES:
        raise FileRejected("F006", f"{len(data) // 2**20} MB")
    if data.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0")):
        if data.startswith(b"PK"):
            check_zip(data)
        sheets = load_sheets(data)
        for name, rows in sheets:
            listed = _table([list(row) for row in rows], name, "xlsx")
            if listed is not None:
                return listed
        if not any(any(render(c) for c in row) for _, rows in sheets for row in rows):
            raise FileRejected("F005", "workbook without any cell")
    else:
        text, _ = decode_csv(data)
        lines = csv.reader(io.StringIO(text), delimiter=sniff_delimiter(text))
        listed = _table([list(line) for line in lines], "", "csv")
        if listed is not None:
            return listed
    raise FileRejected("F008", "no header row", column=COLUMNS[0].header_ar)

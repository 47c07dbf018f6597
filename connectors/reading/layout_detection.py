"""Which layout a workbook's sheets hold and where each one's header row is, from the labels
only: a table of schemas/datasets.py (Arabic headers), a ListEleve class sheet or a NotesCC
marks sheet. A workbook whose sheets match nothing is F003 (F005 without any cell); a sheet
with a Massar layout's labels but no header row is F009, never skipped silently."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from connectors.reading.cells import NO_KEYS, Rows, SheetRows, key, row_index
from connectors.reading.metadata_location import LIST_FIELDS, NOTES_FIELDS
from connectors.reading.read_result import FileRejected
from connectors.reading.table_headers import TableMatch, find_table_header
from connectors.reading.workbook_loading import load_sheets
from schemas.datasets import MARK_LABEL, MARK_SLOTS, MARKS, STUDENTS

# Massar layouts: how far down the header may sit.
HEADER_SCAN_ROWS = 60

# ListEleve's header row: the pupil code's label and at least three more of its labels.
_LE_CODE = key(STUDENTS.column("student_code").header_ar)
_LE_KEY_SET = frozenset(key(c.header_ar) for c in STUDENTS.columns)
# NotesCC's first header row: the pupil code's label or a slot's, النقطة in the row below.
_NOTES_CODE = key(MARKS.column("student_code").header_ar)
_SLOT_KEYS = frozenset(key(label) for _, label, _ in MARK_SLOTS)
_MARK_KEY = key(MARK_LABEL)
# Labels only one of the two Massar layouts carries above its header (titles included).
_LE_ONLY = frozenset(key(f.label) for f in LIST_FIELDS) - {key(f.label) for f in NOTES_FIELDS}
_NOTES_ONLY = frozenset(key(f.label) for f in NOTES_FIELDS) - {key(f.label) for f in LIST_FIELDS}
_LE_MARKERS = _LE_ONLY | {key(STUDENTS.title_ar)}
_NOTES_MARKERS = _NOTES_ONLY | {key(MARKS.title_ar)}


@dataclass(frozen=True)
class SheetKind:
    """The dataset a sheet holds and its header row (a table's: with its columns)."""

    dataset: str
    header_row: int  # 0-based index in rows
    table: TableMatch | None = None
    # The sheet's rows with the facts classifying them looked up, for the layout's reader.
    rows: SheetRows | None = field(default=None, compare=False, repr=False)


class FoundSheet(NamedTuple):
    """A sheet of the workbook's dataset, ready for that layout's reader."""

    name: str
    rows: Rows
    kind: SheetKind


def dataset_sheets(data: bytes) -> list[FoundSheet]:
    """The sheets of the workbook's dataset (the first matching sheet's, in workbook order)
    with their header rows. F005 for a workbook without any cell, F003 when no sheet matches,
    F009 when a sheet carries a Massar layout's labels but no header row."""
    kinds: list[SheetKind | None] = []

    def classified(rows: Rows) -> bool:
        kind = classify_sheet(rows)
        kinds.append(kind)
        # A NotesCC workbook holds one marks sheet: its Data sheet need not be parsed.
        return kind is not None and kind.dataset == MARKS.name

    sheets = load_sheets(data, stop=classified)
    matched = [
        FoundSheet(name, rows, kind)
        for (name, rows), kind in zip(sheets, kinds, strict=True)
        if kind is not None
    ]
    dataset = matched[0].kind.dataset if matched else None
    if dataset in (None, STUDENTS.name, MARKS.name):
        for (name, rows), kind in zip(sheets, kinds, strict=True):
            if kind is None and (rejected := unplaced_layout(name, rows)) is not None:
                raise rejected
    if not matched:
        if not any(any(c not in ("", None) for c in row) for _, rows in sheets for row in rows):
            raise FileRejected("F005", "workbook without any cell")
        raise FileRejected("F003", "no sheet matches a known layout")
    return [m for m in matched if m.kind.dataset == dataset]


def classify_sheet(rows: Rows) -> SheetKind | None:
    """The dataset a sheet holds and its header row, from labels only: a complete table
    header first, then (row by row) NotesCC's or ListEleve's, then an incomplete table header
    (its missing columns are F008 for the table reader)."""
    rows_facts = SheetRows(rows)

    def keys_of(r: int) -> dict[str, int]:
        facts = rows_facts[r]
        return NO_KEYS if facts is None else facts.index

    found = find_table_header(rows, keys_of)
    if found is not None and found[1].complete:
        return SheetKind(found[1].dataset.name, found[0], found[1], rows_facts)
    limit = min(len(rows), HEADER_SCAN_ROWS)
    for r in range(limit):
        keys = keys_of(r)
        if not keys:
            continue
        has_slot = not _SLOT_KEYS.isdisjoint(keys)
        if _NOTES_CODE in keys or has_slot:
            marks_below = r + 1 < len(rows) and _MARK_KEY in keys_of(r + 1)
            # The code with a slot or النقطة below; or a slot over النقطة (code column lost: F008)
            if marks_below or (has_slot and _NOTES_CODE in keys):
                return SheetKind(MARKS.name, r, rows=rows_facts)
        if _LE_CODE in keys and len(_LE_KEY_SET.intersection(keys)) >= 4:
            return SheetKind(STUDENTS.name, r, rows=rows_facts)
    if found is not None:  # a table header missing required columns: F008 later
        return SheetKind(found[1].dataset.name, found[0], found[1], rows_facts)
    return None


def unplaced_layout(sheet: str, rows: Rows) -> FileRejected | None:
    """F009 for a sheet that carries a Massar layout's metadata labels but no header row the
    readers recognise (e.g. its header row deleted), naming the header label looked for and
    the rows scanned; None for a sheet that does not look like a Massar export."""
    limit = min(len(rows), HEADER_SCAN_ROWS)
    keys: set[str] = set()
    for row in rows[:limit]:
        keys.update(row_index(row))
    le, notes = len(keys & _LE_MARKERS), len(keys & _NOTES_MARKERS)
    if max(le, notes) < 2:
        return None
    column = MARKS.column("student_code") if notes > le else STUDENTS.column("student_code")
    return FileRejected(
        "F009", f"sheet {sheet}, rows 1-{limit}: no pupils' header row", column=column.header_ar
    )

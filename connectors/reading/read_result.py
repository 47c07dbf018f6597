"""What a read hands on: the read frame with how each sheet was placed and the reader's own
findings (`ReadResult`), or the whole file's refusal (`FileRejected`).

docs/decisions/0002-ingest-frames.md describes the frame; 0006 the placing of Massar layouts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from schemas.rules import severity


class FileRejected(Exception):
    """A whole file refused with a file-level rule (F001-F009 of schemas/rules.csv).

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


@dataclass(frozen=True)
class Located:
    """A value read from a sheet and the cell it came from."""

    value: str | None  # the cell as rendered (original text); None when nothing was found
    cell: str | None  # e.g. "C6"; None when nothing was found
    label_cell: str | None = None  # the label the value belongs to, e.g. "E6"
    expected_shape: bool = True  # False: the nearest cell, although not of the expected shape
    known_as: str | None = None  # a level label: the level code of levels.csv it resolves to


@dataclass(frozen=True)
class SlotColumns:
    """One NotesCC slot as found in the header rows."""

    slot: str  # test1 .. test4, activities
    label: str  # the label as written in the file
    label_cells: str  # e.g. "G16:H16"
    mark_column: str | None  # e.g. "G"
    absence_column: str | None  # e.g. "H"
    token: str | None = None  # the hidden marker above the pair (information only)


@dataclass(frozen=True)
class ReadFinding:
    """A finding of the reader itself (file-level unless `sheet_row`), rule of schemas/rules.csv."""

    rule_id: str
    sheet: str
    column_name: str  # the cell(s) or label concerned
    value: str | None
    params: dict[str, str] = field(default_factory=dict)
    sheet_row: int | None = None


@dataclass
class SheetLayout:
    """How one sheet was placed: what `massar inspect` prints."""

    sheet: str
    dataset: str  # "students" | "marks"
    layout: str  # "ListEleve" | "NotesCC"
    header_rows: tuple[int, ...]  # Excel row numbers
    first_data_row: int
    value_side: str  # LOWER (mirrored sheet) or HIGHER
    value_side_evidence: str
    columns: dict[str, str]  # dataset column → column letter
    metadata: dict[str, Located]
    technical: dict[str, Located] = field(default_factory=dict)  # NotesCC hidden row 5
    slots: tuple[SlotColumns, ...] = ()
    remark_column: str | None = None
    token_row: int | None = None
    rows_read: int = 0
    findings: list[ReadFinding] = field(default_factory=list)


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


FINDING_SCHEMA: dict[str, Any] = {
    "sheet": pl.Utf8,
    "sheet_row": pl.Int64,
    "column_name": pl.Utf8,
    "value": pl.Utf8,
    "rule_id": pl.Utf8,
    "severity": pl.Utf8,
    "params": pl.Utf8,
}


def findings_frame(findings: Sequence[ReadFinding]) -> pl.DataFrame:
    """Reader findings in the shape of a validation findings frame (tasks/validate.py)."""
    return pl.DataFrame(
        {
            "sheet": [f.sheet for f in findings],
            "sheet_row": [f.sheet_row for f in findings],
            "column_name": [f.column_name for f in findings],
            "value": [f.value for f in findings],
            "rule_id": [f.rule_id for f in findings],
            "severity": [severity(f.rule_id) for f in findings],
            "params": [json.dumps(f.params, ensure_ascii=False) for f in findings],
        },
        schema=FINDING_SCHEMA,
    )


@dataclass
class SheetsRead:
    """What one layout's reader makes of a workbook's sheets: the frame, the sheets its rows
    came from, and how each Massar sheet was placed (with the reader's findings)."""

    frame: pl.DataFrame
    sheets: list[str]
    layouts: list[SheetLayout] = field(default_factory=list)

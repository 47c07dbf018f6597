"""Reading Massar's ListEleve export (DOMAIN.md §2): one sheet per class, the pupils under a
header row, the class's metadata above it on the sheet's value side (mirrored in genuine
exports: a value at a lower column than its label, the level one row up).

A sheet's path: header columns by label (F008 for a required one missing) → metadata located
(F009 for a required label missing) → pupils' rows mapped to the dataset's columns → frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import zip_longest

from connectors.reading.cells import (
    Rows,
    SheetRows,
    column_letter,
    is_blank,
    key,
    render,
    render_all,
)
from connectors.reading.layout_detection import FoundSheet
from connectors.reading.metadata_location import (
    LIST_FIELDS,
    header_side,
    locate_metadata,
    missing_label,
)
from connectors.reading.read_frame import Columns, build_frame
from connectors.reading.read_result import FileRejected, SheetLayout, SheetsRead
from connectors.reading.reference import Reference, reference
from schemas.datasets import STUDENTS

_LE_KEYS = {key(c.header_ar): c.name for c in STUDENTS.columns}
_LE_CODE = key(STUDENTS.column("student_code").header_ar)


def read_liste_eleve(sheets: Sequence[FoundSheet], ref: Reference) -> SheetsRead:
    """The pupils of every class sheet, in workbook order, and how each sheet was placed."""
    out = students_columns()
    layouts: list[SheetLayout] = []
    for name, rows, kind in sheets:
        read_students_sheet(name, rows, kind.header_row, out, layouts, ref, kind.rows)
    return SheetsRead(build_frame(out), list(dict.fromkeys(out["sheet"])), layouts)


def students_columns() -> Columns:
    """The column lists of the students frame, empty: sheet, sheet_row, columns, metadata."""
    out: Columns = {"sheet": [], "sheet_row": []}
    for c in STUDENTS.columns + STUDENTS.metadata:
        out[c.name] = []
    return out


def read_students_sheet(
    sheet: str,
    rows: Rows,
    header_row: int,
    out: Columns,
    layouts: list[SheetLayout] | None = None,
    ref: Reference | None = None,
    rows_facts: SheetRows | None = None,
) -> None:
    """Append the pupils of one ListEleve class sheet to `out`, and how the sheet was placed
    to `layouts`. F008 for a header column missing, F009 for a metadata label missing.
    `rows_facts`: the rows' facts as layout detection looked them up."""
    header = rows[header_row]
    positions: dict[str, int] = {}
    for i, cell in enumerate(header):
        if type(cell) is str and cell.strip():
            name = _LE_KEYS.get(key(cell))
            if name is not None:
                positions.setdefault(name, i)
    for column in STUDENTS.columns:
        if column.required and column.name not in positions:
            raise FileRejected(
                "F008", f"sheet {sheet}, row {header_row + 1}", column=column.header_ar
            )
    # A mirrored sheet reads ر.ت before الرمز from the right: its values stand left of labels.
    side, evidence = header_side(
        header, STUDENTS.column("row_number").header_ar, STUDENTS.column("student_code").header_ar
    )
    found = locate_metadata(
        rows, header_row, LIST_FIELDS, side, evidence, ref or reference(), rows_facts
    )
    if found.missing:
        missing_label(sheet, rows, header_row, found.missing[0])
    meta_values = [(out[c.name], found.values[c.name].value) for c in STUDENTS.metadata]
    code_at = positions["student_code"]
    # The pupils' rows: not blank, and not the header repeated (printed page headers copied
    # into the sheet). Then column by column: the block transposed once (short rows padded
    # with None, which renders as None like a cell beyond the row's width), each column
    # rendered by render_all.
    block: list[list[object]] = []
    sheet_rows: list[int] = []
    for r in range(header_row + 1, len(rows)):
        row = rows[r]
        if is_blank(row):
            continue
        code = render(row[code_at]) if code_at < len(row) else None
        # An ASCII code (every pupil's) has an ASCII key: never the Arabic label's, and its key
        # need not be made (a memo miss per pupil).
        if code is not None and not code.isascii() and key(code) == _LE_CODE:
            continue
        block.append(row)
        sheet_rows.append(r + 1)
    n = len(sheet_rows)
    columns = list(zip_longest(*block, fillvalue=None))
    for c in STUDENTS.columns:
        p = positions.get(c.name)
        out[c.name].extend(
            render_all(columns[p]) if p is not None and p < len(columns) else [None] * n
        )
    out["sheet"].extend([sheet] * n)
    out["sheet_row"].extend(sheet_rows)
    for values, value in meta_values:
        values.extend([value] * n)
    if layouts is not None:
        layouts.append(
            SheetLayout(
                sheet=sheet,
                dataset=STUDENTS.name,
                layout="ListEleve",
                header_rows=(header_row + 1,),
                first_data_row=header_row + 2,
                value_side=found.side,
                value_side_evidence=found.evidence,
                columns={name: column_letter(p) for name, p in positions.items()},
                metadata=found.values,
                rows_read=n,
            )
        )

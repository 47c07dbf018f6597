"""Reading a file a school submitted: the entry point of ingestion.

`read_submission(path, school_code=...)` detects the dataset from the content (Massar ListEleve
and NotesCC workbooks, CSV or XLSX tables with Arabic headers), reads it into the "read frame"
of docs/decisions/0002-ingest-frames.md, or refuses the whole file with `FileRejected` carrying a
file-level rule id (F001-F009 of schemas/rules.csv).

Every file takes the same path, one step per module of connectors/reading/ (see its
`__init__`): sniff (name, size, format) → safety checks (zip directory, sheet sizes) → load
(python-calamine) → locate (each sheet's layout and header row) → the layout's own reader
(ListEleve, NotesCC or a table: metadata, columns, frame).
"""

from __future__ import annotations

from pathlib import Path, PosixPath

from connectors.reading.calamine_copy import calamine_copy
from connectors.reading.layout_detection import dataset_sheets
from connectors.reading.liste_eleve import read_liste_eleve
from connectors.reading.notes_cc import read_notes_cc
from connectors.reading.read_result import (
    FileRejected,
    Located,
    ReadFinding,
    ReadResult,
    SheetLayout,
    SlotColumns,
    findings_frame,
)
from connectors.reading.reference import reference
from connectors.reading.sniff import file_format, safe_file_name, submitted_bytes
from connectors.reading.table_files import (
    check_school_codes,
    csv_dataset,
    read_csv,
    read_table_sheets,
)
from connectors.reading.workbook_safety import check_zip, checked_worksheets
from schemas.datasets import DATASETS, MARKS, STUDENTS

__all__ = [
    "FileRejected",
    "Located",
    "ReadFinding",
    "ReadResult",
    "SheetLayout",
    "SlotColumns",
    "detect_dataset",
    "findings_frame",
    "read_submission",
    "safe_file_name",
]


def read_submission(
    path: Path | str,
    *,
    school_code: str,
    file_name: str | None = None,
    allow_empty_table: bool = True,
    reference_dir: Path | None = None,
    data: bytes | None = None,
) -> ReadResult:
    """Read one submitted file into the read frame, or raise `FileRejected`.

    `file_name` is the name as the school submitted it (default: `path`'s name); it is checked
    for F007. `school_code` is the submitting school's: a different code inside the file (NotesCC
    C5, or every row of a table's school code column) is F004.

    F005 (empty) is a file of 0 bytes, a workbook without any cell, or a ListEleve / NotesCC
    export without a pupil. A table (CSV/XLSX) with its header and no data line is read as an
    empty declaration (a school without discipline incidents sends exactly that), giving a
    frame of 0 rows, unless `allow_empty_table=False`.

    Massar layouts also give `layouts` (per sheet: metadata with the cell each value came
    from, header rows, columns, slot columns) and the reader's file-level `findings` (F010
    subject code against subject name, F011 hidden tokens against the labels), checked
    against `reference_dir` (default schemas/reference: levels.csv, subjects.csv).

    `data` is the file's content when the caller already holds it (the ingest reads each file
    once: hashed, archived and parsed from the same bytes); else `path` is read.
    """
    path = path if type(path) is PosixPath else Path(path)  # a Path again costs ~5 us a file
    # Sniff: a plain name, a size within the limits, the format the bytes say.
    data = submitted_bytes(path, file_name if file_name is not None else path.name, data)
    fmt = file_format(data, path.suffix.lower())
    if fmt == "csv":
        table_dataset, frame, encoding = read_csv(
            data, school_code=school_code, allow_empty=allow_empty_table
        )
        return ReadResult(table_dataset.name, frame, frame.height, "csv", encoding, [""])
    # Safety checks on the zip directory, then load and locate each sheet's layout (an xlsx
    # through the copy calamine reads without a merged-cells pass: calamine_copy.py).
    if fmt == "xlsx":
        data = calamine_copy(data, checked_worksheets(data))
    sheets = dataset_sheets(data)
    dataset = sheets[0].kind.dataset
    # The layout's own reader: metadata, columns, frame.
    ref = reference() if reference_dir is None else reference(Path(reference_dir))
    if dataset == MARKS.name:
        read = read_notes_cc(sheets, school_code, ref)
    elif dataset == STUDENTS.name:
        read = read_liste_eleve(sheets, ref)
    else:
        read = read_table_sheets(sheets)
    frame = read.frame
    table = DATASETS[dataset].layout == "table"
    if frame.height == 0 and (not table or not allow_empty_table):
        raise FileRejected("F005", "header without data rows")
    if table:
        check_school_codes(frame, school_code)
    findings = [f for layout in read.layouts for f in layout.findings]
    return ReadResult(dataset, frame, frame.height, fmt, None, read.sheets, read.layouts, findings)


def detect_dataset(path: Path | str, *, file_name: str | None = None) -> str:
    """The dataset name a file holds (content only), or `FileRejected` (F001-F003, F005-F009)."""
    path = Path(path)
    data = submitted_bytes(path, file_name if file_name is not None else path.name)
    fmt = file_format(data, path.suffix.lower())
    if fmt == "csv":
        return csv_dataset(data)
    if fmt == "xlsx":
        check_zip(data)
    return dataset_sheets(data)[0].kind.dataset

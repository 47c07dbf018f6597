"""Reading a file a school submitted: the entry point of ingestion.

`read_submission(path, school_code=...)` detects the dataset from the content (Massar ListEleve
and NotesCC workbooks, CSV or XLSX tables with Arabic headers), reads it into the "read frame"
of docs/decisions/0002-ingest-frames.md, or refuses the whole file with `FileRejected` carrying a
file-level rule id (F001-F008 of schemas/rules.csv).

Workbooks (.xls and .xlsx) are read with python-calamine only; safety limits are checked on the
raw bytes and the zip directory before anything is parsed.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from connectors._base import (
    MAX_FILE_BYTES,
    MAX_NAME_BYTES,
    FileRejected,
    ReadResult,
    build_frame,
    grid_frame,
)
from connectors.massar_excel import (
    OLE_MAGIC,
    ZIP_MAGIC,
    SheetKind,
    check_zip,
    classify_sheet,
    is_encrypted_ole,
    load_sheets,
    marks_columns,
    read_marks_sheet,
    read_students_sheet,
    read_table_sheet,
    students_columns,
    unplaced_layout,
)
from connectors.massar_layout import (
    Located,
    ReadFinding,
    SheetLayout,
    SlotColumns,
    findings_frame,
    reference,
)
from connectors.tables import (
    check_school_codes,
    decode_csv,
    empty_columns,
    find_table_header,
    read_csv,
    sniff_delimiter,
)
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

_EXCEL_SUFFIXES = {".xls", ".xlsx", ".xlsm", ".xlsb"}
# Control characters (Unicode category Cc: U+0000-U+001F, U+007F-U+009F) and the bidirectional
# overrides used to disguise an extension ("...xlsx.exe" shown reversed).
_UNSAFE_CHAR_RE = re.compile("[\x00-\x1f\x7f-\x9f\u202d\u202e]")


def safe_file_name(name: str) -> bool:
    """F007: a plain file name: not empty, not `.`/`..`, no `..` path step, no path separator
    (`/`, `\\`, `:`), no control character or bidi override, at most 255 UTF-8 bytes."""
    if not name or name in (".", "..") or not name.strip():
        return False
    if any(sep in name for sep in ("/", "\\", ":")) or name.startswith(".."):
        return False
    if len(name.encode("utf-8", errors="replace")) > MAX_NAME_BYTES:
        return False
    return _UNSAFE_CHAR_RE.search(name) is None


def _read_bytes(path: Path, name: str) -> bytes:
    if not safe_file_name(name):
        raise FileRejected("F007", "unsafe file name", value=name)
    size = path.stat().st_size
    if size == 0:
        raise FileRejected("F005", "0 bytes")
    if size > MAX_FILE_BYTES:
        raise FileRejected("F006", f"file size {size // 2**20} MB > {MAX_FILE_BYTES // 2**20} MB")
    return path.read_bytes()


def _format(data: bytes, suffix: str) -> str:
    """ "xlsx", "xls" or "csv" from the bytes; F002 for an encrypted OLE package."""
    if data.startswith(ZIP_MAGIC):
        return "xlsx"
    if data.startswith(OLE_MAGIC):
        if is_encrypted_ole(data):
            raise FileRejected("F002", "encrypted OLE package (EncryptedPackage)")
        return "xls"
    if data.startswith((b"PK", b"\xd0\xcf\x11\xe0")):
        raise FileRejected("F001", "truncated workbook header")
    if suffix in _EXCEL_SUFFIXES:
        # Not a workbook by content: read it as text if it is (a CSV renamed .xls), else refuse.
        try:
            decode_csv(data)
        except FileRejected as exc:
            raise FileRejected("F001", f"not an Excel workbook ({exc.detail})") from exc
    return "csv"


def _classified(data: bytes) -> list[tuple[str, list, SheetKind]]:
    """The sheets of the workbook's dataset (the first sheet's, in workbook order) with their
    header row. F005 for a workbook without any cell, F003 when no sheet matches, F009 when a
    sheet carries a Massar layout's labels but no header row (a class sheet is never skipped
    silently)."""
    kinds: list[SheetKind | None] = []

    def classified(rows: list) -> bool:
        kind = classify_sheet(rows)
        kinds.append(kind)
        # A NotesCC workbook holds one marks sheet: its Data sheet need not be parsed.
        return kind is not None and kind.dataset == MARKS.name

    sheets = load_sheets(data, stop=classified)
    matched = [
        (name, rows, kind)
        for (name, rows), kind in zip(sheets, kinds, strict=True)
        if kind is not None
    ]
    dataset = matched[0][2].dataset if matched else None
    if dataset in (None, STUDENTS.name, MARKS.name):
        for (name, rows), kind in zip(sheets, kinds, strict=True):
            if kind is None and (rejected := unplaced_layout(name, rows)) is not None:
                raise rejected
    if not matched:
        if not any(any(c not in ("", None) for c in row) for _, rows in sheets for row in rows):
            raise FileRejected("F005", "workbook without any cell")
        raise FileRejected("F003", "no sheet matches a known layout")
    return [m for m in matched if m[2].dataset == dataset]


def read_submission(
    path: Path | str,
    *,
    school_code: str,
    file_name: str | None = None,
    allow_empty_table: bool = True,
    reference_dir: Path | None = None,
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
    """
    path = Path(path)
    data = _read_bytes(path, file_name if file_name is not None else path.name)
    fmt = _format(data, path.suffix.lower())
    if fmt == "csv":
        dataset, frame, encoding = read_csv(
            data, school_code=school_code, allow_empty=allow_empty_table
        )
        return ReadResult(dataset.name, frame, frame.height, "csv", encoding, [""])
    if fmt == "xlsx":
        check_zip(data)
    sheets = _classified(data)
    dataset = sheets[0][2].dataset
    ref = reference() if reference_dir is None else reference(Path(reference_dir))
    layouts: list[SheetLayout] = []
    if dataset == MARKS.name:
        grids = [
            (name, read_marks_sheet(name, rows, kind.header_row, school_code, layouts, ref))
            for name, rows, kind in sheets
        ]
        used = [name for name, grid in grids if grid.outer]
        if len(grids) == 1:
            frame = grid_frame(grids[0][1])
        else:
            out = marks_columns()
            for _, grid in grids:
                for column, values in grid.lists().items():
                    out[column].extend(values)
            frame = build_frame(out)
    else:
        if dataset == STUDENTS.name:
            out = students_columns()
            for name, rows, kind in sheets:
                read_students_sheet(name, rows, kind.header_row, out, layouts, ref)
        else:
            out = empty_columns(DATASETS[dataset])
            for name, rows, kind in sheets:
                read_table_sheet(name, rows, kind, out)
        used = list(dict.fromkeys(out["sheet"]))
        frame = build_frame(out)
    if frame.height == 0 and (DATASETS[dataset].layout != "table" or not allow_empty_table):
        raise FileRejected("F005", "header without data rows")
    if DATASETS[dataset].layout == "table":
        check_school_codes(frame, school_code)
    findings = [f for layout in layouts for f in layout.findings]
    return ReadResult(dataset, frame, frame.height, fmt, None, used, layouts, findings)


def detect_dataset(path: Path | str, *, file_name: str | None = None) -> str:
    """The dataset name a file holds (content only), or `FileRejected` (F001-F003, F005-F008)."""
    path = Path(path)
    data = _read_bytes(path, file_name if file_name is not None else path.name)
    fmt = _format(data, path.suffix.lower())
    if fmt == "csv":
        text, _ = decode_csv(data)
        lines = [line for line in text.splitlines() if line.strip()]
        if not lines:
            raise FileRejected("F005", "no content")
        header = next(csv.reader([lines[0]], delimiter=sniff_delimiter(text)))
        found = find_table_header([header])
        if found is None:
            raise FileRejected("F003", "CSV header matches no dataset")
        if found[1].missing:
            raise FileRejected("F008", "line 1", column=found[1].missing[0])
        return found[1].dataset.name
    if fmt == "xlsx":
        check_zip(data)
    return _classified(data)[0][2].dataset

"""Workbooks (.xls BIFF and .xlsx) read with python-calamine: Massar's ListEleve and NotesCC
layouts (DOMAIN.md §2) and XLSX tables with Arabic headers.

Header rows are found by their labels (`label_key`), metadata by its label cells; the only fixed
positions used are the columns of NotesCC's hidden technical row (C school code, G session,
O level code), and even there the school and subject codes are first looked for by pattern.
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from python_calamine import CalamineWorkbook, PasswordError, SheetTypeEnum

from connectors._base import (
    MAX_CELLS,
    MAX_COLUMNS,
    MAX_COMPRESSION_RATIO,
    MAX_ROWS,
    MAX_UNCOMPRESSED_BYTES,
    MAX_ZIP_ENTRIES,
    RATIO_MIN_BYTES,
    FileRejected,
    key,
    render,
)
from connectors.tables import TableMatch, find_table_header, require_complete, table_columns
from schemas.datasets import (
    ABSENCE_LABEL,
    MARK_LABEL,
    MARK_SLOTS,
    MARKS,
    SCHOOL_CODE,
    STUDENTS,
)
from schemas.text import clean_text

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ZIP_MAGIC = b"PK\x03\x04"
_ENCRYPTION_STREAMS = (
    "EncryptedPackage".encode("utf-16-le"),
    "EncryptionInfo".encode("utf-16-le"),
)

# Massar layouts: how far down the header may sit.
HEADER_SCAN_ROWS = 60

Rows = list[list[object]]

# ------------------------------------------------------------------------------ safety checks


def is_encrypted_ole(data: bytes) -> bool:
    """An OLE2 compound file holding an encrypted OOXML package (Office "encrypt with
    password"): magic D0 CF 11 E0 plus an EncryptedPackage / EncryptionInfo stream name."""
    return data.startswith(OLE_MAGIC) and any(s in data for s in _ENCRYPTION_STREAMS)


_DIMENSION_RE = re.compile(
    rb'<(?:\w+:)?dimension\s+ref="\$?([A-Z]{1,3})\$?(\d+)(?::\$?([A-Z]{1,3})\$?(\d+))?"'
)


def _column_number(letters: bytes) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + (ch - 64)
    return n


def check_zip(data: bytes) -> None:
    """F001/F002/F006 for an xlsx (zip) before calamine sees it: entry count, total
    uncompressed size, compression ratio per entry, encrypted entries, sheet dimensions."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise FileRejected("F001", "corrupt or truncated zip") from exc
    if len(infos) > MAX_ZIP_ENTRIES:
        raise FileRejected("F006", f"{len(infos)} zip entries > {MAX_ZIP_ENTRIES}")
    total = 0
    for info in infos:
        total += info.file_size
        if info.flag_bits & 0x1:
            raise FileRejected("F002", "encrypted zip entry")
        if info.file_size > RATIO_MIN_BYTES and (
            info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1)
        ):
            ratio = info.file_size // max(info.compress_size, 1)
            raise FileRejected("F006", f"compression ratio {ratio}:1 > {MAX_COMPRESSION_RATIO}:1")
    if total > MAX_UNCOMPRESSED_BYTES:
        raise FileRejected(
            "F006", f"uncompressed size {total // 2**20} MB > {MAX_UNCOMPRESSED_BYTES // 2**20} MB"
        )
    for info in infos:
        name = info.filename
        if not (name.startswith("xl/worksheets/") and name.endswith(".xml")):
            continue
        try:
            with archive.open(info) as stream:
                head = stream.read(8192)
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as exc:
            raise FileRejected("F001", "corrupt or truncated zip") from exc
        match = _DIMENSION_RE.search(head)
        if match is None:
            continue
        last_col, last_row = match.group(3) or match.group(1), match.group(4) or match.group(2)
        check_dimensions(int(last_row), _column_number(last_col))


def check_dimensions(rows: int, columns: int) -> None:
    if columns > MAX_COLUMNS:
        raise FileRejected("F006", f"sheet {columns} columns wide > {MAX_COLUMNS}")
    if rows > MAX_ROWS:
        raise FileRejected("F006", f"sheet {rows} rows tall > {MAX_ROWS}")
    if rows * columns > MAX_CELLS:
        raise FileRejected("F006", f"sheet {rows}x{columns} cells > {MAX_CELLS}")


# ---------------------------------------------------------------------------------- loading


def load_sheets(data: bytes, stop: Callable[[Rows], bool] | None = None) -> list[tuple[str, Rows]]:
    """The worksheets of a workbook as (name, rows), rows at their Excel positions (rows[0] is
    Excel row 1, column 0 is A), up to the first sheet for which `stop(rows)` is true.
    Raises F001/F002/F006."""
    try:
        book = CalamineWorkbook.from_filelike(io.BytesIO(data))
    except PasswordError as exc:
        raise FileRejected("F002", "password-protected workbook") from exc
    except Exception as exc:
        if "password" in str(exc).lower():
            raise FileRejected("F002", "password-protected workbook") from exc
        raise FileRejected("F001", _calamine_detail(exc)) from exc
    sheets: list[tuple[str, Rows]] = []
    with book:
        for index, meta in enumerate(book.sheets_metadata):
            if meta.typ != SheetTypeEnum.WorkSheet:
                continue
            try:
                sheet = book.get_sheet_by_index(index)
                end = sheet.end
                if end is not None:
                    check_dimensions(end[0] + 1, end[1] + 1)
                rows = sheet.to_python(skip_empty_area=False) if end is not None else []
            except FileRejected:
                raise
            except PasswordError as exc:
                raise FileRejected("F002", "password-protected workbook") from exc
            except Exception as exc:
                raise FileRejected("F001", _calamine_detail(exc)) from exc
            sheets.append((meta.name, rows))
            if stop is not None and stop(rows):
                break
    return sheets


def _calamine_detail(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"workbook parse error: {text[:80]}"


# ------------------------------------------------------------------------------- classifying

_LE_KEYS = {key(c.header_ar): c.name for c in STUDENTS.columns}
_LE_CODE = key(STUDENTS.column("student_code").header_ar)
_LE_META = {key(c.header_ar): c.name for c in STUDENTS.metadata}

_NOTES_FIXED = ("internal_id", "student_code", "full_name", "birth_date", "remark")
_NOTES_KEYS = {key(MARKS.column(n).header_ar): n for n in _NOTES_FIXED}
_NOTES_CODE = key(MARKS.column("student_code").header_ar)
_NOTES_META = {key(c.header_ar): c.name for c in MARKS.metadata}
_SLOT_BY_LABEL = {key(label): slot for slot, label, _ in MARK_SLOTS}
_SLOT_BY_TOKEN = {token: slot for slot, _, token in MARK_SLOTS}
_SLOT_LABEL = {slot: label for slot, label, _ in MARK_SLOTS}  # canonical, for finding columns
_MARK_KEY = key(MARK_LABEL)
_ABSENCE_KEY = key(ABSENCE_LABEL)

_SLOT_TOKEN_RE = re.compile(r"^#\d{1,3}#$")
_SUBJECT_TOKEN_RE = re.compile(r"^#(\d{4})#$")
_SCHOOL_CODE_RE = re.compile(SCHOOL_CODE)
_SESSION_1 = key("الأولى")
_SESSION_2 = key("الثانية")


@dataclass(frozen=True)
class SheetKind:
    dataset: str
    header_row: int  # 0-based index in rows
    table: TableMatch | None = None


def _row_keys(row: Sequence[object]) -> dict[str, int]:
    keys: dict[str, int] = {}
    for i, cell in enumerate(row):
        if type(cell) is str and cell.strip():
            keys.setdefault(key(cell), i)
    return keys


def classify_sheet(rows: Rows) -> SheetKind | None:
    """The dataset a sheet holds and its header row, from labels only."""
    found = find_table_header(rows)
    if found is not None and found[1].complete:
        return SheetKind(found[1].dataset.name, found[0], found[1])
    limit = min(len(rows), HEADER_SCAN_ROWS)
    for r in range(limit):
        keys = _row_keys(rows[r])
        if not keys:
            continue
        has_slot = any(k in _SLOT_BY_LABEL for k in keys)
        if _NOTES_CODE in keys or has_slot:
            marks_below = r + 1 < len(rows) and _MARK_KEY in _row_keys(rows[r + 1])
            # The code with a slot or النقطة below; or a slot over النقطة (code column lost: F008)
            if marks_below or (has_slot and _NOTES_CODE in keys):
                return SheetKind(MARKS.name, r)
        if _LE_CODE in keys and sum(1 for k in keys if k in _LE_KEYS) >= 4:
            return SheetKind(STUDENTS.name, r)
    if found is not None:  # a table header missing required columns: F008 later
        return SheetKind(found[1].dataset.name, found[0], found[1])
    return None


# -------------------------------------------------------------------------------- metadata


def read_metadata(rows: Sequence[Sequence[object]], labels: dict[str, str]) -> dict[str, str]:
    """Values of the label cells found in `rows`: the nearest non-empty cell after the label in
    column order (the sheets are right-to-left: that is the cell shown on the label's left),
    else the nearest one before it; a cell "label: value" holds both. First occurrence wins."""
    found: dict[str, str] = {}
    for row in rows:
        tokens: list[tuple[str, str | None, bool]] = []  # (text, label name, plain value)
        for cell in row:
            text = render(cell)
            if text is None:
                continue
            name = labels.get(key(text)) if type(cell) is str else None
            if name is None and type(cell) is str and ":" in text:
                before, after = text.split(":", 1)
                inline = labels.get(key(before))
                if inline is not None:
                    if after.strip() and inline not in found:
                        found[inline] = after.strip()
                    tokens.append((text, None, False))
                    continue
            tokens.append((text, name, name is None))
        if not any(t[1] for t in tokens):
            continue
        used: set[int] = set()
        pending: list[int] = []
        for i, (_, name, _) in enumerate(tokens):
            if name is None:
                continue
            if i + 1 < len(tokens) and tokens[i + 1][2]:
                used.add(i + 1)
                found.setdefault(name, tokens[i + 1][0])
            else:
                pending.append(i)
        for i in pending:
            name = tokens[i][1]
            if i > 0 and tokens[i - 1][2] and i - 1 not in used:
                used.add(i - 1)
                found.setdefault(name, tokens[i - 1][0])  # type: ignore[arg-type]
    return found


# ----------------------------------------------------------------------------- ListEleve


def students_columns() -> dict[str, list]:
    out: dict[str, list] = {"sheet": [], "sheet_row": []}
    for c in STUDENTS.columns + STUDENTS.metadata:
        out[c.name] = []
    return out


def read_students_sheet(sheet: str, rows: Rows, header_row: int, out: dict[str, list]) -> None:
    """Append the pupils of one ListEleve class sheet to `out`."""
    positions: dict[str, int] = {}
    for i, cell in enumerate(rows[header_row]):
        if type(cell) is str and cell.strip():
            name = _LE_KEYS.get(key(cell))
            if name is not None:
                positions.setdefault(name, i)
    for column in STUDENTS.columns:
        if column.required and column.name not in positions:
            raise FileRejected(
                "F008", f"sheet {sheet}, row {header_row + 1}", column=column.header_ar
            )
    meta = read_metadata(rows[:header_row], _LE_META)
    meta_values = [(out[c.name], meta.get(c.name)) for c in STUDENTS.metadata]
    wanted = [(out[c.name], positions.get(c.name)) for c in STUDENTS.columns]
    code_at = positions["student_code"]
    for r in range(header_row + 1, len(rows)):
        cells = [render(c) for c in rows[r]]
        if not any(c is not None for c in cells):
            continue
        code = cells[code_at] if code_at < len(cells) else None
        if code is not None and key(code) == _LE_CODE:
            continue  # the header repeated (printed page headers copied into the sheet)
        width = len(cells)
        out["sheet"].append(sheet)
        out["sheet_row"].append(r + 1)
        for values, p in wanted:
            values.append(cells[p] if p is not None and p < width else None)
        for values, value in meta_values:
            values.append(value)


# ------------------------------------------------------------------------------- NotesCC

MARKS_META_COLUMNS = (
    "school_code",
    "subject_code",
    "semester",
    "class_code",
    "school_year",
    "level_code",
    "level_label",
    "teacher",
    "subject_name",
    "academy",
    "directorate",
    "school_name",
    "session_label",
)
_MARKS_ROW_COLUMNS = (
    "internal_id",
    "student_code",
    "full_name",
    "birth_date",
    "slot",
    "mark",
    "absence",
    "remark",
    "slot_label",
    "mark_column",
    "absence_column",
)


def marks_columns() -> dict[str, list]:
    out: dict[str, list] = {"sheet": [], "sheet_row": []}
    for name in _MARKS_ROW_COLUMNS + MARKS_META_COLUMNS:
        out[name] = []
    return out


@dataclass(frozen=True)
class _Slot:
    slot: str
    label: str
    mark_at: int | None
    absence_at: int | None


def _technical_row(rows: Sequence[Sequence[object]]) -> Sequence[object] | None:
    """The hidden row 5: the row above the header holding the subject token `#dddd#`. Without
    it the positions C/G/O are not trusted (no school code is read, so no F004 either)."""
    for row in rows:
        for cell in row:
            if type(cell) is str and _SUBJECT_TOKEN_RE.match(cell.strip()):
                return row
    return None


def _token_row(rows: Sequence[Sequence[object]]) -> Sequence[object]:
    """The hidden row 15: slot tokens `#1#` .. `#100#` above the mark columns (nearest the
    header)."""
    for row in reversed(rows):
        if any(type(c) is str and _SLOT_TOKEN_RE.match(c.strip()) for c in row):
            return row
    return ()


def _cell(row: Sequence[object], i: int) -> str | None:
    return render(row[i]) if i < len(row) else None


def notes_metadata(rows: Sequence[Sequence[object]], header_row: int) -> dict[str, str | None]:
    above = rows[:header_row]
    meta: dict[str, str | None] = dict(read_metadata(above, _NOTES_META))
    tech = _technical_row(above)
    school = subject = session = level = None
    if tech is not None:
        texts = [render(c) for c in tech]
        for text in texts:
            if text is None:
                continue
            stripped = clean_text(text)
            if subject is None and (m := _SUBJECT_TOKEN_RE.match(stripped)):
                subject = m.group(1)
            elif school is None and _SCHOOL_CODE_RE.match(stripped.upper()):
                school = text
        if school is None:
            school = _cell(tech, 2)  # C5
        session = _cell(tech, 6)  # G5
        level = _cell(tech, 14)  # O5
    meta["school_code"] = school
    meta["subject_code"] = subject
    meta["level_code"] = level
    meta["semester"] = _semester(meta.get("session_label"), session)
    return meta


def _semester(label: str | None, session: str | None) -> str | None:
    if label is not None:
        k = key(label)
        if _SESSION_2 in k or k.endswith("2"):
            return "2"
        if _SESSION_1 in k or k.endswith("1"):
            return "1"
    if session is not None and clean_text(session) in ("1", "2"):
        return clean_text(session)
    return None


def _find_slots(
    head: Sequence[object], sub: Sequence[object], tokens: Sequence[object]
) -> list[_Slot]:
    head_keys = [key(c) if type(c) is str and c.strip() else None for c in head]
    sub_keys = [key(c) if type(c) is str and c.strip() else None for c in sub]
    token_at = [c.strip() if type(c) is str else None for c in tokens]
    width = len(head_keys)
    starts: list[tuple[int, str]] = []
    for i, k in enumerate(head_keys):
        if k is None:
            continue
        slot = _SLOT_BY_LABEL.get(k)
        if slot is None and i < len(token_at) and token_at[i] is not None:
            slot = _SLOT_BY_TOKEN.get(token_at[i])  # an unknown label above a known token
        if slot is not None:
            starts.append((i, slot))
    has_sub = _MARK_KEY in sub_keys
    slots = []
    for i, slot in starts:
        end = i + 1
        while end < width and end < i + 3 and head_keys[end] is None:
            end += 1
        mark_at = absence_at = None
        if has_sub:
            for j in range(i, min(end, len(sub_keys))):
                if sub_keys[j] == _MARK_KEY and mark_at is None:
                    mark_at = j
                elif sub_keys[j] == _ABSENCE_KEY and absence_at is None:
                    absence_at = j
        else:
            mark_at = i
        if mark_at is None and absence_at is None:
            continue
        slots.append(_Slot(slot, render(head[i]) or "", mark_at, absence_at))
    return slots


def read_marks_sheet(
    sheet: str, rows: Rows, header_row: int, school_code: str, out: dict[str, list]
) -> None:
    """Append one NotesCC sheet to `out` in long format (pupil × slot)."""
    head = rows[header_row]
    sub = rows[header_row + 1] if header_row + 1 < len(rows) else []
    meta = notes_metadata(rows, header_row)
    found_code = meta.get("school_code")
    if found_code is not None and clean_text(found_code).upper() != clean_text(school_code).upper():
        raise FileRejected("F004", f"C5 school code {found_code}", column="C5", value=found_code)
    positions: dict[str, int] = {}
    for row in (head, sub):
        for i, cell in enumerate(row):
            if type(cell) is str and cell.strip():
                name = _NOTES_KEYS.get(key(cell))
                if name is not None:
                    positions.setdefault(name, i)
    for name in _NOTES_FIXED:
        column = MARKS.column(name)
        if column.required and name not in positions:
            raise FileRejected(
                "F008", f"sheet {sheet}, row {header_row + 1}", column=column.header_ar
            )
    slots = _find_slots(head, sub, _token_row(rows[:header_row]))
    if not slots:
        raise FileRejected(
            "F008", f"sheet {sheet}, rows {header_row + 1}-{header_row + 2}", column=MARK_LABEL
        )
    start = (
        header_row + 2
        if any(type(c) is str and c.strip() and key(c) == _MARK_KEY for c in sub)
        else header_row + 1
    )
    fixed = [(out[n], positions.get(n)) for n in _NOTES_FIXED]
    slot_info = [
        (
            s,
            f"{_SLOT_LABEL[s.slot]} - {MARK_LABEL}",
            f"{_SLOT_LABEL[s.slot]} - {ABSENCE_LABEL}" if s.absence_at is not None else None,
        )
        for s in slots
    ]
    meta_lists = [(out[n], meta.get(n)) for n in MARKS_META_COLUMNS]
    o_sheet, o_row, o_slot, o_mark, o_abs = (
        out["sheet"],
        out["sheet_row"],
        out["slot"],
        out["mark"],
        out["absence"],
    )
    o_label, o_mcol, o_acol = out["slot_label"], out["mark_column"], out["absence_column"]
    n_slots = len(slots)
    for r in range(start, len(rows)):
        row = rows[r]
        if not any(c != "" for c in row):
            continue
        width = len(row)
        fixed_values = [render(row[p]) if p is not None and p < width else None for _, p in fixed]
        slot_values = [
            (
                render(row[s.mark_at]) if s.mark_at is not None and s.mark_at < width else None,
                render(row[s.absence_at])
                if s.absence_at is not None and s.absence_at < width
                else None,
            )
            for s, _, _ in slot_info
        ]
        if (
            all(v is None for v in fixed_values)
            and all(m is None and a is None for m, a in slot_values)
            and all(render(c) is None for c in row)
        ):
            continue  # only blanks: an empty row
        for (values, _), value in zip(fixed, fixed_values, strict=True):
            values.extend([value] * n_slots)
        for (s, mark_column, absence_column), (mark, absence) in zip(
            slot_info, slot_values, strict=True
        ):
            o_sheet.append(sheet)
            o_row.append(r + 1)
            o_slot.append(s.slot)
            o_label.append(s.label)
            o_mark.append(mark)
            o_abs.append(absence)
            o_mcol.append(mark_column)
            o_acol.append(absence_column)
        for values, value in meta_lists:
            values.extend([value] * n_slots)


# -------------------------------------------------------------------------------- tables


def read_table_sheet(sheet: str, rows: Rows, kind: SheetKind, out: dict[str, list]) -> None:
    assert kind.table is not None
    require_complete(kind.table, f"sheet {sheet}, row {kind.header_row + 1}")
    table_columns(kind.table, rows, kind.header_row + 1, range(1, len(rows) + 1), sheet, out)

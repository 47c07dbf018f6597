"""Workbooks (.xls BIFF and .xlsx) read with python-calamine: Massar's ListEleve and NotesCC
layouts (DOMAIN.md §2) and XLSX tables with Arabic headers.

Each layout is read in the same steps: sniff (`classify_sheet`: the header row by its labels),
safety checks and load (raw bytes, zip directory, sheet dimensions), locate (header columns,
metadata values on the sheet's value side, NotesCC slot pairs: connectors/massar_layout.py),
map and frame. The only fixed positions used are the columns of NotesCC's hidden technical
row (C school code, G session, O level code), and even there the school and subject codes are
first looked for by pattern.
"""

from __future__ import annotations

import functools
import io
import re
import struct
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import chain, compress, zip_longest

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
    Grid,
    is_blank,
    key,
    render,
    render_all,
)
from connectors.massar_layout import (
    LIST_FIELDS,
    NOTES_FIELDS,
    HeaderGroup,
    Located,
    MetadataFound,
    ReadFinding,
    Reference,
    SheetLayout,
    SlotColumns,
    cell_address,
    column_letter,
    find_slots,
    header_groups,
    header_side,
    locate_metadata,
    missing_label,
    reference,
    subject_check,
    token_check,
    token_row,
    tokens_of,
)
from connectors.tables import (
    TableMatch,
    find_table_header,
    require_complete,
    row_index,
    table_columns,
)
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
    entries = _zip_entries(data)
    if entries is None:
        _check_zip_module(data)
        return
    _check_entries(entries)
    for entry in entries:
        if entry[_WORKSHEET]:
            head = _entry_head(data, entry)
            if head is None:
                _check_zip_module(data)
                return
            _check_head(head)


def _check_entries(entries: Sequence[tuple]) -> None:
    """Entry count, encryption, ratio and total size; `entries` as (flag_bits, compress_size,
    file_size, ...)."""
    if len(entries) > MAX_ZIP_ENTRIES:
        raise FileRejected("F006", f"{len(entries)} zip entries > {MAX_ZIP_ENTRIES}")
    total = 0
    for flag_bits, compress_size, file_size, *_ in entries:
        total += file_size
        if flag_bits & 0x1:
            raise FileRejected("F002", "encrypted zip entry")
        if file_size > RATIO_MIN_BYTES and (
            file_size > MAX_COMPRESSION_RATIO * max(compress_size, 1)
        ):
            ratio = file_size // max(compress_size, 1)
            raise FileRejected("F006", f"compression ratio {ratio}:1 > {MAX_COMPRESSION_RATIO}:1")
    if total > MAX_UNCOMPRESSED_BYTES:
        raise FileRejected(
            "F006", f"uncompressed size {total // 2**20} MB > {MAX_UNCOMPRESSED_BYTES // 2**20} MB"
        )


def _check_head(head: bytes) -> None:
    match = _DIMENSION_RE.search(head)
    if match is not None:
        last_col, last_row = match.group(3) or match.group(1), match.group(4) or match.group(2)
        check_dimensions(int(last_row), _column_number(last_col))


def _check_zip_module(data: bytes) -> None:
    """`check_zip` through the `zipfile` module: any archive the fast path does not take."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise FileRejected("F001", "corrupt or truncated zip") from exc
    _check_entries([(i.flag_bits, i.compress_size, i.file_size) for i in infos])
    for info in infos:
        name = info.filename
        if not (name.startswith("xl/worksheets/") and name.endswith(".xml")):
            continue
        try:
            with archive.open(info) as stream:
                head = stream.read(_HEAD_BYTES)
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as exc:
            raise FileRejected("F001", "corrupt or truncated zip") from exc
        _check_head(head)


# ---------------------------------------------------------------------------- zip directory
# The checks read the zip's central directory and the first 8 kB of each worksheet straight
# from the bytes (struct + zlib): a few microseconds where `zipfile` takes a hundred. Anything
# unusual (zip64, an archive comment, a prefixed or truncated archive, a name mismatch, a
# compression method other than stored/deflate, a CRC error...) sends the file to the
# `zipfile` implementation, which gives the verdict: the fast path only accepts what `zipfile`
# accepts, and refuses nothing itself.

_EOCD = struct.Struct("<4s4H2LH")
# Central directory entry: signature, extract version, flag bits, method, CRC-32, compressed
# size, size, name/extra/comment lengths, local header offset (the rest skipped).
_CENTRAL = struct.Struct("<4s2xBxHH4xLLLHHH8xL")
_LOCAL = struct.Struct("<4s2xH18xHH")  # signature, flag bits, name and extra lengths
_HEAD_BYTES = 8192
_MAX_EXTRACT_VERSION = 63  # zipfile.MAX_EXTRACT_VERSION
# An entry: (flag_bits, compress_size, file_size, method, crc, header_offset, raw name,
# is a worksheet)
_WORKSHEET = 7


def _zip_entries(data: bytes) -> list[tuple] | None:
    """The central directory of a plain zip (no zip64, no comment, nothing prepended), or None
    when the archive needs the `zipfile` module's verdict."""
    end = len(data) - 22
    if end < 0 or data[end : end + 4] != b"PK\x05\x06" or data[-2:] != b"\x00\x00":
        return None
    if end >= 20 and data[end - 20 : end - 16] == b"PK\x06\x07":
        return None  # zip64 locator
    _, disk, disk_cd, _, _, cd_size, cd_offset, _ = _EOCD.unpack_from(data, end)
    if disk or disk_cd or cd_offset + cd_size != end:
        return None
    entries: list[tuple] = []
    pos = cd_offset
    unpack = _CENTRAL.unpack_from
    while pos < end:
        if pos + 46 > end:
            return None
        (
            sig,
            version,
            flags,
            method,
            crc,
            csize,
            usize,
            name_len,
            extra_len,
            comment_len,
            offset,
        ) = unpack(data, pos)
        name_start = pos + 46
        name_end = name_start + name_len
        pos = name_end + extra_len + comment_len
        if (
            sig != b"PK\x01\x02"
            or version > _MAX_EXTRACT_VERSION
            or pos > end
            or 0xFFFFFFFF in (csize, usize, offset)
        ):
            return None
        raw = data[name_start:name_end]
        if b"\x00" in raw:
            return None
        if extra_len and not _plain_extra(data[name_end : name_end + extra_len]):
            return None
        if flags & 0x800 and not raw.isascii():
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return None
        # ASCII prefix and suffix: the same test on the bytes as on the decoded name
        worksheet = raw.startswith(b"xl/worksheets/") and raw.endswith(b".xml")
        entries.append((flags, csize, usize, method, crc, offset, raw, worksheet))
    return entries


def _plain_extra(extra: bytes) -> bool:
    """Extra fields well formed and without a zip64 record."""
    i = 0
    while len(extra) - i >= 4:
        tp, ln = struct.unpack_from("<HH", extra, i)
        if tp == 0x0001 or i + 4 + ln > len(extra):
            return False
        i += 4 + ln
    return True


def _entry_head(data: bytes, entry: tuple) -> bytes | None:
    """The first 8 kB of an entry (what `zipfile` reads with `open(info).read(8192)`), or None
    when the entry needs the `zipfile` module's verdict."""
    flags, csize, usize, method, crc, o, raw, _ = entry
    if o + 30 > len(data) or flags & 0x61:
        return None
    sig, local_flags, name_len, extra_len = _LOCAL.unpack_from(data, o)
    start = o + 30 + name_len + extra_len
    if (
        sig != b"PK\x03\x04"
        or data[o + 30 : o + 30 + name_len] != raw
        or (local_flags ^ flags) & 0x800
        or start + csize > len(data)
    ):
        return None
    whole = usize <= _HEAD_BYTES
    if method == 0:
        if csize != usize:
            return None
        head = data[start : start + min(usize, _HEAD_BYTES)]
    elif method == 8:
        inflate = zlib.decompressobj(-15)
        try:
            head = inflate.decompress(data[start : start + csize], _HEAD_BYTES)
        except zlib.error:
            return None
        if inflate.eof:
            whole = True
        elif whole or len(head) < _HEAD_BYTES:
            return None  # a stream shorter than announced
    else:
        return None
    if whole and (len(head) != usize or zlib.crc32(head) != crc):
        return None
    return head


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
_LE_KEY_SET = frozenset(_LE_KEYS)

_NOTES_FIXED = ("internal_id", "student_code", "full_name", "birth_date", "remark")
_NOTES_KEYS = {key(MARKS.column(n).header_ar): n for n in _NOTES_FIXED}
_NOTES_CODE = key(MARKS.column("student_code").header_ar)
_SLOT_LABEL = {slot: label for slot, label, _ in MARK_SLOTS}  # canonical, for finding columns
_SLOT_KEYS = frozenset(key(label) for _, label, _ in MARK_SLOTS)
_MARK_KEY = key(MARK_LABEL)

_SUBJECT_TOKEN_RE = re.compile(r"^#(\d{4})#$")
_SCHOOL_CODE_RE = re.compile(SCHOOL_CODE)
_clean = functools.lru_cache(maxsize=1 << 12)(clean_text)
"""clean_text memoised: the technical row's codes recur in every file of a school."""
_SESSION_1 = key("الأولى")
_SESSION_2 = key("الثانية")


@dataclass(frozen=True)
class SheetKind:
    dataset: str
    header_row: int  # 0-based index in rows
    table: TableMatch | None = None


def classify_sheet(rows: Rows) -> SheetKind | None:
    """The dataset a sheet holds and its header row, from labels only."""
    cache: dict[int, dict[str, int]] = {}

    def keys_of(r: int) -> dict[str, int]:
        keys = cache.get(r)
        if keys is None:
            keys = cache[r] = row_index(rows[r])
        return keys

    found = find_table_header(rows, keys_of)
    if found is not None and found[1].complete:
        return SheetKind(found[1].dataset.name, found[0], found[1])
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
                return SheetKind(MARKS.name, r)
        if _LE_CODE in keys and len(_LE_KEY_SET.intersection(keys)) >= 4:
            return SheetKind(STUDENTS.name, r)
    if found is not None:  # a table header missing required columns: F008 later
        return SheetKind(found[1].dataset.name, found[0], found[1])
    return None


# Labels only one of the two Massar layouts carries above its header (titles included).
_LE_ONLY = frozenset(key(f.label) for f in LIST_FIELDS) - {key(f.label) for f in NOTES_FIELDS}
_NOTES_ONLY = frozenset(key(f.label) for f in NOTES_FIELDS) - {key(f.label) for f in LIST_FIELDS}
_LE_MARKERS = _LE_ONLY | {key(STUDENTS.title_ar)}
_NOTES_MARKERS = _NOTES_ONLY | {key(MARKS.title_ar)}


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


# ----------------------------------------------------------------------------- ListEleve
# sniff (classify_sheet) → locate (header columns, metadata) → map → frame columns


def students_columns() -> dict[str, list]:
    out: dict[str, list] = {"sheet": [], "sheet_row": []}
    for c in STUDENTS.columns + STUDENTS.metadata:
        out[c.name] = []
    return out


def read_students_sheet(
    sheet: str,
    rows: Rows,
    header_row: int,
    out: dict[str, list],
    layouts: list[SheetLayout] | None = None,
    ref: Reference | None = None,
) -> None:
    """Append the pupils of one ListEleve class sheet to `out`, and how the sheet was placed
    to `layouts`. F008 for a header column missing, F009 for a metadata label missing."""
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
    found = locate_metadata(rows, header_row, LIST_FIELDS, side, evidence, ref or reference())
    if found.missing:
        missing_label(sheet, rows, header_row, found.missing[0])
    meta_values = [(out[c.name], found.values[c.name].value) for c in STUDENTS.metadata]
    wanted = [(out[c.name], positions.get(c.name)) for c in STUDENTS.columns]
    code_at = positions["student_code"]
    sheet_rows: list[int] = []
    for r in range(header_row + 1, len(rows)):
        row = rows[r]
        if is_blank(row):
            continue
        width = len(row)
        code = render(row[code_at]) if code_at < width else None
        if code is not None and key(code) == _LE_CODE:
            continue  # the header repeated (printed page headers copied into the sheet)
        sheet_rows.append(r + 1)
        for values, p in wanted:
            values.append(render(row[p]) if p is not None and p < width else None)
    n = len(sheet_rows)
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


# ------------------------------------------------------------------------------- NotesCC
# sniff (classify_sheet) → locate (technical row, metadata, header pairs) → cross-checks
# (school code F004, tokens F011, subject F010) → map → long frame (pupil × slot)

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


def technical_cells(rows: Sequence[Sequence[object]], header_row: int) -> dict[str, Located]:
    """The hidden row 5: the row above the header holding the subject token `#dddd#`; its
    school code (by pattern, else C5), subject code, session (G5) and level code (O5). Without
    that row no position is trusted (no school code is read, so no F004 either)."""
    for r in range(min(header_row, len(rows))):
        row = rows[r]
        if row.count("") != len(row):
            for i, c in enumerate(row):
                if type(c) is str and c and _SUBJECT_TOKEN_RE.match(c.strip()):
                    return _technical(r, row, i)
    return {}


def _technical(r: int, row: Sequence[object], subject_at: int) -> dict[str, Located]:
    texts = render_all(row)
    subject = _SUBJECT_TOKEN_RE.match(_clean(texts[subject_at] or ""))
    school_at = next(
        (
            i
            for i, text in enumerate(texts)
            if text is not None and _SCHOOL_CODE_RE.match(_clean(text).upper())
        ),
        2,  # C5
    )

    def at(i: int) -> Located:
        text = texts[i] if i < len(texts) else None
        return Located(text, cell_address(r, i) if text is not None else None)

    return {
        "school_code": at(school_at),
        "subject_code": Located(subject.group(1) if subject else None, cell_address(r, subject_at)),
        "session": at(6),  # G5
        "level_code": at(14),  # O5
    }


def _semester(label: str | None, session: str | None) -> str | None:
    if label is not None:
        k = key(label)
        if _SESSION_2 in k or k.endswith("2"):
            return "2"
        if _SESSION_1 in k or k.endswith("1"):
            return "1"
    if session is not None and _clean(session) in ("1", "2"):
        return _clean(session)
    return None


def read_marks_sheet(
    sheet: str,
    rows: Rows,
    header_row: int,
    school_code: str,
    layouts: list[SheetLayout] | None = None,
    ref: Reference | None = None,
) -> Grid:
    """One NotesCC sheet in long format (pupil × slot), columns in `marks_columns()` order;
    how the sheet was placed, with the reader's findings (F010, F011), goes to `layouts`.
    F004 for another school's code, F008 for a header label missing, F009 for a metadata
    label missing."""
    ref = ref or reference()
    head = rows[header_row]
    sub = rows[header_row + 1] if header_row + 1 < len(rows) else []
    technical = technical_cells(rows, header_row)
    found_code = technical["school_code"].value if technical else None
    if found_code is not None and _clean(found_code).upper() != _clean(school_code).upper():
        at = technical["school_code"].cell or "C5"
        raise FileRejected("F004", f"{at} school code {found_code}", column=at, value=found_code)
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
    side, evidence = header_side(
        head, MARKS.column("student_code").header_ar, MARKS.column("full_name").header_ar
    )
    found = locate_metadata(rows, header_row, NOTES_FIELDS, side, evidence, ref)
    if found.missing:
        missing_label(sheet, rows, header_row, found.missing[0])
    groups = header_groups(head, sub)
    slot_groups, problems = find_slots(groups)
    if not slot_groups:
        raise FileRejected(
            "F008", f"sheet {sheet}, rows {header_row + 1}-{header_row + 2}", column=MARK_LABEL
        )
    tokens_at = token_row(rows, header_row)
    tokens = tokens_of(rows[tokens_at]) if tokens_at is not None else None
    findings = _notes_findings(
        sheet, header_row, groups, tokens_at, tokens, problems, technical, found, ref
    )
    meta: dict[str, str | None] = {name: loc.value for name, loc in found.values.items()}
    meta["school_code"] = found_code
    meta["subject_code"] = technical["subject_code"].value if technical else None
    meta["level_code"] = technical["level_code"].value if technical else None
    session = technical["session"].value if technical else None
    meta["semester"] = _semester(meta.get("session_label"), session)
    slots = [(s.slot, s.group.label, s.group.mark_at, s.group.absence_at) for s in slot_groups]
    has_sub = any(type(c) is str and c.strip() and key(c) == _MARK_KEY for c in sub)
    start = header_row + 2 if has_sub else header_row + 1
    grid = _marks_grid(sheet, rows, start, positions, slots, meta)
    if layouts is not None:
        header_rows = (header_row + 1, header_row + 2) if has_sub else (header_row + 1,)
        layouts.append(
            SheetLayout(
                sheet=sheet,
                dataset=MARKS.name,
                layout="NotesCC",
                header_rows=header_rows,
                first_data_row=start + 1,
                value_side=found.side,
                value_side_evidence=found.evidence,
                columns={name: column_letter(p) for name, p in positions.items()},
                metadata=found.values,
                technical=technical,
                slots=tuple(
                    SlotColumns(
                        s.slot,
                        s.group.label,
                        f"{column_letter(s.group.start)}{header_row + 1}:"
                        f"{column_letter(s.group.end - 1)}{header_row + 1}",
                        None if s.group.mark_at is None else column_letter(s.group.mark_at),
                        None if s.group.absence_at is None else column_letter(s.group.absence_at),
                        (tokens or {}).get(s.group.start),
                    )
                    for s in slot_groups
                ),
                remark_column=(
                    column_letter(positions["remark"]) if "remark" in positions else None
                ),
                token_row=None if tokens_at is None else tokens_at + 1,
                rows_read=grid.outer * grid.inner,
                findings=findings,
            )
        )
    return grid


def _notes_findings(
    sheet: str,
    header_row: int,
    groups: Sequence[HeaderGroup],
    tokens_at: int | None,
    tokens: dict[int, str] | None,
    problems: list[str],
    technical: dict[str, Located],
    found: MetadataFound,
    ref: Reference,
) -> list[ReadFinding]:
    """F011 (hidden tokens against the labelled pairs, and pairs not read) and F010 (subject
    code against subject name): queries, the marks are read all the same."""
    findings: list[ReadFinding] = []
    mismatch = token_check(tokens, groups, header_row)
    details = [d for d in (mismatch, *problems) if d]
    if details:
        pairs = [g for g in groups if g.is_pair]
        first = min([g.start for g in pairs] + list(tokens or {}), default=0)
        last = max([g.end - 1 for g in pairs] + list(tokens or {}), default=0)
        top = header_row if tokens_at is None else tokens_at
        where = f"{cell_address(top, first)}:{cell_address(header_row + 1, last)}"
        findings.append(
            ReadFinding(
                "F011", sheet, where, None, {"detail": f"sheet {sheet}, {'; '.join(details)}"}
            )
        )
    code = technical.get("subject_code")
    name = found.values.get("subject_name")
    if code is not None and name is not None:
        disagreement = subject_check(code.value, name.value, ref)
        if disagreement is not None:
            findings.append(
                ReadFinding(
                    "F010",
                    sheet,
                    code.cell or "",
                    code.value,
                    {
                        "value": code.value or "",
                        "cell": code.cell or "",
                        "name": name.value or "",
                        "name_cell": name.cell or "",
                        "detail": disagreement,
                    },
                )
            )
    return findings


def _marks_grid(
    sheet: str,
    rows: Rows,
    start: int,
    positions: dict[str, int],
    slots: list[tuple[str, str, int | None, int | None]],
    meta: dict[str, str | None],
) -> Grid:
    """The pupils' rows from `start` (0-based) as a pupil × slot grid."""
    slot_info = [
        (
            f"{_SLOT_LABEL[slot]} - {MARK_LABEL}",
            f"{_SLOT_LABEL[slot]} - {ABSENCE_LABEL}" if absence_at is not None else None,
        )
        for slot, _, _, absence_at in slots
    ]
    # Column by column: the block under the header transposed once (short rows padded with
    # None, which renders as None like a cell beyond the row's width).
    block = rows[start:]
    columns = list(zip_longest(*block, fillvalue=None))
    blank = [None] * len(block)

    def rendered(p: int | None) -> list[str | None]:
        return render_all(columns[p]) if p is not None and p < len(columns) else blank

    fixed_values = [rendered(positions.get(n)) for n in _NOTES_FIXED]
    marks = [rendered(mark_at) for _, _, mark_at, _ in slots]
    absences = [rendered(absence_at) for _, _, _, absence_at in slots]
    # A row is a pupil unless all its cells are "" or, rendered, all None. The second test
    # only concerns rows without a pupil code.
    keep = [row.count("") != len(row) for row in block]
    codes = fixed_values[_NOTES_FIXED.index("student_code")]
    if None in compress(codes, keep):
        needed = fixed_values + marks + absences
        for i, row in enumerate(block):
            if keep[i] and codes[i] is None and all(c[i] is None for c in needed):
                keep[i] = not all(render(c) is None for c in row)
    # Long format: each pupil row gives one row per slot (pupil-major, slots in column order).
    pupil_rows = list(compress(range(start + 1, start + 1 + len(block)), keep))
    grid = Grid(len(pupil_rows), len(slots))
    grid.constant("sheet", sheet)
    grid.per_outer("sheet_row", pupil_rows)
    for name, column in zip(_NOTES_FIXED[:4], fixed_values[:4], strict=True):
        grid.per_outer(name, list(compress(column, keep)))
    grid.per_inner("slot", [slot for slot, _, _, _ in slots])
    grid.per_row("mark", _interleaved(marks, keep))
    grid.per_row("absence", _interleaved(absences, keep))
    grid.per_outer("remark", list(compress(fixed_values[4], keep)))
    grid.per_inner("slot_label", [label for _, label, _, _ in slots])
    grid.per_inner("mark_column", [m for m, _ in slot_info])
    grid.per_inner("absence_column", [a for _, a in slot_info])
    for name in MARKS_META_COLUMNS:
        grid.constant(name, meta.get(name))
    return grid


def _interleaved(per_slot: list[list[str | None]], keep: list[bool]) -> list[str | None]:
    """Slot columns (one value per block row) as one long column, pupil-major."""
    kept = [compress(column, keep) for column in per_slot]
    return list(chain.from_iterable(zip(*kept, strict=True)))


# -------------------------------------------------------------------------------- tables


def read_table_sheet(sheet: str, rows: Rows, kind: SheetKind, out: dict[str, list]) -> None:
    assert kind.table is not None
    require_complete(kind.table, f"sheet {sheet}, row {kind.header_row + 1}")
    table_columns(kind.table, rows, kind.header_row + 1, range(1, len(rows) + 1), sheet, out)

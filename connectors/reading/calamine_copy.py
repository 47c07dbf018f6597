"""The copy of an xlsx that python-calamine is given: its large worksheets stored (not deflated)
with an empty `<mergeCells>` element just before their `<sheetData>`, every other byte of the
workbook as the school sent it.

Why: python-calamine 0.9.1 reads a sheet's merged cells whenever it loads the sheet
(`get_sheet_by_index` → calamine's `worksheet_merge_cells`), a second inflate and XML pass over
the whole worksheet up to its first `<mergeCells>`, which sits after `<sheetData>`; the reader
never uses merged cells. That pass was ~40 % of calamine's parse of a NotesCC file (297 → 180
us a file, 2,000 files, cells identical). In the copy it stops at the empty element before
the cells, and neither of calamine's passes inflates the sheet again (`check_zip` inflated its
first 8 kB already; the rest is inflated here once).

The reads are those of the original bytes, because the copy is only made when calamine could
not tell them apart, apart from the merged cells:
- the worksheet's stream inflates whole, to its declared size and CRC (else calamine reads the
  original and gives its own verdict on the damage);
- its cells pass (`worksheet_range`) reads the same XML: the inserted element comes before
  `<sheetData>`, among elements that pass skips, and errors name no absolute position;
- what the merged-cells pass read beyond the cells pass (from `</sheetData>` to the end of the
  original `<mergeCells>`, whose references it parses) is plain: empty elements with quoted
  ASCII attributes, then `<mergeCells>` holding only `<mergeCell ref="D9:F9"/>` elements, in
  which calamine finds no error; a worksheet holding anything else there, a comment or CDATA,
  a `<sheetData>` with attributes, or no `<mergeCells>`, is left as it is.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Sequence

from connectors.reading.workbook_safety import DeflatedSheet

_EMPTY_MERGES = b"<mergeCells></mergeCells>"
_SHEET_DATA = b"<sheetData>"
_SHEET_DATA_END = b"</sheetData>"
# From </sheetData> to the end of the first <mergeCells> element, what calamine's merged-cells
# pass reads beyond the cells pass: empty elements with plain attributes (NotesCC's
# <sheetProtection .../>), then <mergeCells> holding only <mergeCell ref="D9:F9"/> elements.
# Plain: ASCII names, printable ASCII values, XML's own spaces; references calamine parses.
# Every repeat is possessive (*+, ++, {m,n}+): what follows a repeat can never start with what
# the repeat takes (a name never holds "=", a value never '"', an element after the empty ones
# is <mergeCells, after the references </mergeCells>), so giving back never leads to a match and
# the pattern matches what its greedy form matches, up to the same end; without the
# backtracking state the match costs half (a NotesCC sheet's 36 references: 16 -> 7 us).
_TO_MERGES_END_RE = re.compile(
    rb"""
    (?: [ \t\r\n]*+ < (?!mergeCells\b) [A-Za-z_][\w.-]*+ (?&ATTRIBUTES) [ \t\r\n]*+ /> )*+
    [ \t\r\n]*+ <mergeCells (?&ATTRIBUTES) [ \t\r\n]*+ >
    (?: [ \t\r\n]*+ <mergeCell [ \t\r\n]++ ref="(?&CELL)(?::(?&CELL))?" [ \t\r\n]*+ /> )*+
    [ \t\r\n]*+ </mergeCells>
    """.replace(
        b"(?&ATTRIBUTES)",
        rb'(?:[ \t\r\n]++[A-Za-z_][\w:.-]*+="[\x20\x21\x23-\x25\x27-\x3b\x3d\x3f-\x7e]*+")*+',
    ).replace(b"(?&CELL)", rb"[A-Z]{1,3}+[1-9][0-9]{0,6}+"),
    re.VERBOSE,
)
_LOCAL = struct.Struct("<4s5H3L2H")  # a local header without extra field
_RECORD_HEAD = struct.Struct("<HHHH3L")  # a directory record's flags, method, time, date,
# CRC-32, compressed and uncompressed sizes (from its byte 8)
_LENGTHS = struct.Struct("<3H")  # a directory record's name, extra field and comment lengths
_DIRECTORY = struct.Struct("<LL")  # the end record's directory size and offset


def calamine_copy(data: bytes, sheets: Sequence[DeflatedSheet]) -> bytes:
    """`data` with the first deflated worksheet of `sheets` (`checked_worksheets(data)`), when
    it can be copied so (see the module doc), appended stored and its directory record pointing
    there (the original entry stays in place, unreferenced); else `data` itself.

    The first worksheet only: a NotesCC workbook's marks sheet, the one sheet calamine reads of
    it; tables and ListEleve sheets seldom hold merged cells, and a sheet without them costs
    the rest of its inflate for nothing (~30 us)."""
    xml = _merges_first(sheets[0]) if sheets else None
    if xml is None:
        return data
    flags, _, _, _, _, _, name, _, record = sheets[0].entry
    end = len(data) - 22
    cd_size, cd_offset = _DIRECTORY.unpack_from(data, end + 12)
    crc, size = zlib.crc32(xml), len(xml)
    flags &= 0x800  # the UTF-8 name flag kept; no data descriptor, no deflate options
    _, _, mtime, mdate, *_ = _RECORD_HEAD.unpack_from(data, record + 8)
    local = _LOCAL.pack(b"PK\x03\x04", 20, flags, 0, mtime, mdate, crc, size, size, len(name), 0)
    stored_record = (
        data[record : record + 8]
        + _RECORD_HEAD.pack(flags, 0, mtime, mdate, crc, size, size)
        + data[record + 28 : record + 42]
        + cd_offset.to_bytes(4, "little")  # the copy's local header, where the directory was
        + data[record + 46 : _record_end(data, record)]
    )
    copy_end = cd_offset + len(local) + len(name) + size
    return b"".join(
        (
            data[:cd_offset],
            local,
            name,
            xml,
            data[cd_offset:record],
            stored_record,
            data[_record_end(data, record) : end],
            data[end : end + 12],
            _DIRECTORY.pack(
                cd_size - _record_end(data, record) + record + len(stored_record), copy_end
            ),
            b"\x00\x00",
        )
    )


def _record_end(data: bytes, record: int) -> int:
    """Where a directory record ends: its 46 bytes, name, extra field and comment."""
    name, extra, comment = _LENGTHS.unpack_from(data, record + 28)
    return int(record + 46 + name + extra + comment)


def _merges_first(sheet: DeflatedSheet) -> bytes | None:
    """The worksheet's XML with an empty `<mergeCells>` before its `<sheetData>`, or None when
    the copy could read otherwise than the original (module doc)."""
    _, _, usize, _, crc, _, _, _, _ = sheet.entry
    inflate = sheet.inflate
    if inflate.eof:
        xml = sheet.head  # the whole stream, its size and CRC checked with the head
    else:
        try:
            xml = sheet.head + inflate.decompress(inflate.unconsumed_tail)
        except zlib.error:
            return None
        if not inflate.eof or len(xml) != usize or zlib.crc32(xml) != crc:
            return None
    cells = xml.find(_SHEET_DATA)
    if cells < 0 or xml.find(b"<sheetData") != cells:
        return None
    cells_end = xml.find(_SHEET_DATA_END, cells)
    if cells_end < 0:
        return None
    merges = _TO_MERGES_END_RE.match(xml, cells_end + len(_SHEET_DATA_END))
    # No comment or CDATA up to there (it could hide a tag from the text searches): "!" is
    # looked for first (one byte, a fast scan); a remark's "!" then costs the slower search.
    if merges is None or (
        xml.find(b"!", 0, merges.end()) >= 0 and xml.find(b"<!", 0, merges.end()) >= 0
    ):
        return None
    return xml[:cells] + _EMPTY_MERGES + xml[cells:]

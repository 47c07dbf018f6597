"""Is a workbook safe to parse? An xlsx's zip directory (entries, sizes, compression ratio,
encrypted entries: F001, F002, F006) and every sheet's dimensions (F006), checked on the raw
bytes before python-calamine sees them. A BIFF .xls's sheets declare their dimensions in
DIMENSIONS records inside its compound file: read with olefile and checked the same way
before calamine opens the workbook (`check_biff`), since calamine sizes a sheet's cells from
that record and a damaged one made it ask for terabytes and abort the worker process."""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib
from collections.abc import Sequence
from typing import Any, NamedTuple

import olefile

from connectors.reading import limits
from connectors.reading.read_result import FileRejected

ZipEntry = tuple[Any, ...]
"""(flag_bits, compress_size, file_size, ...): see `_zip_entries` for the fast path's."""

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
    checked_worksheets(data)


class DeflatedSheet(NamedTuple):
    """A deflated worksheet as `check_zip` read its head: its directory entry, the head (its
    first 8 kB) and the inflater stopped there (the rest of its stream in `unconsumed_tail`)."""

    entry: ZipEntry
    head: bytes
    inflate: Any  # zlib's Decompress object


def checked_worksheets(data: bytes) -> list[DeflatedSheet]:
    """`check_zip`, giving the deflated worksheets whose heads it inflated, in directory order
    (for the reader's copy of the workbook, connectors/reading/calamine_copy.py): none when
    the archive took the `zipfile` module's path."""
    entries = _zip_entries(data)
    if entries is None:
        _check_zip_module(data)
        return []
    _check_entries(entries)
    deflated: list[DeflatedSheet] = []
    for entry in entries:
        if entry[_WORKSHEET]:
            read = _entry_head(data, entry)
            if read is None:
                _check_zip_module(data)
                return []
            head, inflate = read
            _check_head(head)
            if inflate is not None:
                deflated.append(DeflatedSheet(entry, head, inflate))
    return deflated


def _check_entries(entries: Sequence[ZipEntry]) -> None:
    """Entry count, encryption, ratio and total size; `entries` as (flag_bits, compress_size,
    file_size, ...)."""
    if len(entries) > limits.MAX_ZIP_ENTRIES:
        raise FileRejected("F006", f"{len(entries)} zip entries > {limits.MAX_ZIP_ENTRIES}")
    max_ratio, max_total = limits.MAX_COMPRESSION_RATIO, limits.MAX_UNCOMPRESSED_BYTES
    total = 0
    for flag_bits, compress_size, file_size, *_ in entries:
        total += file_size
        if flag_bits & 0x1:
            raise FileRejected("F002", "encrypted zip entry")
        if file_size > limits.RATIO_MIN_BYTES and (file_size > max_ratio * max(compress_size, 1)):
            ratio = file_size // max(compress_size, 1)
            raise FileRejected("F006", f"compression ratio {ratio}:1 > {max_ratio}:1")
    if total > max_total:
        raise FileRejected(
            "F006", f"uncompressed size {total // 2**20} MB > {max_total // 2**20} MB"
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
# is a worksheet, offset of its central directory record)
_WORKSHEET = 7


def _zip_entries(data: bytes) -> list[ZipEntry] | None:
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
    entries: list[ZipEntry] = []
    pos = cd_offset
    unpack = _CENTRAL.unpack_from
    while pos < end:
        record = pos
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
        # A NUL byte looked for as the integer 0: `b"\x00" in raw` first tries its operand as
        # an integer, raising and clearing a TypeError for every entry (~2 k instructions).
        if 0 in raw:
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
        entries.append((flags, csize, usize, method, crc, offset, raw, worksheet, record))
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


def _entry_head(data: bytes, entry: ZipEntry) -> tuple[bytes, Any] | None:
    """The first 8 kB of an entry (what `zipfile` reads with `open(info).read(8192)`) with the
    inflater stopped after them (None for a stored entry), or None when the entry needs the
    `zipfile` module's verdict."""
    flags, csize, usize, method, crc, o, raw, _, _ = entry
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
        inflate = None
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
    return head, inflate


def check_dimensions(rows: int, columns: int) -> None:
    """F006 for a sheet of `rows` × `columns` beyond the limits."""
    if columns > limits.MAX_COLUMNS:
        raise FileRejected("F006", f"sheet {columns} columns wide > {limits.MAX_COLUMNS}")
    if rows > limits.MAX_ROWS:
        raise FileRejected("F006", f"sheet {rows} rows tall > {limits.MAX_ROWS}")
    if rows * columns > limits.MAX_CELLS:
        raise FileRejected("F006", f"sheet {rows}x{columns} cells > {limits.MAX_CELLS}")


_BIFF_STREAMS = ("Workbook", "Book")  # BIFF8; BIFF5/7
_DIMENSIONS = 0x0200


def check_biff(data: bytes) -> None:
    """F006 for an .xls one of whose sheets declares, in its DIMENSIONS record, more rows,
    columns or cells than the limits: the check `check_zip` makes of an xlsx's `<dimension>`.
    python-calamine reserves a sheet's cells from that record when it opens the workbook; one
    damaged byte of a school's ListEleve .xls (a record's type read as DIMENSIONS) made it ask
    for 16 TB, and Rust's allocator aborted the worker, its chunk of schools with it. A first
    row or column past the last is a damaged record: F001 (calamine survives inverted columns,
    but the record it stands for is lost). A compound file or a record stream this check cannot
    follow is left to calamine (F001 there): no workbook is refused for being unusual."""
    try:
        with olefile.OleFileIO(io.BytesIO(data)) as compound:
            name = next((n for n in _BIFF_STREAMS if compound.exists(n)), None)
            if name is None:
                return
            stream = compound.openstream(name).read()
    except Exception:  # not a compound file olefile can follow: calamine decides (F001)
        return
    position, end = 0, len(stream)
    while position + 4 <= end:
        kind, size = struct.unpack_from("<HH", stream, position)
        position += 4
        if kind == _DIMENSIONS and size in (10, 14) and position + size <= end:
            # the first row, one past the last, the first column, one past the last; rows
            # 32-bit in BIFF8, 16-bit in BIFF5/7
            bounds = struct.unpack_from("<IIHH" if size == 14 else "<HHHH", stream, position)
            _check_declared(*bounds)
        position += size


def _check_declared(first_row: int, rows: int, first_column: int, columns: int) -> None:
    """A DIMENSIONS record's bounds: beyond the limits F006; a first row or column past the
    last (calamine subtracts them unsigned: the 16 TB) F001, a damaged workbook. An empty
    sheet declares zeros."""
    if (rows and first_row >= rows) or (columns and first_column >= columns):
        raise FileRejected(
            "F001", "workbook parse error: a sheet's declared dimensions are out of order"
        )
    check_dimensions(rows, columns)

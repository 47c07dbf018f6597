"""What a school sent, before anything is parsed: a plain file name (F007), a size within the
limits (F005 empty, F006 too big), and the format its bytes say ("xlsx", "xls" or "csv"; F002
for an encrypted workbook, F001 for a truncated one or a workbook name on other content)."""

from __future__ import annotations

import re
from pathlib import Path

from connectors.reading import limits
from connectors.reading.csv_text import decode_csv
from connectors.reading.read_result import FileRejected

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ZIP_MAGIC = b"PK\x03\x04"
_ENCRYPTION_STREAMS = (
    "EncryptedPackage".encode("utf-16-le"),
    "EncryptionInfo".encode("utf-16-le"),
)
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
    if len(name.encode("utf-8", errors="replace")) > limits.MAX_NAME_BYTES:
        return False
    return _UNSAFE_CHAR_RE.search(name) is None


def submitted_bytes(path: Path, name: str, data: bytes | None = None) -> bytes:
    """The bytes of the file the school named `name`, once its name and size are checked
    (F007, F005, F006: the size before a byte is read). `data`: the file's bytes already read
    (the ingest hashes and archives them), checked the same way instead of read again."""
    if not safe_file_name(name):
        raise FileRejected("F007", "unsafe file name", value=name)
    size = path.stat().st_size if data is None else len(data)
    if size == 0:
        raise FileRejected("F005", "0 bytes")
    if size > limits.MAX_FILE_BYTES:
        raise FileRejected(
            "F006", f"file size {size // 2**20} MB > {limits.MAX_FILE_BYTES // 2**20} MB"
        )
    return path.read_bytes() if data is None else data


def is_encrypted_ole(data: bytes) -> bool:
    """An OLE2 compound file holding an encrypted OOXML package (Office "encrypt with
    password"): magic D0 CF 11 E0 plus an EncryptedPackage / EncryptionInfo stream name."""
    return data.startswith(OLE_MAGIC) and any(s in data for s in _ENCRYPTION_STREAMS)


def file_format(data: bytes, suffix: str) -> str:
    """ "xlsx", "xls" or "csv" from the bytes (`suffix`, lower case, only decides whether a
    text file named as a workbook is read or refused); F002 for an encrypted OLE package."""
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

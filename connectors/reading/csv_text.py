"""How a CSV file's bytes become text and records: the encoding (UTF-16 by BOM, UTF-8 strictly,
else Windows-1256) and the delimiter (`,` `;` or tab)."""

from __future__ import annotations

import re

from connectors.reading.read_result import FileRejected

# C0 control characters other than tab, LF and CR: their share tells binary content.
_CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 13))
_HTML_MARKERS = (b"<html", b"<!doctype", b"<?xml", b"<table", b"<head", b"<body")


def decode_csv(data: bytes) -> tuple[str, str]:
    """The text of a CSV file and the encoding used: UTF-16 by BOM, UTF-8 (with or without BOM)
    strictly, else Windows-1256. Raises F001 for HTML or binary content."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as exc:
            raise FileRejected("F001", "invalid UTF-16 text") from exc
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(_HTML_MARKERS) or b"<html" in head[:1024]:
        raise FileRejected("F001", "HTML page, not CSV")
    sample = data[:65536]
    if b"\x00" in sample:
        raise FileRejected("F001", "binary content, not CSV")
    controls = len(sample) - len(sample.translate(None, _CONTROL_BYTES))
    if controls > max(8, len(sample) // 100):
        raise FileRejected("F001", "binary content, not CSV")
    if data.startswith(b"\xef\xbb\xbf"):
        try:
            return data.decode("utf-8-sig"), "utf-8-sig"
        except UnicodeDecodeError as exc:
            raise FileRejected("F001", "invalid UTF-8 after BOM") from exc
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("cp1256"), "cp1256"


def sniff_delimiter(text: str) -> str:
    """`,` `;` or tab, whichever occurs most on the first non-empty line (outside quotes)."""
    line = _first_line(text)
    if line is not None:
        unquoted = _QUOTED_RE.sub("", line)
        counts = {d: unquoted.count(d) for d in (",", ";", "\t")}
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] else ","
    return ","


_QUOTED_RE = re.compile(r'"[^"]*"')


def _first_line(text: str) -> str | None:
    """The first non-blank line of `text.splitlines()`, splitting only a growing prefix."""
    size = 4096
    while True:
        head = text[:size]
        lines = head.splitlines()
        if len(head) < len(text):
            lines = lines[:-1]  # may be cut by the prefix
        for line in lines:
            if line.strip():
                return line
        if len(head) == len(text):
            return None
        size *= 4

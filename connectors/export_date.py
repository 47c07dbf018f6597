"""The date an export carries itself, which says how recent a school's list is whatever the
order in which files reach the platform.

Massar names its student lists ``ListEleve_YYYYMMDD.xls``: the name's date is the export's.
Failing that, an ``.xlsx`` workbook's own metadata (``docProps/core.xml``, ``dcterms:created``)
says when it was made. The BIFF ``.xls`` lists Massar writes carry no date inside (no
SummaryInformation stream in the genuine layout's replica), so only their name is read.
"""

from __future__ import annotations

import re
import zipfile
from datetime import date, datetime
from pathlib import Path, PurePosixPath
from xml.etree import ElementTree

LIST_NAME = re.compile(r"ListEleve_(\d{4})(\d{2})(\d{2})(?!\d)", re.IGNORECASE)
CORE_PROPERTIES = "docProps/core.xml"
CREATED = "{http://purl.org/dc/terms/}created"
# Beyond this a core.xml is not metadata but something else: not read.
MAX_CORE_BYTES = 64 * 1024

FILE_NAME, FILE_METADATA = "file name", "file metadata"


def date_in_name(file_name: str) -> date | None:
    """The date of a ``ListEleve_YYYYMMDD`` name (any folder, any extension), or None."""
    found = LIST_NAME.search(PurePosixPath(file_name).name)
    if not found:
        return None
    try:
        return date(*(int(part) for part in found.groups()))
    except ValueError:  # 20231399: not a date
        return None


def date_in_metadata(path: Path) -> date | None:
    """The creation date an ``.xlsx`` workbook records in its metadata, or None (not a zip,
    no core properties, no or unreadable date)."""
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(CORE_PROPERTIES)
            if info.file_size > MAX_CORE_BYTES:
                return None
            root = ElementTree.fromstring(archive.read(info))
    except (OSError, KeyError, zipfile.BadZipFile, ElementTree.ParseError):
        return None
    created = root.find(CREATED)
    text = "" if created is None else (created.text or "").strip()
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).date()
    except ValueError:
        return None


def export_date(path: Path, file_name: str, arrived: date | None = None) -> tuple[date | None, str]:
    """(the export's own date, where it was read: ``file name`` or ``file metadata``), or
    (None, "") when the file carries none. ``path`` is the file's bytes (the archived copy),
    ``file_name`` the name the school gave it. A date after ``arrived`` (the day the file
    reached the inbox) is not believed: a list cannot be exported after it arrived."""
    for found, source in (
        (date_in_name(file_name), FILE_NAME),
        (date_in_metadata(path), FILE_METADATA),
    ):
        if found is not None and (arrived is None or found <= arrived):
            return found, source
    return None, ""

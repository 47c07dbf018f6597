"""How the platform reads one file, without registering anything: `massar inspect FILE`.

The officer's tool when a school says "my file is right": the layout detected, each metadata
value with the cell it came from, the header rows and slot columns, the first rows as they
would be staged, and the findings the file would get on its own. Nothing is written: no
submission, no archive copy, no report.

Cross-record rules (which compare a file with the school's other files, e.g. a marked pupil
missing from the student list) need the school's whole picture and are not run here; the
inspection says so.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from connectors.reading.read_result import SheetLayout
from connectors.school_files import FileRejected, findings_frame, read_submission
from schemas.datasets import DATASETS, SCHOOL_CODE
from tasks.ingest import _rejection, _render_findings
from tasks.validation.submission import validate_submission

_SCHOOL_CODE_RE = re.compile(SCHOOL_CODE)
# Columns of a staged frame that only the platform uses (keys, provenance, parsed copies).
_INTERNAL_SUFFIXES = ("_key", "_value", "_valid")


@dataclass
class Inspection:
    """What reading `file_name` gives, as `massar inspect` prints it."""

    file_name: str
    size: int
    sha256: str
    school_code: str
    dataset: str | None = None
    dataset_title: str | None = None
    source_format: str | None = None
    encoding: str | None = None
    layouts: list[SheetLayout] = field(default_factory=list)
    rows_read: int = 0
    rows_accepted: int = 0
    rows_quarantined: int = 0
    staged_head: pl.DataFrame | None = None
    findings: list[dict[str, Any]] = field(default_factory=list)
    rejected: bool = False

    @property
    def verdict(self) -> str:
        if self.rejected:
            return "rejected"
        if self.rows_quarantined and self.rows_accepted:
            return "partially_accepted"
        if self.rows_quarantined:
            return "rejected"
        return "accepted"


def school_code_for(path: Path, given: str | None) -> str | None:
    """The school a file belongs to: the one given, else the name of the folder it lies in when
    that is a school code (inbox/<school>/...), else None."""
    if given:
        return given.strip().upper()
    for parent in path.resolve().parents:
        if _SCHOOL_CODE_RE.match(parent.name):
            return parent.name
    return None


def inspect_file(
    path: Path, *, school_code: str, file_name: str | None = None, rows: int = 5
) -> Inspection:
    """Read, normalise and validate `path` as a submission of `school_code` would be, keeping the
    first `rows` staged rows; never raises for a bad file (a rejection is part of the answer)."""
    name = file_name or path.name
    data = path.read_bytes()
    found = Inspection(
        file_name=name,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        school_code=school_code,
    )
    try:
        result = read_submission(path, school_code=school_code, file_name=name)
    except FileRejected as error:
        found.rejected = True
        found.findings = [_rejection(error, name, school_code)]
        return found
    found.dataset = result.dataset
    found.dataset_title = DATASETS[result.dataset].title_fr
    found.source_format = result.source_format
    found.encoding = result.encoding
    found.layouts = list(result.layouts)
    found.rows_read = result.rows_read
    base = {"file": name, "school": school_code}
    if result.findings:
        found.findings.extend(_render_findings(findings_frame(result.findings), base))
    validated = validate_submission(result.dataset, result.frame, school_code=school_code)
    found.rows_accepted = validated.rows_accepted
    found.rows_quarantined = validated.rows_quarantined
    found.findings.extend(_render_findings(validated.findings, base))
    found.staged_head = _visible(validated.accepted.head(rows))
    return found


def _visible(frame: pl.DataFrame) -> pl.DataFrame:
    """The staged columns a person recognises (not the platform's keys and parsed copies)."""
    keep = [c for c in frame.columns if not c.endswith(_INTERNAL_SUFFIXES) and c != "_row"]
    return frame.select(keep)

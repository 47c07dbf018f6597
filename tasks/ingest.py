"""Ingest one school's batch of files: register, archive, read, validate, stage or quarantine.

Plain functions; :mod:`flows.ingest` wraps them as Prefect tasks. Nothing here logs a pupil's
name, code or birth date: outcomes carry counts only, and findings go to the control database
and to the school's own report.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import stat
import time
import traceback
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import polars as pl
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from connectors.export_date import export_date
from connectors.school_files import FileRejected, findings_frame, read_submission, safe_file_name
from ground.settings import Settings
from schemas.datasets import DATASETS
from schemas.rules import render
from tasks.coverage import owed_sections
from tasks.disk_space import ensure_space
from tasks.feedback import ReportFinding, ReportSubmission, write_school_report
from tasks.inbox_digests import SchoolDigests, sha256_file
from tasks.resends import Resend, hold_finding, shrinking_resends
from tasks.validation.cross_record import (
    PROVINCE_RULE_IDS,
    cross_check_province,
    cross_check_school,
)
from tasks.validation.submission import validate_submission
from warehouse.control import ControlDatabase
from warehouse.staging import read_staged, write_quarantined, write_staged
from warehouse.submissions import (
    ActiveSubmission,
    active_rows_by_school,
    active_submissions,
    add_findings,
    delete_findings,
    known_files,
    known_files_by_school,
    record_outcomes,
    recorded_since,
    register_submissions,
    school_findings,
    schools_with_findings,
    unfinished_files,
)

log = logging.getLogger(__name__)

SCHOOL_FOLDER = re.compile(r"^\d{5}[A-Z]$")
PROVENANCE = ("submission_id", "sheet", "sheet_row")


@dataclass
class SchoolOutcome:
    """What happened to one school's batch: counts only (safe for logs and artifacts)."""

    school_code: str
    files_seen: int = 0
    already_known: int = 0
    new_submissions: list[int] = field(default_factory=list)
    accepted: int = 0
    partially_accepted: int = 0
    rejected: int = 0
    held: int = 0  # resends kept out of the warehouse until an officer confirms them
    rows_read: int = 0
    rows_accepted: int = 0
    rows_quarantined: int = 0
    errors: int = 0
    unreadable: int = 0  # files the platform itself failed to read (a fault of the platform)
    queries: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    # CPU per step: the process's (polars' threads included; a worker runs one school at once)
    cpu_seconds: dict[str, float] = field(default_factory=dict)

    @staticmethod
    def clock() -> tuple[float, float]:
        """Now, as (wall, process CPU) seconds: the start of a step for `add_time`."""
        return time.perf_counter(), time.process_time()

    def add_time(self, step: str, since: tuple[float, float]) -> None:
        wall, cpu = since
        self.seconds[step] = self.seconds.get(step, 0.0) + time.perf_counter() - wall
        self.cpu_seconds[step] = self.cpu_seconds.get(step, 0.0) + time.process_time() - cpu

    def as_row(self) -> dict[str, Any]:
        row = asdict(self)
        row["new_submissions"] = len(self.new_submissions)
        row["seconds"] = {k: round(v, 3) for k, v in self.seconds.items()}
        row["cpu_seconds"] = {k: round(v, 3) for k, v in self.cpu_seconds.items()}
        return row


@dataclass
class _Batch:
    """One new submission on its way through validation (kept in memory for the school)."""

    submission_id: int
    file_name: str
    dataset: str = ""
    school_year: str = ""
    scope_key: str = ""
    rows_read: int = 0
    accepted: pl.DataFrame | None = None
    quarantined: pl.DataFrame | None = None
    findings: list[dict[str, Any]] = field(default_factory=list)
    rejected: str = ""
    exported_on: date | None = None  # the date a student list carries (connectors/export_date)
    exported_on_source: str = ""


# ---------------------------------------------------------------------------------------------
# Inbox and archive


def discover_inbox(inbox: Path) -> tuple[dict[str, list[Path]], list[str]]:
    """Files waiting per school folder (``inbox/<school_code>/...``), and folders that are not
    a school code. ``inbox`` may also be one school's folder. Hidden files (temporary uploads)
    are left alone. Links are never followed: a school folder that is a link is not a school
    (it is listed with the folders that are not school codes), and a link inside a school's
    folder is skipped with a log line."""
    schools: dict[str, list[Path]] = {}
    strangers: list[str] = []
    if not inbox.is_dir():
        return schools, strangers
    folders = [inbox] if SCHOOL_FOLDER.match(inbox.name) else sorted(inbox.iterdir())
    for folder in folders:
        if folder.name.startswith("."):
            continue
        linked = folder != inbox and folder.is_symlink()
        if linked or not folder.is_dir() or not SCHOOL_FOLDER.match(folder.name):
            if linked:
                _warn(
                    f"{folder} is a link, not a school's folder, and is not ingested: the "
                    "platform never follows links in the inbox; put the school's files in a "
                    "real folder."
                )
            strangers.append(folder.name)
            continue
        schools[folder.name] = _school_files(folder)
    return schools, strangers


def _school_files(folder: Path) -> list[Path]:
    """The files of a school's folder and its sub-folders, hidden names and links skipped
    (a link is logged: it may point anywhere on the server). The directory entries' own types
    are used (no stat per file: a province's inbox holds ~30,000 files)."""
    files: list[Path] = []
    pending = [folder]
    while pending:
        here = pending.pop()
        try:
            entries = list(os.scandir(here))
        except OSError:  # removed or unreadable meanwhile: nothing to take from it
            continue
        for entry in entries:
            if _hidden(entry.name):
                continue
            if entry.is_symlink():
                _warn(
                    f"{here / entry.name} is a link and is skipped: the platform never follows "
                    "links in the inbox; put the file itself there."
                )
            elif entry.is_dir(follow_symlinks=False):
                pending.append(here / entry.name)
            elif entry.is_file(follow_symlinks=False):
                files.append(here / entry.name)
    return sorted(files)


def _warn(sentence: str) -> None:
    try:
        from prefect import get_run_logger

        get_run_logger().warning(sentence)
    except Exception:  # outside a run (tests of the plain functions)
        log.warning(sentence)


@dataclass(frozen=True)
class StrayEntry:
    """Something at the inbox's root that is not a school folder: never ingested."""

    name: str
    kind: str  # file | folder | link (never followed)
    modified: datetime


def stray_entries(inbox: Path) -> list[StrayEntry]:
    """Files and folders at the inbox's root that no ingest will read (a loose file, a folder
    not named after a school code), oldest first. Hidden names (uploads in progress) are not
    counted. Names only: safe for the status and the ingest artifact."""
    if not inbox.is_dir() or SCHOOL_FOLDER.match(inbox.name):
        return []
    found = []
    for entry in inbox.iterdir():
        link = entry.is_symlink()
        if entry.name.startswith(".") or (
            not link and entry.is_dir() and SCHOOL_FOLDER.match(entry.name)
        ):
            continue
        try:
            modified = datetime.fromtimestamp(entry.lstat().st_mtime, UTC)
        except OSError:  # removed meanwhile
            continue
        kind = "link" if link else "folder" if entry.is_dir() else "file"
        found.append(StrayEntry(entry.name, kind, modified))
    return sorted(found, key=lambda e: (e.modified, e.name))


def stray_sentence(strays: list[StrayEntry], inbox: Path | str = "inbox") -> str:
    """One sentence for the officer: what lies at the inbox's root and what to do with it."""
    if not strays:
        return ""
    files = sum(1 for e in strays if e.kind == "file")
    links = sum(1 for e in strays if e.kind == "link")
    folders = len(strays) - files - links
    what = " and ".join(
        part
        for part in (
            f"{files} file(s)" if files else "",
            f"{folders} folder(s) not named after a school code" if folders else "",
            f"{links} link(s), which are never followed," if links else "",
        )
        if part
    )
    marks = {"folder": "/", "link": " (link)"}
    shown = ", ".join(e.name + marks.get(e.kind, "") for e in strays[:10])
    more = f" and {len(strays) - 10} more" if len(strays) > 10 else ""
    return (
        f"{what} at the root of {inbox} will never be ingested ({shown}{more}): move each file "
        "into the folder of the school that sent it (inbox/<school code>/, e.g. "
        "inbox/27783Y/), or delete it."
    )


def _hidden(name: str) -> bool:
    """A dot-file (e.g. an upload still under its temporary name). A name starting with ``..``
    is not hidden: it is a suspicious name the school must hear about (F007)."""
    return name.startswith(".") and not name.startswith("..")


def split_known_schools(
    settings: Settings, schools: dict[str, list[Path]]
) -> tuple[dict[str, list[Path]], list[SchoolOutcome]]:
    """Schools with at least one file not seen before (to ingest), and the outcome of those
    whose every file is already a submission (nothing to do: no worker is started for them).
    A file's digest comes from the last pre-check's memo when its status is unchanged
    (tasks/inbox_digests.py); other files are hashed, in one thread: they are small (10-30 KB),
    and two threads handing the GIL to each other at every read took an unchanged province's
    31 k files from 0.5 s to 2.7 s."""
    database = ControlDatabase(settings.resolved_database_url)
    try:
        known = known_files_by_school(database)
    finally:
        database.dispose()

    pending: dict[str, list[Path]] = {}
    done: list[SchoolOutcome] = []
    for code, files in schools.items():
        seen = known.get(code, set())
        digests = SchoolDigests(settings.home, code)
        # stops at the school's first new file: its worker will remember its files' digests
        if files and all(digests.digest(path) in seen for path in files):
            done.append(SchoolOutcome(code, files_seen=len(files), already_known=len(files)))
            _save_digests(digests)
        else:
            pending[code] = files
    return pending, done


def _save_digests(digests: SchoolDigests) -> None:
    try:
        digests.save()
    except OSError as error:  # a cache: the next pre-check hashes the school's files again
        _warn(
            f"The inbox digests' memo {digests.memo.name} could not be written "
            f"({error.strerror}): the next ingest reads the school's files again to know "
            "which are new."
        )


def archive_original(archive: Path, path: Path, sha256: str) -> Path:
    """Keep the file exactly as received under ``archive/<aa>/<sha256>`` (read-only).

    The name is the content's hash, so a school's file name (whatever it holds) never
    becomes a path, and the same bytes are stored once.
    """
    target = archive / sha256[:2] / sha256
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{sha256}.{os.getpid()}.tmp")
    try:
        shutil.copyfile(path, temporary)
    except OSError:  # e.g. a full disk: no half-copied file is left behind
        temporary.unlink(missing_ok=True)
        raise
    os.chmod(temporary, 0o444)
    os.replace(temporary, target)
    return target


# Files up to this size are read once: hashed, archived and parsed from the same bytes (held
# in memory for the school's batch); larger ones are hashed, copied and read from the archive.
READ_ONCE_BYTES = 4 << 20


def archive_content(archive: Path, data: bytes, sha256: str) -> tuple[Path, bool]:
    """`archive_original` for a file's bytes already read (``sha256`` is theirs): written to
    a temporary name, read-only, then renamed. Returns the archived file and whether it holds
    these bytes: False when something else already stands in its place (not a regular file of
    their size, e.g. a folder), which the caller must not parse around."""
    target = archive / sha256[:2] / sha256
    try:
        existing = target.stat()
    except FileNotFoundError:
        existing = None
    if existing is not None:
        return target, stat.S_ISREG(existing.st_mode) and existing.st_size == len(data)
    temporary = target.with_name(f".{sha256}.{os.getpid()}.tmp")
    try:
        descriptor = _create_read_only(temporary)
        with open(descriptor, "wb") as handle:
            os.fchmod(descriptor, 0o444)
            handle.write(data)
    except OSError:  # e.g. a full disk: no half-written file is left behind
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, target)
    return target, True


def _create_read_only(path: Path) -> int:
    """A descriptor of a new file at ``path`` (read-only once closed), its folder made when
    missing: an archive's 256 folders exist after the first files, so they are made on a
    failed open rather than asked for before each file (a ``mkdir`` that fails costs ~10 us,
    and a school's batch reached most of the folders for the first time)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    try:
        return os.open(path, flags, 0o444)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, flags, 0o444)


# ---------------------------------------------------------------------------------------------
# Findings


def _finding(
    rule_id: str,
    params: dict[str, Any],
    *,
    sheet: str | None = None,
    sheet_row: int | None = None,
    column_name: str | None = None,
    value: str | None = None,
    severity: str | None = None,
) -> dict[str, Any]:
    from schemas.rules import catalogue

    message_ar, message_fr = render(rule_id, params)
    return {
        "sheet": sheet,
        "sheet_row": sheet_row,
        "column_name": column_name,
        "value": value,
        "rule_id": rule_id,
        "severity": severity or catalogue()[rule_id].severity,
        "message_ar": message_ar,
        "message_fr": message_fr,
    }


def _render_findings(findings: pl.DataFrame, base: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of a validation findings frame turned into control-database rows with messages."""
    rows = []
    for item in findings.iter_rows(named=True):
        params = dict(base)
        if item.get("params"):
            params.update(json.loads(item["params"]))
        params.setdefault("column", item.get("column_name") or "")
        params.setdefault("value", item.get("value") or "")
        params.setdefault("sheet", item.get("sheet") or "")
        params.setdefault("row", item.get("sheet_row") or "")
        rows.append(
            _finding(
                item["rule_id"],
                params,
                sheet=item.get("sheet") or None,
                sheet_row=item.get("sheet_row"),
                column_name=item.get("column_name"),
                value=item.get("value"),
                severity=item.get("severity"),
            )
        )
    return rows


def _rejection(error: FileRejected, file_name: str, school_code: str) -> dict[str, Any]:
    params = {
        "file": file_name,
        "school": school_code,
        "detail": error.detail,
        "column": error.column or "",
        "value": error.value or "",
        "where": f" ({error.detail})" if error.rule_id == "F008" and error.detail else "",
    }
    return _finding(error.rule_id, params, column_name=error.column, value=error.value)


# ---------------------------------------------------------------------------------------------
# One school


def _scope(dataset: str, school_code: str, frame: pl.DataFrame) -> tuple[str, str]:
    """The school year of a submission and the key of the rows it replaces."""
    first = frame.row(0, named=True) if frame.height else {}
    year = str(first.get("school_year") or "")
    values = []
    for column in DATASETS[dataset].scope:
        value = school_code if column == "school_code" else first.get(column)
        values.append("" if value is None else str(value))
    return year, "|".join([dataset, *values])


def _read(
    path: Path,
    file_name: str,
    school_code: str,
    submission_id: int,
    outcome: SchoolOutcome,
    data: bytes | None = None,
) -> tuple[_Batch, pl.DataFrame | None]:
    """Read one archived file (``data``: its bytes, when still held); a file-level problem
    becomes a rejected batch."""
    batch = _Batch(submission_id=submission_id, file_name=file_name)
    started = outcome.clock()
    try:
        # Sub-folders of the school's inbox folder are fine; each part must be a safe name.
        parts = PurePosixPath(file_name).parts
        if not all(safe_file_name(part) for part in parts):
            raise FileRejected("F007", "file name")
        result = read_submission(path, school_code=school_code, file_name=parts[-1], data=data)
    except FileRejected as error:
        batch.rejected = error.rule_id
        batch.findings = [_rejection(error, file_name, school_code)]
        return batch, None
    except Exception as error:  # a reader bug must not stop the school's other files
        # The traceback is for developers; the message may quote cell values, so it stays out.
        log.error(
            "reading submission %s failed unexpectedly (%s):\n%s",
            submission_id,
            type(error).__name__,
            "".join(traceback.format_tb(error.__traceback__)),
        )
        batch.rejected = "F001"
        outcome.unreadable += 1
        batch.findings = [
            _rejection(FileRejected("F001", type(error).__name__), file_name, school_code)
        ]
        return batch, None
    finally:
        outcome.add_time("read", started)
    frame = result.frame  # its submission_id is added with the dataset's other files' (_validate)
    batch.dataset = result.dataset
    batch.rows_read = frame.height
    if result.findings:  # the reader's own file-level queries (F010, F011)
        base = {"file": file_name, "school": school_code}
        batch.findings.extend(_render_findings(findings_frame(result.findings), base))
    batch.school_year, batch.scope_key = _scope(result.dataset, school_code, frame)
    return batch, frame


def _stack(parts: list[pl.DataFrame]) -> pl.DataFrame:
    """Frames one under the other: vertically when they share their columns and types (the
    parts of one validated frame), else with missing columns null and types widened."""
    if len(parts) == 1:
        return parts[0]
    try:  # comparing hundreds of schemas in Python costs more than the concat itself
        return pl.concat(parts, how="vertical")
    except pl.exceptions.PolarsError:
        return pl.concat(parts, how="diagonal_relaxed")


def _validate(
    batches: list[_Batch],
    frames: list[tuple[_Batch, pl.DataFrame]],
    school_code: str,
    outcome: SchoolOutcome,
) -> dict[str, list[pl.DataFrame]]:
    """Validate the school's new rows one dataset at a time (all files of a dataset together:
    a school sends hundreds of small NotesCC workbooks) and hand each submission its part.
    Returns each dataset's validated rows (accepted and quarantined, with their
    submission_id): the new part of the school's picture for the cross-record rules."""
    started = outcome.clock()
    by_id = {b.submission_id: b for b in batches}
    grouped: dict[str, list[tuple[_Batch, pl.DataFrame]]] = defaultdict(list)
    for batch, frame in frames:
        grouped[batch.dataset].append((batch, frame))
    validated_rows: dict[str, list[pl.DataFrame]] = {}
    for dataset, parts in grouped.items():
        # One frame per dataset, each row with its file's submission id (one column for all
        # the dataset's files rather than one polars call per file), in one chunk: stacked,
        # its columns keep a chunk per file (hundreds of NotesCC workbooks), and every select
        # of validation, of the cross-record rules and of the staged Parquet pays for each
        # (a school's marks: ~3 ms a select over 234 chunks, 0.02 ms over one).
        combined = _stack([frame for _, frame in parts]).rechunk()
        ids = pl.DataFrame(
            {"id": [b.submission_id for b, _ in parts], "n": [f.height for _, f in parts]},
            schema={"id": pl.Int64, "n": pl.UInt32},
        ).select(pl.col("id").repeat_by("n").explode().alias("submission_id"))
        combined = combined.with_columns(ids.get_column("submission_id"))
        validated = validate_submission(dataset, combined, school_code=school_code)
        validated_rows[dataset] = [validated.accepted, validated.quarantined]
        accepted = _slices(validated.accepted, [b.submission_id for b, _ in parts])
        quarantined = _slices(validated.quarantined, [b.submission_id for b, _ in parts])
        for (batch, _), kept, held in zip(parts, accepted, quarantined, strict=True):
            batch.accepted, batch.quarantined = kept, held
        for (sid,), part in validated.findings.partition_by("submission_id", as_dict=True).items():
            batch = by_id[int(sid)]
            batch.findings.extend(
                _render_findings(part, {"file": batch.file_name, "school": school_code})
            )
    outcome.add_time("validate", started)
    return validated_rows


def _slices(frame: pl.DataFrame, submission_ids: list[int]) -> list[pl.DataFrame]:
    """Each submission's rows of a validated frame, in ``submission_ids``' order: validation
    keeps the rows in the order they came, one submission after the other, so each part is a
    slice (no copy) rather than a partition."""
    if frame.height == 0:  # the usual quarantine: nothing to look for
        return [frame] * len(submission_ids)
    runs = frame.get_column("submission_id").rle().struct.unnest().rows()  # (length, id)
    counts = {sid: n for n, sid in runs}
    order = [sid for sid in submission_ids if sid in counts]
    if len(counts) != len(runs) or order != [sid for _, sid in runs]:  # not in order after all
        by_id = frame.partition_by("submission_id", as_dict=True)
        return [by_id.get((sid,), frame.clear()) for sid in submission_ids]
    parts, offset = [], 0
    for sid in submission_ids:
        n = counts.get(sid, 0)
        parts.append(frame.slice(offset, n))
        offset += n
    return parts


def _school_picture(
    settings: Settings,
    database: ControlDatabase,
    school_code: str,
    batches: list[_Batch],
    validated: dict[str, list[pl.DataFrame]],
) -> dict[str, pl.DataFrame]:
    """Every row the school currently stands by, per dataset: this batch's rows (accepted and
    quarantined, since a quarantined pupil is still on the school's list: ``validated``, as
    `_validate` returned them) and the staged rows of earlier submissions this batch does not
    replace."""
    replaced = {b.scope_key for b in batches if b.scope_key and not b.rejected}
    frames: dict[str, list[pl.DataFrame]] = defaultdict(list)
    for dataset, (accepted, quarantined) in validated.items():
        if quarantined.height == 0:
            frames[dataset].append(accepted)
        else:  # file by file, each file's accepted rows before its quarantined ones
            both = _stack([accepted, quarantined])
            frames[dataset].append(both.sort("submission_id", maintain_order=True))
    earlier: dict[str, list[int]] = defaultdict(list)
    for submission in active_submissions(database, school_code):
        if submission.scope_key not in replaced and submission.submission_id not in {
            b.submission_id for b in batches
        }:
            earlier[submission.dataset].append(submission.submission_id)
    for dataset, ids in earlier.items():
        staged = read_staged(settings.staging, school_code, dataset, ids)
        if staged is not None:
            frames[dataset].append(staged)
    return {name: _stack(parts) for name, parts in frames.items() if parts}


def _apply_cross_findings(batches: list[_Batch], findings: pl.DataFrame, school_code: str) -> None:
    """Attach cross-record findings to this batch's submissions; rows with a new error move
    from accepted to quarantined."""
    by_id = {b.submission_id: b for b in batches}
    if findings.height == 0:
        return
    findings = findings.filter(pl.col("submission_id").is_in(list(by_id)))
    for (submission_id,), part in findings.group_by("submission_id"):
        batch = by_id[int(submission_id)]
        batch.findings.extend(
            _render_findings(part, {"file": batch.file_name, "school": school_code})
        )
        blocking = part.filter(pl.col("severity") == "error").select("sheet", "sheet_row")
        if blocking.height and batch.accepted is not None and batch.accepted.height:
            keys = blocking.unique().with_columns(pl.lit(True).alias("_blocked"))
            marked = batch.accepted.join(
                keys, on=["sheet", "sheet_row"], how="left", nulls_equal=True
            )
            moved = marked.filter(pl.col("_blocked").fill_null(False)).drop("_blocked")
            batch.accepted = marked.filter(~pl.col("_blocked").fill_null(False)).drop("_blocked")
            if moved.height:
                batch.quarantined = (
                    moved
                    if batch.quarantined is None
                    else pl.concat([batch.quarantined, moved], how="diagonal_relaxed")
                )


def _blocking_rules(batch: _Batch) -> pl.DataFrame:
    """The quarantined rows with the ids of the error rules that blocked each of them."""
    assert batch.quarantined is not None
    rules: dict[tuple[str, int], set[str]] = defaultdict(set)
    for finding in batch.findings:
        if finding["severity"] == "error" and finding["sheet_row"] is not None:
            rules[(finding["sheet"] or "", finding["sheet_row"])].add(finding["rule_id"])
    keys = batch.quarantined.select(pl.col("sheet").fill_null(""), "sheet_row").rows()
    return batch.quarantined.with_columns(
        pl.Series(
            "blocking_rules", [",".join(sorted(rules.get(key, ()))) for key in keys], dtype=pl.Utf8
        )
    )


@contextmanager
def control_handle(
    settings: Settings, database: ControlDatabase | None = None
) -> Iterator[ControlDatabase]:
    """``database`` when given (a chunk's shared handle, left open), else one opened for the
    block and closed after it."""
    if database is not None:
        yield database
        return
    own = ControlDatabase(settings.resolved_database_url)
    try:
        yield own
    finally:
        own.dispose()


def ingest_school(
    settings: Settings,
    school_code: str,
    files: list[Path],
    folder: Path | None = None,
    database: ControlDatabase | None = None,
) -> SchoolOutcome:
    """Ingest the files of one school folder of the inbox; returns counts.

    Each new file (by sha256) becomes a submission: archived, read, validated row by row and
    across the school's datasets, its rows staged or quarantined, its findings recorded. Files
    already known are skipped, so running again is safe and cheap. ``database``: a handle
    shared by the schools of a chunk (its connection and compiled statements kept); without
    it, one is opened and closed for the school.
    """
    outcome = SchoolOutcome(school_code=school_code, files_seen=len(files))
    folder = folder or settings.inbox / school_code
    with control_handle(settings, database) as database:
        started = outcome.clock()
        digests = SchoolDigests(settings.home, school_code)  # before any file is read
        statuses = [path.stat() for path in files]
        # The archive keeps each new file: a full disk is a sentence before anything is done.
        ensure_space(
            settings.archive,
            sum(status.st_size for status in statuses),
            f"The ingest of school {school_code}",
        )
        known = known_files(database, school_code)
        # Files a run that died registered but never recorded: done again (this run holds
        # the school's lease, tasks/leases.py), their half-written staged rows forgotten.
        unfinished = unfinished_files(database, school_code)
        for sha256 in unfinished:
            known.pop(sha256, None)
        forget_unfinished(settings, school_code, set(unfinished.values()))
        arrivals: list[dict[str, Any]] = []
        contents: list[bytes | None] = []  # each arrival's bytes, parsed without reading again
        for path, status in zip(files, statuses, strict=True):
            data = path.read_bytes() if status.st_size <= READ_ONCE_BYTES else None
            sha256 = sha256_file(path) if data is None else hashlib.sha256(data).hexdigest()
            digests.remember(path, status, sha256)  # the next pre-check need not read it again
            if sha256 in known:
                outcome.already_known += 1
                continue
            known[sha256] = 0  # the same bytes twice in one batch are one submission
            try:
                file_name = path.relative_to(folder).as_posix()
            except ValueError:
                file_name = path.name
            if data is None:
                archived = archive_original(settings.archive, path, sha256)
                status = path.stat()
            else:
                archived, whole = archive_content(settings.archive, data, sha256)
                if not whole:  # read back from the archive: its fault shows there (F001)
                    data = None
            contents.append(data)
            arrivals.append(
                {
                    "school_code": school_code,
                    "file_name": file_name,
                    "sha256": sha256,
                    "size_bytes": status.st_size if data is None else len(data),
                    "archive_path": str(archived),
                    # when it landed in the inbox, not when this task got to it
                    "arrived_at": datetime.fromtimestamp(status.st_mtime, UTC),
                }
            )
        ids = register_submissions(database, arrivals)
        _save_digests(digests)
        outcome.new_submissions.extend(ids)
        outcome.add_time("register", started)
        if not ids:
            return outcome

        batches: list[_Batch] = []
        frames: list[tuple[_Batch, pl.DataFrame]] = []
        for index, (arrival, submission_id) in enumerate(zip(arrivals, ids, strict=True)):
            # Exactly the bytes recorded, whatever happens to the inbox: those hashed and
            # archived, else read from the archive.
            data, contents[index] = contents[index], None
            batch, frame = _read(
                Path(arrival["archive_path"]),
                arrival["file_name"],
                school_code,
                submission_id,
                outcome,
                data,
            )
            if batch.dataset == "students":  # decides which school keeps a pupil listed twice
                arrived = arrival["arrived_at"].astimezone(settings.zone).date()
                batch.exported_on, batch.exported_on_source = export_date(
                    Path(arrival["archive_path"]), arrival["file_name"], arrived
                )
            batches.append(batch)
            if frame is not None and frame.height:
                frames.append((batch, frame))
        validated = _validate(batches, frames, school_code, outcome)

        started = outcome.clock()
        readable = [b for b in batches if not b.rejected]
        if readable:
            picture = _school_picture(settings, database, school_code, readable, validated)
            cross = cross_check_school(picture, school_code=school_code)
            _apply_cross_findings(readable, cross, school_code)
        outcome.add_time("cross", started)

        started = outcome.clock()
        _store(settings, database, school_code, batches, outcome)
        outcome.add_time("write", started)
    return outcome


def count_recorded_since(
    settings: Settings, outcome: SchoolOutcome, since: datetime
) -> SchoolOutcome:
    """``outcome`` of a school ingested again after the worker that had its chunk died, with
    the files that worker had already recorded (since ``since``, this run's start) counted as
    this run's new submissions: the second time they read as already known, and the run's
    summary would say the school sent nothing new. Their states, rows and findings are read
    back from the control database as that worker recorded them."""
    ours = set(outcome.new_submissions)
    with control_handle(settings, None) as database:
        recorded = recorded_since(database, outcome.school_code, since)
    for done in recorded:
        if done.submission_id in ours or outcome.already_known == 0:
            continue
        outcome.already_known -= 1
        outcome.new_submissions.append(done.submission_id)
        setattr(outcome, done.state, getattr(outcome, done.state) + 1)
        outcome.held += done.held
        outcome.rows_read += done.rows_read
        outcome.rows_accepted += done.rows_accepted
        outcome.rows_quarantined += done.rows_quarantined
        outcome.errors += done.errors
        outcome.queries += done.queries
    return outcome


def forget_unfinished(settings: Settings, school_code: str, submission_ids: set[int]) -> int:
    """Delete the school's staged and quarantined batch files holding rows of submissions a
    dead run never recorded (named ``<first>-<last>.parquet``: such a batch holds only that
    run's submissions); returns how many were deleted."""
    deleted = 0
    if not submission_ids:
        return deleted
    for root in (settings.staging, settings.quarantine):
        for path in (root / school_code).glob("*/*.parquet"):
            first, _, last = path.stem.partition("-")
            if not (first.isdigit() and last.isdigit()):
                continue
            if any(int(first) <= sid <= int(last) for sid in submission_ids):
                path.unlink(missing_ok=True)
                deleted += 1
    return deleted


def _state(batch: _Batch) -> tuple[str, str]:
    accepted = 0 if batch.accepted is None else batch.accepted.height
    quarantined = 0 if batch.quarantined is None else batch.quarantined.height
    if batch.rejected:
        return "rejected", f"file-level finding {batch.rejected}"
    if accepted == 0 and quarantined:
        return "rejected", "every row has an error"
    if quarantined:
        return "partially_accepted", ""
    return "accepted", ""


def _store(
    settings: Settings,
    database: ControlDatabase,
    school_code: str,
    batches: list[_Batch],
    outcome: SchoolOutcome,
) -> None:
    """One staged and one quarantine file per dataset for the batch, then every outcome and
    finding in one transaction."""
    staged: dict[str, list[pl.DataFrame]] = defaultdict(list)
    held: dict[str, list[pl.DataFrame]] = defaultdict(list)
    resends = [
        Resend(b.submission_id, b.file_name, b.dataset, b.scope_key, b.accepted)
        for b in batches
        if _state(b)[0] != "rejected"
    ]
    holds = shrinking_resends(settings, database, school_code, resends)
    records = []
    for batch in batches:
        state, detail = _state(batch)
        accepted = 0 if batch.accepted is None else batch.accepted.height
        quarantined = 0 if batch.quarantined is None else batch.quarantined.height
        if batch.accepted is not None and accepted and state != "rejected":
            staged[batch.dataset].append(batch.accepted)
        if quarantined:
            held[batch.dataset].append(_blocking_rules(batch))
        hold = holds.get(batch.submission_id)
        if hold is not None:  # staged, but left out of the warehouse until confirmed
            batch.findings.append(hold_finding(batch.file_name, batch.submission_id, hold))
            outcome.held += 1
        records.append(
            {
                "submission_id": batch.submission_id,
                "dataset": batch.dataset,
                "state": state,
                "school_year": batch.school_year,
                "scope_key": batch.scope_key if state != "rejected" else "",
                "rows_read": batch.rows_read,
                "rows_accepted": accepted,
                "rows_quarantined": quarantined,
                "findings": batch.findings,
                "detail": detail,
                "hold_rows_before": None if hold is None else hold.lines_before,
                "hold_rows_after": None if hold is None else hold.lines_after,
                "exported_on": batch.exported_on,
                "exported_on_source": batch.exported_on_source,
            }
        )
        setattr(outcome, state, getattr(outcome, state) + 1)
        outcome.rows_read += batch.rows_read
        outcome.rows_accepted += accepted
        outcome.rows_quarantined += quarantined
        outcome.errors += sum(1 for f in batch.findings if f["severity"] == "error")
        outcome.queries += sum(1 for f in batch.findings if f["severity"] == "query")
    for dataset, parts in staged.items():
        write_staged(settings.staging, school_code, dataset, _stack(parts))
    for dataset, parts in held.items():
        write_quarantined(settings.quarantine, school_code, dataset, _stack(parts))
    record_outcomes(database, records)


# ---------------------------------------------------------------------------------------------
# Province and reports


# The province check's fingerprint (warehouse/output_fingerprints.py): its inputs are the
# active student lists (a staged list never changes under its submission id) and its code.
PROVINCE_CHECK = "province_check"
_PROVINCE_CHECK_CODE = (
    "tasks/ingest.py",
    "tasks/validation/cross_record.py",
    "tasks/validation/province_rules.py",
    "schemas/rules.csv",
)


def province_check_fingerprint(lists: dict[str, list[ActiveSubmission]]) -> str:
    """The digest of the active student lists' submission ids, school by school, and of the
    files of the check's code and rules."""
    from tasks.output_fingerprints import code_digest
    from warehouse.output_fingerprints import digest

    return digest(
        sorted((code, [s.submission_id for s in active]) for code, active in lists.items()),
        code_digest(_PROVINCE_CHECK_CODE),
    )


def check_province(settings: Settings) -> set[str]:
    """Province-wide rules (a pupil enrolled in two schools), recomputed from the staged
    student lists of every school; returns the schools whose reports may have changed: those
    with a province finding before or after. Not recomputed when the active student lists and
    the check's code are those of the last check (``province_check_fingerprint``): its findings
    stand, and no report changes (~0.5 s of an unchanged night)."""
    from warehouse.output_fingerprints import record, recorded

    database = ControlDatabase(settings.resolved_database_url)
    try:
        lists = active_rows_by_school(database, "students")
        fingerprint = province_check_fingerprint(lists)
        last = recorded(database, PROVINCE_CHECK).get("province")
        if last is not None and last.fingerprint == fingerprint:
            return set()
        before = schools_with_findings(database, PROVINCE_RULE_IDS)
        students: dict[str, pl.DataFrame] = {}
        submission_ids: list[int] = []
        for folder in sorted(settings.staging.glob("*/students")):
            school_code = folder.parent.name
            active = lists.get(school_code, [])
            frame = read_staged(
                settings.staging, school_code, "students", [s.submission_id for s in active]
            )
            submission_ids.extend(s.submission_id for s in active)
            if frame is not None:
                students[school_code] = frame
        delete_findings(database, submission_ids, PROVINCE_RULE_IDS)
        findings = cross_check_province(students)
        if findings.height == 0:
            record(database, PROVINCE_CHECK, {"province": fingerprint})
            return before
        rows = []
        for item in findings.iter_rows(named=True):
            params = json.loads(item["params"]) if item.get("params") else {}
            params.setdefault("value", item.get("value") or "")
            row = _finding(
                item["rule_id"],
                params,
                sheet=item.get("sheet"),
                sheet_row=item.get("sheet_row"),
                column_name=item.get("column_name"),
                value=item.get("value"),
                severity=item.get("severity"),
            )
            row["submission_id"] = int(item["submission_id"])
            rows.append(row)
        add_findings(database, rows)
        record(database, PROVINCE_CHECK, {"province": fingerprint})
        return before | (
            set(findings.get_column("school_code").unique().to_list())
            if ("school_code" in findings.columns)
            else set(students)
        )
    finally:
        database.dispose()


def write_reports(
    settings: Settings,
    school_codes: list[str],
    now: datetime,
    database: ControlDatabase | None = None,
) -> int:
    """Write each school's feedback report (XLSX + HTML) from the control database, with
    what the school still owes per campaign (tasks/coverage.py). ``database``: a handle to
    use (else one is opened and closed)."""
    owed = owed_sections(settings, school_codes, now)
    with control_handle(settings, database) as database:
        for school_code in school_codes:
            submissions, findings = school_findings(database, school_code)
            write_school_report(
                settings.reports,
                school_code,
                now,
                [
                    ReportSubmission(
                        s.submission_id,
                        s.file_name,
                        s.dataset,
                        s.state,
                        s.rows_read,
                        s.rows_accepted,
                        s.rows_quarantined,
                        held=s.hold == "held",
                    )
                    for s in submissions
                ],
                [
                    ReportFinding(
                        f.submission_id,
                        f.file_name,
                        f.sheet,
                        f.sheet_row,
                        f.column_name,
                        f.value,
                        f.rule_id,
                        f.severity,
                        f.message_ar,
                        f.message_fr,
                    )
                    for f in findings
                ],
                coverage=owed.get(school_code),
            )
    return len(school_codes)


# ---------------------------------------------------------------------------------------------
# Prefect tasks: thin wrappers. Schools go to the workers a chunk at a time
# (tasks/ingest_chunks.py), never a task per file or per row.

discover_inbox_task = task(name="discover_inbox", cache_policy=NO_CACHE)(discover_inbox)
split_known_task = task(name="split_known_schools", cache_policy=NO_CACHE)(split_known_schools)


def database_away(_task: Any, _task_run: Any, state: Any) -> bool:
    """Prefect's retry condition: the school's step failed because the control database could
    not be used (stopped, restarting). Retrying is safe: a file registered but not recorded is
    done again under the same submission id, and a file is registered once whoever retries."""
    from sqlalchemy.exc import OperationalError

    try:
        state.result(raise_on_failure=True)
    except OperationalError:
        return True
    except Exception:
        return False
    return False


check_province_task = task(name="check_province", cache_policy=NO_CACHE)(check_province)
write_reports_task = task(name="write_school_reports", cache_policy=NO_CACHE)(write_reports)


def summarise_outcomes(outcomes: list[SchoolOutcome], strangers: list[str]) -> dict[str, Any]:
    """Totals and one row per school, counts only."""
    rows = sorted((o.as_row() for o in outcomes), key=lambda r: r["school_code"])
    totals: dict[str, Any] = {
        key: sum(r[key] for r in rows)
        for key in (
            "files_seen",
            "already_known",
            "new_submissions",
            "accepted",
            "partially_accepted",
            "rejected",
            "held",
            "rows_read",
            "rows_accepted",
            "rows_quarantined",
            "errors",
            "queries",
            "unreadable",
        )
    }
    for name in ("seconds", "cpu_seconds"):
        seconds: dict[str, float] = defaultdict(float)
        for outcome in outcomes:
            for key, value in getattr(outcome, name).items():
                seconds[key] += value
        totals[name] = {k: round(v, 3) for k, v in seconds.items()}
    totals["schools"] = len(rows)
    totals["unknown_folders"] = len(strangers)
    return {"totals": totals, "schools": rows}


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


@task(name="publish_ingest_summary", cache_policy=NO_CACHE)
def publish_ingest_summary(
    outcomes: list[SchoolOutcome], strangers: list[str], inbox: Path | None = None
) -> dict[str, Any]:
    """The officers' table artifact: schools × files, rows, errors, queries, held resends (no
    pupil data); with ``inbox``, a second artifact when files lie at the inbox's root."""
    summary = summarise_outcomes(outcomes, strangers)
    strays = stray_entries(inbox) if inbox is not None else []
    if strays:
        sentence = stray_sentence(strays, inbox or "inbox")
        summary["totals"]["stray_entries"] = [e.name for e in strays]
        create_markdown_artifact(
            key="ingest-inbox-strays",
            markdown="## Not ingested: entries at the inbox's root\n\n"
            + sentence
            + "\n\n| name | kind | arrived (UTC) |\n|---|---|---|\n"
            + "".join(
                f"| {_cell(e.name)} | {e.kind} | {e.modified:%Y-%m-%d %H:%M} |\n"
                for e in strays[:50]
            ),
            description=sentence,
        )
    table = [
        {
            "school": r["school_code"],
            "new files": r["new_submissions"],
            "accepted": r["accepted"],
            "partially accepted": r["partially_accepted"],
            "rejected": r["rejected"],
            "held resends": r["held"],
            "rows accepted": r["rows_accepted"],
            "rows quarantined": r["rows_quarantined"],
            "errors": r["errors"],
            "queries": r["queries"],
        }
        for r in summary["schools"]
        if r["new_submissions"]
    ]
    totals = summary["totals"]
    create_table_artifact(
        key="ingest-by-school",
        table=table,
        description=(
            f"Ingest: {totals['new_submissions']} new files from {totals['schools']} "
            f"schools; {totals['rows_accepted']} rows accepted, "
            f"{totals['rows_quarantined']} quarantined, {totals['errors']} errors, "
            f"{totals['queries']} queries, {totals['held']} resend(s) held until an officer "
            "confirms them (massar status lists them). Each school's report is under "
            "reports/<school_code>/."
            + (f" {stray_sentence(strays, inbox or 'inbox')}" if strays else "")
        ),
    )
    return summary


@task(name="record_run_start", cache_policy=NO_CACHE)
def record_run_start(settings: Settings, flow_name: str) -> str:
    from prefect.runtime import flow_run

    from warehouse.runs import start_run

    return start_run(settings.resolved_database_url, str(flow_run.id), flow_name)


@task(name="record_run_finish", cache_policy=NO_CACHE)
def record_run_finish(settings: Settings, run_id: str, summary: dict[str, Any]) -> None:
    from warehouse.runs import finish_run

    finish_run(settings.resolved_database_url, run_id, "completed", summary.get("totals", {}))


@task(name="fetch_sftp_inbox", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=10)
def fetch_sftp_inbox_task(settings: Settings) -> int:
    from connectors.sftp import fetch_school_inbox

    return fetch_school_inbox(settings.inbox_sftp, settings.inbox)

"""How a backup of a home is made: one ``.tar.gz`` archive, manifest first.

The control database is copied first and the folders after, so every submission and night the
copy knows of has its files (they are written before they are recorded): a SQLite file with
SQLite's online backup API (a consistent snapshot while the platform runs), a PostgreSQL
database as a portable dump read in one REPEATABLE READ transaction. The copy is staged beside
the archive, checked with :func:`~warehouse.backup.home_check.check_home`, hashed, then packed
under a temporary name and renamed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import tarfile
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any, cast

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from ground.utc import utcnow
from warehouse.backup.home_check import (
    HomeFolder,
    HomePlaces,
    check_home,
    night_rows,
    published_night,
    sha256_file,
)
from warehouse.backup.layout import (
    BACKED_UP,
    CONTROL,
    EVIDENCE,
    FORMAT,
    HOME,
    LEFT_OUT,
    MANIFEST,
    SETTINGS_FILE,
    SQLITE_FILE,
    BackupError,
    remove_tree,
    shown_url,
)
from warehouse.backup.portable_dump import dump_database, load_database
from warehouse.control import ControlDatabase, database_revision


@dataclass
class BackupReport:
    """What :func:`backup_home` wrote. ``sections``: part of the home → (files, bytes);
    ``problems``: what the consistency check found in the backup's content (empty: none)."""

    path: Path
    size_bytes: int
    sha256: str
    created_at: datetime
    files: int
    sections: dict[str, tuple[int, int]]
    database: str  # sqlite-file | portable-json
    night_id: int | None
    versions: dict[str, int]
    rows: dict[str, int]
    left_out: list[str]
    problems: list[str] = field(default_factory=list)


def backup_home(
    settings: HomePlaces,
    destination: Path,
    *,
    include_keys: bool = False,
    include_inbox: bool = False,
    now: datetime | None = None,
) -> BackupReport:
    """Write one archive of the home ``settings`` describe into the folder ``destination``.

    The archive is named ``massar-backup-<province>-<YYYYmmddTHHMMSSZ>.tar.gz`` (UTC). Raises
    :class:`BackupError` (one sentence) when the destination is unusable or the database
    cannot be copied; problems the consistency check finds in the copied content do not stop
    the backup (it may be the only copy left) and are returned in the report."""
    home = Path(settings.home).resolve()
    destination = Path(destination).resolve()
    if destination == home or destination.is_relative_to(home):
        raise BackupError(
            f"The backup folder {destination} is inside the home {home}; choose a folder outside "
            "it (a backup kept beside what it protects is lost with it)."
        )
    try:
        destination.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as error:
        raise BackupError(
            f"The backup folder {destination} cannot be created ({error.strerror})."
        ) from error
    created = (now or utcnow()).astimezone(UTC)
    province = str(getattr(settings, "province", "") or "")
    archive = _free_name(destination, f"massar-backup-{_slug(province)}-{created:%Y%m%dT%H%M%SZ}")
    staging = destination / f".{archive.name}.{os.getpid()}.staging"
    try:
        staged_home = staging / HOME
        staging.mkdir(mode=0o700)  # copies of the database (and maybe the keys) stay private
        staging.chmod(0o700)
        staged_home.mkdir()
        # The database first: every file it refers to was written before it was recorded.
        database, check_url = _stage_database(settings.resolved_database_url, staging)
        sections = [SETTINGS_FILE, *BACKED_UP]
        if include_keys:
            sections.append("keys")
        if include_inbox:
            sections.append("inbox")
        if (home / SETTINGS_FILE).is_file():
            shutil.copy2(home / SETTINGS_FILE, staged_home / SETTINGS_FILE)
        for folder in sections[1:]:
            _copy_tree(home / folder, staged_home / folder, link=folder == "archive")
        places = HomeFolder(staged_home, check_url)
        night_id, versions = published_night(check_url)
        rows, problems = night_rows(places.warehouse, night_id, versions)
        digests: dict[str, str] = {}
        problems += check_home(places, digests=digests, rows_read=False)
        _export_evidence(check_url, staging / EVIDENCE)
        _release_database(database, staging)
        files = _hash_tree(staging, {f"{HOME}/{path}": sha for path, sha in digests.items()})
        manifest = {
            "format": FORMAT,
            "created_at": created.isoformat(),
            "province": province,
            "source_home": str(home),
            "folders": sorted(p.name for p in home.iterdir() if p.is_dir()),
            "database": database,
            "night": {"night_id": night_id, "versions": versions, "rows": rows},
            "included": sections,
            "left_out": [name for name in LEFT_OUT if name not in sections],
            "check": {"problems": problems},
            "files": files,
        }
        size, sha256 = _pack(staging, manifest, archive)
    except OSError as error:
        raise BackupError(
            f"The backup into {destination} failed ({error.strerror or error}); check the free "
            "space and permissions there, then run it again."
        ) from error
    finally:
        remove_tree(staging)
    return BackupReport(
        path=archive,
        size_bytes=size,
        sha256=sha256,
        created_at=created,
        files=len(files),
        sections=_sections(files),
        database=database["kind"],
        night_id=night_id,
        versions=versions,
        rows=rows,
        left_out=[name for name in LEFT_OUT if name not in sections],
        problems=problems,
    )


def _slug(province: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", province).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-") or "home"


def _free_name(destination: Path, stem: str) -> Path:
    candidate, number = destination / f"{stem}.tar.gz", 1
    while candidate.exists():
        number += 1
        candidate = destination / f"{stem}-{number}.tar.gz"
    return candidate


# ---- the control database ---------------------------------------------------------------------


def _sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    if not parsed.database or parsed.database == ":memory:":
        raise BackupError(f"The control database {url} is in memory; there is nothing to back up.")
    return Path(parsed.database)


def _stage_database(url: str, staging: Path) -> tuple[dict[str, Any], str]:
    """Copy the control database into the staging folder; returns its manifest entry and the
    URL the consistency check opens (for a dump: a SQLite database loaded from it)."""
    source = _sqlite_path(url)
    if source is not None:
        target = staging / HOME / SQLITE_FILE
        _sqlite_snapshot(source, target)
        copy_url = f"sqlite:///{target}"
        return {
            "kind": "sqlite-file",
            "path": f"{HOME}/{SQLITE_FILE}",
            "revision": database_revision(copy_url),
        }, copy_url
    try:
        revision = dump_database(url, staging / CONTROL)
    except SQLAlchemyError as error:
        raise BackupError(
            f"The control database {shown_url(url)} cannot be read for the backup "
            f"({type(error).__name__}); check that it runs and accepts this platform's user."
        ) from error
    # Loading the dump is part of checking it: a dump that cannot be loaded is no backup.
    check_url = f"sqlite:///{staging / '.check' / SQLITE_FILE}"
    (staging / ".check").mkdir()
    load_database(staging / CONTROL, check_url)
    return {"kind": "portable-json", "path": f"{CONTROL}/", "revision": revision}, check_url


def _sqlite_snapshot(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database that may be written meanwhile (online backup),
    as one self-contained file (no write-ahead log beside it)."""
    if not source.is_file():
        raise BackupError(f"The control database {source} does not exist; nothing to back up.")
    try:
        reader = sqlite3.connect(str(source), timeout=30)
        writer = sqlite3.connect(str(target))
        try:
            reader.backup(writer)
            writer.execute("PRAGMA journal_mode=DELETE")
        finally:
            writer.close()
            reader.close()
    except sqlite3.Error as error:
        raise BackupError(
            f"The control database {source} cannot be copied ({error}); try again when no "
            "migration is running."
        ) from error


def _release_database(database: dict[str, Any], staging: Path) -> None:
    """Leave the staged database as one file again, and drop the check's own copy."""
    if database["kind"] == "sqlite-file":
        path = staging / database["path"]
        connection = sqlite3.connect(str(path))
        try:
            connection.execute("PRAGMA journal_mode=DELETE")
        finally:
            connection.close()
    else:
        remove_tree(staging / ".check")


def _export_evidence(url: str, path: Path) -> None:
    try:
        from warehouse.message_log_evidence import export_evidence
    except ImportError:  # a platform without the exchange records has no message log to export
        return
    database = ControlDatabase(url)
    try:
        export_evidence(database, path)
    finally:
        database.dispose()


# ---- the folders ------------------------------------------------------------------------------


def _copy_tree(source: Path, target: Path, *, link: bool = False) -> None:
    """Copy a folder of the home, leaving out hidden and temporary files (uploads and writes
    in progress). ``link``: hard-link when possible (archive/ files never change)."""
    target.mkdir(parents=True, exist_ok=True)
    if not source.is_dir():
        return
    for folder, names, files in os.walk(source):
        names[:] = sorted(n for n in names if not n.startswith("."))
        here = target / Path(folder).relative_to(source)
        here.mkdir(exist_ok=True)
        for name in sorted(files):
            if name.startswith(".") or name.endswith(".tmp"):
                continue
            origin = Path(folder) / name
            try:
                if link:
                    try:
                        os.link(origin, here / name)
                        continue
                    except OSError:
                        link = False  # another file system: copy from now on
                shutil.copy2(origin, here / name)
            except FileNotFoundError:
                continue  # removed meanwhile (a vacuum, a staged file replaced): not needed


# ---- the archive ------------------------------------------------------------------------------


def _hash_tree(root: Path, known: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        name = path.relative_to(root).as_posix()
        files[name] = {"sha256": known.get(name) or sha256_file(path), "size": path.stat().st_size}
    return files


class _HashingWriter:
    """A file object that hashes what goes through it (the archive's own sha256)."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle, self.digest = handle, hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.handle.write(data)

    def flush(self) -> None:
        self.handle.flush()


def _pack(staging: Path, manifest: dict[str, Any], archive: Path) -> tuple[int, str]:
    """Write the archive (manifest first) under a temporary name, then rename it."""
    partial = archive.with_name(f".{archive.name}.part")

    def anonymous(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    try:
        # The archive holds pupils' data (and, with --include-keys, the signing key): its
        # owner's only, whatever the umask (issue 15).
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            writer = _HashingWriter(handle)
            # tarfile only writes and flushes: the hashing writer is file object enough.
            fileobj = cast(IO[bytes], writer)
            with tarfile.open(fileobj=fileobj, mode="w:gz", compresslevel=6) as tar:
                body = json.dumps(manifest, ensure_ascii=False, indent=1).encode("utf-8")
                info = anonymous(tarfile.TarInfo(MANIFEST))
                info.size, info.mode, info.mtime = len(body), 0o644, int(datetime.now().timestamp())
                tar.addfile(info, io.BytesIO(body))
                for name in manifest["files"]:
                    tar.add(staging / name, arcname=name, recursive=False, filter=anonymous)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, archive)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return archive.stat().st_size, writer.digest.hexdigest()


def _sections(files: Mapping[str, Mapping[str, Any]]) -> dict[str, tuple[int, int]]:
    sections: dict[str, tuple[int, int]] = {}
    for name, entry in files.items():
        parts = PurePosixPath(name).parts
        if parts[0] == HOME and len(parts) > 2:
            section = parts[1]
        elif (parts[0] == HOME and parts[1] == SQLITE_FILE) or parts[0] == CONTROL:
            section = "control database"
        elif parts[0] == HOME:
            section = parts[1]
        else:
            section = "message-log evidence"
        count, size = sections.get(section, (0, 0))
        sections[section] = (count + 1, size + int(entry["size"]))
    return sections

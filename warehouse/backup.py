"""Backing up a home into one archive file, restoring it into a new home, and checking a home.

A backup is a ``.tar.gz`` whose first member is ``MANIFEST.json`` (sha256 and size of every
other member, the published night and its table versions and row counts, the control
database's migration revision). The home's content sits under ``home/``, as in a home:

* the control database: a SQLite file copied with SQLite's online backup API (a consistent
  snapshot while the platform runs) as ``home/massar.db``; a PostgreSQL database as a portable
  dump, one JSON-lines file per table under ``control/``, read in one REPEATABLE READ
  transaction (docs/backup.md says why not ``pg_dump``);
* ``massar.toml``, ``archive/``, ``staging/``, ``quarantine/``, ``warehouse/``, ``reports/``,
  ``exchange/``; ``keys/`` and ``inbox/`` only when asked; never ``prefect/`` or ``logs/``;
* ``evidence/message-log-evidence.json``, the message log's evidence export.

The database is copied first and the folders after, so every submission and night the copy
knows of has its files (they are written before they are recorded). The copy is staged beside
the archive, checked with :func:`check_home`, hashed, then packed. A restore unpacks into a
folder beside the target, verifies every file against the manifest, loads the database, and
moves the home into place only then; :func:`check_home` runs on the result.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import tarfile
import unicodedata
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import IO, Any, Protocol

from sqlalchemy import MetaData, inspect, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.types import JSON, Date, DateTime, Integer, LargeBinary, Numeric

from warehouse.control import (
    MIGRATIONS,
    ControlDatabase,
    Submission,
    database_revision,
    make_engine,
    upgrade_database,
)

FORMAT = "massar-backup/1"
MANIFEST = "MANIFEST.json"
HOME = "home"
CONTROL = "control"
EVIDENCE = "evidence/message-log-evidence.json"
SETTINGS_FILE = "massar.toml"
SQLITE_FILE = "massar.db"
# Folders of a home always in a backup; staging/ holds the accepted rows the next night
# rebuilds a school from, so a home restored without it could not consolidate.
BACKED_UP = ("archive", "staging", "quarantine", "warehouse", "reports", "exchange")
# Left out: prefect/ and logs/ are operational history; keys/ are secrets and inbox/ files not
# yet ingested, each included on request.
LEFT_OUT = ("prefect", "logs", "keys", "inbox")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_ROWS_PER_INSERT = 2000


class BackupError(Exception):
    """A backup or restore that cannot be done; the message is one sentence saying why."""


class HomePlaces(Protocol):
    """What the functions here need of a home: ``massar.settings.Settings`` provides it."""

    @property
    def home(self) -> Path: ...
    @property
    def resolved_database_url(self) -> str: ...
    @property
    def archive(self) -> Path: ...
    @property
    def staging(self) -> Path: ...
    @property
    def warehouse(self) -> Path: ...


@dataclass(frozen=True)
class _Places:
    """A home known by its folder and its database URL (a staged or restored home)."""

    home: Path
    resolved_database_url: str

    @property
    def archive(self) -> Path:
        return self.home / "archive"

    @property
    def staging(self) -> Path:
        return self.home / "staging"

    @property
    def warehouse(self) -> Path:
        return self.home / "warehouse"


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


@dataclass
class RestoreReport:
    """What :func:`restore_home` restored, and what the consistency check found (``problems``,
    empty when the restored home is consistent)."""

    home: Path
    database_url: str  # as shown to a person: without its password
    files: int
    created_at: str
    province: str
    night_id: int | None
    versions: dict[str, int]
    problems: list[str] = field(default_factory=list)


# ---- backup -----------------------------------------------------------------------------------


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
        destination.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BackupError(
            f"The backup folder {destination} cannot be created ({error.strerror})."
        ) from error
    created = (now or datetime.now(UTC)).astimezone(UTC)
    province = str(getattr(settings, "province", "") or "")
    archive = _free_name(destination, f"massar-backup-{_slug(province)}-{created:%Y%m%dT%H%M%SZ}")
    staging = destination / f".{archive.name}.{os.getpid()}.staging"
    try:
        staged_home = staging / HOME
        staged_home.mkdir(parents=True)
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
        places = _Places(staged_home, check_url)
        night_id, versions = _published_night(check_url)
        rows, problems = _night_rows(places.warehouse, night_id, versions)
        digests: dict[str, str] = {}
        problems += check_home(places, digests=digests, rows_read=False)
        _export_evidence(check_url, staging / EVIDENCE)
        _release_database(database, staging, check_url)
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
        _remove(staging)
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
            f"The control database {_shown(url)} cannot be read for the backup "
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


def _release_database(database: dict[str, Any], staging: Path, check_url: str) -> None:
    """Leave the staged database as one file again, and drop the check's own copy."""
    if database["kind"] == "sqlite-file":
        path = staging / database["path"]
        connection = sqlite3.connect(str(path))
        try:
            connection.execute("PRAGMA journal_mode=DELETE")
        finally:
            connection.close()
    else:
        _remove(staging / ".check")


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


def _published_night(url: str) -> tuple[int | None, dict[str, int]]:
    from warehouse.nights import last_completed_night

    database = ControlDatabase(url)
    try:
        night = last_completed_night(database)
    finally:
        database.dispose()
    if night is None:
        return None, {}
    return night.night_id, {name: int(v) for name, v in sorted(night.versions.items())}


def _night_rows(
    warehouse: Path, night_id: int | None, versions: Mapping[str, int]
) -> tuple[dict[str, int], list[str]]:
    """Rows of every table of the night at its version, and the tables that cannot be read."""
    from warehouse.delta import TableMissing, read_table

    rows: dict[str, int] = {}
    problems = []
    for table, version in versions.items():
        try:
            rows[table] = read_table(warehouse, table, version).count_rows()
        except (TableMissing, OSError, ValueError) as error:
            problems.append(
                f"Table {table} of night {night_id} cannot be read at its version {version}: "
                f"{error}"
            )
    return rows, problems


def _export_evidence(url: str, path: Path) -> None:
    try:
        from warehouse.exchange import export_evidence
    except ImportError:  # a platform without the exchange records has no message log to export
        return
    database = ControlDatabase(url)
    try:
        export_evidence(database, path)
    finally:
        database.dispose()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _hash_tree(root: Path, known: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        name = path.relative_to(root).as_posix()
        files[name] = {"sha256": known.get(name) or _sha256_file(path), "size": path.stat().st_size}
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
        with partial.open("wb") as handle:
            writer = _HashingWriter(handle)
            with tarfile.open(fileobj=writer, mode="w:gz", compresslevel=6) as tar:  # type: ignore[call-overload]
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


# ---- restore ----------------------------------------------------------------------------------


def restore_home(archive: Path, target_home: Path, *, database_url: str = "") -> RestoreReport:
    """Restore the backup ``archive`` into ``target_home``, which must not exist or be empty.

    ``database_url``: where the control database goes; empty (the default) is a SQLite file
    in the new home, else an empty PostgreSQL (or SQLite) database. Every file is verified
    against the manifest before anything is put in place; a damaged or altered archive, or a
    non-empty target, raises :class:`BackupError` (one sentence) and restores nothing. The
    new home's ``massar.toml`` names the target database. The report carries what
    :func:`check_home` finds in the restored home."""
    archive = Path(archive)
    target = Path(target_home).resolve()
    if not archive.is_file():
        raise BackupError(f"The backup {archive} does not exist or is not a file.")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise BackupError(
            f"{target} is not empty; restore into a new or empty folder, never over a home."
        )
    if database_url and not database_url.startswith(("sqlite", "postgresql")):
        raise BackupError(
            f"The database URL {_shown(database_url)} is neither sqlite:// nor postgresql://."
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BackupError(f"{target.parent} cannot be created ({error.strerror}).") from error
    staging = target.parent / f".{target.name}.restoring-{os.getpid()}"
    _remove(staging)
    try:
        manifest = _unpack_verified(archive, staging)
        staged_home = staging / HOME
        final_url = database_url or f"sqlite:///{target / SQLITE_FILE}"
        staged_url = database_url or f"sqlite:///{staged_home / SQLITE_FILE}"
        try:
            _restore_database(manifest, staging, staged_url, bool(database_url))
            _repoint_archive_paths(staged_url, target / "archive")
        except SQLAlchemyError as error:
            raise BackupError(
                f"The control database could not be restored into {_shown(staged_url)} "
                f"({type(error).__name__}: {str(error).splitlines()[0]}); nothing was put in "
                "place."
            ) from error
        _write_database_url(staged_home / SETTINGS_FILE, database_url)
        for folder in [*manifest.get("folders", []), *BACKED_UP, *LEFT_OUT]:
            (staged_home / folder).mkdir(exist_ok=True)
        (staged_home / "keys").chmod(0o700)
        kept = staged_home / "logs" / f"restored-from-{_stem(archive)}"
        kept.mkdir(parents=True)
        shutil.move(staging / MANIFEST, kept / MANIFEST)
        if (staging / EVIDENCE).is_file():
            shutil.move(staging / EVIDENCE, kept / Path(EVIDENCE).name)
        if target.exists():
            target.rmdir()
        os.replace(staged_home, target)
    except OSError as error:
        raise BackupError(
            f"Restoring into {target} failed ({error.strerror or error}); check the free space "
            "and permissions there, nothing was put in place."
        ) from error
    finally:
        _remove(staging)
    night = manifest.get("night") or {}
    digests = {
        name.removeprefix(f"{HOME}/"): entry["sha256"]
        for name, entry in manifest["files"].items()
        if name.startswith(f"{HOME}/archive/")
    }
    problems = check_home(
        _Places(target, final_url), expected_rows=night.get("rows") or {}, digests=digests
    )
    return RestoreReport(
        home=target,
        database_url=_shown(final_url),
        files=len(manifest["files"]),
        created_at=str(manifest.get("created_at", "")),
        province=str(manifest.get("province", "")),
        night_id=night.get("night_id"),
        versions=dict(night.get("versions") or {}),
        problems=problems,
    )


def _stem(archive: Path) -> str:
    return archive.name.removesuffix(".gz").removesuffix(".tar")


def _safe_member(name: str) -> bool:
    path = PurePosixPath(name)
    return not path.is_absolute() and ".." not in path.parts and name == path.as_posix()


def _unpack_verified(archive: Path, staging: Path) -> dict[str, Any]:
    """Unpack into ``staging``, checking every member against the manifest; returns it."""
    damaged = (
        f"The backup {archive.name} is damaged or truncated (it cannot be unpacked); take "
        "another copy of it, nothing was restored."
    )
    try:
        with tarfile.open(archive, mode="r|gz") as tar:
            first = tar.next()
            reader = tar.extractfile(first) if first is not None and first.isfile() else None
            if first is None or first.name != MANIFEST or reader is None:
                raise BackupError(
                    f"{archive.name} is not a Massar backup (it does not start with {MANIFEST})."
                )
            try:
                manifest = json.loads(reader.read().decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as error:
                raise BackupError(
                    f"The manifest of {archive.name} is not readable JSON; the archive is damaged."
                ) from error
            if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
                raise BackupError(
                    f"{archive.name} is not a backup of format {FORMAT} (it says "
                    f"{manifest.get('format') if isinstance(manifest, dict) else None!r})."
                )
            staging.mkdir(parents=True)
            expected: dict[str, dict[str, Any]] = manifest["files"]
            seen: set[str] = set()
            while (member := tar.next()) is not None:
                if member.isdir():
                    continue
                name = member.name
                if not member.isfile() or not _safe_member(name) or name not in expected:
                    raise BackupError(
                        f"The backup {archive.name} holds {name}, which its manifest does not "
                        "list; it was altered, nothing was restored."
                    )
                path = staging / name
                path.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None
                digest, size = _write_hashing(source, path)
                if digest != expected[name]["sha256"] or size != expected[name]["size"]:
                    raise BackupError(
                        f"The file {name} in the backup {archive.name} does not match its "
                        "manifest (sha256 or size differ): the archive is damaged or was "
                        "altered, nothing was restored."
                    )
                os.chmod(path, member.mode & 0o777)
                seen.add(name)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise BackupError(damaged) from error
    missing = sorted(set(expected) - seen)
    if missing:
        raise BackupError(
            f"The backup {archive.name} lacks {len(missing)} file(s) its manifest lists, e.g. "
            f"{missing[0]}; it is truncated, nothing was restored."
        )
    with (staging / MANIFEST).open("w", encoding="utf-8") as handle:
        json.dump(manifest, handle, ensure_ascii=False, indent=1)
    return manifest


def _write_hashing(source: IO[bytes], path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("wb") as handle:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
            handle.write(block)
    return digest.hexdigest(), size


def _restore_database(manifest: dict[str, Any], staging: Path, url: str, elsewhere: bool) -> None:
    """Put the control database in place at ``url`` and migrate it to this platform's head.
    ``elsewhere``: the target is a database of its own, not the new home's SQLite file."""
    database = manifest["database"]
    revision = database.get("revision")
    known = _known_revisions()
    if revision is not None and revision not in known:
        raise BackupError(
            f"The backup's control database is at migration {revision}, which this platform "
            "does not know: restore it with the platform version that made it (or newer)."
        )
    if elsewhere:
        _refuse_non_empty_database(url)
    if database["kind"] == "sqlite-file":
        copied = staging / database["path"]
        if elsewhere:
            dump_database(f"sqlite:///{copied}", staging / ".dump")
            load_database(staging / ".dump", url)
            copied.unlink()
    else:
        load_database(staging / CONTROL, url)
    upgrade_database(url)


def _refuse_non_empty_database(url: str) -> None:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            tables = inspect(connection).get_table_names()
    except SQLAlchemyError as error:
        raise BackupError(
            f"The target database {_shown(url)} cannot be opened ({type(error).__name__}); "
            "create it empty first and check the URL."
        ) from error
    finally:
        engine.dispose()
    if tables:
        raise BackupError(
            f"The target database {_shown(url)} already holds tables ({', '.join(tables[:3])}"
            f"{'…' if len(tables) > 3 else ''}); restore into an empty database."
        )


def _repoint_archive_paths(url: str, archive: Path) -> None:
    """Submissions record where their original lies: the restored home's archive now."""
    database = ControlDatabase(url)
    try:
        with database.session() as session:
            rows = session.execute(
                select(Submission.submission_id, Submission.sha256).where(
                    Submission.archive_path != ""
                )
            ).all()
            if rows:
                session.execute(
                    update(Submission),
                    [
                        {"submission_id": sid, "archive_path": str(archive / sha[:2] / sha)}
                        for sid, sha in rows
                    ],
                )
    finally:
        database.dispose()


def _write_database_url(settings_file: Path, database_url: str) -> None:
    """Make the restored settings name the database the restore wrote (never the source's)."""
    line = f"database_url = {json.dumps(database_url)}"
    content = settings_file.read_text(encoding="utf-8") if settings_file.is_file() else ""
    pattern = re.compile(r"^database_url\s*=.*$", re.MULTILINE)
    if pattern.search(content):
        content = pattern.sub(lambda _match: line, content, count=1)
    else:
        content = f"{line}\n{content}"
    settings_file.write_text(content, encoding="utf-8")


# ---- the portable dump of a control database --------------------------------------------------


def _alembic_config(url: str):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config("sqlite://"))
    return {revision.revision for revision in script.walk_revisions()}


def head_revision() -> str | None:
    """The newest migration of this platform's control database."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config("sqlite://")).get_current_head()


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        # Stored as UTC everywhere; a naive value (SQLite) is UTC already.
        return (value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    raise TypeError(f"cannot dump a {type(value).__name__}")


def dump_database(url: str, folder: Path) -> str | None:
    """Write every table of the control database at ``url`` into ``folder``: one JSON-lines
    file per table (``<table>.jsonl``, one JSON array per row, in primary-key order) and
    ``database.json`` (migration revision, columns and row count per table), all read in one
    transaction. Returns the migration revision."""
    from alembic.runtime.migration import MigrationContext

    folder.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url)
    try:
        options = (
            {"isolation_level": "REPEATABLE READ"} if engine.dialect.name == "postgresql" else {}
        )
        with engine.connect().execution_options(**options) as connection, connection.begin():
            revision = MigrationContext.configure(connection).get_current_revision()
            metadata = MetaData()
            metadata.reflect(connection)
            tables: dict[str, Any] = {}
            for table in metadata.sorted_tables:
                if table.name == "alembic_version":
                    continue
                columns = [column.name for column in table.columns]
                order = list(table.primary_key.columns) or list(table.columns)
                result = connection.execute(
                    select(table).order_by(*order),
                    execution_options={"stream_results": True, "yield_per": 5000},
                )
                count = 0
                with (folder / f"{table.name}.jsonl").open("w", encoding="utf-8") as handle:
                    for row in result:
                        handle.write(json.dumps(list(row), ensure_ascii=False, default=_encode))
                        handle.write("\n")
                        count += 1
                tables[table.name] = {"columns": columns, "rows": count}
    finally:
        engine.dispose()
    (folder / "database.json").write_text(
        json.dumps(
            {"revision": revision, "dialect": engine.dialect.name, "tables": tables}, indent=1
        ),
        encoding="utf-8",
    )
    return revision


def _decoder(column_type: Any):  # type: ignore[no-untyped-def]
    if isinstance(column_type, DateTime):
        aware = bool(getattr(column_type, "timezone", False))

        def moment(value: Any) -> Any:
            if not isinstance(value, str):
                return value
            parsed = datetime.fromisoformat(value).astimezone(UTC)
            return parsed if aware else parsed.replace(tzinfo=None)

        return moment
    if isinstance(column_type, Date):
        return lambda v: date.fromisoformat(v) if isinstance(v, str) else v
    if isinstance(column_type, Numeric) and getattr(column_type, "asdecimal", False):
        return lambda v: Decimal(v) if isinstance(v, str) else v
    if isinstance(column_type, LargeBinary):
        return lambda v: base64.b64decode(v) if isinstance(v, str) else v
    if isinstance(column_type, JSON):
        return lambda v: v
    return None


def load_database(folder: Path, url: str) -> None:
    """Load a dump written by :func:`dump_database` into the empty database at ``url``: the
    schema is created by the migrations up to the dump's revision, then every row goes in,
    in one transaction (PostgreSQL's id sequences are moved past the loaded ids)."""
    from alembic import command
    from alembic.util.exc import CommandError

    info = json.loads((folder / "database.json").read_text(encoding="utf-8"))
    revision = info.get("revision")
    try:
        if revision is not None:
            command.upgrade(_alembic_config(url), revision)
    except CommandError as error:
        raise BackupError(
            f"The dump's control database is at migration {revision}, which this platform "
            "cannot create; restore it with the platform version that made it."
        ) from error
    engine = make_engine(url)
    try:
        metadata = MetaData()
        metadata.reflect(engine)
        with engine.begin() as connection:
            for table in metadata.sorted_tables:
                dumped = info["tables"].get(table.name)
                if dumped is None or table.name == "alembic_version":
                    continue
                columns = dumped["columns"]
                unknown = [name for name in columns if name not in table.columns]
                if unknown:
                    raise BackupError(
                        f"Table {table.name} of the dump has columns {', '.join(unknown)} that "
                        f"migration {revision} does not create; the dump is damaged."
                    )
                decoders = [_decoder(table.columns[name].type) for name in columns]
                for chunk in _chunks(folder / f"{table.name}.jsonl"):
                    connection.execute(
                        table.insert(),
                        [
                            {
                                name: decode(value) if decode else value
                                for name, decode, value in zip(columns, decoders, row, strict=True)
                            }
                            for row in chunk
                        ],
                    )
            if engine.dialect.name == "postgresql":
                _move_sequences(connection, metadata)
    finally:
        engine.dispose()


def _chunks(path: Path) -> Iterator[list[list[Any]]]:
    chunk: list[list[Any]] = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            chunk.append(json.loads(line))
            if len(chunk) >= _ROWS_PER_INSERT:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def _move_sequences(connection: Any, metadata: MetaData) -> None:
    for table in metadata.sorted_tables:
        keys = list(table.primary_key.columns)
        if len(keys) != 1 or not isinstance(keys[0].type, Integer):
            continue
        column = keys[0].name
        connection.execute(
            text(
                f"select setval(pg_get_serial_sequence(:table, :column), "
                f'coalesce(max("{column}"), 0) + 1, false) from "{table.name}"'
            ),
            {"table": table.name, "column": column},
        )


def _shown(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: show it as given
        return url


# ---- consistency check ------------------------------------------------------------------------


def check_home(
    settings: HomePlaces,
    *,
    expected_rows: Mapping[str, int] | None = None,
    digests: dict[str, str] | None = None,
    rows_read: bool = True,
) -> list[str]:
    """Check that a home holds together; returns problems as sentences (empty: consistent).

    * the control database opens and is at this platform's newest migration;
    * every table of the last completed night reads at the night's version (and holds
      ``expected_rows`` when given, as a backup's manifest records them);
    * every archive file is named by its content's sha256 (``archive/<aa>/<sha256>``);
    * every submission's original is in the archive, and the staged rows of every active
      submission are all there (the next night rebuilds a school from them);
    * the message log's hash chain is intact.

    ``digests``: archive path (``archive/aa/…``) → sha256 already known (read instead of
    hashing again; filled with what this check hashes). ``rows_read=False`` skips reading
    the night's tables (the caller just did)."""
    url = settings.resolved_database_url
    try:
        revision = database_revision(url)
    except SQLAlchemyError as error:
        return [
            f"The control database {_shown(url)} cannot be opened ({type(error).__name__}: "
            f"{str(error).splitlines()[0]})."
        ]
    head = head_revision()
    if revision != head:
        return [
            f"The control database {_shown(url)} is at migration {revision}, not this "
            f"platform's newest ({head}); open the home once with 'massar status' to migrate it."
        ]
    problems: list[str] = []
    if rows_read:
        night_id, versions = _published_night(url)
        rows, unreadable = _night_rows(settings.warehouse, night_id, versions)
        problems += unreadable
        for table, expected in (expected_rows or {}).items():
            if table in rows and rows[table] != expected:
                problems.append(
                    f"Table {table} of night {night_id} holds {rows[table]} rows at version "
                    f"{versions.get(table)} where the backup recorded {expected}."
                )
    archived = _check_archive(settings.archive, digests if digests is not None else {})
    problems += archived[1]
    problems += _check_submissions(url, settings, archived[0])
    problems += _check_message_log(url)
    return problems


def _check_archive(archive: Path, digests: dict[str, str]) -> tuple[set[str], list[str]]:
    """The sha256 of every well-named archive file, and the files not named by their hash."""
    present: set[str] = set()
    problems: list[str] = []
    if not archive.is_dir():
        return present, problems
    for path in sorted(p for p in archive.rglob("*") if p.is_file()):
        relative = path.relative_to(archive.parent).as_posix()
        name = path.name
        if name.startswith(".") and name.endswith(".tmp"):
            continue  # a copy into the archive cut short: never recorded
        if not _SHA256.match(name) or path.parent != archive / name[:2]:
            problems.append(
                f"The archive file {relative} is not stored as archive/<aa>/<sha256>; it does "
                "not belong in the archive."
            )
            continue
        digest = digests.get(relative) or _sha256_file(path)
        digests[relative] = digest
        if digest != name:
            problems.append(
                f"The archive file {relative} does not hold the bytes its name says (its "
                f"sha256 is {digest[:12]}…): the original was changed or damaged."
            )
            continue
        present.add(name)
    return present, problems


def _check_submissions(url: str, settings: HomePlaces, archived: set[str]) -> list[str]:
    from collections import defaultdict

    import pyarrow.parquet as pq

    from warehouse.submissions import ACTIVE_STATES

    database = ControlDatabase(url)
    try:
        with database.session() as session:
            rows = session.execute(
                select(
                    Submission.submission_id,
                    Submission.school_code,
                    Submission.file_name,
                    Submission.sha256,
                    Submission.state,
                    Submission.dataset,
                    Submission.rows_accepted,
                ).order_by(Submission.submission_id)
            ).all()
    finally:
        database.dispose()
    problems = []
    expected: dict[tuple[str, str], dict[int, int]] = defaultdict(dict)
    for sid, school, file_name, sha, state, dataset, accepted in rows:
        if sha not in archived:
            problems.append(
                f"Submission {sid} (school {school}, file {file_name}) has no original in the "
                f"archive (archive/{sha[:2]}/{sha})."
            )
        if state in ACTIVE_STATES and accepted:
            expected[(school, dataset)][sid] = accepted
    for (school, dataset), wanted in sorted(expected.items()):
        found: dict[int, int] = {}
        for path in sorted((settings.staging / school / dataset).glob("*.parquet")):
            try:
                ids = pq.read_table(path, columns=["submission_id"]).column(0).to_pylist()
            except (OSError, ValueError, KeyError) as error:
                problems.append(
                    f"The staged file staging/{school}/{dataset}/{path.name} cannot be read "
                    f"({type(error).__name__})."
                )
                continue
            for sid in ids:
                if sid in wanted:
                    found[sid] = found.get(sid, 0) + 1
        short = sorted(sid for sid, n in wanted.items() if found.get(sid, 0) != n)
        if short:
            problems.append(
                f"The staging of school {school} lacks accepted {dataset} rows of submissions "
                f"{', '.join(map(str, short))}; the next night could not consolidate that school."
            )
    return problems


def _check_message_log(url: str) -> list[str]:
    try:
        from warehouse.exchange import verify_message_log
    except ImportError:
        return []
    database = ControlDatabase(url)
    try:
        return list(verify_message_log(database).problems)
    finally:
        database.dispose()


def _remove(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)


__all__ = [
    "BackupError",
    "BackupReport",
    "RestoreReport",
    "backup_home",
    "check_home",
    "dump_database",
    "head_revision",
    "load_database",
    "restore_home",
]

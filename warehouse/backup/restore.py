"""How a backup is restored into a new home.

The archive is unpacked into a folder beside the target, every file verified against the
manifest, the control database loaded (and migrated to this platform's newest schema), and the
home moved into place only then; :func:`~warehouse.backup.home_check.check_home` runs on the
result. A damaged or altered archive, or a target that is not empty, restores nothing.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from sqlalchemy import inspect, select, update
from sqlalchemy.exc import SQLAlchemyError

from warehouse.backup.home_check import HomeFolder, check_home
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
from warehouse.control import (
    ControlDatabase,
    Submission,
    alembic_config,
    make_engine,
    upgrade_database,
)


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
            f"The database URL {shown_url(database_url)} is neither sqlite:// nor postgresql://."
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BackupError(f"{target.parent} cannot be created ({error.strerror}).") from error
    staging = target.parent / f".{target.name}.restoring-{os.getpid()}"
    remove_tree(staging)
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
                f"The control database could not be restored into {shown_url(staged_url)} "
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
        staged_home.chmod(0o700)  # the restored home is its owner's only, whatever the umask
        if (staged_home / SQLITE_FILE).is_file():
            (staged_home / SQLITE_FILE).chmod(0o600)
        os.replace(staged_home, target)
    except OSError as error:
        raise BackupError(
            f"Restoring into {target} failed ({error.strerror or error}); check the free space "
            "and permissions there, nothing was put in place."
        ) from error
    finally:
        remove_tree(staging)
    night = manifest.get("night") or {}
    digests = {
        name.removeprefix(f"{HOME}/"): entry["sha256"]
        for name, entry in manifest["files"].items()
        if name.startswith(f"{HOME}/archive/")
    }
    problems = check_home(
        HomeFolder(target, final_url), expected_rows=night.get("rows") or {}, digests=digests
    )
    return RestoreReport(
        home=target,
        database_url=shown_url(final_url),
        files=len(manifest["files"]),
        created_at=str(manifest.get("created_at", "")),
        province=str(manifest.get("province", "")),
        night_id=night.get("night_id"),
        versions=dict(night.get("versions") or {}),
        problems=problems,
    )


def _stem(archive: Path) -> str:
    return archive.name.removesuffix(".gz").removesuffix(".tar")


# ---- unpacking --------------------------------------------------------------------------------


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


# ---- the control database ---------------------------------------------------------------------


def _restore_database(manifest: dict[str, Any], staging: Path, url: str, elsewhere: bool) -> None:
    """Put the control database in place at ``url`` and migrate it to this platform's head.
    ``elsewhere``: the target is a database of its own, not the new home's SQLite file."""
    database = manifest["database"]
    revision = database.get("revision")
    if revision is not None and revision not in _known_revisions():
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


def _known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return {revision.revision for revision in script.walk_revisions()}


def _refuse_non_empty_database(url: str) -> None:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            tables = inspect(connection).get_table_names()
    except SQLAlchemyError as error:
        raise BackupError(
            f"The target database {shown_url(url)} cannot be opened ({type(error).__name__}); "
            "create it empty first and check the URL."
        ) from error
    finally:
        engine.dispose()
    if tables:
        raise BackupError(
            f"The target database {shown_url(url)} already holds tables ({', '.join(tables[:3])}"
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

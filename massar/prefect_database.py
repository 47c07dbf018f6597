"""The embedded Prefect API's database on a fresh home: a copy of an already migrated one.

A new SQLite database takes Prefect's 116 Alembic migrations and its block registrations
before the API answers (about 5 s of CPU, 10 s of wall on a busy 2-core machine): paid on
every fresh home's first night. The first embedded start of an installation (one Python
environment, one Prefect version) keeps a copy of the database it has just migrated, taken
before any run is recorded in it; a later fresh home starts from that copy. Prefect still
checks the migrations at start (cheap on a database at the head), so a copy made by another
Prefect version is migrated as before, never trusted blindly.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
import uuid
from importlib.metadata import version
from pathlib import Path

SQLITE_PREFIXES = ("sqlite+aiosqlite:///", "sqlite:///")


def template_path() -> Path:
    """Where this installation keeps its migrated database (one per Prefect version)."""
    return Path(sys.prefix) / "share" / "massar" / f"prefect-{version('prefect')}.db"


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite database URL; None for another database (or in memory)."""
    for prefix in SQLITE_PREFIXES:
        if url.startswith(prefix):
            path = url[len(prefix) :].split("?", 1)[0]
            return Path(path) if path and path != ":memory:" else None
    return None


def start_from_template(database: Path, template: Path | None = None) -> bool:
    """Give a home without a Prefect database a copy of the template; True when copied (the
    API then needs no block registration: the template holds Prefect's own)."""
    template = template or template_path()
    if database.exists() or not template.is_file():
        return False
    database.parent.mkdir(parents=True, exist_ok=True)
    partial = database.with_name(f".{database.name}.{uuid.uuid4().hex}")
    try:
        _copy(template, partial)
        os.replace(partial, database)  # never a half-copied database under the real name
    except (OSError, sqlite3.Error):
        partial.unlink(missing_ok=True)
        return False
    return True


def keep_as_template(database: Path, template: Path | None = None) -> bool:
    """After the API's first start on a fresh database (migrated, no run yet), keep a copy as
    the installation's template; nothing when one exists or the folder is not writable."""
    template = template or template_path()
    if template.is_file() or not database.is_file():
        return False
    partial = template.with_name(f".{template.name}.{uuid.uuid4().hex}")
    try:
        template.parent.mkdir(parents=True, exist_ok=True)
        _copy(database, partial)
        os.replace(partial, template)
    except (OSError, sqlite3.Error):
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        return False
    return True


def _copy(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database that may be in use (its WAL included)."""
    source_db = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    with contextlib.closing(source_db) as src, contextlib.closing(sqlite3.connect(target)) as dst:
        src.backup(dst)

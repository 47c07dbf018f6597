"""A fresh home's Prefect database starts as a copy of the installation's migrated one
(massar/prefect_database.py): copied whole or not at all, never over a home's own database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from massar.prefect_database import keep_as_template, sqlite_file, start_from_template


def _database(path: Path, rows: int) -> None:
    """A SQLite database in WAL mode, as Prefect keeps its own, with rows not yet checkpointed."""
    with sqlite3.connect(path) as connection:
        connection.execute("pragma journal_mode=wal")
        connection.execute("create table alembic_version (version_num text)")
        connection.executemany(
            "insert into alembic_version values (?)", [(f"rev{i}",) for i in range(rows)]
        )


def _rows(path: Path) -> int:
    with sqlite3.connect(path) as connection:
        return int(connection.execute("select count(*) from alembic_version").fetchone()[0])


def test_the_first_start_keeps_a_template_that_a_fresh_home_starts_from(tmp_path: Path) -> None:
    first = tmp_path / "home-1" / "prefect" / "prefect.db"
    first.parent.mkdir(parents=True)
    _database(first, 3)
    template = tmp_path / "installation" / "prefect-3.db"

    assert keep_as_template(first, template)
    fresh = tmp_path / "home-2" / "prefect" / "prefect.db"
    assert start_from_template(fresh, template)

    assert sorted(p.name for p in fresh.parent.iterdir()) == ["prefect.db"]  # no partial copy
    assert _rows(fresh) == 3  # the rows still in the first one's WAL are in the copy


def test_a_home_with_its_own_database_keeps_it(tmp_path: Path) -> None:
    template = tmp_path / "template.db"
    _database(template, 5)
    own = tmp_path / "prefect.db"
    _database(own, 1)

    assert not start_from_template(own, template)
    assert _rows(own) == 1


def test_an_existing_template_is_not_replaced_and_a_missing_one_copies_nothing(
    tmp_path: Path,
) -> None:
    template = tmp_path / "template.db"
    _database(template, 5)
    other = tmp_path / "other.db"
    _database(other, 2)

    assert not keep_as_template(other, template)
    assert _rows(template) == 5
    fresh = tmp_path / "fresh" / "prefect.db"
    assert not start_from_template(fresh, tmp_path / "no-template.db")
    assert not fresh.exists()


def test_only_a_sqlite_file_has_a_template() -> None:
    assert sqlite_file("sqlite+aiosqlite:////srv/home/prefect/prefect.db") == Path(
        "/srv/home/prefect/prefect.db"
    )
    assert sqlite_file("sqlite+aiosqlite:///:memory:") is None
    assert sqlite_file("postgresql+asyncpg://prefect@db/prefect") is None

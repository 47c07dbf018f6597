"""The night's tables are written side by side (flows/nightly.py, TABLE_WRITERS at a time):
when one table's write fails, the night is not published, whatever the other writes did, and
the next night takes in every submission as if the failed one had not run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flows.ingest import ingest_submissions
from flows.nightly import nightly_consolidation
from massar.home import init_home
from warehouse.control import ControlDatabase
from warehouse.delta import WarehouseError, current_version, table_rows
from warehouse.nights import published_versions


def _school_folders(province: Path) -> list[Path]:
    return sorted(p for p in province.iterdir() if p.is_dir() and p.name[:5].isdigit())


def _published(settings) -> dict[str, int]:
    database = ControlDatabase(settings.resolved_database_url)
    try:
        return published_versions(database)
    finally:
        database.dispose()


def test_a_failed_table_leaves_the_night_unpublished_and_the_next_night_complete(
    prefect_server, province, tmp_path: Path
):
    settings = init_home(tmp_path / "home")
    for school in _school_folders(province)[:2]:
        shutil.copytree(school, settings.inbox / school.name)
    ingest_submissions(settings)
    # one school's staged marks lost (a disk fault): the marks write refuses to go on
    staged = settings.staging / _school_folders(province)[1].name / "marks"
    kept = tmp_path / "kept-marks"
    shutil.move(staged, kept)

    with pytest.raises(WarehouseError, match="does not hold the accepted marks rows"):
        nightly_consolidation(settings)

    assert _published(settings) == {}  # readers see no half night
    assert current_version(settings.warehouse, "marks") == -1  # no marks commit

    shutil.move(kept, staged)  # the staging restored: the next night takes in everything
    summary = nightly_consolidation(settings)
    published = _published(settings)
    assert published == summary["versions"]
    assert {"students", "enrollments", "marks", "classes"} <= set(published)
    for table, version in published.items():
        assert table_rows(settings.warehouse, table, version) == summary["rows"][table]
    assert summary["rows"]["marks"] > 0

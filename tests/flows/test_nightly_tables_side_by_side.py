"""The night's tables are written side by side (flows/nightly.py, TABLE_WRITERS at a time):
when one table's write fails, the night is not published, whatever the other writes did, and
the next night takes in every submission as if the failed one had not run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from prefect.utilities.annotations import quote

import flows.nightly
from flows.ingest import ingest_submissions
from flows.nightly import nightly_consolidation
from massar.home import init_home
from tasks.consolidation_steps import find_changed_schools
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


def test_the_nights_submissions_reach_publish_night_quoted_and_all_get_consolidated(
    prefect_server, province, tmp_path: Path, monkeypatch
):
    """Every submission id of the night goes to publish_night: unquoted, Prefect visits each
    of them twice before the task starts (1.2 s of one core at the end of the province's
    first night), so the flow hands them over quoted and the task still marks them all."""
    settings = init_home(tmp_path / "home")
    for school in _school_folders(province)[:2]:
        shutil.copytree(school, settings.inbox / school.name)
    ingest_submissions(settings)
    pending = find_changed_schools(settings)
    handed: list[object] = []
    publish = flows.nightly.publish_night_task

    def recording(*args, **kwargs):  # type: ignore[no-untyped-def]
        handed.append(args[3])
        return publish(*args, **kwargs)

    monkeypatch.setattr(flows.nightly, "publish_night_task", recording)
    nightly_consolidation(settings)

    assert len(handed) == 1 and isinstance(handed[0], quote)
    assert handed[0].unquote() == pending
    ids = {sid for by_school in pending.values() for ids in by_school.values() for sid in ids}
    assert ids  # the night had submissions to take in
    assert find_changed_schools(settings) == {d: {} for d in pending}  # every one consolidated

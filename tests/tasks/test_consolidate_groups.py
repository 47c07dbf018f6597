"""A table's rows converted a group of schools at a time (tasks/consolidate.py): the same rows,
in the same order and types, as each school's converted alone."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from ground.settings import Settings, load_settings
from massar.home import init_home
from tasks.consolidate import _active, _schools_rows, changed_schools, school_groups, school_rows
from tasks.ingest import discover_inbox, ingest_school
from warehouse.control import ControlDatabase
from warehouse.tables import TABLES

SCHOOLS = 3


@pytest.fixture(scope="module")
def home(province: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A home with the first schools of the test province ingested (not consolidated)."""
    settings = init_home(tmp_path_factory.mktemp("groups") / "home")
    schools, _ = discover_inbox(province)
    for code in sorted(schools)[:SCHOOLS]:
        ingest_school(settings, code, schools[code], province / code)
    return load_settings(settings.home)


@pytest.mark.parametrize("table", [t for t, spec in TABLES.items() if spec.dataset])
def test_a_group_of_schools_holds_the_rows_of_each_school_alone(home: Settings, table: str) -> None:
    spec = TABLES[table]
    assert spec.dataset is not None
    database = ControlDatabase(home.resolved_database_url)
    try:
        active = _active(database, changed_schools(database, spec.dataset), spec.dataset)
    finally:
        database.dispose()
    alone = [rows for code in active if (rows := school_rows(home, spec, code, active[code]))]
    together = _schools_rows(home, spec, active)
    if not alone:
        assert together is None
        return
    assert len(active) == SCHOOLS
    assert together is not None
    assert together.schema == spec.schema
    assert together.equals(pa.concat_tables(alone))


def test_groups_keep_the_schools_order_within_their_limits(home: Settings) -> None:
    database = ControlDatabase(home.resolved_database_url)
    try:
        active = _active(database, changed_schools(database, "marks"), "marks")
    finally:
        database.dispose()
    rows = {code: sum(s.rows_accepted or 0 for s in subs) for code, subs in active.items()}
    assert len(rows) == SCHOOLS and min(rows.values()) > 0

    by_two = school_groups(active, rows=10**9, schools=2)
    assert [list(g) for g in by_two] == [list(active)[:2], list(active)[2:]]
    # a school more than the rows allow starts a group of its own, even alone over the limit
    each = school_groups(active, rows=min(rows.values()), schools=10)
    assert [list(g) for g in each] == [[code] for code in active]
    assert school_groups({}) == []

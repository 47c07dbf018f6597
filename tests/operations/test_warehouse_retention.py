"""The weekly maintenance keeps a bounded window of nights readable and deletes the rest: on a
Delta table replaced night after night (the clock of the nights injected, one night a day),
the nights published in the last ``keep_days`` days and the last published night read as they
were, older nights no longer do, and the table's files stop growing once it holds that window,
its log included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

import warehouse.nights
from tasks.warehouse_maintenance import oldest_kept_versions, tidy_table
from warehouse.control import ControlDatabase
from warehouse.delta import TableMissing, read_table, replace_school_rows
from warehouse.nights import finish_night, start_night

START = datetime(2024, 2, 1, 2, 0, tzinfo=UTC)
SCHEMA = pa.schema([pa.field("school_code", pa.string(), nullable=False), ("mark", pa.float64())])


def files(table: Path) -> tuple[int, int]:
    """(data files, log entries) of a Delta table folder."""
    data = sum(1 for p in table.rglob("*.parquet") if "_delta_log" not in p.parts)
    log = sum(1 for p in (table / "_delta_log").iterdir() if p.name[:20].isdigit())
    return data, log


def marks(warehouse: Path, version: int) -> list[tuple[str, float]]:
    table = read_table(warehouse, "t", version).to_table()
    return sorted(zip(table["school_code"].to_pylist(), table["mark"].to_pylist(), strict=True))


@pytest.fixture
def nights(massar_home, monkeypatch):
    """Publish night ``day`` (at 02:00 of START + ``day`` days): school A's mark changes every
    night, school B's every third night; returns the version the night published."""
    settings = massar_home
    database = ControlDatabase(settings.resolved_database_url)
    published: dict[int, int] = {}

    def publish(day: int) -> int:
        monkeypatch.setattr(warehouse.nights, "utcnow", lambda: START + timedelta(days=day))
        night = start_night(database)
        schools = ["A"] + (["B"] if day % 3 == 0 else [])
        frame = pa.table(
            {"school_code": schools, "mark": [float(day)] * len(schools)}, schema=SCHEMA
        )
        version = replace_school_rows(settings.warehouse, "t", schools, frame)
        finish_night(database, night, {"t": version}, {})
        published[day] = version
        return version

    yield settings, publish, published
    database.dispose()


def expected(day: int) -> list[tuple[str, float]]:
    return [("A", float(day)), ("B", float(day - day % 3))]


def test_the_last_days_of_nights_stay_readable_and_older_ones_go(nights):
    settings, publish, published = nights
    for day in range(0, 10):
        publish(day)
    now = START + timedelta(days=9, hours=2)
    oldest = oldest_kept_versions(settings, keep_days=3, now=now)
    assert oldest == {"t": published[7]}  # nights 7, 8, 9 are the last three days
    before = files(settings.warehouse / "t")
    report = tidy_table(settings, "t", oldest["t"])
    assert report["files_vacuumed"] > 0 and report["log_entries_dropped"] > 0
    for day in (7, 8, 9):
        assert marks(settings.warehouse, published[day]) == expected(day)
    with pytest.raises(TableMissing):
        read_table(settings.warehouse, "t", published[6]).to_table()
    after = files(settings.warehouse / "t")
    assert after[0] < before[0] and after[1] < before[1]
    # Only what nights 7 to 9 read is left: A's three files and B's one (written night 6, read
    # by 7 and 8) and night 9's B.
    assert after[0] == 5


def test_a_warehouse_whose_nights_stopped_keeps_the_last_night(nights):
    settings, publish, published = nights
    for day in range(0, 4):
        publish(day)
    much_later = START + timedelta(days=90)
    oldest = oldest_kept_versions(settings, keep_days=3, now=much_later)
    assert oldest == {"t": published[3]}
    tidy_table(settings, "t", oldest["t"])
    assert marks(settings.warehouse, published[3]) == expected(3)


def test_nothing_is_deleted_before_a_night_is_published(massar_home):
    assert oldest_kept_versions(massar_home, keep_days=0) == {}


def test_weekly_maintenance_levels_the_table_off(nights):
    """Seven weeks of nights, a maintenance each seventh night keeping seven days: after each
    maintenance from the second on, the table holds the same number of files."""
    settings, publish, published = nights
    after_maintenance = []
    for day in range(0, 49):
        publish(day)
        if day % 7 == 6:
            now = START + timedelta(days=day, hours=3)
            oldest = oldest_kept_versions(settings, keep_days=7, now=now)
            tidy_table(settings, "t", oldest["t"])
            after_maintenance.append(files(settings.warehouse / "t"))
            for kept in range(day - 6, day + 1):
                assert marks(settings.warehouse, published[kept]) == expected(kept)
    steady = after_maintenance[1:]
    assert max(d for d, _ in steady) == min(d for d, _ in steady), after_maintenance
    assert max(log for _, log in steady) - min(log for _, log in steady) <= 2, after_maintenance

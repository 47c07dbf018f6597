"""Which school keeps a pupil listed by two schools is decided by the lists' own dates, never by
the order in which the schools were ingested: the same schools ingested one after the other in
both orders, and all at once by the ingest flow's worker processes, give the same enrolments,
the same findings and the same transfers page."""

from __future__ import annotations

import csv
import os
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
from lxml import html as lxml_html
from sqlalchemy import select

from flows.ingest import ingest_submissions
from flows.nightly import nightly_consolidation
from ground.settings import Settings
from massar.home import init_home
from tasks.ingest import check_province, ingest_school
from tests.connectors.school_file_builders import pupils, write_list_eleve
from warehouse.control import ControlDatabase, Finding
from warehouse.delta import read_table

CLASS = "1APIC-1"
DATED_ARRIVAL = datetime(2024, 2, 1, 8, 0, tzinfo=UTC)


def _pupil(number: int) -> dict:
    return pupils(1, start=number)[0]


def _code(number: int) -> str:
    return _pupil(number)["code"]


# school → (file name, its own pupils' first number, pupils of other schools it lists too,
# when the file arrived in the inbox)
SCHOOLS = {
    "11111A": ("ListEleve_20240110.xls", 1, [], DATED_ARRIVAL),
    # lists A's pupil 1 with a newer export: B keeps him
    "22222B": ("ListEleve_20240120.xls", 11, [1], DATED_ARRIVAL),
    # lists B's pupil 11 with an export of the same day as B's: a tie
    "33333C": ("ListEleve_20240120.xls", 21, [11], DATED_ARRIVAL),
    # no date in the file: its arrival (15 January) is newer than A's export (10 January)
    "44444D": ("liste_eleves.xls", 31, [2], datetime(2024, 1, 15, 12, 0, tzinfo=UTC)),
    # no date either, arrived the same day as D's but earlier: D keeps pupil 31
    "55555E": ("eleves.xls", 41, [31], datetime(2024, 1, 15, 9, 0, tzinfo=UTC)),
}
EXPECTED = {
    (_code(1), "11111A"): "transferred_out",
    (_code(1), "22222B"): "active",
    (_code(2), "11111A"): "transferred_out",
    (_code(2), "44444D"): "active",
    (_code(11), "22222B"): "active",
    (_code(11), "33333C"): "active",
    (_code(31), "44444D"): "active",
    (_code(31), "55555E"): "transferred_out",
}


def _write_inbox(settings: Settings) -> dict[str, Path]:
    folders = {}
    for code, (name, first, others, arrived) in SCHOOLS.items():
        folder = settings.inbox / code
        folder.mkdir(parents=True)
        listed = pupils(6, start=first) + [_pupil(n) for n in others]
        path = write_list_eleve(folder / name, {CLASS: listed})
        os.utime(path, (arrived.timestamp(), arrived.timestamp()))
        folders[code] = folder
    return folders


def _ingest_one_by_one(settings: Settings, order: list[str]) -> None:
    folders = _write_inbox(settings)
    for code in order:
        outcome = ingest_school(settings, code, sorted(folders[code].iterdir()), folders[code])
        assert outcome.accepted == 1, code
        check_province(settings)


def _ingest_together(settings: Settings) -> None:
    _write_inbox(settings)
    state = ingest_submissions(settings, return_state=True)  # schools in worker processes
    assert state.is_completed(), state.message
    assert state.result()["totals"]["accepted"] == len(SCHOOLS)


@pytest.fixture(scope="module")
def homes(prefect_server, tmp_path_factory) -> dict[str, Settings]:
    """The same five schools ingested in three ways, each home then consolidated."""
    homes = {}
    for name in ("in order", "reversed", "together"):
        settings = init_home(tmp_path_factory.mktemp(name.replace(" ", "-")) / "home")
        if name == "together":
            _ingest_together(settings)
        else:
            order = sorted(SCHOOLS)
            _ingest_one_by_one(settings, order if name == "in order" else order[::-1])
        state = nightly_consolidation(settings, return_state=True)
        assert state.is_completed(), state.message
        homes[name] = settings
    return homes


def _shared(settings: Settings) -> pl.DataFrame:
    """The enrolments of pupils listed by two schools, without ids that depend on the run."""
    frame = pl.from_arrow(read_table(settings.warehouse, "enrollments").to_table())
    assert isinstance(frame, pl.DataFrame)
    shared = frame.filter(pl.col("student_code").is_in([code for code, _ in EXPECTED]))
    return shared.select(
        "student_code", "school_code", "status", "listed_on", "listed_on_source", "enrolled_from"
    ).sort("student_code", "school_code")


def _findings(settings: Settings) -> list[tuple[str, str, str, str]]:
    database = ControlDatabase(settings.resolved_database_url)
    try:
        with database.session() as session:
            rows = session.scalars(select(Finding).where(Finding.rule_id.in_(["X012", "X015"])))
            return sorted((f.school_code, f.rule_id, f.value or "", f.message_fr) for f in rows)
    finally:
        database.dispose()


def _page(settings: Settings) -> tuple[list[dict], str]:
    folder = settings.reports / "province"
    (csv_path,) = folder.glob("transfers-*.csv")
    with csv_path.open(encoding="utf-8-sig", newline="") as handle:
        rows = sorted(csv.DictReader(handle), key=lambda r: (r["student_code"], r["outcome"]))
    page = lxml_html.fromstring(csv_path.with_suffix(".html").read_text(encoding="utf-8"))
    return rows, page.text_content()


def test_the_newer_list_keeps_the_pupil_whatever_the_ingest_order(homes):
    for name, settings in homes.items():
        statuses = {
            (row["student_code"], row["school_code"]): row["status"]
            for row in _shared(settings).iter_rows(named=True)
        }
        assert statuses == EXPECTED, name
    first = _shared(homes["in order"])
    assert first.filter(pl.col("school_code") == "22222B").get_column(
        "listed_on"
    ).unique().to_list() == [date(2024, 1, 20)]
    assert set(first.get_column("listed_on_source")) == {"file name", "arrival"}
    for name in ("reversed", "together"):
        assert _shared(homes[name]).equals(first), name


def test_both_schools_are_told_the_same_whatever_the_order(homes):
    findings = _findings(homes["in order"])
    told = {(school, rule, value) for school, rule, value, _ in findings}
    assert told == {
        ("11111A", "X012", _code(1)),
        ("22222B", "X012", _code(1)),
        ("11111A", "X012", _code(2)),
        ("44444D", "X012", _code(2)),
        ("22222B", "X015", _code(11)),
        ("33333C", "X015", _code(11)),
        ("44444D", "X012", _code(31)),
        ("55555E", "X012", _code(31)),
    }
    # the dates that decided are in the messages
    moved = next(m for s, r, v, m in findings if (s, v) == ("11111A", _code(1)))
    assert "2024-01-20" in moved and "2024-01-10" in moved
    tie = next(m for s, r, v, m in findings if r == "X015" and s == "22222B")
    assert "33333C" in tie and "2024-01-20" in tie
    for name in ("reversed", "together"):
        assert _findings(homes[name]) == findings, name


def test_the_transfers_page_shows_the_dates_that_decided_and_the_tie(homes):
    rows, text = _page(homes["in order"])
    by_pupil = {(r["student_code"], r["outcome"]): r for r in rows}
    assert set(by_pupil) == {
        (_code(1), "transfer"),
        (_code(2), "transfer"),
        (_code(11), "tie"),
        (_code(31), "transfer"),
    }
    one = by_pupil[(_code(1), "transfer")]
    assert (one["school_kept"], one["listed_kept"], one["source_kept"]) == (
        "22222B",
        "2024-01-20",
        "file name",
    )
    assert (one["school_left"], one["listed_left"]) == ("11111A", "2024-01-10")
    late = by_pupil[(_code(31), "transfer")]
    assert (late["source_kept"], late["enrolled_kept"]) == ("arrival", "2024-01-15 12:00 UTC")
    assert late["enrolled_left"] == "2024-01-15 09:00 UTC"
    assert "Listes de même date" in text and "2024-01-20" in text
    assert "2024-01-15 12:00 UTC" in text
    for name in ("reversed", "together"):
        assert _page(homes[name])[0] == rows, name

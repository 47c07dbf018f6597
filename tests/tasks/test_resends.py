"""A resend that removes much of what a school had is held, not applied (plain functions).

The guardians case of issue 12: a school with 627 guardians resends a 4-line file."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import polars as pl
import pytest
from lxml import html as lxml_html
from sqlalchemy import select

from ground.settings import Settings
from massar.home import init_home
from massar.status import intake
from schemas.datasets import DATASETS
from tasks.consolidate import (
    changed_schools,
    consolidate_table,
    mark_consolidated,
    pending_submissions,
)
from tasks.ingest import ingest_school
from tasks.resends import HOLD_RULE, confirm_resend, count_lines, removes_too_much
from warehouse.control import ControlDatabase, Finding, Submission
from warehouse.delta import read_table
from warehouse.tables import tables_of

SCHOOL = "73578M"  # of the test province (conftest: 6 schools, seed 7)
GUARDIANS = 627


def test_only_a_resend_that_removes_more_than_the_share_is_held():
    assert removes_too_much(627, 4, 0.30)
    assert removes_too_much(100, 69, 0.30)
    assert not removes_too_much(100, 70, 0.30)  # 30 % removed: not more than the share
    assert not removes_too_much(0, 0, 0.30)  # a first submission
    assert not removes_too_much(627, 700, 0.30)  # a resend that adds rows
    assert not removes_too_much(627, 0, 1.0)  # a share of 1 never holds


def test_lines_are_counted_as_the_school_sees_them():
    # a NotesCC line is one row per slot: two lines here, six rows
    marks = pl.DataFrame(
        {
            "submission_id": [1, 1, 1, 1, 1, 2],
            "sheet": ["NotesCC"] * 6,
            "sheet_row": [18, 18, 18, 19, 19, 18],
        }
    )
    assert count_lines(marks) == 3
    assert count_lines(None) == 0


def _guardian_lines(source: Path, count: int) -> str:
    with source.open(encoding="utf-8-sig", newline="") as handle:
        lines = handle.read().splitlines()
    assert len(lines) > count, "the test school needs more guardians"
    return "\n".join(lines[: count + 1]) + "\n"


def _rows_in(path: Path) -> int:
    """The guardians of a CSV file, counted independently of the platform."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return sum(1 for _ in csv.DictReader(handle))


def _send(settings: Settings, text: str, name: str = "guardians.csv"):
    """The school drops a guardians file in its inbox folder; it is ingested."""
    folder = settings.inbox / SCHOOL
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    return ingest_school(settings, SCHOOL, [folder / name], folder)


def _night(settings: Settings) -> int:
    """What the nightly consolidation does; returns the school's guardians in the warehouse."""
    database = ControlDatabase(settings.resolved_database_url)
    try:
        pending = []
        for dataset in DATASETS:
            schools = changed_schools(database, dataset)
            for table in tables_of(dataset):
                consolidate_table(settings, table, schools)
            pending += [s for ids in pending_submissions(database, dataset).values() for s in ids]
        mark_consolidated(database, pending)
    finally:
        database.dispose()
    guardians = pl.from_arrow(read_table(settings.warehouse, "guardians").to_table())
    assert isinstance(guardians, pl.DataFrame)
    return guardians.filter(pl.col("school_code") == SCHOOL).height


def _submission(settings: Settings, submission_id: int) -> Submission:
    database = ControlDatabase(settings.resolved_database_url)
    try:
        with database.session() as session:
            found = session.get(Submission, submission_id)
            assert found is not None
            return found
    finally:
        database.dispose()


def _findings(settings: Settings, submission_id: int) -> list[Finding]:
    database = ControlDatabase(settings.resolved_database_url)
    try:
        with database.session() as session:
            return list(
                session.scalars(select(Finding).where(Finding.submission_id == submission_id))
            )
    finally:
        database.dispose()


def _report(settings: Settings) -> str:
    """The school's HTML report as a reader sees its text."""
    page = (settings.reports / SCHOOL / f"rapport_{SCHOOL}.html").read_text(encoding="utf-8")
    return lxml_html.fromstring(page).text_content()


@pytest.fixture
def school(province: Path, tmp_path: Path) -> tuple[Settings, Path, int]:
    """A home where the school's 627 guardians are in the warehouse after a night."""
    settings = init_home(tmp_path / "home")
    source = province / SCHOOL / "guardians.csv"
    first = _send(settings, _guardian_lines(source, GUARDIANS))
    assert first.accepted == 1 and first.held == 0  # the first submission is never held
    assert _night(settings) == GUARDIANS == _rows_in(settings.inbox / SCHOOL / "guardians.csv")
    return settings, source, first.new_submissions[0]


def test_a_four_line_resend_is_held_and_the_warehouse_keeps_the_627(school):
    from tasks.ingest import write_reports

    settings, source, first_id = school
    outcome = _send(settings, _guardian_lines(source, 4))
    assert (outcome.accepted, outcome.held, outcome.queries) == (1, 1, 1)
    resend = _submission(settings, outcome.new_submissions[0])
    # the state stays a public one; the hold is a separate marker
    assert (resend.state, resend.hold) == ("accepted", "held")
    assert (resend.hold_rows_before, resend.hold_rows_after) == (GUARDIANS, 4)
    assert _submission(settings, first_id).state == "accepted"
    (finding,) = _findings(settings, resend.submission_id)
    assert (finding.rule_id, finding.severity, finding.sheet_row) == (HOLD_RULE, "query", None)
    for message in (finding.message_fr, finding.message_ar):
        assert "627" in message and "4" in message and str(resend.submission_id) in message
    assert "renvoyez le fichier complet" in finding.message_fr

    assert _night(settings) == GUARDIANS  # the night leaves the warehouse as it was
    write_reports(settings, [SCHOOL], resend.received_at)
    page = _report(settings)
    assert finding.message_fr in page and finding.message_ar in page
    assert "en attente de confirmation" in page
    (table,) = intake(settings)
    assert table.row_count == 1 and "massar confirm" in str(table.caption)

    done = confirm_resend(settings, resend.submission_id, "Fatima Zahra")
    assert (done.lines_before, done.lines_after, done.superseded) == (GUARDIANS, 4, (first_id,))
    assert _submission(settings, first_id).state == "superseded"
    assert _submission(settings, resend.submission_id).confirmed_by == "Fatima Zahra"
    assert _findings(settings, resend.submission_id) == []
    assert "en attente de confirmation" not in _report(settings)
    assert intake(settings) == []
    assert _night(settings) == 4  # the next night applies it
    with pytest.raises(ValueError):
        confirm_resend(settings, resend.submission_id, "again")
    with pytest.raises(LookupError):
        confirm_resend(settings, 999_999, "nobody")


def test_a_complete_resend_is_applied_without_confirmation_and_replaces_the_held_one(school):
    settings, source, first_id = school
    held = _send(settings, _guardian_lines(source, 4)).new_submissions[0]
    # the school sends its complete file, two guardians more: applied, never held
    complete = _send(settings, _guardian_lines(source, GUARDIANS + 2), "guardians_complet.csv")
    assert (complete.accepted, complete.held, complete.queries) == (1, 0, 0)
    assert _submission(settings, held).state == "superseded"
    assert _submission(settings, first_id).state == "superseded"
    assert intake(settings) == []
    assert _night(settings) == GUARDIANS + 2


def test_a_small_cut_is_applied(school):
    settings, source, _ = school
    outcome = _send(settings, _guardian_lines(source, 500))  # 20 % fewer: below 30 %
    assert (outcome.accepted, outcome.held) == (1, 0)
    assert _night(settings) == 500


def test_the_share_is_a_setting(school, tmp_path: Path):
    settings, source, _ = school
    settings.resend_hold_share = 0.1
    assert _send(settings, _guardian_lines(source, 500)).held == 1


def test_a_loose_file_at_the_inbox_root_is_shown_in_the_status(tmp_path: Path):
    from tasks.ingest import stray_entries

    settings = init_home(tmp_path / "home")
    (settings.inbox / "guardians.csv").write_text("x\n", encoding="utf-8")
    (settings.inbox / "ecole-33494").mkdir()
    (settings.inbox / ".upload.part").write_text("", encoding="utf-8")  # an upload in progress
    (settings.inbox / SCHOOL).mkdir()
    assert sorted((e.name, e.kind) for e in stray_entries(settings.inbox)) == [
        ("ecole-33494", "folder"),
        ("guardians.csv", "file"),
    ]
    (table,) = intake(settings)
    assert table.row_count == 2
    caption = str(table.caption)
    assert "1 file(s)" in caption and "1 folder(s)" in caption and "inbox/<school code>/" in caption
    shutil.rmtree(settings.inbox / "ecole-33494")
    (settings.inbox / "guardians.csv").unlink()
    assert intake(settings) == []


def test_a_resend_confirmed_while_a_night_runs_is_applied_by_the_next_night(school):
    settings, source, _ = school
    held = _send(settings, _guardian_lines(source, 4)).new_submissions[0]
    database = ControlDatabase(settings.resolved_database_url)
    try:
        # the night starts: what it will mark consolidated does not include the held file
        started = pending_submissions(database, "guardians")
        assert held not in [sid for ids in started.values() for sid in ids]
        confirm_resend(settings, held, "Fatima Zahra")  # meanwhile, an officer confirms it
        mark_consolidated(database, [sid for ids in started.values() for sid in ids])
        assert pending_submissions(database, "guardians") == {SCHOOL: [held]}
    finally:
        database.dispose()
    assert _night(settings) == 4


def test_massar_ingest_says_what_is_held_and_what_lies_at_the_inbox_root(tmp_path: Path):
    from massar.runner import describe_ingest

    settings = init_home(tmp_path / "home")
    totals = {
        key: 0
        for key in (
            "new_submissions",
            "schools",
            "already_known",
            "accepted",
            "partially_accepted",
            "rejected",
            "rows_accepted",
            "rows_quarantined",
            "errors",
            "queries",
        )
    }
    quiet = describe_ingest({"totals": {**totals, "held": 0}}, settings)
    assert "resend(s) held" not in quiet and "inbox's root" not in quiet
    said = describe_ingest(
        {"totals": {**totals, "held": 1, "stray_entries": ["guardians.csv"]}}, settings
    )
    assert "1 resend(s) held" in said and "massar confirm SUBMISSION" in said
    assert "inbox's root: guardians.csv" in said

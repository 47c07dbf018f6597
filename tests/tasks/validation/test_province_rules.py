"""Cross-record rules of the province, one failing and one passing example each: X002 (a pupil
on two schools' lists, checked by the ingest over every school's list), X012 and X015 (decided
by the nightly consolidation from the lists' own dates: the newer list keeps the pupil, lists of
the same date are a tie). Each finding reaches both schools, in sentences that read whole."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import select

from massar.home import init_home
from schemas.rules import MISSING
from tasks.consolidate import _record_transfer_findings, resolve_enrollments, transfers_of
from tasks.validation.all_rules import DECLARED
from tasks.validation.cross_record import PROVINCE_RULE_IDS, cross_check_province
from tests.tasks.validation.read_frames import assert_readable, students
from warehouse.control import ControlDatabase, Finding
from warehouse.submissions import register_submissions

A, B = "11111A", "22222B"


def test_x002_a_pupil_on_two_schools_lists_is_reported_to_both():
    findings = cross_check_province(
        {
            A: students([{"student_code": "K100000001"}], submission_id="a"),
            B: students([{"student_code": " k100000001"}], submission_id="b"),
        }
    )
    assert findings.select("school_code", "rule_id", "severity", "submission_id").rows() == [
        (A, "X002", "query", "a"),
        (B, "X002", "query", "b"),
    ]
    assert_readable(findings, "X002", DECLARED["X002"].placeholders)
    assert PROVINCE_RULE_IDS == ("X002",)  # what the ingest recomputes from scratch


def test_x002_pupils_of_one_school_each_give_nothing():
    findings = cross_check_province(
        {
            A: students([{"student_code": "K100000001"}], submission_id="a"),
            B: students([{"student_code": "K100000002"}], submission_id="b"),
        }
    )
    assert findings.height == 0


# ---- X012, X015: raised by the nightly consolidation (tasks/consolidate.py) ------------------


@pytest.fixture
def database(tmp_path: Path):
    settings = init_home(tmp_path / "home")
    database = ControlDatabase(settings.resolved_database_url)
    yield database
    database.dispose()


def night_findings(database: ControlDatabase, listed: tuple[date, date]) -> list[Finding]:
    """The findings the consolidation attaches to two schools' lists of one pupil, ``listed``
    on these dates (A's, B's)."""
    ids = register_submissions(
        database,
        [
            {
                "school_code": school,
                "dataset": "students",
                "file_name": f"ListEleve_{school}.xlsx",
                "sha256": school * 4,
                "size_bytes": 1,
            }
            for school in (A, B)
        ],
    )
    arrived = datetime(2024, 2, 1, 8, tzinfo=UTC)
    enrolments = pl.DataFrame(
        [
            (school, "2023/2024", "K100000001", arrived, day, "file name", sid)
            for school, day, sid in zip((A, B), listed, ids, strict=True)
        ],
        schema=[
            "school_code",
            "school_year",
            "student_code",
            "enrolled_from",
            "listed_on",
            "listed_on_source",
            "submission_id",
        ],
        orient="row",
    ).with_columns(
        pl.col("enrolled_from").cast(pl.Datetime("us", "UTC")),
        pl.lit("active").alias("status"),
        pl.lit("Sheet1").alias("sheet"),
        pl.lit(16, pl.Int64).alias("sheet_row"),
    )
    _record_transfer_findings(database, transfers_of(resolve_enrollments(enrolments)), UTC)
    with database.session() as session:
        return list(session.scalars(select(Finding).order_by(Finding.submission_id)))


def assert_told_to_both(findings: list[Finding], rule_id: str) -> None:
    assert [(f.rule_id, f.school_code) for f in findings] == [(rule_id, A), (rule_id, B)]
    assert {f.severity for f in findings} == {DECLARED[rule_id].severity}
    for finding in findings:
        assert (finding.sheet, finding.sheet_row, finding.value) == ("Sheet1", 16, "K100000001")
        assert MISSING not in finding.message_fr and MISSING not in finding.message_ar
        other = B if finding.school_code == A else A
        assert other in finding.message_fr and other in finding.message_ar


def test_x012_the_newer_list_keeps_the_pupil_and_both_schools_are_told(database):
    findings = night_findings(database, (date(2024, 1, 20), date(2024, 1, 27)))
    assert_told_to_both(findings, "X012")
    assert all("2024-01-27" in f.message_fr and "2024-01-20" in f.message_ar for f in findings)


def test_x015_lists_of_the_same_date_are_a_tie_told_to_both(database):
    findings = night_findings(database, (date(2024, 1, 27), date(2024, 1, 27)))
    assert_told_to_both(findings, "X015")


def test_x012_x015_a_pupil_on_one_list_gives_nothing(database):
    ids = register_submissions(
        database,
        [{"school_code": A, "dataset": "students", "file_name": "l.xlsx", "sha256": "0" * 64}],
    )
    enrolments = pl.DataFrame(
        {
            "school_code": [A, A],
            "school_year": ["2023/2024", "2023/2024"],
            "student_code": ["K100000001", "K100000002"],
            "enrolled_from": [datetime(2024, 2, 1, tzinfo=UTC)] * 2,
            "listed_on": [date(2024, 1, 27)] * 2,
            "listed_on_source": ["file name"] * 2,
            "submission_id": ids * 2,
            "status": ["active"] * 2,
            "sheet": ["Sheet1"] * 2,
            "sheet_row": [16, 17],
        }
    )
    assert transfers_of(resolve_enrollments(enrolments)) == []
    assert _record_transfer_findings(database, [], UTC) == 0
    with database.session() as session:
        assert session.scalars(select(Finding)).all() == []

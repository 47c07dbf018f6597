"""On the genuine-layout replicas (tests/fixtures/massar_samples): a NotesCC file in which one
pupil is listed in another class and one is on no list gets a query at each of those rows
(X013 naming the class he is listed in, X014), in Arabic and French; the whole file is
accepted, the first pupil is evaluated in the class of the file, the second is held back and
counted as such; the night ends Completed."""

from __future__ import annotations

import shutil
from pathlib import Path

import openpyxl
import pytest

from tests.flows.test_evaluation_skips import _night, _query, _status_text

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "massar_samples"
SCHOOL = "99999Z"  # the replicas' school code is not in the files: the folder gives it
NOTES = "export_notesCC_1APIC-1_0030.xlsx"
LISTED_ELSEWHERE, NOWHERE = "G130000101", "K199999999"  # 2APIC-1's first pupil; no one's


@pytest.fixture(scope="module")
def marked_off_list(prefect_server, tmp_path_factory):
    from massar.home import init_home

    settings = init_home(tmp_path_factory.mktemp("off-list-home") / "home")
    folder = settings.inbox / SCHOOL
    folder.mkdir(parents=True)
    for path in SAMPLES.glob("*.xls*"):
        shutil.copy(path, folder / path.name)
    workbook = openpyxl.load_workbook(folder / NOTES)
    workbook["NotesCC"]["C19"] = LISTED_ELSEWHERE
    workbook["NotesCC"]["C20"] = NOWHERE
    workbook.save(folder / NOTES)
    result, seen = _night(settings)
    return settings, result, seen


def test_each_pupil_off_the_class_list_is_a_query_at_his_row(marked_off_list):
    settings, _, _ = marked_off_list
    findings = _query(
        settings,
        "select f.sheet, f.sheet_row, f.column_name, f.value, f.rule_id, f.severity, "
        "f.message_fr, f.message_ar from findings f join submissions s "
        "on s.submission_id = f.submission_id "
        f"where s.file_name = '{NOTES}' order by f.sheet_row",
    )
    assert [
        (f["sheet"], f["sheet_row"], f["value"], f["rule_id"], f["severity"]) for f in findings
    ] == [
        ("NotesCC", 19, LISTED_ELSEWHERE, "X013", "query"),
        ("NotesCC", 20, NOWHERE, "X014", "query"),
    ]
    assert {f["column_name"] for f in findings} == {"رقم التلميذ"}  # the pupil code column
    listed_in = findings[0]
    assert "2APIC-1" in listed_in["message_fr"] and "2APIC-1" in listed_in["message_ar"]
    assert "1APIC-1" in listed_in["message_fr"] and "1APIC-1" in listed_in["message_ar"]
    assert "ListEleve" in findings[1]["message_fr"]


def test_the_rest_of_the_file_is_accepted_and_his_marks_kept(marked_off_list):
    settings, result, _ = marked_off_list
    (submission,) = _query(
        settings,
        "select state, rows_read, rows_accepted, rows_quarantined from submissions "
        f"where file_name = '{NOTES}'",
    )
    assert submission["state"] == "accepted" and submission["rows_quarantined"] == 0
    assert submission["rows_accepted"] == submission["rows_read"] > 0
    (warehouse,) = _query(
        settings,
        f"select count(*) as n from marks where school_code = '{SCHOOL}' "
        "and class_code = '1APIC-1'",
    )
    assert warehouse["n"] == submission["rows_accepted"]
    assert result["ingest"]["rejected"] == 0


def test_the_pupil_listed_elsewhere_is_evaluated_in_the_file_class_the_other_held(
    marked_off_list,
):
    settings, result, seen = marked_off_list
    evaluated = _query(
        settings,
        f"select class_code from annual_results where student_code = '{LISTED_ELSEWHERE}' "
        "order by class_code",
    )
    assert [row["class_code"] for row in evaluated] == ["1APIC-1", "2APIC-1"]
    assert _query(
        settings, f"select count(*) as n from annual_results where student_code = '{NOWHERE}'"
    ) == [{"n": 0}]
    (held,) = _query(
        settings,
        f"select count(*) as n, count(distinct student_code) as pupils from marks "
        f"where school_code = '{SCHOOL}' and student_code not in "
        "(select student_code from enrollments where status = 'active')",
    )
    (row,) = seen["table"]
    assert (row["school"], row["school year"], row["marks held"], row["pupils"]) == (
        SCHOOL,
        "2023/2024",
        held["n"],
        held["pupils"],
    )
    assert "not on the school's accepted student list" in row["why"]
    pupils = _query(settings, "select count(*) as n from annual_results")[0]["n"]
    assert seen["description"] == (
        f"Evaluation 2023/2024: {pupils} pupil(s) of 1 school(s) evaluated. "
        "1 part(s) held back, with their reasons."
    )
    assert result["evaluation"]["pupils"] == pupils
    assert "not on the school's accepted student list" in _status_text(settings)

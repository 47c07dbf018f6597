"""Bad input to the coverage: a campaign whose deadline is before its opening, an unknown
dataset, a school with no classes yet, a class at a level without subjects in the curriculum.
Each is one sentence a person can act on (through ``massar coverage`` too), never a
traceback."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from massar.cli import main
from schemas.campaigns import CampaignError, parse_campaigns
from tasks.coverage import compute_coverage, owed_sections
from warehouse.control import ControlDatabase
from warehouse.staging import write_staged
from warehouse.submissions import record_outcomes, register_submission, upsert_schools

GOOD = """
[[campaign]]
id = "s1-2023"
school_year = "2023/2024"
period = "semester_1"
datasets = ["classes", "marks"]
opens = 2024-01-15
deadline = 2024-02-10
"""
NOW = datetime(2024, 2, 1, 9, 0, tzinfo=UTC)


def _coverage(capsys, settings, *options: str) -> tuple[int, str, str]:
    code = main(["coverage", "--home", str(settings.home), *options])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_deadline_before_the_opening_is_one_sentence(massar_home, capsys):
    (massar_home.home / "campaigns.toml").write_text(
        GOOD.replace("deadline = 2024-02-10", "deadline = 2024-01-10"), encoding="utf-8"
    )
    code, out, err = _coverage(capsys, massar_home)
    assert code == 1
    assert err.strip() == (
        f"Error: Campaign 's1-2023' of {massar_home.home / 'campaigns.toml'}: the deadline "
        "2024-01-10 is before the opening 2024-01-15."
    )
    assert "Traceback" not in out + err


def test_an_unknown_dataset_is_one_sentence_naming_the_known_ones(massar_home, capsys):
    (massar_home.home / "campaigns.toml").write_text(
        GOOD.replace('"marks"]', '"notes"]'), encoding="utf-8"
    )
    code, out, err = _coverage(capsys, massar_home)
    assert code == 1
    assert "Campaign 's1-2023'" in err and "'datasets' — the dataset 'notes' is not one" in err
    assert "students, marks, classes" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in out + err


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[[campaign]]\nid = 's1'\n", "'school_year' — this field is required"),
        (GOOD.replace("semester_1", "semester_3"), "'period' — Input should be"),
        (GOOD + GOOD, "Two campaigns of campaigns.toml have the id 's1-2023'"),
        (GOOD.replace("2023/2024", "2023/2025"), "is not a school year written YYYY/YYYY+1"),
        ("campaign = 3", "must declare [[campaign]] tables"),
        ("[[campaign]\n", "is not valid TOML"),
    ],
)
def test_other_mistakes_in_the_campaigns_file_are_sentences(text, says):
    with pytest.raises(CampaignError) as caught:
        parse_campaigns(text)
    assert says in str(caught.value)
    assert str(caught.value).endswith(".")


def test_no_campaigns_file_says_where_to_write_one(massar_home, capsys):
    code, _, err = _coverage(capsys, massar_home)
    assert code == 1
    assert f"write {massar_home.home / 'campaigns.toml'}" in err


def _school_with_classes(settings, school: str, classes: list[tuple[str, str]]) -> None:
    """A school whose accepted class list has these (class, level code) rows."""
    database = ControlDatabase(settings.resolved_database_url)
    try:
        upsert_schools(database, [{"school_code": school, "cycle": "college"}])
        sid = register_submission(
            database,
            school_code=school,
            file_name="classes.xlsx",
            sha256="a" * 64,
            size_bytes=100,
            archive_path="",
        )
        record_outcomes(
            database,
            [
                {
                    "submission_id": sid,
                    "dataset": "classes",
                    "state": "accepted",
                    "school_year": "2023/2024",
                    "scope_key": f"classes|{school}|2023/2024",
                    "rows_read": len(classes),
                    "rows_accepted": len(classes),
                    "rows_quarantined": 0,
                    "findings": [],
                    "detail": "",
                }
            ],
        )
    finally:
        database.dispose()
    write_staged(
        settings.staging,
        school,
        "classes",
        pl.DataFrame(
            {
                "submission_id": [sid] * len(classes),
                "class_code_key": [c for c, _ in classes],
                "level_code_key": [level for _, level in classes],
            }
        ),
    )


def test_a_school_with_no_classes_yet_is_said_and_owes_its_class_list(massar_home, capsys):
    (massar_home.home / "campaigns.toml").write_text(GOOD, encoding="utf-8")
    database = ControlDatabase(massar_home.resolved_database_url)
    try:
        upsert_schools(database, [{"school_code": "12345A", "cycle": "primary"}])
    finally:
        database.dispose()
    (coverage,) = compute_coverage(massar_home, now=NOW)
    assert coverage.notes == [
        "School 12345A has no classes yet: neither its class list nor its student list of "
        "2023/2024 has been accepted, so what it owes per class cannot be derived until one "
        "of them is."
    ]
    (school,) = coverage.schools
    assert [(e.item.dataset, e.item.class_code, e.state) for e in school.items] == [
        ("classes", "", "missing"),
        ("marks", "", "missing"),
    ]
    (section,) = owed_sections(massar_home, ["12345A"], NOW)["12345A"]
    assert not section.classes_known  # the report says it in Arabic and French
    code, out, err = _coverage(capsys, massar_home, "--school", "12345A")
    assert code == 0
    assert "School 12345A has no classes yet" in out and "Traceback" not in out + err


def test_a_class_whose_level_has_no_subject_in_the_curriculum_is_said(massar_home, capsys):
    (massar_home.home / "campaigns.toml").write_text(GOOD, encoding="utf-8")
    # 9ZZZ is no level of levels.csv: the class's marks cannot be derived, 1APIC-1's can.
    _school_with_classes(massar_home, "54321B", [("1APIC-1", "1APIC"), ("9ZZZ-1", "9ZZZ")])
    (coverage,) = compute_coverage(massar_home, now=NOW)
    assert coverage.notes == [
        "Class 9ZZZ-1 of school 54321B is at no level the platform knows "
        "(schemas/reference/levels.csv): its marks cannot be derived until its level is "
        "corrected in the class list."
    ]
    (school,) = coverage.schools
    marks = [e for e in school.items if e.item.dataset == "marks"]
    assert marks and {e.item.class_code for e in marks} == {"1APIC-1"}
    code, out, err = _coverage(capsys, massar_home)
    assert code == 0 and "Class 9ZZZ-1 of school 54321B" in out and "Traceback" not in err


def test_a_known_level_without_subjects_is_said(massar_home, monkeypatch):
    from warehouse import coverage as computation

    (massar_home.home / "campaigns.toml").write_text(GOOD, encoding="utf-8")
    _school_with_classes(massar_home, "54321B", [("1APIC-1", "1APIC")])
    real = computation.Curriculum.read()
    # A curriculum in which 1APIC lost its subjects (as a new level would be before its
    # subjects are declared in curriculum.csv).
    emptied = computation.Curriculum(
        {k: v for k, v in real.subjects.items() if k != "1APIC"}, real.exam_levels, real.cycles
    )
    monkeypatch.setattr(computation.Curriculum, "read", classmethod(lambda cls: emptied))
    (coverage,) = compute_coverage(massar_home, now=NOW)
    assert coverage.notes == [
        "Class 1APIC-1 of school 54321B is at level 1APIC, which has no subject in the "
        "curriculum (schemas/reference/curriculum.csv): no marks are owed for it until the "
        "level's subjects are declared there."
    ]

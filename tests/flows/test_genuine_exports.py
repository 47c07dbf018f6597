"""Conformance on the genuine layouts: the replicas of one collège's Massar exports (made cell
for cell from genuine files, invented pupils) go through a whole night under Prefect, and the
warehouse holds exactly what `expected.json` says a correct reading gives."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import pytest

from flows.nightly import nightly
from massar.home import init_home
from warehouse.control import ControlDatabase
from warehouse.query import run_query

_SHARED = Path(__file__).resolve().parents[3] / "shared" / "samples" / "massar"
_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "massar_samples"
SAMPLES = _SHARED if (_SHARED / "expected.json").is_file() else _FIXTURES
EXPECTED = json.loads((SAMPLES / "expected.json").read_text(encoding="utf-8"))
SCHOOL = EXPECTED["school_code"]
YEAR = EXPECTED["school_year"]
SUBJECT = EXPECTED["subject_code"]
SEMESTER = EXPECTED["semester"]
MARKS_KEY = f"marks_{SUBJECT}_s{SEMESTER}"


def _query(settings, sql: str) -> list[dict]:
    database = ControlDatabase(settings.resolved_database_url)
    try:
        return run_query(sql, warehouse=settings.warehouse, database=database).to_pylist()
    finally:
        database.dispose()


@pytest.fixture(scope="module")
def genuine_night(prefect_server, tmp_path_factory):
    """A fresh home whose inbox holds the replicas as the collège submitted them, and the
    night's state."""
    settings = init_home(tmp_path_factory.mktemp("genuine") / "home")
    folder = settings.inbox / SCHOOL
    folder.mkdir(parents=True)
    for sample in sorted(SAMPLES.glob("*.xls*")):
        shutil.copy2(sample, folder / sample.name)
    state = nightly(settings, return_state=True)
    return settings, state


def test_the_night_completes(genuine_night):
    _, state = genuine_night
    assert state.is_completed(), state.message


def test_every_file_accepted_and_every_row_accounted_for(genuine_night):
    settings, _ = genuine_night
    rows = _query(
        settings,
        "select file_name, dataset, state, rows_read, rows_accepted, rows_quarantined "
        "from submissions order by file_name",
    )
    assert sorted(r["file_name"] for r in rows) == sorted(p.name for p in SAMPLES.glob("*.xls*"))
    pupils = sum(len(c["pupils"]) for c in EXPECTED["classes"].values())
    for row in rows:
        assert row["state"] == "accepted", row
        assert row["rows_read"] == row["rows_accepted"] + row["rows_quarantined"]
        assert row["rows_quarantined"] == 0
    by_dataset = {r["dataset"]: r for r in rows if r["dataset"] == "students"}
    assert by_dataset["students"]["rows_read"] == pupils
    errors = _query(settings, "select rule_id, sheet_row from findings where severity = 'error'")
    assert errors == []


def test_pupils_as_expected(genuine_night):
    settings, _ = genuine_night
    got = {
        r["student_code"]: r
        for r in _query(
            settings,
            "select student_code, family_name, first_name, sex, birth_date, birthplace, "
            f"school_year from students where school_code = '{SCHOOL}'",
        )
    }
    expected = [p for c in EXPECTED["classes"].values() for p in c["pupils"]]
    assert sorted(got) == sorted(p["student_code"] for p in expected)
    for pupil in expected:
        row = got[pupil["student_code"]]
        assert row["school_year"] == YEAR
        for field in ("family_name", "first_name", "sex", "birthplace"):
            assert row[field] == pupil[field], (pupil["student_code"], field)
        assert row["birth_date"] == date.fromisoformat(pupil["birth_date"])


def test_enrolments_in_their_class_and_level(genuine_night):
    settings, _ = genuine_night
    got = {
        r["student_code"]: (r["class_code"], r["level_code"])
        for r in _query(
            settings,
            "select student_code, class_code, level_code from enrollments "
            f"where school_code = '{SCHOOL}' and school_year = '{YEAR}'",
        )
    }
    expected = {
        p["student_code"]: (class_code, c["level_code"])
        for class_code, c in EXPECTED["classes"].items()
        for p in c["pupils"]
    }
    assert got == expected


def test_marks_per_slot_with_the_justified_absence_and_the_empty_marks(genuine_night):
    settings, _ = genuine_night
    rows = _query(
        settings,
        "select class_code, student_code, slot, mark, absence from marks "
        f"where school_code = '{SCHOOL}' and school_year = '{YEAR}' "
        f"and subject_code = '{SUBJECT}' and semester = {SEMESTER}",
    )
    got: dict[tuple[str, str], dict[str, tuple]] = {}
    for r in rows:
        got.setdefault((r["class_code"], r["student_code"]), {})[r["slot"]] = (
            r["mark"],
            r["absence"],
        )
    expected_keys = {
        (class_code, m["student_code"])
        for class_code, c in EXPECTED["classes"].items()
        for m in c[MARKS_KEY]
    }
    assert set(got) == expected_keys
    for class_code, c in EXPECTED["classes"].items():
        for m in c[MARKS_KEY]:
            slots = got[(class_code, m["student_code"])]
            assert slots["test1"] == (m["test1"], m["test1_absence"]), m["student_code"]
            assert slots["activities"][0] == m["activities"], m["student_code"]
            # the remark pair is never a slot; tests not given are empty, not invented
            assert set(slots) <= {"test1", "test2", "test3", "test4", "activities"}
            for slot in set(slots) - {"test1", "activities"}:
                assert slots[slot] == (None, None), (m["student_code"], slot)
    justified = sum(
        m["test1_absence"] == "justified"
        for c in EXPECTED["classes"].values()
        for m in c[MARKS_KEY]
    )
    assert sum(r["absence"] == "justified" for r in rows) == justified > 0


def test_the_subject_is_evaluated(genuine_night):
    settings, _ = genuine_night
    rows = _query(
        settings,
        "select count(distinct student_code) as pupils from subject_results "
        f"where school_code = '{SCHOOL}' and subject_code = '{SUBJECT}' "
        f"and semester = {SEMESTER}",
    )
    marked = {
        m["student_code"]
        for c in EXPECTED["classes"].values()
        for m in c[MARKS_KEY]
        if m["test1"] is not None or m["activities"] is not None
    }
    assert rows == [{"pupils": len(marked)}]


# ------------------------------------------------------------------ damaged copies, one night
# A second collège (its pupils renumbered so that nobody is listed twice) sends the replicas
# damaged in the ways schools damage them; a third sends a file with a header and no pupil.
# Each file is read or rejected with a sentence naming the cell, and none stops the night.

DAMAGED_SCHOOL, EMPTY_SCHOOL = "99998Y", "99997X"


def _renumbered(sheets, sheet: str, column: str, first_row: int):
    """Every pupil code of `column` from `first_row` with another letter (another pupil)."""
    from tests.connectors.test_genuine_layouts import edited

    rows = sheets[sheet]
    index = ord(column) - 65 if len(column) == 1 else 26 + ord(column[1]) - 65
    changes = {
        f"{column}{r}": "Z" + str(rows[r - 1][index])[1:]
        for r in range(first_row, len(rows) + 1)
        if index < len(rows[r - 1]) and rows[r - 1][index]
    }
    return edited(sheets, sheet, changes)


def _damaged_inbox(inbox: Path) -> dict[str, str]:
    """Write the damaged files; returns file name → what must become of it."""
    from tests.connectors.test_genuine_layouts import cells, edited, moved, write

    school = inbox / DAMAGED_SCHOOL
    school.mkdir(parents=True)
    listing = cells(SAMPLES / "ListEleve_20231007.xls")
    for sheet in listing:
        listing = moved(listing, sheet, ["E6", "O6", "Z6", "O8", "Z8", "P11", "Z11"], 1)
        listing = _renumbered(listing, sheet, "X", 16)
    # a BIFF .xls under an .xlsx name, its labels one column away from where Massar puts them
    shutil.copy(write(school / "ListEleve_20231007.xls", listing), school / "liste.xlsx")
    (school / "ListEleve_20231007.xls").unlink()

    def notes(class_code: str, changes: dict[str, object]) -> list:
        sheets = cells(SAMPLES / f"export_notesCC_{class_code}_{SUBJECT}.xlsx")
        sheets = edited(sheets, "NotesCC", {"C5": DAMAGED_SCHOOL, **changes})
        return _renumbered(sheets, "NotesCC", "C", 18)

    write(school / "level_missing.xlsx", notes("1APIC-1", {"C9": ""}))
    write(school / "no_markers.xlsx", notes("2APIC-1", {f"{c}15": "" for c in "GIKMO"}))
    remarks = notes("3APIC-1", {})
    pupils = [r for r in range(18, len(remarks["NotesCC"]) + 1) if remarks["NotesCC"][r - 1][2]]
    write(
        school / "remarks.xlsx", edited(remarks, "NotesCC", {f"O{r}": "عمل جيد 15" for r in pupils})
    )
    empty = inbox / EMPTY_SCHOOL
    empty.mkdir()
    header_only = cells(SAMPLES / "ListEleve_20231007.xls")
    write(empty / "ListEleve_20231008.xls", {n: rows[:15] for n, rows in header_only.items()})
    return {
        "liste.xlsx": "accepted",
        "level_missing.xlsx": "rejected",
        "no_markers.xlsx": "accepted",
        "remarks.xlsx": "accepted",
        "ListEleve_20231008.xls": "rejected",
    }


@pytest.fixture(scope="module")
def damaged_night(prefect_server, tmp_path_factory):
    settings = init_home(tmp_path_factory.mktemp("damaged") / "home")
    folder = settings.inbox / SCHOOL
    folder.mkdir(parents=True)
    for sample in sorted(SAMPLES.glob("*.xls*")):
        shutil.copy2(sample, folder / sample.name)
    outcomes = _damaged_inbox(settings.inbox)
    state = nightly(settings, return_state=True)
    return settings, state, outcomes


def test_damaged_files_never_stop_the_night(damaged_night):
    settings, state, outcomes = damaged_night
    assert state.is_completed(), state.message
    states = {
        r["file_name"]: r["state"]
        for r in _query(settings, "select file_name, state from submissions")
        if r["file_name"] in outcomes
    }
    assert states == outcomes
    # the good collège is evaluated as on a night of its own
    evaluated = _query(
        settings,
        "select count(distinct student_code) as pupils from subject_results "
        f"where school_code = '{SCHOOL}' and subject_code = '{SUBJECT}'",
    )
    assert evaluated == [{"pupils": sum(len(c["pupils"]) for c in EXPECTED["classes"].values())}]


def test_each_damaged_file_gets_a_sentence_naming_the_cell(damaged_night):
    settings, _, _ = damaged_night
    findings = {
        (r["file_name"], r["rule_id"]): r
        for r in _query(
            settings,
            "select file_name, rule_id, severity, column_name, message_fr, message_ar "
            f"from findings where school_code in ('{DAMAGED_SCHOOL}', '{EMPTY_SCHOOL}')",
        )
    }
    level = findings[("level_missing.xlsx", "F009")]
    assert level["severity"] == "error" and "المستوى" in level["message_fr"]
    assert "A1:Z15" in level["message_fr"] and "A1:Z15" in level["message_ar"]
    markers = findings[("no_markers.xlsx", "F011")]
    assert markers["severity"] == "query" and "16" in markers["message_fr"]
    assert findings[("ListEleve_20231008.xls", "F005")]["severity"] == "error"
    # the labels one column away and the .xls named .xlsx: what the original list gets (the
    # replicas' young 3APIC pupils are an X005 age query); the text remarks: nothing
    original = _query(
        settings,
        f"select rule_id, count(*) as n from findings where school_code = '{SCHOOL}' "
        "and file_name = 'ListEleve_20231007.xls' group by rule_id order by rule_id",
    )
    moved = _query(
        settings,
        f"select rule_id, count(*) as n from findings where school_code = '{DAMAGED_SCHOOL}' "
        "and file_name = 'liste.xlsx' group by rule_id order by rule_id",
    )
    assert moved == original
    assert not [k for k in findings if k[0] == "remarks.xlsx"]


def test_a_remark_is_never_read_as_a_mark(damaged_night):
    settings, _, _ = damaged_night
    slots = _query(
        settings,
        "select distinct slot from marks where "
        f"school_code = '{DAMAGED_SCHOOL}' and class_code = '3APIC-1'",
    )
    assert {r["slot"] for r in slots} == {"test1", "test2", "test3", "activities"}

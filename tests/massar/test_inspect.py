"""`massar inspect FILE`: how one file is read, printed for the officer, nothing registered."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import openpyxl

from massar.cli import main
from warehouse.control import ControlDatabase
from warehouse.query import run_query

_SHARED = Path(__file__).resolve().parents[3] / "shared" / "samples" / "massar"
_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "massar_samples"
SAMPLES = _SHARED if (_SHARED / "expected.json").is_file() else _FIXTURES
EXPECTED = json.loads((SAMPLES / "expected.json").read_text(encoding="utf-8"))
SCHOOL = EXPECTED["school_code"]


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _lines_with(out: str, *words: str) -> list[str]:
    return [line for line in out.splitlines() if all(w in line for w in words)]


def test_notes_file_shows_cells_slots_and_staged_rows_and_registers_nothing(capsys, tmp_path):
    home = tmp_path / "home"
    assert run(capsys, "init", "--home", str(home))[0] == 0
    folder = home / "inbox" / SCHOOL
    folder.mkdir(parents=True)
    source = shutil.copy2(SAMPLES / "export_notesCC_1APIC-1_0030.xlsx", folder)
    code, out, err = run(capsys, "inspect", str(source), "--rows", "8")
    assert code == 0, err
    assert f"as a submission of school {SCHOOL}" in out  # from the folder it lies in
    # each metadata value with the cell it came from and its label's cell
    assert _lines_with(out, "school_year", "2023/2024", "D13", "C13")
    assert _lines_with(out, "class_code", "1APIC-1", "I9", "G9")
    assert _lines_with(out, "level_label", "(level 1APIC)", "D9", "C9")
    assert _lines_with(out, "subject_code", "0030", "K5")
    # slots from the header labels; the hidden markers shown, not trusted
    assert _lines_with(out, "test1", "G16:H16", "G", "H", "#1#")
    assert _lines_with(out, "activities", "M16:N16", "M", "N", "#4#")
    assert _lines_with(out, "remark (never read as a mark)", "O")
    assert not _lines_with(out, "#100#")
    first = EXPECTED["classes"]["1APIC-1"]["marks_0030_s1"][0]
    staged = _lines_with(out, first["student_code"], "test1")
    assert staged and str(first["test1"]) in staged[0]
    pupils = len(EXPECTED["classes"]["1APIC-1"]["pupils"])
    assert f"Rows read {pupils * 4}: {pupils * 4} would be staged, 0 quarantined" in out
    assert "No finding." in out
    # nothing registered, archived or reported
    database = ControlDatabase(f"sqlite:///{home / 'massar.db'}")
    try:
        rows = run_query(
            "select count(*) as n from submissions", warehouse=home / "warehouse", database=database
        ).to_pylist()
    finally:
        database.dispose()
    assert rows == [{"n": 0}]
    assert not any(p.is_file() for p in (home / "archive").rglob("*"))
    assert not any(p.is_file() for p in (home / "reports").rglob("*"))


def test_student_list_shows_the_level_one_row_above_its_label(capsys):
    list_file = SAMPLES / "ListEleve_20231007.xls"
    code, out, err = run(capsys, "inspect", str(list_file), "--school", SCHOOL)
    assert code == 0, err
    assert out.count("ListEleve layout") == len(EXPECTED["classes"])
    assert _lines_with(out, "level_label", "(level 1APIC)", "T10", "Z11")
    assert _lines_with(out, "school_year", "2023/2024", "C6", "E6")
    assert "values stand at the lower column index" in out
    pupils = sum(len(c["pupils"]) for c in EXPECTED["classes"].values())
    assert f"Rows read {pupils}: {pupils} would be staged" in out


def test_a_file_the_readers_cannot_place_is_explained(capsys, tmp_path):
    book = openpyxl.load_workbook(SAMPLES / "export_notesCC_3APIC-1_0030.xlsx")
    book["NotesCC"]["C9"] = None  # the level's label gone
    damaged = tmp_path / "notes.xlsx"
    book.save(damaged)
    code, out, err = run(capsys, "inspect", str(damaged), "--school", SCHOOL)
    assert code == 0, err
    assert "would be rejected whole" in out
    assert _lines_with(out, "F009") and "المستوى" in out and "C9" not in _lines_with(out, "F009")[0]


def test_inspect_needs_to_know_the_school(capsys, tmp_path):
    loose = shutil.copy2(SAMPLES / "ListEleve_20231007.xls", tmp_path)
    code, _, err = run(capsys, "inspect", str(loose))
    assert code == 2 and "--school" in err
    code, _, err = run(capsys, "inspect", str(tmp_path / "missing.xlsx"), "--school", SCHOOL)
    assert code == 1 and "does not exist" in err

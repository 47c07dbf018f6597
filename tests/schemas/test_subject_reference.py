"""The subject reference follows Massar's numbering as genuine exports show it: the K5 code and
the O11 name of each genuine NotesCC replica agree with schemas/reference/subjects.csv, only
codes a genuine file showed are marked confirmed, and the evaluation weighs a genuine
informatics mark as informatics (not as English, which 0030 wrongly was)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from python_calamine import CalamineWorkbook

from schemas.evaluation_rules import REFERENCE_DIR, load_rules

_SHARED = Path(__file__).resolve().parents[3] / "shared" / "samples" / "massar"
_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "massar_samples"
SAMPLES = _SHARED if (_SHARED / "expected.json").is_file() else _FIXTURES
NOTES_CC = sorted(SAMPLES.glob("export_notesCC_*.xlsx"))
EXPECTED = json.loads((SAMPLES / "expected.json").read_text(encoding="utf-8"))
# The genuine NotesCC cells (DOMAIN §2.2): K5 the subject token, L11 its label, O11 the name.
K5, L11, O11 = (4, 10), (10, 11), (10, 14)


def _rows(name: str) -> list[dict[str, str]]:
    with (REFERENCE_DIR / name).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


SUBJECTS = {row["subject_code"]: row for row in _rows("subjects.csv")}
CURRICULUM = {(row["level_code"], row["subject_code"]): row for row in _rows("curriculum.csv")}


def _text(value: object) -> str:
    return " ".join(str(value).split())


def _cell(grid: list[list[object]], at: tuple[int, int]) -> str:
    row, column = at
    return _text(grid[row][column]) if row < len(grid) and column < len(grid[row]) else ""


def _subject_cells(path: Path) -> tuple[str, str]:
    """The (K5 token, O11 name) of a NotesCC workbook, the O11 label checked first."""
    grid = CalamineWorkbook.from_path(str(path)).get_sheet_by_name("NotesCC").to_python()
    assert _cell(grid, L11).rstrip(" :") == "المادة", f"{path.name}: L11 is not the subject label"
    return _cell(grid, K5), _cell(grid, O11)


def test_the_replicas_are_there() -> None:
    assert len(NOTES_CC) == 3, f"no NotesCC replica in {SAMPLES}"


def test_the_file_keeps_the_columns_readers_rely_on() -> None:
    with (REFERENCE_DIR / "subjects.csv").open(encoding="utf-8", newline="") as handle:
        header = next(csv.reader(handle))
    assert header[:4] == ["subject_code", "name_ar", "name_fr", "cycle"]
    assert header[4:] == ["confirmed", "confirmed_by"]


@pytest.mark.parametrize("path", NOTES_CC, ids=lambda p: p.name)
def test_k5_and_o11_of_each_genuine_replica_agree_with_the_reference(path: Path) -> None:
    token, name = _subject_cells(path)
    match = re.fullmatch(r"#(\d{4})#", token)
    assert match, f"{path.name}: K5 {token!r} is not a #dddd# subject token"
    code = match.group(1)
    assert path.stem.endswith(f"_{code}"), "the older file name carries the K5 code"
    assert code in SUBJECTS, f"{path.name}: subject {code} is missing from subjects.csv"
    assert _text(SUBJECTS[code]["name_ar"]) == name, (code, SUBJECTS[code]["name_ar"], name)
    assert SUBJECTS[code]["confirmed"] == "1", f"{code} is shown by a genuine file"


def test_0030_is_informatics_and_english_has_another_code() -> None:
    assert (SUBJECTS["0030"]["name_ar"], SUBJECTS["0030"]["name_fr"]) == (
        "المعلوميات",
        "Informatique",
    )
    assert EXPECTED["subject_code"] == "0030"
    assert EXPECTED["subject_name_ar"] == SUBJECTS["0030"]["name_ar"]
    english = [code for code, row in SUBJECTS.items() if row["name_fr"] == "Langue anglaise"]
    assert english == ["0110"]


def test_only_codes_a_genuine_file_showed_are_confirmed() -> None:
    shown = {_subject_cells(path)[0].strip("#") for path in NOTES_CC}
    for code, row in SUBJECTS.items():
        assert row["confirmed"] in ("0", "1"), code
        if row["confirmed"] == "1":
            assert code in shown, f"{code} is marked confirmed but no genuine replica shows it"
            assert row["confirmed_by"].strip(), f"{code}: confirmed without saying by what"
        else:
            assert not row["confirmed_by"].strip(), f"{code}: a source for an unconfirmed code"


def test_codes_and_names_are_unambiguous_within_a_cycle() -> None:
    # The reader looks a K5 code up by code and an O11 name up by name: both must be unique.
    for code in SUBJECTS:
        assert re.fullmatch(r"\d{4}", code), code
    names = [(row["cycle"], _text(row["name_ar"])) for row in SUBJECTS.values()]
    assert len(names) == len(set(names))
    assert {code for _, code in CURRICULUM} <= set(SUBJECTS)


def test_the_slots_marked_in_the_replicas_exist_in_the_curriculum() -> None:
    slot = re.compile(r"test(\d)|activities")
    for class_code, klass in EXPECTED["classes"].items():
        level = class_code.rsplit("-", 1)[0]
        entry = CURRICULUM[(level, EXPECTED["subject_code"])]
        for key, rows in klass.items():
            if not key.startswith("marks_"):
                continue
            marked = {name for row in rows for name, value in row.items() if value is not None}
            for name in marked:
                found = slot.fullmatch(name)
                if not found:
                    continue
                if found.group(1):
                    assert int(found.group(1)) <= int(entry["tests_per_semester"]), (level, name)
                else:
                    assert entry["activities"] == "1", (level, "activities marked in the file")


def test_a_genuine_informatics_mark_is_weighted_as_informatics_not_english() -> None:
    rules = load_rules()
    for level in ("1APIC", "2APIC", "3APIC"):
        informatics, english = rules.subject(level, "0030"), rules.subject(level, "0110")
        # informatics: the collège default 0.25; English keeps its language weight 0.4
        assert informatics.activities_weight == pytest.approx(0.25), level
        assert english.activities_weight == pytest.approx(0.4), level
        assert (informatics.coefficient, english.coefficient) == (1, 1)
    # English kept its exam papers under its new code; informatics has none.
    assert rules.subject("3APIC", "0110").exams == ("regional",)
    assert rules.subject("3APIC", "0030").exams == ()
    assert rules.subject("2BACSPF", "0110").exams == ("national",)
    assert ("2BACSPF", "0030") not in rules.subjects


LEVELS = {row["level_code"]: row for row in _rows("levels.csv")}


def test_the_hidden_level_code_of_each_replica_is_its_level_in_the_reference() -> None:
    # O5 of a genuine NotesCC is Massar's internal level code (2A31101110 for 1APIC): the
    # reference must resolve it to the level of the class the file is for.
    for path in NOTES_CC:
        grid = CalamineWorkbook.from_path(str(path)).get_sheet_by_name("NotesCC").to_python()
        class_code = re.search(r"export_notesCC_(.+)_\d{4}\.xlsx", path.name).group(1)
        level = EXPECTED["classes"][class_code]["level_code"]
        assert LEVELS[level]["internal_code"] == _cell(grid, (4, 14)), path.name

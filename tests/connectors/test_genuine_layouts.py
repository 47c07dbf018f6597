"""The readers on the genuine Massar layouts: the replicas of one collège's exports (made cell
for cell from genuine files, invented pupils) read exactly as expected.json says, in .xls and
.xlsx, under the older and newer NotesCC names; damaged copies built from the replicas' cells
are read right or rejected with a sentence naming the cell."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import openpyxl
import polars as pl
import pytest
import xlwt
from python_calamine import CalamineWorkbook

from connectors.reading.metadata_location import HIGHER, LIST_FIELDS, LOWER, locate_metadata
from connectors.reading.reference import REFERENCE_DIR, reference
from connectors.school_files import FileRejected, findings_frame, read_submission
from schemas.rules import render
from tasks.validate import validate_submission

_SHARED = Path(__file__).resolve().parents[3] / "shared" / "samples" / "massar"
_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "massar_samples"
SAMPLES = _SHARED if (_SHARED / "expected.json").is_file() else _FIXTURES
EXPECTED = json.loads((SAMPLES / "expected.json").read_text(encoding="utf-8"))
SCHOOL = EXPECTED["school_code"]
LIST = SAMPLES / "ListEleve_20231007.xls"
NOTES = {c: SAMPLES / f"export_notesCC_{c}_0030.xlsx" for c in EXPECTED["classes"]}
MARKS_KEY = f"marks_{EXPECTED['subject_code']}_s{EXPECTED['semester']}"

Sheets = dict[str, list[list[object]]]


# ------------------------------------------------------------------------------- workbooks


def cells(path: Path) -> Sheets:
    """Every sheet of a workbook as rows of cells at their Excel positions."""
    book = CalamineWorkbook.from_path(str(path))
    return {
        name: book.get_sheet_by_name(name).to_python(skip_empty_area=False)
        for name in book.sheet_names
    }


def write_xls(path: Path, sheets: Sheets) -> Path:
    book = xlwt.Workbook(encoding="utf-8")
    date = xlwt.easyxf(num_format_str="dd/mm/yyyy")
    for name, rows in sheets.items():
        ws = book.add_sheet(name)
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                if isinstance(value, dt.date):
                    ws.write(r, c, value, date)
                elif value != "" and value is not None:
                    ws.write(r, c, value)
    book.save(str(path))
    return path


def write_xlsx(path: Path, sheets: Sheets) -> Path:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        ws = book.create_sheet(name)
        ws.sheet_view.rightToLeft = name == "NotesCC"  # as the genuine NotesCC
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                if value != "" and value is not None:
                    ws.cell(row=r + 1, column=c + 1, value=value)
    book.save(str(path))
    return path


def write(path: Path, sheets: Sheets) -> Path:
    return write_xls(path, sheets) if path.suffix == ".xls" else write_xlsx(path, sheets)


def edited(sheets: Sheets, sheet: str, changes: dict[str, object]) -> Sheets:
    """A copy of `sheets` with cells of one sheet set ("" empties a cell)."""
    out = {name: [list(row) for row in rows] for name, rows in sheets.items()}
    rows = out[sheet]
    for ref, value in changes.items():
        letters = "".join(ch for ch in ref if ch.isalpha())
        r = int(ref[len(letters) :]) - 1
        c = 0
        for ch in letters:
            c = c * 26 + ord(ch) - 64
        c -= 1
        while len(rows) <= r:
            rows.append([""] * len(rows[0]))
        if len(rows[r]) <= c:
            rows[r].extend([""] * (c + 1 - len(rows[r])))
        rows[r][c] = value
    return out


def moved(sheets: Sheets, sheet: str, labels: list[str], step: int) -> Sheets:
    """Label cells moved `step` columns along their row (the value cells stay)."""
    changes: dict[str, object] = {}
    rows = sheets[sheet]
    for ref in labels:
        letters = "".join(ch for ch in ref if ch.isalpha())
        row = int(ref[len(letters) :])
        c = sum((ord(ch) - 64) * 26**i for i, ch in enumerate(reversed(letters))) - 1
        changes.setdefault(ref, "")
        changes[f"{_letters(c + step)}{row}"] = rows[row - 1][c]
    return edited(sheets, sheet, changes)


def _letters(index: int) -> str:
    out, index = "", index + 1
    while index:
        index, rem = divmod(index - 1, 26)
        out = chr(65 + rem) + out
    return out


# ------------------------------------------------------------------------- expected reading

SEX = {"ذكر": "M", "أنثى": "F"}


def _iso(text: str) -> str:
    day, month, year = text.split("/")
    return f"{year}-{month}-{day}"


def _number(text: str | None) -> float | None:
    return None if text is None else float(text)


def reading(list_result, notes_results) -> dict:
    """The replicas' reading in the shape of expected.json."""
    classes: dict[str, dict] = {}
    for layout in list_result.layouts:
        frame = list_result.frame.filter(pl.col("sheet") == layout.sheet)
        class_code = layout.metadata["class_code"].value
        classes[class_code] = {
            "level_code": layout.metadata["level_label"].known_as,
            "pupils": [
                {
                    "student_code": row["student_code"],
                    "family_name": row["family_name"],
                    "first_name": row["first_name"],
                    "sex": SEX[row["sex"]],
                    "birth_date": _iso(row["birth_date"]),
                    "birthplace": row["birthplace"].strip() if row["birthplace"] else None,
                }
                for row in frame.iter_rows(named=True)
            ],
        }
    years = set(list_result.frame["school_year"].unique())
    schools, subjects, names, semesters = set(), set(), set(), set()
    for result in notes_results:
        frame = result.frame
        (layout,) = result.layouts
        class_code = frame["class_code"][0]
        assert layout.metadata["level_label"].known_as == classes[class_code]["level_code"]
        schools |= set(frame["school_code"].unique())
        subjects |= set(frame["subject_code"].unique())
        names |= set(frame["subject_name"].unique())
        semesters |= set(frame["semester"].unique())
        years |= set(frame["school_year"].unique())
        marks = []
        for (code,), pupil in frame.group_by("student_code", maintain_order=True):
            by_slot = {row["slot"]: row for row in pupil.iter_rows(named=True)}
            # the empty test columns are read as empty, never as marks
            for slot in ("test2", "test3"):
                assert by_slot[slot]["mark"] is None and by_slot[slot]["absence"] is None
            assert by_slot["activities"]["absence"] is None
            marks.append(
                {
                    "student_code": code,
                    "test1": _number(by_slot["test1"]["mark"]),
                    "test1_absence": (
                        "justified" if by_slot["test1"]["absence"] == "مبرر" else None
                    ),
                    "activities": _number(by_slot["activities"]["mark"]),
                }
            )
        classes[class_code][MARKS_KEY] = marks
    (school,), (year,), (subject,), (name,), (semester,) = (
        schools,
        years,
        subjects,
        names,
        semesters,
    )
    return {
        "school_code": school,
        "school_year": year,
        "subject_code": subject,
        "subject_name_ar": name,
        "semester": int(semester),
        "classes": classes,
    }


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> dict[str, Path]:
    """The replicas in the other format: the list as .xlsx, each NotesCC as .xls."""
    folder = tmp_path_factory.mktemp("converted")
    out = {"list": write_xlsx(folder / "ListEleve_20231007.xlsx", cells(LIST))}
    for class_code, path in NOTES.items():
        out[class_code] = write_xls(folder / f"export_notesCC_{class_code}_0030.xls", cells(path))
    return out


def _subject_agrees() -> bool:
    """Whether schemas/reference/subjects.csv names the replicas' subject code as O11 does."""
    return reference().subject_name.get(EXPECTED["subject_code"]) == EXPECTED["subject_name_ar"]


# ---------------------------------------------------------------------------- the replicas


@pytest.mark.parametrize("fmt", ["replica", "converted"])
def test_replicas_read_exactly_as_expected(fmt, converted):
    if fmt == "replica":
        paths = [LIST, *NOTES.values()]
    else:
        paths = [converted["list"], *(converted[c] for c in NOTES)]
    list_result = read_submission(paths[0], school_code=SCHOOL)
    notes_results = [read_submission(p, school_code=SCHOOL) for p in paths[1:]]
    assert list_result.dataset == "students"
    assert {r.dataset for r in notes_results} == {"marks"}
    assert reading(list_result, notes_results) == EXPECTED
    pupils = sum(len(c["pupils"]) for c in EXPECTED["classes"].values())
    assert list_result.rows_read == pupils == 37
    # NotesCC: one row per pupil and slot, three tests (two never used) and the activities
    for result, class_code in zip(notes_results, NOTES, strict=True):
        assert result.rows_read == 4 * len(EXPECTED["classes"][class_code][MARKS_KEY])
        assert result.frame["slot"].to_list()[:4] == ["test1", "test2", "test3", "activities"]
        assert result.frame["remark"].null_count() == result.frame.height
        assert not [f for f in result.findings if f.rule_id == "F011"]
        assert bool([f for f in result.findings if f.rule_id == "F010"]) != _subject_agrees()


def test_xls_and_xlsx_of_each_layout_give_the_same_frames(converted):
    assert read_submission(LIST, school_code=SCHOOL).frame.equals(
        read_submission(converted["list"], school_code=SCHOOL).frame
    )
    for class_code, path in NOTES.items():
        assert read_submission(path, school_code=SCHOOL).frame.equals(
            read_submission(converted[class_code], school_code=SCHOOL).frame
        )


def test_older_and_newer_notes_file_names_read_the_same(tmp_path):
    """The dataset comes from the content: Massar's newer name, and even a misleading one."""
    frames = []
    for name in (
        "export_notesCC_1APIC-1_0030.xlsx",
        "Export_99999Z_1APIC-1_INFORMATIQUE_08062026091857.xlsx",
        "ListEleve_20231007.xlsx",
    ):
        path = tmp_path / name
        shutil.copy(NOTES["1APIC-1"], path)
        result = read_submission(path, school_code=SCHOOL)
        assert result.dataset == "marks", name
        frames.append(result.frame)
    assert frames[0].equals(frames[1]) and frames[0].equals(frames[2])


def test_replicas_validate_without_quarantine():
    """The symptoms of the issue are gone: no R008 on the list's year, no R007 duplicates."""
    for path in [LIST, *NOTES.values()]:
        result = read_submission(path, school_code=SCHOOL)
        validated = validate_submission(result.dataset, result.frame, school_code=SCHOOL)
        assert validated.rows_quarantined == 0, (path.name, validated.findings)
        assert validated.rows_accepted == result.rows_read
        assert validated.findings.filter(pl.col("severity") == "error").height == 0


def test_where_each_value_came_from():
    """What `massar inspect` prints: the cells of the genuine layouts (DOMAIN.md §2)."""
    result = read_submission(LIST, school_code=SCHOOL)
    first = result.layouts[0]
    assert (first.sheet, first.layout, first.value_side) == ("Sheet1", "ListEleve", "lower")
    assert first.header_rows == (15,) and first.first_data_row == 16
    found = {name: (loc.cell, loc.label_cell) for name, loc in first.metadata.items()}
    assert found == {
        "school_year": ("C6", "E6"),
        "commune": ("H6", "O6"),
        "academy": ("T6", "Z6"),
        "school_name": ("H8", "O8"),
        "directorate": ("U8", "Z8"),
        "class_code": ("I11", "P11"),
        "level_label": ("T10", "Z11"),  # one row above its label
    }
    assert first.columns == {
        "row_number": "AA",
        "student_code": "X",
        "family_name": "Q",
        "first_name": "M",
        "sex": "L",
        "birth_date": "F",
        "birthplace": "C",
    }
    notes = read_submission(NOTES["1APIC-1"], school_code=SCHOOL).layouts[0]
    assert (notes.layout, notes.value_side, notes.header_rows) == ("NotesCC", "higher", (16, 17))
    assert notes.first_data_row == 18 and notes.token_row == 15 and notes.remark_column == "O"
    assert {n: loc.cell for n, loc in notes.metadata.items()} == {
        "academy": "D7",
        "directorate": "I7",
        "school_name": "O7",
        "level_label": "D9",
        "class_code": "I9",
        "teacher": "O9",
        "session_label": "D11",
        "subject_name": "O11",
        "school_year": "D13",
    }
    assert {n: loc.cell for n, loc in notes.technical.items()} == {
        "school_code": "C5",
        "subject_code": "K5",
        "session": "G5",
        "level_code": "O5",
    }
    assert [
        (s.slot, s.label_cells, s.mark_column, s.absence_column, s.token) for s in notes.slots
    ] == [
        ("test1", "G16:H16", "G", "H", "#1#"),
        ("test2", "I16:J16", "I", "J", "#2#"),
        ("test3", "K16:L16", "K", "L", "#3#"),
        ("activities", "M16:N16", "M", "N", "#4#"),  # the tokens are not slot names
    ]


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("suffix", [".xls", ".xlsx"])
@pytest.mark.parametrize("step", [1, -1])
def test_list_labels_moved_one_column_read_the_same(tmp_path, suffix, step):
    sheets = cells(LIST)
    labels = ["E6", "O6", "Z6", "O8", "Z8", "P11", "Z11"]
    for name in sheets:
        sheets = moved(sheets, name, labels, step)
    result = read_submission(write(tmp_path / f"ListEleve{suffix}", sheets), school_code=SCHOOL)
    original = read_submission(LIST, school_code=SCHOOL)
    assert result.frame.equals(original.frame)
    assert result.layouts[0].metadata["level_label"].cell == "T10"


@pytest.mark.parametrize("suffix", [".xls", ".xlsx"])
def test_notes_labels_moved_one_column_read_the_same(tmp_path, suffix):
    # Away from their values (one column to the right, the values stay on the left on screen).
    labels = ["C7", "G7", "L7", "C9", "G9", "L9", "C11", "G11", "L11", "C13"]
    sheets = moved(cells(NOTES["2APIC-1"]), "NotesCC", labels, -1)
    result = read_submission(write(tmp_path / f"n{suffix}", sheets), school_code=SCHOOL)
    assert result.frame.equals(read_submission(NOTES["2APIC-1"], school_code=SCHOOL).frame)


def _rejected(path: Path) -> FileRejected:
    with pytest.raises(FileRejected) as caught:
        read_submission(path, school_code=SCHOOL)
    return caught.value


def _sentence(error: FileRejected, file_name: str) -> str:
    """The French sentence the school reads (as tasks/ingest.py renders a rejection)."""
    where = f" ({error.detail})" if error.rule_id == "F008" and error.detail else ""
    params = {"file": file_name, "detail": error.detail, "column": error.column or ""}
    return render(error.rule_id, {**params, "where": where})[1]


@pytest.mark.parametrize("suffix", [".xls", ".xlsx"])
def test_level_label_missing_is_f009_naming_the_label_and_the_cells(tmp_path, suffix):
    sheets = edited(cells(LIST), "Sheet2", {"Z11": ""})
    error = _rejected(write(tmp_path / f"ListEleve{suffix}", sheets))
    assert (error.rule_id, error.column) == ("F009", "المستوى")
    sentence = _sentence(error, "ListEleve.xls")
    assert "« المستوى »" in sentence and "Sheet2" in sentence and "A1:AA14" in sentence
    notes = edited(cells(NOTES["3APIC-1"]), "NotesCC", {"C9": ""})
    error = _rejected(write(tmp_path / f"notes{suffix}", notes))
    assert (error.rule_id, error.column, error.detail) == (
        "F009",
        "المستوى",
        "sheet NotesCC, cells A1:Z15 above the header row 16",
    )


def test_header_row_missing_is_f009_naming_the_header_label(tmp_path):
    sheets = cells(LIST)
    sheets = edited(sheets, "Sheet3", {f"{c}15": "" for c in ("C", "F", "L", "M", "Q", "X", "AA")})
    error = _rejected(write(tmp_path / "ListEleve.xls", sheets))
    assert (error.rule_id, error.column) == ("F009", "الرمز")
    assert "Sheet3" in error.detail and "rows 1-" in error.detail
    notes = edited(cells(NOTES["1APIC-1"]), "NotesCC", {f"{_letters(c)}16": "" for c in range(26)})
    error = _rejected(write(tmp_path / "notes.xlsx", notes))
    assert (error.rule_id, error.column) == ("F009", "رقم التلميذ")


def test_token_row_removed_reads_right_and_is_reported(tmp_path):
    notes = cells(NOTES["1APIC-1"])
    sheets = edited(notes, "NotesCC", {f"{c}15": "" for c in "GIKMO"})
    result = read_submission(write(tmp_path / "n.xlsx", sheets), school_code=SCHOOL)
    assert result.frame.equals(read_submission(NOTES["1APIC-1"], school_code=SCHOOL).frame)
    (finding,) = [f for f in result.findings if f.rule_id == "F011"]
    assert finding.sheet_row is None  # file-level
    assert finding.params["detail"] == "sheet NotesCC, no marker row above the header row 16"
    frame = findings_frame(result.findings)
    assert frame.filter(pl.col("rule_id") == "F011")["severity"].to_list() == ["query"]
    # One marker too many: reported, the marks still read from the labels.
    sheets = edited(notes, "NotesCC", {"Q15": "#5#"})
    result = read_submission(write(tmp_path / "m.xlsx", sheets), school_code=SCHOOL)
    (finding,) = [f for f in result.findings if f.rule_id == "F011"]
    assert (
        "6 markers" in finding.params["detail"] and "5 labelled pairs" in finding.params["detail"]
    )
    assert result.frame["slot"].unique(maintain_order=True).to_list() == [
        "test1",
        "test2",
        "test3",
        "activities",
    ]


def test_remark_column_filled_with_text_is_never_a_mark(tmp_path):
    notes = cells(NOTES["2APIC-1"])
    rows = notes["NotesCC"]
    pupils = [r for r in range(18, len(rows) + 1) if rows[r - 1][2]]
    sheets = edited(notes, "NotesCC", {f"O{r}": "عمل جيد 15" for r in pupils})
    sheets = edited(sheets, "NotesCC", {f"P{pupils[0]}": "مبرر"})
    result = read_submission(write(tmp_path / "n.xlsx", sheets), school_code=SCHOOL)
    original = read_submission(NOTES["2APIC-1"], school_code=SCHOOL).frame
    assert result.frame.drop("remark").equals(original.drop("remark"))
    assert set(result.frame["remark"].to_list()) == {"عمل جيد 15"}
    assert "remark" not in set(result.frame["slot"].to_list())


@pytest.mark.parametrize("which", ["list", "notes"])
def test_header_without_pupils_is_f005(tmp_path, which):
    if which == "list":
        sheets = {name: rows[:15] for name, rows in cells(LIST).items()}
        path = write(tmp_path / "ListEleve.xls", sheets)
    else:
        sheets = cells(NOTES["1APIC-1"])
        sheets["NotesCC"] = sheets["NotesCC"][:17]
        path = write(tmp_path / "notes.xlsx", sheets)
    assert _rejected(path).rule_id == "F005"


def test_xls_renamed_xlsx_is_read_by_its_content(tmp_path, converted):
    path = tmp_path / "ListEleve_20231007.xlsx"
    shutil.copy(LIST, path)
    result = read_submission(path, school_code=SCHOOL)
    assert result.source_format == "xls"
    assert result.frame.equals(read_submission(LIST, school_code=SCHOOL).frame)
    notes = tmp_path / "export_notesCC_3APIC-1_0030.xlsx"
    shutil.copy(converted["3APIC-1"], notes)
    assert read_submission(notes, school_code=SCHOOL).frame.equals(
        read_submission(NOTES["3APIC-1"], school_code=SCHOOL).frame
    )


def test_malformed_year_is_taken_from_its_cell_for_validation_to_report(tmp_path):
    """Without a value of the expected shape the nearest cell on the value side is read, so
    that validation names what the school wrote (R008) instead of an absent value."""
    sheets = edited(cells(LIST), "Sheet1", {"C6": "2023-2024"})
    result = read_submission(write(tmp_path / "ListEleve.xls", sheets), school_code=SCHOOL)
    year = result.layouts[0].metadata["school_year"]
    assert (year.value, year.cell, year.expected_shape) == ("2023-2024", "C6", False)
    assert set(result.frame.filter(pl.col("sheet") == "Sheet1")["school_year"]) == {"2023-2024"}
    assert result.layouts[0].metadata["commune"].value == "أربعاء الساحل"


def test_subject_code_and_name_disagreeing_is_a_query(tmp_path):
    """K5 against O11, through the reference's content (not through names in the code)."""
    sheets = edited(cells(NOTES["1APIC-1"]), "NotesCC", {"O11": "الرياضيات"})
    result = read_submission(write(tmp_path / "n.xlsx", sheets), school_code=SCHOOL)
    ref = reference()
    (finding,) = [f for f in result.findings if f.rule_id == "F010"]
    assert (finding.column_name, finding.value, finding.sheet_row) == ("K5", "0030", None)
    assert finding.params["name_cell"] == "O11" and finding.params["name"] == "الرياضيات"
    codes = sorted(c for c, n in ref.subject_name.items() if n == "الرياضيات")
    assert finding.params["detail"] == (
        f"0030 = {ref.subject_name['0030']} ; الرياضيات = {', '.join(codes)}"
    )
    french = render("F010", {"file": "n.xlsx", **finding.params})[1]
    assert "0030 (cellule K5)" in french and "« الرياضيات » (cellule O11)" in french
    assert len(result.frame) == read_submission(NOTES["1APIC-1"], school_code=SCHOOL).rows_read
    # A reference that numbers the subjects otherwise (0030 English, informatics 0110).
    swapped = _reference(tmp_path / "swapped", "0030,اللغة الإنجليزية\n0110,المعلوميات\n")
    result = read_submission(NOTES["1APIC-1"], school_code=SCHOOL, reference_dir=swapped)
    (finding,) = result.findings
    assert finding.params["detail"] == "0030 = اللغة الإنجليزية ; المعلوميات = 0110"
    # A code the reference does not know, for a name it does not know either: nothing to say.
    unknown = _reference(tmp_path / "unknown", "0060,الرياضيات\n")
    assert (
        read_submission(NOTES["1APIC-1"], school_code=SCHOOL, reference_dir=unknown).findings == []
    )


def _reference(folder: Path, subjects: str) -> Path:
    folder.mkdir()
    shutil.copy(REFERENCE_DIR / "levels.csv", folder / "levels.csv")
    (folder / "subjects.csv").write_text(f"subject_code,name_ar\n{subjects}", encoding="utf-8")
    return folder


def test_fewer_test_columns_give_fewer_slots(tmp_path):
    """A subject with two tests (as in primary): the replica without its K:L pair and marker."""
    notes = cells(NOTES["1APIC-1"])
    notes["NotesCC"] = [row[:10] + row[12:] for row in notes["NotesCC"]]
    result = read_submission(write(tmp_path / "n.xlsx", notes), school_code=SCHOOL)
    pupils = len(EXPECTED["classes"]["1APIC-1"][MARKS_KEY])
    assert result.rows_read == 3 * pupils
    assert result.frame["slot"].to_list()[:3] == ["test1", "test2", "activities"]
    assert [s.mark_column for s in result.layouts[0].slots] == ["G", "I", "K"]
    assert result.layouts[0].remark_column == "M"
    assert not [f for f in result.findings if f.rule_id == "F011"]  # #1# #2# #4# #100#
    original = read_submission(NOTES["1APIC-1"], school_code=SCHOOL).frame
    kept = original.filter(pl.col("slot") != "test3")
    assert result.frame.select("student_code", "slot", "mark", "absence").equals(
        kept.select("student_code", "slot", "mark", "absence")
    )


def test_value_side_from_the_header_when_the_metadata_does_not_tell():
    """A year on both sides of its label: the header's reading order decides."""
    rows: list[list[object]] = [["2022/2023", "السنة الدراسية", "2023/2024"], ["", "", ""]]
    for side, expected in ((LOWER, "2022/2023"), (HIGHER, "2023/2024")):
        found = locate_metadata(rows, 1, LIST_FIELDS, side, "header", reference())
        assert found.side == side
        assert found.values["school_year"].value == expected

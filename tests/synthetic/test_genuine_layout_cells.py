"""The generator writes Massar's genuine layouts: the cells, merges, hidden rows and columns,
right-to-left flags, protection and Data sheet of the replicas of genuine exports
(shared/samples/massar, copied to tests/fixtures/massar_samples).

The cells a replica holds are read from the replica itself; only the cells whose *value*
changes from one class or file to the next are named here (from DOMAIN.md §2)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import openpyxl
import pytest
import xlrd
from python_calamine import CalamineWorkbook

from massar.synthetic import generate_province
from massar.synthetic.massar_layouts import (
    ListSheet,
    ListWorkbook,
    NotesFile,
    write_list,
    write_notes,
)
from massar.synthetic.reference import levels
from schemas.datasets import CLASS_CODE, SCHOOL_CODE, SCHOOL_YEAR, STUDENT_CODE

_SHARED = Path(__file__).resolve().parents[3] / "shared" / "samples" / "massar"
_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "massar_samples"
SAMPLES = _SHARED if (_SHARED / "expected.json").is_file() else _FIXTURES
LIST_REPLICA = SAMPLES / "ListEleve_20231007.xls"
NOTES_REPLICAS = sorted(SAMPLES.glob("export_notesCC_*.xlsx"))

# Cells whose value differs between classes/files (DOMAIN.md §2); every other cell above the
# pupils is a label, a title, a token or a constant and must be written as in the replica.
LIST_VALUES = {"C6", "H6", "T6", "H8", "U8", "I11", "T10"}
LIST_FIRST_ROW = 16
NOTES_VALUES = {"C5", "E5", "G5", "O5", "K5", "D7", "I7", "O7", "D9", "I9", "O9", "D11", "O11"}
NOTES_VALUES |= {"D13"}
NOTES_FIRST_ROW = 18


def col_letter(index: int) -> str:
    out = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        out = chr(65 + rem) + out
    return out


def row_of(ref: str) -> int:
    return int(re.sub(r"^[A-Z]+", "", ref))


def letters_of(ref: str) -> str:
    return re.sub(r"\d+$", "", ref)


@dataclass
class Sheet:
    """What a reader and a teacher see of one sheet."""

    name: str
    cells: dict[str, object]  # "AA15" -> value, non-empty cells only
    merges: set[str]
    hidden_rows: set[int]
    hidden_cols: set[str]
    rtl: bool
    protection: dict[str, str] = field(default_factory=dict)
    validations: list[tuple[str, str | None, str, str | None, str | None]] = field(
        default_factory=list
    )

    def head(self, first_row: int) -> dict[str, object]:
        return {a: v for a, v in self.cells.items() if row_of(a) < first_row}

    def body(self, first_row: int) -> dict[str, object]:
        return {a: v for a, v in self.cells.items() if row_of(a) >= first_row}


def xls_sheets(path: Path) -> list[Sheet]:
    book = xlrd.open_workbook(str(path), formatting_info=True)
    out = []
    for sh in book.sheets():
        cells: dict[str, object] = {}
        for r in range(sh.nrows):
            for c in range(sh.ncols):
                cell = sh.cell(r, c)
                if cell.ctype in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK):
                    continue
                value = cell.value
                if cell.ctype == xlrd.XL_CELL_DATE:
                    value = xlrd.xldate.xldate_as_datetime(value, book.datemode).date()
                cells[f"{col_letter(c)}{r + 1}"] = value
        merges = {
            f"{col_letter(c1)}{r1 + 1}:{col_letter(c2 - 1)}{r2}"
            for r1, r2, c1, c2 in sh.merged_cells
        }
        out.append(
            Sheet(
                sh.name,
                cells,
                merges,
                {r + 1 for r, info in sh.rowinfo_map.items() if info.hidden},
                {col_letter(c) for c, info in sh.colinfo_map.items() if info.hidden},
                bool(sh.columns_from_right_to_left),
            )
        )
    return out


def xlsx_sheets(path: Path) -> list[Sheet]:
    book = openpyxl.load_workbook(path)
    out = []
    for ws in book.worksheets:
        cells = {}
        for row in ws.iter_rows():
            for cell in row:
                value = cell.value
                if value is None or value == "":
                    continue
                cells[cell.coordinate] = value.date() if isinstance(value, datetime) else value
        protection = {k: v for k, v in dict(ws.protection).items() if k not in ("password",)}
        out.append(
            Sheet(
                ws.title,
                cells,
                {str(r) for r in ws.merged_cells.ranges},
                {r for r, d in ws.row_dimensions.items() if d.hidden},
                {c for c, d in ws.column_dimensions.items() if d.hidden},
                bool(ws.sheet_view.rightToLeft),
                protection if ws.protection.sheet else {},
                [
                    (dv.type, dv.operator, str(dv.sqref), dv.formula1, dv.formula2)
                    for dv in ws.data_validations.dataValidation
                ],
            )
        )
    return out


def all_sheets(path: Path) -> list[Sheet]:
    return xls_sheets(path) if path.suffix == ".xls" else xlsx_sheets(path)


def calamine_grid(path: Path, sheet: str) -> list[list]:
    """The grid every reader of the platform gets (python-calamine), from A1."""
    return (
        CalamineWorkbook.from_path(str(path))
        .get_sheet_by_name(sheet)
        .to_python(skip_empty_area=False)
    )


# ----------------------------------------------------------------------------- generated files


@pytest.fixture(scope="module")
def genuine_province(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("genuine-layout")
    generate_province(out, schools=6, seed=3)
    return out


def school_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and re.match(SCHOOL_CODE, p.name))


def level_of(class_code: str):
    return levels()[class_code.rsplit("-", 1)[0]]


@pytest.fixture(scope="module")
def list_replica() -> list[Sheet]:
    return xls_sheets(LIST_REPLICA)


@pytest.fixture(scope="module")
def notes_replica() -> list[Sheet]:
    return xlsx_sheets(NOTES_REPLICAS[0])


def test_the_replicas_are_there() -> None:
    assert LIST_REPLICA.is_file(), SAMPLES
    assert len(NOTES_REPLICAS) == 3


def check_list_sheet(sheet: Sheet, replica: Sheet) -> None:
    generated_head, replica_head = sheet.head(LIST_FIRST_ROW), replica.head(LIST_FIRST_ROW)
    assert set(generated_head) == set(replica_head), sheet.name
    labels = {a: v for a, v in replica_head.items() if a not in LIST_VALUES}
    assert {a: generated_head[a] for a in labels} == labels, sheet.name
    assert sheet.merges == replica.merges
    assert sheet.hidden_rows == replica.hidden_rows and sheet.hidden_cols == replica.hidden_cols
    assert sheet.rtl is replica.rtl is False
    # the values: the level one row above its label, the class on the class line
    assert re.fullmatch(SCHOOL_YEAR, generated_head["C6"])
    class_code = generated_head["I11"]
    assert re.fullmatch(CLASS_CODE, class_code)
    assert generated_head["T10"] == level_of(class_code).label_ar
    assert generated_head["U8"] == replica_head["U8"] == "إقليم: تيزنيت"
    # pupils from row 16 in the replica's columns, a real date in F, the number in AA
    body = sheet.body(LIST_FIRST_ROW)
    assert {letters_of(a) for a in body} == {letters_of(a) for a in replica.body(LIST_FIRST_ROW)}
    rows = sorted({row_of(a) for a in body})
    assert rows == list(range(LIST_FIRST_ROW, LIST_FIRST_ROW + len(rows)))
    for r in rows:
        assert body[f"AA{r}"] == r - LIST_FIRST_ROW + 1
        assert re.fullmatch(STUDENT_CODE, body[f"X{r}"])
        assert isinstance(body[f"F{r}"], date)
        assert body[f"L{r}"] in ("ذكر", "أنثى")


def test_generated_list_eleve_has_the_replica_cells(
    genuine_province: Path, list_replica: list[Sheet]
) -> None:
    formats = set()
    for folder in school_folders(genuine_province):
        (path,) = folder.glob("ListEleve_*")
        formats.add(path.suffix)
        sheets = all_sheets(path)
        assert [s.name for s in sheets] == [f"Sheet{i}" for i in range(1, len(sheets) + 1)]
        for sheet in sheets:
            check_list_sheet(sheet, list_replica[0])
    assert formats == {".xls", ".xlsx"}  # Massar's BIFF, and a list re-saved as .xlsx


def test_generated_list_eleve_birthplaces_as_genuine_lists_hold_them(
    genuine_province: Path,
) -> None:
    places = [
        v
        for folder in school_folders(genuine_province)
        for path in folder.glob("ListEleve_*.xls")
        for sheet in xls_sheets(path)
        for a, v in sheet.body(LIST_FIRST_ROW).items()
        if letters_of(a) == "C"
    ]
    assert any(p != p.strip() for p in places)  # stray spaces, as in the replica
    assert any(p == p.strip() for p in places)


def notes_files(root: Path) -> list[tuple[str, Path]]:
    """(school code, path) of every NotesCC workbook of the province."""
    return sorted(
        (folder.name, p)
        for folder in school_folders(root)
        for p in folder.rglob("NotesCC/**/*.xlsx")
    )


def check_notes(path: Path, school_code: str, replica: list[Sheet]) -> tuple[Sheet, int]:
    """Compare one generated NotesCC with the replica; returns its NotesCC sheet and pupils."""
    notes, data = xlsx_sheets(path)
    rep_notes, rep_data = replica
    assert (notes.name, data.name) == ("NotesCC", "Data")
    assert (data.cells, data.merges, data.rtl) == (rep_data.cells, rep_data.merges, rep_data.rtl)
    assert calamine_grid(path, "Data") == [[""], ["مبرر"]]
    head, rep_head = notes.head(NOTES_FIRST_ROW), rep_notes.head(NOTES_FIRST_ROW)
    assert set(head) == set(rep_head), path.name
    labels = {a: v for a, v in rep_head.items() if a not in NOTES_VALUES}
    assert {a: head[a] for a in labels} == labels, path.name
    assert notes.rtl and rep_notes.rtl and not data.rtl
    assert notes.protection == rep_notes.protection and notes.protection["sheet"] == "1"
    assert notes.hidden_rows == rep_notes.hidden_rows == {1, 2, 5, 8, 15}
    assert notes.hidden_cols == rep_notes.hidden_cols == {"B", "H", "J", "L", "N", "P"}
    body = notes.body(NOTES_FIRST_ROW)
    rows = sorted({row_of(a) for a in body})
    assert rows == list(range(NOTES_FIRST_ROW, NOTES_FIRST_ROW + len(rows)))
    head_merges = {m for m in rep_notes.merges if row_of(m.split(":")[0]) < NOTES_FIRST_ROW}
    assert notes.merges == head_merges | {f"D{r}:E{r}" for r in rows}
    rep_rows = sorted({row_of(a) for a in rep_notes.body(NOTES_FIRST_ROW)})
    assert rep_notes.merges == head_merges | {f"D{r}:E{r}" for r in rep_rows}

    # the replica's validations over this file's pupils, marks up to the level's scale
    scale = str(level_of(head["I9"]).mark_scale)
    expected = [
        (kind, op, re.sub(r"(\d+):([A-Z]+)\d+", rf"\1:\g<2>{rows[-1]}", sqref), f1, f2)
        for kind, op, sqref, f1, f2 in rep_notes.validations
    ]
    expected = [(*v[:4], scale) if v[0] == "decimal" else v for v in expected]
    assert notes.validations == expected
    # the values
    assert head["C5"] == school_code
    assert re.fullmatch(r"[0-9a-f-]{36}", head["E5"]) and head["G5"] in (1, 2)
    assert re.fullmatch(r"#\d{4}#", head["K5"])
    class_code = head["I9"]
    assert re.fullmatch(CLASS_CODE, class_code) and head["D9"] == level_of(class_code).label_ar
    assert head["D11"] == ("الدورة الأولى", "الدورة الثانية")[head["G5"] - 1]
    assert re.fullmatch(SCHOOL_YEAR, head["D13"]) and head["I7"] == "إقليم: تيزنيت"
    # pupils: B id, C code, D name (merged to E), F text date; marks and absences in the pairs
    pair_columns = set("GHIJKLMN")
    for r in rows:
        assert isinstance(body[f"B{r}"], int)
        assert re.fullmatch(STUDENT_CODE, body[f"C{r}"]) and body[f"D{r}"]
        assert re.fullmatch(r"\d{2}-\d{2}-\d{4}", body[f"F{r}"])
    for a, v in body.items():
        letters = letters_of(a)
        assert letters in {"B", "C", "D", "F", "O"} | pair_columns, a
        if letters in "GIKM":
            assert isinstance(v, int | float) and 0 <= v <= level_of(class_code).mark_scale
        elif letters in "HJLN":
            assert v == "مبرر"
    return notes, len(rows)


def test_generated_notes_cc_have_the_replica_cells(
    genuine_province: Path, notes_replica: list[Sheet]
) -> None:
    files = notes_files(genuine_province)
    cycles = set()
    for school, path in files[:: max(1, len(files) // 40)]:
        notes, _ = check_notes(path, school, notes_replica)
        cycles.add(level_of(notes.cells["I9"]).cycle)
    assert cycles == {"primary", "college", "lycee"}


def test_every_replica_token_and_label_is_in_place(notes_replica: list[Sheet]) -> None:
    """The facts of DOMAIN.md §2.2 the generator is compared against, read from the replica."""
    cells = notes_replica[0].cells
    assert [cells[f"{c}15"] for c in "GIKMO"] == ["#1#", "#2#", "#3#", "#4#", "#100#"]
    assert [cells[f"{c}16"] for c in "GIKMO"] == [
        "الفرض الأول",
        "الفرض الثاني",
        "الفرض الثالث",
        "الأنشطة المندمجة",
        "ملاحظات الأستاذ",
    ]
    assert [cells[f"{c}17"] for c in "GHOP"] == ["النقطة", "التغيب", "-", "التغيب"]


def test_primary_notes_cc_use_the_same_sheet(genuine_province: Path) -> None:
    """Primary: the collège's sheet (three test pairs and the activities pair), marks only in
    the subject's tests (two, /10), no activities, the marks' validation up to 10."""
    seen = 0
    for _, path in notes_files(genuine_province):
        notes, _ = xlsx_sheets(path)
        level = level_of(notes.cells["I9"])
        if level.cycle != "primary":
            continue
        seen += 1
        body = notes.body(NOTES_FIRST_ROW)
        assert not any(letters_of(a) in "KLMN" for a in body), path.name
        assert [v[4] for v in notes.validations if v[0] == "decimal"] == ["10"]
        if seen >= 20:
            break
    assert seen


# ----------------------------------------------------------------------------- cell for cell


def replica_notes_file(path: Path) -> NotesFile:
    """The replica's own content in the generator's model (values read at DOMAIN's cells)."""
    (notes, _) = xlsx_sheets(path)
    c = notes.cells
    rows = []
    r = NOTES_FIRST_ROW
    while f"C{r}" in c:
        row = [c[f"B{r}"], c[f"C{r}"], c[f"D{r}"], c[f"F{r}"]]
        for mark in "GIKM":
            absence = chr(ord(mark) + 1)
            row += [c.get(f"{mark}{r}"), c.get(f"{absence}{r}")]
        rows.append([*row, c.get(f"O{r}", "")])
        r += 1
    meta_cells = {
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
    return NotesFile(
        rel_path=path.name,
        school_code=c["C5"],
        guid=c["E5"],
        session=c["G5"],
        subject_code=c["K5"].strip("#"),
        level_internal=c["O5"],
        meta={name: c[ref] for name, ref in meta_cells.items()},
        slots=["test1", "test2", "test3", "activities"],
        rows=rows,
    )


@pytest.mark.parametrize("replica", NOTES_REPLICAS, ids=lambda p: p.name)
def test_notes_writer_reproduces_each_replica_cell_for_cell(replica: Path, tmp_path: Path) -> None:
    out = tmp_path / replica.name
    write_notes(replica_notes_file(replica), out)
    for mine, theirs in zip(xlsx_sheets(out), xlsx_sheets(replica), strict=True):
        assert mine == theirs
    for sheet in ("NotesCC", "Data"):
        assert calamine_grid(out, sheet) == calamine_grid(replica, sheet)


@pytest.mark.parametrize("fmt", ["xls", "xlsx"])
def test_list_writer_reproduces_the_replica_cell_for_cell(fmt: str, tmp_path: Path) -> None:
    meta_cells = {
        "school_year": "C6",
        "commune": "H6",
        "academy": "T6",
        "school_name": "H8",
        "directorate": "U8",
        "class_code": "I11",
        "level_label": "T10",
    }
    header = [f"{c}15" for c in ("AA", "X", "Q", "M", "L", "F", "C")]
    book = ListWorkbook(f"ListEleve_20231007.{fmt}", fmt)
    replica = xls_sheets(LIST_REPLICA)
    for sheet in replica:
        c = sheet.cells
        rows = []
        r = LIST_FIRST_ROW
        while f"X{r}" in c:
            rows.append([c.get(f"{a[:-2]}{r}") for a in header])
            r += 1
        rows = [[int(row[0]), *row[1:]] for row in rows]
        meta = {name: c[ref] for name, ref in meta_cells.items()}
        book.sheets.append(ListSheet(meta, [c[a] for a in header], rows))
    out = tmp_path / book.rel_path
    write_list(book, out)
    assert all_sheets(out) == replica
    for sheet in replica:
        assert calamine_grid(out, sheet.name) == calamine_grid(LIST_REPLICA, sheet.name)

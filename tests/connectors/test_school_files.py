"""Reading school submissions into the read frame (docs/decisions/0002-ingest-frames.md)."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from connectors.school_files import FileRejected, detect_dataset, read_submission
from schemas.datasets import (
    ABSENCE_LABEL,
    GUARDIANS,
    JUSTIFIED_LABEL,
    MARK_LABEL,
    ROOMS,
    STUDENTS,
)
from tests.connectors.school_file_builders import (
    pupils,
    table_text,
    write_list_eleve,
    write_notes_cc,
    write_table_xlsx,
)

SCHOOL = "27783Y"


def _declared(dataset) -> list[str]:
    return [c.name for c in dataset.columns]


# ------------------------------------------------------------------------------- ListEleve


@pytest.mark.parametrize("suffix", [".xls", ".xlsx"])
def test_list_eleve_one_sheet_per_class(tmp_path, suffix):
    path = write_list_eleve(
        tmp_path / f"ListEleve_20240115{suffix}",
        {"1APIC-1": pupils(3), "1APIC-2": pupils(2, start=10)},
    )
    result = read_submission(path, school_code=SCHOOL)
    assert result.dataset == "students"
    assert result.source_format == suffix[1:]
    frame = result.frame
    assert result.rows_read == frame.height == 5
    assert frame["sheet"].to_list() == ["Sheet1"] * 3 + ["Sheet2"] * 2
    # Header in Excel row 15, pupils from row 16.
    assert frame["sheet_row"].to_list() == [16, 17, 18, 16, 17]
    assert frame.schema["sheet_row"] == pl.Int64
    for name in _declared(STUDENTS) + [c.name for c in STUDENTS.metadata]:
        assert frame.schema[name] == pl.Utf8, name
    first = frame.row(0, named=True)
    assert first["row_number"] == "1"  # a number cell rendered shortest
    assert first["student_code"] == "K100000001"
    assert first["family_name"] == "النسب1"
    assert first["sex"] == "ذكر"
    assert first["birth_date"] == "02/02/2010"  # a date cell rendered dd/mm/yyyy
    assert first["birthplace"] == "تيزنيت"
    assert frame["birthplace"].to_list()[2] is None  # blank cell → null
    assert first["academy"] == "أكاديمية سوس ماسة"
    assert first["directorate"] == "إقليم: تيزنيت"
    assert first["school_year"] == "2023/2024"
    assert first["level_label"] == "الأولى إعدادي مسار دولي"
    assert frame["class_code"].to_list() == ["1APIC-1"] * 3 + ["1APIC-2"] * 2
    assert result.sheets == ["Sheet1", "Sheet2"]


def test_list_eleve_xls_and_xlsx_give_the_same_frame(tmp_path):
    classes = {"3ASCG-5": pupils(4)}
    xls = read_submission(write_list_eleve(tmp_path / "a.xls", classes), school_code=SCHOOL)
    xlsx = read_submission(write_list_eleve(tmp_path / "a.xlsx", classes), school_code=SCHOOL)
    assert xls.frame.equals(xlsx.frame)


def test_list_eleve_found_by_labels_not_row_numbers(tmp_path):
    """Header moved to row 20, labels padded with stray spaces, metadata value before its label
    in column order, empty rows between pupils (skipped, not counted)."""
    path = write_list_eleve(
        tmp_path / "ListEleve.xlsx",
        {"TCSF-8": pupils(4)},
        header_row=19,
        spaces=True,
        blank_every=2,
        value_side="before",
    )
    frame = read_submission(path, school_code=SCHOOL).frame
    assert frame.height == 4
    assert frame["sheet_row"].to_list() == [21, 22, 24, 25]
    assert frame["class_code"].unique().to_list() == ["TCSF-8"]
    assert frame["commune"].unique().to_list() == ["تيزنيت"]


def test_list_eleve_keeps_rows_without_code(tmp_path):
    rows = pupils(2)
    rows[1]["code"] = None
    frame = read_submission(
        write_list_eleve(tmp_path / "l.xls", {"6APG-1": rows}), school_code=SCHOOL
    ).frame
    assert frame.height == 2
    assert frame["student_code"].to_list() == ["K100000001", None]


def test_list_eleve_missing_required_column_is_f008(tmp_path):
    import xlsxwriter

    path = tmp_path / "ListEleve.xlsx"
    book = xlsxwriter.Workbook(str(path))
    ws = book.add_worksheet("Sheet1")
    for c, label in enumerate(["ر.ت", "الرمز", "النسب", "الإسم", "مكان الازدياد"]):
        ws.write(14, c, label)
    ws.write_row(15, 0, [1, "K100000001", "أ", "ب", "تيزنيت"])
    book.close()
    with pytest.raises(FileRejected) as err:
        read_submission(path, school_code=SCHOOL)
    assert err.value.rule_id == "F008"
    assert err.value.column == "النوع"


# -------------------------------------------------------------------------------- NotesCC


def test_notes_cc_long_format(tmp_path):
    rows = pupils(3)
    path = write_notes_cc(
        tmp_path / "export_notesCC_1APIC-1_Maths.xlsx",
        rows,
        tests=3,
        marks={("K100000002", "test2"): None, ("K100000001", "test1"): 16.25},
        absences={("K100000002", "test2"): JUSTIFIED_LABEL},
    )
    result = read_submission(path, school_code=SCHOOL)
    assert result.dataset == "marks"
    frame = result.frame
    # 3 pupils × (3 tests + activities)
    assert result.rows_read == frame.height == 12
    assert set(frame["sheet"].to_list()) == {"NotesCC"}
    assert frame["sheet_row"].to_list() == [18] * 4 + [19] * 4 + [20] * 4
    assert frame["slot"].to_list()[:4] == ["test1", "test2", "test3", "activities"]
    assert frame["slot_label"].to_list()[:4] == [
        "الفرض الأول",
        "الفرض الثاني",
        "الفرض الثالث",
        "الأنشطة المندمجة",
    ]
    first = frame.row(0, named=True)
    assert first["mark"] == "16.25"
    assert first["internal_id"] == "1000001"
    assert first["student_code"] == "K100000001"
    assert first["full_name"] == "النسب1 الإسم1"
    assert first["birth_date"] == "02-02-2010"  # text cell kept as written
    assert first["remark"] == "حسن"
    assert first["mark_column"] == f"الفرض الأول - {MARK_LABEL}"
    assert first["absence_column"] == f"الفرض الأول - {ABSENCE_LABEL}"
    # Metadata from the hidden row 5 and the visible labels.
    assert first["school_code"] == SCHOOL
    assert first["subject_code"] == "0030"
    assert first["level_code"] == "1APIC"
    assert first["semester"] == "1"
    assert first["class_code"] == "1APIC-1"
    assert first["school_year"] == "2023/2024"
    assert first["level_label"] == "الأولى إعدادي مسار دولي"
    assert first["teacher"] == "أحمد الأستاذ"
    assert first["subject_name"] == "الرياضيات"
    absent = frame.filter((pl.col("student_code") == "K100000002") & (pl.col("slot") == "test2"))
    assert absent["mark"].to_list() == [None]
    assert absent["absence"].to_list() == [JUSTIFIED_LABEL]
    # Every declared and contract column is Utf8 except sheet_row.
    assert all(t == pl.Utf8 for n, t in frame.schema.items() if n != "sheet_row")


@pytest.mark.parametrize(("tests", "activities", "per_pupil"), [(2, False, 2), (4, True, 5)])
def test_notes_cc_varying_number_of_tests(tmp_path, tests, activities, per_pupil):
    path = write_notes_cc(tmp_path / "n.xlsx", pupils(5), tests=tests, activities=activities)
    frame = read_submission(path, school_code=SCHOOL).frame
    assert frame.height == 5 * per_pupil
    expected = [f"test{i}" for i in range(1, tests + 1)] + (["activities"] if activities else [])
    assert frame["slot"].to_list()[:per_pupil] == expected


def test_notes_cc_second_session_and_moved_header(tmp_path):
    path = write_notes_cc(tmp_path / "n.xlsx", pupils(2), session=2, header_row=18)
    frame = read_submission(path, school_code=SCHOOL).frame
    assert frame["semester"].unique().to_list() == ["2"]
    assert frame["sheet_row"].unique().sort().to_list() == [21, 22]


def test_notes_cc_other_school_is_f004(tmp_path):
    path = write_notes_cc(tmp_path / "n.xlsx", pupils(2), school_code="11111A")
    with pytest.raises(FileRejected) as err:
        read_submission(path, school_code=SCHOOL)
    assert err.value.rule_id == "F004"
    assert err.value.value == "11111A"


def test_notes_cc_school_code_compared_after_cleaning(tmp_path):
    path = write_notes_cc(tmp_path / "n.xlsx", pupils(1), school_code=" 27783y ")
    assert read_submission(path, school_code=SCHOOL).rows_read == 4


# --------------------------------------------------------------------------------- tables

GUARDIAN_ROWS = [
    [SCHOOL, "K100000001", "الأب", "العلوي", "محمد", "", "", "BE123456", "", "", "لا", ""],
    [SCHOOL, "K100000002", "الأم", "السوسي", "فاطمة", "", "", "", "123456789", "", "نعم", ""],
]


@pytest.mark.parametrize(
    ("encoding", "delimiter"),
    [("utf-8", ","), ("utf-8-sig", ","), ("cp1256", ","), ("utf-8-sig", ";"), ("utf-16", "\t")],
)
def test_csv_encodings_give_the_same_frame(tmp_path, encoding, delimiter):
    text = table_text(list(GUARDIANS.headers_ar), GUARDIAN_ROWS, delimiter)
    path = tmp_path / "guardians.csv"
    path.write_bytes(text.encode(encoding))
    result = read_submission(path, school_code=SCHOOL)
    assert result.dataset == "guardians"
    assert result.source_format == "csv"
    frame = result.frame
    assert frame.columns == ["sheet", "sheet_row", *_declared(GUARDIANS)]
    assert frame["sheet"].to_list() == ["", ""]
    assert frame["sheet_row"].to_list() == [2, 3]  # header is line 1
    assert frame["relation"].to_list() == ["الأب", "الأم"]
    assert frame["guardian_cin"].to_list() == ["BE123456", None]
    assert frame["cnss_number"].to_list() == [None, "123456789"]  # text kept, no float


def test_csv_headers_with_stray_spaces_and_reordered(tmp_path):
    headers = [f"  {h}  " for h in GUARDIANS.headers_ar]
    headers[3] = headers[3].replace(" ", "  ")
    order = list(reversed(range(len(headers))))
    text = table_text([headers[i] for i in order], [[r[i] for i in order] for r in GUARDIAN_ROWS])
    path = tmp_path / "g.csv"
    path.write_bytes(text.encode("utf-8-sig"))
    frame = read_submission(path, school_code=SCHOOL).frame
    assert frame["student_code"].to_list() == ["K100000001", "K100000002"]
    assert frame["guardian_family_name"].to_list() == ["العلوي", "السوسي"]


def test_csv_skips_empty_lines_but_counts_them(tmp_path):
    text = table_text(list(GUARDIANS.headers_ar), [GUARDIAN_ROWS[0], [""] * 12, GUARDIAN_ROWS[1]])
    path = tmp_path / "g.csv"
    path.write_bytes(text.encode("utf-8"))
    frame = read_submission(path, school_code=SCHOOL).frame
    assert frame["sheet_row"].to_list() == [2, 4]


def test_csv_missing_optional_column_is_null_required_is_f008(tmp_path):
    headers = list(GUARDIANS.headers_ar)
    keep = [i for i, h in enumerate(headers) if h != "الهاتف"]
    text = table_text([headers[i] for i in keep], [[r[i] for i in keep] for r in GUARDIAN_ROWS])
    path = tmp_path / "g.csv"
    path.write_bytes(text.encode("utf-8"))
    assert read_submission(path, school_code=SCHOOL).frame["phone"].to_list() == [None, None]

    keep = [i for i, h in enumerate(headers) if h != "صلة القرابة"]
    text = table_text([headers[i] for i in keep], [[r[i] for i in keep] for r in GUARDIAN_ROWS])
    path.write_bytes(text.encode("utf-8"))
    with pytest.raises(FileRejected) as err:
        read_submission(path, school_code=SCHOOL)
    assert (err.value.rule_id, err.value.column) == ("F008", "صلة القرابة")


def test_xlsx_table(tmp_path):
    path = write_table_xlsx(
        tmp_path / "rooms.xlsx",
        "القاعات",
        list(ROOMS.headers_ar),
        [[SCHOOL, "S01", "القاعة 1", "مختبر", 36], [SCHOOL, "S02", "القاعة 2", "ملعب", 40.5]],
    )
    result = read_submission(path, school_code=SCHOOL)
    assert result.dataset == "rooms"
    frame = result.frame
    assert frame["sheet"].to_list() == ["القاعات", "القاعات"]
    assert frame["sheet_row"].to_list() == [2, 3]
    assert frame["capacity"].to_list() == ["36", "40.5"]
    assert detect_dataset(path) == "rooms"


def test_table_of_another_school_is_f004_mixed_is_left_to_validation(tmp_path):
    rows = [[r[0].replace(SCHOOL, "11111A"), *r[1:]] for r in GUARDIAN_ROWS]
    path = tmp_path / "g.csv"
    path.write_bytes(table_text(list(GUARDIANS.headers_ar), rows).encode("utf-8"))
    with pytest.raises(FileRejected) as err:
        read_submission(path, school_code=SCHOOL)
    assert (err.value.rule_id, err.value.value) == ("F004", "11111A")

    mixed = [rows[0], GUARDIAN_ROWS[1]]
    path.write_bytes(table_text(list(GUARDIANS.headers_ar), mixed).encode("utf-8"))
    frame = read_submission(path, school_code=SCHOOL).frame
    assert frame["school_code"].to_list() == ["11111A", SCHOOL]


def test_numbers_and_dates_rendered_as_text(tmp_path):
    from connectors.reading.cells import render

    assert render(12.0) == "12"
    assert render(16.25) == "16.25"
    assert render(0.1 + 0.2) == "0.30000000000000004"
    assert render(1e-05) == "0.00001"
    assert render(dt.date(2010, 3, 4)) == "04/03/2010"
    assert render(dt.datetime(2010, 3, 4)) == "04/03/2010"
    assert render("  ") is None
    assert render("") is None


def test_detect_dataset(tmp_path):
    assert (
        detect_dataset(write_list_eleve(tmp_path / "a.xls", {"1APIC-1": pupils(1)})) == "students"
    )
    assert detect_dataset(write_notes_cc(tmp_path / "b.xlsx", pupils(1))) == "marks"
    path = tmp_path / "c.csv"
    path.write_bytes(table_text(list(GUARDIANS.headers_ar), GUARDIAN_ROWS).encode("cp1256"))
    assert detect_dataset(path) == "guardians"

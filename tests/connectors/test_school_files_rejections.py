"""Whole files refused with a file-level rule (F001-F008) before or while reading."""

from __future__ import annotations

import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import xlsxwriter
import xlwt

from connectors.reading import limits
from connectors.school_files import FileRejected, read_submission, safe_file_name
from schemas.datasets import GUARDIANS, ROOMS
from tests.connectors.school_file_builders import (
    pupils,
    table_text,
    write_list_eleve,
    write_notes_cc,
    write_table_xlsx,
)

SCHOOL = "27783Y"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "massar_samples"


def _rejected(path, **kwargs) -> FileRejected:
    with pytest.raises(FileRejected) as err:
        read_submission(path, school_code=SCHOOL, **kwargs)
    exc = err.value
    assert exc.detail and "Traceback" not in exc.detail and len(exc.detail) < 120
    return exc


# ------------------------------------------------------------------------------- F001


@pytest.mark.parametrize("suffix", [".csv", ".xls"])
def test_html_page_is_f001(tmp_path, suffix):
    path = tmp_path / f"export{suffix}"
    path.write_bytes(b"\xef\xbb\xbf<!DOCTYPE html>\n<html><body><table><tr><td>x</td></tr></table>")
    assert _rejected(path).rule_id == "F001"
    path.write_bytes(b"  <HTML><head><title>Massar</title></head></HTML>")
    assert _rejected(path).rule_id == "F001"


def test_truncated_xlsx_is_f001(tmp_path):
    path = write_notes_cc(tmp_path / "n.xlsx", pupils(5))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    exc = _rejected(path)
    assert exc.rule_id == "F001"
    assert "zip" in exc.detail


def test_truncated_xls_is_f001(tmp_path):
    path = write_list_eleve(tmp_path / "l.xls", {"1APIC-1": pupils(30)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    assert _rejected(path).rule_id == "F001"


@pytest.mark.parametrize("genuine", [False, True])
def test_xls_cut_short_of_its_last_sectors_is_f001(tmp_path, genuine):
    """python-calamine panics on an .xls missing its last 1,024 bytes (a PanicException, not an
    Exception, would pass the ingest's `except Exception`): the panic is F001 like any other
    workbook calamine cannot open."""
    if genuine:
        data = (FIXTURES / "ListEleve_20231007.xls").read_bytes()
    else:
        data = write_list_eleve(tmp_path / "l.xls", {"1APIC-1": pupils(30)}).read_bytes()
    path = tmp_path / "ListEleve_cut.xls"
    path.write_bytes(data[: len(data) - 1024])
    exc = _rejected(path)
    assert exc.rule_id == "F001"
    assert exc.detail.startswith("workbook parse error: ")


def _declaring(rows: tuple[int, int], columns: tuple[int, int]) -> bytes:
    """The genuine ListEleve .xls with its first sheet's DIMENSIONS record declaring other
    bounds (first row, one past the last; first column, one past the last), as one damaged
    record of a school's upload would."""
    data = (FIXTURES / "ListEleve_20231007.xls").read_bytes()
    record = bytes.fromhex("00020e00020000001d00000002001b000000")  # type, length, bounds
    assert data.count(record) == 1
    return data.replace(record, record[:4] + struct.pack("<IIHHH", *rows, *columns, 0))


def test_an_xls_declaring_its_rows_out_of_order_is_f001_and_the_process_lives(tmp_path):
    """python-calamine sizes a sheet's cells from its DIMENSIONS record, subtracting the
    bounds unsigned: a first row past the last made it ask for terabytes and Rust's allocator
    aborted the worker process, its chunk of schools with it (a fuzzed ListEleve .xls). Read in
    a process of its own here, so that a regression fails this test rather than the run."""
    path = tmp_path / "ListEleve_damaged.xls"
    path.write_bytes(_declaring(rows=(42, 26), columns=(2, 27)))
    reader = (
        "import sys\nfrom pathlib import Path\n"
        "from connectors.reading.read_result import FileRejected\n"
        "from connectors.school_files import read_submission\n"
        "try:\n    read_submission(Path(sys.argv[1]), school_code='27783Y')\n"
        "except FileRejected as error:\n    print(error.rule_id, error.detail)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", reader, str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.strip() == (
        "F001 workbook parse error: a sheet's declared dimensions are out of order"
    )


def test_an_xls_declaring_columns_out_of_order_or_beyond_the_limits_is_refused(tmp_path):
    path = tmp_path / "ListEleve_damaged.xls"
    path.write_bytes(_declaring(rows=(2, 29), columns=(30, 27)))
    assert _rejected(path).rule_id == "F001"
    path.write_bytes(_declaring(rows=(2, 29), columns=(2, 250)))  # as an xlsx's <dimension>
    exc = _rejected(path)
    assert (exc.rule_id, exc.detail) == ("F006", "sheet 250 columns wide > 200")


def test_an_xls_declaring_what_a_sheet_may_hold_is_read_as_before(tmp_path):
    """BIFF8's last row (65,536) within the limits: the same pupils as the genuine file."""
    path = tmp_path / "ListEleve_tall.xls"
    path.write_bytes(_declaring(rows=(2, 65536), columns=(2, 27)))
    genuine = read_submission(FIXTURES / "ListEleve_20231007.xls", school_code=SCHOOL)
    declared = read_submission(path, school_code=SCHOOL)
    assert declared.frame.height > 0 and declared.frame.equals(genuine.frame)


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_binary_garbage_is_f001(tmp_path, suffix):
    path = tmp_path / f"x{suffix}"
    path.write_bytes(bytes(range(256)) * 40)
    assert _rejected(path).rule_id == "F001"


def test_zip_that_is_not_a_workbook_is_f001(tmp_path):
    path = tmp_path / "photos.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    assert _rejected(path).rule_id == "F001"


# ------------------------------------------------------------------------------- F002


def test_encrypted_ole_package_is_f002(tmp_path):
    path = tmp_path / "notes.xlsx"
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504
    directory = "EncryptionInfo".encode("utf-16-le") + b"\x00" * 50
    directory += "EncryptedPackage".encode("utf-16-le") + b"\x00" * 50
    path.write_bytes(header + directory + b"\x17" * 2048)
    exc = _rejected(path)
    assert exc.rule_id == "F002"


# ------------------------------------------------------------------------------- F003


def test_unknown_layout_is_f003(tmp_path):
    path = write_table_xlsx(
        tmp_path / "budget.xlsx", "Feuil1", ["المبلغ الإجمالي", "البند", "ملاحظة"], [[1, "x", "y"]]
    )
    assert _rejected(path).rule_id == "F003"
    csv_path = tmp_path / "budget.csv"
    csv_path.write_text("nom,prenom,age\nA,B,12\n", encoding="utf-8")
    assert _rejected(csv_path).rule_id == "F003"


# ------------------------------------------------------------------------------- F005


def test_zero_bytes_is_f005(tmp_path):
    for name in ("a.csv", "b.xlsx", "c.xls"):
        path = tmp_path / name
        path.write_bytes(b"")
        assert _rejected(path).rule_id == "F005"


def test_massar_export_without_pupils_is_f005(tmp_path):
    assert _rejected(write_notes_cc(tmp_path / "n.xlsx", [])).rule_id == "F005"
    assert _rejected(write_list_eleve(tmp_path / "l.xls", {"1APIC-1": []})).rule_id == "F005"
    path = tmp_path / "g.csv"
    path.write_bytes(b"\xef\xbb\xbf\r\n\r\n")
    assert _rejected(path).rule_id == "F005"


def test_table_header_without_rows_is_an_empty_declaration(tmp_path):
    """A school without discipline incidents sends the header alone: 0 rows, not F005."""
    path = tmp_path / "g.csv"
    path.write_bytes(table_text(list(GUARDIANS.headers_ar), []).encode("utf-8-sig"))
    result = read_submission(path, school_code=SCHOOL)
    assert (result.dataset, result.rows_read, result.frame.height) == ("guardians", 0, 0)
    assert result.frame.columns[:2] == ["sheet", "sheet_row"]
    assert _rejected(path, allow_empty_table=False).rule_id == "F005"
    xlsx = write_table_xlsx(tmp_path / "rooms.xlsx", "القاعات", list(ROOMS.headers_ar), [])
    assert read_submission(xlsx, school_code=SCHOOL).rows_read == 0
    assert _rejected(xlsx, allow_empty_table=False).rule_id == "F005"


def test_workbook_without_cells_is_f005(tmp_path):
    path = tmp_path / "empty.xlsx"
    book = xlsxwriter.Workbook(str(path))
    book.add_worksheet("Sheet1")
    book.close()
    assert _rejected(path).rule_id == "F005"


# ------------------------------------------------------------------------------- F006


def test_zip_bomb_is_f006(tmp_path):
    path = tmp_path / "ListEleve.xlsx"
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("xl/worksheets/sheet1.xml", "w") as entry,
    ):
        chunk = b"\x00" * (1 << 20)
        for _ in range(20):
            entry.write(chunk)
    assert path.stat().st_size < 200_000
    exc = _rejected(path)
    assert exc.rule_id == "F006"
    assert "ratio" in exc.detail


def test_too_many_zip_entries_is_f006(tmp_path):
    path = tmp_path / "many.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        for i in range(1_001):
            archive.writestr(f"xl/media/{i}.bin", b"x")
    assert _rejected(path).rule_id == "F006"


def test_uncompressed_total_is_f006(tmp_path, monkeypatch):
    path = write_notes_cc(tmp_path / "n.xlsx", pupils(3))
    monkeypatch.setattr(limits, "MAX_UNCOMPRESSED_BYTES", 10_000)
    exc = _rejected(path)
    assert exc.rule_id == "F006" and "uncompressed" in exc.detail


def test_ten_thousand_columns_is_f006(tmp_path):
    path = tmp_path / "wide.xlsx"
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("Sheet1")
    sheet.write_row(0, 0, list(GUARDIANS.headers_ar))
    sheet.write(1, 9_999, "x")
    book.close()
    exc = _rejected(path)
    assert exc.rule_id == "F006"
    assert "10000 columns" in exc.detail


def test_wide_xls_is_f006(tmp_path):
    path = tmp_path / "wide.xls"
    book = xlwt.Workbook()
    sheet = book.add_sheet("Sheet1")
    sheet.write(0, 0, "ر.ت")
    sheet.write(0, 250, "x")
    book.save(str(path))
    assert _rejected(path).rule_id == "F006"


def test_too_many_rows_is_f006(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_ROWS", 15)
    path = write_list_eleve(tmp_path / "l.xlsx", {"1APIC-1": pupils(20)})
    assert _rejected(path).rule_id == "F006"
    xls = write_list_eleve(tmp_path / "l.xls", {"1APIC-1": pupils(20)})
    assert _rejected(xls).rule_id == "F006"  # no <dimension>: the parsed size is checked


def test_csv_with_too_many_lines_is_f006(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_ROWS", 3)
    rows = [["x"] * len(GUARDIANS.headers_ar)] * 5
    path = tmp_path / "g.csv"
    path.write_bytes(table_text(list(GUARDIANS.headers_ar), rows).encode("utf-8"))
    assert _rejected(path).rule_id == "F006"


def test_file_too_large_is_f006_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_FILE_BYTES", 100)
    path = tmp_path / "big.csv"
    path.write_bytes(b"x" * 101)
    monkeypatch.setattr(
        type(path), "read_bytes", lambda self: pytest.fail("read before the size check")
    )
    assert _rejected(path).rule_id == "F006"


# ------------------------------------------------------------------------------- F007


@pytest.mark.parametrize(
    "name",
    [
        "../notes.xlsx",
        "..\\notes.xlsx",
        "a/b.csv",
        "..",
        "",
        "C:notes.xlsx",
        "notes\x00.xlsx",
        "notes\n.csv",
        "notes\u202excod.exe",
        "x" * 300 + ".csv",
    ],
)
def test_unsafe_names(name):
    assert not safe_file_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "ListEleve_20240115.xls",
        "export_notesCC_1APIC-1_Maths.xlsx",
        "Export_27783Y_1APIC-1_الرياضيات_15012024101010.xlsx",
        "أولياء الأمور (2).csv",
    ],
)
def test_safe_names(name):
    assert safe_file_name(name)


def test_unsafe_submitted_name_is_f007(tmp_path):
    path = write_notes_cc(tmp_path / "n.xlsx", pupils(1))
    exc = _rejected(path, file_name="../../etc/n.xlsx")
    assert exc.rule_id == "F007"


# ------------------------------------------------------------------------------- F008


def test_notes_cc_without_student_code_column_is_f008(tmp_path):
    import openpyxl  # only to edit the fixture

    path = write_notes_cc(tmp_path / "n.xlsx", pupils(2))
    book = openpyxl.load_workbook(path)
    sheet = book["NotesCC"]
    sheet.unmerge_cells("B16:B17")
    sheet["B16"] = "الرقم"
    book.save(path)
    exc = _rejected(path)
    assert (exc.rule_id, exc.column) == ("F008", "رقم التلميذ")
    assert exc.detail == "sheet NotesCC, row 16"


def test_notes_cc_without_birth_date_is_f008(tmp_path):
    import openpyxl

    path = write_notes_cc(tmp_path / "n.xlsx", pupils(2))
    book = openpyxl.load_workbook(path)
    sheet = book["NotesCC"]
    sheet.unmerge_cells("D16:D17")
    sheet["D16"] = None
    book.save(path)
    exc = _rejected(path)
    assert (exc.rule_id, exc.column) == ("F008", "تاريخ الإزدياد")


def test_xlsx_table_missing_column_is_f008(tmp_path):
    headers = [h for h in GUARDIANS.headers_ar if h != "يتيم"]
    path = write_table_xlsx(tmp_path / "g.xlsx", "Sheet1", headers, [["x"] * len(headers)])
    exc = _rejected(path)
    assert (exc.rule_id, exc.column) == ("F008", "يتيم")


def test_exception_fields(tmp_path):
    exc = FileRejected("F008", "header without X", column="X")
    assert (exc.rule_id, exc.detail, exc.column, exc.value) == (
        "F008",
        "header without X",
        "X",
        None,
    )

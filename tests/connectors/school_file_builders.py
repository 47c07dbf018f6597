"""Tiny Massar-like files for the reader tests, written with xlsxwriter / xlwt.

Labels come from schemas.datasets; positions mimic the genuine exports (DOMAIN.md §2) but the
reader must not depend on them.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

import xlsxwriter
import xlwt

from schemas.datasets import (
    ABSENCE_LABEL,
    MARK_LABEL,
    MARK_SLOTS,
    MARKS,
    STUDENTS,
)

STUDENT_HEADERS = STUDENTS.headers_ar
LE_META = {c.name: c.header_ar for c in STUDENTS.metadata}
NOTES_META = {c.name: c.header_ar for c in MARKS.metadata}


def pupils(n: int, start: int = 1) -> list[dict]:
    """n pupils with Massar codes K1000000xx."""
    out = []
    for i in range(start, start + n):
        out.append(
            {
                "code": f"K{100000000 + i}",
                "family": f"النسب{i}",
                "first": f"الإسم{i}",
                "sex": "ذكر" if i % 2 else "أنثى",
                "birth": dt.datetime(2010, 1 + i % 12, 1 + i % 28),
                "place": "تيزنيت" if i % 3 else None,
                "id": 1_000_000 + i,
            }
        )
    return out


# ------------------------------------------------------------------------------- ListEleve


class _XlsxSheet:
    def __init__(self, book: xlsxwriter.Workbook, name: str) -> None:
        self.ws = book.add_worksheet(name)
        self.ws.right_to_left()
        self.date = book.add_format({"num_format": "dd/mm/yyyy"})

    def write(self, r: int, c: int, value: object) -> None:
        if isinstance(value, dt.datetime):
            self.ws.write_datetime(r, c, value, self.date)
        elif value is not None:
            self.ws.write(r, c, value)

    def merge(self, r1: int, c1: int, r2: int, c2: int, value: object) -> None:
        self.ws.merge_range(r1, c1, r2, c2, value)

    def hide_row(self, r: int) -> None:
        self.ws.set_row(r, None, None, {"hidden": True})


class _XlsSheet:
    def __init__(self, book: xlwt.Workbook, name: str) -> None:
        self.ws = book.add_sheet(name)
        self.ws.cols_right_to_left = True
        self.date = xlwt.easyxf(num_format_str="dd/mm/yyyy")

    def write(self, r: int, c: int, value: object) -> None:
        if isinstance(value, dt.datetime):
            self.ws.write(r, c, value, self.date)
        elif value is not None:
            self.ws.write(r, c, value)

    def merge(self, r1: int, c1: int, r2: int, c2: int, value: object) -> None:
        self.ws.write_merge(r1, r2, c1, c2, value)

    def hide_row(self, r: int) -> None:
        self.ws.row(r).hidden = True


def list_eleve_sheet(
    sheet,
    class_code: str,
    rows: list[dict],
    *,
    header_row: int = 14,
    spaces: bool = False,
    blank_every: int = 0,
    value_side: str = "after",
) -> None:
    """One class sheet: metadata block (label cell, value cell), header row, pupils."""
    pad = (lambda s: f"  {s}   ") if spaces else (lambda s: s)
    sheet.merge(0, 2, 0, 6, "لائحة التلاميذ")
    meta = {
        "academy": "أكاديمية سوس ماسة",
        "directorate": "إقليم: تيزنيت",
        "commune": "تيزنيت",
        "school_name": "إعدادية المسيرة",
        "school_year": "2023/2024",
        "level_label": "الأولى إعدادي مسار دولي",
        "class_code": class_code,
    }
    r = 2
    for name, value in meta.items():
        label = pad(LE_META[name]) + " :"
        if value_side == "after":
            sheet.write(r, 0, label)
            sheet.merge(r, 1, r, 3, value)
        else:
            sheet.merge(r, 0, r, 2, value)
            sheet.write(r, 3, label)
        r += 1
    for c, label in enumerate(STUDENT_HEADERS):
        sheet.write(header_row, c, pad(label))
    r = header_row + 1
    for n, p in enumerate(rows, start=1):
        values = [n, p["code"], p["family"], p["first"], p["sex"], p["birth"], p["place"]]
        for c, v in enumerate(values):
            sheet.write(r, c, v)
        r += 1
        if blank_every and n % blank_every == 0:
            r += 1  # an empty row: skipped by the reader


def write_list_eleve(path: Path, classes: dict[str, list[dict]], **kwargs) -> Path:
    if path.suffix == ".xls":
        book = xlwt.Workbook(encoding="utf-8")
        for i, (class_code, rows) in enumerate(classes.items(), start=1):
            list_eleve_sheet(_XlsSheet(book, f"Sheet{i}"), class_code, rows, **kwargs)
        book.save(str(path))
    else:
        book = xlsxwriter.Workbook(str(path))
        for i, (class_code, rows) in enumerate(classes.items(), start=1):
            list_eleve_sheet(_XlsxSheet(book, f"Sheet{i}"), class_code, rows, **kwargs)
        book.close()
    return path


# -------------------------------------------------------------------------------- NotesCC


def write_notes_cc(
    path: Path,
    rows: list[dict],
    *,
    school_code: str = "27783Y",
    class_code: str = "1APIC-1",
    tests: int = 3,
    activities: bool = True,
    session: int = 1,
    marks: dict[tuple[str, str], object] | None = None,
    absences: dict[tuple[str, str], str] | None = None,
    header_row: int = 15,
) -> Path:
    """A NotesCC export: technical row 5, metadata, slot tokens row 15, header rows 16-17,
    pupils from row 18 (0-based `header_row` 15). `marks[(code, slot)]` gives a cell value
    (default: a decimal mark), None leaves it empty."""
    marks = marks or {}
    absences = absences or {}
    book = xlsxwriter.Workbook(str(path))
    s = _XlsxSheet(book, "NotesCC")
    data = book.add_worksheet("Data")
    data.write(0, 0, "")
    data.write(1, 0, "مبرر")
    for hidden in (0, 1, 4, header_row - 1):
        s.hide_row(hidden)
    # Row 5: C5 school, E5 GUID, G5 session, K5 subject token, O5 level code.
    s.write(4, 2, school_code)
    s.write(4, 4, "3f2504e0-4f89-11d3-9a0c-0305e82c3301")
    s.write(4, 6, session)
    s.write(4, 10, "#0030#")
    s.write(4, 14, "1APIC")
    s.merge(5, 3, 5, 9, "نقط المراقبة المستمرة")
    meta = [
        ("academy", "أكاديمية سوس ماسة", 6, 0),
        ("directorate", "تيزنيت", 6, 6),
        ("school_name", "إعدادية المسيرة", 7, 0),
        ("level_label", "الأولى إعدادي مسار دولي", 8, 0),
        ("class_code", class_code, 8, 6),
        ("teacher", "أحمد الأستاذ", 9, 0),
        ("session_label", "الدورة الأولى" if session == 1 else "الدورة الثانية", 10, 0),
        ("subject_name", "الرياضيات", 11, 0),
        ("school_year", "2023/2024", 12, 0),
    ]
    for name, value, r, c in meta:
        s.write(r, c, NOTES_META[name])
        s.merge(r, c + 1, r, c + 3, value)
    fixed = ["ID", "رقم التلميذ", "إسم التلميذ", "تاريخ الإزدياد"]
    for c, label in enumerate(fixed):
        s.merge(header_row, c, header_row + 1, c, label)
    slots = [MARK_SLOTS[i] for i in range(tests)]
    if activities:
        slots.append(MARK_SLOTS[4])
    c = len(fixed)
    columns = []
    for slot, label, token in slots:
        s.write(header_row - 1, c, token)
        s.merge(header_row, c, header_row, c + 1, label)
        s.write(header_row + 1, c, MARK_LABEL)
        s.write(header_row + 1, c + 1, ABSENCE_LABEL)
        columns.append((slot, c))
        c += 2
    s.merge(header_row, c, header_row + 1, c, "ملاحظات الأستاذ")
    r = header_row + 2
    for i, p in enumerate(rows):
        s.write(r, 0, p["id"])
        s.write(r, 1, p["code"])
        s.write(r, 2, f"{p['family']} {p['first']}")
        s.write(r, 3, p["birth"].strftime("%d-%m-%Y"))
        for k, (slot, col) in enumerate(columns):
            value = marks.get((p["code"], slot), round(8 + (i * 1.25 + k * 0.75) % 12, 2))
            s.write(r, col, value)
            s.write(r, col + 1, absences.get((p["code"], slot)))
        s.write(r, c, "حسن" if i == 0 else None)
        r += 1
    book.close()
    return path


# --------------------------------------------------------------------------------- tables


def table_text(headers: list[str], rows: list[list[str]], delimiter: str = ",") -> str:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(headers)
    writer.writerows(rows)
    return buffer.getvalue()


def write_table_xlsx(path: Path, sheet: str, headers: list[str], rows: list[list]) -> Path:
    book = xlsxwriter.Workbook(str(path))
    ws = book.add_worksheet(sheet)
    ws.right_to_left()
    for c, h in enumerate(headers):
        ws.write(0, c, h)
    for r, row in enumerate(rows, start=1):
        for c, v in enumerate(row):
            if v is not None:
                ws.write(r, c, v)
    book.close()
    return path

"""A school's workbook holds what xlsxwriter's own cell writing would have made of the report:
tasks/feedback.ReportSheet writes the report's rows without xlsxwriter's per-cell paths (most
of its CPU), and every part of the file must stay as it was (cells, shared strings, styles,
columns, panes, filter), whatever the rows hold: both severities, empty cells, numbers, text an
XML part must escape, a value too long for a cell, a coverage section with and without classes.
"""

from __future__ import annotations

import re
import zipfile
from datetime import datetime
from pathlib import Path

import pytest
from lxml import html as lxml_html
from openpyxl import load_workbook
from xlsxwriter.worksheet import Worksheet

import tasks.feedback as feedback
from tasks.feedback import (
    FINDING_HEADERS,
    HELD_LABEL,
    STATE_LABELS,
    SUMMARY_HEADERS,
    OwedLine,
    OwedSection,
    ReportFinding,
    ReportSubmission,
    _dataset_title,
    report_order,
    write_school_report,
    write_xlsx_report,
)

SCHOOL = "33494V"
NOW = datetime(2024, 6, 24, 16, 12)
LONG_VALUE = "9" * 40_000  # beyond a cell's 32,767 characters: truncated, as xlsxwriter does


def _submissions() -> list[ReportSubmission]:
    names = [
        "NotesCC/Export_33494V_1APG-1_التربية الإسلامية_24062024161205.xlsx",
        "export_notesCC_1APIC-1_0030.xlsx",
        "ListEleve_20231007.xls",
        "export_notesCC_2APIC-1_0030.xlsx",
    ] + [f"export_notesCC_3APIC-{i}_0030.xlsx" for i in range(1, 40)]
    states = ["partially_accepted", "accepted", "rejected", "superseded", "received"]
    return [
        ReportSubmission(
            sid,
            name,
            "students" if name.startswith("List") else "marks",
            states[sid % len(states)],
            30 + sid,
            30 - sid % 3,
            sid % 3,
            held=sid == 4,
        )
        for sid, name in enumerate(names, start=1)
    ]


def _findings(submissions: list[ReportSubmission]) -> list[ReportFinding]:
    odd_values = [
        None,
        "",
        "K12",
        "<b>&\"'</b>",
        "ligne\x01\x1f",
        " espaces ",
        "_x0041_",
        LONG_VALUE,
    ]
    return [
        ReportFinding(
            s.submission_id,
            s.file_name,
            None if index % 4 == 0 else "NotesCC",
            None if index % 5 == 0 else 16 + index,
            None if index % 3 == 0 else "الفرض الأول",
            odd_values[index % len(odd_values)],
            f"R00{index % 9}",
            "error" if index % 2 else "query",
            "النقطة خارج السلم",
            "Note hors barème",
        )
        for index, s in enumerate(submissions[:20])
    ]


COVERAGE = [
    OwedSection("rentree-2023", "Rentrée", "2023-10-15", -3, False, ()),
    OwedSection(
        "s1-2023",
        "Semestre 1",
        "2024-02-10",
        12,
        True,
        (
            OwedLine("marks", "1APIC-1", "0030", "الرياضيات", "Mathématiques", "1", "missing"),
            OwedLine("classes", "", "", "", "", "", "rejected"),
            OwedLine("marks", "2APIC-1", "0030", "الرياضيات", "Mathématiques", "1", "other"),
        ),
    ),
]


def _as_read(value: str | None) -> str | None:
    """A cell's text as openpyxl reads it back: truncated to 32,767 characters, control
    characters as Excel's ``_xHHHH_`` escapes (which openpyxl leaves as they are)."""
    if not value:
        return None
    return re.sub(r"[\x00-\x08\x0b-\x1f]", lambda m: f"_x{ord(m[0]):04X}_", value[:32_767])


class CellByCell(Worksheet):
    """The report's rows written as before ReportSheet: one ``write`` a cell, xlsxwriter's own
    sheet XML."""

    def write_report_rows(self, first_row, rows, formats) -> None:
        for row, (values, row_formats) in enumerate(zip(rows, formats, strict=False), first_row):
            for column, (value, cell_format) in enumerate(zip(values, row_formats, strict=False)):
                self.write(row, column, value, cell_format)


def _parts(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    # the document's creation time is the only part that differs from one run to the next
    parts["docProps/core.xml"] = re.sub(
        rb"<dcterms:(created|modified)[^<]*</dcterms:\1>", b"", parts["docProps/core.xml"]
    )
    return parts


@pytest.mark.parametrize(
    "with_findings, coverage",
    [(True, COVERAGE), (True, None), (False, COVERAGE[1:]), (False, None)],
    ids=["findings-coverage", "findings", "clean-coverage", "clean"],
)
def test_the_workbook_is_the_one_xlsxwriter_writes_cell_by_cell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, with_findings: bool, coverage
):
    submissions = _submissions()
    findings = _findings(submissions) if with_findings else []
    fast = write_xlsx_report(tmp_path / "fast.xlsx", SCHOOL, NOW, submissions, findings, coverage)
    monkeypatch.setattr(feedback, "ReportSheet", CellByCell)
    plain = write_xlsx_report(tmp_path / "plain.xlsx", SCHOOL, NOW, submissions, findings, coverage)

    fast_parts, plain_parts = _parts(fast), _parts(plain)
    assert list(fast_parts) == list(plain_parts)
    for name, content in plain_parts.items():
        assert fast_parts[name] == content, name


def test_the_cells_read_back_as_the_report_says(tmp_path: Path):
    """What a reader sees, read back by openpyxl: texts and numbers as such, bold wrapped
    headers, the severities' colours, right-to-left sheets, frozen headers, column widths and
    the findings' filter."""
    submissions = _submissions()
    findings = _findings(submissions)
    path = write_xlsx_report(tmp_path / "r.xlsx", SCHOOL, NOW, submissions, findings, COVERAGE)
    book = load_workbook(path)
    summary, constats, owed = book.worksheets
    assert book.sheetnames == ["ملخص - Résumé", "الملاحظات - Constats", "المستحقات - Couverture"]
    assert all(sheet.sheet_view.rightToLeft for sheet in book.worksheets)
    assert (summary.freeze_panes, constats.freeze_panes, owed.freeze_panes) == ("A4", "A2", "A2")
    assert summary["A1"].font.b and SCHOOL in summary["A1"].value
    widths = {(d.min, d.max): round(d.width) for d in summary.column_dimensions.values()}
    assert widths == {(1, 1): 46, (2, 3): 29, (4, 8): 15}  # 45, 28, 14 characters and padding

    ordered, ordered_findings = report_order(submissions, findings)
    headers = [cell for cell in summary[3]]
    assert [c.value for c in headers] == [f"{ar}\n{fr}" for ar, fr in SUMMARY_HEADERS]
    assert all(c.font.b and c.alignment.wrap_text for c in headers)
    rows = list(summary.iter_rows(min_row=4))
    assert len(rows) == len(ordered)
    for row, s in zip(rows, ordered, strict=True):
        assert [c.value for c in (row[0], row[1], *row[3:6])] == [
            s.file_name,
            _dataset_title(s.dataset),
            s.rows_read,
            s.rows_accepted,
            s.rows_quarantined,
        ]
        assert [c.data_type for c in row] == ["s"] * 3 + ["n"] * 5
        assert all(c.alignment.wrap_text and not c.font.b for c in row)
        state_ar, state_fr = STATE_LABELS[s.state]
        assert row[2].value.startswith(state_ar) and state_fr in row[2].value
        assert (HELD_LABEL[0] in row[2].value, HELD_LABEL[1] in row[2].value) == (s.held, s.held)
        own = [f.severity for f in findings if f.submission_id == s.submission_id]
        assert [row[6].value, row[7].value] == [own.count("error"), own.count("query")]

    assert [c.value for c in constats[1]] == [f"{ar}\n{fr}" for ar, fr in FINDING_HEADERS]
    assert constats.auto_filter.ref == f"A1:I{len(findings) + 1}"
    rows = list(constats.iter_rows(min_row=2))
    for row, f in zip(rows, ordered_findings, strict=True):
        fill = {"error": "FFFFC7CE", "query": "FFFFEB9C"}[f.severity]
        assert [c.fill.fgColor.rgb for c in row[:2]] == [fill, fill]
        assert row[0].value == f.rule_id and row[2].value == f.file_name
        assert row[4].value == f.sheet_row  # a number, or an empty cell
        assert row[3].value == f.sheet and row[5].value == f.column_name
        assert row[6].value == _as_read(f.value)
    assert [row[0].value for row in owed.iter_rows(min_row=2)] == ["rentree-2023"] + ["s1-2023"] * 3


def test_the_page_says_what_the_workbook_says(tmp_path: Path):
    """Row by row, the page's summary and findings hold the workbook's texts and numbers (the
    page makes each recurring dataset, state and count cell once: none may land on another
    row)."""
    submissions = _submissions()
    findings = [f for f in _findings(submissions) if f.value != LONG_VALUE]  # not truncated
    xlsx, page = write_school_report(tmp_path, SCHOOL, NOW, submissions, findings, COVERAGE)
    summary, constats, _ = load_workbook(xlsx).worksheets
    tables = lxml_html.fromstring(page.read_text(encoding="utf-8")).xpath("//table")

    def texts(table) -> list[list[str]]:
        rows = table.xpath("./tbody/tr")
        return [[_as_read(td.text_content()) or "" for td in tr.xpath("./td")] for tr in rows]

    def cells(sheet, first_row: int) -> list[list[str]]:
        return [
            ["" if c.value is None else _as_read(str(c.value)) or "" for c in row]
            for row in sheet.iter_rows(min_row=first_row)
        ]

    assert len({row[1] for row in texts(tables[0])}) > 1  # several datasets and states
    assert len({row[2] for row in texts(tables[0])}) > 1
    assert texts(tables[0]) == cells(summary, 4)
    assert [row[:7] for row in texts(tables[1])] == [row[:7] for row in cells(constats, 2)]

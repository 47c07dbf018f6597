"""A school's report reads right: in the HTML page every file name, code, sheet row number and
cell value sits in its own <bdi> so that the Arabic text around it does not reorder it (a
genuine file name mixing Latin, Arabic and digits shows as written), files with errors come
first in both the page and the workbook, and nothing a school sent becomes markup or a formula."""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path

import pytest
from lxml import html as lxml_html
from openpyxl import load_workbook
from python_calamine import CalamineWorkbook

from schemas.rules import render
from tasks.feedback import ReportFinding, ReportSubmission, write_school_report

SCHOOL = "33494V"
NOW = datetime(2024, 6, 24, 16, 12)
GENUINE_NAME = "NotesCC/Export_33494V_1APG-1_التربية الإسلامية_24062024161205.xlsx"
ARABIC_WORDS = "التربية الإسلامية"
LATIN_OR_DIGIT = re.compile(r"[A-Za-z0-9]")
ARABIC_LETTER = re.compile(r"[\u0621-\u064a]")


def submission(sid: int, name: str, state: str = "accepted", dataset: str = "marks"):
    return ReportSubmission(sid, name, dataset, state, 30, 30, 0)


def finding(sid: int, name: str, rule_id: str, params: dict, **cells) -> ReportFinding:
    message_ar, message_fr = render(rule_id, {"file": name, **params})
    severity = "query" if rule_id in ("R009", "R010", "X002", "X004", "X005") else "error"
    return ReportFinding(
        submission_id=sid,
        file_name=name,
        sheet=cells.get("sheet"),
        sheet_row=cells.get("row"),
        column_name=cells.get("column"),
        value=cells.get("value"),
        rule_id=rule_id,
        severity=severity,
        message_ar=message_ar,
        message_fr=message_fr,
    )


# Six files in arrival order: clean, queries only, errors, rejected, clean, errors and queries.
SUBMISSIONS = [
    submission(1, "ListEleve_20231007.xls", dataset="students"),
    submission(2, "export_notesCC_1APIC-1_0030.xlsx"),
    submission(3, GENUINE_NAME, state="partially_accepted"),
    submission(4, "export_notesCC_2APIC-1_0030.xlsx", state="rejected"),
    submission(5, "export_notesCC_3APIC-1_0030.xlsx"),
    submission(6, "Export_33494V_2APG-1_اللغة العربية_24062024161300.xlsx", "partially_accepted"),
]
FINDINGS = [
    finding(2, SUBMISSIONS[1].file_name, "R010", {}, sheet="NotesCC", row=21, column="الفرض الأول"),
    finding(
        3, GENUINE_NAME, "R003", {"value": "23", "scale": 20},
        sheet="NotesCC", row=18, column="الفرض الأول", value="23",
    ),
    finding(
        3, GENUINE_NAME, "R001", {"value": "K12"},
        sheet="NotesCC", row=19, column="رقم التلميذ", value="K12",
    ),
    finding(6, SUBMISSIONS[5].file_name, "R010", {}, sheet="NotesCC", row=30, column="الأنشطة"),
    finding(
        6, SUBMISSIONS[5].file_name, "R003", {"value": "-1", "scale": 10},
        sheet="NotesCC", row=25, column="الفرض الثاني", value="-1",
    ),
    finding(3, GENUINE_NAME, "F001", {"detail": "12 Mo > 10 Mo"}),
]  # fmt: skip
# Errors first (3: partly accepted, 4: rejected, 6), then queries only (2), then clean (1, 5).
EXPECTED_FILES = [3, 4, 6, 2, 1, 5]


@pytest.fixture
def report(tmp_path: Path) -> tuple[Path, Path]:
    return write_school_report(tmp_path / "reports", SCHOOL, NOW, SUBMISSIONS, FINDINGS)


def _page(report: tuple[Path, Path]):
    return lxml_html.fromstring(report[1].read_text(encoding="utf-8"))


def _tables(page) -> tuple[list, list]:
    summary, findings = page.xpath("//table")
    return summary.xpath("./tbody/tr"), findings.xpath("./tbody/tr")


def _name(sid: int) -> str:
    return next(s.file_name for s in SUBMISSIONS if s.submission_id == sid)


def _only_bdi(cell) -> object:
    """The single <bdi> a cell holds, with nothing outside it."""
    children = cell.getchildren()
    assert len(children) == 1 and children[0].tag == "bdi", lxml_html.tostring(cell, "unicode")
    assert not (cell.text or "").strip() and not (children[0].tail or "").strip()
    return children[0]


def _outside_bdi(cell) -> str:
    """The text of a cell that is not inside any <bdi>."""
    copy = lxml_html.fromstring(lxml_html.tostring(cell, encoding="unicode", with_tail=False))
    for isolate in copy.xpath(".//bdi"):
        isolate.drop_tree()  # keeps the text that follows it
    return copy.text_content()


def test_files_with_errors_come_first_then_queries_then_clean(report):
    summary, findings = _tables(_page(report))
    assert [row.xpath("./td")[0].text_content() for row in summary] == [
        _name(sid) for sid in EXPECTED_FILES
    ]
    # findings follow their file's place and keep their order within it
    expected = [f for sid in EXPECTED_FILES for f in FINDINGS if f.submission_id == sid]
    assert [
        (row.xpath("./td")[2].text_content(), row.xpath("./td")[0].text_content())
        for row in findings
    ] == [(f.file_name, f.rule_id) for f in expected]
    assert [row.get("class") for row in findings] == [f.severity for f in expected]


def test_the_workbook_has_the_same_order(report):
    book = CalamineWorkbook.from_path(str(report[0]))
    summary = book.get_sheet_by_index(0).to_python()[3:]
    assert [row[0] for row in summary] == [_name(sid) for sid in EXPECTED_FILES]
    findings = book.get_sheet_by_index(1).to_python()[1:]
    assert [row[2] for row in findings] == [
        f.file_name for sid in EXPECTED_FILES for f in FINDINGS if f.submission_id == sid
    ]


def test_a_genuine_file_name_shows_as_written(report):
    summary, _ = _tables(_page(report))
    cell = summary[0].xpath("./td")[0]
    name = _only_bdi(cell)
    assert name.get("dir") == "ltr" and name.text_content() == GENUINE_NAME
    # the Arabic words are isolated inside it, so the date digits stay after them
    inner = name.xpath("./bdi")
    assert [b.text_content() for b in inner] == [ARABIC_WORDS]
    assert name.text == "NotesCC/Export_33494V_1APG-1_"
    assert inner[0].tail == "_24062024161205.xlsx"


def test_codes_rows_and_values_each_sit_in_a_bdi(report):
    summary, findings = _tables(_page(report))
    for row in summary:
        cells = row.xpath("./td")
        assert _only_bdi(cells[0]).get("dir") == "ltr"
        for count in cells[3:]:
            assert _only_bdi(count).text_content().isdigit()
    expected = [f for sid in EXPECTED_FILES for f in FINDINGS if f.submission_id == sid]
    for row, f in zip(findings, expected, strict=True):
        cells = row.xpath("./td")
        assert _only_bdi(cells[0]).text_content() == f.rule_id
        assert _only_bdi(cells[2]).text_content() == f.file_name
        places = (f.sheet, f.sheet_row, f.column_name, f.value)
        for cell, value in zip(cells[3:7], places, strict=True):
            if value is None:
                assert cell.text_content() == ""
            else:
                assert _only_bdi(cell).text_content() == str(value)
        if f.sheet_row is not None:
            assert _only_bdi(cells[4]).get("dir") == "ltr"


def test_inside_the_messages_every_code_and_number_is_isolated(report):
    _, findings = _tables(_page(report))
    seen_file = False
    for row in findings:
        arabic, french = row.xpath("./td")[7:9]
        # Arabic sentence: no Latin letter nor digit outside a <bdi>
        assert not LATIN_OR_DIGIT.search(_outside_bdi(arabic)), _outside_bdi(arabic)
        # French sentence: no Arabic word outside a <bdi>
        assert french.get("dir") == "ltr" and french.get("lang") == "fr"
        assert not ARABIC_LETTER.search(_outside_bdi(french)), _outside_bdi(french)
        for message in (arabic, french):
            texts = [b.text_content() for b in message.xpath("./bdi")]
            if GENUINE_NAME in message.text_content():
                assert GENUINE_NAME in texts  # the whole name in one isolate
                seen_file = True
    assert seen_file
    genuine = findings[0].xpath("./td")[7]
    assert "23" in [b.text_content() for b in genuine.xpath("./bdi")]  # the value
    assert "20" in [b.text_content() for b in genuine.xpath("./bdi")]  # the scale
    f001 = next(r for r in findings if r.xpath("./td")[0].text_content() == "F001")
    # a detail of several tokens reads left to right as one run
    assert "12 Mo > 10 Mo" in [b.text_content() for b in f001.xpath("./td")[7].xpath("./bdi")]


def test_school_code_and_date_are_isolated(report):
    page = _page(report)
    header = page.xpath("//body/p")[0]
    assert [b.text_content() for b in header.xpath(".//bdi")] == [SCHOOL, "2024-06-24 16:12"]


HOSTILE_NAME = "<script>alert(1)</script>_التربية.xlsx"
HOSTILE_VALUE = "<img src=x onerror=alert(1)>"
FORMULA = '=HYPERLINK("http://example.invalid","x")'


def test_what_a_school_sent_never_becomes_markup_or_a_formula(tmp_path: Path):
    submissions = [submission(1, HOSTILE_NAME, state="partially_accepted")]
    findings = [
        finding(1, HOSTILE_NAME, "R006", {"value": HOSTILE_VALUE, "column": "النوع",
                "allowed": "ذكر, أنثى"}, sheet="Sheet1", row=16, column="النوع",
                value=HOSTILE_VALUE),
        finding(1, HOSTILE_NAME, "R008", {"value": FORMULA, "column": "الرمز",
                "expected": "K100000123"}, sheet="Sheet1", row=17, column="الرمز",
                value=FORMULA),
    ]  # fmt: skip
    xlsx, page_path = write_school_report(tmp_path / "reports", SCHOOL, NOW, submissions, findings)
    page = lxml_html.fromstring(page_path.read_text(encoding="utf-8"))
    assert not page.xpath("//script") and not page.xpath("//img")
    assert not page.xpath("//@onerror")
    _, rows = _tables(page)
    assert _only_bdi(rows[0].xpath("./td")[2]).text_content() == HOSTILE_NAME
    assert _only_bdi(rows[0].xpath("./td")[6]).text_content() == HOSTILE_VALUE
    assert HOSTILE_VALUE in rows[0].xpath("./td")[7].text_content()
    book = load_workbook(xlsx)
    cells = [cell for row in book.worksheets[1].iter_rows() for cell in row]
    assert any(cell.value == FORMULA for cell in cells)
    assert all(cell.data_type != "f" for cell in cells)


def test_the_transfers_page_isolates_codes_years_and_dates(tmp_path: Path):
    from datetime import UTC

    from tasks.consolidate import Transfer, write_transfer_report

    transfer = Transfer(
        student_code="K100400123",
        school_year="2023/2024",
        school_kept="33494V",
        enrolled_kept=datetime(2024, 1, 8, 9, 30, tzinfo=UTC),
        school_left="27783Y",
        enrolled_left=datetime(2023, 9, 11, 8, 0, tzinfo=UTC),
        submission_kept=2,
        sheet_kept="Sheet1",
        row_kept=16,
        submission_left=1,
        sheet_left="Sheet2",
        row_left=17,
        listed_kept=date(2024, 1, 7),
        source_kept="file name",
        listed_left=date(2023, 9, 11),
        source_left="arrival",
    )
    _, page_path = write_transfer_report(tmp_path, [transfer], "2024-03-02")
    page = lxml_html.fromstring(page_path.read_text(encoding="utf-8"))
    (row,) = page.xpath("//tbody/tr")
    cells = row.xpath("./td")
    # the date that decided: the export's date, or the arrival's day and time
    shown = [_only_bdi(cell) for index, cell in enumerate(cells) if index not in (4, 7)]
    assert [b.text_content() for b in shown] == [
        "K100400123",
        "2023/2024",
        "33494V",
        "2024-01-07",
        "27783Y",
        "2023-09-11 08:00 UTC",
    ]
    assert all(b.get("dir") == "ltr" for b in shown)
    assert "nom du fichier" in cells[4].text_content()
    assert "arrivée" in cells[7].text_content()
    assert [b.text_content() for b in page.xpath("//body/p[1]/bdi")] == ["2024-03-02", "1"]

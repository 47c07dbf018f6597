"""One finding per rule and cell in a school's report: a NotesCC line is read as one row per
slot, so a bad pupil code used to be reported once per mark entered on his line."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import Path

import openpyxl
import polars as pl
from lxml import html as lxml_html
from sqlalchemy import select

from massar.home import init_home
from tasks.ingest import ingest_school, write_reports
from tasks.validate import one_per_cell
from warehouse.control import ControlDatabase, Finding

BAD_CODE = "S10020015"  # 8 digits: R001
FIRST_PUPIL_ROW = 18
MARK_COLUMNS = range(7, 17, 2)  # G, I, K, M, O: the mark of each (mark, absence) pair


def _marks_on_line(path: Path, row: int) -> int:
    sheet = openpyxl.load_workbook(path, read_only=True)["NotesCC"]
    values = [sheet.cell(row, column).value for column in MARK_COLUMNS]
    return sum(1 for value in values if isinstance(value, int | float))


def _notes_with_a_full_line(province: Path) -> Path:
    """A NotesCC workbook of the test province whose first pupil has at least 3 marks."""
    for path in sorted(province.glob("*/NotesCC/**/*.xlsx")):
        if _marks_on_line(path, FIRST_PUPIL_ROW) >= 3:
            return path
    raise AssertionError("the test province has no NotesCC line with 3 marks")


def test_a_bad_code_on_a_line_of_four_marks_is_one_finding(province: Path, tmp_path: Path):
    source = _notes_with_a_full_line(province)
    school = source.relative_to(province).parts[0]
    marks = _marks_on_line(source, FIRST_PUPIL_ROW)
    workbook = openpyxl.load_workbook(source)
    workbook["NotesCC"].cell(FIRST_PUPIL_ROW, 3).value = BAD_CODE
    settings = init_home(tmp_path / "home")
    folder = settings.inbox / school
    folder.mkdir(parents=True)
    target = folder / source.name
    workbook.save(target)

    outcome = ingest_school(settings, school, [target], folder)
    assert outcome.partially_accepted == 1
    assert outcome.rows_quarantined == marks  # every mark of the line is held back
    database = ControlDatabase(settings.resolved_database_url)
    try:
        with database.session() as session:
            findings = list(session.scalars(select(Finding)))
    finally:
        database.dispose()
    per_cell = Counter((f.sheet, f.sheet_row, f.column_name, f.rule_id) for f in findings)
    assert per_cell[("NotesCC", FIRST_PUPIL_ROW, "رقم التلميذ", "R001")] == 1
    assert set(per_cell.values()) == {1}
    assert outcome.errors == 1

    write_reports(settings, [school], datetime(2024, 3, 2, 9, 0))
    page = (settings.reports / school / f"rapport_{school}.html").read_text(encoding="utf-8")
    rows = lxml_html.fromstring(page).xpath("//tr[@class='error']")
    assert len(rows) == 1 and BAD_CODE in rows[0].text_content()


def test_one_per_cell_keeps_the_first_of_a_rule_and_cell_and_every_file_level_finding():
    findings = pl.DataFrame(
        {
            "submission_id": ["1", "1", "1", "1", "2", "1", "1"],
            "sheet": ["S", "S", "S", "S", "S", None, None],
            "sheet_row": [18, 18, 18, 19, 18, None, None],
            "column_name": ["code", "code", "mark", "code", "code", None, None],
            "value": ["x", "x", "25", "y", "x", None, None],
            "rule_id": ["R001", "R001", "R003", "R001", "R001", "F010", "F010"],
        }
    )
    kept = one_per_cell(findings)
    assert kept.height == 6
    assert kept.row(0) == findings.row(0) and kept.row(1) == findings.row(2)


def test_a_rejected_file_sent_again_is_reported_once(province: Path, tmp_path: Path):
    """A school resends a file the platform rejects (still wrong, other bytes): its report
    shows the latest attempt only; the earlier attempts stay in the control database."""
    school = "73578M"
    lines = (province / school / "guardians.csv").read_text(encoding="utf-8-sig").splitlines()
    header = lines[0].split(",")
    keep = [i for i, label in enumerate(header) if label != "صلة القرابة"]  # a required column
    settings = init_home(tmp_path / "home")
    folder = settings.inbox / school
    folder.mkdir(parents=True)
    for attempt in (5, 6, 7):
        rows = [",".join(line.split(",")[i] for i in keep) for line in lines[:attempt]]
        (folder / "guardians.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
        assert ingest_school(settings, school, [folder / "guardians.csv"], folder).rejected == 1
    write_reports(settings, [school], datetime(2024, 3, 2, 9, 0))
    page = (settings.reports / school / f"rapport_{school}.html").read_text(encoding="utf-8")
    rows = lxml_html.fromstring(page).xpath("//tr[@class='error']")
    assert len(rows) == 1 and "F008" in rows[0].text_content()
    database = ControlDatabase(settings.resolved_database_url)
    try:
        with database.session() as session:
            assert len(list(session.scalars(select(Finding)))) == 3  # nothing is lost
    finally:
        database.dispose()

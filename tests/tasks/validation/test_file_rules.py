"""File rules (F001-F012), one failing and one passing example each. The readers raise F001-F011
(a file refused whole, or a query on a file read all the same), the resends F012; the ingest
turns each into the sentence the school reads, which must read whole in both languages. The
readers' own tests (tests/connectors/) hold many more cases per rule."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import xlsxwriter

from connectors.school_files import FileRejected, findings_frame, read_submission
from schemas.datasets import GUARDIANS
from schemas.rules import MISSING
from tasks.ingest import _rejection, _render_findings
from tasks.resends import Hold, hold_finding, removes_too_much
from tasks.validation.file_rules import FILE_RULES
from tests.connectors.school_file_builders import (
    pupils,
    table_text,
    write_list_eleve,
    write_notes_cc,
    write_table_xlsx,
)

SCHOOL = "27783Y"
Case = tuple[Path, dict[str, Any]]  # a file and how it is submitted (read_submission's keywords)


def notes(tmp: Path, name: str = "notes.xlsx", **kwargs: Any) -> Path:
    """A clean NotesCC export: its subject name agrees with its subject code (0030)."""
    path = write_notes_cc(tmp / name, pupils(2), **kwargs)
    edited(path, "NotesCC", {"B12": "المعلوميات"})
    return path


def edited(path: Path, sheet: str, cells: dict[str, object]) -> Path:
    book = openpyxl.load_workbook(path)
    for cell, value in cells.items():
        book[sheet][cell] = value
    book.save(path)
    return path


def guardians(tmp: Path, headers: list[str], *, width: int = 0) -> Path:
    path = tmp / "guardians.xlsx"
    if not width:
        return write_table_xlsx(path, "Sheet1", headers, [["x"] * len(headers)])
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("Sheet1")
    sheet.write_row(0, 0, headers)
    sheet.write(1, width - 1, "x")
    book.close()
    return path


def truncated(tmp: Path) -> Case:
    path = notes(tmp)
    path.write_bytes(path.read_bytes()[:2000])
    return path, {}


def encrypted(tmp: Path) -> Case:
    path = tmp / "notes.xlsx"
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504
    directory = "EncryptionInfo".encode("utf-16-le") + b"\x00" * 50
    directory += "EncryptedPackage".encode("utf-16-le") + b"\x00" * 50
    path.write_bytes(header + directory + b"\x17" * 2048)
    return path, {}


def csv_file(tmp: Path, text: str) -> Case:
    path = tmp / "table.csv"
    path.write_text(text, encoding="utf-8")
    return path, {}


def level_label_cleared(tmp: Path) -> Case:
    path = write_list_eleve(tmp / "ListEleve.xlsx", {"1APIC-1": pupils(2)})
    return edited(path, "Sheet1", {"A8": None}), {}


def markers_cleared(tmp: Path) -> Case:
    path = notes(tmp)
    return edited(path, "NotesCC", {f"{c}15": None for c in "EGIK"}), {}


@dataclass(frozen=True)
class Example:
    failing: Callable[[Path], Case]
    passing: Callable[[Path], Case]


ALL_GUARDIAN_HEADERS = list(GUARDIANS.headers_ar)
EXAMPLES = {
    "F001": Example(truncated, lambda tmp: (notes(tmp), {})),
    "F002": Example(encrypted, lambda tmp: (notes(tmp), {})),
    "F003": Example(
        lambda tmp: csv_file(tmp, "nom,prenom,age\r\nA,B,12\r\n"),
        lambda tmp: csv_file(tmp, table_text(ALL_GUARDIAN_HEADERS, [["x"] * 10])),
    ),
    "F004": Example(
        lambda tmp: (notes(tmp, school_code="11111A"), {}), lambda tmp: (notes(tmp), {})
    ),
    "F005": Example(
        lambda tmp: (write_notes_cc(tmp / "notes.xlsx", []), {}), lambda tmp: (notes(tmp), {})
    ),
    "F006": Example(
        lambda tmp: (guardians(tmp, ALL_GUARDIAN_HEADERS, width=10_000), {}),
        lambda tmp: (guardians(tmp, ALL_GUARDIAN_HEADERS, width=len(ALL_GUARDIAN_HEADERS)), {}),
    ),
    "F007": Example(
        lambda tmp: (notes(tmp), {"file_name": "../../etc/notes.xlsx"}),
        lambda tmp: (notes(tmp), {"file_name": "export_notesCC_1APIC-1_0030.xlsx"}),
    ),
    "F008": Example(
        lambda tmp: (guardians(tmp, [h for h in ALL_GUARDIAN_HEADERS if h != "يتيم"]), {}),
        lambda tmp: (guardians(tmp, ALL_GUARDIAN_HEADERS), {}),
    ),
    "F009": Example(
        level_label_cleared,
        lambda tmp: (write_list_eleve(tmp / "ListEleve.xlsx", {"1APIC-1": pupils(2)}), {}),
    ),
    "F010": Example(
        lambda tmp: (write_notes_cc(tmp / "notes.xlsx", pupils(2)), {}),  # الرياضيات ≠ 0030
        lambda tmp: (notes(tmp), {}),
    ),
    "F011": Example(markers_cleared, lambda tmp: (notes(tmp), {})),
}
DECLARED = {rule.rule_id: rule for rule in FILE_RULES}
BY_THE_READERS = sorted(EXAMPLES)


def assert_reads_whole(finding: dict[str, Any]) -> None:
    assert MISSING not in finding["message_fr"], finding["message_fr"]
    assert MISSING not in finding["message_ar"], finding["message_ar"]


def test_every_file_rule_has_its_examples():
    assert {*EXAMPLES, "F012"} == set(DECLARED)


@pytest.mark.parametrize("rule_id", BY_THE_READERS)
def test_failing_example(rule_id: str, tmp_path: Path):
    path, submitted = EXAMPLES[rule_id].failing(tmp_path)
    severity = DECLARED[rule_id].severity
    if severity == "error":  # the file is refused whole
        with pytest.raises(FileRejected) as refused:
            read_submission(path, school_code=SCHOOL, **submitted)
        assert refused.value.rule_id == rule_id
        finding = _rejection(refused.value, path.name, SCHOOL)
    else:  # a query: the file is read all the same
        result = read_submission(path, school_code=SCHOOL, **submitted)
        assert result.rows_read > 0
        frame = findings_frame(result.findings)
        assert frame["rule_id"].to_list() == [rule_id]
        (finding,) = _render_findings(frame, {"file": path.name, "school": SCHOOL})
    assert (finding["rule_id"], finding["severity"]) == (rule_id, severity)
    assert_reads_whole(finding)


@pytest.mark.parametrize("rule_id", BY_THE_READERS)
def test_passing_example(rule_id: str, tmp_path: Path):
    path, submitted = EXAMPLES[rule_id].passing(tmp_path)
    result = read_submission(path, school_code=SCHOOL, **submitted)
    assert result.rows_read > 0 and result.findings == []


def test_f012_a_resend_removing_much_is_held_with_a_sentence_that_reads_whole():
    assert removes_too_much(627, 4, share=0.3)
    finding = hold_finding("guardians.csv", 12, Hold(627, 4))
    assert (finding["rule_id"], finding["severity"]) == ("F012", DECLARED["F012"].severity)
    assert_reads_whole(finding)
    assert "627" in finding["message_fr"] and "99 %" in finding["message_fr"]


def test_f012_a_resend_keeping_most_lines_is_applied():
    assert not removes_too_much(627, 600, share=0.3)
    assert not removes_too_much(0, 0, share=0.3)  # the first file of its scope

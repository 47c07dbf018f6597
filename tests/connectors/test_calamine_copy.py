"""The copy of an xlsx that python-calamine is given (connectors/reading/calamine_copy.py) reads
as the school's own bytes: the same frames, layouts and findings for sound workbooks, the same
refusal (rule and detail) for workbooks whose worksheet XML is damaged where calamine's
merged-cells pass, which the copy skips, would have read it."""

from __future__ import annotations

import io
import random
import re
import zipfile
from pathlib import Path

import pytest
from python_calamine import CalamineWorkbook

from connectors import school_files
from connectors.reading import calamine_copy as calamine_copy_module
from connectors.reading.calamine_copy import calamine_copy
from connectors.reading.workbook_safety import checked_worksheets
from connectors.school_files import FileRejected, read_submission

GENUINE = sorted(
    (Path(__file__).resolve().parents[1] / "fixtures" / "massar_samples").glob("*.xlsx")
)
SCHOOL = "99999Z"
SHEET = "xl/worksheets/sheet1.xml"


def _read(data: bytes) -> tuple[object, ...]:
    try:
        result = read_submission(Path("export.xlsx"), school_code=SCHOOL, data=data)
    except FileRejected as exc:
        return ("rejected", exc.rule_id, exc.detail, exc.column, exc.value)
    frame = result.frame
    columns = [(c, str(frame[c].dtype), frame[c].to_list()) for c in frame.columns]
    return ("read", result.dataset, columns, repr(result.layouts), repr(result.findings))


def _read_without_copy(data: bytes, monkeypatch) -> tuple[object, ...]:
    with monkeypatch.context() as patch:
        patch.setattr(school_files, "calamine_copy", lambda data, sheets: data)
        return _read(data)


def _with_sheet(data: bytes, xml: bytes) -> bytes:
    """The workbook `data` with its first worksheet's XML replaced (a sound zip)."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as book:
        for info in source.infolist():
            book.writestr(info, xml if info.filename == SHEET else source.read(info))
    return out.getvalue()


@pytest.mark.parametrize("path", GENUINE, ids=lambda p: p.name)
def test_the_copy_skips_the_merged_cells_and_reads_as_the_original(path, monkeypatch):
    data = path.read_bytes()
    copy = calamine_copy(data, checked_worksheets(data))
    assert copy != data  # a NotesCC marks sheet is copied
    with CalamineWorkbook.from_filelike(io.BytesIO(data)) as book:
        original = book.get_sheet_by_index(0)
        assert original.merged_cell_ranges  # the export's merged labels
        cells = original.to_python(skip_empty_area=False)
    with CalamineWorkbook.from_filelike(io.BytesIO(copy)) as book:
        copied = book.get_sheet_by_index(0)
        assert copied.merged_cell_ranges == []  # calamine stopped at the empty <mergeCells>
        assert copied.to_python(skip_empty_area=False) == cells
    assert _read(data) == _read_without_copy(data, monkeypatch)
    assert _read(data)[0] == "read"


# Damage where only calamine's merged-cells pass reads (after </sheetData>), where both passes
# read, and a comment that could hide a tag: each gives the refusal (or read) the original gives.
_DAMAGES = (
    (b'<mergeCell ref="', b'<mergeCell ref="<'),
    (b'<mergeCell ref="', b'<mergeCell ref="&'),
    (b'<mergeCell ref="', b'<mergeCell ref="\xff'),
    (b'<mergeCell ref="', b'<mergeCell rf="'),
    (b"<mergeCells", b"<x/><mergeCells"),
    (b"<mergeCells", b"<x a=1/><mergeCells"),
    (b"<mergeCells", b"<!-- c --><mergeCells"),
    (b"</mergeCells>", b"</mergeCell>"),
    (b"<sheetProtection", b"<sheetProtection <"),
    (b"</sheetData>", b"</sheetData><![CDATA[</sheetData>]]>"),
    (b"<sheetData>", b"<sheetData><!-- </sheetData> -->"),
    (b"<row ", b"<row <"),
    (b"</row>", b"</rw>"),
    (b"<sheetData>", b'<sheetData a="1">'),
)


@pytest.mark.parametrize(("old", "new"), _DAMAGES)
def test_damaged_sheet_xml_gets_the_originals_verdict(old, new, monkeypatch):
    data = GENUINE[0].read_bytes()
    xml = zipfile.ZipFile(io.BytesIO(data)).read(SHEET)
    assert old in xml
    damaged = _with_sheet(data, xml.replace(old, new, 1))
    assert _read(damaged) == _read_without_copy(damaged, monkeypatch)


def test_damage_anywhere_in_the_sheet_xml_gets_the_originals_verdict(monkeypatch):
    """One character inserted at 60 seeded places of a genuine marks sheet, a third of them
    after </sheetData> where only the merged-cells pass reads."""
    data = GENUINE[0].read_bytes()
    xml = zipfile.ZipFile(io.BytesIO(data)).read(SHEET)
    tail = xml.index(b"</sheetData>")
    rng = random.Random(7)
    for i in range(60):
        at = rng.randrange(tail, len(xml)) if i % 3 == 0 else rng.randrange(len(xml))
        damaged = _with_sheet(data, xml[:at] + bytes([rng.choice(b'<>"&/=!x')]) + xml[at:])
        assert _read(damaged) == _read_without_copy(damaged, monkeypatch), at


def test_possessive_merges_rule_matches_as_its_greedy_form():
    """The rule for what follows </sheetData> (`_TO_MERGES_END_RE`) is written with possessive
    repeats, which never give back what they took: it must accept exactly what the same
    pattern with greedy repeats accepts, up to the same end, or a copy would be made (or not)
    where the original reads otherwise. Compared on the genuine sheets' tails and 3,000 seeded
    damaged ones (a character of the rule's alphabet inserted, removed or replaced, spaces
    among them)."""
    possessive = calamine_copy_module._TO_MERGES_END_RE
    greedy = re.compile(
        possessive.pattern.replace(b"*+", b"*").replace(b"++", b"+").replace(b"}+", b"}"),
        possessive.flags,
    )
    assert greedy.pattern != possessive.pattern
    tails = []
    for path in GENUINE:
        xml = zipfile.ZipFile(path).read(SHEET)
        tails.append(xml[xml.index(b"</sheetData>") + len(b"</sheetData>") :])
    alphabet = b' \t\n<>/="!:-_.AZaz019mergeClsef'
    rng = random.Random(17)
    cases = list(tails)
    for _ in range(3000):
        tail = bytearray(rng.choice(tails)[: rng.choice((80, 400, 2000))] + b"</mergeCells>")
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(tail))
            how = rng.randrange(3)
            if how == 0:
                tail[at:at] = bytes([rng.choice(alphabet)])
            elif how == 1:
                del tail[at]
            else:
                tail[at] = rng.choice(alphabet)
        cases.append(bytes(tail))
    ends = []
    for tail in cases:
        a, b = possessive.match(tail), greedy.match(tail)
        assert (a and a.end()) == (b and b.end()), tail
        ends.append(a and a.end())
    assert sum(1 for end in ends if end) > 300  # accepted tails among them, not only refusals

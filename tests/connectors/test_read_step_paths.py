"""The read step's shortcuts (issue 17, item 1) give what the plain code they replace gives:

- a CSV's blank lines found by joining its text cells, as `is_blank` finds them;
- a table's school codes counted in Python, as the polars counting did (F004 and its value);
- NotesCC's slot columns interleaved by slice assignment, pupil-major;
- NotesCC's technical row read cell by cell, as from the whole row rendered, and found as
  the first row holding a subject token whether its rows are remembered or not;
- NotesCC's marker row and its slot tokens, noted in each row's remembered facts, as the
  scan of every cell finds them;
- ListEleve's repeated header rows still skipped when pupils' ASCII codes skip the label key;
- NotesCC's layout slots, made once per export, name each file's own header row;
- an ASCII text's label key made without the Unicode passes, as label_key makes it;
- a metadata label's value, remembered by its row and the row above, is the one found afresh,
  whatever the type of the cells (1.0, 1 and True are equal keys but render apart).
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from itertools import chain

import polars as pl
import pytest
from python_calamine import CalamineWorkbook

from connectors.reading import cells, metadata_location, notes_cc, notes_slots, table_files
from connectors.reading.cells import _label_key, is_blank, key, render_all
from connectors.reading.layout_detection import classify_sheet
from connectors.reading.liste_eleve import _LE_CODE, read_students_sheet, students_columns
from connectors.reading.metadata_location import HIGHER, LIST_FIELDS, LOWER, NOTES_FIELDS
from connectors.reading.read_result import FileRejected, Located
from connectors.reading.reference import reference
from connectors.reading.table_headers import match_table_header
from connectors.school_files import read_submission
from schemas.datasets import DATASETS
from schemas.text import clean_text, label_key
from tests.connectors.school_file_builders import pupils, write_list_eleve, write_notes_cc

SCHOOL = "27783Y"


def test_csv_blank_lines_found_as_is_blank():
    """Records of text cells, some blank ("", spaces, tabs, no-break spaces), read with and
    without `text_cells`: the same rows kept, the same columns."""
    dataset = DATASETS["guardians"]
    header = list(dataset.headers_ar)
    match = match_table_header(header)
    assert match is not None
    blanks = ["", " ", "\t", "\xa0", "\u3000", "  \r"]
    texts = ["x", " y ", "0", "27783Y", "ا"]
    rnd = random.Random(17)
    for _ in range(200):
        records = [header]
        for _ in range(rnd.randint(0, 12)):
            width = rnd.randint(0, len(header) + 2)
            pool = blanks if rnd.random() < 0.4 else blanks + texts
            records.append([rnd.choice(pool) for _ in range(width)])
        fast, plain = table_files.empty_columns(dataset), table_files.empty_columns(dataset)
        numbers = range(1, len(records) + 1)
        table_files.table_columns(match, records, 1, numbers, "", fast, text_cells=True)
        table_files.table_columns(match, records, 1, numbers, "", plain)
        assert fast == plain, records
        kept = [n for n, row in zip(numbers, records, strict=True) if n > 1 and not is_blank(row)]
        assert fast["sheet_row"] == kept


def _polars_verdict(values: list[str | None], school_code: str) -> tuple[str, str | None] | None:
    """F004 as decided before: the column's codes counted by polars."""
    frame = pl.DataFrame({"school_code": values}, schema={"school_code": pl.Utf8})
    mine = clean_text(school_code).upper()
    counted = frame.get_column("school_code").drop_nulls().value_counts(sort=False)
    times = dict(counted.iter_rows())
    codes: Counter[str] = Counter()
    for value in frame.get_column("school_code").drop_nulls().unique(maintain_order=True):
        code = clean_text(value).upper()
        if code:
            codes[code] += times[value]
    if not codes or mine in codes:
        return None
    plausible = Counter({c: n for c, n in codes.items() if table_files._SCHOOL_CODE_RE.match(c)})
    if plausible:
        return "F004", plausible.most_common(1)[0][0]
    return None


def _verdict(values: list[str | None], school_code: str) -> tuple[str, str | None] | None:
    try:
        table_files.check_school_code_values(values, school_code)
    except FileRejected as exc:
        return exc.rule_id, exc.value
    return None


def test_school_codes_counted_as_polars_counted():
    """Columns of the school's code (spaced, lower case), other schools' codes (ties broken by
    first appearance), texts that are no code and nulls: the same verdict and value."""
    pool = [None, "", " ", SCHOOL, " 27783y ", "11111A", "22222B", "22222b", "abc", "123"]
    rnd = random.Random(4)
    rejected = 0
    for _ in range(500):
        values = [rnd.choice(pool) for _ in range(rnd.randint(0, 8))]
        expected = _polars_verdict(values, SCHOOL)
        assert _verdict(values, SCHOOL) == expected, values
        rejected += expected is not None
    assert rejected > 50  # the draw does reach F004
    assert _verdict(["11111A", "22222B", "22222B", "11111A"], SCHOOL) == ("F004", "11111A")
    frame = pl.DataFrame({"school_code": ["22222B", None]})
    with pytest.raises(FileRejected) as err:
        table_files.check_school_codes(frame, SCHOOL)
    assert (err.value.rule_id, err.value.value) == ("F004", "22222B")


def test_slot_columns_interleaved_pupil_major():
    rnd = random.Random(3)
    for slots in range(6):
        pupils = rnd.randint(0, 5)
        per_slot = [[rnd.choice([None, "7", "12.5"]) for _ in range(pupils)] for _ in range(slots)]
        expected = list(chain.from_iterable(zip(*per_slot, strict=True))) if slots else []
        assert notes_cc._interleaved(per_slot) == expected


def _technical_from_rendered_row(r: int, row: list[object], subject_at: int) -> dict[str, Located]:
    """The technical row's cells as read before: from the whole row rendered."""
    texts = render_all(row)
    clean = notes_cc._clean
    subject = notes_cc._SUBJECT_TOKEN_RE.match(clean(texts[subject_at] or ""))
    school_at = next(
        (
            i
            for i, text in enumerate(texts)
            if text is not None and notes_cc._SCHOOL_CODE_RE.match(clean(text).upper())
        ),
        2,
    )

    def at(i: int) -> Located:
        text = texts[i] if i < len(texts) else None
        return Located(text, notes_cc.cell_address(r, i) if text is not None else None)

    return {
        "school_code": at(school_at),
        "subject_code": Located(
            subject.group(1) if subject else None, notes_cc.cell_address(r, subject_at)
        ),
        "session": at(6),
        "level_code": at(14),
    }


def test_technical_row_read_as_from_the_rendered_row():
    """Rows of codes, numbers, zeros, False and blanks around a subject token: the same school
    code (first code-shaped cell, else C5), session, level code and cells."""
    pool = ["", "", " ", 0.0, 0, False, 2.0, 16.0, "1103", SCHOOL, " 27783y ", "11111A", "x"]
    rnd = random.Random(5)
    for _ in range(500):
        row: list[object] = [rnd.choice(pool) for _ in range(rnd.randint(1, 20))]
        subject_at = rnd.randrange(len(row))
        row[subject_at] = rnd.choice(["#0503#", " #0101# ", "#12#"])
        r = rnd.randint(0, 6)
        assert notes_cc._technical(r, row, subject_at) == _technical_from_rendered_row(
            r, row, subject_at
        ), row


def _technical_row_scanned(rows: list[list[object]], header_row: int) -> dict[str, Located]:
    """The technical row as found before: every cell of each row above the header looked at."""
    for r, row in enumerate(rows[:header_row]):
        for i, c in enumerate(row):
            if isinstance(c, str) and notes_cc._SUBJECT_TOKEN_RE.match(c.strip()):
                return notes_cc._technical(r, row, i)
    return {}


def test_technical_row_found_as_by_scanning_every_cell():
    """Blocks of rows with and without a subject token (as text, among numbers, zeros, False,
    blanks and other markers), read in turn (rows remembered) and each with nothing
    remembered: the technical row found is the first row holding a token, at its first token."""
    pool: list[object] = ["", "", " ", 0.0, False, 1.0, True, 16.0, "#1#", "#100#", "x", "sgs"]
    tokens = ["#0503#", " #0101# ", "#12#", "#0503"]
    rnd = random.Random(11)
    blocks = []
    for _ in range(400):
        rows = [[rnd.choice(pool) for _ in range(rnd.randint(0, 8))] for _ in range(6)]
        for _ in range(rnd.randint(0, 2)):
            row = rows[rnd.randrange(6)]
            if row:
                row[rnd.randrange(len(row))] = rnd.choice(tokens)
        blocks += [rows, [list(row) for row in rows[::-1]]]
    for rows in blocks:
        cells._FACTS.clear()
        header_row = rnd.randint(0, 6)
        expected = _technical_row_scanned(rows, header_row)
        assert notes_cc.technical_cells(rows, header_row) == expected, rows
        assert notes_cc.technical_cells(rows, header_row) == expected, rows  # remembered
    remembered = [notes_cc.technical_cells(rows, 5) for rows in blocks]
    assert remembered == [_technical_row_scanned(rows, 5) for rows in blocks]
    assert sum(1 for found in remembered if found) > 100


def _slot_tokens_scanned(rows: list[list[object]], header_row: int):
    """The marker row as found before: the rows above the header scanned upwards, each cell of
    a non-empty row matched, the tokens of the first row holding one."""
    for r in range(min(header_row, len(rows)) - 1, -1, -1):
        row = rows[r]
        if row.count("") != len(row) and any(
            type(c) is str and c and notes_slots._SLOT_TOKEN_RE.match(c.strip()) for c in row
        ):
            tokens = {
                i: c.strip()
                for i, c in enumerate(row)
                if type(c) is str and c and notes_slots._SLOT_TOKEN_RE.match(c.strip())
            }
            return r, tokens
    return None


def test_slot_tokens_found_as_by_scanning_every_cell():
    """Blocks of rows with and without slot markers (among numbers, their twins of another
    type, blanks, subject tokens), read in turn (each row's tokens noted in its facts,
    remembered by its cells, the layout detection's lookups made before) and with nothing
    remembered: the same marker row and tokens as the scan of every cell."""
    pool: list[object] = ["", "", " ", 0.0, False, 1.0, True, 1, "x", "#0503#", "#1", "1#"]
    markers = ["#1#", " #2# ", "#100#", "#12#", "#4#"]
    rnd = random.Random(13)
    blocks = []
    for _ in range(400):
        rows = [[rnd.choice(pool) for _ in range(rnd.randint(0, 8))] for _ in range(6)]
        for _ in range(rnd.randint(0, 3)):
            row = rows[rnd.randrange(6)]
            if row:
                row[rnd.randrange(len(row))] = rnd.choice(markers)
        blocks += [rows, [list(row) for row in rows[::-1]]]
    for rows in blocks:
        header_row = rnd.randint(0, 6)
        expected = _slot_tokens_scanned(rows, header_row)
        cells._FACTS.clear()
        assert notes_slots.slot_tokens(cells.SheetRows(rows), header_row) == expected, rows
        classify_sheet(rows)  # the rows' facts looked up (and remembered) before
        assert notes_slots.slot_tokens(cells.SheetRows(rows), header_row) == expected, rows
    remembered = [notes_slots.slot_tokens(cells.SheetRows(rows), 6) for rows in blocks]
    assert remembered == [_slot_tokens_scanned(rows, 6) for rows in blocks]
    assert sum(1 for found in remembered if found) > 100


def test_list_eleve_repeated_header_rows_skipped(tmp_path):
    """A ListEleve sheet with its header row copied among the pupils (printed page headers),
    as written and with its code label spelt differently: those rows are no pupils; every pupil
    (ASCII codes) is read."""
    path = write_list_eleve(tmp_path / "ListEleve.xlsx", {"1APIC-1": pupils(4)})
    rows = CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0).to_python()
    header_row = classify_sheet(rows).header_row
    header = rows[header_row]
    at = next(i for i, c in enumerate(header) if isinstance(c, str) and key(c) == _LE_CODE)
    variant = list(header)
    variant[at] = f" {header[at]} :"
    rows[header_row + 2 : header_row + 2] = [list(header), variant]
    out = students_columns()
    read_students_sheet("Sheet1", rows, header_row, out)
    assert len(out["student_code"]) == 4
    assert all(code.isascii() for code in out["student_code"])
    assert header_row + 3 not in out["sheet_row"] and header_row + 4 not in out["sheet_row"]


def test_notes_cc_layout_slots_follow_each_files_header_row(tmp_path):
    """The slots a NotesCC layout describes (label cells, columns, tokens) are made once per
    export: files with their header at different rows, read in turn, each name their own
    rows, as a read with nothing remembered does."""
    paths = [
        write_notes_cc(tmp_path / "a.xlsx", pupils(2), school_code=SCHOOL),
        write_notes_cc(tmp_path / "b.xlsx", pupils(2), school_code=SCHOOL, header_row=17),
        write_notes_cc(tmp_path / "c.xlsx", pupils(3), school_code=SCHOOL, tests=2),
    ]
    remembered = [read_submission(p, school_code=SCHOOL).layouts for p in paths + paths]
    fresh = []
    for p in paths + paths:
        notes_cc._header_layout.cache_clear()
        fresh.append(read_submission(p, school_code=SCHOOL).layouts)
    assert remembered == fresh
    first, moved = remembered[0][0], remembered[1][0]
    assert first.slots[0].label_cells.endswith(str(first.header_rows[0]))
    assert moved.slots[0].label_cells.endswith(str(moved.header_rows[0]))
    assert first.header_rows[0] != moved.header_rows[0]
    assert first.columns == moved.columns and first.columns is not moved.columns


def _twin(cell: object) -> object:
    """An equal number of another type (an equal key), which renders apart: 1.0 ("1") and
    True ("TRUE"), 0.0 and False, True and 1."""
    t = type(cell)
    if t is float and cell in (0.0, 1.0):
        return bool(cell)
    if t is bool:
        return int(cell)
    return cell


def _metadata_blocks(rnd: random.Random, fields, values: list[object]) -> list[list[list[object]]]:
    """Blocks of rows above a header with the same label rows (some of `fields`' labels, at
    times as "label: value" in one cell, among values), a row of values or a blank row above
    each: the blocks differ by the rows above the label rows, by a blank row on top (every
    row one lower), by their label rows' values, and each has a twin with its numbers of
    another type."""
    label_rows = []
    for _ in range(rnd.randint(1, 4)):
        row = [rnd.choice(values) if rnd.random() < 0.25 else "" for _ in range(12)]
        for c in rnd.sample(range(1, 11), rnd.randint(1, 3)):
            f = rnd.choice(fields)
            row[c] = f.label if rnd.random() < 0.85 else f"{f.label}: {rnd.choice(values)}"
        label_rows.append((row, rnd.random() < 0.3))
    blocks = []
    for _ in range(5):
        rows: list[list[object]] = [[""] * 12] if rnd.random() < 0.3 else []
        redraw = rnd.random() < 0.3
        for label_row, blank_above in label_rows:
            above = [rnd.choice(values) if rnd.random() < 0.6 else "" for _ in range(12)]
            rows.append([""] * 12 if blank_above else above)
            row = list(label_row)
            if redraw:
                at = rnd.randrange(12)
                row[at] = rnd.choice(values) if row[at] not in values else row[at]
            rows.append(row)
        blocks += [rows, [[_twin(cell) for cell in row] for row in rows]]
    return blocks


def test_metadata_values_remembered_by_row_are_found_afresh():
    """Metadata blocks read in turn (each label row's values remembered by the row and the row
    above) give what each gives read with nothing remembered: blocks whose label rows are the
    same and whose rows above or numbers' types (1.0, 1, True; 0.0, 0, False) differ."""
    values: list[object] = ["", " ", "2023/2024", "1APIC-1", "3ASCG-2", "السنة الأولى ابتدائي"]
    values += ["بنحدو مراد", "الدورة الثانية", "1APG", 1.0, 1, True, 0.0, 0, False, -0.0]
    values += [2023.0, dt.date(2024, 1, 8), dt.datetime(2024, 1, 8, 9, 30), "x :", "أكاديمية :"]
    rnd = random.Random(29)
    ref = reference()
    cases = []
    for _ in range(150):
        fields = NOTES_FIELDS if rnd.random() < 0.5 else LIST_FIELDS
        side = rnd.choice((LOWER, HIGHER))
        cases += [(rows, fields, side) for rows in _metadata_blocks(rnd, fields, values)]
    fresh = []
    for rows, fields, side in cases:
        metadata_location._PLACEMENTS.clear()
        cells._FACTS.clear()
        fresh.append(metadata_location.locate_metadata(rows, len(rows), fields, side, "h", ref))
    metadata_location._PLACEMENTS.clear()
    for _ in range(2):
        for (rows, fields, side), expected in zip(cases, fresh, strict=True):
            found = metadata_location.locate_metadata(rows, len(rows), fields, side, "h", ref)
            assert found == expected, rows
    read = {v.value for found in fresh for v in found.values.values()}
    assert {"TRUE", "1", "0", "FALSE", "08/01/2024"} <= read


def test_ascii_label_keys_as_label_key_makes_them():
    """ASCII texts (every ASCII character, whitespace runs and the separators str.split knows,
    colons, letters of both cases, digits), and a few others: the same key as label_key."""
    named = ["ID", " Code : ", "CNE:", "x\x1cy\x1f", "a\tb\n\x0bc", "#0501#", "3477aa6e-82cb", ""]
    named += ["\x85x", "é", "A\u00a0B", "ID：", "رقم التلميذ :"]  # not ASCII: label_key itself
    alphabet = [chr(i) for i in range(128)] + [" ", ":", "\t", "A", "z"] * 8
    rnd = random.Random(23)
    texts = named + ["".join(rnd.choices(alphabet, k=rnd.randint(0, 14))) for _ in range(20000)]
    for text in texts:
        assert _label_key(text) == label_key(text), repr(text)

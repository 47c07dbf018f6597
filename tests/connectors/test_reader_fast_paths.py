"""The reader's fast paths give what the plain implementations they replace give.

- `check_zip` reads the zip directory with struct/zlib and hands anything unusual to the
  `zipfile` implementation (`_check_zip_module`): same verdict on clean and damaged archives;
- `render_all` (column rendering with a memo for numbers) is `[render(v) for v in values]`;
- frames built through polars' native constructors equal the public API's;
- NotesCC rows: blank rows skipped, rows with a stray value kept, as before the column-wise
  rewrite;
- the memos of rows (`row_index`) and of NotesCC header rows (`_header_layout`) give what the
  plain functions give, whatever was read before.
"""

from __future__ import annotations

import datetime as dt
import random
import unicodedata

import polars as pl
import pytest
from python_calamine import CalamineWorkbook

from connectors.reading import (
    cells,
    limits,
    metadata_location,
    notes_cc,
    read_frame,
    workbook_safety,
)
from connectors.reading.cells import render, render_all, row_index
from connectors.reading.csv_text import decode_csv, sniff_delimiter
from connectors.reading.layout_detection import classify_sheet
from connectors.reading.notes_cc import read_marks_sheet
from connectors.reading.read_frame import Grid, build_frame, grid_frame
from connectors.school_files import FileRejected, read_submission, safe_file_name
from tests.connectors.school_file_builders import (
    pupils,
    write_list_eleve,
    write_notes_cc,
    write_table_xlsx,
)

SCHOOL = "27783Y"


def _verdict(check, data: bytes) -> object:
    try:
        check(data)
    except FileRejected as exc:
        return (exc.rule_id, exc.detail)
    except Exception as exc:  # the same exception type either way
        return type(exc).__name__
    return None


@pytest.fixture(scope="module")
def workbooks(tmp_path_factory) -> list[bytes]:
    tmp = tmp_path_factory.mktemp("zips")
    paths = [
        write_notes_cc(tmp / "n.xlsx", pupils(30)),
        write_list_eleve(tmp / "l.xlsx", {"1APIC-1": pupils(40), "1APIC-2": pupils(5)}),
        write_table_xlsx(tmp / "t.xlsx", "Feuil1", ["a", "b"], [[1, "x"]] * 300),
    ]
    return [p.read_bytes() for p in paths]


def test_zip_fast_path_takes_clean_workbooks(workbooks, monkeypatch):
    def refuse(data: bytes) -> None:
        raise AssertionError("the zipfile path was used for a clean workbook")

    monkeypatch.setattr(workbook_safety, "_check_zip_module", refuse)
    for data in workbooks:
        workbook_safety.check_zip(data)


def test_zip_fast_path_agrees_with_zipfile_on_damaged_archives(workbooks):
    rnd = random.Random(2024)
    verdicts = set()
    for i in range(1500):
        data = bytearray(rnd.choice(workbooks))
        kind = i % 4
        if kind == 0:  # flipped bytes anywhere
            for _ in range(rnd.randint(1, 4)):
                data[rnd.randrange(len(data))] = rnd.randrange(256)
        elif kind == 1:  # truncated
            data = data[: rnd.randrange(len(data))]
        elif kind == 2:  # a central directory or local header damaged
            pos = data.rfind(b"PK\x01\x02") if rnd.random() < 0.5 else data.find(b"PK\x03\x04", 1)
            for _ in range(rnd.randint(1, 3)):
                j = pos + rnd.randrange(46)
                if 0 <= j < len(data):
                    data[j] = rnd.randrange(256)
        else:  # bytes appended
            data += b"x" * rnd.randrange(1, 5)
        fast = _verdict(workbook_safety.check_zip, bytes(data))
        assert fast == _verdict(workbook_safety._check_zip_module, bytes(data)), i
        verdicts.add(fast if fast is None else fast[0])
    assert None in verdicts and "F001" in verdicts


def test_zip_fast_path_leaves_names_with_a_nul_byte_to_zipfile(workbooks):
    """An entry name holding a NUL byte (zipfile cuts the name there) is left to the zipfile
    module, wherever the byte stands, in the central directory's copy of the name; the same
    names without it take the fast path."""
    data = workbooks[0]
    names = []
    pos = data.find(b"PK\x01\x02")
    while pos >= 0:
        length = int.from_bytes(data[pos + 28 : pos + 30], "little")
        names.append((pos + 46, length))
        pos = data.find(b"PK\x01\x02", pos + 46 + length)
    assert len(names) > 3 and workbook_safety._zip_entries(data) is not None
    for start, length in names:
        for at in (start, start + length // 2, start + length - 1):
            damaged = data[:at] + b"\x00" + data[at + 1 :]
            assert workbook_safety._zip_entries(damaged) is None, (start, at)
            swapped = data[:at] + b"_" + data[at + 1 :]  # another byte: still the fast path
            assert workbook_safety._zip_entries(swapped) is not None, (start, at)


def test_zip_limits_apply_on_the_fast_path(workbooks, monkeypatch):
    monkeypatch.setattr(limits, "MAX_ZIP_ENTRIES", 3)
    assert _verdict(workbook_safety.check_zip, workbooks[0])[0] == "F006"
    monkeypatch.setattr(limits, "MAX_ZIP_ENTRIES", 1000)
    monkeypatch.setattr(limits, "MAX_ROWS", 10)
    assert _verdict(workbook_safety.check_zip, workbooks[0]) == (
        "F006",
        "sheet 47 rows tall > 10",
    )


FLOATS = [
    0.0,
    -0.0,
    1.0,
    12.0,
    16.25,
    0.1 + 0.2,
    1e15,
    9999999999999998.0,
    1e16,
    2.5e20,
    1e-05,
    1.5e-7,
    float("inf"),
    float("-inf"),
    float("nan"),
    2135013.0,
]


def test_render_numbers():
    assert [render(v) for v in (12.0, 16.25, -0.0, 1e16, 1e-05, 2.5e20, 1e15)] == [
        "12",
        "16.25",
        "0",
        "10000000000000000",
        "0.00001",
        "250000000000000000000",
        "1000000000000000",
    ]


def test_render_all_is_render_cell_by_cell():
    others = ["", " ", "\t", "x", " x ", "مبرر", None, 0, 7, True, False]
    others += [dt.date(2017, 4, 9), dt.datetime(2017, 4, 9, 8, 5), dt.time(8, 5)]
    rnd = random.Random(7)
    pool = FLOATS + others
    for _ in range(3000):
        kinds = rnd.sample(pool, rnd.randint(1, 4))
        values = tuple(rnd.choice(kinds) for _ in range(rnd.randint(0, 10)))
        expected = [render(v) for v in values]
        assert render_all(values) == expected, values
        assert render_all(list(values)) == expected, values  # second time: from the memo


def _probe_grid(outer: int, inner: int) -> Grid:
    grid = Grid(outer, inner)
    grid.constant("sheet", "NotesCC")
    grid.per_outer("sheet_row", list(range(18, 18 + outer)))
    grid.per_outer("student_code", [None if i == 1 else f"K{i}" for i in range(outer)])
    grid.per_inner("slot", [f"test{j + 1}" for j in range(inner)])
    grid.per_row("mark", [None if i % 3 == 0 else f"{i}.5" for i in range(outer * inner)])
    grid.constant("teacher", None)
    return grid


@pytest.mark.parametrize(("outer", "inner"), [(4, 3), (3, 1), (0, 2), (1, 5)])
def test_grid_frame_is_the_frame_of_its_lists(outer, inner, monkeypatch):
    grid = _probe_grid(outer, inner)
    native = grid_frame(grid)
    monkeypatch.setattr(read_frame, "_NATIVE", False)
    public = grid_frame(grid)
    lists = build_frame(grid.lists())
    for frame in (public, lists):
        assert frame.schema == native.schema
        assert frame.equals(native, null_equal=True)
    assert native.height == outer * inner
    assert native.schema["sheet_row"] == pl.Int64
    if outer and inner > 1:
        assert native["sheet_row"].to_list()[:inner] == [18] * inner
        assert native["slot"].to_list()[:inner] == [f"test{j + 1}" for j in range(inner)]


def test_build_frame_native_equals_public(monkeypatch):
    columns = {"sheet": ["a", "a", "b"], "sheet_row": [2, None, 4], "x": [None, "é", "  "]}
    native = build_frame(columns)
    monkeypatch.setattr(read_frame, "_NATIVE", False)
    public = build_frame(columns)
    assert native.schema == public.schema and native.equals(public, null_equal=True)


def test_read_submission_frames_do_not_depend_on_the_native_constructors(tmp_path, monkeypatch):
    paths = [
        write_notes_cc(tmp_path / "n.xlsx", pupils(6), school_code=SCHOOL),
        write_list_eleve(tmp_path / "l.xls", {"1APIC-1": pupils(4), "1APIC-2": pupils(3)}),
    ]
    native = [read_submission(p, school_code=SCHOOL).frame for p in paths]
    monkeypatch.setattr(read_frame, "_NATIVE", False)
    public = [read_submission(p, school_code=SCHOOL).frame for p in paths]
    for a, b in zip(native, public, strict=True):
        assert a.schema == b.schema and a.equals(b, null_equal=True)


def test_notes_cc_blank_and_stray_rows(tmp_path):
    """Rows under the pupils: "" or blank text only → skipped; a value in any column (even
    outside the header, even 0) → a row, with its declared cells null."""
    rows_in = pupils(3)
    rows_in[1]["code"] = ""
    path = write_notes_cc(tmp_path / "n.xlsx", rows_in, tests=1, activities=False)
    rows = (
        CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0).to_python(skip_empty_area=False)
    )
    width = len(rows[0])
    rows.append([""] * width)  # row 21: empty
    rows.append([""] * 3 + ["  "] + [""] * (width - 4))  # 22: blank text
    rows.append([""] * (width + 3) + ["x"])  # 23: longer row, value outside the header
    rows.append(["", "", "\t"])  # 24: short, blank
    rows.append([""] * (width - 1) + [0.0])  # 25: a zero
    kind = classify_sheet(rows)
    frame = grid_frame(read_marks_sheet("NotesCC", rows, kind.header_row, SCHOOL))
    assert frame["sheet_row"].to_list() == [18, 19, 20, 23, 25]
    assert frame["student_code"].to_list()[:3] == [rows_in[0]["code"], None, rows_in[2]["code"]]
    assert frame["mark"].to_list()[3:] == [None, None]


def test_safe_file_name_control_characters():
    for ch in map(chr, range(0x250)):
        name = f"a{ch}b.xlsx"
        unsafe = unicodedata.category(ch) == "Cc" or ch in "/\\:"
        assert safe_file_name(name) is not unsafe, hex(ord(ch))
    assert not safe_file_name("x\u202egpj.xlsx") and not safe_file_name("x\u202d.xlsx")


def test_sniff_delimiter_after_many_blank_lines():
    assert sniff_delimiter("\r\n" * 5000 + "a;b;c\n1;2;3\n") == ";"
    assert sniff_delimiter("   \n\t\n") == ","
    assert sniff_delimiter("a\tb\tc") == "\t"
    text = " " * 4095 + "\r\na,b;c;d\n"  # the cut falls between \r and \n
    assert sniff_delimiter(text) == ";"


def test_decode_csv_control_character_share():
    line = b"a,b\n" * 30
    assert decode_csv(line + b"\x01" * 8)[1] == "utf-8"
    with pytest.raises(FileRejected) as err:
        decode_csv(line + b"\x01\x02\x1f" * 3)
    assert err.value.rule_id == "F001"


def test_row_index_memo_is_the_plain_index():
    rows = [
        ["", "ر.ت", " الرمز ", "", 1.0, "ر.ت"],
        ["x", "", True, dt.date(2024, 1, 2), "النقطة"],
        ["1", 1, 1.0],  # 1 == 1.0 == True as keys: only text cells count
        [],
    ]
    for row in rows * 2:  # the second time from the memo
        assert row_index(row) == cells._index_of(row)
    assert row_index([["not hashable"], "ر.ت"]) == {cells.key("ر.ت"): 1}


class _Forgetful(dict):
    """A memo that remembers nothing: every row's facts made afresh."""

    def __setitem__(self, key: object, value: object) -> None:
        pass


def test_memoised_header_rows_read_as_without_memo(tmp_path, monkeypatch):
    """Files with different header rows (slots, sub-header) read in turn, then again without
    the memos: the same frames, layouts and findings."""
    paths = [
        write_notes_cc(tmp_path / "a.xlsx", pupils(5), school_code=SCHOOL),
        write_notes_cc(tmp_path / "b.xlsx", pupils(4), school_code=SCHOOL, tests=1),
        write_notes_cc(tmp_path / "c.xlsx", pupils(3), school_code=SCHOOL, activities=False),
        write_notes_cc(tmp_path / "d.xlsx", pupils(6), school_code=SCHOOL, header_row=17),
    ]
    memo = [read_submission(p, school_code=SCHOOL) for p in paths + paths[::-1]]
    monkeypatch.setattr(cells, "_FACTS", _Forgetful())
    monkeypatch.setattr(notes_cc, "_header_layout", notes_cc._header_layout.__wrapped__)
    plain = [read_submission(p, school_code=SCHOOL) for p in paths + paths[::-1]]
    for a, b in zip(memo, plain, strict=True):
        assert a.frame.equals(b.frame, null_equal=True) and a.frame.schema == b.frame.schema
        assert a.layouts == b.layouts and a.findings == b.findings
    assert len({r.frame.height for r in memo}) > 1


def test_memoised_metadata_rows_read_as_without_memo(tmp_path, monkeypatch):
    """Files whose rows above the header differ (class, session, header row) and class
    sheets of both layouts, read in turn, then again without the rows' label memo: the same
    metadata with the same cells."""
    paths = [
        write_notes_cc(tmp_path / "a.xlsx", pupils(3), school_code=SCHOOL),
        write_notes_cc(tmp_path / "b.xlsx", pupils(3), school_code=SCHOOL, class_code="2APIC-3"),
        write_notes_cc(tmp_path / "c.xlsx", pupils(2), school_code=SCHOOL, session=2),
        write_notes_cc(tmp_path / "d.xlsx", pupils(4), school_code=SCHOOL, header_row=17),
        write_list_eleve(tmp_path / "ListEleve.xlsx", {"1APIC-1": pupils(2), "3APIC-2": pupils(3)}),
    ]
    memo = [read_submission(p, school_code=SCHOOL) for p in paths + paths[::-1]]
    monkeypatch.setattr(cells, "_FACTS", _Forgetful())
    plain = [read_submission(p, school_code=SCHOOL) for p in paths + paths[::-1]]
    for a, b in zip(memo, plain, strict=True):
        assert a.layouts == b.layouts and a.findings == b.findings
        assert a.frame.equals(b.frame, null_equal=True)
    classes = {r.frame["class_code"][0] for r in memo}
    assert {"1APIC-1", "2APIC-3"} <= classes
    semesters = {r.frame["semester"][0] for r in memo if "semester" in r.frame.columns}
    assert semesters == {"1", "2"}


def _choose_from_side(above, r, c, step, shape, ref):
    """`_Above.choose` as specified: `side`'s cells in order, the expected shape first."""
    same, up = above.side(r, c, step)
    acceptable = None
    for rr, cols in ((r, same), (r - 1, up)):
        for cc in cols:
            rank, code = metadata_location._rank(shape, above.rows[rr][cc], ref)
            if rank == 2:
                return rank, rr, cc, code
            if rank == 1 and acceptable is None:
                acceptable = (rank, rr, cc, code)
    return acceptable


def test_choose_takes_sides_cells_in_order():
    """The value chosen cell by cell is the one `side`'s lists give, on random blocks of
    labels, values of every shape, blanks and numbers."""
    from connectors.reading.reference import reference

    ref = reference()
    shapes = ("year", "class", "level", "session", "text")
    values = ["", "", "", "2023/2024", "1APIC-1", "الأولى إعدادي", "الدورة الأولى", "نص", 3.0, " "]
    rnd = random.Random(11)
    for _ in range(400):
        width, height = rnd.randint(1, 9), rnd.randint(1, 4)
        rows = [[rnd.choice(values) for _ in range(width)] for _ in range(height)]
        labels = {(r, c) for r in range(height) for c in range(width) if rnd.random() < 0.25}
        above = metadata_location._Above(rows, labels)
        for r, c in labels:
            for step in (-1, 1):
                for shape in shapes:
                    expected = _choose_from_side(above, r, c, step, shape, ref)
                    assert above.choose(r, c, step, shape, ref) == expected, (rows, labels, r, c)

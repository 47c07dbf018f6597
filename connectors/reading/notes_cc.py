"""Reading Massar's NotesCC export (DOMAIN.md §2): one subject's marks for one class, a sheet
flagged right-to-left with its metadata at a higher column than their labels, two header rows
(a slot label over each mark/absence pair, النقطة / التغيب under it), and a hidden technical
row (school code, subject code #dddd#, session, level code) above a hidden marker row.

A sheet's path: technical row (F004 for another school's code) → header columns and slot pairs
(F008) → metadata located (F009) → cross-checks, kept as queries (F011 markers against the
labels, F010 subject code against subject name) → pupils × slots mapped into a long frame.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from itertools import compress, repeat, zip_longest
from operator import ne
from typing import NamedTuple

from connectors.reading.cells import (
    Rows,
    SheetRows,
    cell_address,
    column_letter,
    key,
    render,
    render_all,
)
from connectors.reading.layout_detection import FoundSheet
from connectors.reading.metadata_location import (
    NOTES_FIELDS,
    MetadataFound,
    header_side,
    locate_metadata,
    missing_label,
)
from connectors.reading.notes_slots import (
    HeaderGroup,
    SlotGroup,
    find_slots,
    header_groups,
    slot_tokens,
    token_check,
)
from connectors.reading.read_frame import Columns, Grid, build_frame, grid_frame
from connectors.reading.read_result import (
    FileRejected,
    Located,
    ReadFinding,
    SheetLayout,
    SheetsRead,
    SlotColumns,
)
from connectors.reading.reference import Reference, reference, subject_check
from schemas.datasets import ABSENCE_LABEL, MARK_LABEL, MARK_SLOTS, MARKS, SCHOOL_CODE
from schemas.text import clean_text

_NOTES_FIXED = ("internal_id", "student_code", "full_name", "birth_date", "remark")
_NOTES_KEYS = {key(MARKS.column(n).header_ar): n for n in _NOTES_FIXED}
_NOTES_REQUIRED = tuple(
    (n, MARKS.column(n).header_ar) for n in _NOTES_FIXED if MARKS.column(n).required
)
_SLOT_LABEL = {slot: label for slot, label, _ in MARK_SLOTS}  # canonical, for finding columns
_MARK_KEY = key(MARK_LABEL)
# A slot's (mark column, absence column) names in findings, without / with an absence column.
_SLOT_COLUMNS = {
    (slot, has_absence): (
        f"{label} - {MARK_LABEL}",
        f"{label} - {ABSENCE_LABEL}" if has_absence else None,
    )
    for slot, label in _SLOT_LABEL.items()
    for has_absence in (False, True)
}
_SUBJECT_TOKEN_RE = re.compile(r"^#(\d{4})#$")
_SCHOOL_CODE_RE = re.compile(SCHOOL_CODE)
_clean = functools.lru_cache(maxsize=1 << 12)(clean_text)
"""clean_text memoised: the technical row's codes recur in every file of a school."""
_SESSION_1 = key("الأولى")
_SESSION_2 = key("الثانية")


def read_notes_cc(sheets: Sequence[FoundSheet], school_code: str, ref: Reference) -> SheetsRead:
    """The marks of the workbook's marks sheet(s) in long format (pupil × slot), and how each
    sheet was placed with the reader's findings."""
    layouts: list[SheetLayout] = []
    grids = [
        (name, read_marks_sheet(name, rows, kind.header_row, school_code, layouts, ref, kind.rows))
        for name, rows, kind in sheets
    ]
    used = [name for name, grid in grids if grid.outer]
    if len(grids) == 1:
        return SheetsRead(grid_frame(grids[0][1]), used, layouts)
    out = marks_columns()
    for _, grid in grids:
        for column, values in grid.lists().items():
            out[column].extend(values)
    return SheetsRead(build_frame(out), used, layouts)


MARKS_META_COLUMNS = (
    "school_code",
    "subject_code",
    "semester",
    "class_code",
    "school_year",
    "level_code",
    "level_label",
    "teacher",
    "subject_name",
    "academy",
    "directorate",
    "school_name",
    "session_label",
)
_MARKS_ROW_COLUMNS = (
    "internal_id",
    "student_code",
    "full_name",
    "birth_date",
    "slot",
    "mark",
    "absence",
    "remark",
    "slot_label",
    "mark_column",
    "absence_column",
)


def marks_columns() -> Columns:
    """The column lists of the marks frame, empty, in the order of a sheet's grid."""
    out: Columns = {"sheet": [], "sheet_row": []}
    for name in _MARKS_ROW_COLUMNS + MARKS_META_COLUMNS:
        out[name] = []
    return out


def technical_cells(
    rows: Sequence[Sequence[object]], header_row: int, rows_facts: SheetRows | None = None
) -> dict[str, Located]:
    """The hidden row 5: the row above the header holding the subject token `#dddd#`; its
    school code (by pattern, else C5), subject code, session (G5) and level code (O5). Without
    that row no position is trusted (no school code is read, so no F004 either).

    `rows_facts`: the rows' facts already looked up (layout detection's); a row's subject token
    is noted in its facts: the rows above the technical row (hidden rows, the title) recur in
    every file of an export."""
    if rows_facts is None:
        rows_facts = SheetRows(rows)
    for r in range(min(header_row, len(rows))):
        facts = rows_facts[r]
        if facts is not None:
            subject_at = facts.notes.get(_SUBJECT_AT, _UNSEEN)
            if subject_at is _UNSEEN:
                subject_at = facts.notes[_SUBJECT_AT] = _subject_token_at(rows[r])
            if subject_at is not None:
                return _technical(r, rows[r], subject_at)
    return {}


_SUBJECT_AT = "notes_cc.subject_at"
_UNSEEN = object()


def _subject_token_at(row: Sequence[object]) -> int | None:
    """The column of a row's first subject token `#dddd#` (text cells only)."""
    for i, c in compress(enumerate(row), row):  # "" (and other falsy cells) skipped
        if type(c) is str and "#" in c and _SUBJECT_TOKEN_RE.match(c.strip()):
            return i
    return None


def _technical(r: int, row: Sequence[object], subject_at: int) -> dict[str, Located]:
    subject = _SUBJECT_TOKEN_RE.match(_clean(render(row[subject_at]) or ""))
    school_at = 2  # C5
    # Only the cells read are rendered; a falsy cell ("", 0, False) never reads as a code.
    for i, cell in compress(enumerate(row), row):
        text = render(cell)
        if text is not None and _SCHOOL_CODE_RE.match(_clean(text).upper()):
            school_at = i
            break

    def at(i: int) -> Located:
        text = render(row[i]) if i < len(row) else None
        return Located(text, cell_address(r, i) if text is not None else None)

    return {
        "school_code": at(school_at),
        "subject_code": Located(subject.group(1) if subject else None, cell_address(r, subject_at)),
        "session": at(6),  # G5
        "level_code": at(14),  # O5
    }


def _semester(label: str | None, session: str | None) -> str | None:
    if label is not None:
        k = key(label)
        if _SESSION_2 in k or k.endswith("2"):
            return "2"
        if _SESSION_1 in k or k.endswith("1"):
            return "1"
    if session is not None and _clean(session) in ("1", "2"):
        return _clean(session)
    return None


def read_marks_sheet(
    sheet: str,
    rows: Rows,
    header_row: int,
    school_code: str,
    layouts: list[SheetLayout] | None = None,
    ref: Reference | None = None,
    rows_facts: SheetRows | None = None,
) -> Grid:
    """One NotesCC sheet in long format (pupil × slot), columns in `marks_columns()` order;
    how the sheet was placed, with the reader's findings (F010, F011), goes to `layouts`.
    F004 for another school's code, F008 for a header label missing, F009 for a metadata
    label missing. `rows_facts`: the rows' facts as layout detection looked them up."""
    ref = ref or reference()
    if rows_facts is None:
        rows_facts = SheetRows(rows)
    head = rows[header_row]
    sub = rows[header_row + 1] if header_row + 1 < len(rows) else []
    technical = technical_cells(rows, header_row, rows_facts)
    found_code = technical["school_code"].value if technical else None
    if found_code is not None and _clean(found_code).upper() != _clean(school_code).upper():
        at = technical["school_code"].cell or "C5"
        raise FileRejected("F004", f"{at} school code {found_code}", column=at, value=found_code)
    try:
        header = _header_layout(tuple(head), tuple(sub))
    except TypeError:  # an unhashable cell: not from python-calamine
        header = _header_layout.__wrapped__(tuple(head), tuple(sub))
    positions, groups, slot_groups, problems = header.positions, *header.slots
    for name, label in _NOTES_REQUIRED:
        if name not in positions:
            raise FileRejected("F008", f"sheet {sheet}, row {header_row + 1}", column=label)
    found = locate_metadata(
        rows, header_row, NOTES_FIELDS, header.side, header.evidence, ref, rows_facts
    )
    if found.missing:
        missing_label(sheet, rows, header_row, found.missing[0])
    if not slot_groups:
        raise FileRejected(
            "F008", f"sheet {sheet}, rows {header_row + 1}-{header_row + 2}", column=MARK_LABEL
        )
    token_row = slot_tokens(rows_facts, header_row)
    tokens_at, tokens = token_row if token_row is not None else (None, None)
    findings = _notes_findings(
        sheet, header_row, groups, tokens_at, tokens, problems, technical, found, ref
    )
    meta: dict[str, str | None] = {name: loc.value for name, loc in found.values.items()}
    meta["school_code"] = found_code
    meta["subject_code"] = technical["subject_code"].value if technical else None
    meta["level_code"] = technical["level_code"].value if technical else None
    session = technical["session"].value if technical else None
    meta["semester"] = _semester(meta.get("session_label"), session)
    slots = [(s.slot, s.group.label, s.group.mark_at, s.group.absence_at) for s in slot_groups]
    has_sub = header.has_sub
    start = header_row + 2 if has_sub else header_row + 1
    grid = _marks_grid(sheet, rows, start, positions, slots, meta)
    if layouts is not None:
        header_rows = (header_row + 1, header_row + 2) if has_sub else (header_row + 1,)
        layouts.append(
            SheetLayout(
                sheet=sheet,
                dataset=MARKS.name,
                layout="NotesCC",
                header_rows=header_rows,
                first_data_row=start + 1,
                value_side=found.side,
                value_side_evidence=found.evidence,
                columns=dict(header.letters),
                metadata=found.values,
                technical=technical,
                slots=_slot_columns(header, header_row, tokens),
                remark_column=header.letters.get("remark"),
                token_row=None if tokens_at is None else tokens_at + 1,
                rows_read=grid.outer * grid.inner,
                findings=findings,
            )
        )
    return grid


class _HeaderLayout(NamedTuple):
    """What the two header rows alone say: the fixed columns' positions, the side values stand
    on, the label groups with their slots (and the problems found), whether النقطة is under."""

    positions: dict[str, int]
    side: str
    evidence: str
    slots: tuple[list[HeaderGroup], list[SlotGroup], list[str]]
    has_sub: bool
    letters: dict[str, str]  # the fixed columns' letters
    described: dict[tuple[int, tuple[str | None, ...]], tuple[SlotColumns, ...]]
    """The slots as a layout describes them, by header row and tokens over the slots."""


def _slot_columns(
    header: _HeaderLayout, header_row: int, tokens: dict[int, str] | None
) -> tuple[SlotColumns, ...]:
    """The slots of `header` as `SheetLayout.slots` gives them (immutable: made once for the
    files of an export, whose header rows and tokens recur)."""
    slot_groups = header.slots[1]
    over = tuple((tokens or {}).get(s.group.start) for s in slot_groups)
    described = header.described.get((header_row, over))
    if described is None:
        described = tuple(
            SlotColumns(
                s.slot,
                s.group.label,
                f"{column_letter(s.group.start)}{header_row + 1}:"
                f"{column_letter(s.group.end - 1)}{header_row + 1}",
                None if s.group.mark_at is None else column_letter(s.group.mark_at),
                None if s.group.absence_at is None else column_letter(s.group.absence_at),
                token,
            )
            for s, token in zip(slot_groups, over, strict=True)
        )
        if len(header.described) < 64:
            header.described[header_row, over] = described
    return described


@functools.lru_cache(maxsize=1 << 10)
def _header_layout(head: tuple[object, ...], sub: tuple[object, ...]) -> _HeaderLayout:
    """`_HeaderLayout` of two header rows, memoised: every NotesCC file of an export carries
    the same header rows (the result is shared: read it, never change it)."""
    positions: dict[str, int] = {}
    for row in (head, sub):
        for i, cell in enumerate(row):
            if type(cell) is str and cell.strip():
                name = _NOTES_KEYS.get(key(cell))
                if name is not None:
                    positions.setdefault(name, i)
    side, evidence = header_side(
        head, MARKS.column("student_code").header_ar, MARKS.column("full_name").header_ar
    )
    groups = header_groups(head, sub)
    slot_groups, problems = find_slots(groups)
    has_sub = any(type(c) is str and c.strip() and key(c) == _MARK_KEY for c in sub)
    letters = {name: column_letter(p) for name, p in positions.items()}
    slots = (groups, slot_groups, problems)
    return _HeaderLayout(positions, side, evidence, slots, has_sub, letters, {})


def _notes_findings(
    sheet: str,
    header_row: int,
    groups: Sequence[HeaderGroup],
    tokens_at: int | None,
    tokens: dict[int, str] | None,
    problems: list[str],
    technical: dict[str, Located],
    found: MetadataFound,
    ref: Reference,
) -> list[ReadFinding]:
    """F011 (hidden tokens against the labelled pairs, and pairs not read) and F010 (subject
    code against subject name): queries, the marks are read all the same."""
    findings: list[ReadFinding] = []
    mismatch = token_check(tokens, groups, header_row)
    details = [d for d in (mismatch, *problems) if d]
    if details:
        pairs = [g for g in groups if g.is_pair]
        first = min([g.start for g in pairs] + list(tokens or {}), default=0)
        last = max([g.end - 1 for g in pairs] + list(tokens or {}), default=0)
        top = header_row if tokens_at is None else tokens_at
        where = f"{cell_address(top, first)}:{cell_address(header_row + 1, last)}"
        findings.append(
            ReadFinding(
                "F011", sheet, where, None, {"detail": f"sheet {sheet}, {'; '.join(details)}"}
            )
        )
    code = technical.get("subject_code")
    name = found.values.get("subject_name")
    if code is not None and name is not None:
        disagreement = subject_check(code.value, name.value, ref)
        if disagreement is not None:
            findings.append(
                ReadFinding(
                    "F010",
                    sheet,
                    code.cell or "",
                    code.value,
                    {
                        "value": code.value or "",
                        "cell": code.cell or "",
                        "name": name.value or "",
                        "name_cell": name.cell or "",
                        "detail": disagreement,
                    },
                )
            )
    return findings


def _marks_grid(
    sheet: str,
    rows: Rows,
    start: int,
    positions: dict[str, int],
    slots: list[tuple[str, str, int | None, int | None]],
    meta: dict[str, str | None],
) -> Grid:
    """The pupils' rows from `start` (0-based) as a pupil × slot grid."""
    slot_info = [_SLOT_COLUMNS[slot, absence_at is not None] for slot, _, _, absence_at in slots]
    # Column by column: the block under the header transposed once (short rows padded with
    # None, which renders as None like a cell beyond the row's width).
    block = rows[start:]
    # Rows of one width (python-calamine's): zip needs no padding.
    even = len(set(map(len, block))) == 1
    columns = list(zip(*block, strict=True)) if even else list(zip_longest(*block, fillvalue=None))
    blank: list[str | None] = [None] * len(block)

    def rendered(p: int | None) -> list[str | None]:
        return render_all(columns[p]) if p is not None and p < len(columns) else blank

    fixed_values = [rendered(positions.get(n)) for n in _NOTES_FIXED]
    marks = [rendered(mark_at) for _, _, mark_at, _ in slots]
    absences = [rendered(absence_at) for _, _, _, absence_at in slots]
    # A row is a pupil unless all its cells are "" or, rendered, all None. The second test
    # only concerns rows without a pupil code.
    if even:
        # A row compared with an empty one stops at its first filled cell, where counting ""
        # reads every cell.
        keep = list(map(ne, block, repeat([""] * len(block[0]))))
    else:
        keep = [row.count("") != len(row) for row in block]
    codes = fixed_values[_NOTES_FIXED.index("student_code")]
    if None in compress(codes, keep):
        needed = fixed_values + marks + absences
        for i, row in enumerate(block):
            if keep[i] and codes[i] is None and all(c[i] is None for c in needed):
                keep[i] = not all(render(c) is None for c in row)
    # Long format: each pupil row gives one row per slot (pupil-major, slots in column order).
    if False in keep:
        fixed_values = [list(compress(column, keep)) for column in fixed_values]
        marks = [list(compress(column, keep)) for column in marks]
        absences = [list(compress(column, keep)) for column in absences]
        pupil_rows = list(compress(range(start + 1, start + 1 + len(block)), keep))
    else:  # every row a pupil (the usual export): the columns as they are
        pupil_rows = list(range(start + 1, start + 1 + len(block)))
    grid = Grid(len(pupil_rows), len(slots))
    grid.constant("sheet", sheet)
    grid.per_outer("sheet_row", pupil_rows)
    for name, column in zip(_NOTES_FIXED[:4], fixed_values[:4], strict=True):
        grid.per_outer(name, column)
    grid.per_inner("slot", [slot for slot, _, _, _ in slots])
    grid.per_row("mark", _interleaved(marks))
    grid.per_row("absence", _interleaved(absences))
    grid.per_outer("remark", fixed_values[4])
    grid.per_inner("slot_label", [label for _, label, _, _ in slots])
    grid.per_inner("mark_column", [m for m, _ in slot_info])
    grid.per_inner("absence_column", [a for _, a in slot_info])
    for name in MARKS_META_COLUMNS:
        grid.constant(name, meta.get(name))
    return grid


def _interleaved(per_slot: list[list[str | None]]) -> list[str | None]:
    """Slot columns (one value per pupil) as one long column, pupil-major."""
    step = len(per_slot)
    if step <= 1:
        return list(per_slot[0]) if step else []
    out: list[str | None] = [None] * (step * len(per_slot[0]))
    for j, column in enumerate(per_slot):
        out[j::step] = column  # a slice assignment: no tuple per pupil
    return out

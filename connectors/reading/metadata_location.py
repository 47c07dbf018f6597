"""Where a Massar sheet's metadata values stand (school year, class, level, session, teacher
...), with the cell each came from: the value side of the sheet and the nearest value of the
expected shape (docs/decisions/0006-reading-genuine-massar-layouts.md).

Genuine exports (DOMAIN.md §2) do not put a value "to the right of its label":

- ListEleve is laid out mirrored without being flagged right-to-left, so a value stands at a
  *lower* column index than its label, and the level's value sits one row *above* its label;
- NotesCC is flagged right-to-left and its values stand at a *higher* column index.

So the side of the values is a property of the sheet, decided from the data (`value_side`):
each metadata label is looked up on both sides, the side where more labels find a value of
the expected shape wins, and the header's reading order breaks a tie. A value is then the
nearest non-label cell on that side with the expected shape (school year, class code, level,
session, text), on the label's row first and then one row up, never beyond the next label.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import compress, repeat
from operator import ne
from typing import Any, NoReturn

from connectors.reading.cells import RowFacts, SheetRows, cell_address, column_letter, key, render
from connectors.reading.read_result import FileRejected, Located
from connectors.reading.reference import Reference
from schemas.datasets import CLASS_CODE, MARKS, STUDENTS, Dataset
from schemas.text import clean_text, match_key

LOWER, HIGHER = "lower", "higher"  # the column-index side where values stand


# Shapes a metadata value must have (the weakest first taken when nothing better is there).
YEAR, CLASS, LEVEL, SESSION, TEXT = "year", "class", "level", "session", "text"
_YEAR_RE = re.compile(r"^\d{4}\s*/\s*\d{4}$")
_CLASS_RE = re.compile(CLASS_CODE)
_LETTER_RE = re.compile(r"[^\W\d_]")
_ARABIC_RE = re.compile("[\u0621-\u064a]")
_SESSION_KEYS = (key("الدورة"), key("الأولى"), key("الثانية"))


@dataclass(frozen=True)
class MetaField:
    name: str  # the dataset's metadata column
    label: str  # the Arabic label
    shape: str
    required: bool  # the layout cannot be placed without its label


def meta_fields(
    dataset: Dataset, shapes: dict[str, str], required: Sequence[str]
) -> tuple[MetaField, ...]:
    """The metadata fields of a layout: each metadata column of `dataset` with its label, the
    shape its value must have (`shapes`, else text) and whether it is `required`."""
    return tuple(
        MetaField(c.name, c.header_ar, shapes.get(c.name, TEXT), c.name in required)
        for c in dataset.metadata
    )


LIST_FIELDS: tuple[MetaField, ...] = meta_fields(
    STUDENTS,
    {"school_year": YEAR, "class_code": CLASS, "level_label": LEVEL},
    ("school_year", "class_code", "level_label"),
)
NOTES_FIELDS: tuple[MetaField, ...] = meta_fields(
    MARKS,
    {"school_year": YEAR, "class_code": CLASS, "level_label": LEVEL, "session_label": SESSION},
    ("school_year", "class_code", "level_label"),
)
# Cells that are labels, never values: every metadata label and title of both layouts.
_LABEL_KEYS = frozenset(
    [key(f.label) for f in LIST_FIELDS + NOTES_FIELDS] + [key(STUDENTS.title_ar)]
)
_TITLE_KEYS = frozenset([key(STUDENTS.title_ar), key(MARKS.title_ar)])


def _is_label(text: str) -> bool:
    """A label cell: a known label, or any text ending with a colon ("نقط :")."""
    return text.rstrip().endswith((":", "：")) or key(text) in _LABEL_KEYS


def _rank(shape: str, cell: Any, ref: Reference) -> tuple[int, str | None]:
    """How well a non-label cell fits a shape: 2 expected, 1 acceptable, 0 not; and for a
    level the code it resolves to (memoised: the same values recur in every sheet)."""
    try:
        return _rank_of(shape, cell, type(cell).__name__, ref)
    except TypeError:  # an unhashable cell value
        return _rank_of.__wrapped__(shape, cell, type(cell).__name__, ref)


@lru_cache(maxsize=1 << 14)
def _rank_of(shape: str, cell: Any, _type: str, ref: Reference) -> tuple[int, str | None]:
    text = render(cell)
    if text is None:
        return 0, None
    cleaned = clean_text(text)
    year = _YEAR_RE.match(cleaned) is not None
    klass = _CLASS_RE.match(cleaned.upper()) is not None
    if shape == YEAR:
        return (2 if year else 0), None
    if shape == CLASS:
        return (2 if klass else 0), None
    if year or klass or type(cell) is not str or not _LETTER_RE.search(cleaned):
        return 0, None
    k = key(cleaned)
    if k in _TITLE_KEYS:
        return 0, None
    if shape == LEVEL:
        code = ref.level_by_label.get(match_key(cleaned))
        if code is None and cleaned.upper() in ref.level_codes:
            code = cleaned.upper()
        if code is not None:
            return 2, code
        return (1 if _ARABIC_RE.search(cleaned) else 0), None
    if shape == SESSION:
        return (2 if any(s in k for s in _SESSION_KEYS) else 1), None
    return 2, None


@dataclass
class MetadataFound:
    values: dict[str, Located]
    side: str
    evidence: str
    missing: list[MetaField]  # required labels not found


def _filled(cell: object) -> bool:
    if type(cell) is str:
        return bool(cell) and not cell.isspace()
    return render(cell) is not None


def _filled_columns(row: Sequence[object]) -> tuple[int, ...]:
    """The columns of a row's non-empty cells."""
    return tuple(i for i, v in compress(enumerate(row), map(ne, row, repeat(""))) if _filled(v))


class _Above:
    """The rows above the header with their label cells, and per row the columns of its
    non-empty cells (computed once a row: most cells of the block are empty)."""

    def __init__(
        self,
        rows: Sequence[Sequence[object]],
        labels: set[tuple[int, int]],
        filled: dict[int, Sequence[int]] | None = None,
    ) -> None:
        self.rows, self.labels = rows, labels
        self._filled: dict[int, Sequence[int]] = {} if filled is None else filled

    def filled(self, r: int) -> Sequence[int]:
        cols = self._filled.get(r)
        if cols is None:
            cols = self._filled[r] = _filled_columns(self.rows[r])
        return cols

    def side(self, r: int, c: int, step: int) -> tuple[list[int], list[int]]:
        """Columns of the non-empty, non-label cells on one side of the label at (r, c): on
        its row up to the next label, and on the row above within the same span, nearest
        first."""
        labels = self.labels
        cols = self.filled(r)
        same: list[int] = []
        bound: int | None = None
        for x in [x for x in cols if x > c] if step > 0 else [x for x in cols[::-1] if x < c]:
            if (r, x) in labels:
                bound = x
                break
            same.append(x)
        up: list[int] = []
        if r > 0:
            above = self.filled(r - 1)
            if step > 0:
                span = [x for x in above if x >= c and (bound is None or x < bound)]
            else:
                span = [x for x in above[::-1] if x <= c and (bound is None or x > bound)]
            for x in span:
                if (r - 1, x) in labels:
                    break
                up.append(x)
        return same, up

    def choose(
        self, r: int, c: int, step: int, shape: str, ref: Reference
    ) -> tuple[int, int, int, str | None] | None:
        """(rank, row, column, level code) of the value of the label at (r, c) on one side:
        the expected shape first, on the label's row then the row above; else an acceptable
        one."""
        # `side`'s cells taken one by one: most labels find their value in the first cell, so
        # neither the rest of the row nor the row above is listed.
        labels, rows = self.labels, self.rows
        acceptable = None
        cols = self.filled(r)
        bound: int | None = None
        for x in cols if step > 0 else reversed(cols):
            if (x <= c) if step > 0 else (x >= c):
                continue
            if (r, x) in labels:
                bound = x
                break
            rank, code = _rank(shape, rows[r][x], ref)
            if rank == 2:
                return rank, r, x, code
            if rank == 1 and acceptable is None:
                acceptable = (rank, r, x, code)
        if r > 0:
            above = self.filled(r - 1)
            for x in above if step > 0 else reversed(above):
                if step > 0:
                    if x < c:
                        continue
                    if bound is not None and x >= bound:
                        break
                else:
                    if x > c:
                        continue
                    if bound is not None and x <= bound:
                        break
                if (r - 1, x) in labels:
                    break
                rank, code = _rank(shape, rows[r - 1][x], ref)
                if rank == 2:
                    return rank, r - 1, x, code
                if rank == 1 and acceptable is None:
                    acceptable = (rank, r - 1, x, code)
        return acceptable

    def nearest(self, at: tuple[int, int], step: int, f: MetaField) -> Located:
        """No value of the expected shape: a code (year, class) takes the nearest cell on the
        label's row anyway, so that validation reports what the school wrote (R008)."""
        label_cell = cell_address(*at)
        if f.shape in (YEAR, CLASS):
            same, _ = self.side(at[0], at[1], step)
            if same:
                r, c = at[0], same[0]
                return Located(render(self.rows[r][c]), cell_address(r, c), label_cell, False)
        return Located(None, None, label_cell, False)


_Kinds = dict[str, tuple[str | None, bool, str | None]]
_KINDS: dict[int, tuple[tuple[MetaField, ...], _Kinds]] = {}
"""By the id of the fields' tuple (hashing its fields costs ~5 us a call), the tuple kept."""


def _text_kinds(fields: tuple[MetaField, ...]) -> _Kinds:
    """The memo of `_text_kind` for one set of fields (the same labels recur in every file)."""
    entry = _KINDS.get(id(fields))
    if entry is None or entry[0] is not fields or len(entry[1]) > 1 << 14:
        entry = _KINDS[id(fields)] = (fields, {})
    return entry[1]


_LabelCells = tuple[tuple[int, str | None, str | None], ...]
_RowFacts = tuple[_LabelCells, tuple[int, ...] | None]
"""A row's label cells, and the columns of its non-empty cells when it has labels."""


def _row_labels(
    facts: RowFacts, row: Sequence[object], kinds: _Kinds, fields: tuple[MetaField, ...]
) -> _RowFacts:
    """`_label_cells` of a row with its filled columns, noted in the row's facts for one set
    of fields: the rows above a header (titles, labels, hidden marker rows) recur from one file
    of an export to the next."""
    noted = facts.notes.get(id(fields))
    if noted is None or noted[0] is not fields:
        row_kinds = _label_cells(row, kinds, fields)
        noted = facts.notes[id(fields)] = (
            fields,
            (row_kinds, _filled_columns(row) if row_kinds else None),
        )
    return noted[1]


def _label_cells(
    row: Sequence[object],
    kinds: _Kinds,
    fields: Sequence[MetaField],
) -> _LabelCells:
    """The label cells of a row above the header: (column, the metadata name of its label,
    the value of a "label: value" cell), in column order."""
    out = []
    for c, cell in compress(enumerate(row), row):  # "" (and other falsy cells) skipped
        if type(cell) is not str:
            continue
        kind = kinds.get(cell)
        if kind is None:
            kind = kinds[cell] = _text_kind(cell, fields)
        name, is_label, after = kind
        if is_label:
            out.append((c, name, after))
    return tuple(out)


def _text_kind(text: str, fields: Sequence[MetaField]) -> tuple[str | None, bool, str | None]:
    """What a text cell above the header is: (the metadata name of its label, whether it is a
    label cell, the value of a "label: value" cell)."""
    if text.isspace():
        return None, False, None
    k = key(text)
    for f in fields:
        if key(f.label) == k:
            return f.name, True, None
    if _is_label(text):
        return None, True, None
    if ":" in text:
        before, after = text.split(":", 1)
        k = key(before)
        for f in fields:
            if key(f.label) == k and after.strip():
                return f.name, True, after.strip()
    return None, False, None


_Placement = tuple[bool, bool, Located, Located]
"""A label's value found on the lower side, on the higher side; its Located if the lower side
wins, if the higher side wins."""
_PlacementMemo = dict[tuple[int, RowFacts | str, RowFacts | str], dict[str, _Placement]]
_PLACEMENTS: dict[int, tuple[tuple[MetaField, ...], Reference, _PlacementMemo]] = {}
"""By the id of the fields' tuple, the tuple and the reference kept."""


def _placements_memo(fields: tuple[MetaField, ...], ref: Reference) -> _PlacementMemo:
    """The memo of `_place_row` for one set of fields and reference, by (row index, the row's
    facts, the facts of the row above, "" when blank): a class's metadata rows recur from one
    file of an export to the next (9 label lookups in 10 on a generated province). A label's
    values are read from its row and the row above only (`_Above.choose`, `_Above.nearest`).
    Equal rows share their facts (`cells.row_facts`), and the facts (kept by the memo's keys)
    stand for the rows' cells."""
    entry = _PLACEMENTS.get(id(fields))
    if entry is None or entry[0] is not fields or entry[1] is not ref or len(entry[2]) > 1 << 12:
        entry = _PLACEMENTS[id(fields)] = (fields, ref, {})
    return entry[2]


_STR_FLOAT = frozenset((str, float))


def _keyable(row: Sequence[object]) -> bool:
    """Whether a row's rendered values may be remembered by its facts: text and floats only
    (equal cells of other types render apart: 1 == 1.0 == True)."""
    return _STR_FLOAT.issuperset(map(type, row))


def _place_row(
    above: _Above,
    r: int,
    label_cells: _LabelCells,
    fields: tuple[MetaField, ...],
    ref: Reference,
) -> dict[str, _Placement]:
    """Each named label of row `r` (its first cell in the row): whether a value of its shape
    is found on each side, and the Located it gives when that side wins (else the nearest
    cell, `_Above.nearest`)."""
    out: dict[str, _Placement] = {}
    by_name = {f.name: f for f in fields}
    rows = above.rows
    for c, name, _ in label_cells:
        if name is None or name in out:
            continue
        f = by_name[name]
        lower, higher = (above.choose(r, c, step, f.shape, ref) for step in (-1, 1))
        located = [
            above.nearest((r, c), step, f)
            if hit is None
            else Located(
                render(rows[hit[1]][hit[2]]),
                cell_address(hit[1], hit[2]),
                cell_address(r, c),
                True,
                hit[3],
            )
            for step, hit in ((-1, lower), (1, higher))
        ]
        out[name] = (lower is not None, higher is not None, located[0], located[1])
    return out


def locate_metadata(
    rows: Sequence[Sequence[object]],
    header_row: int,
    fields: Sequence[MetaField],
    header_side: str,
    header_evidence: str,
    ref: Reference,
    rows_facts: SheetRows | None = None,
) -> MetadataFound:
    """The metadata values above `header_row` (0-based) with their cells; see the module doc.
    `rows_facts`: the rows' facts already looked up (layout detection's)."""
    fields = tuple(fields)
    kinds = _text_kinds(fields)
    if rows_facts is None:
        rows_facts = SheetRows(rows)
    found_at: dict[str, tuple[int, int]] = {}
    inline: dict[str, Located] = {}
    labels: set[tuple[int, int]] = set()
    filled: dict[int, Sequence[int]] = {}  # the label rows' (and blank rows') filled columns
    # Per row: its facts ("" when blank) and its label cells.
    row_facts: dict[int, RowFacts | str] = {}
    label_rows: dict[int, _LabelCells] = {}
    for r in range(min(header_row, len(rows))):
        facts = rows_facts[r]
        if facts is None:
            filled[r] = ()
            row_facts[r] = ""
            continue
        row_facts[r] = facts
        row_kinds, cols = _row_labels(facts, rows[r], kinds, fields)
        if cols is not None:
            filled[r] = cols
        label_rows[r] = row_kinds
        for c, name, after in row_kinds:
            labels.add((r, c))
            if name is not None:
                found_at.setdefault(name, (r, c))
                if after is not None:  # "label: value" in one cell
                    address = cell_address(r, c)
                    inline.setdefault(name, Located(after, address, address))
    above = _Above(rows, labels, filled)
    # Each label's value on both sides (found, and the Located it gives), by label row.
    placed: dict[str, _Placement] = {}
    memo = _placements_memo(fields, ref)
    for r in sorted({at[0] for name, at in found_at.items() if name not in inline}):
        here, up = row_facts[r], row_facts[r - 1] if r else ""
        keyable = _keyable(rows[r]) and (isinstance(up, str) or _keyable(rows[r - 1]))
        key = (r, here, up) if keyable else None
        row_placed = memo.get(key) if key is not None else None
        if row_placed is None:
            row_placed = _place_row(above, r, label_rows[r], fields, ref)
            if key is not None:
                memo[key] = row_placed
        for name, at in found_at.items():
            if at[0] == r and name not in inline:
                placed[name] = row_placed[name]
    # The side where more labels find a value of the expected shape; the header breaks a tie.
    n_lower = sum(1 for lower, _, _, _ in placed.values() if lower)
    n_higher = sum(1 for _, higher, _, _ in placed.values() if higher)
    if n_lower != n_higher:
        side = LOWER if n_lower > n_higher else HIGHER
        evidence = (
            f"{max(n_lower, n_higher)} metadata labels find their value at a {side} column "
            f"index, {min(n_lower, n_higher)} at a {HIGHER if side == LOWER else LOWER} one"
        )
    else:
        side, evidence = header_side, f"{header_evidence} (metadata: {n_lower} each side)"
    values: dict[str, Located] = {}
    for f in fields:
        if f.name in inline:
            values[f.name] = inline[f.name]
        elif f.name not in found_at:
            values[f.name] = Located(None, None)
        else:
            _, _, if_lower, if_higher = placed[f.name]
            values[f.name] = if_lower if side == LOWER else if_higher
    missing = [f for f in fields if f.required and f.name not in found_at]
    return MetadataFound(values, side, evidence, missing)


def missing_label(
    sheet: str, rows: Sequence[Sequence[object]], header_row: int, f: MetaField
) -> NoReturn:
    """F009 for a required metadata label not found above the header."""
    width = max((len(r) for r in rows[:header_row]), default=1)
    raise FileRejected(
        "F009",
        f"sheet {sheet}, cells A1:{cell_address(max(header_row - 1, 0), max(width - 1, 0))} "
        f"above the header row {header_row + 1}",
        column=f.label,
    )


def header_side(header: Sequence[object], first: str, second: str) -> tuple[str, str]:
    """The side values stand on by the header's reading order: `first` (a column read before
    `second`, e.g. ر.ت before الرمز) at a higher index means a mirrored sheet."""
    at: dict[str, int] = {}
    for i, cell in enumerate(header):
        if type(cell) is str and cell.strip():
            at.setdefault(key(cell), i)
    a, b = at.get(key(first)), at.get(key(second))
    side = HIGHER if a is None or b is None or a < b else LOWER
    where = (
        f"header {first} in column {column_letter(a)}, {second} in column {column_letter(b)}"
        if a is not None and b is not None
        else "header order unknown"
    )
    return side, where

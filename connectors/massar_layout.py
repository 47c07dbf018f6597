"""Where things stand in a Massar export: metadata values, NotesCC slot columns, and what the
readers found on the way (for `massar inspect` and the findings of a read).

Genuine exports (DOMAIN.md §2) do not put a value "to the right of its label":

- ListEleve is laid out mirrored without being flagged right-to-left, so a value stands at a
  *lower* column index than its label, and the level's value sits one row *above* its label;
- NotesCC is flagged right-to-left and its values stand at a *higher* column index.

So the side of the values is a property of the sheet, decided from the data (`value_side`):
each metadata label is looked up on both sides, the side where more labels find a value of
the expected shape wins, and the header's reading order breaks a tie. A value is then the
nearest non-label cell on that side with the expected shape (school year, class code, level,
session, text), on the label's row first and then one row up, never beyond the next label.

NotesCC slots come from the labels of the two header rows (`find_slots`): a label over a
(mark, absence) pair, repeated over both cells or written in the first only, is one slot; the
hidden token row (#1# .. #100#) is only compared with them (`token_check`), never used to
name a slot.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import polars as pl

from connectors._base import FileRejected, key, render
from schemas.datasets import (
    ABSENCE_LABEL,
    CLASS_CODE,
    MARK_LABEL,
    MARK_SLOTS,
    MARKS,
    STUDENTS,
)
from schemas.rules import severity
from schemas.text import clean_text, match_key

REFERENCE_DIR = Path(__file__).resolve().parent.parent / "schemas" / "reference"

LOWER, HIGHER = "lower", "higher"  # the column-index side where values stand

# ------------------------------------------------------------------------------- addresses


def column_letter(index: int) -> str:
    """0-based column index → Excel letters (0 → A, 26 → AA)."""
    out = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        out = chr(65 + rem) + out
    return out


def cell_address(row: int, column: int) -> str:
    """0-based (row, column) → "C6"."""
    return f"{column_letter(column)}{row + 1}"


# ------------------------------------------------------------------------- what a read found


@dataclass(frozen=True)
class Located:
    """A value read from a sheet and the cell it came from."""

    value: str | None  # the cell as rendered (original text); None when nothing was found
    cell: str | None  # e.g. "C6"; None when nothing was found
    label_cell: str | None = None  # the label the value belongs to, e.g. "E6"
    expected_shape: bool = True  # False: the nearest cell, although not of the expected shape
    known_as: str | None = None  # a level label: the level code of levels.csv it resolves to


@dataclass(frozen=True)
class SlotColumns:
    """One NotesCC slot as found in the header rows."""

    slot: str  # test1 .. test4, activities
    label: str  # the label as written in the file
    label_cells: str  # e.g. "G16:H16"
    mark_column: str | None  # e.g. "G"
    absence_column: str | None  # e.g. "H"
    token: str | None = None  # the hidden marker above the pair (information only)


@dataclass(frozen=True)
class ReadFinding:
    """A finding of the reader itself (file-level unless `sheet_row`), rule of schemas/rules.csv."""

    rule_id: str
    sheet: str
    column_name: str  # the cell(s) or label concerned
    value: str | None
    params: dict[str, str] = field(default_factory=dict)
    sheet_row: int | None = None


@dataclass
class SheetLayout:
    """How one sheet was placed: what `massar inspect` prints."""

    sheet: str
    dataset: str  # "students" | "marks"
    layout: str  # "ListEleve" | "NotesCC"
    header_rows: tuple[int, ...]  # Excel row numbers
    first_data_row: int
    value_side: str  # LOWER (mirrored sheet) or HIGHER
    value_side_evidence: str
    columns: dict[str, str]  # dataset column → column letter
    metadata: dict[str, Located]
    technical: dict[str, Located] = field(default_factory=dict)  # NotesCC hidden row 5
    slots: tuple[SlotColumns, ...] = ()
    remark_column: str | None = None
    token_row: int | None = None
    rows_read: int = 0
    findings: list[ReadFinding] = field(default_factory=list)


FINDING_SCHEMA: dict[str, Any] = {
    "sheet": pl.Utf8,
    "sheet_row": pl.Int64,
    "column_name": pl.Utf8,
    "value": pl.Utf8,
    "rule_id": pl.Utf8,
    "severity": pl.Utf8,
    "params": pl.Utf8,
}


def findings_frame(findings: Sequence[ReadFinding]) -> pl.DataFrame:
    """Reader findings in the shape of a validation findings frame (tasks/validate.py)."""
    return pl.DataFrame(
        {
            "sheet": [f.sheet for f in findings],
            "sheet_row": [f.sheet_row for f in findings],
            "column_name": [f.column_name for f in findings],
            "value": [f.value for f in findings],
            "rule_id": [f.rule_id for f in findings],
            "severity": [severity(f.rule_id) for f in findings],
            "params": [json.dumps(f.params, ensure_ascii=False) for f in findings],
        },
        schema=FINDING_SCHEMA,
    )


# ---------------------------------------------------------------------------- reference data


@dataclass(frozen=True, eq=False)
class Reference:
    """What the readers check values against (schemas/reference/ or another folder)."""

    level_by_label: dict[str, str]  # match_key of the Arabic label → level code
    level_codes: frozenset[str]
    subject_name: dict[str, str]  # subject code → Arabic name
    subject_codes: dict[str, frozenset[str]]  # match_key of the Arabic name → codes


def _csv_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


@cache
def reference(folder: Path = REFERENCE_DIR) -> Reference:
    """levels.csv and subjects.csv of `folder`, read once (a missing file: nothing known)."""
    by_label: dict[str, str] = {}
    codes: set[str] = set()
    for row in _csv_rows(folder / "levels.csv"):
        code = (row.get("level_code") or "").strip().upper()
        if code:
            codes.add(code)
            if row.get("label_ar"):
                by_label.setdefault(match_key(row["label_ar"]), code)
    names: dict[str, str] = {}
    by_name: dict[str, set[str]] = {}
    for row in _csv_rows(folder / "subjects.csv"):
        code = (row.get("subject_code") or "").strip()
        name = (row.get("name_ar") or "").strip()
        if code and name:
            names[code] = name
            by_name.setdefault(match_key(name), set()).add(code)
    return Reference(
        by_label, frozenset(codes), names, {k: frozenset(v) for k, v in by_name.items()}
    )


# ------------------------------------------------------------------------------ metadata

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


def meta_fields(dataset: Any, shapes: dict[str, str], required: Sequence[str]) -> tuple:
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


class _Above:
    """The rows above the header with their label cells, and per row the columns of its
    non-empty cells (computed once a row: most cells of the block are empty)."""

    def __init__(self, rows: Sequence[Sequence[object]], labels: set[tuple[int, int]]) -> None:
        self.rows, self.labels = rows, labels
        self._filled: dict[int, list[int]] = {}

    def filled(self, r: int) -> list[int]:
        cols = self._filled.get(r)
        if cols is None:
            row = self.rows[r]
            cols = self._filled[r] = [i for i, v in enumerate(row) if v != "" and _filled(v)]
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
        same, up = self.side(r, c, step)
        acceptable = None
        for rr, cols in ((r, same), (r - 1, up)):
            for cc in cols:
                rank, code = _rank(shape, self.rows[rr][cc], ref)
                if rank == 2:
                    return rank, rr, cc, code
                if rank == 1 and acceptable is None:
                    acceptable = (rank, rr, cc, code)
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


_KINDS: dict[tuple[MetaField, ...], dict[str, tuple[str | None, bool, str | None]]] = {}


def _text_kinds(fields: tuple[MetaField, ...]) -> dict[str, tuple[str | None, bool, str | None]]:
    """The memo of `_text_kind` for one set of fields (the same labels recur in every file)."""
    kinds = _KINDS.get(fields)
    if kinds is None or len(kinds) > 1 << 14:
        kinds = _KINDS[fields] = {}
    return kinds


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


def locate_metadata(
    rows: Sequence[Sequence[object]],
    header_row: int,
    fields: Sequence[MetaField],
    header_side: str,
    header_evidence: str,
    ref: Reference,
) -> MetadataFound:
    """The metadata values above `header_row` (0-based) with their cells; see the module doc."""
    kinds = _text_kinds(tuple(fields))
    found_at: dict[str, tuple[int, int]] = {}
    inline: dict[str, Located] = {}
    labels: set[tuple[int, int]] = set()
    for r in range(min(header_row, len(rows))):
        row = rows[r]
        if row.count("") == len(row):
            continue
        for c, cell in enumerate(row):
            if type(cell) is not str or not cell:
                continue
            kind = kinds.get(cell)
            if kind is None:
                kind = kinds[cell] = _text_kind(cell, fields)
            name, is_label, after = kind
            if is_label:
                labels.add((r, c))
                if name is not None:
                    found_at.setdefault(name, (r, c))
                    if after is not None:  # "label: value" in one cell
                        address = cell_address(r, c)
                        inline.setdefault(name, Located(after, address, address))
    above = _Above(rows, labels)
    # The side where more labels find a value of the expected shape; the header breaks a tie.
    chosen: dict[str, dict[str, tuple[int, int, int, str | None]]] = {LOWER: {}, HIGHER: {}}
    for side, step in ((LOWER, -1), (HIGHER, 1)):
        for f in fields:
            at = found_at.get(f.name)
            if at is None or f.name in inline:
                continue
            hit = above.choose(at[0], at[1], step, f.shape, ref)
            if hit is not None:
                chosen[side][f.name] = hit
    n_lower, n_higher = len(chosen[LOWER]), len(chosen[HIGHER])
    if n_lower != n_higher:
        side = LOWER if n_lower > n_higher else HIGHER
        evidence = (
            f"{max(n_lower, n_higher)} metadata labels find their value at a {side} column "
            f"index, {min(n_lower, n_higher)} at a {HIGHER if side == LOWER else LOWER} one"
        )
    else:
        side, evidence = header_side, f"{header_evidence} (metadata: {n_lower} each side)"
    values: dict[str, Located] = {}
    step = -1 if side == LOWER else 1
    for f in fields:
        at = found_at.get(f.name)
        if f.name in inline:
            values[f.name] = inline[f.name]
        elif at is None:
            values[f.name] = Located(None, None)
        elif f.name in chosen[side]:
            _, rr, cc, code = chosen[side][f.name]
            values[f.name] = Located(
                render(rows[rr][cc]), cell_address(rr, cc), cell_address(*at), True, code
            )
        else:
            values[f.name] = above.nearest(at, step, f)
    missing = [f for f in fields if f.required and f.name not in found_at]
    return MetadataFound(values, side, evidence, missing)


def missing_label(sheet: str, rows: Sequence[Sequence[object]], header_row: int, f) -> None:
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


# ---------------------------------------------------------------------------- NotesCC slots

_SLOT_BY_LABEL = {key(label): slot for slot, label, _ in MARK_SLOTS}
_MARK_KEY = key(MARK_LABEL)
_ABSENCE_KEY = key(ABSENCE_LABEL)
_REMARK_KEY = key(MARKS.column("remark").header_ar)
_SLOT_TOKEN_RE = re.compile(r"^#\d{1,3}#$")


@dataclass(frozen=True)
class HeaderGroup:
    """A label of the first header row and the columns it spans (at most a pair)."""

    label: str
    key: str
    start: int
    end: int  # exclusive
    mark_at: int | None
    absence_at: int | None
    is_pair: bool  # sub-headers النقطة / التغيب under it


def header_groups(head: Sequence[object], sub: Sequence[object]) -> list[HeaderGroup]:
    """The labels of the first header row, each with the cells it spans: the next cell when it
    is empty (merged) or repeats the label, unless a new mark column starts there."""
    width = max(len(head), len(sub))
    head_keys = [
        key(c) if i < len(head) and type(c := head[i]) is str and c.strip() else None
        for i in range(width)
    ]
    sub_keys = [
        key(c) if i < len(sub) and type(c := sub[i]) is str and c.strip() else None
        for i in range(width)
    ]
    has_sub = _MARK_KEY in sub_keys
    groups: list[HeaderGroup] = []
    i = 0
    while i < width:
        k = head_keys[i]
        if k is None:
            i += 1
            continue
        end = i + 1
        if end < width and head_keys[end] in (None, k) and sub_keys[end] != _MARK_KEY:
            end += 1
        if (
            end == i + 2
            and head_keys[end - 1] is None
            and sub_keys[end - 1] is None
            and (sub_keys[i] is None)
        ):
            end = i + 1  # a single column (e.g. merged over both header rows), not a pair
        span = sub_keys[i:end]
        mark_at = next((j for j in range(i, end) if sub_keys[j] == _MARK_KEY), None)
        absence_at = next((j for j in range(i, end) if sub_keys[j] == _ABSENCE_KEY), None)
        if not has_sub:
            mark_at = i
        groups.append(
            HeaderGroup(
                render(head[i]) or "",
                k,
                i,
                end,
                mark_at,
                absence_at,
                _MARK_KEY in span or _ABSENCE_KEY in span,
            )
        )
        i = end
    return groups


@dataclass(frozen=True)
class SlotGroup:
    slot: str
    group: HeaderGroup


def find_slots(groups: Sequence[HeaderGroup]) -> tuple[list[SlotGroup], list[str]]:
    """The slots among the header groups, and the problems to report (a slot label twice, a
    marks pair whose label is no known slot: its marks are not read)."""
    slots: list[SlotGroup] = []
    seen: set[str] = set()
    problems: list[str] = []
    for g in groups:
        slot = _SLOT_BY_LABEL.get(g.key)
        if slot is None:
            if g.is_pair and g.key != _REMARK_KEY and g.mark_at is not None:
                problems.append(f"pair « {g.label} » {_span(g)} is no known slot, not read")
            continue
        if g.mark_at is None and g.absence_at is None:
            continue
        if slot in seen:
            problems.append(f"« {g.label} » repeated in {_span(g)}, not read twice")
            continue
        seen.add(slot)
        slots.append(SlotGroup(slot, g))
    return slots, problems


def _span(g: HeaderGroup, row: int | None = None) -> str:
    a, b = column_letter(g.start), column_letter(g.end - 1)
    suffix = "" if row is None else str(row)
    return f"{a}{suffix}:{b}{suffix}" if b != a else f"{a}{suffix}"


def token_row(rows: Sequence[Sequence[object]], header_row: int) -> int | None:
    """The hidden row of slot tokens (#1# .. #100#): the nearest row above the header holding
    one; None when there is none."""
    for r in range(min(header_row, len(rows)) - 1, -1, -1):
        row = rows[r]
        if row.count("") != len(row) and any(
            type(c) is str and c and _SLOT_TOKEN_RE.match(c.strip()) for c in row
        ):
            return r
    return None


def tokens_of(row: Sequence[object]) -> dict[int, str]:
    return {
        i: c.strip()
        for i, c in enumerate(row)
        if type(c) is str and c and _SLOT_TOKEN_RE.match(c.strip())
    }


def token_check(
    tokens: dict[int, str] | None, groups: Sequence[HeaderGroup], header_row: int
) -> str | None:
    """What the hidden tokens say against the labelled pairs, None when they agree.

    They agree when there are as many tokens as labelled (mark, absence) pairs, the remark's
    included, and each token stands over a pair's first column: the genuine row
    (#1# #2# #3# #4# #100# over three tests, the activities and the remark) agrees, although
    the tokens' numbers are not the slots' (#4# over the activities). A missing token row is
    reported too: Massar always writes it."""
    pairs = [g for g in groups if g.is_pair]
    if tokens is None:
        return f"no marker row above the header row {header_row + 1}"
    starts = {g.start for g in pairs}
    if len(tokens) == len(pairs) and starts == set(tokens):
        return None
    listed = ", ".join(f"{column_letter(i)} {t}" for i, t in sorted(tokens.items()))
    return (
        f"{len(tokens)} markers ({listed}) for {len(pairs)} labelled pairs "
        f"({', '.join(_span(g, header_row + 1) for g in pairs)})"
    )


def subject_check(code: str | None, name: str | None, ref: Reference) -> str | None:
    """The disagreement between a subject code and a subject name in the reference, as a
    short phrase, or None (they agree, or one of them is unknown to the reference)."""
    if not code or not name:
        return None
    known_name = ref.subject_name.get(code)
    codes = ref.subject_codes.get(match_key(name), frozenset())
    if code in codes or (known_name is None and not codes):
        return None
    left = f"{code} = {known_name}" if known_name else f"{code} = ?"
    right = f"{clean_text(name)} = {', '.join(sorted(codes))}" if codes else f"{name} = ?"
    return f"{left} ; {right}"

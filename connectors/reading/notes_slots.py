"""Which NotesCC columns hold which mark slot, and whether the hidden markers agree.

Slots come from the labels of the two header rows (`find_slots`): a label over a (mark,
absence) pair, repeated over both cells or written in the first only, is one slot; the hidden
marker row (#1# .. #100#) is only compared with them (`token_check`), never used to name a
slot (docs/decisions/0006-reading-genuine-massar-layouts.md).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from connectors.reading.cells import SheetRows, column_letter, key, render
from schemas.datasets import ABSENCE_LABEL, MARK_LABEL, MARK_SLOTS, MARKS

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
    """A slot and the header group its columns are read from."""

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


def slot_tokens(rows_facts: SheetRows, header_row: int) -> tuple[int, dict[int, str]] | None:
    """The hidden row of slot tokens (#1# .. #100#), the nearest row above the header holding
    one, with its tokens by column index; None when there is none. A row's tokens are noted in
    its facts: the marker row recurs in every file of an export."""
    for r in range(min(header_row, len(rows_facts.rows)) - 1, -1, -1):
        facts = rows_facts[r]
        if facts is None:  # an empty row
            continue
        tokens = facts.notes.get(_TOKENS)
        if tokens is None:
            tokens = facts.notes[_TOKENS] = _tokens_of(rows_facts.rows[r])
        if tokens:
            return r, tokens
    return None


_TOKENS = "notes_slots.tokens"


def _tokens_of(row: Sequence[object]) -> dict[int, str]:
    """The slot markers of a row by column index (text cells only; shared between equal rows:
    read it, never change it)."""
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

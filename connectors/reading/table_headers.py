"""Which table dataset a header row belongs to, and where each declared column sits: the
Arabic labels of schemas/datasets.py compared by label key, in any order, among the first
non-empty rows (a title or blank lines may precede the header)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from connectors.reading.cells import is_blank, key, row_index
from connectors.reading.read_result import FileRejected
from schemas.datasets import DATASETS, Dataset

TABLE_DATASETS: tuple[Dataset, ...] = tuple(d for d in DATASETS.values() if d.layout == "table")
_TABLE_KEYS = {d.name: tuple(key(c.header_ar) for c in d.columns) for d in TABLE_DATASETS}
_ANY_TABLE_KEY = frozenset(k for keys in _TABLE_KEYS.values() for k in keys)

# How many leading rows may precede the header (blank lines, a title) in a table.
HEADER_SCAN_ROWS = 10
# A partial match names the dataset (then F008) when this share of its required labels is there.
PARTIAL_SHARE = 0.6
PARTIAL_MIN = 3


@dataclass(frozen=True)
class TableMatch:
    """The dataset a header row belongs to and where each declared column sits."""

    dataset: Dataset
    positions: dict[str, int]  # column name → index in the row; absent optional columns left out
    missing: tuple[str, ...] = ()  # Arabic labels of required columns not found (partial match)

    @property
    def complete(self) -> bool:
        """Every required column found."""
        return not self.missing


def match_table_header(cells: Sequence[object]) -> TableMatch | None:
    """Match a header row against every table dataset's `headers_ar` (label_key comparison).

    Returns the complete match with the most labels found (ties: the dataset with the fewest
    declared columns left unmatched), else the best partial match when it is clear enough to
    name the dataset (its `missing` labels then give F008), else None.
    """
    return match_table_index(row_index(cells))


def match_table_index(index: dict[str, int]) -> TableMatch | None:
    """`match_table_header` on a row's `row_index`."""
    if len(_ANY_TABLE_KEY.intersection(index)) < PARTIAL_MIN:
        return None
    best: tuple[tuple[float, float], TableMatch] | None = None
    best_partial: tuple[tuple[float, float], TableMatch] | None = None
    for dataset in TABLE_DATASETS:
        keys = _TABLE_KEYS[dataset.name]
        pairs = zip(dataset.columns, keys, strict=True)
        positions = {c.name: index[k] for c, k in pairs if k in index}
        missing = tuple(
            c.header_ar for c in dataset.columns if c.required and c.name not in positions
        )
        found = len(positions)
        rank = (found, found / len(keys))
        match = TableMatch(dataset, positions, missing)
        if not missing:
            if best is None or rank > best[0]:
                best = (rank, match)
        else:
            required = sum(1 for c in dataset.columns if c.required)
            got = required - len(missing)
            prank = (got / required, found)
            if (
                got >= PARTIAL_MIN
                and got / required >= PARTIAL_SHARE
                and (best_partial is None or prank > best_partial[0])
            ):
                best_partial = (prank, match)
    if best is not None:
        return best[1]
    return best_partial[1] if best_partial is not None else None


def find_table_header(
    rows: Sequence[Sequence[object]], index_of: Callable[[int], dict[str, int]] | None = None
) -> tuple[int, TableMatch] | None:
    """The first row (among the first non-empty ones) that matches a table dataset completely,
    else the first partial match. `index_of(r)` may give `row_index(rows[r])` from a cache."""
    partial: tuple[int, TableMatch] | None = None
    seen = 0
    for r, row in enumerate(rows):
        index = index_of(r) if index_of is not None else row_index(row)
        # A row with a label key has a text cell, so it is not blank: is_blank only for the rest.
        if not index and is_blank(row):
            continue
        match = match_table_index(index)
        if match is not None:
            if match.complete:
                return r, match
            if partial is None:
                partial = (r, match)
        seen += 1
        if seen >= HEADER_SCAN_ROWS:
            break
    return partial


def require_complete(match: TableMatch, where: str) -> None:
    """F008 naming the first required label missing from the header (`where`: its place)."""
    if match.missing:
        raise FileRejected("F008", where, column=match.missing[0])

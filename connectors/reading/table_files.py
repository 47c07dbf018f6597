"""Reading the datasets the platform defines as plain tables: a CSV file (UTF-8, UTF-8 BOM,
UTF-16, Windows-1256) or workbook sheets with the Arabic header labels of schemas/datasets.py.
A header without data rows is an empty declaration (a school without discipline incidents
sends exactly that)."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Sequence
from itertools import compress, zip_longest
from typing import cast

import polars as pl

from connectors.reading import limits
from connectors.reading.cells import is_blank, render_all
from connectors.reading.csv_text import decode_csv, sniff_delimiter
from connectors.reading.layout_detection import FoundSheet
from connectors.reading.read_frame import Columns, build_frame
from connectors.reading.read_result import FileRejected, SheetsRead
from connectors.reading.table_headers import TableMatch, find_table_header, require_complete
from schemas.datasets import DATASETS, SCHOOL_CODE, Dataset
from schemas.text import clean_text

_SCHOOL_CODE_RE = re.compile(SCHOOL_CODE)


def read_csv(
    data: bytes, *, school_code: str, allow_empty: bool = True
) -> tuple[Dataset, pl.DataFrame, str]:
    """A CSV submission as (dataset, frame, encoding). A header without data lines is an empty
    declaration (e.g. no discipline incident) unless `allow_empty` is false (then F005)."""
    text, encoding = decode_csv(data)
    if not text.strip():
        raise FileRejected("F005", "no content")
    delimiter = sniff_delimiter(text)
    try:
        records = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as exc:
        raise FileRejected("F001", f"CSV syntax error ({exc})") from exc
    # The header is the first non-empty record; it counts as line 1.
    start = 0
    while start < len(records) and not any(c.strip() for c in records[start]):
        start += 1
    records = records[start:]
    if not records:
        raise FileRejected("F005", "no content")
    if len(records) > limits.MAX_ROWS:
        raise FileRejected("F006", f"{len(records)} lines > {limits.MAX_ROWS}")
    found = find_table_header(records[:1])
    if found is None:
        raise FileRejected("F003", "CSV header matches no dataset")
    _, match = found
    require_complete(match, "line 1")
    out = empty_columns(match.dataset)
    table_columns(match, records, 1, range(1, len(records) + 1), "", out, text_cells=True)
    frame = build_frame(out)
    if frame.height == 0 and not allow_empty:
        raise FileRejected("F005", "header without data rows")
    if "school_code" in out:
        check_school_code_values(out["school_code"], school_code)
    return match.dataset, frame, encoding


def csv_dataset(data: bytes) -> str:
    """The dataset a CSV file's first line names (F001, F003, F005, F008), without reading
    its data lines."""
    text, _ = decode_csv(data)
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise FileRejected("F005", "no content")
    header = next(csv.reader([lines[0]], delimiter=sniff_delimiter(text)))
    found = find_table_header([header])
    if found is None:
        raise FileRejected("F003", "CSV header matches no dataset")
    if found[1].missing:
        raise FileRejected("F008", "line 1", column=found[1].missing[0])
    return found[1].dataset.name


def read_table_sheets(sheets: Sequence[FoundSheet]) -> SheetsRead:
    """The rows of a table dataset's workbook sheets, each under its header row (F008 for a
    required label missing from a header)."""
    out = empty_columns(DATASETS[sheets[0].kind.dataset])
    for name, rows, kind in sheets:
        assert kind.table is not None
        require_complete(kind.table, f"sheet {name}, row {kind.header_row + 1}")
        table_columns(kind.table, rows, kind.header_row + 1, range(1, len(rows) + 1), name, out)
    return SheetsRead(build_frame(out), list(dict.fromkeys(out["sheet"])))


def table_columns(
    match: TableMatch,
    rows: Sequence[Sequence[object]],
    first_row: int,
    row_numbers: Sequence[int],
    sheet: str,
    out: Columns,
    *,
    text_cells: bool = False,
) -> None:
    """Append the data rows `rows[first_row:]` to the column lists `out` (rendering cells),
    blank rows left out. Column by column: the block transposed once (short rows padded with
    None, which renders as None like a cell beyond the row's width), each column rendered by
    `render_all` (a few C-level passes for the usual all-text columns of a CSV).
    `text_cells`: every cell is a str (a CSV's records)."""
    block = rows[first_row:]
    numbers = row_numbers[first_row:]
    if len(block) != len(numbers):
        raise ValueError("one row number per row")
    if text_cells:
        # Text cells only: a row is blank when its cells joined are whitespace (C-level passes).
        texts = cast("Sequence[Sequence[str]]", block)
        keep = list(map(bool, map(str.strip, map("".join, texts))))
    else:
        keep = [not is_blank(row) for row in block]
    if not all(keep):
        block, numbers = list(compress(block, keep)), list(compress(numbers, keep))
    columns = list(zip_longest(*block, fillvalue=None))
    blank: list[str | None] = [None] * len(block)
    out["sheet"].extend([sheet] * len(block))
    out["sheet_row"].extend(numbers)
    for column in match.dataset.columns:
        p = match.positions.get(column.name)
        out[column.name].extend(
            render_all(columns[p]) if p is not None and p < len(columns) else blank
        )


def empty_columns(dataset: Dataset) -> Columns:
    """The column lists of a table dataset's frame, empty: sheet, sheet_row, its columns."""
    out: Columns = {"sheet": [], "sheet_row": []}
    for c in dataset.columns:
        out[c.name] = []
    return out


def check_school_codes(frame: pl.DataFrame, school_code: str) -> None:
    """F004 when every school code of the table belongs to one or more other schools.

    A file mixing the submitting school's code with others is left to row validation (R002);
    so is a column of values that look like no school code at all (R008)."""
    if "school_code" not in frame.columns:
        return
    check_school_code_values(frame.get_column("school_code").to_list(), school_code)


def check_school_code_values(values: Sequence[str | None], school_code: str) -> None:
    """`check_school_codes` on the school code column's values (str or None)."""
    mine = clean_text(school_code).upper()
    # Each distinct text cleaned once (a table repeats its school's code on every row), with
    # its count, in the order of first appearance (the most common code's tie-break).
    codes: Counter[str] = Counter()
    for value, times in Counter(values).items():
        if value is None:
            continue
        code = clean_text(value).upper()
        if code:
            codes[code] += times
    if not codes or mine in codes:
        return
    plausible = Counter({c: n for c, n in codes.items() if _SCHOOL_CODE_RE.match(c)})
    if plausible:
        value = plausible.most_common(1)[0][0]
        raise FileRejected("F004", f"school_code {value}", column="رمز المؤسسة", value=value)

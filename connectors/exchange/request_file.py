"""A fund's request file read into :class:`~schemas.exchange.ChildRequest` rows."""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime
from pathlib import Path

from connectors.exchange.file_error import ExchangeFileError
from connectors.exchange.profile import Profile
from ground.collector import collector_paused
from schemas.exchange import ChildRequest


@functools.lru_cache(maxsize=65536)
def _parse_date(text: str, date_format: str) -> date:
    """strptime, remembered: a request repeats the same few thousand birth dates."""
    return datetime.strptime(text, date_format).date()


def is_request_file(profile: Profile, name: str) -> bool:
    """Whether ``name`` is the name of one of this fund's request files."""
    return re.fullmatch(profile.request.file_name, name) is not None


# The last request read, by profile and sha256 of its bytes: the exchange flow reads a request
# when it fetches it (to set a bad one aside) and again when it answers it.
_last_read: tuple[tuple[str, str, str, str], tuple[ChildRequest, ...]] | None = None


def parse_request(profile: Profile, path: Path) -> list[ChildRequest]:
    """Read a fund's request file; raises :class:`ExchangeFileError` naming line and column.

    Values of personal columns (names, dates, identifiers) are never quoted in the errors: they
    may reach logs every operator sees (DOMAIN.md §5); the line and column locate them.

    The same bytes read again under the same name (the flow screens a request when it fetches
    it, then answers it) give the children read the first time, without reading them again.
    """
    global _last_read
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ExchangeFileError([f"{path} cannot be read ({error.strerror})."]) from error
    key = (profile.fund, profile.version, path.name, hashlib.sha256(data).hexdigest())
    last = _last_read
    if last is not None and last[0] == key:
        return list(last[1])
    with collector_paused():  # 200,000 records made: see ground/collector.py
        children = _parse_request(profile, path.name, data)
    _last_read = (key, tuple(children))
    return children


def _parse_request(profile: Profile, name: str, data: bytes) -> list[ChildRequest]:
    layout = profile.request
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode(layout.encoding)
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ExchangeFileError(
            [
                f"{name} line {line} is not {layout.encoding} text; ask {profile.code} to send "
                f"the file in {layout.encoding}."
            ]
        ) from error
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=layout.delimiter)
    rows = _csv_rows(reader, profile, name)
    header_row = next(rows, None)
    if header_row is None or not any(cell.strip() for cell in header_row):
        raise ExchangeFileError([f"{name} is empty: line 1 should be the header."])
    header = [cell.strip() for cell in header_row]
    wanted = [*layout.columns.values(), layout.benefit_column]
    missing = [column for column in wanted if column not in header]
    if missing:
        raise ExchangeFileError(
            [
                f"{name} line 1 lacks the column{'s' if len(missing) > 1 else ''} "
                f"{', '.join(missing)}; a {profile.code} request is "
                f"'{layout.delimiter}' separated with the header "
                f"{layout.delimiter.join(wanted)}."
            ]
        )
    repeated = sorted({column for column in header if header.count(column) > 1 and column})
    if repeated:
        raise ExchangeFileError([f"{name} line 1 repeats the column {', '.join(repeated)}."])
    position = {column: header.index(column) for column in wanted}
    fields = [(fld, position[column]) for fld, column in layout.columns.items()]

    children: list[ChildRequest] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    well_formed = _well_formed_child(profile, position)
    width = len(header)
    last_line = reader.line_num
    for row in rows:
        line, last_line = last_line + 1, reader.line_num
        child = well_formed(row, line) if len(row) == width else None
        if child is None:  # the row as read cell by cell, with the problems named
            if not any(cell.strip() for cell in row):
                continue  # blank line or a row of empty separators
            if len(row) != width:
                problems.append(
                    f"{name} line {line} has {len(row)} fields where the header has "
                    f"{width}; check the '{layout.delimiter}' separators on that line."
                )
                continue
            child, row_problems = _request_child(profile, name, line, row, position, fields)
            problems += row_problems
            if child is None:
                continue
        if child.fund_reference in seen:
            problems.append(
                f"{name} line {line}, column {layout.columns['fund_reference']}: the reference "
                f"already appears on line {seen[child.fund_reference]}; each child needs its "
                "own reference."
            )
            continue
        seen[child.fund_reference] = line
        children.append(child)
    if problems:
        raise ExchangeFileError(problems)
    return children


def _csv_rows(reader: Iterator[list[str]], profile: Profile, name: str) -> Iterator[list[str]]:
    """The rows of ``reader``; a line the csv module cannot read (a field longer than its
    limit, an unclosed quote) is an :class:`ExchangeFileError` naming the line."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            line = getattr(reader, "line_num", 0)
            raise ExchangeFileError(
                [
                    f"{name} line {line} cannot be read as CSV ({error}); a request's fields "
                    f"are short text separated by '{profile.request.delimiter}': ask "
                    f"{profile.code} for a corrected file."
                ]
            ) from error
        yield row


def _well_formed_child(
    profile: Profile, position: Mapping[str, int]
) -> Callable[[list[str], int], ChildRequest | None]:
    """The child of a row, or None when anything is off (then ``_request_child`` reads the row
    again and names the problems): the same child ``_request_child`` makes, without building
    a dict of the row's values, for the 200,000 rows of a request that are well formed."""
    layout = profile.request
    at = {fld: position[column] for fld, column in layout.columns.items()}
    reference, family, first = at["fund_reference"], at["child_family_name"], at["child_first_name"]
    number, cin = at.get("parent_number"), at.get("parent_cin")
    parent_family, parent_first = at.get("parent_family_name"), at.get("parent_first_name")
    birth_at, sex_at, code_at = at.get("birth_date"), at.get("sex"), at.get("student_code")
    benefit_at, benefits, date_format = (
        position[layout.benefit_column],
        layout.benefits,
        layout.date_format,
    )

    def child(row: list[str], line: int) -> ChildRequest | None:
        # each optional column read inline (not through a helper): 1.4 million cells
        fund_reference, family_name, first_name = (
            row[reference].strip(),
            row[family].strip(),
            row[first].strip(),
        )
        if not (fund_reference and family_name and first_name):
            return None
        birth: date | None = None
        written = row[birth_at].strip() if birth_at is not None else ""
        if written:
            try:
                birth = _parse_date(written, date_format)
            except ValueError:
                return None
        sex = (row[sex_at].strip().upper() if sex_at is not None else "") or None
        if sex is not None and sex not in ("M", "F"):
            return None
        benefit = benefits.get(row[benefit_at].strip().upper())
        if benefit is None:
            return None
        return ChildRequest(
            fund_reference=fund_reference,
            parent_number=row[number].strip() if number is not None else "",
            parent_cin=row[cin].strip() if cin is not None else "",
            parent_family_name=row[parent_family].strip() if parent_family is not None else "",
            parent_first_name=row[parent_first].strip() if parent_first is not None else "",
            child_family_name=family_name,
            child_first_name=first_name,
            birth_date=birth,
            sex=sex,
            student_code=(row[code_at].strip().upper() if code_at is not None else "") or None,
            benefit=benefit,
            source_line=line,
        )

    return child


def _request_child(
    profile: Profile,
    name: str,
    line: int,
    row: list[str],
    position: Mapping[str, int],
    fields: list[tuple[str, int]],
) -> tuple[ChildRequest | None, list[str]]:
    layout = profile.request
    problems: list[str] = []

    def cell(column: str) -> str:
        return row[position[column]].strip()

    def where(column: str) -> str:
        return f"{name} line {line}, column {column}"

    values = {fld: row[at].strip() for fld, at in fields}
    for fld in ("fund_reference", "child_family_name", "child_first_name"):
        if not values.get(fld):
            problems.append(f"{where(layout.columns[fld])} is empty; it is required.")
    birth_date: date | None = None
    if values.get("birth_date"):
        try:
            birth_date = _parse_date(values["birth_date"], layout.date_format)
        except ValueError:
            problems.append(
                f"{where(layout.columns['birth_date'])} is not a date written {layout.date_label}."
            )
    sex: str | None = None
    if values.get("sex"):
        sex = values["sex"].upper()
        if sex not in ("M", "F"):
            problems.append(f"{where(layout.columns['sex'])}: {values['sex']!r} is not M or F.")
    benefit_code = cell(layout.benefit_column).upper()
    benefit = layout.benefits.get(benefit_code)
    if benefit is None:
        known = " or ".join(layout.benefits)
        problems.append(
            f"{where(layout.benefit_column)}: {cell(layout.benefit_column)!r} is not a benefit "
            f"code of {profile.code} ({known})."
        )
    if problems:
        return None, problems
    assert benefit is not None
    return (
        ChildRequest(
            fund_reference=values["fund_reference"],
            parent_number=values.get("parent_number", ""),
            parent_cin=values.get("parent_cin", ""),
            parent_family_name=values.get("parent_family_name", ""),
            parent_first_name=values.get("parent_first_name", ""),
            child_family_name=values["child_family_name"],
            child_first_name=values["child_first_name"],
            birth_date=birth_date,
            sex=sex,
            student_code=(values.get("student_code") or "").upper() or None,
            benefit=benefit,
            source_line=line,
        ),
        [],
    )

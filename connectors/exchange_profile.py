"""Exchange profiles: how one partner fund asks about children and how the platform answers.

A :class:`Profile` is declared once per fund (``connectors/cnss/profile.py``,
``connectors/cmr/profile.py``) and says everything that differs between funds: the request
file's layout, the response CSV's layout, the XML namespaces and schemas, the version. The
machinery here is shared and the same for every fund:

* :func:`parse_request` reads a fund's request into :class:`~schemas.exchange.ChildRequest`;
* :func:`build_response_xml`, :func:`build_response_csv`, :func:`build_manifest` and
  :func:`build_batch_files` write a batch (only ``ChildAnswer.CONTRACTED`` fields leave);
  :func:`read_response_csv` reads the answers back, to rebuild a batch after a decision;
* :func:`batch_file_names` names the files of a batch with its sequence number;
* :func:`build_acknowledgement` / :func:`parse_acknowledgement` are the fund's receipt, bound
  to the sha256 of the file it received, parsed as untrusted input.

The specification a partner reads is ``docs/exchange-spec.md``.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from lxml import etree

from schemas.exchange import (
    LEFT,
    NOT_FOUND,
    NOT_SCHOOLED,
    REVIEW,
    SCHOOLED,
    STATUSES,
    ChildAnswer,
    ChildRequest,
)

if TYPE_CHECKING:
    from connectors.signing import SigningIdentity

ACCEPTED = "ACCEPTED"
REJECTED = "REJECTED"
OUTCOMES = (ACCEPTED, REJECTED)

# What each status carries besides fund_reference, school_year and status. A field not listed
# for a status is never written, even when the answer holds it: a REVIEW or NOT_FOUND answer
# names no pupil, because the candidate the matcher saw may be another child (DOMAIN.md §4-5).
REQUIRED = "required"
ALLOWED = "allowed"
CARRIED_BY_STATUS: Mapping[str, Mapping[str, str]] = {
    SCHOOLED: {"student_code": REQUIRED, "level_code": REQUIRED, "school_code": REQUIRED},
    LEFT: {
        "student_code": REQUIRED,
        "level_code": ALLOWED,
        "school_code": REQUIRED,
        "leaving_date": REQUIRED,
    },
    NOT_SCHOOLED: {
        "student_code": ALLOWED,
        "level_code": ALLOWED,
        "school_code": ALLOWED,
        "leaving_date": ALLOWED,
    },
    NOT_FOUND: {},
    REVIEW: {},
}
ALWAYS_CARRIED = ("fund_reference", "school_year", "status")

_FILE_NAME = re.compile(
    r"^MEN_(?P<fund>[A-Z]+)_SCOL_(?P<first>\d{4})-(?P<second>\d{4})_(?P<sequence>\d{6})"
    r"(?P<kind>\.xml|\.csv|\.csv\.p7s|_manifest\.json)$"
)
_KINDS = {".xml": "xml", ".csv": "csv", ".csv.p7s": "csv_signature", "_manifest.json": "manifest"}


class ExchangeFileError(Exception):
    """A request or acknowledgement that cannot be read as its profile says.

    ``str(error)`` is the first problem, one sentence with the file, line and column;
    ``problems`` lists every problem found.
    """

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        first = self.problems[0] if self.problems else "The file cannot be read."
        more = len(self.problems) - 1
        if more:  # still one sentence: the count goes before its full stop
            plural = "s" if more > 1 else ""
            first = f"{first.rstrip('.')} (and {more} more problem{plural} in the file)."
        super().__init__(first)


@dataclass(frozen=True)
class RequestLayout:
    """How the fund writes its request file."""

    file_name: str  # regular expression of the fund's request file names
    encoding: str
    delimiter: str
    line_ending: str  # what the fund writes; either is read
    date_format: str  # strptime format of the birth date
    date_label: str  # the same, as people write it
    columns: Mapping[str, str]  # ChildRequest field -> the fund's column header
    benefit_column: str
    benefits: Mapping[str, str]  # the fund's benefit code -> schemas.exchange benefit


@dataclass(frozen=True)
class CsvLayout:
    """How the platform writes the response CSV for this fund."""

    encoding: str
    delimiter: str
    line_ending: str
    date_format: str  # strftime format of the leaving date
    date_label: str
    header: Mapping[str, str]  # ChildAnswer.CONTRACTED field -> column label, in file order


@dataclass(frozen=True)
class Profile:
    """One fund's exchange profile, declared once (``connectors/<fund>/profile.py``)."""

    fund: str  # "cnss", "cmr": the settings' partner key
    fund_name: str
    version: str
    namespace: str  # of the response XML
    acknowledgement_namespace: str
    response_xsd: Path
    acknowledgement_xsd: Path
    request: RequestLayout
    response_csv: CsvLayout
    changes: tuple[str, ...] = ()  # one line per version, newest last

    def __post_init__(self) -> None:
        if not self.namespace.endswith(f":{self.version}"):
            raise ValueError(f"The namespace {self.namespace} does not end in the version.")
        if tuple(self.response_csv.header) != ChildAnswer.CONTRACTED:
            raise ValueError("The response CSV header must list exactly ChildAnswer.CONTRACTED.")

    @property
    def code(self) -> str:
        """The fund in file names and XML headers: ``CNSS``."""
        return self.fund.upper()


@dataclass(frozen=True)
class BatchFileNames:
    """The names of the files of one batch (sequence numbered per fund and school year)."""

    xml: str
    csv: str
    csv_signature: str
    manifest: str

    def all(self) -> tuple[str, str, str, str]:
        return (self.xml, self.csv, self.csv_signature, self.manifest)


@dataclass(frozen=True)
class ChildOutcome:
    """What the fund did with one child's answer."""

    fund_reference: str
    accepted: bool
    reason: str = ""  # why the fund rejected it; required when rejected


@dataclass(frozen=True)
class Acknowledgement:
    """The fund's receipt of one response file."""

    fund: str
    batch_id: str
    sequence: int
    response_file: str
    response_sha256: str
    received_at: datetime
    file_accepted: bool
    file_reason: str
    children: tuple[ChildOutcome, ...]

    @property
    def accepted(self) -> int:
        return sum(1 for child in self.children if child.accepted)

    @property
    def rejected(self) -> int:
        return len(self.children) - self.accepted


# ---------------------------------------------------------------------------------------------
# Profiles


def all_profiles() -> tuple[Profile, ...]:
    """Every profile the platform knows (each fund's current version), in the order of the fund
    registry (ground/funds.py): the profile of fund ``key`` is ``connectors/<key>/profile.py``."""
    from importlib import import_module

    from ground.funds import FUND_KEYS

    return tuple(import_module(f"connectors.{key}.profile").PROFILE for key in FUND_KEYS)


def profile_for(fund: str) -> Profile:
    """The profile of ``fund`` ("cnss" or "cmr", any case)."""
    for profile in all_profiles():
        if profile.fund == fund.lower():
            return profile
    known = ", ".join(p.fund for p in all_profiles())
    raise ValueError(f"No exchange profile for the fund {fund!r}; the profiles are {known}.")


def profile_for_namespace(namespace: str) -> Profile | None:
    """The profile whose response or acknowledgement namespace is ``namespace``."""
    for profile in all_profiles():
        if namespace in (profile.namespace, profile.acknowledgement_namespace):
            return profile
    return None


# ---------------------------------------------------------------------------------------------
# Requests


@functools.lru_cache(maxsize=65536)
def _parse_date(text: str, date_format: str) -> date:
    """strptime, remembered: a request repeats the same few thousand birth dates."""
    return datetime.strptime(text, date_format).date()


def is_request_file(profile: Profile, name: str) -> bool:
    """Whether ``name`` is the name of one of this fund's request files."""
    return re.fullmatch(profile.request.file_name, name) is not None


def parse_request(profile: Profile, path: Path) -> list[ChildRequest]:
    """Read a fund's request file; raises :class:`ExchangeFileError` naming line and column.

    Values of personal columns (names, dates, identifiers) are never quoted in the errors: they
    may reach logs every operator sees (DOMAIN.md §5); the line and column locate them.
    """
    layout = profile.request
    path = Path(path)
    name = path.name
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ExchangeFileError([f"{path} cannot be read ({error.strerror})."]) from error
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
    header_row = next(reader, None)
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

    children: list[ChildRequest] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    last_line = reader.line_num
    for row in reader:
        line, last_line = last_line + 1, reader.line_num
        if not any(cell.strip() for cell in row):
            continue  # blank line or a row of empty separators
        if len(row) != len(header):
            problems.append(
                f"{name} line {line} has {len(row)} fields where the header has {len(header)}; "
                f"check the '{layout.delimiter}' separators on that line."
            )
            continue
        child, row_problems = _request_child(profile, name, line, row, position)
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


def _request_child(
    profile: Profile, name: str, line: int, row: list[str], position: Mapping[str, int]
) -> tuple[ChildRequest | None, list[str]]:
    layout = profile.request
    problems: list[str] = []

    def cell(column: str) -> str:
        return row[position[column]].strip()

    def where(column: str) -> str:
        return f"{name} line {line}, column {column}"

    values = {fld: cell(column) for fld, column in layout.columns.items()}
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


# ---------------------------------------------------------------------------------------------
# Responses


def batch_file_names(profile: Profile, school_year: str, sequence: int) -> BatchFileNames:
    """``MEN_CNSS_SCOL_2024-2025_000001.xml`` and its ``.csv``, ``.csv.p7s``, manifest."""
    if not 1 <= sequence <= 999_999:
        raise ValueError(f"The sequence number {sequence} is not between 1 and 999999.")
    stem = f"MEN_{profile.code}_SCOL_{school_year_tag(school_year)}_{sequence:06d}"
    return BatchFileNames(
        xml=f"{stem}.xml",
        csv=f"{stem}.csv",
        csv_signature=f"{stem}.csv.p7s",
        manifest=f"{stem}_manifest.json",
    )


def parse_batch_file_name(name: str) -> tuple[Profile, str, int, str] | None:
    """``(profile, school_year, sequence, kind)`` of a batch file name, kind being ``xml``,
    ``csv``, ``csv_signature`` or ``manifest``; None for another name."""
    match = _FILE_NAME.match(name)
    if match is None or int(match["second"]) != int(match["first"]) + 1:
        return None
    try:
        profile = profile_for(match["fund"])
    except ValueError:
        return None
    school_year = f"{match['first']}/{match['second']}"
    return profile, school_year, int(match["sequence"]), _KINDS[match["kind"]]


def acknowledgement_file_name(profile: Profile, school_year: str, sequence: int) -> str:
    """The name the fund gives its acknowledgement: ``CNSS_ACK_SCOL_2024-2025_000001.xml``."""
    return f"{profile.code}_ACK_SCOL_{school_year_tag(school_year)}_{sequence:06d}.xml"


def school_year_tag(school_year: str) -> str:
    """``2024-2025`` for ``2024/2025`` (or ``2024-2025``), as in file names."""
    return canonical_school_year(school_year).replace("/", "-")


def canonical_school_year(school_year: str) -> str:
    """``2024/2025`` for ``2024/2025`` or ``2024-2025``; ValueError otherwise."""
    match = re.fullmatch(r"(\d{4})[/-](\d{4})", school_year.strip())
    if match is None or int(match[2]) != int(match[1]) + 1:
        raise ValueError(f"The school year {school_year!r} is not of the form YYYY/YYYY+1.")
    return f"{match[1]}/{match[2]}"


def contracted_values(answer: ChildAnswer, school_year: str) -> dict[str, str | date | None]:
    """The fields of ``answer`` that leave the platform, in ``CONTRACTED`` order; a field its
    status does not carry is None. ValueError when a field its status requires is missing,
    the status is unknown or the school year is not the batch's."""
    if answer.status not in STATUSES:
        raise ValueError(
            f"The answer {answer.fund_reference} has the unknown status {answer.status}."
        )
    if not answer.fund_reference:
        raise ValueError("An answer has no fund reference.")
    if canonical_school_year(answer.school_year) != school_year:
        raise ValueError(
            f"The answer {answer.fund_reference} is for {answer.school_year}, the batch for "
            f"{school_year}."
        )
    carried = CARRIED_BY_STATUS[answer.status]
    values: dict[str, str | date | None] = {}
    for name in ChildAnswer.CONTRACTED:
        if name == "school_year":
            values[name] = school_year
        elif name in ALWAYS_CARRIED:
            values[name] = getattr(answer, name)
        elif name in carried:
            value = getattr(answer, name) or None
            if value is None and carried[name] == REQUIRED:
                raise ValueError(
                    f"The {answer.status} answer {answer.fund_reference} has no {name}."
                )
            values[name] = value
        else:
            values[name] = None
    return values


def build_response_xml(
    profile: Profile,
    batch_id: str,
    sequence: int,
    school_year: str,
    answers: Sequence[ChildAnswer],
    generated_at: datetime,
    *,
    legal_basis: str = "",
) -> bytes:
    """The unsigned response XML (UTF-8) of a batch, valid against ``profile.response_xsd``.

    Sign it with :func:`connectors.signing.sign_xml`. Only ``ChildAnswer.CONTRACTED`` fields
    are written, and of those only what the status carries (``CARRIED_BY_STATUS``).
    """
    year = canonical_school_year(school_year)
    rows = _answer_rows(answers, year)
    if generated_at.tzinfo is None:
        raise ValueError("generated_at must carry its time zone.")
    ns = profile.namespace

    def sub(parent: etree._Element, tag: str, text: object = None) -> etree._Element:
        element = etree.SubElement(parent, f"{{{ns}}}{tag}")
        if text is not None:
            element.text = str(text)
        return element

    root = etree.Element(f"{{{ns}}}SchoolingResponse", nsmap={None: ns})
    root.set("version", profile.version)
    header = sub(root, "Header")
    sub(header, "Fund", profile.code)
    sub(header, "BatchId", batch_id)
    sub(header, "Sequence", sequence)
    sub(header, "SchoolYear", year)
    sub(header, "GeneratedAt", generated_at.isoformat(timespec="seconds"))
    if legal_basis:
        sub(header, "LegalBasis", legal_basis)
    counts = sub(header, "Counts")
    sub(counts, "Total", len(rows))
    for status in STATUSES:
        sub(counts, xml_name(status), sum(1 for row in rows if row["status"] == status))
    children = sub(root, "Children")
    for row in rows:
        child = sub(children, "Child")
        for name, value in row.items():
            if value is not None:
                sub(child, xml_name(name), value.isoformat() if isinstance(value, date) else value)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def build_response_csv(profile: Profile, school_year: str, answers: Sequence[ChildAnswer]) -> bytes:
    """The response CSV of a batch in the fund's layout (``profile.response_csv``)."""
    layout = profile.response_csv
    rows = _answer_rows(answers, canonical_school_year(school_year))
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=layout.delimiter, lineterminator=layout.line_ending)
    writer.writerow(layout.header.values())
    for row in rows:
        writer.writerow(
            [
                value.strftime(layout.date_format)
                if isinstance(value, date)
                else ("" if value is None else value)
                for value in row.values()
            ]
        )
    return buffer.getvalue().encode(layout.encoding)


def read_response_csv(profile: Profile, data: bytes) -> list[ChildAnswer]:
    """The answers of a response CSV the platform wrote (:func:`build_response_csv`), back as
    :class:`ChildAnswer` with the contracted fields only; rebuilding a batch after an officer's
    decision starts from them. ValueError when the header is not the profile's."""
    layout = profile.response_csv
    reader = csv.reader(
        io.StringIO(data.decode(layout.encoding), newline=""), delimiter=layout.delimiter
    )
    header = next(reader, [])
    if header != list(layout.header.values()):
        raise ValueError(f"The CSV does not start with the {profile.code} response header.")
    answers = []
    for row in reader:
        values = dict(zip(layout.header, row, strict=True))
        leaving = values["leaving_date"]
        answers.append(
            ChildAnswer(
                fund_reference=values["fund_reference"],
                status=values["status"],
                school_year=values["school_year"],
                student_code=values["student_code"] or None,
                level_code=values["level_code"] or None,
                school_code=values["school_code"] or None,
                leaving_date=(
                    datetime.strptime(leaving, layout.date_format).date() if leaving else None
                ),
            )
        )
    return answers


def build_manifest(
    profile: Profile,
    batch_id: str,
    sequence: int,
    school_year: str,
    files: Mapping[str, bytes],
    *,
    legal_basis: str = "",
) -> bytes:
    """The manifest (JSON, UTF-8): profile, version, batch, and sha256 and size of each file."""
    manifest = {
        "fund": profile.code,
        "profile_version": profile.version,
        "namespace": profile.namespace,
        "batch_id": batch_id,
        "sequence": sequence,
        "school_year": canonical_school_year(school_year),
        "legal_basis": legal_basis,
        "files": [
            {"name": name, "size": len(data), "sha256": sha256(data)}
            for name, data in files.items()
        ],
    }
    return (json.dumps(manifest, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def build_batch_files(
    profile: Profile,
    batch_id: str,
    sequence: int,
    school_year: str,
    answers: Sequence[ChildAnswer],
    generated_at: datetime,
    identity: SigningIdentity,
    *,
    legal_basis: str = "",
) -> dict[str, bytes]:
    """Every file of a batch, by name: signed XML, CSV, its ``.p7s`` and the manifest."""
    from connectors.signing import sign_cms_detached, sign_xml

    names = batch_file_names(profile, school_year, sequence)
    xml = sign_xml(
        build_response_xml(
            profile,
            batch_id,
            sequence,
            school_year,
            answers,
            generated_at,
            legal_basis=legal_basis,
        ),
        identity,
    )
    table = build_response_csv(profile, school_year, answers)
    files = {
        names.xml: xml,
        names.csv: table,
        names.csv_signature: sign_cms_detached(table, identity),
    }
    files[names.manifest] = build_manifest(
        profile, batch_id, sequence, school_year, files, legal_basis=legal_basis
    )
    return files


def _answer_rows(
    answers: Sequence[ChildAnswer], school_year: str
) -> list[dict[str, str | date | None]]:
    rows = [contracted_values(answer, school_year) for answer in answers]
    references = [row["fund_reference"] for row in rows]
    if len(set(references)) != len(references):
        raise ValueError("Two answers of the batch have the same fund reference.")
    return rows


# ---------------------------------------------------------------------------------------------
# Acknowledgements


def build_acknowledgement(
    profile: Profile,
    batch_id: str,
    sequence: int,
    response_file: str,
    response_sha256: str,
    children: Iterable[ChildOutcome],
    received_at: datetime,
    *,
    file_accepted: bool = True,
    file_reason: str = "",
) -> bytes:
    """The fund's acknowledgement of ``response_file`` (tests and the demo play the fund)."""
    ns = profile.acknowledgement_namespace
    outcomes = list(children)

    def sub(parent: etree._Element, tag: str, text: object = None) -> etree._Element:
        element = etree.SubElement(parent, f"{{{ns}}}{tag}")
        if text is not None:
            element.text = str(text)
        return element

    root = etree.Element(f"{{{ns}}}Acknowledgement", nsmap={None: ns})
    root.set("version", profile.version)
    sub(root, "Fund", profile.code)
    sub(root, "BatchId", batch_id)
    sub(root, "Sequence", sequence)
    sub(root, "ResponseFile", response_file)
    sub(root, "ResponseSha256", response_sha256)
    sub(root, "ReceivedAt", received_at.isoformat(timespec="seconds"))
    sub(root, "FileOutcome", ACCEPTED if file_accepted else REJECTED)
    if file_reason:
        sub(root, "FileReason", file_reason)
    counts = sub(root, "Counts")
    sub(counts, "Accepted", sum(1 for o in outcomes if o.accepted))
    sub(counts, "Rejected", sum(1 for o in outcomes if not o.accepted))
    listed = sub(root, "Children")
    for outcome in outcomes:
        child = sub(listed, "Child")
        sub(child, "FundReference", outcome.fund_reference)
        sub(child, "Outcome", ACCEPTED if outcome.accepted else REJECTED)
        if outcome.reason:
            sub(child, "Reason", outcome.reason)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def parse_acknowledgement(
    profile: Profile, data: bytes, *, expected_sha256: str | None = None, name: str = ""
) -> Acknowledgement:
    """Read a fund's acknowledgement as untrusted input (no DTD, entities or network).

    With ``expected_sha256``, the acknowledgement must name that sha256: an acknowledgement of
    another file does not count. Raises :class:`ExchangeFileError`.
    """
    label = name or f"The {profile.code} acknowledgement"
    root = parse_untrusted_xml(data, label)
    expected_tag = f"{{{profile.acknowledgement_namespace}}}Acknowledgement"
    if root.tag != expected_tag:
        raise ExchangeFileError(
            [
                f"{label} has the root element {root.tag}, not {expected_tag}; it is not a "
                f"{profile.code} acknowledgement of profile {profile.version}."
            ]
        )
    problems = schema_problems(profile.acknowledgement_xsd, root, label)
    if problems:
        raise ExchangeFileError(problems)
    ns = {"a": profile.acknowledgement_namespace}

    def text(element: etree._Element, path: str) -> str:
        return (element.findtext(path, default="", namespaces=ns) or "").strip()

    children = tuple(
        ChildOutcome(
            fund_reference=text(child, "a:FundReference"),
            accepted=text(child, "a:Outcome") == ACCEPTED,
            reason=text(child, "a:Reason"),
        )
        for child in root.iterfind("a:Children/a:Child", namespaces=ns)
    )
    acknowledgement = Acknowledgement(
        fund=text(root, "a:Fund"),
        batch_id=text(root, "a:BatchId"),
        sequence=int(text(root, "a:Sequence")),
        response_file=text(root, "a:ResponseFile"),
        response_sha256=text(root, "a:ResponseSha256").lower(),
        received_at=datetime.fromisoformat(text(root, "a:ReceivedAt")),
        file_accepted=text(root, "a:FileOutcome") == ACCEPTED,
        file_reason=text(root, "a:FileReason"),
        children=children,
    )
    if acknowledgement.fund != profile.code:
        problems.append(f"{label} is from {acknowledgement.fund}, not {profile.code}.")
    if (
        int(text(root, "a:Counts/a:Accepted")) != acknowledgement.accepted
        or int(text(root, "a:Counts/a:Rejected")) != acknowledgement.rejected
    ):
        problems.append(f"{label}'s counts do not match the children it lists.")
    for child in children:
        if not child.accepted and not child.reason:
            problems.append(f"{label} rejects the answer {child.fund_reference} without a reason.")
    if not acknowledgement.file_accepted and not acknowledgement.file_reason:
        problems.append(f"{label} rejects the file without a reason.")
    if expected_sha256 is not None and acknowledgement.response_sha256 != expected_sha256.lower():
        problems.append(
            f"{label} acknowledges a file with sha256 {acknowledgement.response_sha256}, not "
            f"the delivered {acknowledgement.response_file or 'file'} (sha256 "
            f"{expected_sha256.lower()}); it does not count as its receipt."
        )
    if problems:
        raise ExchangeFileError(problems)
    return acknowledgement


# ---------------------------------------------------------------------------------------------
# XML shared by responses, acknowledgements and verify


def parse_untrusted_xml(data: bytes, label: str) -> etree._Element:
    """Parse XML that came from outside: UTF-8 only, no DOCTYPE, no entities, no network, no
    huge trees. Raises :class:`ExchangeFileError` (one sentence naming ``label``)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ExchangeFileError([f"{label} is not UTF-8 text."]) from error
    # NUL bytes would let UTF-16 text pass the checks below; no exchange file has any.
    if "\x00" in text:
        raise ExchangeFileError([f"{label} is not UTF-8 text (it contains NUL bytes)."])
    if re.search(r"<!\s*(DOCTYPE|ENTITY)", text, flags=re.IGNORECASE):
        raise ExchangeFileError(
            [f"{label} declares a DOCTYPE or entities, which exchange files never do; refused."]
        )
    try:
        root = etree.fromstring(data, parser=safe_xml_parser())
    except etree.XMLSyntaxError as error:
        raise ExchangeFileError([f"{label} is not well-formed XML ({error.msg})."]) from error
    if root.getroottree().docinfo.doctype:
        raise ExchangeFileError([f"{label} declares a DOCTYPE; refused."])
    return root


def safe_xml_parser() -> etree.XMLParser:
    """The parser for XML from outside: no entity expansion, DTD, network or huge trees."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=False,
    )


@functools.lru_cache(maxsize=16)
def load_schema(path: Path) -> etree.XMLSchema:
    """The XSD at ``path`` (ours, shipped with the package), compiled once."""
    return etree.XMLSchema(etree.parse(str(path), parser=safe_xml_parser()))


def schema_problems(xsd: Path, root: etree._Element, label: str) -> list[str]:
    """One sentence per way ``root`` breaks the XSD at ``xsd`` (empty: valid)."""
    schema = load_schema(Path(xsd))
    if schema.validate(root):
        return []
    return [
        f"{label} line {entry.line} breaks the schema {Path(xsd).parent.name}/"
        f"{Path(xsd).name}: {entry.message}" + ("" if entry.message.endswith(".") else ".")
        for entry in schema.error_log
    ]


def xml_name(name: str) -> str:
    """The XML element of a contracted field or status: ``student_code`` → ``StudentCode``,
    ``NOT_FOUND`` → ``NotFound``."""
    return "".join(part.capitalize() for part in name.lower().split("_"))


def sha256(data: bytes) -> str:
    """Lowercase hex sha256, as manifests and acknowledgements write it."""
    return hashlib.sha256(data).hexdigest()

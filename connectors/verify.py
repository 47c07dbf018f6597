"""Checking a produced exchange file the way a partner would (``massar exchange verify``).

* ``.xml``: the XSD of its namespace (the profile is found from the namespace), the header's
  counts, what each status carries, and the enveloped XML signature. An acknowledgement is
  checked against the acknowledgement XSD.
* ``.csv``: the profile's layout (encoding, delimiter, line ending, header, statuses, codes,
  date format) and the detached CMS signature ``<file>.p7s`` beside it.
* ``_manifest.json``: the size and sha256 of every file it lists, read beside it.

Problems are sentences; an empty list means the file holds.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from lxml import etree

from connectors.exchange.acknowledgement import parse_acknowledgement
from connectors.exchange.batch_files import sha256
from connectors.exchange.file_error import ExchangeFileError
from connectors.exchange.file_names import parse_batch_file_name
from connectors.exchange.profile import Profile
from connectors.exchange.registry import all_profiles, profile_for, profile_for_namespace
from connectors.exchange.response_files import ALWAYS_CARRIED, CARRIED_BY_STATUS, REQUIRED, xml_name
from connectors.exchange.untrusted_xml import parse_untrusted_xml, schema_problems
from connectors.signing import (
    SignatureCheckError,
    SignerCertificate,
    verify_cms_signature,
    verify_xml_signature,
)
from schemas.datasets import SCHOOL_CODE, SCHOOL_YEAR, STUDENT_CODE
from schemas.exchange import STATUSES, ChildAnswer

_SCHOOL_YEAR = re.compile(SCHOOL_YEAR)
_MAX_LISTED = 20  # problems listed per file before "and N more"
_CODE_PATTERNS = {
    "student_code": re.compile(STUDENT_CODE),
    "school_code": re.compile(SCHOOL_CODE),
    "level_code": re.compile(r"^[0-9A-Z]{2,12}$"),
}


@dataclass
class VerifyReport:
    """What was checked in one file and what does not hold (empty ``problems``: valid)."""

    path: Path
    kind: str = ""  # "response XML", "acknowledgement XML", "response CSV", "manifest"
    profile: str = ""  # "CNSS 1.0"
    checked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    signer: SignerCertificate | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_file(path: Path, certificate: Path | bytes | None = None) -> VerifyReport:
    """Check one produced file (``.xml``, ``.csv``, ``.csv.p7s`` or ``_manifest.json``).

    With ``certificate`` (PEM), signatures must be made with it; without, the certificate a
    signature carries is used and the report's ``signer`` says whose it is, to compare with
    the fingerprint the directorate published.
    """
    path = Path(path)
    report = VerifyReport(path=path)
    if not path.is_file():
        report.problems.append(f"{path} does not exist or is not a file.")
        return report
    name = path.name
    if name.endswith(".p7s"):
        report = verify_file(path.with_name(name[: -len(".p7s")]), certificate)
    elif name.endswith(".json"):
        _verify_manifest(report)
    elif name.endswith(".xml"):
        _verify_xml(report, certificate)
    elif name.endswith(".csv"):
        _verify_csv(report, certificate)
    else:
        report.problems.append(
            f"{name} is neither an XML, a CSV nor a manifest file of the exchange profiles."
        )
    if len(report.problems) > _MAX_LISTED:
        more = len(report.problems) - _MAX_LISTED
        report.problems = [*report.problems[:_MAX_LISTED], f"... and {more} more problems."]
    return report


# ---------------------------------------------------------------------------------------------
# XML


def _verify_xml(report: VerifyReport, certificate: Path | bytes | None) -> None:
    name = report.path.name
    data = report.path.read_bytes()
    try:
        root = parse_untrusted_xml(data, name)
    except ExchangeFileError as error:
        report.problems += error.problems
        return
    namespace = etree.QName(root).namespace or ""
    profile = profile_for_namespace(namespace)
    if profile is None:
        known = ", ".join(p.namespace for p in all_profiles())
        report.problems.append(
            f"{name} is in the namespace {namespace or '(none)'}, which is none of the exchange "
            f"profiles ({known})."
        )
        return
    report.profile = f"{profile.code} {profile.version}"
    if namespace == profile.acknowledgement_namespace:
        report.kind = "acknowledgement XML"
        try:
            acknowledgement = parse_acknowledgement(profile, data, name=name)
        except ExchangeFileError as error:
            report.problems += error.problems
            return
        report.checked.append(
            f"schema {_shown(profile.acknowledgement_xsd)} of the {profile.code} profile "
            f"{profile.version}, counts of {len(acknowledgement.children)} children"
        )
        return
    report.kind = "response XML"
    problems = schema_problems(profile.response_xsd, root, name)
    if problems:
        report.problems += problems
    else:
        report.checked.append(
            f"schema {_shown(profile.response_xsd)} of the {profile.code} profile {profile.version}"
        )
        before = len(report.problems)
        _check_xml_content(report, profile, root)
        if len(report.problems) == before:
            count = root.findtext(
                f"{{{namespace}}}Header/{{{namespace}}}Counts/{{{namespace}}}Total"
            )
            report.checked.append(
                f"{count} children: header counts, school year and the fields each status carries"
            )
    try:  # on the tree parsed above: the file is parsed once
        report.signer = verify_xml_signature(root, certificate)
    except SignatureCheckError as error:
        report.problems.append(f"{name}: {error}")
    else:
        report.checked.append(f"enveloped XML signature (RSA-SHA256) by {report.signer.describe()}")


def _check_xml_content(report: VerifyReport, profile: Profile, root: etree._Element) -> None:
    """The header's counts, school year and sequence, and what each child carries, of a
    response whose schema holds (each child has one FundReference, SchoolYear and Status, its
    other fields at most once: what the XPaths below count on)."""
    name = report.path.name
    ns = {"m": profile.namespace}
    header_year = root.findtext("m:Header/m:SchoolYear", namespaces=ns) or ""
    _check_name(report, profile, header_year, root.findtext("m:Header/m:Sequence", namespaces=ns))
    listed = int(_count_children(root, profile.namespace, ""))
    total = int(root.findtext("m:Header/m:Counts/m:Total", namespaces=ns) or -1)
    if total != listed:
        report.problems.append(
            f"{name}: the header counts {total} children but the file lists {listed}."
        )
    statuses = _statuses(root, profile.namespace, "Status")
    for status in STATUSES:
        counted = int(root.findtext(f"m:Header/m:Counts/m:{xml_name(status)}", namespaces=ns))
        found = statuses[status]
        if counted != found:
            report.problems.append(
                f"{name}: the header counts {counted} {status} but the file lists {found}."
            )
    # libxml2 tells whether any child is for another year or carries what its status must not
    # (or lacks what it must); only then is each child read in Python, to say which.
    if header_year and not _any_child_wrong(root, profile.namespace, header_year, statuses):
        return
    children = root.findall("m:Children/m:Child", namespaces=ns)
    statuses_in_order = [child.findtext("m:Status", namespaces=ns) for child in children]
    # One pass over each child's elements (not one find per field: 200,000 children).
    field_of = {f"{{{profile.namespace}}}{xml_name(fld)}": fld for fld in ChildAnswer.CONTRACTED}
    for index, child in enumerate(children, start=1):
        values = {field_of[e.tag]: e.text for e in child if e.tag in field_of}
        present = set(values)
        where = f"{name}: child {index} ({values.get('fund_reference')})"
        if values.get("school_year") != header_year:
            report.problems.append(f"{where} is for another school year than the header's.")
        report.problems += _status_problems(where, statuses_in_order[index - 1] or "", present)


def _count_children(root: etree._Element, namespace: str, condition: str) -> float:
    count = etree.XPath(f"count(m:Children/m:Child{condition})", namespaces={"m": namespace})
    found = count(root)
    assert isinstance(found, float)
    return found


@functools.lru_cache(maxsize=32)
def _statuses_of(namespace: str, tag: str) -> etree.XPath:
    # a filter on the child, not a path back from the field (m:StudentCode/..): libxml2 merges
    # such node sets in quadratic time, minutes for 200,000 children
    return etree.XPath(
        f"m:Children/m:Child[m:{tag}]/m:Status/text()",
        namespaces={"m": namespace},
        smart_strings=False,
    )


def _statuses(root: etree._Element, namespace: str, tag: str) -> Counter[str]:
    """By status, how many children carry the element ``tag`` (``Status``: how many children
    have each status), counting on each child having one Status."""
    found = _statuses_of(namespace, tag)(root)
    assert isinstance(found, list)
    return Counter(str(status) for status in found)


@functools.lru_cache(maxsize=8)
def _other_year(namespace: str) -> etree.XPath:
    return etree.XPath(
        "boolean(m:Children/m:Child[m:SchoolYear != $year])", namespaces={"m": namespace}
    )


def _any_child_wrong(
    root: etree._Element, namespace: str, year: str, statuses: Counter[str]
) -> bool:
    """Whether any child is for another school year than ``year`` or breaks what its status
    carries (``_status_problems``' rules), from counts libxml2 makes: by status, the children
    (``statuses``) and those carrying each field. A field its status requires is carried by
    all of them, one it must not carry by none. Counts on the schema having held (one
    SchoolYear and one Status per child, each other field at most once)."""
    if bool(_other_year(namespace)(root, year=year)):
        return True
    if not set(statuses) <= set(CARRIED_BY_STATUS):
        return True
    for fld in ChildAnswer.CONTRACTED:
        if fld in ALWAYS_CARRIED:
            continue  # one per child: the schema's
        carrying = _statuses(root, namespace, xml_name(fld))
        for status, children in statuses.items():
            rule = CARRIED_BY_STATUS[status].get(fld)
            if (rule is None and carrying[status]) or (
                rule == REQUIRED and carrying[status] != children
            ):
                return True
    return False


# ---------------------------------------------------------------------------------------------
# CSV


def _verify_csv(report: VerifyReport, certificate: Path | bytes | None) -> None:
    name = report.path.name
    data = report.path.read_bytes()
    parsed = parse_batch_file_name(name)
    profile = parsed[0] if parsed else _profile_from_header(data)
    if profile is None:
        report.problems.append(
            f"{name} is not named MEN_<FUND>_SCOL_<YYYY-YYYY>_<NNNNNN>.csv and its header is "
            "none of the profiles'; its profile cannot be told."
        )
        return
    report.kind = "response CSV"
    report.profile = f"{profile.code} {profile.version}"
    layout = profile.response_csv
    before = len(report.problems)
    if data.startswith(b"\xef\xbb\xbf"):
        report.problems.append(f"{name} starts with a byte order mark, which the profile omits.")
        data = data[3:]
    try:
        text = data.decode(layout.encoding)
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        report.problems.append(f"{name} line {line} is not {layout.encoding} text.")
        text = data.decode(layout.encoding, "replace")
    _check_line_endings(report, profile, text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=layout.delimiter)
    header = next(reader, [])
    expected = list(layout.header.values())
    if header != expected:
        report.problems.append(
            f"{name} line 1 is not the {profile.code} header {layout.delimiter.join(expected)}."
        )
    else:
        year = parsed[1] if parsed else None
        rows = _check_csv_rows(report, profile, reader, year)
        if len(report.problems) == before:
            report.checked.append(
                f"layout of the {profile.code} profile {profile.version} ({layout.encoding}, "
                f"'{layout.delimiter}' separated, {_ending(layout.line_ending)}, dates "
                f"{layout.date_label}): header and {rows} children"
            )
    signature_path = report.path.with_name(name + ".p7s")
    if not signature_path.is_file():
        report.problems.append(
            f"{signature_path.name}, the CMS signature of {name}, is not beside it."
        )
        return
    try:
        report.signer = verify_cms_signature(
            report.path.read_bytes(), signature_path.read_bytes(), certificate
        )
    except SignatureCheckError as error:
        report.problems.append(f"{signature_path.name}: {error}")
    else:
        report.checked.append(
            f"detached CMS signature {signature_path.name} by {report.signer.describe()}"
        )


def _check_csv_rows(report: VerifyReport, profile: Profile, reader: Any, year: str | None) -> int:
    name = report.path.name
    layout = profile.response_csv
    fields = tuple(layout.header)
    at = {fld: fields.index(fld) for fld in fields}
    reference_at, year_at, status_at = at["fund_reference"], at["school_year"], at["status"]
    codes_at = [(fld, at[fld], pattern) for fld, pattern in _CODE_PATTERNS.items()]
    leaving_at = at["leaving_date"]
    seen: dict[str, int] = {}
    good_years: set[str] = set()  # checked once each: a batch has one
    dates: dict[str, bool] = {}  # a leaving date written as the layout says, by text
    rows = 0
    for row in reader:
        line = reader.line_num
        if len(row) != len(fields):
            report.problems.append(
                f"{name} line {line} has {len(row)} fields where the header has {len(fields)}."
            )
            continue
        rows += 1
        where = f"{name} line {line}"
        reference = row[reference_at]
        if not reference:
            report.problems.append(f"{where}: {layout.header['fund_reference']} is empty.")
        elif reference in seen:
            report.problems.append(
                f"{where}: the reference {reference} already appears on line {seen[reference]}."
            )
        else:
            seen[reference] = line
        school_year = row[year_at]
        if school_year not in good_years:
            if not _SCHOOL_YEAR.fullmatch(school_year):
                report.problems.append(
                    f"{where}: {layout.header['school_year']} {school_year!r} is not a school "
                    "year written YYYY/YYYY."
                )
            elif year and school_year != year:
                report.problems.append(
                    f"{where}: {layout.header['school_year']} {school_year} is not the batch's "
                    f"school year {year}."
                )
            else:
                good_years.add(school_year)
        status = row[status_at]
        if status not in STATUSES:
            report.problems.append(
                f"{where}: {layout.header['status']} {status!r} is not one of "
                f"{', '.join(STATUSES)}."
            )
        for fld, position, pattern in codes_at:
            value = row[position]
            if value and not pattern.match(value):
                report.problems.append(
                    f"{where}: {layout.header[fld]} {value!r} is not a Massar code."
                )
        leaving = row[leaving_at]
        if leaving:
            written = dates.get(leaving)
            if written is None:
                written = dates[leaving] = _is_date(leaving, layout.date_format)
            if not written:
                report.problems.append(
                    f"{where}: {layout.header['leaving_date']} is not a date written "
                    f"{layout.date_label}."
                )
        if status in STATUSES:
            shape = tuple(map(bool, row))
            if not _carries_rightly(status, fields, shape):
                present = {fld for fld, value in zip(fields, row, strict=True) if value}
                report.problems += _status_problems(where, status, present)
    return rows


def _is_date(text: str, date_format: str) -> bool:
    try:
        datetime.strptime(text, date_format)
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=256)
def _carries_rightly(status: str, fields: tuple[str, ...], shape: tuple[bool, ...]) -> bool:
    """Whether a child of ``status`` whose ``fields`` are filled as ``shape`` says has no
    status problem (a batch has a handful of such shapes)."""
    present = {fld for fld, filled in zip(fields, shape, strict=True) if filled}
    return not _status_problems("", status, present)


def _check_line_endings(report: VerifyReport, profile: Profile, text: str) -> None:
    ending = profile.response_csv.line_ending
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    else:
        report.problems.append(f"{report.path.name}: the last line has no line ending.")
    # every line as the profile ends it, told from counts first (200,000 lines)
    returns = text.count("\r")
    if returns == (len(lines) if ending == "\r\n" else 0) == text.count("\r\n"):
        return
    wrong = [
        number
        for number, line in enumerate(lines, start=1)
        if line.endswith("\r") != (ending == "\r\n") or "\r" in line.rstrip("\r")
    ]
    if wrong:
        others = f" (and {len(wrong) - 1} other lines)" if len(wrong) > 1 else ""
        report.problems.append(
            f"{report.path.name} line {wrong[0]}{others} does not end with {_ending(ending)}, "
            f"the {profile.code} profile's line ending."
        )


def _profile_from_header(data: bytes) -> Profile | None:
    first = data.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", "replace").lstrip("\ufeff")
    for profile in all_profiles():
        layout = profile.response_csv
        if first == layout.delimiter.join(layout.header.values()):
            return profile
    return None


# ---------------------------------------------------------------------------------------------
# Manifest


def _verify_manifest(report: VerifyReport) -> None:
    name = report.path.name
    report.kind = "manifest"
    try:
        manifest = json.loads(report.path.read_bytes().decode("utf-8"))
        fund, version = manifest["fund"], manifest["profile_version"]
        listed = manifest["files"]
        entries = [(str(e["name"]), int(e["size"]), str(e["sha256"]).lower()) for e in listed]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError):
        report.problems.append(
            f"{name} is not a manifest of the exchange profiles (UTF-8 JSON with fund, "
            "profile_version and files, each with name, size and sha256)."
        )
        return
    try:
        profile = profile_for(str(fund))
    except ValueError as error:
        report.problems.append(f"{name}: {error}")
        return
    report.profile = f"{profile.code} {version}"
    if version != profile.version:
        report.problems.append(
            f"{name} is of {profile.code} profile version {version}; this platform knows "
            f"{profile.version}."
        )
    if not entries:
        report.problems.append(f"{name} lists no file.")
    for file_name, size, digest in entries:
        if Path(file_name).name != file_name or file_name in ("", ".", ".."):
            report.problems.append(
                f"{name} lists {file_name!r}, which is not a plain file name; refused."
            )
            continue
        target = report.path.with_name(file_name)
        if not target.is_file():
            report.problems.append(f"{file_name}, listed in {name}, is not beside it.")
            continue
        content = target.read_bytes()
        if len(content) != size:
            report.problems.append(
                f"{file_name} has {len(content)} bytes where {name} says {size}: it is not the "
                "file that was delivered."
            )
        elif sha256(content) != digest:
            report.problems.append(
                f"{file_name} does not have the sha256 {name} lists: it is not the file that "
                "was delivered."
            )
    if not report.problems:
        report.checked.append(
            f"size and sha256 of the {len(entries)} files listed "
            f"({', '.join(e[0] for e in entries)})"
        )


# ---------------------------------------------------------------------------------------------
# Shared


def _status_problems(where: str, status: str, present: set[str]) -> list[str]:
    carried = CARRIED_BY_STATUS.get(status)
    if carried is None:
        return []  # reported with the status itself
    problems = []
    for fld in ChildAnswer.CONTRACTED:
        if fld in ALWAYS_CARRIED:
            if fld not in present:
                problems.append(f"{where} has no {fld}.")
        elif fld not in carried and fld in present:
            problems.append(f"{where} is {status} and must not carry {fld}.")
        elif carried.get(fld) == REQUIRED and fld not in present:
            problems.append(f"{where} is {status} and lacks {fld}.")
    return problems


def _check_name(
    report: VerifyReport, profile: Profile, school_year: str, sequence: str | None
) -> None:
    parsed = parse_batch_file_name(report.path.name)
    if parsed is None:
        return  # a renamed copy: the content is still checked
    named_profile, named_year, named_sequence, _kind = parsed
    if (
        named_profile.fund != profile.fund
        or named_year != school_year
        or (str(named_sequence) != (sequence or ""))
    ):
        report.problems.append(
            f"{report.path.name} names {named_profile.code} {named_year} sequence "
            f"{named_sequence} but its header says {profile.code} {school_year} sequence "
            f"{sequence}."
        )


def _shown(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def _ending(ending: str) -> str:
    return "CRLF" if ending == "\r\n" else "LF"

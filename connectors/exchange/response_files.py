"""The response a fund receives: the XML and the CSV of a batch in the fund's layout, and the
CSV read back. Only ``ChildAnswer.CONTRACTED`` fields are written, and of those only what the
answer's status carries (``CARRIED_BY_STATUS``)."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from datetime import date, datetime

from lxml import etree

from connectors.exchange.file_names import canonical_school_year
from connectors.exchange.profile import Profile
from schemas.exchange import (
    LEFT,
    NOT_FOUND,
    NOT_SCHOOLED,
    REVIEW,
    SCHOOLED,
    STATUSES,
    ChildAnswer,
)

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


def _answer_rows(
    answers: Sequence[ChildAnswer], school_year: str
) -> list[dict[str, str | date | None]]:
    rows = [contracted_values(answer, school_year) for answer in answers]
    references = [row["fund_reference"] for row in rows]
    if len(set(references)) != len(references):
        raise ValueError("Two answers of the batch have the same fund reference.")
    return rows


def xml_name(name: str) -> str:
    """The XML element of a contracted field or status: ``student_code`` → ``StudentCode``,
    ``NOT_FOUND`` → ``NotFound``."""
    return "".join(part.capitalize() for part in name.lower().split("_"))

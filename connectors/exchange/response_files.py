"""The response a fund receives: the XML and the CSV of a batch in the fund's layout, and the
CSV read back. Only ``ChildAnswer.CONTRACTED`` fields are written, and of those only what the
answer's status carries (``CARRIED_BY_STATUS``)."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
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
    rows = answer_rows(answers, year)
    return response_xml(profile, batch_id, sequence, year, rows, generated_at, legal_basis)


def response_xml(
    profile: Profile,
    batch_id: str,
    sequence: int,
    year: str,
    rows: Sequence[Mapping[str, str | date | None]],
    generated_at: datetime,
    legal_basis: str = "",
) -> bytes:
    """:func:`build_response_xml` of rows already checked (:func:`answer_rows`).

    The text is written line by line, as lxml writes the tree of :func:`_response_tree`
    (pretty-printed, the same bytes) in a tenth of the time: 200,000 children are about 1.4
    million elements. A value XML cannot hold (a control character) takes the tree's way,
    which refuses it."""
    return response_xml_and_canonical(
        profile, batch_id, sequence, year, rows, generated_at, legal_basis
    )[0]


def response_xml_and_canonical(
    profile: Profile,
    batch_id: str,
    sequence: int,
    year: str,
    rows: Sequence[Mapping[str, str | date | None]],
    generated_at: datetime,
    legal_basis: str = "",
) -> tuple[bytes, bytes | None]:
    """:func:`response_xml`, and the exclusive canonical form (c14n) of its root element when
    the text is written so that it is that form between the XML declaration and the last
    newline (no carriage return in a value, at least one child), else None.

    The signature's digest is of that form: given it, :func:`connectors.signing.sign_xml`
    does not parse and canonicalise again the 1.4 million elements of 200,000 children."""
    if generated_at.tzinfo is None:
        raise ValueError("generated_at must carry its time zone.")
    counts = Counter(row["status"] for row in rows)
    header = [
        ("Fund", profile.code),
        ("BatchId", batch_id),
        ("Sequence", str(sequence)),
        ("SchoolYear", year),
        ("GeneratedAt", generated_at.isoformat(timespec="seconds")),
    ]
    if legal_basis:
        header.append(("LegalBasis", legal_basis))
    texts = "".join(text for _, text in header)
    values = "".join(value for row in rows for value in row.values() if isinstance(value, str))
    if not _writable(profile.namespace + profile.version, texts + values):
        tree = _response_tree(profile, batch_id, sequence, year, rows, generated_at, legal_basis)
        return tree, None
    lines = [
        _DECLARATION,
        f'<SchoolingResponse xmlns="{profile.namespace}" version="{profile.version}">',
        "  <Header>",
        *(f"    <{tag}>{_escaped(text)}</{tag}>" for tag, text in header),
        "    <Counts>",
        f"      <Total>{len(rows)}</Total>",
        *(f"      <{_TAG[s]}>{counts.get(s, 0)}</{_TAG[s]}>" for s in STATUSES),
        "    </Counts>",
        "  </Header>",
    ]
    if rows:
        lines.append("  <Children>")
        # nothing to escape in any value (the usual batch): each value as it is
        escape = _escaped if _ESCAPED.search(values) else str
        opening = {name: f"      <{tag}>" for name, tag in _TAG.items()}
        closing = {name: f"</{tag}>" for name, tag in _TAG.items()}
        for row in rows:
            lines.append("    <Child>")
            for name, value in row.items():
                if value is not None:
                    text = value.isoformat() if isinstance(value, date) else escape(value)
                    lines.append(f"{opening[name]}{text}{closing[name]}")
            lines.append("    </Child>")
        lines.append("  </Children>")
    else:
        lines.append("  <Children/>")  # c14n writes <Children></Children>
    lines.append("</SchoolingResponse>\n")
    document = "\n".join(lines).encode("utf-8")
    # c14n writes a carriage return &#xD;, this text &#13; (as lxml does)
    canonical = bool(rows) and "\r" not in texts + values
    return document, document[len(_DECLARATION) + 1 : -1] if canonical else None


_DECLARATION = "<?xml version='1.0' encoding='UTF-8'?>"


def _response_tree(
    profile: Profile,
    batch_id: str,
    sequence: int,
    year: str,
    rows: Sequence[Mapping[str, str | date | None]],
    generated_at: datetime,
    legal_basis: str,
) -> bytes:
    """The response XML built element by element with lxml (what :func:`response_xml` writes
    as text; lxml refuses a value XML cannot hold with a ValueError)."""
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


# Characters XML 1.0 cannot hold (lxml refuses them); and what lxml escapes in text.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ESCAPED = re.compile("[&<>\r]")
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"}


def _writable(markup: str, texts: str) -> bool:
    """Whether the text way writes what lxml would: no character XML cannot hold in the
    ``texts`` (the header's and the values, joined), and nothing to escape in the namespace
    and version (attributes)."""
    if re.search('[&<>"\t\n\r]', markup) or _NOT_XML.search(markup):
        return False
    return not _NOT_XML.search(texts)


def _escaped(text: str) -> str:
    return _ESCAPED.sub(lambda m: _ESCAPES[m.group()], text) if _ESCAPED.search(text) else text


def build_response_csv(profile: Profile, school_year: str, answers: Sequence[ChildAnswer]) -> bytes:
    """The response CSV of a batch in the fund's layout (``profile.response_csv``)."""
    rows = answer_rows(answers, canonical_school_year(school_year))
    return response_csv(profile, rows)


def response_csv(profile: Profile, rows: Sequence[Mapping[str, str | date | None]]) -> bytes:
    """:func:`build_response_csv` of rows already checked (:func:`answer_rows`).

    Written by joining the values where none needs quoting (the usual batch: counted, not
    searched value by value), else by the csv module, which quotes them: the same bytes."""
    layout = profile.response_csv
    date_format, delimiter, ending = layout.date_format, layout.delimiter, layout.line_ending
    cells = [
        [
            value.strftime(date_format)
            if isinstance(value, date)
            else ("" if value is None else value)
            for value in row.values()
        ]
        for row in rows
    ]
    lines = [delimiter.join(layout.header.values()), *(delimiter.join(row) for row in cells)]
    text = ending.join(lines) + ending
    width = len(layout.header)
    # no value with the delimiter, a quote or a line break: the counts are the lines' own
    if (
        width > 1
        and text.count(delimiter) == len(lines) * (width - 1)
        and '"' not in text
        and text.count("\n") == len(lines)
        and text.count("\r") == (len(lines) if ending == "\r\n" else 0)
    ):
        return text.encode(layout.encoding)
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=layout.delimiter, lineterminator=layout.line_ending)
    writer.writerow(layout.header.values())
    writer.writerows(cells)
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


def answer_rows(
    answers: Sequence[ChildAnswer], school_year: str
) -> list[dict[str, str | date | None]]:
    """The contracted values of every answer (:func:`contracted_values`), in order, for the XML
    and the CSV of one batch; ValueError when two answers have the same fund reference."""
    rows = [contracted_values(answer, school_year) for answer in answers]
    references = [row["fund_reference"] for row in rows]
    if len(set(references)) != len(references):
        raise ValueError("Two answers of the batch have the same fund reference.")
    return rows


def xml_name(name: str) -> str:
    """The XML element of a contracted field or status: ``student_code`` → ``StudentCode``,
    ``NOT_FOUND`` → ``NotFound``."""
    return "".join(part.capitalize() for part in name.lower().split("_"))


_TAG = {name: xml_name(name) for name in (*ChildAnswer.CONTRACTED, *STATUSES)}

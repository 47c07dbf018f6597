"""The fund's acknowledgement of one response file: written by tests and the demo (playing the
fund), read by the platform as untrusted input and bound to the sha256 of the file it names."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from connectors.exchange.file_error import ExchangeFileError
from connectors.exchange.profile import Profile
from connectors.exchange.untrusted_xml import parse_untrusted_xml, schema_problems

ACCEPTED = "ACCEPTED"
REJECTED = "REJECTED"
OUTCOMES = (ACCEPTED, REJECTED)


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

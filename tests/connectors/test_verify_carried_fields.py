"""The partner check (``massar exchange verify``) finds every child that carries what its status
must not, or lacks what it must, in a response whose schema holds: the counts libxml2 makes
tell that one is wrong, the child is then named."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree

from connectors.exchange.batch_files import build_batch_files
from connectors.exchange.file_names import batch_file_names
from connectors.exchange.registry import profile_for
from connectors.exchange.response_files import ALWAYS_CARRIED, CARRIED_BY_STATUS, xml_name
from connectors.signing import load_signing_identity, make_test_certificate
from connectors.verify import verify_file
from schemas.exchange import LEFT, NOT_FOUND, NOT_SCHOOLED, REVIEW, SCHOOLED, ChildAnswer

YEAR = "2024/2025"
AT = datetime(2025, 1, 10, 8, 30, tzinfo=UTC)
VALUES = {  # valid for the schema
    "student_code": "N111400199",
    "level_code": "2APIC",
    "school_code": "61285X",
    "leaving_date": "2024-11-03",
}
PLACE = list(ChildAnswer.CONTRACTED)  # the schema's order of a child's elements


@pytest.fixture(scope="module")
def signed(tmp_path_factory) -> tuple[bytes, Path]:
    now = datetime.now(UTC)
    key, cert = make_test_certificate(
        tmp_path_factory.mktemp("pki"), now - timedelta(days=1), now + timedelta(days=30), "DP"
    )
    base = ChildAnswer(fund_reference="R0", status=NOT_FOUND, school_year=YEAR)
    full = {fld: VALUES[fld] for fld in VALUES if fld != "leaving_date"}
    answers = [
        base,
        dataclasses.replace(base, fund_reference="R1", status=SCHOOLED, **full),
        dataclasses.replace(
            base, fund_reference="R2", status=LEFT, leaving_date=date(2024, 11, 3), **full
        ),
        dataclasses.replace(base, fund_reference="R3", status=NOT_SCHOOLED),
        dataclasses.replace(base, fund_reference="R4", status=REVIEW),
        dataclasses.replace(base, fund_reference="R5", status=NOT_FOUND),
    ]
    profile = profile_for("cnss")
    files = build_batch_files(
        profile, "B-1", 1, YEAR, answers, AT, load_signing_identity(key, cert)
    )
    return files[batch_file_names(profile, YEAR, 1).xml], cert


def _changed(
    signed: bytes, reference: str, fld: str, folder: Path, *, add: bool
) -> tuple[Path, int]:
    """The file with the child ``reference`` given ``fld`` (``add``) or without it; its
    position."""
    root = etree.fromstring(signed)
    ns = etree.QName(root).namespace
    children = root.findall(f"{{{ns}}}Children/{{{ns}}}Child")
    position, child = next(
        (i, c)
        for i, c in enumerate(children, start=1)
        if c.findtext(f"{{{ns}}}FundReference") == reference
    )
    existing = child.find(f"{{{ns}}}{xml_name(fld)}")
    if add:
        assert existing is None
        element = etree.Element(f"{{{ns}}}{xml_name(fld)}")
        element.text = VALUES[fld]
        after = [e for e in child if PLACE.index(_field(e.tag)) < PLACE.index(fld)]
        child.insert(len(after), element)
    else:
        assert existing is not None
        child.remove(existing)
    path = folder / "MEN_CNSS_SCOL_2024-2025_000001.xml"
    path.write_bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    return path, position


def _field(tag: str) -> str:
    local = etree.QName(tag).localname
    return next(fld for fld in PLACE if xml_name(fld) == local)


REFERENCE = {SCHOOLED: "R1", LEFT: "R2", NOT_SCHOOLED: "R3", REVIEW: "R4", NOT_FOUND: "R5"}
CASES = [
    (status, fld, "must not carry" if fld not in carried else "lacks")
    for status, carried in CARRIED_BY_STATUS.items()
    for fld in ChildAnswer.CONTRACTED
    if fld not in ALWAYS_CARRIED and (fld not in carried or carried[fld] == "required")
]


def test_the_file_as_built_holds(signed, tmp_path) -> None:
    path = tmp_path / "MEN_CNSS_SCOL_2024-2025_000001.xml"
    path.write_bytes(signed[0])
    assert verify_file(path, signed[1]).problems == []


@pytest.mark.parametrize(("status", "fld", "said"), CASES)
def test_a_field_its_status_forbids_or_requires_is_named(
    signed, tmp_path, status, fld, said
) -> None:
    reference = REFERENCE[status]
    path, position = _changed(signed[0], reference, fld, tmp_path, add=said != "lacks")
    problems = verify_file(path, signed[1]).problems
    expected = f"child {position} ({reference}) is {status} and {said} {fld}."
    assert any(problem.endswith(expected) for problem in problems), problems
    assert not any("breaks the schema" in problem for problem in problems), problems


def test_a_header_count_that_is_not_the_files_is_named(signed, tmp_path) -> None:
    text = signed[0].replace(b"<Review>1</Review>", b"<Review>2</Review>")
    path = tmp_path / "MEN_CNSS_SCOL_2024-2025_000001.xml"
    path.write_bytes(text)
    problems = verify_file(path, signed[1]).problems
    assert any("the header counts 2 REVIEW but the file lists 1." in p for p in problems)


# ---- the CSV: every row read, each problem named with its line ----------------------------------


def _csv_with(signed_csv: bytes, line: int, change: dict[str, str], folder: Path) -> Path:
    profile = profile_for("cnss")
    layout = profile.response_csv
    lines = signed_csv.decode(layout.encoding).split(layout.line_ending)
    cells = lines[line - 1].split(layout.delimiter)
    for fld, value in change.items():
        cells[list(layout.header).index(fld)] = value
    lines[line - 1] = layout.delimiter.join(cells)
    path = folder / batch_file_names(profile, YEAR, 1).csv
    path.write_bytes(layout.line_ending.join(lines).encode(layout.encoding))
    return path


@pytest.fixture(scope="module")
def signed_csv(signed) -> bytes:
    profile = profile_for("cnss")
    root = etree.fromstring(signed[0])
    ns = etree.QName(root).namespace
    answers = [
        ChildAnswer(
            **{
                fld: (date.fromisoformat(text) if fld == "leaving_date" and text else text)
                for fld in ChildAnswer.CONTRACTED
                if (text := child.findtext(f"{{{ns}}}{xml_name(fld)}")) is not None
            }
        )
        for child in root.iter(f"{{{ns}}}Child")
    ]
    key_and_cert = signed[1].parent
    identity = load_signing_identity(
        next(key_and_cert.glob("*-key.pem")), next(key_and_cert.glob("*-cert.pem"))
    )
    files = build_batch_files(profile, "B-1", 1, YEAR, answers, AT, identity)
    return files[batch_file_names(profile, YEAR, 1).csv]


@pytest.mark.parametrize(
    ("line", "change", "said"),
    [
        (3, {"level_code": ""}, "line 3 is SCHOOLED and lacks level_code."),
        (2, {"school_code": "61285X"}, "line 2 is NOT_FOUND and must not carry school_code."),
        (4, {"leaving_date": ""}, "line 4 is LEFT and lacks leaving_date."),
        (6, {"school_year": "2024-2025"}, "'2024-2025' is not a school year written YYYY/YYYY."),
        (6, {"school_year": "2023/2024"}, "is not the batch's school year 2024/2025."),
        (7, {"fund_reference": "R1"}, "line 7: the reference R1 already appears on line 3."),
        (7, {"fund_reference": ""}, "line 7: "),
        (3, {"student_code": "n1"}, "'n1' is not a Massar code."),
        (4, {"leaving_date": "2024-13-45"}, "line 4: "),
        (5, {"status": "MAYBE"}, "'MAYBE' is not one of"),
    ],
)
def test_each_problem_of_a_csv_row_is_named_with_its_line(
    signed, signed_csv, tmp_path, line, change, said
) -> None:
    path = _csv_with(signed_csv, line, change, tmp_path)
    problems = verify_file(path, signed[1]).problems
    assert any(said in problem for problem in problems), problems
    first = [p for p in problems if "line" in p and ".p7s" not in p]
    assert first and all(f" line {line}" in p for p in first), problems


@pytest.mark.parametrize(
    ("stray", "ending"),
    [("", "\n"), ("\r", "\r\n")],  # one line ending LF; a carriage return inside a line
)
def test_a_line_not_ended_as_the_profile_says_is_named(
    signed, signed_csv, tmp_path, stray, ending
) -> None:
    lines = signed_csv.decode("utf-8").split("\r\n")
    third = lines[2][:3] + stray + lines[2][3:]
    text = "\r\n".join(lines[:2]) + "\r\n" + third + ending + "\r\n".join(lines[3:])
    path = tmp_path / batch_file_names(profile_for("cnss"), YEAR, 1).csv
    path.write_bytes(text.encode("utf-8"))
    problems = verify_file(path, signed[1]).problems
    assert any("line 3 does not end with CRLF" in problem for problem in problems), problems

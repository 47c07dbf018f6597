"""One conformance suite over every exchange profile (CNSS, CMR): the generator's requests are
read, the responses are valid, signed and checked by independent tools (xmlsec1, openssl), only
contracted fields leave, and acknowledgements are parsed as hostile input."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import shutil
import socket
import subprocess
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from lxml import etree

from connectors.exchange.acknowledgement import (
    ChildOutcome,
    build_acknowledgement,
    parse_acknowledgement,
)
from connectors.exchange.batch_files import build_batch_files, sha256
from connectors.exchange.file_error import ExchangeFileError
from connectors.exchange.file_names import batch_file_names, parse_batch_file_name
from connectors.exchange.profile import Profile
from connectors.exchange.registry import profile_for, profile_for_namespace
from connectors.exchange.request_file import parse_request
from connectors.exchange.response_files import build_response_csv, build_response_xml, xml_name
from connectors.exchange.untrusted_xml import parse_untrusted_xml, safe_xml_parser, schema_problems
from connectors.signing import (
    SignatureCheckError,
    SigningError,
    load_signing_identity,
    make_test_certificate,
    verify_cms_signature,
    verify_xml_signature,
)
from connectors.verify import verify_file
from ground.funds import FUND_KEYS
from massar.cli import main
from schemas.exchange import (
    LEFT,
    NOT_FOUND,
    REVIEW,
    SCHOOLED,
    STATUSES,
    ChildAnswer,
    ChildRequest,
)

FUNDS = list(FUND_KEYS)
SCHOOL_YEAR = "2023/2024"  # tests/conftest.py TEST_YEAR
ZONE = ZoneInfo("Africa/Casablanca")
XS = "{http://www.w3.org/2001/XMLSchema}"
DS = "{http://www.w3.org/2000/09/xmldsig#}"
fund_param = pytest.mark.parametrize("fund", FUNDS)


@dataclasses.dataclass(frozen=True)
class PupilRecord(ChildAnswer):
    """An answer that also holds what must never leave: marks, absences, discipline, support."""

    semester_average: str = "17.25"
    unjustified_absences: str = "ABSENCES-UNJUSTIFIED-41"
    discipline: str = "DISCIPLINE-WARNING-BLAME"
    social_support: str = "TAYSSIR-SUPPORT-GRANT"


@dataclasses.dataclass
class Batch:
    profile: Profile
    folder: Path
    requests: list[ChildRequest]
    answers: list[ChildAnswer]
    files: dict[str, bytes]

    def path(self, kind: str) -> Path:
        names = batch_file_names(self.profile, SCHOOL_YEAR, 1)
        return self.folder / getattr(names, kind)


def request_file(province: Path, fund: str) -> Path:
    (path,) = (province / "partners" / fund).glob(f"{fund.upper()}_SCOL_*.csv")
    return path


def answers_from_expected(province: Path, fund: str) -> list[ChildAnswer]:
    """The generator's expected answers, as the matcher would give them (REVIEW rows keep the
    candidate pupil and the reason, which must stay inside)."""
    text = (province / "partners" / fund / "expected.csv").read_text(encoding="utf-8")
    answers: list[ChildAnswer] = []
    for row in csv.DictReader(io.StringIO(text)):
        leaving = row["leaving_date"]
        answers.append(
            PupilRecord(
                fund_reference=row["fund_reference"],
                status=row["expected_status"],
                school_year=SCHOOL_YEAR,
                student_code=row["student_code"] or None,
                level_code=row["level_code"] or None,
                school_code=row["school_code"] or None,
                leaving_date=datetime.strptime(leaving, "%d/%m/%Y").date() if leaving else None,
                confidence=0.5 if row["expected_status"] == REVIEW else 0.99,
                reason=f"INTERNAL-REASON {row['reason']}",
            )
        )
    return answers


@pytest.fixture(scope="module")
def identity_files(tmp_path_factory) -> tuple[Path, Path]:
    now = datetime.now(UTC)
    return make_test_certificate(
        tmp_path_factory.mktemp("identity"),
        now - timedelta(days=1),
        now + timedelta(days=30),
        "DP Tiznit test",
    )


@pytest.fixture(scope="module")
def batches(province, identity_files, tmp_path_factory) -> dict[str, Batch]:
    identity = load_signing_identity(*identity_files)
    out: dict[str, Batch] = {}
    for fund in FUNDS:
        profile = profile_for(fund)
        folder = tmp_path_factory.mktemp(f"batch-{fund}")
        answers = answers_from_expected(province, fund)
        files = build_batch_files(
            profile,
            f"{profile.code}-2023-0001",
            1,
            SCHOOL_YEAR,
            answers,
            datetime(2024, 3, 4, 9, 30, tzinfo=ZONE),
            identity,
            legal_basis="Convention test",
        )
        for name, data in files.items():
            (folder / name).write_bytes(data)
        requests = parse_request(profile, request_file(province, fund))
        out[fund] = Batch(profile, folder, requests, answers, files)
    return out


def copy_batch(batch: Batch, tmp_path: Path) -> Path:
    for name in batch.files:
        shutil.copy(batch.folder / name, tmp_path / name)
    return tmp_path


# ---------------------------------------------------------------------------------------------
# Profiles have the same shape


@fund_param
def test_profile_is_declared_once_with_its_namespaces_and_schemas(fund):
    profile = profile_for(fund)
    assert profile.fund == fund and profile.version == "1.0"
    assert profile.namespace == f"urn:massar:exchange:{fund}:1.0"
    assert profile_for_namespace(profile.namespace) is profile
    assert profile_for_namespace(profile.acknowledgement_namespace) is profile
    assert profile.response_xsd.is_file() and profile.acknowledgement_xsd.is_file()
    assert tuple(profile.response_csv.header) == ChildAnswer.CONTRACTED
    assert any(change.startswith("1.0") for change in profile.changes)


def test_both_funds_schemas_differ_only_by_fund():
    cnss, cmr = profile_for("cnss"), profile_for("cmr")
    for which in ("response_xsd", "acknowledgement_xsd"):
        a = getattr(cnss, which).read_text(encoding="utf-8")
        b = getattr(cmr, which).read_text(encoding="utf-8")
        assert a.replace("CNSS", "X").replace("cnss", "x") == b.replace("CMR", "X").replace(
            "cmr", "x"
        )


# ---------------------------------------------------------------------------------------------
# Requests


@fund_param
def test_the_generators_request_is_read(province, fund):
    profile = profile_for(fund)
    path = request_file(province, fund)
    requests = parse_request(profile, path)
    expected = list(
        csv.DictReader(io.StringIO((path.parent / "expected.csv").read_text(encoding="utf-8")))
    )
    assert [r.fund_reference for r in requests] == [e["fund_reference"] for e in expected]
    assert [r.source_line for r in requests] == list(range(2, len(requests) + 2))
    assert {r.benefit for r in requests} <= set(profile.request.benefits.values())
    assert all(isinstance(r.birth_date, date) for r in requests)
    assert all(r.parent_number and r.child_family_name and r.child_first_name for r in requests)
    assert any(r.student_code for r in requests)
    if "sex" in profile.request.columns:
        assert {r.sex for r in requests} <= {"M", "F"}
    else:
        assert {r.sex for r in requests} == {None}


def _rewrite(profile: Profile, source: Path, target: Path, edit) -> Path:
    """Copy a request with ``edit(rows)`` applied, in the fund's own layout."""
    layout = profile.request
    text = source.read_bytes().decode(layout.encoding)
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=layout.delimiter))
    edit(rows)
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=layout.delimiter, lineterminator=layout.line_ending).writerows(
        rows
    )
    target.write_bytes(buffer.getvalue().encode(layout.encoding))
    return target


@fund_param
def test_a_malformed_request_names_line_and_column_without_personal_values(
    province, tmp_path, fund
):
    profile = profile_for(fund)
    columns = profile.request.columns
    header: list[str] = []
    birth = ""

    def edit(rows):
        nonlocal birth
        header[:] = rows[0]
        birth = rows[2][header.index(columns["birth_date"])]
        rows[2][header.index(columns["birth_date"])] = "31/02/2009x"
        rows[3][header.index(profile.request.benefit_column)] = "ZZ"
        rows[4] = rows[4][:-1]
        rows[5][header.index(columns["fund_reference"])] = rows[1][0]

    path = _rewrite(profile, request_file(province, fund), tmp_path / "request.csv", edit)
    with pytest.raises(ExchangeFileError) as caught:
        parse_request(profile, path)
    problems = caught.value.problems
    assert problems[0] == (
        f"request.csv line 3, column {columns['birth_date']} is not a date written "
        f"{profile.request.date_label}."
    )
    assert str(caught.value) == f"{problems[0][:-1]} (and 3 more problems in the file)."
    assert f"line 4, column {profile.request.benefit_column}: 'ZZ' is not a benefit" in problems[1]
    assert "line 5 has" in problems[2] and "fields where the header has" in problems[2]
    assert (
        f"line 6, column {columns['fund_reference']}: the reference already appears on line 2"
        in problems[3]
    )
    assert all(birth not in problem for problem in problems)


@fund_param
def test_a_request_in_the_wrong_layout_or_encoding_is_refused(province, tmp_path, fund):
    profile = profile_for(fund)
    other = profile_for("cmr" if fund == "cnss" else "cnss")
    with pytest.raises(ExchangeFileError, match=r"line 1 lacks the columns"):
        parse_request(profile, request_file(province, other.fund))
    data = request_file(province, fund).read_bytes()
    windows = tmp_path / "request.csv"
    windows.write_bytes(data + "عائشة".encode("cp1256"))
    line = data.count(b"\n") + 1
    with pytest.raises(ExchangeFileError, match=rf"request.csv line {line} is not utf-8 text"):
        parse_request(profile, windows)


# ---------------------------------------------------------------------------------------------
# Response XML


@fund_param
def test_the_response_xml_is_valid_against_its_xsd(batches, fund):
    batch = batches[fund]
    data = batch.files[batch.path("xml").name]
    root = parse_untrusted_xml(data, "response")
    assert etree.QName(root).namespace == batch.profile.namespace
    assert root.get("version") == "1.0"
    assert schema_problems(batch.profile.response_xsd, root, "response") == []
    ns = {"m": batch.profile.namespace}
    assert root.findtext("m:Header/m:BatchId", namespaces=ns) == f"{batch.profile.code}-2023-0001"
    assert root.findtext("m:Header/m:Sequence", namespaces=ns) == "1"
    assert root.findtext("m:Header/m:SchoolYear", namespaces=ns) == SCHOOL_YEAR
    assert root.findtext("m:Header/m:Counts/m:Total", namespaces=ns) == str(len(batch.answers))
    for status in STATUSES:
        counted = root.findtext(f"m:Header/m:Counts/m:{xml_name(status)}", namespaces=ns)
        assert int(counted) == sum(1 for a in batch.answers if a.status == status)
    assert {a.status for a in batch.answers} >= {SCHOOLED, LEFT, NOT_FOUND, REVIEW}
    assert root[-1].tag == f"{DS}Signature"


@fund_param
def test_a_broken_response_is_reported_by_the_schema(batches, fund):
    profile = batches[fund].profile
    unsigned = build_response_xml(
        profile,
        "B-1",
        1,
        SCHOOL_YEAR,
        batches[fund].answers[:3],
        datetime(2024, 3, 4, 9, 30, tzinfo=ZONE),
    )
    root = parse_untrusted_xml(unsigned, "response")
    ns = {"m": profile.namespace}
    root.find("m:Children/m:Child/m:Status", namespaces=ns).text = "MAYBE"
    problems = schema_problems(profile.response_xsd, root, "response")
    assert problems and "MAYBE" in problems[0] and problems[0].startswith("response line ")


# ---------------------------------------------------------------------------------------------
# Only the contracted fields leave (DOMAIN.md §5)


def _xsd_child_elements(xsd: Path) -> list[str]:
    schema = etree.parse(str(xsd), parser=safe_xml_parser())
    (child_type,) = schema.getroot().findall(f"{XS}complexType[@name='Child']")
    return [element.get("name") for element in child_type.iter(f"{XS}element")]


@fund_param
def test_only_contracted_fields_can_be_in_an_output_file(batches, fund):
    batch = batches[fund]
    profile = batch.profile
    contracted = list(ChildAnswer.CONTRACTED)
    assert _xsd_child_elements(profile.response_xsd) == [xml_name(f) for f in contracted]
    assert list(profile.response_csv.header) == contracted
    table = batch.files[batch.path("csv").name].decode("utf-8")
    assert table.splitlines()[0].split(profile.response_csv.delimiter) == list(
        profile.response_csv.header.values()
    )

    # The signed XML without its signature (base64 text could hold any short word by chance).
    root = parse_untrusted_xml(batch.files[batch.path("xml").name], "response")
    root.remove(root.find(f"{DS}Signature"))
    xml_text = etree.tostring(root, encoding="unicode")
    allowed = {xml_name(f) for f in contracted}
    for child in root.iter(f"{{{profile.namespace}}}Child"):
        assert {etree.QName(e).localname for e in child} <= allowed

    leaked = ["17.25", "ABSENCES-UNJUSTIFIED", "DISCIPLINE-WARNING", "TAYSSIR", "INTERNAL-REASON"]
    for request in batch.requests:
        leaked += [
            request.child_family_name,
            request.child_first_name,
            request.parent_family_name,
            request.parent_first_name,
            request.parent_cin,
            request.parent_number,
            request.birth_date.isoformat(),
            request.birth_date.strftime("%d/%m/%Y"),
        ]
    for answer in batch.answers:  # a REVIEW or NOT_FOUND answer names no pupil
        if answer.status in (REVIEW, NOT_FOUND) and answer.student_code:
            leaked.append(answer.student_code)
    for text in (xml_text, table):
        found = [value for value in leaked if value and value in text]
        assert found == []


@fund_param
def test_what_each_status_requires_is_enforced(batches, fund):
    profile = batches[fund].profile
    at = datetime(2024, 3, 4, 9, 30, tzinfo=ZONE)
    no_date = ChildAnswer("R1", LEFT, SCHOOL_YEAR, "K100000001", "1ASCG", "12345A")
    with pytest.raises(ValueError, match="LEFT answer R1 has no leaving_date"):
        build_response_xml(profile, "B", 1, SCHOOL_YEAR, [no_date], at)
    no_school = ChildAnswer("R2", SCHOOLED, SCHOOL_YEAR, "K100000001", "1ASCG")
    with pytest.raises(ValueError, match="SCHOOLED answer R2 has no school_code"):
        build_response_csv(profile, SCHOOL_YEAR, [no_school])
    other_year = ChildAnswer("R3", NOT_FOUND, "2022/2023")
    with pytest.raises(ValueError, match="is for 2022/2023"):
        build_response_csv(profile, SCHOOL_YEAR, [other_year])
    twice = [ChildAnswer("R4", NOT_FOUND, SCHOOL_YEAR)] * 2
    with pytest.raises(ValueError, match="same fund reference"):
        build_response_csv(profile, SCHOOL_YEAR, twice)


# ---------------------------------------------------------------------------------------------
# Response CSV


@fund_param
def test_the_response_csv_has_the_profiles_layout(batches, fund):
    batch = batches[fund]
    layout = batch.profile.response_csv
    data = batch.files[batch.path("csv").name]
    assert not data.startswith(b"\xef\xbb\xbf")
    text = data.decode(layout.encoding)
    lines = text.split(layout.line_ending)
    assert lines[-1] == "" and len(lines) == len(batch.answers) + 2
    if layout.line_ending == "\n":
        assert "\r" not in text
    else:
        assert "\n" not in text.replace("\r\n", "")
    rows = list(csv.DictReader(io.StringIO(text, newline=""), delimiter=layout.delimiter))
    status, leaving = layout.header["status"], layout.header["leaving_date"]
    assert [row[layout.header["fund_reference"]] for row in rows] == [
        a.fund_reference for a in batch.answers
    ]
    assert {row[status] for row in rows} <= set(STATUSES)
    by_reference = {a.fund_reference: a for a in batch.answers}
    for row in rows:
        answer = by_reference[row[layout.header["fund_reference"]]]
        assert row[layout.header["school_year"]] == SCHOOL_YEAR
        if answer.status == LEFT:
            assert row[leaving] == answer.leaving_date.strftime(layout.date_format)
            datetime.strptime(row[leaving], layout.date_format)
        if answer.status in (REVIEW, NOT_FOUND):
            assert row[layout.header["student_code"]] == ""
    assert verify_file(batch.path("csv")).problems == []


# ---------------------------------------------------------------------------------------------
# Naming and manifest


@fund_param
def test_files_are_named_with_the_sequence_number(batches, fund):
    batch = batches[fund]
    code = batch.profile.code
    names = batch_file_names(batch.profile, "2024/2025", 12)
    assert names.all() == (
        f"MEN_{code}_SCOL_2024-2025_000012.xml",
        f"MEN_{code}_SCOL_2024-2025_000012.csv",
        f"MEN_{code}_SCOL_2024-2025_000012.csv.p7s",
        f"MEN_{code}_SCOL_2024-2025_000012_manifest.json",
    )
    assert parse_batch_file_name(names.csv_signature) == (
        batch.profile,
        "2024/2025",
        12,
        "csv_signature",
    )
    assert list(batch.files) == list(batch_file_names(batch.profile, SCHOOL_YEAR, 1).all())


@fund_param
def test_the_manifest_lists_sha256_and_size_of_every_file(batches, fund, tmp_path):
    batch = batches[fund]
    manifest = json.loads(batch.files[batch.path("manifest").name])
    assert manifest["profile_version"] == "1.0"
    assert manifest["batch_id"] == f"{batch.profile.code}-2023-0001"
    assert manifest["fund"] == batch.profile.code
    listed = {entry["name"]: entry for entry in manifest["files"]}
    assert set(listed) == set(batch.files) - {batch.path("manifest").name}
    for name, entry in listed.items():
        content = (batch.folder / name).read_bytes()
        assert entry["size"] == len(content)
        assert entry["sha256"] == sha256(content)
    assert verify_file(batch.path("manifest")).problems == []

    folder = copy_batch(batch, tmp_path)
    csv_path = folder / batch.path("csv").name
    csv_path.write_bytes(csv_path.read_bytes().replace(b"SCHOOLED", b"NOT_FOUND", 1))
    problems = verify_file(folder / batch.path("manifest").name).problems
    assert len(problems) == 1
    assert problems[0].startswith(csv_path.name)
    assert "not the file that was delivered" in problems[0]


# ---------------------------------------------------------------------------------------------
# Signatures, checked by independent tools


@fund_param
def test_xmlsec1_verifies_the_xml_signature(batches, identity_files, fund, tmp_path):
    batch = batches[fund]
    _, cert = identity_files
    xml_path = batch.path("xml")
    run = _xmlsec1(cert, xml_path)
    assert run.returncode == 0, run.stderr
    assert "OK" in run.stdout + run.stderr
    report = verify_file(xml_path)
    assert report.problems == []
    assert report.signer is not None and "DP Tiznit test" in report.signer.subject
    assert verify_file(xml_path, cert).problems == []

    tampered = tmp_path / xml_path.name
    tampered.write_bytes(
        xml_path.read_bytes().replace(b"<Status>NOT_FOUND<", b"<Status>SCHOOLED<", 1)
    )
    assert _xmlsec1(cert, tampered).returncode != 0
    problems = verify_file(tampered).problems
    assert any("changed after signing" in problem for problem in problems)


@fund_param
def test_a_signature_by_another_certificate_is_refused(batches, fund, tmp_path):
    batch = batches[fund]
    now = datetime.now(UTC)
    _, stranger = make_test_certificate(tmp_path, now - timedelta(1), now + timedelta(9), "Other")
    assert _xmlsec1(stranger, batch.path("xml")).returncode != 0
    with pytest.raises(SignatureCheckError, match="not valid for the certificate CN=Other"):
        verify_xml_signature(batch.files[batch.path("xml").name], stranger)
    content = batch.files[batch.path("csv").name]
    signature = batch.files[batch.path("csv_signature").name]
    with pytest.raises(SignatureCheckError, match="does not hold"):
        verify_cms_signature(content, signature, stranger)


@fund_param
def test_openssl_verifies_the_detached_cms_signature(batches, identity_files, fund, tmp_path):
    batch = batches[fund]
    _, cert = identity_files
    csv_path, signature = batch.path("csv"), batch.path("csv_signature")
    run = _openssl_cms(cert, csv_path, signature)
    assert run.returncode == 0, run.stderr
    assert "Verification successful" in run.stderr
    assert verify_file(signature).problems == []
    verify_cms_signature(csv_path.read_bytes(), signature.read_bytes(), cert)

    folder = copy_batch(batch, tmp_path)
    tampered = folder / csv_path.name
    tampered.write_bytes(tampered.read_bytes() + tampered.read_bytes().splitlines(True)[-1])
    assert _openssl_cms(cert, tampered, folder / signature.name).returncode != 0
    problems = verify_file(tampered).problems
    assert any(p.startswith(f"{signature.name}: The CMS signature does not hold") for p in problems)


def _xmlsec1(cert: Path, path: Path) -> subprocess.CompletedProcess[str]:
    # --trusted-pem: the certificate in KeyInfo must chain to this (self-signed) certificate.
    command = ["xmlsec1", "--verify", "--enabled-key-data", "x509", "--trusted-pem", str(cert)]
    return subprocess.run(
        [*command, str(path)], capture_output=True, text=True, timeout=60, check=False
    )


def _openssl_cms(cert: Path, content: Path, signature: Path) -> subprocess.CompletedProcess[str]:
    command = ["openssl", "cms", "-verify", "-binary", "-content", str(content)]
    command += ["-in", str(signature), "-inform", "DER", "-CAfile", str(cert), "-purpose", "any"]
    return subprocess.run(
        [*command, "-out", os.devnull], capture_output=True, text=True, timeout=60, check=False
    )


# ---------------------------------------------------------------------------------------------
# The signing identity


@pytest.mark.parametrize(
    ("start", "end", "sentence"),
    [
        (-400, -2, "expired before"),
        (3, 400, "is not valid yet"),
    ],
)
def test_expired_and_not_yet_valid_certificates_are_refused(tmp_path, start, end, sentence):
    now = datetime.now(UTC)
    key, cert = make_test_certificate(
        tmp_path, now + timedelta(days=start), now + timedelta(days=end), "DP Tiznit"
    )
    with pytest.raises(SigningError) as caught:
        load_signing_identity(key, cert)
    message = str(caught.value)
    assert sentence in message and "CN=DP Tiznit" in message
    assert f"{(now + timedelta(days=start)):%Y-%m-%d}" in message
    assert f"{(now + timedelta(days=end)):%Y-%m-%d}" in message
    assert "signing_certificate" in message and message.count(". ") == 0


def test_a_key_of_another_certificate_is_refused(tmp_path):
    now = datetime.now(UTC)
    key, _ = make_test_certificate(tmp_path / "a", now, now + timedelta(days=9), "A")
    _, cert = make_test_certificate(tmp_path / "b", now, now + timedelta(days=9), "B")
    with pytest.raises(SigningError, match=r"does not belong to the certificate CN=B"):
        load_signing_identity(key, cert)


# ---------------------------------------------------------------------------------------------
# Acknowledgements


@fund_param
def test_an_acknowledgement_is_bound_to_the_sha256_it_names(batches, fund):
    batch = batches[fund]
    profile = batch.profile
    xml_name_ = batch.path("xml").name
    digest = sha256(batch.files[xml_name_])
    outcomes = [ChildOutcome(a.fund_reference, True) for a in batch.answers[:-1]]
    outcomes.append(ChildOutcome(batch.answers[-1].fund_reference, False, "unknown reference"))
    data = build_acknowledgement(
        profile, "B-1", 1, xml_name_, digest, outcomes, datetime(2024, 3, 5, 8, tzinfo=ZONE)
    )
    root = parse_untrusted_xml(data, "ack")
    assert schema_problems(profile.acknowledgement_xsd, root, "ack") == []
    acknowledgement = parse_acknowledgement(profile, data, expected_sha256=digest)
    assert acknowledgement.response_sha256 == digest
    assert (acknowledgement.accepted, acknowledgement.rejected) == (len(outcomes) - 1, 1)
    assert acknowledgement.children[-1].reason == "unknown reference"
    with pytest.raises(ExchangeFileError, match="does not count as its receipt"):
        parse_acknowledgement(profile, data, expected_sha256="0" * 64)
    other = profile_for("cmr" if fund == "cnss" else "cnss")
    with pytest.raises(ExchangeFileError, match=r"is not a .* acknowledgement"):
        parse_acknowledgement(other, data)
    unexplained = data.replace(b"<Reason>unknown reference</Reason>", b"")
    with pytest.raises(ExchangeFileError, match="without a reason"):
        parse_acknowledgement(profile, unexplained)


def _hostile(profile: Profile, doctype: str) -> bytes:
    ns = profile.acknowledgement_namespace
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n{doctype}\n'
        f'<Acknowledgement xmlns="{ns}" version="1.0"><Fund>&x;</Fund></Acknowledgement>'
    ).encode()


@fund_param
def test_an_acknowledgement_with_external_entities_is_refused_without_any_access(fund, tmp_path):
    profile = profile_for(fund)
    # A FIFO: opening it to read would block until our watcher opens it to write, so the
    # watcher sees every attempt to read the "file".
    fifo = tmp_path / "secret"
    os.mkfifo(fifo)
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    server.setblocking(False)
    port = server.getsockname()[1]
    opened, done = threading.Event(), threading.Event()

    def watch() -> None:
        while not done.is_set():
            try:
                descriptor = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # no reader
                done.wait(0.002)
                continue
            opened.set()
            os.write(descriptor, b"leaked")
            os.close(descriptor)
            return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    payloads = [
        _hostile(profile, f'<!DOCTYPE a [<!ENTITY x SYSTEM "file://{fifo}">]>'),
        _hostile(profile, f'<!DOCTYPE a [<!ENTITY x SYSTEM "http://127.0.0.1:{port}/x">]>'),
        _hostile(profile, f'<!DOCTYPE a SYSTEM "http://127.0.0.1:{port}/a.dtd">'),
        _hostile(profile, f'<!DOCTYPE a [<!ENTITY % p SYSTEM "file://{fifo}"> %p;]>'),
        _hostile(
            profile,
            '<!DOCTYPE a [<!ENTITY l "lol"><!ENTITY m "&l;&l;&l;&l;&l;&l;&l;&l;&l;">'
            '<!ENTITY x "&m;&m;&m;&m;&m;&m;&m;&m;&m;&m;">]>',
        ),
    ]
    try:
        for payload in payloads:
            with pytest.raises(ExchangeFileError, match="DOCTYPE") as caught:
                parse_acknowledgement(profile, payload)
            assert str(caught.value).count(". ") == 0
            # UTF-16 would hide the DOCTYPE from a byte search: refused as not UTF-8.
            utf16 = payload.decode().replace("UTF-8", "UTF-16").encode("utf-16")
            with pytest.raises(ExchangeFileError, match="not UTF-8"):
                parse_acknowledgement(profile, utf16)
            # The parser alone, were the checks before it bypassed, fetches nothing either.
            root = etree.fromstring(payload, parser=safe_xml_parser())
            assert b"leaked" not in etree.tostring(root)
            assert verify_file(_write(tmp_path / "ack.xml", payload)).problems
    finally:
        done.set()
        watcher.join(timeout=5)
    assert not opened.is_set(), "the parser opened the external file"
    with pytest.raises(BlockingIOError):
        server.accept()  # nobody connected
    server.close()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------------------------------------
# massar exchange verify


@fund_param
def test_verify_command_checks_each_file_a_partner_receives(batches, fund, capsys, tmp_path):
    batch = batches[fund]
    for name in batch.files:
        code = main(["exchange", "verify", str(batch.folder / name)])
        out, err = capsys.readouterr()
        assert code == 0, err
        assert f"profile {batch.profile.code} 1.0 holds" in out and "checked:" in out
    folder = copy_batch(batch, tmp_path)
    csv_path = folder / batch.path("csv").name
    layout = batch.profile.response_csv
    wrong = b"\n" if layout.line_ending == "\r\n" else b"\r\n"
    csv_path.write_bytes(csv_path.read_bytes().replace(layout.line_ending.encode(), wrong))
    code = main(["exchange", "verify", str(csv_path)])
    out, err = capsys.readouterr()
    assert code == 1
    assert "line 1" in err and "line ending" in err and "CMS signature does not hold" in err
    (folder / batch.path("csv_signature").name).unlink()
    code = main(["exchange", "verify", str(csv_path)])
    assert code == 1 and "is not beside it" in capsys.readouterr().err
    code = main(["exchange", "verify", str(tmp_path / "missing.xml")])
    assert code == 1 and "does not exist" in capsys.readouterr().err


@fund_param
def test_verify_reports_content_a_schema_cannot_see(batches, fund, tmp_path):
    batch = batches[fund]
    layout = batch.profile.response_csv
    text = batch.files[batch.path("csv").name].decode()
    header, *rows = text.split(layout.line_ending)[:-1]
    cells = rows[0].split(layout.delimiter)
    cells[list(layout.header).index("status")] = "MAYBE"
    rows[0] = layout.delimiter.join(cells)
    path = tmp_path / batch.path("csv").name
    path.write_bytes(layout.line_ending.join([header, *rows, ""]).encode())
    problems = verify_file(path).problems
    assert problems[0].startswith(f"{path.name} line 2: {layout.header['status']} 'MAYBE'")


def test_the_specification_holds_the_schemas_as_they_are():
    spec = (Path(__file__).parents[2] / "docs" / "exchange-spec.md").read_text(encoding="utf-8")
    for which in ("response_xsd", "acknowledgement_xsd"):
        path = getattr(profile_for("cnss"), which)
        shown = f"connectors/cnss/{path.name}"
        begin, end = f"<!-- BEGIN {shown} -->\n```xml\n", f"```\n<!-- END {shown} -->"
        copy = spec[spec.index(begin) + len(begin) : spec.index(end)]
        assert copy == path.read_text(encoding="utf-8"), f"docs/exchange-spec.md: {shown}"
    for fund in FUNDS:
        assert f"urn:massar:exchange:{fund}:1.0" in spec

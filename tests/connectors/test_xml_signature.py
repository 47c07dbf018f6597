"""The response XML written as text and signed on one parse is what lxml's tree and signxml
made before (the same bytes), and its check refuses what the exchange profiles never sign:
among them the wrappings of a signature (a second signature, a reference to a part, other
transforms, another certificate in KeyInfo), each also put to xmlsec1, which refuses those a
standard check must refuse.

A partner's tools (xmlsec1, signxml) verify these files in tests/connectors/
test_exchange_profiles.py; here the fast paths are compared with the slow ones they replace."""

from __future__ import annotations

import copy
import dataclasses
import subprocess
from base64 import b64encode
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from lxml import etree
from signxml import (
    CanonicalizationMethod,
    SignatureMethod,
    XMLVerifier,
)

from connectors.exchange.registry import profile_for
from connectors.exchange.response_files import (
    _response_tree,
    answer_rows,
    build_response_xml,
    response_xml,
)
from connectors.signing import (
    DS_NAMESPACE,
    SignatureCheckError,
    SigningIdentity,
    make_test_certificate,
    sign_xml,
    verify_xml_signature,
)
from connectors.verify import verify_file
from schemas.exchange import ChildAnswer
from tests.connectors.signed_responses import (
    AT,
    YEAR,
    answers,
    make_identity,
    signxml_signed,
)


@pytest.fixture(scope="module")
def identity(tmp_path_factory) -> tuple[SigningIdentity, Path]:
    return make_identity(tmp_path_factory.mktemp("pki"))


def _answers() -> list[ChildAnswer]:
    return answers(first="A&B <c> 'd' \"e\" é عربي\r\n\tf", third="  R3  ")


@pytest.mark.parametrize("fund", ["cnss", "cmr"])
@pytest.mark.parametrize("legal_basis", ["", "Convention MEN & <fund>, l'échange"])
@pytest.mark.parametrize("count", [0, 1, 4])
def test_the_text_and_its_signature_are_the_bytes_lxml_and_signxml_made(
    identity, fund, legal_basis, count
) -> None:
    profile = profile_for(fund)
    rows = answer_rows(_answers()[:count], YEAR)
    text = response_xml(profile, "B-1", 7, YEAR, rows, AT, legal_basis)
    assert text == _response_tree(profile, "B-1", 7, YEAR, rows, AT, legal_basis)
    signed = sign_xml(text, identity[0])
    assert signed == signxml_signed(text, identity[0])
    assert verify_xml_signature(signed, identity[1]).subject.startswith("CN=DP,")


def test_a_value_xml_cannot_hold_is_refused_as_before() -> None:
    bad = dataclasses.replace(_answers()[1], fund_reference="R\x01")
    with pytest.raises(ValueError, match="XML compatible"):
        build_response_xml(profile_for("cnss"), "B-1", 1, YEAR, [bad], AT)


def _signed(identity: SigningIdentity) -> bytes:
    unsigned = build_response_xml(profile_for("cnss"), "B-1", 1, YEAR, _answers(), AT)
    return sign_xml(unsigned, identity)


def _resign(root: etree._Element, identity: SigningIdentity) -> bytes:
    """Sign SignedInfo again after changing it: the signature value holds, the shape does not."""
    info = root.find(f"{{{DS_NAMESPACE}}}Signature/{{{DS_NAMESPACE}}}SignedInfo")
    assert info is not None
    canonical = etree.tostring(info, method="c14n", exclusive=True)
    value = identity.key.sign(canonical, padding.PKCS1v15(), hashes.SHA256())
    node = root.find(f"{{{DS_NAMESPACE}}}Signature/{{{DS_NAMESPACE}}}SignatureValue")
    assert node is not None
    node.text = b64encode(value).decode()
    return etree.tostring(root)


def test_what_the_profiles_never_sign_is_refused(identity) -> None:
    key, cert = identity
    ds = f"{{{DS_NAMESPACE}}}"
    signed = _signed(key)
    # signxml agrees the file holds, and so does the check
    XMLVerifier().verify(signed, x509_cert=key.certificate)
    verify_xml_signature(signed, cert)

    root = etree.fromstring(signed)
    transforms = root.find(f"{ds}Signature/{ds}SignedInfo/{ds}Reference/{ds}Transforms")
    assert transforms is not None
    etree.SubElement(
        transforms, f"{ds}Transform", Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116"
    )
    with pytest.raises(SignatureCheckError, match="not made as the exchange profiles sign"):
        verify_xml_signature(_resign(root, key), cert)

    root = etree.fromstring(signed)
    method = root.find(f"{ds}Signature/{ds}SignedInfo/{ds}SignatureMethod")
    assert method is not None
    method.set("Algorithm", SignatureMethod.RSA_SHA512.value)
    with pytest.raises(SignatureCheckError, match="not made as the exchange profiles sign"):
        verify_xml_signature(_resign(root, key), cert)

    root = etree.fromstring(signed)
    root.append(etree.fromstring(etree.tostring(root[-1])))  # a second signature
    with pytest.raises(SignatureCheckError, match="more than one XML signature"):
        verify_xml_signature(etree.tostring(root), cert)

    root = etree.fromstring(signed)
    digest = root.find(f"{ds}Signature/{ds}SignedInfo/{ds}Reference/{ds}DigestValue")
    assert digest is not None
    digest.text = "A" + (digest.text or "")[1:]  # SignedInfo changed after signing
    with pytest.raises(SignatureCheckError, match="not valid for the certificate"):
        verify_xml_signature(etree.tostring(root), cert)


def test_the_check_reads_the_tree_and_leaves_it_as_it_was(identity, tmp_path) -> None:
    key, cert = identity
    signed = _signed(key)
    root = etree.fromstring(signed)
    verify_xml_signature(root, cert)
    assert etree.tostring(root) == etree.tostring(etree.fromstring(signed))
    changed = signed.replace(b"<FundReference>R2<", b"<FundReference>R9<")
    with pytest.raises(SignatureCheckError, match="changed after signing"):
        verify_xml_signature(etree.fromstring(changed), cert)


def test_a_child_of_another_year_is_named_by_the_partner_check(identity, tmp_path) -> None:
    key, cert = identity
    before = b"<SchoolYear>2024/2025</SchoolYear>\n      <Status>SCHOOLED"
    after = b"<SchoolYear>2023/2024</SchoolYear>\n      <Status>SCHOOLED"
    signed = _signed(key).replace(before, after)
    path = tmp_path / "MEN_CNSS_SCOL_2024-2025_000001.xml"
    path.write_bytes(signed)
    problems = verify_file(path, cert).problems
    assert any("child 2 (R2) is for another school year" in p for p in problems), problems


# ---- signature wrapping: what a partner's check must not be fooled by -------------------------


def _xmlsec1_accepts(signed: bytes, cert: Path, folder: Path) -> bool:
    path = folder / "wrapped.xml"
    path.write_bytes(signed)
    command = ["xmlsec1", "--verify", "--enabled-key-data", "x509", "--trusted-pem", str(cert)]
    run = subprocess.run([*command, str(path)], capture_output=True, timeout=60, check=False)
    return run.returncode == 0


def _nested_signature(root: etree._Element, identity: SigningIdentity, other: Path) -> bytes:
    # a copy of the valid signature inside the first child: the first in document order
    root[0].insert(0, copy.deepcopy(root.find(f"{{{DS_NAMESPACE}}}Signature")))
    return etree.tostring(root)


def _reference_to_a_part(root: etree._Element, identity: SigningIdentity, other: Path) -> bytes:
    root[0].set("Id", "part")
    reference = root.find(f".//{{{DS_NAMESPACE}}}Reference")
    assert reference is not None
    reference.set("URI", "#part")
    return _resign(root, identity)


def _transforms(*algorithms: str):  # type: ignore[no-untyped-def]
    def wrap(root: etree._Element, identity: SigningIdentity, other: Path) -> bytes:
        transforms = root.find(f".//{{{DS_NAMESPACE}}}Transforms")
        assert transforms is not None
        for transform in list(transforms):
            transforms.remove(transform)
        for algorithm in algorithms:
            etree.SubElement(transforms, f"{{{DS_NAMESPACE}}}Transform", Algorithm=algorithm)
        return _resign(root, identity)

    return wrap


def _another_certificate(root: etree._Element, identity: SigningIdentity, other: Path) -> bytes:
    carried = root.find(f".//{{{DS_NAMESPACE}}}X509Certificate")
    assert carried is not None
    carried.text = "".join(other.read_text().splitlines()[1:-1])
    return etree.tostring(root)


def _no_key_info(root: etree._Element, identity: SigningIdentity, other: Path) -> bytes:
    signature = root.find(f"{{{DS_NAMESPACE}}}Signature")
    assert signature is not None
    signature.remove(signature[-1])
    return etree.tostring(root)


def _an_object(root: etree._Element, identity: SigningIdentity, other: Path) -> bytes:
    signature = root.find(f"{{{DS_NAMESPACE}}}Signature")
    assert signature is not None
    etree.SubElement(signature, f"{{{DS_NAMESPACE}}}Object").text = "more"
    return etree.tostring(root)


ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
EXCLUSIVE = CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0.value


@pytest.mark.parametrize(
    ("wrap", "refusal", "xmlsec1_refuses"),
    [
        # xmlsec1 checks the first signature in the document, the copy, and it fails
        (_nested_signature, "more than one XML signature", True),
        (_reference_to_a_part, "does not cover the whole document", True),
        # xmlsec1 cannot take the signature out of canonical bytes (accepted here before)
        (_transforms(EXCLUSIVE, ENVELOPED), "not made as the exchange profiles sign", True),
        # signatures the standard allows and the profiles never make: xmlsec1 accepts them
        (_transforms(ENVELOPED), "not made as the exchange profiles sign", False),
        (_transforms(ENVELOPED, EXCLUSIVE, EXCLUSIVE), "not made as the exchange profiles", False),
        (_an_object, "not made as the exchange profiles sign", False),
        # xmlsec1 takes the key from KeyInfo: another certificate's, or none
        (_another_certificate, "is not the one given", True),
        (_no_key_info, "not made as the exchange profiles sign", True),
    ],
    ids=[
        "nested-signature",
        "reference-to-a-part",
        "transforms-reversed",
        "enveloped-only",
        "a-third-transform",
        "an-object",
        "another-certificate",
        "no-key-info",
    ],
)
def test_a_wrapped_signature_is_refused(identity, tmp_path, wrap, refusal, xmlsec1_refuses) -> None:
    key, cert = identity
    now = datetime.now(UTC)
    _, other = make_test_certificate(tmp_path, now - timedelta(1), now + timedelta(9), "Other")
    signed = _signed(key)
    assert _xmlsec1_accepts(signed, cert, tmp_path)
    wrapped = wrap(etree.fromstring(signed), key, other)
    with pytest.raises(SignatureCheckError, match=refusal):
        verify_xml_signature(wrapped, cert)
    assert _xmlsec1_accepts(wrapped, cert, tmp_path) is not xmlsec1_refuses

"""What the response-file tests share: a test signing identity, a batch's answers of each
status, and the signing the platform did before its own canonical text (signxml's enveloped
signer), which the faster paths must match byte for byte."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from lxml import etree
from signxml import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureMethod,
    XMLSigner,
    methods,
)

from connectors.signing import SigningIdentity, load_signing_identity, make_test_certificate
from schemas.exchange import LEFT, NOT_FOUND, REVIEW, SCHOOLED, ChildAnswer

YEAR = "2024/2025"
AT = datetime(2025, 1, 10, 8, 30, tzinfo=UTC)


def make_identity(folder: Path) -> tuple[SigningIdentity, Path]:
    """A signing identity valid from yesterday for 30 days, and its certificate's file."""
    now = datetime.now(UTC)
    key, cert = make_test_certificate(
        folder, now - timedelta(days=1), now + timedelta(days=30), "DP"
    )
    return load_signing_identity(key, cert), cert


def answers(first: str = "R1", second: str = "R2", third: str = "R3") -> list[ChildAnswer]:
    """Four answers, one of each kind: NOT_FOUND (``first``), SCHOOLED (``second``), LEFT
    (``third``) and REVIEW."""
    base = ChildAnswer(fund_reference=first, status=NOT_FOUND, school_year=YEAR)
    return [
        base,
        dataclasses.replace(
            base,
            fund_reference=second,
            status=SCHOOLED,
            student_code="N111400145",
            level_code="2APIC",
            school_code="61285X",
        ),
        dataclasses.replace(
            base,
            fund_reference=third,
            status=LEFT,
            student_code="N111400146",
            school_code="61285X",
            leaving_date=date(2024, 11, 3),
        ),
        dataclasses.replace(base, fund_reference="R4", status=REVIEW, student_code="N1"),
    ]


def signxml_signed(document: bytes, identity: SigningIdentity) -> bytes:
    """How the platform signed before: signxml's enveloped signer over the parsed document."""
    signer = XMLSigner(
        method=methods.enveloped,
        signature_algorithm=SignatureMethod.RSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    signed = signer.sign(etree.fromstring(document), key=identity.key, cert=[identity.certificate])
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")

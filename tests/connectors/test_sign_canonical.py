"""Signing a response written as its own canonical form (no parse of the document) makes the
bytes the parsed way and signxml make: the same digest, the same signature, the same file."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree
from signxml import XMLVerifier

from connectors.exchange.batch_files import build_batch_files
from connectors.exchange.file_names import batch_file_names
from connectors.exchange.registry import profile_for
from connectors.exchange.response_files import (
    answer_rows,
    response_xml,
    response_xml_and_canonical,
)
from connectors.signing import SigningIdentity, sign_xml, verify_xml_signature
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


# references with what c14n and the text escape alike, and what they escape differently
ESCAPED_ALIKE = ["R1", "A&B <c> 'd' \"e\" é عربي\n\tf", "  R1  "]


@pytest.mark.parametrize("fund", ["cnss", "cmr"])
@pytest.mark.parametrize("legal_basis", ["", "Convention MEN & <fund>, l'échange"])
@pytest.mark.parametrize("reference", ESCAPED_ALIKE)
def test_the_canonical_form_is_lxmls_and_the_signed_file_signxmls(
    identity, fund, legal_basis, reference
) -> None:
    profile = profile_for(fund)
    rows = answer_rows(answers(reference), YEAR)
    document, canonical = response_xml_and_canonical(profile, "B-1", 7, YEAR, rows, AT, legal_basis)
    assert document == response_xml(profile, "B-1", 7, YEAR, rows, AT, legal_basis)
    assert canonical == etree.tostring(
        etree.fromstring(document), method="c14n", exclusive=True, with_comments=False
    )
    signed = sign_xml(document, identity[0], canonical)
    assert signed == sign_xml(document, identity[0]) == signxml_signed(document, identity[0])
    verify_xml_signature(signed, identity[1])
    XMLVerifier().verify(signed, x509_cert=identity[0].certificate)


def test_a_text_c14n_writes_otherwise_gives_no_canonical_form(identity) -> None:
    profile = profile_for("cnss")
    with_return = answer_rows(answers("R\r1"), YEAR)
    assert response_xml_and_canonical(profile, "B-1", 1, YEAR, with_return, AT)[1] is None
    assert response_xml_and_canonical(profile, "B-1", 1, YEAR, [], AT)[1] is None  # <Children/>
    document = response_xml(profile, "B-1", 1, YEAR, with_return, AT)
    assert sign_xml(document, identity[0]) == signxml_signed(document, identity[0])


def test_a_canonical_form_that_is_not_the_documents_is_refused(identity) -> None:
    profile = profile_for("cnss")
    rows = answer_rows(answers(), YEAR)
    document, canonical = response_xml_and_canonical(profile, "B-1", 1, YEAR, rows, AT)
    assert canonical is not None
    changed = canonical.replace(b"R2", b"R9")
    with pytest.raises(ValueError, match="canonical form"):
        sign_xml(document, identity[0], changed)


def test_the_batch_files_xml_is_the_one_signed_on_the_parsed_tree(identity) -> None:
    profile = profile_for("cmr")
    batch = answers()
    files = build_batch_files(profile, "B-1", 3, YEAR, batch, AT, identity[0])
    document = response_xml(profile, "B-1", 3, YEAR, answer_rows(batch, YEAR), AT)
    assert files[batch_file_names(profile, YEAR, 3).xml] == sign_xml(document, identity[0])

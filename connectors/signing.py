"""Signing what leaves the platform, and checking those signatures.

* XML responses carry an enveloped XML-DSig signature (RSA-SHA256, SHA-256 digest, exclusive
  canonicalisation, ``Reference URI=""``) with the X.509 certificate in ``KeyInfo``.
* CSV responses get a detached CMS signature (``.p7s``, DER, binary content: the bytes are
  signed as they are, CRLF included).

The signing identity is a PEM private key and its PEM certificate (``signing_key`` and
``signing_certificate`` in the settings). An expired or not-yet-valid certificate, or a key that
is not the certificate's, is refused before anything is signed.
"""

from __future__ import annotations

import base64
import os
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml import CanonicalizationMethod, DigestAlgorithm, SignatureMethod

from ground.utc import as_utc

if TYPE_CHECKING:
    from ground.settings import Settings

DS_NAMESPACE = "http://www.w3.org/2000/09/xmldsig#"
_ENVELOPED_TRANSFORM = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
_EXCLUSIVE_C14N = CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0.value


class SigningError(Exception):
    """The platform cannot sign: the message is one sentence saying why and what to do."""


class SignatureCheckError(Exception):
    """A signature does not hold: the message is one sentence a partner can read."""


@dataclass(frozen=True)
class SignerCertificate:
    """Who signed, as a partner compares it with the certificate the directorate gave them."""

    subject: str
    sha256_fingerprint: str  # hex, colon separated, as ``openssl x509 -fingerprint -sha256``
    not_before: datetime
    not_after: datetime

    @classmethod
    def of(cls, certificate: x509.Certificate) -> SignerCertificate:
        digest = certificate.fingerprint(hashes.SHA256()).hex().upper()
        return cls(
            subject=certificate.subject.rfc4514_string(),
            sha256_fingerprint=":".join(digest[i : i + 2] for i in range(0, len(digest), 2)),
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
        )

    def describe(self) -> str:
        return (
            f"{self.subject} (valid {self.not_before:%Y-%m-%d} to {self.not_after:%Y-%m-%d}, "
            f"SHA-256 fingerprint {self.sha256_fingerprint})"
        )


@dataclass(frozen=True)
class SigningIdentity:
    """A private key and the certificate it belongs to, checked to be usable now."""

    key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    @property
    def signer(self) -> SignerCertificate:
        return SignerCertificate.of(self.certificate)


# ---------------------------------------------------------------------------------------------
# The signing identity


def load_signing_identity(
    key_path: Path, certificate_path: Path, *, at: datetime | None = None
) -> SigningIdentity:
    """Read a PEM key and PEM certificate; refuse them unless valid at ``at`` (default: now)
    and the key is the certificate's. Raises :class:`SigningError`."""
    certificate = _read_certificate(certificate_path)
    key = _read_key(key_path)
    described = _describe(certificate)
    when = (at or datetime.now(UTC)).astimezone(UTC)
    if when < certificate.not_valid_before_utc:
        raise SigningError(
            f"The signing certificate {described} is not valid yet on {when:%Y-%m-%d %H:%M} UTC; "
            "wait until its start date or install a certificate valid today "
            "(settings signing_certificate and signing_key)."
        )
    if when > certificate.not_valid_after_utc:
        raise SigningError(
            f"The signing certificate {described} expired before {when:%Y-%m-%d %H:%M} UTC; "
            "install a renewed certificate and its key (settings signing_certificate and "
            "signing_key)."
        )
    if not isinstance(key, rsa.RSAPrivateKey) or _public_der(key) != _public_der(certificate):
        raise SigningError(
            f"The signing key {key_path} does not belong to the certificate {described}; "
            "configure the key that was issued with this certificate (setting signing_key)."
        )
    return SigningIdentity(key=key, certificate=certificate)


def signing_identity(settings: Settings, *, at: datetime | None = None) -> SigningIdentity:
    """The installation's signing identity from ``signing_key`` and ``signing_certificate``."""
    if settings.signing_key is None or settings.signing_certificate is None:
        raise SigningError(
            "No signing identity is configured; set signing_key and signing_certificate (PEM "
            "files) in massar.toml before producing partner files."
        )
    return load_signing_identity(settings.signing_key, settings.signing_certificate, at=at)


def make_test_certificate(
    directory: Path, not_before: datetime, not_after: datetime, common_name: str
) -> tuple[Path, Path]:
    """Create a self-signed RSA 2048 certificate and its key (PEM) in ``directory``, for tests
    and the demo; returns ``(key_path, cert_path)``. Never use it with a real partner."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "MA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Ministère de l'Éducation Nationale"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(as_utc(not_before))
        .not_valid_after(as_utc(not_after))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    stem = _file_stem(common_name)
    key_path = directory / f"{stem}-key.pem"
    cert_path = directory / f"{stem}-cert.pem"
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key_bytes)
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


# ---------------------------------------------------------------------------------------------
# Signing


def sign_xml(document: bytes, identity: SigningIdentity, canonical: bytes | None = None) -> bytes:
    """``document`` with an enveloped XML-DSig signature appended to its root element.

    The signature is the one signxml's ``XMLSigner`` (enveloped, RSA-SHA256, SHA-256, exclusive
    c14n) makes, byte for byte (tests/connectors/test_exchange_profiles.py compares them), built
    here on the tree parsed once: signxml serialises and parses the whole document twice more,
    seconds for a batch of 200,000 children. The digest is of the exclusive canonical form of
    the document without the signature; the signature value of that of ``SignedInfo``.

    ``canonical``: that form of the root element, when the caller wrote ``document`` as the
    XML declaration, a newline, that form and a newline
    (:func:`connectors.exchange.response_files.response_xml_and_canonical`): the document is
    then not parsed, the signature is written before the root's end tag, the same bytes."""
    if canonical is not None:
        end = document.rindex(b"</")
        written = memoryview(document)[len(_DECLARATION) : -1]
        if not (document.startswith(_DECLARATION) and document.endswith(b"\n")) or (
            written != canonical
        ):
            raise ValueError("The document is not its canonical form written after a declaration.")
        signature = _signature(_sha256(canonical), identity)
        return b"".join((document[:end], etree.tostring(signature), document[end:-1]))
    root = etree.fromstring(document, parser=_xml_parser())
    digest = _sha256(etree.tostring(root, method="c14n", exclusive=True, with_comments=False))
    root.append(_signature(digest, identity))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


_DECLARATION = b"<?xml version='1.0' encoding='UTF-8'?>\n"


def _sha256(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(data)
    return digest.finalize()


def _signature(digest: bytes, identity: SigningIdentity) -> etree._Element:
    """The ``ds:Signature`` element of a document whose canonical form has ``digest``.

    Made on its own: exclusive c14n of ``SignedInfo`` renders only the namespaces it uses
    (``ds``), the same whether the element is inside the document or not."""

    def ds(parent: etree._Element, tag: str, **attributes: str) -> etree._Element:
        return etree.SubElement(parent, f"{{{DS_NAMESPACE}}}{tag}", attributes)

    signature = etree.Element(f"{{{DS_NAMESPACE}}}Signature", nsmap={"ds": DS_NAMESPACE})
    signed_info = ds(signature, "SignedInfo")
    ds(signed_info, "CanonicalizationMethod", Algorithm=_EXCLUSIVE_C14N)
    ds(signed_info, "SignatureMethod", Algorithm=SignatureMethod.RSA_SHA256.value)
    reference = ds(signed_info, "Reference", URI="")
    transforms = ds(reference, "Transforms")
    ds(transforms, "Transform", Algorithm=_ENVELOPED_TRANSFORM)
    ds(transforms, "Transform", Algorithm=_EXCLUSIVE_C14N)
    ds(reference, "DigestMethod", Algorithm=DigestAlgorithm.SHA256.value)
    ds(reference, "DigestValue").text = base64.b64encode(digest).decode()
    value = ds(signature, "SignatureValue")
    certificate = ds(ds(ds(signature, "KeyInfo"), "X509Data"), "X509Certificate")
    certificate.text = _pem_body(identity.certificate)
    signed = etree.tostring(signed_info, method="c14n", exclusive=True, with_comments=False)
    value.text = base64.b64encode(
        identity.key.sign(signed, padding.PKCS1v15(), hashes.SHA256())
    ).decode()
    return signature


def _pem_body(certificate: x509.Certificate) -> str:
    """The certificate's PEM without its BEGIN and END lines (base64 lines, each ending with a
    newline), as signxml writes it in ``X509Certificate``."""
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
    return "".join(line + "\n" for line in pem.splitlines() if not line.startswith("-----"))


def sign_cms_detached(content: bytes, identity: SigningIdentity) -> bytes:
    """A detached CMS signature (DER) of ``content`` taken as binary, certificate included."""
    return (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(content)
        .add_signer(identity.certificate, identity.key, hashes.SHA256())
        .sign(
            serialization.Encoding.DER,
            [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary],
        )
    )


# ---------------------------------------------------------------------------------------------
# Checking


def verify_xml_signature(
    document: bytes | etree._Element, certificate: Path | bytes | None = None
) -> SignerCertificate:
    """Check the enveloped signature over the whole ``document``; returns who signed.

    ``document``: the file's bytes, or its root element as the caller parsed it (the tree is
    then read, not changed). With ``certificate`` (PEM path or bytes), the signature must be
    made with that certificate; without it, with the certificate the signature carries (the
    integrity is checked, and the caller compares the returned fingerprint with the one the
    directorate published). Raises :class:`SignatureCheckError`.

    Only the signatures the platform makes are accepted: one ``ds:Signature`` in the file, under
    the root, exclusive c14n, RSA-SHA256, one ``Reference URI=""`` with the enveloped-signature
    and exclusive c14n transforms (those two, in that order) and a SHA-256 digest, and a
    ``KeyInfo`` carrying one certificate: the one given, when one is. As signxml's
    ``XMLVerifier`` (which checks the same, on two more parses and serialisations of the whole
    file), the signature value is checked over ``SignedInfo`` first, the certificate must be
    valid now, and the digest read from the signed ``SignedInfo`` is compared with that of the
    document without its signature."""
    root = document if isinstance(document, etree._Element) else _parse_signed(document)
    signatures = root.findall(f"{{{DS_NAMESPACE}}}Signature")
    if not signatures:
        raise SignatureCheckError(
            "The file carries no XML signature (ds:Signature) under its root element."
        )
    # Anywhere in the file, not only under the root: a second signature deeper down is the
    # one a tool looking for the first signature in the document would check.
    if len(signatures) > 1 or sum(1 for _ in root.iter(f"{{{DS_NAMESPACE}}}Signature")) > 1:
        raise SignatureCheckError("The file carries more than one XML signature; one is expected.")
    signature = signatures[0]
    if [part.tag for part in _elements(signature)] != [
        f"{{{DS_NAMESPACE}}}{tag}" for tag in ("SignedInfo", "SignatureValue", "KeyInfo")
    ]:
        raise SignatureCheckError(
            "The XML signature is not made as the exchange profiles sign (ds:SignedInfo, "
            "ds:SignatureValue and ds:KeyInfo with the certificate, nothing else)."
        )
    signed_info = _only(signature, "SignedInfo")
    references = signed_info.findall(f"{{{DS_NAMESPACE}}}Reference")
    if len(references) != 1 or references[0].get("URI") != "":
        raise SignatureCheckError(
            'The XML signature does not cover the whole document (one Reference with URI="" '
            "is expected)."
        )
    transforms = [
        t.get("Algorithm")
        for t in references[0].iterfind(f"{{{DS_NAMESPACE}}}Transforms/{{{DS_NAMESPACE}}}Transform")
    ]
    if _ENVELOPED_TRANSFORM not in transforms:
        raise SignatureCheckError("The XML signature is not an enveloped signature.")
    _check_signed_info(signed_info, transforms)
    carried_certificate = _carried_certificate(signature)
    if certificate is not None:
        signing_certificate = x509.load_pem_x509_certificate(_pem(certificate))
    else:
        signing_certificate = carried_certificate
    now = datetime.now(UTC)
    valid = signing_certificate.not_valid_before_utc, signing_certificate.not_valid_after_utc
    if not valid[0] <= now <= valid[1]:
        raise SignatureCheckError(
            f"The signing certificate {_describe(signing_certificate)} is not valid now "
            f"({now:%Y-%m-%d %H:%M} UTC)."
        )
    public_key = signing_certificate.public_key()
    signed = etree.tostring(signed_info, method="c14n", exclusive=True, with_comments=False)
    try:
        value = _base64_decode(
            "".join((signature.findtext(f"{{{DS_NAMESPACE}}}SignatureValue") or "").split())
        )
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise ValueError("the certificate's key is not an RSA key")
        public_key.verify(value, signed, padding.PKCS1v15(), hashes.SHA256())
    except (ValueError, InvalidSignature) as error:
        raise SignatureCheckError(
            f"The XML signature is not valid for the certificate "
            f"{_describe(signing_certificate)} ({error or 'signature mismatch'})."
        ) from error
    # The certificate the file names is the one its signature was checked with: a partner's
    # tool that takes the key from KeyInfo (xmlsec1) checks the same signature.
    if carried_certificate != signing_certificate:
        raise SignatureCheckError(
            f"The certificate inside the XML signature ({_describe(carried_certificate)}) is "
            f"not the one given ({_describe(signing_certificate)})."
        )
    # "See what is signed": the digest is read from the SignedInfo whose signature holds.
    verified = etree.fromstring(signed, parser=_xml_parser())
    expected = verified.findtext(f"{{{DS_NAMESPACE}}}Reference/{{{DS_NAMESPACE}}}DigestValue")
    if _document_digest(root, signature) != _base64_decode("".join((expected or "").split())):
        raise SignatureCheckError(
            "The XML signature does not match the content: the file was changed after signing."
        )
    return SignerCertificate.of(signing_certificate)


def _carried_certificate(signature: etree._Element) -> x509.Certificate:
    """The one X.509 certificate of the signature's ``KeyInfo/X509Data`` (nothing else)."""
    ds = f"{{{DS_NAMESPACE}}}"
    key_info = _only(signature, "KeyInfo")
    data = _elements(key_info)
    certificates = _elements(data[0]) if len(data) == 1 and data[0].tag == f"{ds}X509Data" else []
    if len(certificates) != 1 or certificates[0].tag != f"{ds}X509Certificate":
        raise SignatureCheckError(
            "The XML signature does not carry exactly one X.509 certificate in ds:KeyInfo."
        )
    try:
        return x509.load_der_x509_certificate(
            _base64_decode("".join((certificates[0].text or "").split()))
        )
    except ValueError as error:
        raise SignatureCheckError(
            "The certificate inside the XML signature cannot be read."
        ) from error


def _parse_signed(document: bytes) -> etree._Element:
    try:
        root = etree.fromstring(document, parser=_xml_parser())
    except etree.XMLSyntaxError as error:
        raise SignatureCheckError(f"The file is not well-formed XML ({error.msg}).") from error
    docinfo = root.getroottree().docinfo
    if docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise SignatureCheckError("The file declares a DTD, which signed exchange files never do.")
    if next(root.iter(etree.Entity), None) is not None:
        raise SignatureCheckError("The file holds entities, which signed exchange files never do.")
    return root


def _only(parent: etree._Element, tag: str) -> etree._Element:
    found = parent.findall(f"{{{DS_NAMESPACE}}}{tag}")
    if len(found) != 1:
        raise SignatureCheckError(f"The XML signature does not have one ds:{tag}.")
    return found[0]


def _elements(parent: etree._Element) -> list[etree._Element]:
    return [child for child in parent if isinstance(child.tag, str)]  # not comments


def _check_signed_info(signed_info: etree._Element, transforms: list[str | None]) -> None:
    """SignedInfo holds exactly what the platform signs with, nothing more, in this order."""
    ds = f"{{{DS_NAMESPACE}}}"
    method, algorithm, reference = [*_elements(signed_info), None, None, None][:3]
    parts = _elements(reference) if reference is not None else []
    made_so = (
        len(_elements(signed_info)) == 3
        and method is not None
        and method.tag == f"{ds}CanonicalizationMethod"
        and method.get("Algorithm") == _EXCLUSIVE_C14N
        and not len(method)  # no InclusiveNamespaces
        and algorithm is not None
        and algorithm.tag == f"{ds}SignatureMethod"
        and algorithm.get("Algorithm") == SignatureMethod.RSA_SHA256.value
        and not len(algorithm)
        and [part.tag for part in parts]
        == [f"{ds}Transforms", f"{ds}DigestMethod", f"{ds}DigestValue"]
        and parts[1].get("Algorithm") == DigestAlgorithm.SHA256.value
        and len(_elements(parts[0])) == len(transforms)
        and all(len(transform) == 0 for transform in parts[0])
        # exactly these, in this order: the digest is computed so (_document_digest)
        and transforms == [_ENVELOPED_TRANSFORM, _EXCLUSIVE_C14N]
    )
    if not made_so:
        raise SignatureCheckError(
            "The XML signature is not made as the exchange profiles sign (exclusive c14n, "
            "RSA-SHA256, one reference to the whole document with the enveloped-signature and "
            "exclusive c14n transforms only, SHA-256 digest)."
        )


def _document_digest(root: etree._Element, signature: etree._Element) -> bytes:
    """SHA-256 of the exclusive canonical form of the document without ``signature`` (the
    enveloped-signature transform), computed on the tree given: the signature is taken out
    and put back where it was, with the text around it."""
    position = root.index(signature)
    previous = signature.getprevious()
    before = previous.tail if previous is not None else root.text
    tail = signature.tail
    root.remove(signature)  # lxml moves the tail to the previous sibling (or the root's text)
    try:
        canonical = etree.tostring(root, method="c14n", exclusive=True, with_comments=False)
    finally:
        if previous is not None:
            previous.tail = before
        else:
            root.text = before
        root.insert(position, signature)
        signature.tail = tail
    digest = hashes.Hash(hashes.SHA256())
    digest.update(canonical)
    return digest.finalize()


def verify_cms_signature(
    content: bytes, signature: bytes, certificate: Path | bytes | None = None
) -> SignerCertificate:
    """Check a detached CMS signature (DER or PEM) of ``content`` with ``openssl cms``.

    With ``certificate`` (PEM), the signer's chain must end in it (``-CAfile``, any purpose);
    without it, only the signature with the certificate it carries is checked and the caller
    compares the returned fingerprint. Raises :class:`SignatureCheckError`.
    """
    with tempfile.TemporaryDirectory(prefix="massar-cms-") as scratch:
        folder = Path(scratch)
        (folder / "content").write_bytes(content)
        (folder / "signature").write_bytes(signature)
        command = [
            "openssl",
            "cms",
            "-verify",
            "-binary",
            "-content",
            str(folder / "content"),
            "-in",
            str(folder / "signature"),
            "-inform",
            "PEM" if signature.lstrip().startswith(b"-----BEGIN") else "DER",
            "-out",
            os.devnull,
            "-certsout",
            str(folder / "signers.pem"),
        ]
        if certificate is not None:
            (folder / "trusted.pem").write_bytes(_pem(certificate))
            command += ["-CAfile", str(folder / "trusted.pem"), "-purpose", "any"]
        else:
            command += ["-noverify"]
        try:
            run = subprocess.run(command, capture_output=True, timeout=60, check=False)
        except FileNotFoundError as error:
            raise SignatureCheckError(
                "The openssl command is not installed; install OpenSSL to check CMS signatures."
            ) from error
        if run.returncode != 0:
            detail = _openssl_reason(run.stderr)
            raise SignatureCheckError(
                f"The CMS signature does not hold for this content ({detail})."
            )
        signers = x509.load_pem_x509_certificates((folder / "signers.pem").read_bytes())
    return SignerCertificate.of(signers[0])


# ---------------------------------------------------------------------------------------------
# Helpers of this module


def _read_certificate(path: Path) -> x509.Certificate:
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise SigningError(
            f"The signing certificate {path} cannot be read ({error.strerror}); check the "
            "setting signing_certificate."
        ) from error
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as error:
        raise SigningError(
            f"{path} is not a PEM X.509 certificate; check the setting signing_certificate."
        ) from error


def _read_key(path: Path):  # type: ignore[no-untyped-def]
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise SigningError(
            f"The signing key {path} cannot be read ({error.strerror}); check the setting "
            "signing_key."
        ) from error
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as error:
        raise SigningError(
            f"{path} is not an unencrypted PEM private key; check the setting signing_key."
        ) from error


def _public_der(holder) -> bytes:  # type: ignore[no-untyped-def]
    return holder.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _describe(certificate: x509.Certificate) -> str:
    return (
        f"{certificate.subject.rfc4514_string()} (valid from "
        f"{certificate.not_valid_before_utc:%Y-%m-%d %H:%M} to "
        f"{certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC)"
    )


def _file_stem(common_name: str) -> str:
    stem = "".join(c if c.isalnum() else "-" for c in common_name.lower()).strip("-")
    return stem or "signing"


def _pem(certificate: Path | bytes) -> bytes:
    data = certificate if isinstance(certificate, bytes) else Path(certificate).read_bytes()
    if b"-----BEGIN" not in data:  # DER given: openssl and cryptography both get PEM
        data = x509.load_der_x509_certificate(data).public_bytes(serialization.Encoding.PEM)
    return data


def _base64_decode(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def _xml_parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def _openssl_reason(stderr: bytes) -> str:
    text = stderr.decode("utf-8", "replace")
    for marker in ("digest failure", "signature failure", "certificate verify error"):
        if marker in text.lower():
            return marker
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "openssl refused it"

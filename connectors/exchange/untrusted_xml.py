"""XML that came from outside (responses checked by verify, acknowledgements): parsed with no
DOCTYPE, entities, network or huge trees, and checked against our own XSDs."""

from __future__ import annotations

import functools
import re
from pathlib import Path

from lxml import etree

from connectors.exchange.file_error import ExchangeFileError


def parse_untrusted_xml(data: bytes, label: str) -> etree._Element:
    """Parse XML that came from outside: UTF-8 only, no DOCTYPE, no entities, no network, no
    huge trees. Raises :class:`ExchangeFileError` (one sentence naming ``label``)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ExchangeFileError([f"{label} is not UTF-8 text."]) from error
    # NUL bytes would let UTF-16 text pass the checks below; no exchange file has any.
    if "\x00" in text:
        raise ExchangeFileError([f"{label} is not UTF-8 text (it contains NUL bytes)."])
    if re.search(r"<!\s*(DOCTYPE|ENTITY)", text, flags=re.IGNORECASE):
        raise ExchangeFileError(
            [f"{label} declares a DOCTYPE or entities, which exchange files never do; refused."]
        )
    try:
        root = etree.fromstring(data, parser=safe_xml_parser())
    except etree.XMLSyntaxError as error:
        raise ExchangeFileError([f"{label} is not well-formed XML ({error.msg})."]) from error
    if root.getroottree().docinfo.doctype:
        raise ExchangeFileError([f"{label} declares a DOCTYPE; refused."])
    return root


def safe_xml_parser() -> etree.XMLParser:
    """The parser for XML from outside: no entity expansion, DTD, network or huge trees."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=False,
    )


@functools.lru_cache(maxsize=16)
def load_schema(path: Path) -> etree.XMLSchema:
    """The XSD at ``path`` (ours, shipped with the package), compiled once."""
    return etree.XMLSchema(etree.parse(str(path), parser=safe_xml_parser()))


def schema_problems(xsd: Path, root: etree._Element, label: str) -> list[str]:
    """One sentence per way ``root`` breaks the XSD at ``xsd`` (empty: valid)."""
    schema = load_schema(Path(xsd))
    if schema.validate(root):
        return []
    return [
        f"{label} line {entry.line} breaks the schema {Path(xsd).parent.name}/"
        f"{Path(xsd).name}: {entry.message}" + ("" if entry.message.endswith(".") else ".")
        for entry in schema.error_log
    ]

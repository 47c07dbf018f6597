"""Every file of a batch: the signed response XML, the CSV and its detached signature, and the
manifest that binds them by sha256."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from connectors.exchange.file_names import batch_file_names, canonical_school_year
from connectors.exchange.profile import Profile
from connectors.exchange.response_files import (
    answer_rows,
    response_csv,
    response_xml_and_canonical,
)
from ground.collector import collector_paused
from schemas.exchange import ChildAnswer

if TYPE_CHECKING:
    from connectors.signing import SigningIdentity


def build_manifest(
    profile: Profile,
    batch_id: str,
    sequence: int,
    school_year: str,
    files: Mapping[str, bytes],
    *,
    legal_basis: str = "",
) -> bytes:
    """The manifest (JSON, UTF-8): profile, version, batch, and sha256 and size of each file."""
    manifest = {
        "fund": profile.code,
        "profile_version": profile.version,
        "namespace": profile.namespace,
        "batch_id": batch_id,
        "sequence": sequence,
        "school_year": canonical_school_year(school_year),
        "legal_basis": legal_basis,
        "files": [
            {"name": name, "size": len(data), "sha256": sha256(data)}
            for name, data in files.items()
        ],
    }
    return (json.dumps(manifest, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def build_batch_files(
    profile: Profile,
    batch_id: str,
    sequence: int,
    school_year: str,
    answers: Sequence[ChildAnswer],
    generated_at: datetime,
    identity: SigningIdentity,
    *,
    legal_basis: str = "",
) -> dict[str, bytes]:
    """Every file of a batch, by name: signed XML, CSV, its ``.p7s`` and the manifest."""
    from connectors.signing import sign_cms_detached, sign_xml

    names = batch_file_names(profile, school_year, sequence)
    year = canonical_school_year(school_year)
    # A record per child (200,000): the garbage collector paused (ground/collector.py).
    with collector_paused():
        rows = answer_rows(answers, year)  # once for the XML and the CSV
        document, canonical = response_xml_and_canonical(
            profile, batch_id, sequence, year, rows, generated_at, legal_basis
        )
        xml = sign_xml(document, identity, canonical)
        table = response_csv(profile, rows)
    files = {
        names.xml: xml,
        names.csv: table,
        names.csv_signature: sign_cms_detached(table, identity),
    }
    files[names.manifest] = build_manifest(
        profile, batch_id, sequence, school_year, files, legal_basis=legal_basis
    )
    return files


def sha256(data: bytes) -> str:
    """Lowercase hex sha256, as manifests and acknowledgements write it."""
    return hashlib.sha256(data).hexdigest()

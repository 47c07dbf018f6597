"""What each derived output was last made from: its fingerprint, in the control database.

A derived output (a school's results in the result tables, the e-services extract, the
statistics report, a school's report, the coverage page) is made from inputs: warehouse tables,
rules files, the code that computes it. Its *fingerprint* is the sha256 of those inputs as a
night sees them (per school: the Delta data files of the school's partition, which are never
rewritten in place, so the same files are the same rows). A night computes the fingerprints
first, compares them with the ones recorded here, and leaves alone every output whose inputs did
not change (tasks/output_fingerprints.py).

Why the control database and not a file beside each output: the results of a school live in
Delta tables shared by every school (no file of their own to carry a fingerprint), the nights
that publish those tables are recorded in this same database, and a fingerprint is recorded
only after its output is published (a run that dies in between leaves the old fingerprint, so
the output is made again, never wrongly kept). Outputs that are files are also checked on
disk: a file that is missing is written again whatever its fingerprint says.

Nothing here holds pupil data: scopes are school codes (or ``province``), ``inputs`` holds
counts, school years and the held-back rows' codes and counts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable
from sqlalchemy import JSON, String, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from warehouse.control import Base, ControlDatabase, utcnow
from warehouse.delta import PARTITION, table_path

PROVINCE = "province"  # the scope of an output of the whole province


class OutputFingerprint(Base):
    """The fingerprint of the inputs an output was last made from (one row per output and
    scope)."""

    __tablename__ = "output_fingerprints"

    output: Mapped[str] = mapped_column(String(40), primary_key=True)  # results, evaluation...
    scope: Mapped[str] = mapped_column(String(80), primary_key=True)  # a school code, province
    fingerprint: Mapped[str] = mapped_column(String(64))
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


def digest(*parts: Any) -> str:
    """The sha256 of ``parts`` written as canonical JSON (keys sorted)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def files_digest(paths: Iterable[Path]) -> str:
    """The sha256 of files' names and bytes (rules files, source files), in name order; a
    missing file counts as absent."""
    hasher = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        hasher.update(path.name.encode("utf-8") + b"\0")
        if path.is_file():
            hasher.update(path.read_bytes())
        hasher.update(b"\0")
    return hasher.hexdigest()


def partition_digests(warehouse: Path, table: str, version: int | None) -> dict[str, str]:
    """Per school, a digest of the data files of its partition at ``version`` (from the Delta
    log alone, nothing read): a write of the school's rows adds new files, a write of other
    schools leaves these as they are. No table (or no version): an empty dict."""
    if version is None or version < 0:
        return {}
    path = table_path(warehouse, table)
    if not (path / "_delta_log").is_dir():
        return {}
    actions = pa.table(DeltaTable(str(path), version=version).get_add_actions(flatten=True))
    column = f"partition.{PARTITION}"
    if column not in actions.column_names or not actions.num_rows:
        return {}
    files: dict[str, list[tuple[str, int]]] = {}
    for school, name, size in zip(
        actions.column(column).to_pylist(),
        actions.column("path").to_pylist(),
        actions.column("size_bytes").to_pylist(),
        strict=True,
    ):
        files.setdefault(str(school), []).append((str(name), int(size)))
    return {school: digest(sorted(names)) for school, names in files.items()}


def recorded(database: ControlDatabase, output: str) -> dict[str, OutputFingerprint]:
    """The fingerprints recorded for ``output``, by scope (detached rows)."""
    with database.session() as session:
        rows = session.scalars(
            select(OutputFingerprint).where(OutputFingerprint.output == output)
        ).all()
        session.expunge_all()
    return {row.scope: row for row in rows}


def record(
    database: ControlDatabase,
    output: str,
    fingerprints: Mapping[str, str],
    inputs: Mapping[str, Mapping[str, Any]] | None = None,
) -> int:
    """Record ``fingerprints`` (scope → fingerprint) of ``output``, replacing those of the same
    scopes, in one transaction; ``inputs``: what the output keeps per scope. Returns how many."""
    if not fingerprints:
        return 0
    scopes = sorted(fingerprints)
    inputs = inputs or {}
    with database.session() as session:
        for start in range(0, len(scopes), 500):  # SQLite's limit on bound parameters
            chunk = scopes[start : start + 500]
            session.execute(
                delete(OutputFingerprint).where(
                    OutputFingerprint.output == output, OutputFingerprint.scope.in_(chunk)
                )
            )
        session.add_all(
            OutputFingerprint(
                output=output,
                scope=scope,
                fingerprint=fingerprints[scope],
                inputs=dict(inputs.get(scope, {})),
                recorded_at=utcnow(),
            )
            for scope in scopes
        )
    return len(scopes)


def forget(database: ControlDatabase, output: str | None = None) -> int:
    """Forget the fingerprints of ``output`` (None: of every output), so that the next night
    makes those outputs again; returns how many were forgotten."""
    with database.session() as session:
        query = delete(OutputFingerprint)
        if output is not None:
            query = query.where(OutputFingerprint.output == output)
        return int(getattr(session.execute(query), "rowcount", 0) or 0)

"""The message log (table ``message_log``): append-only and hash-chained.

Entry n stores ``entry_hash = sha256(previous_hash + canonical)`` where ``previous_hash`` is
entry n-1's ``entry_hash`` (64 zeros for the first) and ``canonical`` is the JSON array (UTF-8,
no spaces) ``[sequence, logged_at, partner, batch_id, file_name, sha256, signature_sha256,
approver]`` with ``logged_at`` in UTC as ``YYYY-MM-DDTHH:MM:SS.ffffff+00:00``. Sequences run 1,
2, 3... without gaps: a modified entry breaks its hash, a deleted one leaves a gap and a broken
link, a deleted last entry leaves a delivered file without entry. Deliveries
(warehouse/exchange_ledger.py), review decisions (warehouse/review_records.py), decisions and
refused attempts (warehouse/approval_records.py) append here;
warehouse/message_log_evidence.py checks the chain and exports it for an auditor.

SQL stays portable (SQLite and PostgreSQL).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from warehouse.control import (
    ControlDatabase,
    MessageLogEntry,
    utcnow,
)

GENESIS_HASH = "0" * 64
EVIDENCE_FORMAT = "massar-message-log-evidence/1"
HASH_RULE = (
    "entry_hash = sha256_hex(previous_hash + canonical), UTF-8; canonical = JSON array without "
    "spaces [sequence, logged_at, partner, batch_id, file_name, sha256, signature_sha256, "
    "approver], logged_at in UTC as YYYY-MM-DDTHH:MM:SS.ffffff+00:00; the first entry's "
    "previous_hash is 64 zeros; each entry's previous_hash is the entry_hash of the entry "
    "with the sequence before it."
)
_CONCURRENT_RETRIES = 8
REVIEW_ENTRY = "review-decision:"  # file_name prefix of a review decision's log entry
DECISION_ENTRY = "decision:"  # file_name prefix of a decision's log entry
REFUSED_ENTRY = "refused:"  # file_name prefix of a refused attempt's log entry


def _utc(moment: datetime) -> datetime:
    # SQLite hands datetimes back without their zone; they were stored in UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _time_text(moment: datetime) -> str:
    return _utc(moment).isoformat(timespec="microseconds")


def canonical_entry(
    sequence: int,
    logged_at: datetime | str,
    partner: str,
    batch_id: str,
    file_name: str,
    sha256: str,
    signature_sha256: str,
    approver: str,
) -> str:
    """The canonical text of a message-log entry's fields (see the module doc)."""
    moment = logged_at if isinstance(logged_at, str) else _time_text(logged_at)
    fields = [sequence, moment, partner, batch_id, file_name, sha256, signature_sha256, approver]
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":"))


def chain_hash(previous_hash: str, canonical: str) -> str:
    return hashlib.sha256((previous_hash + canonical).encode("utf-8")).hexdigest()


def _entry_canonical(entry: MessageLogEntry) -> str:
    return canonical_entry(
        entry.sequence,
        entry.logged_at,
        entry.partner,
        entry.batch_id,
        entry.file_name,
        entry.sha256,
        entry.signature_sha256,
        entry.approver,
    )


def _append_entry(
    session: Session,
    *,
    partner: str,
    batch_id: str,
    file_name: str,
    sha256: str,
    signature_sha256: str,
    approver: str,
) -> MessageLogEntry:
    """Append one entry after the current last one. The sequence is chosen here (last + 1),
    so two writers racing for the same place collide on the primary key: one of them rolls
    back and retries, and the chain never forks."""
    last = session.execute(
        select(MessageLogEntry.sequence, MessageLogEntry.entry_hash)
        .order_by(MessageLogEntry.sequence.desc())
        .limit(1)
    ).first()
    sequence, previous = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
    logged_at = utcnow()
    entry = MessageLogEntry(
        sequence=sequence,
        logged_at=logged_at,
        partner=partner,
        batch_id=batch_id,
        file_name=file_name,
        sha256=sha256,
        signature_sha256=signature_sha256,
        approver=approver,
        previous_hash=previous,
    )
    entry.entry_hash = chain_hash(previous, _entry_canonical(entry))
    session.add(entry)
    session.flush()
    return entry


def _entry_dict(entry: MessageLogEntry) -> dict[str, Any]:
    return {
        "sequence": entry.sequence,
        "logged_at": _time_text(entry.logged_at),
        "partner": entry.partner,
        "batch_id": entry.batch_id,
        "file_name": entry.file_name,
        "sha256": entry.sha256,
        "signature_sha256": entry.signature_sha256,
        "approver": entry.approver,
        "previous_hash": entry.previous_hash,
        "entry_hash": entry.entry_hash,
    }


def message_log(
    database: ControlDatabase, partner: str | None = None, batch_id: str | None = None
) -> list[dict[str, Any]]:
    """Message-log entries in sequence order, optionally of one partner and/or batch."""
    query = select(MessageLogEntry).order_by(MessageLogEntry.sequence)
    if partner is not None:
        query = query.where(MessageLogEntry.partner == partner)
    if batch_id is not None:
        query = query.where(MessageLogEntry.batch_id == batch_id)
    with database.session() as session:
        return [_entry_dict(entry) for entry in session.scalars(query)]

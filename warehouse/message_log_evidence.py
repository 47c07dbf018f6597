"""Checking the message log (warehouse/message_log.py) and exporting it for an auditor:
:func:`verify_message_log` checks every entry's hash and link, the sequences, every delivered
file, review decision, decision and refused attempt against its entry;
:func:`export_evidence` writes a JSON evidence file that :func:`check_evidence` re-checks with
no database.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from warehouse.approval_records import (
    _approval_dict,
    _attempt_dict,
    _decision_problems,
    approval_digest,
    attempt_digest,
)
from warehouse.control import (
    Acknowledgement,
    Approval,
    ControlDatabase,
    Delivery,
    ExchangeBatch,
    RefusedAttempt,
    ReviewDecision,
    utcnow,
)
from warehouse.message_log import (
    EVIDENCE_FORMAT,
    GENESIS_HASH,
    HASH_RULE,
    _time_text,
    canonical_entry,
    chain_hash,
    message_log,
)
from warehouse.review_records import (
    _DIGEST_FIELDS,
    _decision_dict,
    _review_problems,
    review_digest,
)


@dataclass
class LogCheck:
    """Result of :func:`verify_message_log`: ``problems`` are sentences, empty when intact."""

    entries: int
    head_hash: str
    problems: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems


def _chain_problems(entries: list[dict[str, Any]]) -> list[str]:
    """Problems of a complete chain given as entry dicts (see :func:`_entry_dict`)."""
    problems = []
    previous_hash, expected_sequence = GENESIS_HASH, 1
    for entry in entries:
        sequence = entry["sequence"]
        if sequence != expected_sequence:
            missing = (
                f"{expected_sequence}"
                if sequence == expected_sequence + 1
                else f"{expected_sequence} to {sequence - 1}"
            )
            problems.append(
                f"Message-log entry {missing} is missing before entry {sequence}: an entry was "
                "deleted."
            )
        if entry["previous_hash"] != previous_hash:
            problems.append(
                f"Message-log entry {sequence} does not link to the entry before it: the chain "
                "was cut or an earlier entry was changed."
            )
        canonical = canonical_entry(
            sequence,
            entry["logged_at"],
            entry["partner"],
            entry["batch_id"],
            entry["file_name"],
            entry["sha256"],
            entry["signature_sha256"],
            entry["approver"],
        )
        if chain_hash(entry["previous_hash"], canonical) != entry["entry_hash"]:
            problems.append(
                f"Message-log entry {sequence} (batch {entry['batch_id']}, file "
                f"{entry['file_name']}) does not match its hash: it was modified."
            )
        previous_hash, expected_sequence = entry["entry_hash"], sequence + 1
    return problems


def verify_message_log(database: ControlDatabase, known_head: str | None = None) -> LogCheck:
    """Check the whole message log: every entry's hash, every link, no gap in sequences, and
    every delivered file of the ledger present in the log (which catches a deleted last
    entry), every officer's review decision matching its digest and logged. ``known_head``: a
    ``chain_head`` from an earlier evidence export, which must still be an entry of the
    chain."""
    entries = message_log(database)
    problems = _chain_problems(entries)
    logged = {(e["batch_id"], e["file_name"], e["sha256"]) for e in entries}
    with database.session() as session:
        delivered = session.execute(
            select(Delivery.batch_id, Delivery.file_name, Delivery.sha256)
            .where(Delivery.state == "delivered")
            .order_by(Delivery.delivery_id)
        ).all()
    for batch_id, file_name, sha256 in delivered:
        if (batch_id, file_name, sha256) not in logged:
            problems.append(
                f"File {file_name} of batch {batch_id} is delivered in the ledger but has no "
                "message-log entry: its entry was deleted or changed."
            )
    problems += _review_problems(database, entries)
    problems += _decision_problems(database, entries)
    if known_head and known_head not in {e["entry_hash"] for e in entries}:
        problems.append(
            f"The chain head {known_head[:12]}… of an earlier export is no longer in the "
            "message log: entries were removed or rewritten since."
        )
    head = entries[-1]["entry_hash"] if entries else GENESIS_HASH
    return LogCheck(entries=len(entries), head_hash=head, problems=problems)


def _document_hash(document: dict[str, Any]) -> str:
    body = {key: value for key, value in document.items() if key != "evidence_sha256"}
    text = json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def export_evidence(
    database: ControlDatabase,
    path: Path,
    partner: str | None = None,
    batch_id: str | None = None,
) -> Path:
    """Write a JSON evidence file for an auditor; returns ``path``.

    It holds: the hash rule in words; ``entries``, the full message-log entries of the
    partner/batch asked (all when none); ``chain``, ``[sequence, previous_hash, entry_hash]``
    of every entry of the log, so the links can be checked end to end; ``chain_head``, the
    last entry's hash (it commits to everything before it; keep it to compare later with
    ``verify_message_log(known_head=...)``); the ledger rows, acknowledgements and officers'
    review decisions (``review_decisions``, whose ``digest`` an entry holds), the decisions on
    batches (``decisions``) and refused attempts (``refused_attempts``) of the same scope; the
    verification result at export time; and ``evidence_sha256``, sha256 of
    the document's canonical JSON without that field. :func:`check_evidence` re-checks it."""
    check = verify_message_log(database)
    all_entries = message_log(database)
    entries = [
        e
        for e in all_entries
        if (partner is None or e["partner"] == partner)
        and (batch_id is None or e["batch_id"] == batch_id)
    ]
    with database.session() as session:
        deliveries = select(Delivery).order_by(Delivery.delivery_id)
        acknowledgements = select(Acknowledgement).order_by(Acknowledgement.acknowledgement_id)
        if partner is not None:
            deliveries = deliveries.where(Delivery.partner == partner)
            acknowledgements = acknowledgements.where(Acknowledgement.partner == partner)
        if batch_id is not None:
            deliveries = deliveries.where(Delivery.batch_id == batch_id)
            acknowledgements = acknowledgements.where(Acknowledgement.batch_id == batch_id)
        ledger = [
            {
                "batch_id": row.batch_id,
                "partner": row.partner,
                "file_name": row.file_name,
                "sha256": row.sha256,
                "size_bytes": row.size_bytes,
                "remote_path": row.remote_path,
                "state": row.state,
                "attempts": row.attempts,
                "delivered_at": _time_text(row.delivered_at) if row.delivered_at else None,
            }
            for row in session.scalars(deliveries)
        ]
        acks = [
            {
                "batch_id": row.batch_id,
                "partner": row.partner,
                "file_name": row.file_name,
                "file_sha256": row.file_sha256,
                "acknowledged_sha256": row.acknowledged_sha256,
                "received_at": _time_text(row.received_at),
                "accepted": row.accepted,
                "rejected": row.rejected,
                "bound_to_delivery": bool((row.detail or {}).get("bound_to_delivery")),
            }
            for row in session.scalars(acknowledgements)
        ]
        reviews = select(ReviewDecision).order_by(ReviewDecision.decision_id)
        if batch_id is not None:
            reviews = reviews.where(ReviewDecision.batch_id == batch_id)
        if partner is not None:
            reviews = reviews.join(ExchangeBatch).where(ExchangeBatch.partner == partner)
        decisions = [_decision_dict(row) for row in session.scalars(reviews)]
        approvals = select(Approval).order_by(Approval.approval_id)
        attempts = select(RefusedAttempt).order_by(RefusedAttempt.attempt_id)
        if batch_id is not None:
            approvals = approvals.where(Approval.batch_id == batch_id)
            attempts = attempts.where(RefusedAttempt.batch_id == batch_id)
        if partner is not None:
            approvals = approvals.join(ExchangeBatch).where(ExchangeBatch.partner == partner)
            attempts = attempts.where(
                RefusedAttempt.batch_id.in_(
                    select(ExchangeBatch.batch_id).where(ExchangeBatch.partner == partner)
                )
            )
        batch_decisions = [_approval_dict(row) for row in session.scalars(approvals)]
        refused = [_attempt_dict(row) for row in session.scalars(attempts)]
    document: dict[str, Any] = {
        "format": EVIDENCE_FORMAT,
        "exported_at": _time_text(utcnow()),
        "scope": {"partner": partner, "batch_id": batch_id},
        "hash_rule": HASH_RULE,
        "genesis_hash": GENESIS_HASH,
        "verification": {"intact": check.intact, "problems": check.problems},
        "entries": entries,
        "chain": [[e["sequence"], e["previous_hash"], e["entry_hash"]] for e in all_entries],
        "chain_head": check.head_hash,
        "deliveries": ledger,
        "acknowledgements": acks,
        "review_decisions": decisions,
        "decisions": batch_decisions,
        "refused_attempts": refused,
    }
    document["evidence_sha256"] = _document_hash(document)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.part")
    temporary.write_text(json.dumps(document, ensure_ascii=False, indent=2), encoding="utf-8")
    temporary.replace(path)
    return path


def check_evidence(path: Path) -> list[str]:
    """Re-check an evidence file on its own (no database): the document hash, each exported
    entry's hash, the links of the whole chain and its head, and each review decision against
    its digest and its entry. Returns problems (sentences)."""
    document = json.loads(path.read_text(encoding="utf-8"))
    problems = []
    if document.get("evidence_sha256") != _document_hash(document):
        problems.append(f"The evidence file {path.name} was changed after its export.")
    chain = document.get("chain", [])
    previous, expected = GENESIS_HASH, 1
    for sequence, previous_hash, entry_hash in chain:
        if sequence != expected or previous_hash != previous:
            problems.append(f"The chain in {path.name} breaks at entry {sequence}.")
        previous, expected = entry_hash, sequence + 1
    if chain and document.get("chain_head") != chain[-1][2]:
        problems.append(f"The chain head of {path.name} is not its last entry's hash.")
    hashes = {sequence: entry_hash for sequence, _p, entry_hash in chain}
    for entry in document.get("entries", []):
        canonical = canonical_entry(
            entry["sequence"],
            entry["logged_at"],
            entry["partner"],
            entry["batch_id"],
            entry["file_name"],
            entry["sha256"],
            entry["signature_sha256"],
            entry["approver"],
        )
        own = chain_hash(entry["previous_hash"], canonical)
        if own != entry["entry_hash"] or hashes.get(entry["sequence"]) != own:
            problems.append(
                f"Entry {entry['sequence']} of {path.name} does not match its hash or the chain."
            )
    logged = {entry["sha256"] for entry in document.get("entries", [])}
    for row in document.get("review_decisions", []):
        fields = [row[name] for name in _DIGEST_FIELDS]
        if review_digest(*fields) != row["digest"] or row["digest"] not in logged:
            problems.append(
                f"Review decision {row['decision_id']} of {path.name} does not match its "
                "digest or its message-log entry."
            )
    for row in document.get("decisions", []):
        if row["digest"] and (approval_digest(row) != row["digest"] or row["digest"] not in logged):
            problems.append(
                f"Decision {row['approval_id']} of {path.name} does not match its digest or "
                "its message-log entry."
            )
    for row in document.get("refused_attempts", []):
        if attempt_digest(row) != row["digest"] or row["digest"] not in logged:
            problems.append(
                f"Refused attempt {row['attempt_id']} of {path.name} does not match its digest "
                "or its message-log entry."
            )
    return problems

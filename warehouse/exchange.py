"""What was sent to the partner funds and what they answered, in the control database.

* The **ledger** (table ``deliveries``): one row per file of a batch, ``pending`` until the
  partner holds it, then ``delivered``; it counts upload attempts. :class:`ExchangeLedger` is
  what ``connectors.partner_transport.deliver_batch`` writes to.
* The **message log** (table ``message_log``): append-only and hash-chained. Entry n stores
  ``entry_hash = sha256(previous_hash + canonical)`` where ``previous_hash`` is entry n-1's
  ``entry_hash`` (64 zeros for the first) and ``canonical`` is the JSON array (UTF-8, no
  spaces) ``[sequence, logged_at, partner, batch_id, file_name, sha256, signature_sha256,
  approver]`` with ``logged_at`` in UTC as ``YYYY-MM-DDTHH:MM:SS.ffffff+00:00``. Sequences run
  1, 2, 3... without gaps: a modified entry breaks its hash, a deleted one leaves a gap and a
  broken link, a deleted last entry leaves a delivered file without entry.
  :func:`verify_message_log` checks all that; :func:`export_evidence` writes it for an auditor.
* **Officers' review decisions** (table ``review_decisions``): each decision on a REVIEW child
  before approval is a row and a message-log entry in the same transaction. The entry's
  ``file_name`` is ``review-decision:<fund reference>:<from status>-><to status>``, its
  ``sha256`` the row's ``digest`` (sha256 of the JSON array, UTF-8, no spaces, ``[batch_id,
  item, fund_reference, from_status, to_status, student_code, decided_by, decided_at,
  channel, comment, manifest_before, manifest_after]``, ``decided_at`` as ``logged_at``), its
  ``signature_sha256`` the manifest the batch has after the decision, its ``approver`` who
  decided. :func:`verify_message_log` checks every row against its digest and its entry.
* **Decisions on a batch** (table ``approvals``) and **refused attempts** (table
  ``refused_attempts``): each decision (approved, rejected, expired) is a row and a message-log
  entry in the same transaction, ``file_name`` ``decision:<decision>``, ``sha256`` the row's
  ``digest`` (sha256 of the JSON array ``[batch_id, decision, approver, decided_at, comment,
  covered_sha256, channel, identity_method, os_account, code_step]``), ``signature_sha256`` the
  manifest covered, ``approver`` who decided. Each attempt refused because of who asked (not
  listed, wrong, missing or replayed code, the preparer) is a row and an entry ``refused:<act>:
  <reason>`` whose ``sha256`` is the digest of ``[batch_id, act, channel, claimed, os_account,
  reason, sentence, attempted_at]``. The last TOTP step accepted per approver is in
  ``approver_codes`` (:func:`consume_code_step`). :class:`VerifiedDecisionLedger` is the ledger
  delivery uses: it re-checks the decision (listed approver, verified identity, not the
  preparer, its digest and entry) before any byte leaves.
* **Acknowledgements** the funds send back, bound to the sha256 of what they received, and the
  batches still waiting for one (:func:`overdue_batches`).

SQL stays portable (SQLite and PostgreSQL).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ground.approvers import ApproverList, is_preparer
from warehouse.control import (
    Acknowledgement,
    Approval,
    ApproverCode,
    ControlDatabase,
    Delivery,
    ExchangeBatch,
    MessageLogEntry,
    RefusedAttempt,
    ReviewDecision,
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
# How a decision's person was verified (tasks/approval_rules.py); an approval recorded
# otherwise is never delivered.
VERIFIED_METHODS = ("os-account+totp", "name+totp")


class ExchangeRecordError(Exception):
    """A record the control database cannot take; the message is one sentence."""


# ---- the hash chain -------------------------------------------------------------------------


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


# ---- officers' review decisions ------------------------------------------------------------


def review_digest(
    batch_id: str,
    item: int,
    fund_reference: str,
    from_status: str,
    to_status: str,
    student_code: str,
    decided_by: str,
    decided_at: datetime | str,
    channel: str,
    comment: str,
    manifest_before: str,
    manifest_after: str,
) -> str:
    """The sha256 a review decision's message-log entry holds (see the module doc)."""
    moment = decided_at if isinstance(decided_at, str) else _time_text(decided_at)
    fields = [
        batch_id,
        item,
        fund_reference,
        from_status,
        to_status,
        student_code,
        decided_by,
        moment,
        channel,
        comment,
        manifest_before,
        manifest_after,
    ]
    text = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


_DIGEST_FIELDS = (
    "batch_id",
    "item",
    "fund_reference",
    "from_status",
    "to_status",
    "student_code",
    "decided_by",
    "decided_at",
    "channel",
    "comment",
    "manifest_before",
    "manifest_after",
)


def _row_digest(row: ReviewDecision) -> str:
    return review_digest(
        row.batch_id,
        row.item,
        row.fund_reference,
        row.from_status,
        row.to_status,
        row.student_code,
        row.decided_by,
        row.decided_at,
        row.channel,
        row.comment,
        row.manifest_before,
        row.manifest_after,
    )


def add_review_decision(
    session: Session,
    *,
    partner: str,
    batch_id: str,
    item: int,
    fund_reference: str,
    from_status: str,
    to_status: str,
    student_code: str,
    decided_by: str,
    channel: str,
    comment: str,
    manifest_before: str,
    manifest_after: str,
) -> ReviewDecision:
    """Add one review decision and its message-log entry to the caller's transaction (which
    also moves the batch to ``manifest_after``). A concurrent writer of the log makes the
    flush fail with IntegrityError: the caller retries the whole transaction."""
    row = ReviewDecision(
        batch_id=batch_id,
        item=item,
        fund_reference=fund_reference,
        from_status=from_status,
        to_status=to_status,
        student_code=student_code,
        decided_by=decided_by,
        decided_at=utcnow(),
        channel=channel,
        comment=comment,
        manifest_before=manifest_before,
        manifest_after=manifest_after,
        digest="",
    )
    row.digest = _row_digest(row)
    session.add(row)
    session.flush()
    _append_entry(
        session,
        partner=partner,
        batch_id=batch_id,
        file_name=f"{REVIEW_ENTRY}{fund_reference}:{from_status}->{to_status}",
        sha256=row.digest,
        signature_sha256=manifest_after,
        approver=decided_by,
    )
    return row


def review_decisions(database: ControlDatabase, batch_id: str) -> list[dict[str, Any]]:
    """The review decisions of a batch, oldest first (one dict per decision)."""
    with database.session() as session:
        rows = session.scalars(
            select(ReviewDecision)
            .where(ReviewDecision.batch_id == batch_id)
            .order_by(ReviewDecision.decision_id)
        ).all()
        return [_decision_dict(row) for row in rows]


def _decision_dict(row: ReviewDecision) -> dict[str, Any]:
    return {
        "decision_id": row.decision_id,
        "batch_id": row.batch_id,
        "item": row.item,
        "fund_reference": row.fund_reference,
        "from_status": row.from_status,
        "to_status": row.to_status,
        "student_code": row.student_code,
        "decided_by": row.decided_by,
        "decided_at": _time_text(row.decided_at),
        "channel": row.channel,
        "comment": row.comment,
        "manifest_before": row.manifest_before,
        "manifest_after": row.manifest_after,
        "digest": row.digest,
    }


def _review_problems(database: ControlDatabase, entries: list[dict[str, Any]]) -> list[str]:
    """Review decisions changed after they were recorded, or without their log entry."""
    logged = {
        (e["batch_id"], e["sha256"]) for e in entries if e["file_name"].startswith(REVIEW_ENTRY)
    }
    problems = []
    with database.session() as session:
        for row in session.scalars(select(ReviewDecision).order_by(ReviewDecision.decision_id)):
            if _row_digest(row) != row.digest:
                problems.append(
                    f"Review decision {row.decision_id} of batch {row.batch_id} does not match "
                    "its digest: it was changed after it was recorded."
                )
            elif (row.batch_id, row.digest) not in logged:
                problems.append(
                    f"Review decision {row.decision_id} of batch {row.batch_id} has no "
                    "message-log entry: its entry was deleted or changed."
                )
    return problems


# ---- decisions and refused attempts -----------------------------------------------------------


def _digest(fields: list[Any]) -> str:
    text = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def approval_digest(approval: Approval | Mapping[str, Any]) -> str:
    """The sha256 a decision's message-log entry holds (see the module doc)."""

    def get(key: str) -> Any:
        return approval[key] if isinstance(approval, Mapping) else getattr(approval, key)

    moment = get("decided_at")
    return _digest(
        [
            get("batch_id"),
            get("decision"),
            get("approver"),
            moment if isinstance(moment, str) else _time_text(moment),
            get("comment"),
            get("covered_sha256"),
            get("channel"),
            get("identity_method"),
            get("os_account"),
            get("code_step"),
        ]
    )


def add_decision(session: Session, partner: str, approval: Approval) -> Approval:
    """Add a decision and its message-log entry to the caller's transaction (which also moves
    the batch to its decided state). A concurrent writer of the log makes the flush fail with
    IntegrityError: the caller retries the whole transaction."""
    approval.decided_at = approval.decided_at or utcnow()
    # The digest covers the values as stored: column defaults are not applied before insert.
    approval.comment = approval.comment or ""
    approval.channel = approval.channel or "cli"
    approval.identity_method = approval.identity_method or ""
    approval.os_account = approval.os_account or ""
    approval.digest = approval_digest(approval)
    session.add(approval)
    session.flush()
    _append_entry(
        session,
        partner=partner,
        batch_id=approval.batch_id,
        file_name=f"{DECISION_ENTRY}{approval.decision}",
        sha256=approval.digest,
        signature_sha256=approval.covered_sha256,
        approver=approval.approver,
    )
    return approval


def attempt_digest(row: RefusedAttempt | Mapping[str, Any]) -> str:
    def get(key: str) -> Any:
        return row[key] if isinstance(row, Mapping) else getattr(row, key)

    moment = get("attempted_at")
    return _digest(
        [
            get("batch_id"),
            get("act"),
            get("channel"),
            get("claimed"),
            get("os_account"),
            get("reason"),
            get("sentence"),
            moment if isinstance(moment, str) else _time_text(moment),
        ]
    )


def record_refused_attempt(
    database: ControlDatabase,
    *,
    batch_id: str,
    partner: str,
    act: str,
    channel: str,
    claimed: str,
    os_account: str,
    reason: str,
    sentence: str,
    manifest: str = "",
) -> RefusedAttempt:
    """Record an attempt to decide refused because of who asked: a row and a message-log
    entry (``refused:<act>:<reason>``, the claimed name or ``os:<account>`` as approver)."""
    for attempt in range(_CONCURRENT_RETRIES):
        try:
            with database.session() as session:
                row = RefusedAttempt(
                    batch_id=batch_id,
                    act=act,
                    channel=channel,
                    claimed=claimed[:100],
                    os_account=os_account[:64],
                    reason=reason,
                    sentence=sentence,
                    attempted_at=utcnow(),
                    digest="",
                )
                row.digest = attempt_digest(row)
                session.add(row)
                session.flush()
                _append_entry(
                    session,
                    partner=partner,
                    batch_id=batch_id,
                    file_name=f"{REFUSED_ENTRY}{act}:{reason}",
                    sha256=row.digest,
                    signature_sha256=manifest,
                    approver=(claimed or (f"os:{os_account}" if os_account else ""))[:100],
                )
                session.expunge(row)
                return row
        except IntegrityError:  # another writer took the message log's next place
            if attempt == _CONCURRENT_RETRIES - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def refused_attempts(
    database: ControlDatabase, batch_id: str | None = None
) -> list[dict[str, Any]]:
    """Refused attempts, oldest first (of one batch when given)."""
    query = select(RefusedAttempt).order_by(RefusedAttempt.attempt_id)
    if batch_id is not None:
        query = query.where(RefusedAttempt.batch_id == batch_id)
    with database.session() as session:
        return [_attempt_dict(row) for row in session.scalars(query)]


def _attempt_dict(row: RefusedAttempt) -> dict[str, Any]:
    return {
        "attempt_id": row.attempt_id,
        "batch_id": row.batch_id,
        "act": row.act,
        "channel": row.channel,
        "claimed": row.claimed,
        "os_account": row.os_account,
        "reason": row.reason,
        "sentence": row.sentence,
        "attempted_at": _time_text(row.attempted_at),
        "digest": row.digest,
    }


def _approval_dict(row: Approval) -> dict[str, Any]:
    return {
        "approval_id": row.approval_id,
        "batch_id": row.batch_id,
        "decision": row.decision,
        "approver": row.approver,
        "decided_at": _time_text(row.decided_at),
        "comment": row.comment,
        "covered_sha256": row.covered_sha256,
        "channel": row.channel,
        "identity_method": row.identity_method,
        "os_account": row.os_account,
        "code_step": row.code_step,
        "digest": row.digest,
    }


def wrong_codes_since(database: ControlDatabase, claimed: str, since: datetime) -> int:
    """How many attempts under this name were refused for a wrong code since ``since``."""
    with database.session() as session:
        return int(
            session.scalar(
                select(func.count(RefusedAttempt.attempt_id)).where(
                    RefusedAttempt.claimed == claimed,
                    RefusedAttempt.reason == "wrong-code",
                    RefusedAttempt.attempted_at >= _utc(since),
                )
            )
            or 0
        )


def last_code_step(database: ControlDatabase, approver: str) -> int | None:
    with database.session() as session:
        row = session.get(ApproverCode, approver)
        return None if row is None else int(row.last_step)


def consume_code_step(database: ControlDatabase, approver: str, step: int) -> bool:
    """Take ``step`` as the approver's last accepted code, only if it is later than the last
    one taken: False when the code was used already (by a concurrent request too)."""
    for _ in range(_CONCURRENT_RETRIES):
        try:
            with database.session() as session:
                row = session.get(ApproverCode, approver)
                if row is None:
                    session.add(ApproverCode(approver=approver, last_step=step, used_at=utcnow()))
                    session.flush()
                    return True
                taken = session.execute(
                    update(ApproverCode)
                    .where(ApproverCode.approver == approver, ApproverCode.last_step < step)
                    .values(last_step=step, used_at=utcnow())
                    .execution_options(synchronize_session=False)
                )
                return bool(getattr(taken, "rowcount", 0) == 1)
        except IntegrityError:  # a concurrent first use of this approver's code
            continue
    return False


def _decision_problems(database: ControlDatabase, entries: list[dict[str, Any]]) -> list[str]:
    """Decisions and refused attempts changed after they were recorded, or without entry.
    Decisions recorded before decisions were logged (no digest) are not checked."""
    logged = {
        (e["batch_id"], e["sha256"])
        for e in entries
        if e["file_name"].startswith((DECISION_ENTRY, REFUSED_ENTRY))
    }
    problems = []
    with database.session() as session:
        for row in session.scalars(select(Approval).order_by(Approval.approval_id)):
            if not row.digest:
                continue
            if approval_digest(row) != row.digest:
                problems.append(
                    f"Decision {row.approval_id} on batch {row.batch_id} does not match its "
                    "digest: it was changed after it was recorded."
                )
            elif (row.batch_id, row.digest) not in logged:
                problems.append(
                    f"Decision {row.approval_id} on batch {row.batch_id} has no message-log "
                    "entry: its entry was deleted or changed."
                )
        for attempt in session.scalars(select(RefusedAttempt)):
            logged_attempt = (attempt.batch_id, attempt.digest) in logged
            if attempt_digest(attempt) != attempt.digest or not logged_attempt:
                problems.append(
                    f"Refused attempt {attempt.attempt_id} on batch {attempt.batch_id} does "
                    "not match its digest or has no message-log entry."
                )
    return problems


# ---- the ledger -----------------------------------------------------------------------------


def _latest_approval(session: Session, batch_id: str) -> Approval | None:
    return session.scalars(
        select(Approval)
        .where(Approval.batch_id == batch_id)
        .order_by(Approval.decided_at.desc(), Approval.approval_id.desc())
        .limit(1)
    ).first()


def _delivery(session: Session, batch_id: str, file_name: str) -> Delivery | None:
    return session.scalars(
        select(Delivery).where(Delivery.batch_id == batch_id, Delivery.file_name == file_name)
    ).first()


class ExchangeLedger:
    """The ledger and message log of the control database, as delivery uses them
    (``connectors.partner_transport.DeliveryLedger``)."""

    def __init__(self, database: ControlDatabase) -> None:
        self.database = database

    def refusal(
        self, batch_id: str, partner: str, approver: str, file_hashes: Mapping[str, str]
    ) -> str | None:
        """Why the batch may not be delivered with these files, or None. No approval, no
        delivery: the latest decision must be ``approved``, by ``approver``, on the batch's
        manifest; when the batch lists its files, exactly those files and bytes go out."""
        with self.database.session() as session:
            batch = session.get(ExchangeBatch, batch_id)
            if batch is None:
                return (
                    f"Batch {batch_id} is not in the control database, so nothing was sent; "
                    "prepare the batch before delivering it."
                )
            if batch.partner != partner:
                return (
                    f"Batch {batch_id} was prepared for {batch.partner}, not {partner}, so "
                    "nothing was sent."
                )
            approval = _latest_approval(session, batch_id)
            if approval is None or approval.decision != "approved":
                latest = "none" if approval is None else approval.decision
                return (
                    f"Batch {batch_id} has no approval on record (latest decision: {latest}), "
                    "so nothing was sent; a person of the approvers list must approve it first."
                )
            if approval.approver != approver:
                return (
                    f"Batch {batch_id} was approved by {approval.approver}, not {approver}, so "
                    "nothing was sent; deliver it under the approver on record."
                )
            if batch.manifest_sha256 and approval.covered_sha256 != batch.manifest_sha256:
                return (
                    f"The approval of batch {batch_id} covers manifest "
                    f"{approval.covered_sha256[:12]}… but the batch's manifest is "
                    f"{batch.manifest_sha256[:12]}…, so nothing was sent; approve it again."
                )
            approved = {str(k): str(v) for k, v in (batch.files or {}).items()}
            if approved and approved != dict(file_hashes):
                differing = sorted(
                    name
                    for name in set(approved) | set(file_hashes)
                    if approved.get(name) != file_hashes.get(name)
                )
                return (
                    f"The files to deliver for batch {batch_id} are not the approved ones "
                    f"({', '.join(differing)} differ), so nothing was sent; prepare and approve "
                    "the batch again."
                )
        return None

    def delivered_files(self, batch_id: str) -> dict[str, str]:
        with self.database.session() as session:
            rows = session.execute(
                select(Delivery.file_name, Delivery.sha256).where(
                    Delivery.batch_id == batch_id, Delivery.state == "delivered"
                )
            ).all()
        return {name: sha for name, sha in rows}

    def count_attempt(
        self, batch_id: str, partner: str, file_name: str, sha256: str, size: int, remote: str
    ) -> int:
        for attempt in range(_CONCURRENT_RETRIES):
            try:
                with self.database.session() as session:
                    row = _delivery(session, batch_id, file_name)
                    if row is None:
                        row = Delivery(
                            batch_id=batch_id,
                            partner=partner,
                            file_name=file_name,
                            sha256=sha256,
                            size_bytes=size,
                            remote_path=remote,
                            state="pending",
                            attempts=0,
                        )
                        session.add(row)
                    elif row.state == "delivered" and row.sha256 != sha256:
                        raise ExchangeRecordError(
                            f"File {file_name} of batch {batch_id} was already delivered "
                            "with other content; a delivered file never changes."
                        )
                    elif row.state != "delivered":
                        row.sha256, row.size_bytes, row.remote_path = sha256, size, remote
                    row.attempts = (row.attempts or 0) + 1
                    session.flush()
                    return row.attempts
            except IntegrityError:  # another writer inserted the same row first
                if attempt == _CONCURRENT_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def record_delivered(
        self,
        batch_id: str,
        partner: str,
        file_name: str,
        sha256: str,
        size: int,
        remote: str,
        signature_sha256: str,
        approver: str,
    ) -> int:
        """Mark the file delivered and append its message-log entry in one transaction;
        returns the entry's sequence. Recording the same delivery twice adds nothing."""
        for attempt in range(_CONCURRENT_RETRIES):
            try:
                with self.database.session() as session:
                    row = _delivery(session, batch_id, file_name)
                    if row is None:
                        row = Delivery(
                            batch_id=batch_id,
                            partner=partner,
                            file_name=file_name,
                            sha256=sha256,
                            size_bytes=size,
                            remote_path=remote,
                            attempts=1,
                        )
                        session.add(row)
                    elif row.state == "delivered":
                        sequence = session.scalar(
                            select(MessageLogEntry.sequence)
                            .where(
                                MessageLogEntry.batch_id == batch_id,
                                MessageLogEntry.file_name == file_name,
                                MessageLogEntry.sha256 == row.sha256,
                            )
                            .order_by(MessageLogEntry.sequence)
                            .limit(1)
                        )
                        if sequence is not None:
                            return sequence
                    # The ledger row is written first: on SQLite it takes the write lock
                    # before the last log entry is read.
                    row.state, row.delivered_at = "delivered", utcnow()
                    row.sha256, row.size_bytes, row.remote_path = sha256, size, remote
                    session.flush()
                    entry = _append_entry(
                        session,
                        partner=partner,
                        batch_id=batch_id,
                        file_name=file_name,
                        sha256=sha256,
                        signature_sha256=signature_sha256,
                        approver=approver,
                    )
                    return entry.sequence
            except IntegrityError:  # another writer took this sequence number first
                if attempt == _CONCURRENT_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def finish_batch(self, batch_id: str) -> None:
        with self.database.session() as session:
            batch = session.get(ExchangeBatch, batch_id)
            if batch is None or batch.state in ("delivered", "acknowledged"):
                return
            states = dict(
                session.execute(
                    select(Delivery.file_name, Delivery.state).where(Delivery.batch_id == batch_id)
                ).all()
            )
            expected = set(batch.files or {}) or set(states)
            if expected and all(states.get(name) == "delivered" for name in expected):
                batch.state = "delivered"


class VerifiedDecisionLedger(ExchangeLedger):
    """The ledger the platform delivers through: besides :meth:`ExchangeLedger.refusal`, the
    decision must come from a person the platform verified (a method of
    :data:`VERIFIED_METHODS`), who is on the approvers list now, who did not prepare the
    batch, and whose decision still matches its digest and its message-log entry."""

    def __init__(self, database: ControlDatabase, approvers: ApproverList) -> None:
        super().__init__(database)
        self.approvers = approvers

    def refusal(
        self, batch_id: str, partner: str, approver: str, file_hashes: Mapping[str, str]
    ) -> str | None:
        reason = super().refusal(batch_id, partner, approver, file_hashes)
        if reason is not None:
            return reason
        with self.database.session() as session:
            batch = session.get(ExchangeBatch, batch_id)
            approval = _latest_approval(session, batch_id)
            assert batch is not None and approval is not None  # the ledger checked both
            not_sent = f"Batch {batch_id} was not sent: "
            if approval.identity_method not in VERIFIED_METHODS:
                return (
                    not_sent + f"its approval by {approval.approver} was not verified (no "
                    "approver's code); an approver must approve it again with "
                    f"'massar approve {batch_id}'."
                )
            listed = self.approvers.by_name(approval.approver)
            if listed is None:
                return (
                    not_sent + f"{approval.approver}, who approved it, is not on the approvers "
                    f"list ({self.approvers.path}) any more."
                )
            preparer = batch.prepared_by
            if is_preparer(listed, preparer) or (
                approval.os_account and preparer == f"os:{approval.os_account}"
            ):
                return (
                    not_sent + f"{approval.approver} prepared it ({preparer}) and cannot "
                    "approve it; another approver must decide."
                )
            if approval.digest != approval_digest(approval):
                return not_sent + "its approval was changed after it was recorded."
            logged = session.scalar(
                select(func.count(MessageLogEntry.sequence)).where(
                    MessageLogEntry.batch_id == batch_id,
                    MessageLogEntry.file_name == f"{DECISION_ENTRY}approved",
                    MessageLogEntry.sha256 == approval.digest,
                )
            )
            if not logged:
                return not_sent + "its approval has no entry in the message log."
        return None


def ledger_rows(database: ControlDatabase, batch_id: str) -> list[dict[str, Any]]:
    """The ledger of one batch: one dict per file (name, sha256, state, attempts...)."""
    with database.session() as session:
        rows = session.scalars(
            select(Delivery).where(Delivery.batch_id == batch_id).order_by(Delivery.delivery_id)
        ).all()
        return [
            {
                "file_name": row.file_name,
                "partner": row.partner,
                "sha256": row.sha256,
                "size_bytes": row.size_bytes,
                "remote_path": row.remote_path,
                "state": row.state,
                "attempts": row.attempts,
                "delivered_at": _utc(row.delivered_at) if row.delivered_at else None,
            }
            for row in rows
        ]


# ---- reading and checking the message log ---------------------------------------------------


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


# ---- acknowledgements -----------------------------------------------------------------------


@dataclass(frozen=True)
class AcknowledgementRecord:
    """``bound``: the acknowledged sha256 is that of a delivered file or of the manifest of
    the batch; ``duplicate``: this acknowledgement file was recorded before (nothing added)."""

    acknowledgement_id: int
    bound: bool
    duplicate: bool


def record_acknowledgement(
    database: ControlDatabase,
    *,
    batch_id: str,
    partner: str,
    file_name: str,
    data_sha256: str,
    acknowledged_sha256: str,
    accepted: int,
    rejected: int,
    detail: Mapping[str, Any] | None = None,
    received_at: datetime | None = None,
) -> AcknowledgementRecord:
    """Record a partner's acknowledgement of a batch (already parsed by the profile).

    ``data_sha256`` is the sha256 of the acknowledgement file itself, ``acknowledged_sha256``
    the sha256 the fund says it received. The same file recorded again adds nothing. An
    acknowledgement bound to what was delivered moves the batch to ``acknowledged``; one that
    is not is kept (``detail.bound_to_delivery`` false) but does not count as an answer.
    ``received_at`` without a time zone is taken as UTC."""
    with database.session() as session:
        batch = session.get(ExchangeBatch, batch_id)
        if batch is None:
            raise ExchangeRecordError(
                f"The acknowledgement {file_name} from {partner} names batch {batch_id}, which "
                "this platform never prepared; ask the partner which batch it answers."
            )
        if batch.partner != partner:
            raise ExchangeRecordError(
                f"The acknowledgement {file_name} came from {partner} but batch {batch_id} was "
                f"prepared for {batch.partner}; it was not recorded."
            )
        existing = session.scalars(
            select(Acknowledgement).where(
                Acknowledgement.batch_id == batch_id, Acknowledgement.file_sha256 == data_sha256
            )
        ).first()
        if existing is not None:
            bound = bool((existing.detail or {}).get("bound_to_delivery"))
            return AcknowledgementRecord(existing.acknowledgement_id, bound, duplicate=True)
        delivered = set(
            session.scalars(
                select(Delivery.sha256).where(
                    Delivery.batch_id == batch_id, Delivery.state == "delivered"
                )
            )
        )
        if batch.manifest_sha256:
            delivered.add(batch.manifest_sha256)
        bound = acknowledged_sha256 in delivered
        row = Acknowledgement(
            batch_id=batch_id,
            partner=partner,
            file_name=file_name,
            file_sha256=data_sha256,
            acknowledged_sha256=acknowledged_sha256,
            received_at=_utc(received_at) if received_at else utcnow(),
            accepted=accepted,
            rejected=rejected,
            detail={**dict(detail or {}), "bound_to_delivery": bound},
        )
        session.add(row)
        if bound:
            batch.state = "acknowledged"
        session.flush()
        return AcknowledgementRecord(row.acknowledgement_id, bound, duplicate=False)


def acknowledged_files(database: ControlDatabase, partner: str) -> set[str]:
    """Names of the acknowledgement files already recorded for a partner (the ``known`` of
    ``fetch_acknowledgements``)."""
    with database.session() as session:
        return set(
            session.scalars(
                select(Acknowledgement.file_name).where(Acknowledgement.partner == partner)
            )
        )


@dataclass(frozen=True)
class OverdueBatch:
    batch_id: str
    partner: str
    delivered_at: datetime  # when its last file was delivered (UTC)
    waiting_hours: float


def overdue_batches(
    database: ControlDatabase,
    now: datetime,
    delay_hours: float | Mapping[str, float],
    partner: str | None = None,
) -> list[OverdueBatch]:
    """Delivered batches with no acknowledgement bound to them ``delay_hours`` after their
    last file was delivered (``PartnerSettings.acknowledgement_delay_hours``; a mapping gives
    one delay per partner, partners missing from it are skipped). Oldest first."""
    now = _utc(now)
    with database.session() as session:
        query = (
            select(
                Delivery.batch_id,
                Delivery.partner,
                func.max(Delivery.delivered_at),
                func.count(Delivery.delivery_id),
                func.count(Delivery.delivered_at),
            )
            .group_by(Delivery.batch_id, Delivery.partner)
            .order_by(Delivery.batch_id)
        )
        if partner is not None:
            query = query.where(Delivery.partner == partner)
        rows = session.execute(query).all()
        answered = {
            batch_id
            for batch_id, detail in session.execute(
                select(Acknowledgement.batch_id, Acknowledgement.detail)
            )
            if (detail or {}).get("bound_to_delivery")
        }
    overdue = []
    for batch_id, batch_partner, last, files, delivered in rows:
        if last is None or delivered < files or batch_id in answered:
            continue
        if isinstance(delay_hours, Mapping):
            if batch_partner not in delay_hours:
                continue
            delay = float(delay_hours[batch_partner])
        else:
            delay = float(delay_hours)
        last = _utc(last)
        if now - last >= timedelta(hours=delay):
            waiting = (now - last).total_seconds() / 3600
            overdue.append(OverdueBatch(batch_id, batch_partner, last, round(waiting, 2)))
    return sorted(overdue, key=lambda batch: batch.delivered_at)

"""Decisions on a batch (table ``approvals``), refused attempts (table ``refused_attempts``)
and the approvers' last accepted codes (table ``approver_codes``), in the control database.

Each decision (approved, rejected, expired) is a row and a message-log entry in the same
transaction, ``file_name`` ``decision:<decision>``, ``sha256`` the row's ``digest`` (sha256 of
the JSON array ``[batch_id, decision, approver, decided_at, comment, covered_sha256, channel,
identity_method, os_account, code_step]``), ``signature_sha256`` the manifest covered,
``approver`` who decided. Each attempt refused because of who asked (not listed, wrong, missing
or replayed code, the preparer) is a row and an entry ``refused:<act>:<reason>`` whose
``sha256`` is the digest of ``[batch_id, act, channel, claimed, os_account, reason, sentence,
attempted_at]``. The last TOTP step accepted per approver is in ``approver_codes``
(:func:`consume_code_step`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from warehouse.control import (
    Approval,
    ApproverCode,
    ControlDatabase,
    RefusedAttempt,
    utcnow,
)
from warehouse.message_log import (
    _CONCURRENT_RETRIES,
    DECISION_ENTRY,
    REFUSED_ENTRY,
    _append_entry,
    _time_text,
    _utc,
)

# How a decision's person was verified (tasks/approval_rules.py); an approval recorded
# otherwise is never delivered.
VERIFIED_METHODS = ("os-account+totp", "name+totp")


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

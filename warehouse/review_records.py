"""Officers' review decisions (table ``review_decisions``), in the control database.

Each decision on a REVIEW child before approval is a row and a message-log entry in the same
transaction. The entry's ``file_name`` is ``review-decision:<fund reference>:<from status>-><to
status>``, its ``sha256`` the row's ``digest`` (sha256 of the JSON array, UTF-8, no spaces,
``[batch_id, item, fund_reference, from_status, to_status, student_code, decided_by,
decided_at, channel, comment, manifest_before, manifest_after]``, ``decided_at`` as
``logged_at``), its ``signature_sha256`` the manifest the batch has after the decision, its
``approver`` who decided. :func:`warehouse.message_log_evidence.verify_message_log` checks every
row against its digest and its entry.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from warehouse.control import (
    ControlDatabase,
    ReviewDecision,
    utcnow,
)
from warehouse.message_log import REVIEW_ENTRY, _append_entry, _time_text


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

"""The ledger (table ``deliveries``) of what was sent to the partner funds: one row per file
of a batch, ``pending`` until the partner holds it, then ``delivered``; it counts upload
attempts. :class:`ExchangeLedger` is what ``connectors.partner_transport.deliver_batch`` writes
to; :class:`VerifiedDecisionLedger` is the ledger delivery uses: it re-checks the decision
(listed approver, verified identity, not the preparer, its digest and entry) before any byte
leaves.

SQL stays portable (SQLite and PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ground.approvers import ApproverList, is_preparer
from warehouse.approval_records import VERIFIED_METHODS, approval_digest
from warehouse.control import (
    Approval,
    ControlDatabase,
    Delivery,
    ExchangeBatch,
    MessageLogEntry,
    utcnow,
)
from warehouse.message_log import _CONCURRENT_RETRIES, DECISION_ENTRY, _append_entry, _utc


class ExchangeRecordError(Exception):
    """A record the control database cannot take; the message is one sentence."""


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

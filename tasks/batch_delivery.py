"""Delivering an approved batch through the verified ledger, and the batches still to decide
or to deliver."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import select

from connectors.partner_transport import (
    DeliveryError,
    RetryPolicy,
    deliver_batch,
    partner_transport_for,
)
from ground.approvers import load_approvers
from ground.errors import OperatorError
from ground.settings import Settings
from tasks.batch_preparation import batch_summary
from tasks.disk_space import delivery_told_when_full
from tasks.exchange_batches import WAITING, _database, batch_folder
from warehouse.control import ExchangeBatch
from warehouse.exchange_ledger import ExchangeRecordError, VerifiedDecisionLedger


def deliver_approved(settings: Settings, batch_id: str) -> dict[str, Any]:
    """Deliver an approved batch's files (manifest last) as they were approved; re-running sends
    nothing twice. Before any byte leaves, the ledger re-checks the decision
    (:class:`warehouse.exchange.VerifiedDecisionLedger`): approved, by a verified person on the
    approvers list who did not prepare the batch, on the batch's manifest, with its digest and
    message-log entry intact; anything else is refused in a sentence."""
    summary = batch_summary(settings, batch_id)
    partner = summary["partner"]
    folder = batch_folder(settings, partner, batch_id)
    names = sorted(summary["files"], key=lambda n: (n.endswith("_manifest.json"), n))
    files = {}
    for name in names:
        path = folder / name
        if not path.is_file():
            raise OperatorError(
                f"File {name} of batch {batch_id} is missing from {folder}; it cannot be "
                "delivered as approved. Restore the folder from the backup."
            )
        files[name] = path.read_bytes()
    decision = summary["decision"] or {}
    database = _database(settings)
    endpoint = settings.partners[partner]
    try:
        report = deliver_batch(
            partner_transport_for(settings, partner),
            VerifiedDecisionLedger(database, load_approvers(settings.home)),
            batch_id=batch_id,
            files=files,
            approver=decision.get("approver", ""),
            retry=RetryPolicy(
                attempts=endpoint.delivery_attempts, base_delay=endpoint.delivery_backoff_seconds
            ),
        )
    except (DeliveryError, ExchangeRecordError) as error:
        raise OperatorError(str(error)) from error
    finally:
        database.dispose()
    return {
        "batch_id": batch_id,
        "sent": report.sent,
        "already_delivered": report.already_delivered,
        "found_at_partner": report.found_at_partner,
        "connection_failures": report.connection_failures,
        "message": report.message,
    }


def undecided_batches(settings: Settings, partner: str) -> list[str]:
    """Batches of a partner waiting for a person's decision, oldest first."""
    database = _database(settings)
    try:
        with database.session() as session:
            return list(
                session.scalars(
                    select(ExchangeBatch.batch_id)
                    .where(ExchangeBatch.partner == partner, ExchangeBatch.state == WAITING)
                    .order_by(ExchangeBatch.sequence)
                )
            )
    finally:
        database.dispose()


def undelivered_approved_batches(settings: Settings, partner: str) -> list[str]:
    """Approved batches whose delivery did not finish (a cut connection, a stopped run)."""
    database = _database(settings)
    try:
        with database.session() as session:
            return list(
                session.scalars(
                    select(ExchangeBatch.batch_id)
                    .where(ExchangeBatch.partner == partner, ExchangeBatch.state == "approved")
                    .order_by(ExchangeBatch.sequence)
                )
            )
    finally:
        database.dispose()


deliver_task = task(name="deliver_batch", cache_policy=NO_CACHE, retries=0)(
    delivery_told_when_full(deliver_approved)
)

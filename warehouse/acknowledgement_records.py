"""The acknowledgements the partner funds send back (table ``acknowledgements``), bound to
the sha256 of what they received, and the batches still waiting for one
(:func:`overdue_batches`).

SQL stays portable (SQLite and PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from warehouse.control import (
    Acknowledgement,
    ControlDatabase,
    Delivery,
    ExchangeBatch,
    utcnow,
)
from warehouse.exchange_ledger import ExchangeRecordError
from warehouse.message_log import _utc


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

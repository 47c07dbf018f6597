"""Reconciling the funds' acknowledgements with what was delivered, and a batch's
reconciliation (file by file)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import select

from connectors.exchange.acknowledgement import parse_acknowledgement
from connectors.exchange.file_error import ExchangeFileError
from connectors.exchange.file_names import acknowledgement_name_pattern
from connectors.partner_transport import (
    DeliveryError,
    RefusedFile,
    fetch_acknowledgements,
    partner_transport_for,
)
from ground.errors import OperatorError
from ground.settings import Settings
from tasks.batch_preparation import batch_summary
from tasks.exchange_batches import _database, _profile, batch_folder
from tasks.fund_files_set_aside import (
    max_bytes,
    set_aside,
    set_aside_names,
)
from warehouse.acknowledgement_records import (
    acknowledged_files,
    overdue_batches,
    record_acknowledgement,
)
from warehouse.control import ExchangeBatch
from warehouse.exchange_ledger import ExchangeRecordError


def reconcile_acknowledgements(
    settings: Settings, partner: str, now: datetime | None = None
) -> dict[str, Any]:
    """Fetch the fund's new acknowledgements, bind each to the sha256 of the file it
    acknowledges, record the outcome per child, and list the delivered batches whose
    acknowledgement is late. An acknowledgement that cannot be bound is reported in a sentence
    and kept as received; it does not count as an answer. One that is not a plain file name,
    is larger than ``acknowledgement_max_megabytes`` or cannot be read is set aside with a
    sentence (tasks/fund_files_set_aside.py), reported, and not fetched again."""
    now = now or datetime.now(UTC)
    profile = _profile(partner)
    database = _database(settings)
    problems: list[str] = []
    recorded: list[dict[str, Any]] = []
    try:
        transport = partner_transport_for(settings, partner)
        refused: list[RefusedFile] = []
        known = set(acknowledged_files(database, partner)) | set_aside_names(settings, partner)
        try:
            received = fetch_acknowledgements(
                transport,
                pattern=acknowledgement_name_pattern(profile),
                known=known,
                max_bytes=max_bytes(settings.partners[partner].acknowledgement_max_megabytes),
                refused=refused.append,
            )
        except DeliveryError as error:
            raise OperatorError(str(error)) from error
        for refusal in refused:
            aside = set_aside(
                settings,
                partner,
                "acknowledgement",
                refusal.name,
                refusal.reason,
                size=refusal.size,
            )
            problems.append(aside.sentence)
        for item in received:
            try:
                ack = parse_acknowledgement(profile, item.data, name=item.name)
            except ExchangeFileError as error:
                problems.append(str(error))
                set_aside(
                    settings,
                    partner,
                    "acknowledgement",
                    item.name,
                    str(error),
                    data=item.data,
                    received=transport.received_folder / item.name,
                )
                continue
            with database.session() as session:
                batch = session.get(ExchangeBatch, ack.batch_id)
                expected = (batch.files or {}).get(ack.response_file) if batch else None
            if expected is not None and expected != ack.response_sha256:
                problems.append(
                    f"The acknowledgement {item.name} names {ack.response_file} with sha256 "
                    f"{ack.response_sha256[:12]}…, which is not the file delivered in batch "
                    f"{ack.batch_id}; it does not count as an answer. Ask {profile.code} which "
                    "file it received."
                )
            rejected = [
                {"fund_reference": c.fund_reference, "reason": c.reason}
                for c in ack.children
                if not c.accepted
            ]
            try:
                record = record_acknowledgement(
                    database,
                    batch_id=ack.batch_id,
                    partner=partner,
                    file_name=item.name,
                    data_sha256=item.sha256,
                    acknowledged_sha256=ack.response_sha256,
                    accepted=ack.accepted,
                    rejected=ack.rejected,
                    detail={
                        "response_file": ack.response_file,
                        "file_accepted": ack.file_accepted,
                        "file_reason": ack.file_reason,
                        "rejected_children": rejected,
                    },
                    received_at=ack.received_at.astimezone(UTC).replace(tzinfo=None),
                )
            except ExchangeRecordError as error:
                problems.append(str(error))
                continue
            recorded.append(
                {
                    "file": item.name,
                    "batch_id": ack.batch_id,
                    "bound": record.bound,
                    "accepted": ack.accepted,
                    "rejected": ack.rejected,
                }
            )
        late = overdue_batches(
            database, now, settings.partners[partner].acknowledgement_delay_hours, partner
        )
    finally:
        database.dispose()
    return {
        "partner": partner,
        "acknowledgements": recorded,
        "problems": problems,
        "overdue": [
            {"batch_id": b.batch_id, "waiting_hours": round(b.waiting_hours, 1)} for b in late
        ],
    }


def reconciliation(settings: Settings, batch_id: str) -> list[dict[str, str]]:
    """Per child of a batch: what we answered and what the fund did with it (accepted, or
    rejected with its reason; ``pending`` without acknowledgement). For the officers."""
    summary = batch_summary(settings, batch_id)
    folder = batch_folder(settings, summary["partner"], batch_id)
    csv_name = next(n for n in summary["files"] if n.endswith(".csv"))
    profile = _profile(summary["partner"])
    layout = profile.response_csv
    text = (folder / csv_name).read_bytes().decode(layout.encoding)
    rows = list(csv.DictReader(io.StringIO(text), delimiter=layout.delimiter))
    reference, status = layout.header["fund_reference"], layout.header["status"]
    database = _database(settings)
    try:
        from warehouse.control import Acknowledgement

        with database.session() as session:
            acks = session.scalars(
                select(Acknowledgement).where(Acknowledgement.batch_id == batch_id)
            ).all()
            bound = [a for a in acks if (a.detail or {}).get("bound_to_delivery")]
    finally:
        database.dispose()
    rejected: dict[str, str] = {}
    for ack in bound:
        for child in (ack.detail or {}).get("rejected_children", []):
            rejected[child["fund_reference"]] = child["reason"]
    outcome = "accepted" if bound else "pending"
    return [
        {
            "fund_reference": row[reference],
            "answered": row[status],
            "outcome": "rejected" if row[reference] in rejected else outcome,
            "reason": rejected.get(row[reference], ""),
        }
        for row in rows
    ]


reconcile_task = task(name="reconcile_acknowledgements", cache_policy=NO_CACHE)(
    reconcile_acknowledgements
)

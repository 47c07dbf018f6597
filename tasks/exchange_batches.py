"""What the exchange tasks share about a batch: its states, the decision as recorded, where
its files are kept in the home, the fund's profile, and the sentence an operator reads."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from connectors.exchange.profile import Profile
from connectors.exchange.registry import profile_for
from ground.errors import OperatorError
from ground.settings import Settings
from warehouse.control import Approval, ControlDatabase

WAITING = "waiting_approval"
DECIDED = ("approved", "rejected", "expired")


@dataclass(frozen=True)
class BatchDecision:
    """A decision as recorded: who, what, when, on which manifest."""

    batch_id: str
    decision: str  # approved | rejected | expired
    approver: str
    decided_at: datetime
    covered_sha256: str
    comment: str
    channel: str


def _database(settings: Settings) -> ControlDatabase:
    return ControlDatabase(settings.resolved_database_url)


def batch_folder(settings: Settings, partner: str, batch_id: str) -> Path:
    """Where a batch's files are kept in the home: ``exchange/<partner>/batches/<batch_id>/``."""
    return settings.exchange / partner / "batches" / batch_id


def _profile(partner: str) -> Profile:
    try:
        return profile_for(partner)
    except (KeyError, ValueError) as error:
        raise OperatorError(
            f"There is no exchange profile for {partner!r}; the platform knows cnss and cmr."
        ) from error


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.part")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _latest_approval(session: Any, batch_id: str) -> Approval | None:
    return session.scalars(
        select(Approval)
        .where(Approval.batch_id == batch_id)
        .order_by(Approval.approval_id.desc())
        .limit(1)
    ).first()


def operator_sentence(error: BaseException) -> str:
    """The sentence of an :class:`OperatorError`; anything else is a defect and is raised."""
    if isinstance(error, OperatorError):
        return str(error)
    raise error

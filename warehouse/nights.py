"""Nights: which table versions make up each completed consolidation."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from warehouse.control import ControlDatabase, Night, utcnow


def start_night(database: ControlDatabase, flow_run_id: str = "") -> int:
    with database.session() as session:
        night = Night(flow_run_id=flow_run_id, state="running")
        session.add(night)
        session.flush()
        return night.night_id


def finish_night(
    database: ControlDatabase, night_id: int, versions: dict[str, int], summary: dict[str, Any]
) -> None:
    """Record the night as completed with every table's version: from now on readers see it."""
    with database.session() as session:
        night = session.get(Night, night_id)
        if night is None:
            raise KeyError(night_id)
        night.state, night.finished_at = "completed", utcnow()
        night.versions, night.summary = dict(versions), summary


def last_completed_night(database: ControlDatabase) -> Night | None:
    with database.session() as session:
        return session.scalars(
            select(Night).where(Night.state == "completed").order_by(Night.night_id.desc()).limit(1)
        ).first()


def published_versions(database: ControlDatabase, night_id: int | None = None) -> dict[str, int]:
    """Table → version of the last completed night (or of ``night_id``); empty before any."""
    with database.session() as session:
        query = select(Night).where(Night.state == "completed")
        if night_id is not None:
            query = query.where(Night.night_id == night_id)
        night = session.scalars(query.order_by(Night.night_id.desc()).limit(1)).first()
        return dict(night.versions) if night else {}

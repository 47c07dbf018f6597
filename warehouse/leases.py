"""Leases on what runs share, held in the control database (so they hold on SQLite and on
PostgreSQL, in the embedded mode and on the stack).

A lease names a resource (``warehouse``, ``exchange:cnss``, ``school:27783Y``, ...), the run
holding it (host, process id, flow run id) and when it expires. A holder renews its leases
while it works (its heartbeat); a holder that died (SIGKILL, a machine restarted) stops
renewing, and once its leases expire another run may take them over.

Every change is one statement whose ``WHERE`` decides (an ``INSERT`` of a free resource, an
``UPDATE`` of an expired or own one): two runs asking at the same instant never both get it,
on SQLite (one writer at a time) as on PostgreSQL (the second ``UPDATE`` re-reads the row the
first one changed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Integer,
    String,
    and_,
    delete,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from ground.utc import as_utc, utcnow
from warehouse.control import Base, ControlDatabase


class Lease(Base):
    """Who holds a shared resource, until when."""

    __tablename__ = "leases"

    resource: Mapped[str] = mapped_column(String(120), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200), index=True)  # host:pid:run id
    host: Mapped[str] = mapped_column(String(100), default="")
    pid: Mapped[int] = mapped_column(Integer, default=0)
    run_id: Mapped[str] = mapped_column(String(60), default="")
    flow: Mapped[str] = mapped_column(String(60), default="")
    acquired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    renewed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


@dataclass(frozen=True)
class Holder:
    """A run that may hold leases: its host, process and flow run."""

    host: str
    pid: int
    run_id: str
    flow: str = ""

    @property
    def key(self) -> str:
        return f"{self.host}:{self.pid}:{self.run_id}"[:200]


@dataclass(frozen=True)
class LeaseHeld:
    """A lease as read: safe for logs (no pupil data)."""

    resource: str
    holder: str
    host: str
    pid: int
    run_id: str
    flow: str
    acquired_at: datetime
    expires_at: datetime

    def sentence(self) -> str:
        """Who holds it, in words."""
        what = f"the {self.flow} run {self.run_id}" if self.flow else f"run {self.run_id}"
        return (
            f"{what} (process {self.pid} on {self.host}, since "
            f"{as_utc(self.acquired_at):%Y-%m-%d %H:%M:%S} UTC)"
        )


def _lease_values(holder: Holder, expiry: timedelta, now: datetime) -> dict[str, object]:
    return {
        "holder": holder.key,
        "host": holder.host[:100],
        "pid": holder.pid,
        "run_id": holder.run_id[:60],
        "flow": holder.flow[:60],
        "acquired_at": now,
        "renewed_at": now,
        "expires_at": now + expiry,
    }


def _takeable(resources: list[str], holder: Holder, now: datetime) -> ColumnElement[bool]:
    """Leases of ``resources`` that ``holder`` may take: expired (their holder died) or its own."""
    return and_(
        Lease.resource.in_(resources), or_(Lease.expires_at < now, Lease.holder == holder.key)
    )


def acquire(
    database: ControlDatabase,
    resource: str,
    holder: Holder,
    expiry: timedelta,
    now: datetime | None = None,
) -> bool:
    """Take ``resource`` for ``holder`` until ``now + expiry`` if nobody holds it, its lease
    expired (its holder died), or ``holder`` already holds it; True when taken."""
    now = now or utcnow()
    values = _lease_values(holder, expiry, now)
    try:
        with database.session() as session:
            session.execute(insert(Lease).values(resource=resource, **values))
        return True
    except IntegrityError:
        pass  # somebody holds it or held it: take it over only if expired or ours
    with database.session() as session:
        taken = session.execute(
            update(Lease)
            .where(_takeable([resource], holder, now))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return bool(taken.rowcount)  # type: ignore[attr-defined]


# Resources claimed in one transaction at most (bound parameters of one IN list).
CLAIM_BATCH = 500


def acquire_many(
    database: ControlDatabase,
    resources: list[str],
    holder: Holder,
    expiry: timedelta,
    now: datetime | None = None,
) -> list[str]:
    """Each of ``resources`` that could be taken (see :func:`acquire`), in order; up to
    ``CLAIM_BATCH`` of them in one transaction (an ingest claims every school of the province:
    a transaction each was ~2 ms, ~0.5 s for 250 schools). Those nobody held are inserted
    together, those held before taken over where :func:`acquire` would. Should another run
    insert one of them meanwhile, the batch is undone and each is asked for alone."""
    now = now or utcnow()
    taken: set[str] = set()
    for start in range(0, len(resources), CLAIM_BATCH):
        batch = list(dict.fromkeys(resources[start : start + CLAIM_BATCH]))
        try:
            taken |= _acquire_together(database, batch, holder, expiry, now)
        except IntegrityError:  # inserted by another run meanwhile: one by one, as acquire
            taken |= {r for r in batch if acquire(database, r, holder, expiry, now)}
    return [r for r in resources if r in taken]


def _acquire_together(
    database: ControlDatabase,
    resources: list[str],
    holder: Holder,
    expiry: timedelta,
    now: datetime,
) -> set[str]:
    values = _lease_values(holder, expiry, now)
    with database.session() as session:
        known = set(session.scalars(select(Lease.resource).where(Lease.resource.in_(resources))))
        fresh = [r for r in resources if r not in known]
        if fresh:
            session.execute(insert(Lease), [{"resource": r, **values} for r in fresh])
        if not known:
            return set(fresh)
        session.execute(
            update(Lease)
            .where(_takeable(sorted(known), holder, now))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        ours = session.scalars(
            select(Lease.resource).where(
                Lease.resource.in_(sorted(known)), Lease.holder == holder.key
            )
        )
        return set(fresh) | set(ours)


def renew(
    database: ControlDatabase, holder: Holder, expiry: timedelta, now: datetime | None = None
) -> int:
    """Push back the expiry of every lease ``holder`` still holds (its heartbeat); returns how
    many it holds. A lease taken over meanwhile is not given back."""
    now = now or utcnow()
    with database.session() as session:
        renewed = session.execute(
            update(Lease)
            .where(Lease.holder == holder.key)
            .values(renewed_at=now, expires_at=now + expiry)
            .execution_options(synchronize_session=False)
        )
        return int(renewed.rowcount)  # type: ignore[attr-defined]


def release(database: ControlDatabase, holder: Holder, resources: list[str] | None = None) -> None:
    """Give back ``resources`` (every lease of ``holder`` when None); leases taken over by
    another run stay theirs."""
    query = delete(Lease).where(Lease.holder == holder.key)
    if resources is not None:
        if not resources:
            return
        query = query.where(Lease.resource.in_(resources))
    with database.session() as session:
        session.execute(query.execution_options(synchronize_session=False))


def current_leases(
    database: ControlDatabase, prefix: str = "", now: datetime | None = None
) -> list[LeaseHeld]:
    """Leases not expired at ``now``, of resources starting with ``prefix``."""
    now = now or utcnow()
    query = select(Lease).where(Lease.expires_at >= now)
    if prefix:
        query = query.where(Lease.resource.startswith(prefix, autoescape=True))
    with database.session() as session:
        return [
            LeaseHeld(
                lease.resource,
                lease.holder,
                lease.host,
                lease.pid,
                lease.run_id,
                lease.flow,
                as_utc(lease.acquired_at),
                as_utc(lease.expires_at),
            )
            for lease in session.scalars(query.order_by(Lease.resource))
        ]

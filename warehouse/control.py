"""The control database: the system of record of an installation.

Submissions, findings, exchange batches, approvals, officers' review decisions, deliveries,
acknowledgements, the message log and the platform's own run history. SQLite by default,
PostgreSQL in production: the models use only portable types (no SQLite- or PostgreSQL-only
SQL), and the schema is created and evolved by Alembic migrations (``warehouse/migrations``),
never by ``create_all``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from ground.utc import utcnow  # the models' default timestamp; imported from here too

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON,
        datetime: DateTime(timezone=True),
    }


class School(Base):
    __tablename__ = "schools"

    school_code: Mapped[str] = mapped_column(String(6), primary_key=True)
    name_ar: Mapped[str] = mapped_column(String(200), default="")
    name_fr: Mapped[str] = mapped_column(String(200), default="")
    commune: Mapped[str] = mapped_column(String(100), default="")
    cycle: Mapped[str] = mapped_column(String(20), default="")  # primary | college | lycee
    school_type: Mapped[str] = mapped_column(String(20), default="main")  # main | satellite
    parent_school_code: Mapped[str | None] = mapped_column(String(6), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Submission(Base):
    """One file a school sent, identified by its sha256 within the school."""

    __tablename__ = "submissions"
    __table_args__ = (
        UniqueConstraint("school_code", "sha256", name="uq_submission_file"),
        # A school's new files look up the active submissions of their scopes (resends,
        # supersession): by scope and state together, or SQLite's planner takes the state's
        # index and walks every active submission of the installation, school after school.
        Index("ix_submissions_scope_state", "scope_key", "state"),
    )

    submission_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    school_code: Mapped[str] = mapped_column(String(40), index=True)
    dataset: Mapped[str] = mapped_column(String(40), default="")  # empty until detected
    file_name: Mapped[str] = mapped_column(String(500))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    archive_path: Mapped[str] = mapped_column(String(1000), default="")
    school_year: Mapped[str] = mapped_column(String(9), default="")
    # The rows this submission replaces when accepted (school, year, dataset scope), as text.
    scope_key: Mapped[str] = mapped_column(String(300), default="")
    state: Mapped[str] = mapped_column(String(20), default="received", index=True)
    rows_read: Mapped[int] = mapped_column(Integer, default=0)
    rows_accepted: Mapped[int] = mapped_column(Integer, default=0)
    rows_quarantined: Mapped[int] = mapped_column(Integer, default=0)
    superseded_by: Mapped[int | None] = mapped_column(Integer, nullable=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # Indexed: each night looks for the few submissions not consolidated yet among all of them.
    consolidated_at: Mapped[datetime | None] = mapped_column(nullable=True, index=True)
    detail: Mapped[str] = mapped_column(Text, default="")
    # When the file landed in the inbox (its modification time there), whatever the order in
    # which schools are ingested; and the date the export itself carries (ListEleve_YYYYMMDD
    # name or the workbook's metadata) with where it was read. They decide which of two
    # schools listing the same pupil keeps him (tasks/consolidate.py).
    arrived_at: Mapped[datetime | None] = mapped_column(nullable=True)
    exported_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    exported_on_source: Mapped[str] = mapped_column(String(20), default="")
    # A resend that would remove much of what the school had is kept out of the warehouse
    # until an officer confirms it: "" (never held), "held", "confirmed". Its state stays one
    # of the public states (tasks/resends.py).
    hold: Mapped[str] = mapped_column(String(10), default="", index=True)
    hold_rows_before: Mapped[int | None] = mapped_column(Integer, nullable=True)
    hold_rows_after: Mapped[int | None] = mapped_column(Integer, nullable=True)
    confirmed_by: Mapped[str] = mapped_column(String(100), default="")
    confirmed_at: Mapped[datetime | None] = mapped_column(nullable=True)


class Finding(Base):
    """What is wrong with a row, a cell or a whole file, keyed by rule id."""

    __tablename__ = "findings"

    finding_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    submission_id: Mapped[int] = mapped_column(
        ForeignKey("submissions.submission_id", ondelete="CASCADE"), index=True
    )
    school_code: Mapped[str] = mapped_column(String(40), index=True)
    file_name: Mapped[str] = mapped_column(String(500))
    sheet: Mapped[str | None] = mapped_column(String(100), nullable=True)
    sheet_row: Mapped[int | None] = mapped_column(Integer, nullable=True)
    column_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    value: Mapped[str | None] = mapped_column(Text, nullable=True)
    rule_id: Mapped[str] = mapped_column(String(10), index=True)
    severity: Mapped[str] = mapped_column(String(10))  # error | query
    message_ar: Mapped[str] = mapped_column(Text)
    message_fr: Mapped[str] = mapped_column(Text)


# What a finding says and where, in the table's order: what a school's report, the feedback
# workbook and `massar query` show of each finding after its file.
FINDING_DETAIL = (
    "sheet",
    "sheet_row",
    "column_name",
    "value",
    "rule_id",
    "severity",
    "message_ar",
    "message_fr",
)


class ExchangeBatch(Base):
    """One answer to one partner request."""

    __tablename__ = "exchange_batches"
    __table_args__ = (UniqueConstraint("partner", "sequence", name="uq_batch_sequence"),)

    batch_id: Mapped[str] = mapped_column(String(60), primary_key=True)
    partner: Mapped[str] = mapped_column(String(20), index=True)
    sequence: Mapped[int] = mapped_column(Integer)
    profile_version: Mapped[str] = mapped_column(String(20), default="")
    request_file: Mapped[str] = mapped_column(String(500), default="")
    request_sha256: Mapped[str] = mapped_column(String(64), default="", index=True)
    school_year: Mapped[str] = mapped_column(String(9), default="")
    legal_basis: Mapped[str] = mapped_column(Text, default="")
    # prepared | waiting_approval | approved | rejected | expired | delivered | acknowledged
    state: Mapped[str] = mapped_column(String(20), default="prepared", index=True)
    prepared_by: Mapped[str] = mapped_column(String(100), default="")
    prepared_at: Mapped[datetime] = mapped_column(default=utcnow)
    children: Mapped[int] = mapped_column(Integer, default=0)
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)  # per status, match rate
    manifest_sha256: Mapped[str] = mapped_column(String(64), default="")
    files: Mapped[dict[str, Any]] = mapped_column(default=dict)  # file name -> sha256
    flow_run_id: Mapped[str] = mapped_column(String(60), default="")


class Approval(Base):
    __tablename__ = "approvals"

    approval_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("exchange_batches.batch_id"), index=True)
    decision: Mapped[str] = mapped_column(String(10))  # approved | rejected | expired
    approver: Mapped[str] = mapped_column(String(100))
    decided_at: Mapped[datetime] = mapped_column(default=utcnow)
    comment: Mapped[str] = mapped_column(Text, default="")
    covered_sha256: Mapped[str] = mapped_column(String(64))  # the manifest approved
    channel: Mapped[str] = mapped_column(String(20), default="cli")  # cli | prefect-ui
    # How the platform verified the approver (tasks/approval_rules.py), the OS account of a
    # terminal's decision, the TOTP step accepted, and the sha256 its message-log entry holds.
    identity_method: Mapped[str] = mapped_column(String(40), default="")
    os_account: Mapped[str] = mapped_column(String(64), default="")
    code_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    digest: Mapped[str] = mapped_column(String(64), default="")


class ApproverCode(Base):
    """The last TOTP step accepted from each approver: a code is never accepted twice."""

    __tablename__ = "approver_codes"

    approver: Mapped[str] = mapped_column(String(100), primary_key=True)
    last_step: Mapped[int] = mapped_column(BigInteger)
    used_at: Mapped[datetime] = mapped_column(default=utcnow)


class RefusedAttempt(Base):
    """A decision refused because of who asked (unlisted, wrong or replayed code, the
    preparer...); each is also a message-log entry holding its digest."""

    __tablename__ = "refused_attempts"

    attempt_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(String(60), index=True)
    act: Mapped[str] = mapped_column(String(20))  # approval | review
    channel: Mapped[str] = mapped_column(String(20))
    claimed: Mapped[str] = mapped_column(String(100), default="")  # the name typed
    os_account: Mapped[str] = mapped_column(String(64), default="")
    reason: Mapped[str] = mapped_column(String(40))
    sentence: Mapped[str] = mapped_column(Text, default="")
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow)
    digest: Mapped[str] = mapped_column(String(64))


class ReviewDecision(Base):
    """An officer's decision on one REVIEW child of a batch, before its approval
    (tasks/review_queue.py); the latest per child is the one the batch's files carry."""

    __tablename__ = "review_decisions"

    decision_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("exchange_batches.batch_id"), index=True)
    item: Mapped[int] = mapped_column(Integer)  # the child's number in the batch's review queue
    fund_reference: Mapped[str] = mapped_column(String(64))
    from_status: Mapped[str] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    student_code: Mapped[str] = mapped_column(String(20), default="")  # the candidate chosen
    decided_by: Mapped[str] = mapped_column(String(100))
    decided_at: Mapped[datetime] = mapped_column(default=utcnow)
    channel: Mapped[str] = mapped_column(String(20), default="cli")  # cli | prefect-ui
    comment: Mapped[str] = mapped_column(Text, default="")
    manifest_before: Mapped[str] = mapped_column(String(64))
    manifest_after: Mapped[str] = mapped_column(String(64))
    digest: Mapped[str] = mapped_column(String(64))  # sha256 the message log holds


class Delivery(Base):
    """The ledger: one row per file per batch; a delivered row is never sent again."""

    __tablename__ = "deliveries"
    __table_args__ = (UniqueConstraint("batch_id", "file_name", name="uq_delivery_file"),)

    delivery_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("exchange_batches.batch_id"), index=True)
    partner: Mapped[str] = mapped_column(String(20))
    file_name: Mapped[str] = mapped_column(String(300))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    remote_path: Mapped[str] = mapped_column(String(500), default="")
    state: Mapped[str] = mapped_column(String(20), default="pending")  # pending | delivered
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    delivered_at: Mapped[datetime | None] = mapped_column(nullable=True)


class Acknowledgement(Base):
    __tablename__ = "acknowledgements"

    acknowledgement_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("exchange_batches.batch_id"), index=True)
    partner: Mapped[str] = mapped_column(String(20))
    file_name: Mapped[str] = mapped_column(String(300))
    file_sha256: Mapped[str] = mapped_column(String(64))  # of the acknowledgement file
    acknowledged_sha256: Mapped[str] = mapped_column(String(64))  # what the fund received
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    accepted: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class MessageLogEntry(Base):
    """Append-only, hash-chained record of every file sent to a partner."""

    __tablename__ = "message_log"

    sequence: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    logged_at: Mapped[datetime] = mapped_column(default=utcnow)
    partner: Mapped[str] = mapped_column(String(20))
    batch_id: Mapped[str] = mapped_column(String(60), index=True)
    file_name: Mapped[str] = mapped_column(String(300))
    sha256: Mapped[str] = mapped_column(String(64))
    signature_sha256: Mapped[str] = mapped_column(String(64), default="")
    approver: Mapped[str] = mapped_column(String(100), default="")
    previous_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64), unique=True)


class Run(Base):
    """The platform's own record of a flow run (Prefect keeps the operational detail)."""

    __tablename__ = "runs"

    run_id: Mapped[str] = mapped_column(String(60), primary_key=True)
    flow: Mapped[str] = mapped_column(String(60), index=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
    state: Mapped[str] = mapped_column(String(20), default="running")
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Night(Base):
    """One consolidation of the warehouse: the table versions a reader should see together.

    A night is recorded as ``completed`` only after every table is written; readers use the
    versions of the last completed night, so a crash half-way never shows half a night."""

    __tablename__ = "nights"

    night_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
    state: Mapped[str] = mapped_column(String(20), default="running", index=True)
    versions: Mapped[dict[str, Any]] = mapped_column(default=dict)  # table -> Delta version
    flow_run_id: Mapped[str] = mapped_column(String(60), default="")
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)


class SentAlert(Base):
    """An alert e-mailed to the officers, keyed so that the same alert is never sent twice
    (``tasks/alerts.py``). Holds run names, batch ids and counts only: no pupil data."""

    __tablename__ = "sent_alerts"

    alert_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40), index=True)
    subject: Mapped[str] = mapped_column(String(300))
    recipients: Mapped[str] = mapped_column(Text, default="")  # comma-separated addresses
    sent_at: Mapped[datetime] = mapped_column(default=utcnow)
    facts: Mapped[dict[str, Any]] = mapped_column(default=dict)


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets foreign keys and a busy timeout."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def alembic_config(url: str) -> Config:
    """Alembic's configuration for the control database at ``url``: this platform's
    migrations (the one place it is built)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))  # % is Alembic's escape
    return config


def upgrade_database(url: str) -> None:
    """Bring the control database at ``url`` to the newest schema (idempotent)."""
    from alembic import command

    command.upgrade(alembic_config(url), "head")


def head_revision() -> str | None:
    """The newest migration of this platform's control database."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def database_revision(url: str) -> str | None:
    """The migration revision the database is at, or None if it was never migrated."""
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


class ControlDatabase:
    """A handle on the control database: sessions as context managers."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed on success and rolled back on error."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()

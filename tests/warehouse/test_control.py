"""The control database: migrations and the records later flows rely on, on SQLite and
PostgreSQL alike."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError

from warehouse.control import (
    ControlDatabase,
    ExchangeBatch,
    Finding,
    Submission,
    database_revision,
    upgrade_database,
)
from warehouse.query import run_query

PUBLIC_TABLES = {
    "schools",
    "submissions",
    "findings",
    "exchange_batches",
    "approvals",
    "deliveries",
    "acknowledgements",
    "message_log",
    "runs",
    "nights",
}


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'control.db'}"
    base = request.getfixturevalue("postgres_url")
    # A fresh database per test on the shared server.
    import uuid

    from sqlalchemy import create_engine, text

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"create database {name}"))
    admin.dispose()
    return base.rsplit("/", 1)[0] + "/" + name


def test_migrations_create_every_table_and_can_run_twice(database_url):
    upgrade_database(database_url)
    upgrade_database(database_url)  # a second run changes nothing and does not fail
    database = ControlDatabase(database_url)
    try:
        tables = set(inspect(database.engine).get_table_names())
    finally:
        database.dispose()
    assert tables >= PUBLIC_TABLES
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from warehouse.control import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert database_revision(database_url) == ScriptDirectory.from_config(config).get_current_head()


def test_same_file_twice_from_a_school_is_refused_by_the_database(database_url):
    upgrade_database(database_url)
    database = ControlDatabase(database_url)
    try:
        with database.session() as session:
            session.add(Submission(school_code="27783Y", file_name="a.xlsx", sha256="ab" * 32))
        with pytest.raises(IntegrityError), database.session() as session:
            session.add(Submission(school_code="27783Y", file_name="b.xlsx", sha256="ab" * 32))
        # Another school may send the very same bytes.
        with database.session() as session:
            session.add(Submission(school_code="27790K", file_name="a.xlsx", sha256="ab" * 32))
        with database.session() as session:
            assert session.query(Submission).count() == 2
    finally:
        database.dispose()


def test_findings_and_batches_round_trip_arabic_text_and_json(database_url, tmp_path):
    upgrade_database(database_url)
    database = ControlDatabase(database_url)
    try:
        with database.session() as session:
            submission = Submission(
                school_code="27783Y",
                file_name="ListEleve_20240105.xls",
                sha256="cd" * 32,
                state="partially_accepted",
                rows_read=3,
                rows_accepted=2,
                rows_quarantined=1,
                dataset="students",
            )
            session.add(submission)
            session.flush()
            session.add(
                Finding(
                    submission_id=submission.submission_id,
                    school_code="27783Y",
                    file_name=submission.file_name,
                    sheet="Sheet1",
                    sheet_row=17,
                    column_name="الرمز",
                    value="K10000012",
                    rule_id="R001",
                    severity="error",
                    message_ar="رمز مسار غير صحيح",
                    message_fr="Le code Massar n'est pas valide",
                )
            )
            session.add(
                ExchangeBatch(
                    batch_id="CNSS-2024-0001",
                    partner="cnss",
                    sequence=1,
                    counts={"SCHOOLED": 10, "REVIEW": 2},
                )
            )
        with database.session() as session:
            batch = session.get(ExchangeBatch, "CNSS-2024-0001")
            assert batch.counts == {"SCHOOLED": 10, "REVIEW": 2}
            finding = session.scalars(select(Finding)).one()
            assert finding.column_name == "الرمز" and finding.sheet_row == 17

        # The public tables are queryable by name with SQL, as `massar query` does.
        result = run_query(
            "select s.state, f.rule_id, f.column_name, s.rows_read - s.rows_accepted "
            "- s.rows_quarantined as unaccounted from submissions s join findings f using "
            "(submission_id)",
            warehouse=tmp_path / "no-warehouse-yet",
            database=database,
        ).to_pylist()
        assert result == [
            {
                "state": "partially_accepted",
                "rule_id": "R001",
                "column_name": "الرمز",
                "unaccounted": 0,
            }
        ]
    finally:
        database.dispose()

"""Backup and restore of a home: a restored home answers every query as the original did; a
damaged or altered archive, or a target that is not empty, restores nothing."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
import uuid
from datetime import UTC
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from flows.nightly import nightly
from massar.cli import main
from massar.home import init_home
from warehouse.backup.home_check import check_home
from warehouse.backup.layout import BackupError
from warehouse.backup.make import backup_home
from warehouse.backup.restore import restore_home
from warehouse.control import ControlDatabase, ExchangeBatch, Submission
from warehouse.delta import table_versions
from warehouse.exchange_ledger import ExchangeLedger
from warehouse.message_log_evidence import verify_message_log
from warehouse.query import run_query

APPROVER = "F. Zahra"


def _query(settings, sql: str) -> list[dict]:
    database = ControlDatabase(settings.resolved_database_url)
    try:
        return run_query(sql, warehouse=settings.warehouse, database=database).to_pylist()
    finally:
        database.dispose()


def _answers(settings) -> dict[str, list[dict]]:
    """What an officer would ask: counts per table, a checksum over marks, the control
    tables row by row."""
    tables = sorted(p.name for p in settings.warehouse.iterdir() if (p / "_delta_log").is_dir())
    answers = {table: _query(settings, f"select count(*) as n from {table}") for table in tables}
    answers["marks_checksum"] = _query(
        settings,
        # Exact sums: a sum of doubles depends on the order DuckDB's threads add them in.
        "select count(*) as n, sum(mark::decimal(18, 4)) as total, md5(string_agg(line, ',' "
        "order by line)) as digest from (select concat_ws('|', school_code, student_code, "
        "subject_code, semester, slot, mark, absence) as line, mark from marks)",
    )
    answers["submissions"] = _query(settings, "select * from submissions order by submission_id")
    answers["findings"] = _query(
        settings,
        "select * from findings order by all",
    )
    return answers


def _deliver(database: ControlDatabase, batch_id: str, names: list[str]) -> None:
    """What an exchange leaves in the control database: a batch, its approval, its ledger and
    message-log entries."""
    from warehouse.control import Approval

    with database.session() as session:
        session.add(ExchangeBatch(batch_id=batch_id, partner="cnss", sequence=1))
        session.flush()
        session.add(
            Approval(batch_id=batch_id, decision="approved", approver=APPROVER, covered_sha256="")
        )
    ledger = ExchangeLedger(database)
    for name in names:
        sha = hashlib.sha256(name.encode()).hexdigest()
        ledger.count_attempt(batch_id, "cnss", name, sha, 10, f"/inbox/{name}")
        ledger.record_delivered(batch_id, "cnss", name, sha, 10, f"/inbox/{name}", "", APPROVER)


@pytest.fixture(scope="module")
def source(prefect_server, defects_province, tmp_path_factory):
    """A home with two schools (with findings) ingested and consolidated, a delivered batch,
    and a key."""
    settings = init_home(tmp_path_factory.mktemp("backup-source") / "home")
    schools = sorted(p for p in defects_province.iterdir() if p.is_dir() and p.name[:5].isdigit())[
        :2
    ]
    for school in schools:
        shutil.copytree(school, settings.inbox / school.name)
    nightly(settings)
    database = ControlDatabase(settings.resolved_database_url)
    try:
        _deliver(database, "CNSS-2024-0001", ["a.xml", "a.csv"])
    finally:
        database.dispose()
    (settings.home / "keys" / "signing-key.pem").write_text("secret", encoding="utf-8")
    (settings.reports / "note.txt").write_text("report", encoding="utf-8")
    return settings


@pytest.fixture(scope="module")
def backup(source, tmp_path_factory):
    return backup_home(source, tmp_path_factory.mktemp("backups"))


def test_a_restored_home_answers_every_query_as_the_original(source, backup, tmp_path):
    assert backup.problems == []
    assert backup.path.name.startswith("massar-backup-tiznit-")
    assert backup.path.name.endswith(".tar.gz")
    assert backup.night_id is not None and backup.versions["marks"] >= 0
    assert {"control database", "warehouse", "archive", "staging"} <= set(backup.sections)
    assert "keys" in backup.left_out and "prefect" in backup.left_out

    restored = restore_home(backup.path, tmp_path / "restored")
    assert restored.problems == []
    assert restored.night_id == backup.night_id and restored.versions == backup.versions
    settings = init_home(restored.home)  # opening the restored home changes nothing
    original = _answers(source)
    assert original["findings"] and original["marks_checksum"][0]["n"] > 0
    assert _answers(settings) == original
    assert check_home(settings) == []

    assert verify_message_log(ControlDatabase(settings.resolved_database_url)).intact
    assert not any((settings.home / "keys").iterdir())  # secrets stay out by default
    assert not any(settings.inbox.iterdir())
    # Submissions point at the restored archive, not the original home's.
    database = ControlDatabase(settings.resolved_database_url)
    with database.session() as session:
        paths = session.scalars(text("select archive_path from submissions")).all()
    database.dispose()
    assert paths and all(
        Path(p).is_relative_to(settings.archive) and Path(p).is_file() for p in paths
    )


def test_the_next_night_of_a_restored_home_writes_nothing_new(backup, tmp_path):
    restored = restore_home(backup.path, tmp_path / "restored")
    settings = init_home(restored.home)
    before = table_versions(settings.warehouse)
    result = nightly(settings)
    assert result["ingest"]["new_submissions"] == 0
    assert table_versions(settings.warehouse) == before
    assert result["consolidation"]["rows"] == {
        table: rows
        for table, rows in backup.rows.items()
        if table in result["consolidation"]["rows"]
    }


def _rewrite(archive: Path, target: Path, change) -> None:  # type: ignore[no-untyped-def]
    """Copy a backup member by member, letting ``change(name, data)`` alter the bytes."""
    with tarfile.open(archive, "r:gz") as source, tarfile.open(target, "w:gz") as copy:
        for member in source.getmembers():
            data = source.extractfile(member).read() if member.isfile() else b""
            data = change(member.name, data)
            member.size = len(data)
            copy.addfile(member, io.BytesIO(data))


def test_a_tampered_archive_is_refused_naming_the_file(backup, tmp_path):
    with tarfile.open(backup.path, "r:gz") as tar:
        victim = next(n for n in tar.getnames() if n.startswith("home/warehouse/marks/"))
    altered = tmp_path / "altered.tar.gz"
    _rewrite(backup.path, altered, lambda name, data: data[:-1] + b"x" if name == victim else data)
    with pytest.raises(BackupError, match=f"The file {victim} in the backup altered.tar.gz"):
        restore_home(altered, tmp_path / "restored")
    assert not (tmp_path / "restored").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["altered.tar.gz"]  # no half-restored folder

    # A member the manifest does not list.
    sneaky = tmp_path / "sneaky.tar.gz"
    with tarfile.open(backup.path, "r:gz") as source, tarfile.open(sneaky, "w:gz") as copy:
        for member in source.getmembers():
            copy.addfile(member, source.extractfile(member) if member.isfile() else None)
        info = tarfile.TarInfo("home/keys/planted.pem")
        info.size = 3
        copy.addfile(info, io.BytesIO(b"key"))
    with pytest.raises(BackupError, match=r"holds home/keys/planted\.pem, which its manifest"):
        restore_home(sneaky, tmp_path / "restored")


def test_a_truncated_archive_is_refused(backup, tmp_path):
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(backup.path.read_bytes()[: backup.size_bytes // 2])
    with pytest.raises(BackupError, match="damaged or truncated"):
        restore_home(truncated, tmp_path / "restored")
    assert not (tmp_path / "restored").exists()


def test_restoring_into_a_non_empty_home_is_refused(source, backup, tmp_path):
    with pytest.raises(BackupError, match="is not empty; restore into a new or empty folder"):
        restore_home(backup.path, source.home)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert restore_home(backup.path, empty).problems == []


def test_the_check_finds_a_changed_original_a_lost_staged_file_and_a_cut_message_log(
    backup, tmp_path
):
    settings = init_home(restore_home(backup.path, tmp_path / "restored").home)
    original = next(p for p in settings.archive.rglob("*") if p.is_file())
    original.chmod(0o644)
    original.write_bytes(original.read_bytes() + b"\n")
    staged = next(settings.staging.rglob("*.parquet"))
    staged.unlink()
    database = ControlDatabase(settings.resolved_database_url)
    with database.engine.begin() as connection:
        connection.execute(
            text("update message_log set file_name = 'other.xml' where sequence = 1")
        )
    database.dispose()
    problems = check_home(settings)
    assert any(
        f"archive/{original.parent.name}/{original.name} does not hold" in p for p in problems
    )
    assert any("lacks accepted" in p and staged.parent.name in p for p in problems)
    assert any("Message-log entry 1" in p for p in problems)


def test_the_command_line_round_trip(source, tmp_path, capsys):
    assert main(["backup", "--home", str(source.home), "--to", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    [archive] = (tmp_path / "out").glob("massar-backup-*.tar.gz")
    assert str(archive) in printed.replace("\n", "") and "warehouse:" in printed

    new = tmp_path / "new"
    assert main(["restore", str(archive), "--home", str(new)]) == 0
    assert "Consistency check passed" in capsys.readouterr().out
    sql = "select count(*) as n, sum(mark::decimal(18, 4)) as total from marks"
    assert main(["query", sql, "--home", str(new), "--format", "json"]) == 0
    restored = json.loads(capsys.readouterr().out)
    assert main(["query", sql, "--home", str(source.home), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == restored

    assert main(["restore", str(archive), "--home", str(new)]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("Error: ") and "is not empty" in captured.err
    assert "Traceback" not in captured.err and len(captured.err.strip().splitlines()) <= 2
    inside = source.home / "backups"
    assert main(["backup", "--home", str(source.home), "--to", str(inside)]) == 1
    assert "inside the home" in capsys.readouterr().err
    assert (
        main(["backup", "--home", str(source.home), "--to", str(tmp_path), "--include-keys"]) == 0
    )
    capsys.readouterr()
    [with_keys] = tmp_path.glob("massar-backup-*.tar.gz")
    with tarfile.open(with_keys) as tar:
        assert "home/keys/signing-key.pem" in tar.getnames()


def _fresh_postgres(base: str) -> str:
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"create database {name}"))
    admin.dispose()
    return base.rsplit("/", 1)[0] + "/" + name


def test_a_postgresql_control_database_is_dumped_portably_and_restored(postgres_url, tmp_path):
    url = _fresh_postgres(postgres_url)
    home = tmp_path / "home"
    home.mkdir()
    (home / "massar.toml").write_text(f'province = "Tiznit"\ndatabase_url = "{url}"\n')
    settings = init_home(home)
    database = ControlDatabase(url)
    try:
        with database.session() as session:
            for n in range(3):
                content = f"file {n}".encode()
                sha = hashlib.sha256(content).hexdigest()
                (settings.archive / sha[:2]).mkdir(exist_ok=True)
                (settings.archive / sha[:2] / sha).write_bytes(content)
                session.add(
                    Submission(
                        school_code="27783Y",
                        file_name=f"notes-{n}.xlsx",
                        sha256=sha,
                        state="rejected",
                        archive_path=str(settings.archive / sha[:2] / sha),
                    )
                )
        _deliver(database, "CNSS-2024-0001", ["a.xml", "a.csv", "a.manifest.json"])
    finally:
        database.dispose()
    report = backup_home(settings, tmp_path / "backups")
    assert report.database == "portable-json" and report.problems == []

    into_sqlite = restore_home(report.path, tmp_path / "sqlite-home")
    into_postgres = restore_home(
        report.path, tmp_path / "pg-home", database_url=_fresh_postgres(postgres_url)
    )
    assert into_sqlite.problems == [] and into_postgres.problems == []

    def submissions(home_settings) -> list[dict]:
        # SQLite gives back UTC times without their zone, PostgreSQL with it: compare in UTC.
        rows = _query(home_settings, "select * from submissions order by submission_id")
        for row in rows:
            moment = row["received_at"]
            row["received_at"] = (
                moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
            )
        return rows

    expected = submissions(settings)
    for restored in (into_sqlite, into_postgres):
        again = init_home(restored.home)
        assert submissions(again) == expected
        log = verify_message_log(ControlDatabase(again.resolved_database_url))
        assert log.intact and log.entries == 3
    # The restored PostgreSQL database hands out new ids after the restored ones.
    again = init_home(into_postgres.home)
    assert "postgresql" in again.resolved_database_url
    database = ControlDatabase(again.resolved_database_url)
    with database.session() as session:
        added = Submission(school_code="27783Y", file_name="new.xlsx", sha256="f" * 64)
        session.add(added)
        session.flush()
        assert added.submission_id == 4
    database.dispose()
    with pytest.raises(BackupError, match="already holds tables"):
        restore_home(report.path, tmp_path / "again", database_url=again.resolved_database_url)

"""Issue 15, attack 6: with umask 022 the home's ``keys/`` was 0755, ``massar.db`` and the
reports 0644, a backup made with ``--include-keys`` 0644 while it holds the 0600 signing key;
the stack gave database role passwords to psql on its command line, which every account of the
machine can read (``ps``, ``/proc/PID/cmdline``).

Every test runs under umask 022, through the real command (``main``), on real homes."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from massar.cli import main


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture(autouse=True)
def loose_umask() -> Iterator[None]:
    """The umask of a careless shell or service: group and others may read."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.fixture
def home(tmp_path, capsys) -> Path:
    path = tmp_path / "home"
    assert main(["init", "--home", str(path)]) == 0
    capsys.readouterr()
    return path


def _signing_key(home: Path) -> Path:
    """A signing key as an operator copies it in: with the umask's 0644."""
    key = home / "keys" / "signing-key.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\nnot a real key\n-----END PRIVATE KEY-----\n")
    key.chmod(0o644)
    return key


def test_a_new_home_is_its_owners_only(home):
    assert mode(home) == 0o700
    assert mode(home / "keys") == 0o700
    assert mode(home / "massar.db") == 0o600
    assert mode(home / "massar.toml") == 0o600
    for path in home.rglob("*"):
        if not path.is_symlink():
            assert mode(path) & 0o077 == 0, (path, oct(mode(path)))


def test_keys_and_database_left_open_are_closed_by_the_next_command(home, capsys):
    key = _signing_key(home)
    (home / "keys").chmod(0o755)
    (home / "massar.db").chmod(0o644)
    home.chmod(0o755)
    assert main(["query", "select 1 as n", "--home", str(home)]) == 0
    capsys.readouterr()
    assert mode(key) == 0o600
    assert mode(home / "keys") == 0o700
    assert mode(home / "massar.db") == 0o600
    assert mode(home) == 0o700


def test_reports_written_by_an_ingest_are_private(
    home, province, capsys, monkeypatch, prefect_server
):
    monkeypatch.setenv("PREFECT_API_URL", prefect_server)  # the session's Prefect server
    school = next(p for p in sorted(province.iterdir()) if p.is_dir() and p.name[:5].isdigit())
    shutil.copytree(school, home / "inbox" / school.name)
    code = main(["ingest", "--home", str(home)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    reports = [p for p in (home / "reports").rglob("*") if p.is_file()]
    assert reports, "the ingest wrote no report"
    for path in [home / "reports", *(home / "reports").rglob("*")]:
        wanted = 0o700 if path.is_dir() else 0o600
        assert mode(path) == wanted, (path, oct(mode(path)))
    assert mode(home) == 0o700  # the archive's read-only originals are behind it


def test_backups_are_private_with_and_without_keys(tmp_path, home, capsys):
    key = _signing_key(home)
    backups = tmp_path / "backups"
    assert main(["backup", "--home", str(home), "--to", str(backups), "--include-keys"]) == 0
    assert main(["backup", "--home", str(home), "--to", str(backups)]) == 0
    capsys.readouterr()
    archives = sorted(backups.glob("massar-backup-*.tar.gz"))
    assert len(archives) == 2
    assert mode(backups) == 0o700
    for archive in archives:
        assert mode(archive) == 0o600, (archive, oct(mode(archive)))
    with_keys = next(a for a in archives if _members(a, "home/keys/"))
    assert _members(with_keys, "home/keys/") == {f"home/keys/{key.name}"}
    # Restored, the home is its owner's only again, the key 0600 as it was.
    restored = tmp_path / "restored"
    code = main(["restore", str(with_keys), "--home", str(restored)])
    assert code == 0, capsys.readouterr().err
    assert mode(restored) == 0o700
    assert mode(restored / "keys") == 0o700
    assert mode(restored / "keys" / key.name) == 0o600
    assert mode(restored / "massar.db") == 0o600


def test_a_backup_made_by_the_function_is_private_whatever_the_umask(tmp_path, home):
    """Not only the command's umask: the archive is created 0600 by the backup itself."""
    from ground.settings import load_settings
    from warehouse.backup import backup_home

    _signing_key(home)
    report = backup_home(load_settings(home), tmp_path / "elsewhere", include_keys=True)
    assert mode(report.path) == 0o600


def _members(archive: Path, prefix: str) -> set[str]:
    with tarfile.open(archive) as tar:
        return {m.name for m in tar.getmembers() if m.name.startswith(prefix) and m.isfile()}


# ---- the stack's PostgreSQL roles -------------------------------------------------------------


def test_role_passwords_never_reach_psqls_command_line(monkeypatch):
    """The stack's Postgres creates and re-keys its roles on a real cluster (the tests'
    throw-away server); every command line it starts is recorded: the password is in none,
    and the role has it (a SCRAM secret in pg_authid)."""
    from massar import stack
    from tests.harness.postgres import PostgresServer, postgres_binaries

    if postgres_binaries() is None:
        pytest.fail("PostgreSQL is not installed: run scripts/system-packages.sh.")
    password = "pw-" + os.urandom(12).hex()
    started: list[list[str]] = []
    real_run = subprocess.run

    def recording_run(command, *args, **kwargs):  # type: ignore[no-untyped-def]
        started.append([str(part) for part in command])
        return real_run(command, *args, **kwargs)

    with PostgresServer() as server:

        @dataclass(frozen=True)
        class OnServer(stack.StackPaths):
            @property
            def pg_socket(self) -> Path:
                return server.root

        root = Path(tempfile.mkdtemp(prefix="massar-roles-"))
        try:
            config = stack.StackConfig(server.port, 0, server.user, server.user)
            postgres = stack.Postgres(OnServer(root), config)
            monkeypatch.setattr(stack.subprocess, "run", recording_run)
            postgres.ensure_database("massar_roles", password)  # created
            postgres.ensure_database("massar_roles", password + "-2")  # re-keyed
            monkeypatch.setattr(stack.subprocess, "run", real_run)
            secret = postgres.psql(
                "select rolpassword from pg_authid where rolname = 'massar_roles'"
            )
        finally:
            shutil.rmtree(root, ignore_errors=True)
    assert [c for c in started if Path(c[c.index("--") + 1 if "--" in c else 0]).name == "psql"]
    for command in started:
        assert not any(password in part for part in command), command
    assert secret.startswith("SCRAM-SHA-256$"), secret

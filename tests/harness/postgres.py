"""A throw-away PostgreSQL server from the machine's binaries, on a loopback port.

PostgreSQL refuses to run as root: when the tests run as root, the cluster belongs to the
``postgres`` system user (created by Debian's package) and commands run through ``runuser``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from massar.stack import free_port


def postgres_binaries() -> Path | None:
    """The newest installed PostgreSQL bin folder, or None."""
    from massar.stack import StackError
    from massar.stack import postgres_binaries as find

    try:
        return find()
    except StackError:
        return None


class PostgresServer:
    """Start with :meth:`start`, stop with :meth:`stop`; :attr:`url` is a SQLAlchemy URL."""

    def __init__(self, database: str = "massar") -> None:
        binaries = postgres_binaries()
        if binaries is None:
            raise RuntimeError(
                "PostgreSQL server binaries are not installed (run scripts/system-packages.sh)."
            )
        self.bin = binaries
        self.database = database
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="massar-pg-"))
        self.data = self.root / "data"
        self.as_root = os.geteuid() == 0
        self.user = "postgres" if self.as_root else pwd.getpwuid(os.geteuid()).pw_name

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = list(args)
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)

    def start(self) -> PostgresServer:
        if self.as_root:
            shutil.chown(self.root, user="postgres", group="postgres")
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            self.user,
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        )
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-t",
            "60",
            "-o",
            f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off",
            "start",
        )
        self._run(
            str(self.bin / "createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            self.user,
            self.database,
        )
        return self

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run(
                str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"
            )
        for _ in range(20):
            if not (self.data / "postmaster.pid").exists():
                break
            time.sleep(0.1)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def fresh_control_database(request: object, tmp_path: Path, kind: str) -> object:
    """A migrated control database of its own for a test parametrised on ``kind``: a SQLite
    file under ``tmp_path``, or a new database on the session's PostgreSQL server (the
    ``postgres_url`` fixture, asked of ``request`` only then). Returns a ControlDatabase."""
    import uuid

    from sqlalchemy import create_engine, text

    from warehouse.control import ControlDatabase, upgrade_database

    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'control.db'}"
    else:
        base = request.getfixturevalue("postgres_url")  # type: ignore[attr-defined]
        name = f"t_{uuid.uuid4().hex[:12]}"
        admin = create_engine(base, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f"create database {name}"))
        admin.dispose()
        url = base.rsplit("/", 1)[0] + "/" + name
    upgrade_database(url)
    return ControlDatabase(url)

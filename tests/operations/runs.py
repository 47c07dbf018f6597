"""Real ``massar`` processes on one home, and what a test reads of the home afterwards: the
control database's submissions, leases and runs, the staged rows."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import polars as pl
from sqlalchemy import select

from tests.harness.prefect_runs import wait_until as poll_until
from warehouse.control import ControlDatabase, ExchangeBatch, Run, Submission
from warehouse.leases import LeaseHeld, current_leases
from warehouse.message_log import message_log

MASSAR = str(Path(sys.executable).with_name("massar"))


def fill_inbox(home: Path, province: Path, schools: int | None = None) -> int:
    """Copy the school folders of a generated province (the first ``schools``, else every one)
    into the home's inbox; file count."""
    files = 0
    folders = sorted(p for p in province.iterdir() if p.is_dir() and p.name[:5].isdigit())
    for school in folders[:schools]:
        shutil.copytree(school, home / "inbox" / school.name, dirs_exist_ok=True)
        files += sum(1 for f in school.rglob("*") if f.is_file())
    return files


def start(home: Path, api_url: str, *args: str, **env: str) -> subprocess.Popen[str]:
    """``massar ARGS --home HOME`` in its own process group (so a test can SIGKILL it with
    its worker processes), reporting to the test's Prefect server."""
    return subprocess.Popen(
        [MASSAR, *args, "--home", str(home)],
        env={**os.environ, "PREFECT_API_URL": api_url, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def finish(process: subprocess.Popen[str], timeout: float = 900) -> tuple[int, str, str]:
    """Wait for the process: its exit code, its stdout as one line (the terminal wraps long
    sentences), its stderr."""
    out, err = process.communicate(timeout=timeout)
    return process.returncode, " ".join(out.split()), err


def kill(process: subprocess.Popen[str]) -> None:
    """SIGKILL the process and its workers, as a machine losing power would."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)


def writing(home: Path) -> bool:
    """Whether a process holds the write lock of the home's SQLite control database."""
    from sqlalchemy import make_url

    from ground.settings import load_settings

    path = make_url(load_settings(home).resolved_database_url).database
    connection = sqlite3.connect(str(path), timeout=0)
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.rollback()
        return False
    except sqlite3.OperationalError:  # "database is locked": a writer is at work
        return True
    finally:
        connection.close()


@contextmanager
def frozen(
    process: subprocess.Popen[str], home: Path, holding: Callable[[], object], timeout: float = 300
) -> Iterator[None]:
    """``process`` and its workers (its process group) stopped (SIGSTOP) at a moment when
    ``holding()`` is true and it holds no write lock on the control database (a frozen writer
    would keep every other run waiting); continued (SIGCONT) on leaving. However fast the run
    is, another run started meanwhile finds it at work."""

    def stopped_at_work() -> bool:
        assert process.poll() is None, "the run ended before it was seen at work"
        os.killpg(process.pid, signal.SIGSTOP)
        if not writing(home) and holding():
            return True
        os.killpg(process.pid, signal.SIGCONT)  # let it go on to a moment that serves
        return False

    try:
        poll_until(stopped_at_work, "the run seen at work", timeout, interval=0.02)
        yield
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGCONT)


def wait_until(check: Callable[[], object], seconds: float, what: str) -> object:
    """Poll ``check`` until it returns something true, within ``seconds`` (the harness's poll,
    every 0.1 s)."""
    return poll_until(check, what, seconds, interval=0.1)


def database(home: Path) -> ControlDatabase:
    """The home's control database (SQLite in the home, or the one MASSAR_DATABASE_URL names)."""
    from ground.settings import load_settings

    return ControlDatabase(load_settings(home).resolved_database_url)


def leases(home: Path, prefix: str = "") -> list[LeaseHeld]:
    handle = database(home)
    try:
        return current_leases(handle, prefix)
    finally:
        handle.dispose()


def submissions(home: Path) -> list[Submission]:
    handle = database(home)
    try:
        with handle.session() as session:
            return list(session.scalars(select(Submission)))
    finally:
        handle.dispose()


def runs(home: Path, flow: str | None = None) -> list[Run]:
    handle = database(home)
    try:
        with handle.session() as session:
            query = select(Run).order_by(Run.started_at)
            if flow:
                query = query.where(Run.flow == flow)
            return list(session.scalars(query))
    finally:
        handle.dispose()


def check_ingested_once(home: Path, files: int) -> None:
    """Every file of the inbox is one submission, recorded (none left 'received'), and the
    staged rows of each submission are there once: as many as it accepted."""
    found = submissions(home)
    assert len(found) == files
    assert len({(s.school_code, s.sha256) for s in found}) == files
    assert Counter(s.state for s in found)["received"] == 0
    staged: Counter[int] = Counter()
    for path in (home / "staging").rglob("*.parquet"):
        ids = pl.read_parquet(path, columns=["submission_id"]).get_column("submission_id")
        staged.update(ids.to_list())
    accepted = {s.submission_id: s.rows_accepted for s in found if s.rows_accepted}
    assert dict(staged) == accepted


def batches(home: Path) -> list[ExchangeBatch]:
    """The exchange batches the control database records."""
    handle = database(home)
    try:
        with handle.session() as session:
            return list(session.scalars(select(ExchangeBatch)))
    finally:
        handle.dispose()


def delivered(home: Path) -> list[str]:
    """The message log's entries of delivered files (decisions and refusals set apart)."""
    handle = database(home)
    try:
        return [
            e["file_name"]
            for e in message_log(handle)
            if not e["file_name"].startswith(("decision:", "refused:", "review-decision:"))
        ]
    finally:
        handle.dispose()

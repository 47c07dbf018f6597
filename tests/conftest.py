"""Shared fixtures: one Prefect test server for the whole run, temporary homes, one generated
province per session, and a real OpenSSH sshd for exchange tests."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Prefect reads its settings when imported: keep it offline, quiet and out of ~/.prefect.
_PREFECT_HOME = Path(tempfile.mkdtemp(prefix="massar-tests-prefect-"))
os.environ.update(
    {
        "PREFECT_HOME": str(_PREFECT_HOME),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    }
)
for _name in [name for name in os.environ if name.startswith("MASSAR_")]:
    del os.environ[_name]

import pytest  # noqa: E402

TEST_SCHOOLS = 6
TEST_SEED = 7
TEST_YEAR = "2023/2024"


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[str]:
    """One Prefect server (a subprocess on 127.0.0.1) for every test that runs a flow.

    Yields the API URL, for tests that start a subprocess (CLI, worker) against it.
    """
    from contextlib import ExitStack
    from unittest import mock

    import prefect.context
    import prefect.testing.utilities as harness
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        temporary_settings,
    )

    from massar.prefect_database import keep_as_template, start_from_template

    # The server's database starts as a copy of the installation's migrated one, as a fresh
    # home's does (massar/prefect_database.py): Prefect's migrations cost 4 s of CPU, 4-6 s
    # of wall at load 10. The harness names its database's folder with mkdtemp.
    folder = Path(tempfile.mkdtemp(prefix="massar-tests-prefect-db-"))
    database = folder / "prefect-test.db"
    copied = start_from_template(database)
    with ExitStack() as stack:
        with mock.patch.object(harness, "mkdtemp", lambda: str(folder)):
            stack.enter_context(harness.prefect_test_harness(server_startup_timeout=90))
        if not copied:
            keep_as_template(database)  # migrated, no run recorded yet: for the next ones
        # The tests' flows run in their own process, as the embedded mode runs them: without
        # flow-run heartbeats (massar/runner.prefect_api). With them, each flow run waited up
        # to 1 s at its end for Prefect to join the heartbeat thread (30 flow runs: 38 s, 12 s
        # without), and a session runs hundreds.
        stack.enter_context(temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}))
        # For Prefect's own threads too, as the harness does for its API address.
        stack.enter_context(
            prefect.context._temporary_global_settings_context(
                prefect.context.SettingsContext.get()
            )
        )
        yield PREFECT_API_URL.value()


@pytest.fixture
def massar_home(tmp_path: Path):
    """A fresh, initialised home (folders, settings file, migrated SQLite database)."""
    from massar.home import init_home

    return init_home(tmp_path / "home")


@pytest.fixture(scope="session")
def province(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small clean province, generated once per test run."""
    from massar.synthetic import generate_province

    outdir = tmp_path_factory.mktemp("province")
    generate_province(outdir, schools=TEST_SCHOOLS, seed=TEST_SEED, year=TEST_YEAR)
    return outdir


@pytest.fixture(scope="session")
def defects_province(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small province with known defects and its ground_truth.csv, generated once."""
    from massar.synthetic import generate_province

    outdir = tmp_path_factory.mktemp("defects-province")
    generate_province(outdir, schools=TEST_SCHOOLS, seed=TEST_SEED, year=TEST_YEAR, defects=True)
    return outdir


@pytest.fixture(scope="session")
def night_home(prefect_server, province: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home after the province's first night (the nightly flow, on the session's Prefect
    server) with Massar's leaving records. The exchange, approval and operations tests each
    copy it (shutil.copytree) instead of running the same night again: never change it.
    Its ingest goes through the worker processes (small_night_files = 0), as a province's first
    night does: the province's ~900 files would otherwise stay in the flow's process."""
    import shutil

    from flows.nightly import nightly
    from massar.home import init_home

    settings = init_home(tmp_path_factory.mktemp("night-home") / "home")
    for school in sorted(p for p in province.iterdir() if p.is_dir() and p.name[:5].isdigit()):
        shutil.copytree(school, settings.inbox / school.name)
    nightly(settings.model_copy(update={"small_night_files": 0}))
    (settings.home / "reference").mkdir(exist_ok=True)
    shutil.copy(province / "leavers.csv", settings.home / "reference" / "leavers.csv")
    return settings.home


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server of the machine's binaries on a loopback port, for the whole run."""
    from tests.harness.postgres import PostgresServer, postgres_binaries

    if postgres_binaries() is None:
        pytest.fail(
            "PostgreSQL is not installed: run scripts/system-packages.sh (the README's "
            "test command does)."
        )
    with PostgresServer() as server:
        yield server.url


@pytest.fixture
def smtp() -> Iterator:
    """A real SMTP server (aiosmtpd) on a free 127.0.0.1 port: yields (mailbox, port)."""
    from tests.harness.smtp import smtp_server

    with smtp_server() as server:
        yield server


@pytest.fixture
def sftp_server() -> Iterator:
    """A real OpenSSH sshd on a free 127.0.0.1 port with a partner account (key only)."""
    from tests.harness import SftpServer, sshd_available

    if not sshd_available():
        pytest.fail(
            "OpenSSH's sshd is not installed: run scripts/system-packages.sh (the "
            "README's test command does)."
        )
    with SftpServer() as server:
        yield server


def _approver_waits() -> list[tuple[str, float]]:
    import sys

    approvers = sys.modules.get("tests.harness.approvers")
    return list(getattr(approvers, "waits", []))


def pytest_sessionfinish(session) -> None:
    """Under pytest-xdist, a worker hands its approver waits to the controller's summary."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["approver_waits"] = _approver_waits()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:  # pytest-xdist's hook, in the controller
    _workers_waits.extend(tuple(wait) for wait in node.workeroutput.get("approver_waits", []))


_workers_waits: list[tuple[str, float]] = []


def pytest_terminal_summary(terminalreporter) -> None:
    """Which tests asked an approver for more codes than the clock's step gives: the harness
    moved the platform's code clock on instead of waiting 30 s (tests/harness/approvers.py)."""
    moves = _approver_waits() + _workers_waits
    if moves:
        total = sum(steps for _, steps in moves)
        terminalreporter.write_line(
            f"approver codes: the code clock moved on {total:.0f} step(s) of 30 s, "
            f"for {len(moves)} code(s)"
        )
        for test, steps in moves:
            terminalreporter.write_line(f"  {steps:3.0f} step(s)  {test}")

"""PostgreSQL stopped and started under a handle that stays open (as a running flow's does):
the next statement reconnects, a lease held before the restart is still held and renewed,
and registering the same files again (a step retried after the restart) registers nothing
twice. The restart during a whole ingest and during a paused exchange on the stack is not
tested here (docs/operations.md says what happens)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.harness.postgres import PostgresServer, postgres_binaries
from warehouse.control import ControlDatabase, Submission, upgrade_database
from warehouse.leases import Holder, acquire, current_leases, renew
from warehouse.submissions import register_submissions


def restart(server: PostgresServer) -> None:
    """Stop PostgreSQL (connections cut, as a crash or a maintenance restart does) and start
    it again with the same data and options."""
    server._run(str(server.bin / "pg_ctl"), "-D", str(server.data), "-m", "fast", "-w", "stop")
    server._run(
        str(server.bin / "pg_ctl"),
        "-D",
        str(server.data),
        "-l",
        str(server.root / "server.log"),
        "-w",
        "-t",
        "60",
        "-o",
        f"-h 127.0.0.1 -p {server.port} -k {server.root}",
        "start",
    )


def arrival(index: int) -> dict:
    return {
        "school_code": "27783Y",
        "file_name": f"f{index}.csv",
        "sha256": f"{index:064x}",
        "size_bytes": 1,
        "archive_path": f"/archive/{index}",
    }


def test_a_restart_cuts_no_lease_and_registers_nothing_twice():
    if postgres_binaries() is None:
        pytest.fail("PostgreSQL is not installed: run scripts/system-packages.sh.")
    with PostgresServer() as server:
        upgrade_database(server.url)
        database = ControlDatabase(server.url)
        try:
            holder = Holder("host", 1, "run-before-restart", "ingest_submissions")
            assert acquire(database, "school:27783Y", holder, timedelta(minutes=2))
            first = register_submissions(database, [arrival(i) for i in range(4)])
            restart(server)
            # The step is retried after the restart: the same four files and four new ones.
            again = register_submissions(database, [arrival(i) for i in range(8)])
            assert again[:4] == first
            with database.session() as session:
                assert session.scalar(select(func.count()).select_from(Submission)) == 8
            assert renew(database, holder, timedelta(minutes=2)) == 1
            assert [h.run_id for h in current_leases(database, "school:")] == ["run-before-restart"]
        finally:
            database.dispose()

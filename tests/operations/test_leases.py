"""Leases in the control database, on SQLite and PostgreSQL: one holder at a time, a lease of
a holder that stopped renewing is taken over once expired (clock injected), and registering a
file is idempotent by (school, sha256) — what lets a run redo the work a dead one left."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.harness.postgres import fresh_control_database
from warehouse.control import Submission
from warehouse.leases import Holder, acquire, acquire_many, current_leases, release, renew
from warehouse.submissions import register_submissions, unfinished_files

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    handle = fresh_control_database(request, tmp_path, request.param)
    yield handle
    handle.dispose()


def holder(run: str) -> Holder:
    return Holder("host-a", 4242, run, "ingest_submissions")


def at_once(count: int, work: Callable[[int], None]) -> None:
    """``work(0)`` .. ``work(count - 1)``, each in a thread of its own, started together (a
    barrier), all joined."""
    start = threading.Barrier(count)

    def run(index: int) -> None:
        start.wait()
        work(index)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)


def test_one_holder_at_a_time_until_it_gives_back(database):
    first, second = holder("run-1"), holder("run-2")
    assert acquire(database, "warehouse", first, MINUTE, now=T0)
    assert not acquire(database, "warehouse", second, MINUTE, now=T0 + timedelta(seconds=30))
    assert acquire(database, "warehouse", first, MINUTE, now=T0 + timedelta(seconds=30))  # own
    [held] = current_leases(database, "warehouse", now=T0 + timedelta(seconds=31))
    assert (held.run_id, held.pid, held.host) == ("run-1", 4242, "host-a")
    assert "run-1" in held.sentence() and "process 4242 on host-a" in held.sentence()
    release(database, first)
    assert acquire(database, "warehouse", second, MINUTE, now=T0 + timedelta(seconds=32))


def test_a_holder_that_renews_keeps_it_one_that_died_loses_it(database):
    alive, dead, late = holder("alive"), holder("dead"), holder("late")
    assert acquire(database, "warehouse", alive, MINUTE, now=T0)
    assert acquire(database, "school:27783Y", dead, MINUTE, now=T0)
    for seconds in (40, 80, 120):  # the living run's heartbeat
        assert renew(database, alive, MINUTE, now=T0 + timedelta(seconds=seconds)) == 1
    later = T0 + timedelta(seconds=125)
    assert not acquire(database, "warehouse", late, MINUTE, now=later)
    assert acquire(database, "school:27783Y", late, MINUTE, now=later)  # expired: taken over
    # The dead run's heartbeat (were it to come back) no longer renews what was taken over.
    assert renew(database, dead, MINUTE, now=later) == 0
    release(database, dead)  # nor does giving back remove the new holder's lease
    assert [h.run_id for h in current_leases(database, "school:", now=later)] == ["late"]


def test_two_holders_asking_at_once_never_both_get_it(database):
    """Twenty threads, each its own holder, ask for an expired lease at the same instant."""
    assert acquire(database, "exchange:cnss", holder("old"), MINUTE, now=T0)
    later = T0 + timedelta(minutes=5)
    winners: list[str] = []

    def ask(index: int) -> None:
        if acquire(database, "exchange:cnss", holder(f"t{index}"), MINUTE, now=later):
            winners.append(f"t{index}")

    at_once(20, ask)
    assert len(winners) == 1
    assert [h.run_id for h in current_leases(database, "exchange:", now=later)] == winners


def test_a_batch_of_schools_is_taken_as_one_by_one(database):
    """An ingest claims its schools together (one transaction): it gets those nobody held,
    those whose holder died and its own, never one a living run holds; that run's lease stays
    as it was."""
    mine, alive, dead = holder("mine"), holder("alive"), holder("dead")
    assert acquire(database, "school:2", alive, MINUTE, now=T0)
    assert acquire(database, "school:3", dead, MINUTE, now=T0 - timedelta(minutes=5))
    assert acquire(database, "school:4", mine, MINUTE, now=T0)
    asked = ["school:5", "school:2", "school:3", "school:1", "school:4", "school:1"]
    later = T0 + timedelta(seconds=30)
    taken = acquire_many(database, asked, mine, MINUTE, now=later)
    assert taken == ["school:5", "school:3", "school:1", "school:4", "school:1"]
    held = {h.resource: h.run_id for h in current_leases(database, "school:", now=later)}
    assert held == {f"school:{n}": "mine" for n in (1, 3, 4, 5)} | {"school:2": "alive"}
    [renewed] = [h for h in current_leases(database, "school:4", now=later)]
    assert renewed.expires_at == later + MINUTE  # its own lease renewed, as acquire does


def test_runs_claiming_the_same_schools_at_once_share_them_out(database):
    """Eight runs claim the same forty schools at the same instant: each school goes to one
    run, and every school goes to some run (the runs that met another's insert asked again
    one by one)."""
    schools = [f"school:{n:05d}" for n in range(40)]
    claimed: dict[str, list[str]] = {}

    def claim(index: int) -> None:
        claimed[f"t{index}"] = acquire_many(database, schools, holder(f"t{index}"), MINUTE)

    at_once(8, claim)
    assert len(claimed) == 8
    every = [school for taken in claimed.values() for school in taken]
    assert sorted(every) == schools  # each once, none missing
    held = {h.resource: h.run_id for h in current_leases(database, "school:")}
    assert held == {school: run for run, taken in claimed.items() for school in taken}


def arrival(school: str, sha: str, name: str) -> dict:
    return {
        "school_code": school,
        "file_name": name,
        "sha256": sha * 64,
        "size_bytes": 10,
        "archive_path": f"/archive/{sha}",
    }


def test_registering_the_same_file_again_returns_its_submission(database):
    first = register_submissions(database, [arrival("27783Y", "a", "a.xlsx")])
    # A second run (or a run redoing a dead one's work) registers it again with a new one.
    again = register_submissions(
        database, [arrival("27783Y", "b", "b.xlsx"), arrival("27783Y", "a", "a.xlsx")]
    )
    assert again[1] == first[0] and again[0] != first[0]
    with database.session() as session:
        assert len(session.scalars(select(Submission)).all()) == 2
    # Both are only registered: the next run of the school does them again.
    assert set(unfinished_files(database, "27783Y").values()) == set(again)


def test_two_runs_registering_the_same_files_at_once_get_the_same_ids(database):
    rows = [arrival("27783Y", c, f"{c}.xlsx") for c in "abcdefgh"]
    results: list[list[int]] = []
    at_once(6, lambda _: results.append(register_submissions(database, rows)))
    assert len(results) == 6 and all(r == results[0] for r in results)
    with database.session() as session:
        assert len(session.scalars(select(Submission)).all()) == 8

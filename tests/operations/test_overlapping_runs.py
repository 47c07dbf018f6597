"""Runs that meet on one home, as real ``massar`` processes: two ingests, an ingest and the
nightly, an ingest SIGKILLed half-way whose school folders are taken over once its leases
expire. Every run ends with exit 0 (Completed), the one that found the work taken says so, and
every file is registered once, recorded, and staged once."""

from __future__ import annotations

import pytest

from tests.operations.runs import (
    check_ingested_once,
    fill_inbox,
    finish,
    frozen,
    kill,
    leases,
    runs,
    start,
    submissions,
    wait_until,
)

pytestmark = pytest.mark.slow
LEFT = "were being ingested by another run"


@pytest.fixture
def home(tmp_path, province):
    from massar.home import init_home

    settings = init_home(tmp_path / "home")
    return settings.home, fill_inbox(settings.home, province)


def test_two_ingests_share_the_inbox_and_both_complete(home, prefect_server):
    path, files = home
    first = start(path, prefect_server, "ingest")
    # The second runs once the first has claimed its school folders (not after a guess), the
    # first frozen meanwhile.
    with frozen(first, path, lambda: leases(path, "school:")):
        code_2, out_2, err_2 = finish(start(path, prefect_server, "ingest"))
    code_1, out_1, err_1 = finish(first)
    assert (code_1, code_2) == (0, 0), err_1[-2000:] + err_2[-2000:]
    assert "IntegrityError" not in err_1 + err_2
    # The second found every school claimed: it left them to the first and said so.
    assert LEFT in out_2 and "left to it" in out_2, out_2
    assert LEFT not in out_1
    check_ingested_once(path, files)
    recorded = runs(path, "ingest_submissions")
    assert [r.state for r in recorded] == ["completed", "completed"]
    assert any(LEFT in (r.summary or {}).get("note", "") for r in recorded)
    assert leases(path) == []  # both gave their leases back


def test_the_nightly_during_an_ingest_consolidates_what_is_recorded(home, prefect_server):
    path, files = home
    ingest = start(path, prefect_server, "ingest")
    with frozen(ingest, path, lambda: leases(path, "school:")):
        code_n, out_n, err_n = finish(start(path, prefect_server, "nightly"))
    code_i, _, err_i = finish(ingest)
    assert (code_i, code_n) == (0, 0), err_i[-2000:] + err_n[-2000:]
    assert LEFT in out_n and "Night " in out_n, out_n
    check_ingested_once(path, files)
    # The next nightly consolidates what the ingest recorded meanwhile: nothing is lost.
    code, out, err = finish(start(path, prefect_server, "nightly"))
    assert code == 0, err[-2000:]
    assert LEFT not in out
    assert all(s.consolidated_at is not None for s in submissions(path) if s.state == "accepted")
    assert [r.state for r in runs(path, "nightly")] == ["completed", "completed"]


def test_an_ingest_killed_half_way_is_taken_over_once_its_leases_expire(home, prefect_server):
    path, files = home
    short = {"MASSAR_LEASES__EXPIRY_SECONDS": "5"}
    doomed = start(path, prefect_server, "ingest", **short)

    def half_way() -> bool:  # files registered, not recorded yet: the worst moment
        return any(s.state == "received" for s in submissions(path))

    with frozen(doomed, path, half_way):  # caught at that moment, however fast it is
        kill(doomed)
    left = [s for s in submissions(path) if s.state == "received"]
    held = leases(path, "school:")
    assert left and held  # the dead run's leases are still there, for at most 5 s
    # Nobody renews them: they expire (read from the database, not slept on).
    wait_until(lambda: not leases(path, "school:"), 60, "the dead run's leases expire")
    code, out, err = finish(start(path, prefect_server, "ingest", **short))
    assert code == 0, err[-2000:]
    assert LEFT not in out
    check_ingested_once(path, files)
    # The files the dead run registered kept their submission ids, now recorded.
    states = {s.submission_id: s.state for s in submissions(path)}
    assert all(states[s.submission_id] != "received" for s in left)

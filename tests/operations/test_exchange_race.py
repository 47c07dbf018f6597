"""Two exchanges for one fund on one home, as real ``massar exchange run cnss`` processes: the
first prepares the fund's request and waits for its approval, holding the fund's exchange; the
second, started meanwhile, waits its bounded time for the fund, then ends Completed (exit 0)
with a sentence saying which run holds it; nothing is prepared twice. Once approved, the first
delivers the batch once, and a later run finds nothing new."""

from __future__ import annotations

import time

import pytest

from ground.settings import load_settings
from massar.runner import approve_batch
from tasks.approval_rules import Claim
from tasks.batch_preparation import batch_summary
from tests.harness.approvers import PREPARER, PREPARER_ACCOUNT, code
from tests.harness.prefect_runs import wait_paused
from tests.operations.runs import batches, delivered, finish, leases, start, wait_until

pytestmark = pytest.mark.slow


def test_a_second_exchange_for_the_fund_waits_then_completes_and_prepares_nothing(
    exchange_home, prefect_server
):
    home, env = exchange_home
    first = start(home, prefect_server, "exchange", "run", "cnss", **env)
    try:
        waiting = wait_until(
            lambda: [b for b in batches(home) if b.state == "waiting_approval"],
            600,
            "the first run prepares the batch and waits for its approval",
        )
        [batch] = waiting  # type: ignore[misc]
        wait_paused(batch.flow_run_id, time.monotonic() + 120)
        assert [h.resource for h in leases(home, "exchange:")] == ["exchange:cnss"]

        # The second run: a terminal's 'massar exchange run cnss' meanwhile, waiting 3 s.
        second = start(
            home, prefect_server, "exchange", "run", "cnss", MASSAR_LEASES__WAIT_SECONDS="3", **env
        )
        code_2, out_2, err_2 = finish(second, timeout=300)
        assert code_2 == 0, err_2[-3000:]
        assert "Traceback" not in out_2 + err_2
        assert "The exchange with CNSS is held by" in out_2, out_2
        assert "waited 3 s" in out_2 and "ended without doing its work" in out_2, out_2
        assert "No new request" not in out_2
        # Nothing prepared twice: one batch, still waiting for its decision.
        assert [(b.batch_id, b.state) for b in batches(home)] == [
            (batch.batch_id, "waiting_approval")
        ]

        # The approver decides; the first run goes on and delivers the batch once.
        settings = load_settings(home)
        claim = Claim("cli", code=code(home, PREPARER), os_account=PREPARER_ACCOUNT)
        said = approve_batch(settings, batch.batch_id, claim, True, "checked the counts")
        assert "goes on now" in said, said
        code_1, out_1, err_1 = finish(first, timeout=600)
    finally:
        if first.poll() is None:
            first.kill()
    assert code_1 == 0, err_1[-3000:]
    assert f"Batch {batch.batch_id}" in out_1
    summary = batch_summary(settings, batch.batch_id)
    assert summary["state"] == "delivered"
    inbox = home / "exchange" / "cnss" / settings.partners["cnss"].remote_inbox
    assert sorted(p.name for p in inbox.iterdir()) == sorted(summary["files"])
    assert sorted(delivered(home)) == sorted(summary["files"])
    assert leases(home) == []

    # A later run: the request is answered, nothing new to prepare or deliver.
    code_3, out_3, err_3 = finish(start(home, prefect_server, "exchange", "run", "cnss", **env))
    assert code_3 == 0, err_3[-3000:]
    assert "held by" not in out_3  # the fund was given back when the first run ended
    assert len(batches(home)) == 1
    assert sorted(delivered(home)) == sorted(summary["files"])

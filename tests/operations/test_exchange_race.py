"""Two exchanges for one fund on one home, as real ``massar exchange run cnss`` processes: the
first prepares the fund's request and waits for its approval, holding the fund's exchange; the
second, started meanwhile, waits its bounded time for the fund, then ends Completed (exit 0)
with a sentence saying which run holds it; nothing is prepared twice. Once approved, the first
delivers the batch once, and a later run finds nothing new."""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from connectors.signing import make_test_certificate
from flows.nightly import nightly
from ground.settings import load_settings
from massar.home import init_home
from massar.runner import approve_batch
from tasks.approval_rules import Claim
from tasks.exchange import batch_summary
from tests.harness.approvers import PREPARER, PREPARER_ACCOUNT, code, enrol_test_approvers
from tests.harness.prefect_runs import wait_paused
from tests.operations.runs import database, finish, leases, start, wait_until
from warehouse.control import ExchangeBatch
from warehouse.exchange import message_log

pytestmark = pytest.mark.slow
YEAR = "2023-2024"


@pytest.fixture
def exchange_home(prefect_server, province, tmp_path) -> tuple[Path, dict[str, str]]:
    """A home whose warehouse holds the province (one night), with Massar's leaving records,
    a signing identity, the tests' approvers and a CNSS request in the fund's outbox (the
    embedded mode's folder); the environment the ``massar`` processes run with."""
    settings = init_home(tmp_path / "home")
    for school in sorted(p for p in province.iterdir() if p.is_dir() and p.name[:5].isdigit()):
        shutil.copytree(school, settings.inbox / school.name)
    nightly(settings)
    (settings.home / "reference").mkdir(exist_ok=True)
    shutil.copy(province / "leavers.csv", settings.home / "reference" / "leavers.csv")
    now = datetime.now(UTC)
    key, certificate = make_test_certificate(
        settings.home / "keys", now - timedelta(days=1), now + timedelta(days=30), "Tiznit"
    )
    enrol_test_approvers(settings.home)
    outbox = settings.exchange / "cnss" / settings.partners["cnss"].remote_outbox
    outbox.mkdir(parents=True, exist_ok=True)
    request = province / "partners" / "cnss" / f"CNSS_SCOL_{YEAR}_0001.csv"
    shutil.copy(request, outbox / request.name)
    env = {
        "MASSAR_SIGNING_KEY": str(key),
        "MASSAR_SIGNING_CERTIFICATE": str(certificate),
        "MASSAR_APPROVAL_POLL_SECONDS": "1",
        "MASSAR_APPROVAL_TIMEOUT_HOURS": "0.25",  # a test that fails must not hang
    }
    return settings.home, env


def batches(home: Path) -> list[ExchangeBatch]:
    handle = database(home)
    try:
        with handle.session() as session:
            return list(session.scalars(select(ExchangeBatch)))
    finally:
        handle.dispose()


def delivered(home: Path) -> list[str]:
    handle = database(home)
    try:
        return [
            e["file_name"]
            for e in message_log(handle)
            if not e["file_name"].startswith(("decision:", "refused:", "review-decision:"))
        ]
    finally:
        handle.dispose()


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

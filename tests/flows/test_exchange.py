"""The partner exchange end to end, under Prefect, against a real OpenSSH sshd: a request fetched
from the fund's outbox, a batch prepared and signed, a person's decision inside the flow (the
terminal's 'massar approve' and Prefect's form), delivery, acknowledgement, reconciliation; a
rejection, an approval timeout, an expired certificate, a cut connection and a re-run."""

from __future__ import annotations

import contextvars
import json
import os
import shutil
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.exchange.acknowledgement import ChildOutcome, build_acknowledgement
from connectors.exchange.file_names import acknowledgement_file_name
from connectors.exchange.registry import profile_for
from connectors.signing import make_test_certificate
from flows.exchange import exchange
from ground.approvers import current_os_account
from ground.errors import RequestsUnanswered
from ground.funds import FUND_KEYS
from ground.settings import PartnerSettings, load_settings
from massar.runner import approve_batch
from tasks.acknowledgements import reconciliation
from tasks.approval_rules import Claim
from tasks.batch_preparation import batch_summary
from tasks.exchange_batches import batch_folder
from tests.harness.approvers import (
    APPROVER,
    PREPARER,
    PREPARER_ACCOUNT,
    code,
    enrol_test_approvers,
)
from tests.harness.prefect_runs import wait_paused
from warehouse.approval_records import refused_attempts
from warehouse.control import ControlDatabase
from warehouse.message_log import message_log
from warehouse.message_log_evidence import verify_message_log

YEAR = "2023-2024"


@pytest.fixture(scope="module")
def consolidated(night_home) -> Path:
    """A home whose warehouse holds the generated province (one night), with Massar's leaving
    records (the session's, tests/conftest.py); copied by each test so that their batches
    stay apart."""
    return night_home


def _settings(home: Path, partner: PartnerSettings | None = None, fund: str = "cnss", **changes):
    now = datetime.now(UTC)
    key, certificate = make_test_certificate(
        home / "keys",
        changes.pop("not_before", now - timedelta(days=1)),
        changes.pop("not_after", now + timedelta(days=30)),
        "Direction provinciale de Tiznit",
    )
    settings = load_settings(home)
    enrol_test_approvers(home)  # APPROVER under this account, PREPARER under another
    values = {
        "signing_key": key,
        "signing_certificate": certificate,
        "approval_poll_seconds": 1,
        "approval_timeout_hours": 120 / 3600,  # a decider that fails must not hang the suite
    }
    if partner is not None:
        values["partners"] = {**settings.partners, fund: partner}
    values.update(changes)
    return settings.model_copy(update=values)


@pytest.fixture
def home(consolidated, tmp_path) -> Path:
    target = tmp_path / "home"
    shutil.copytree(consolidated, target)
    return target


def _partner(server, fund: str = "cnss", **changes) -> PartnerSettings:
    values = {
        "host": server.host,
        "port": server.port,
        "username": server.username,
        "private_key": server.client_key_path,
        "host_key": server.known_hosts_line,
        "remote_inbox": server.remote_inbox,
        "remote_outbox": server.remote_outbox,
        "timeout_seconds": 10,
        "delivery_attempts": 3,
        "delivery_backoff_seconds": 0.05,
        "legal_basis": f"Convention MEN-{fund.upper()} (test)",
        "age_windows": {
            "family_allowance": (12, 21),
            "survivor_pension": (16, 21),
            "orphan_pension": (16, 21),
        },
    }
    values.update(changes)
    return PartnerSettings(**values)


def _request(province: Path, fund: str = "cnss") -> Path:
    return province / "partners" / fund / f"{fund.upper()}_SCOL_{YEAR}_0001.csv"


def _decide_when_waiting(settings, decide, timeout: float = 90.0) -> threading.Thread:
    """In another thread, as a person would: wait for the batch to wait, then decide."""

    def run() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            database = ControlDatabase(settings.resolved_database_url)
            try:
                with database.session() as session:
                    from sqlalchemy import select

                    from warehouse.control import ExchangeBatch

                    waiting = session.scalars(
                        select(ExchangeBatch.batch_id).where(
                            ExchangeBatch.state == "waiting_approval"
                        )
                    ).first()
            finally:
                database.dispose()
            if waiting:
                wait_paused(batch_summary(settings, waiting)["flow_run_id"], deadline)
                try:
                    decide(waiting)
                except BaseException as error:  # the test reads it
                    failures.append(error)
                return
            time.sleep(0.3)

    failures: list[BaseException] = []
    # The thread sees the test's Prefect server (a context variable threads do not inherit).
    thread = threading.Thread(target=contextvars.copy_context().run, args=(run,), daemon=True)
    thread.failures = failures  # type: ignore[attr-defined]
    thread.start()
    return thread


def terminal(settings, name: str = APPROVER) -> Claim:
    """``name`` at the platform's terminal: their account and their current code (APPROVER's
    account is the one running the tests)."""
    account = current_os_account() if name == APPROVER else PREPARER_ACCOUNT
    return Claim("cli", code=code(settings.home, name), os_account=account)


def form_input(settings, name: str, approve: bool, comment: str = "") -> dict:
    """What ``name`` types in the paused run's form, their current code included."""
    return {
        "approver": name,
        "code": code(settings.home, name),
        "approve": approve,
        "comment": comment,
    }


def delivered_entries(database) -> list[str]:
    """The message log's entries of delivered files (decisions and refusals set apart)."""
    return [
        e["file_name"]
        for e in message_log(database)
        if not e["file_name"].startswith(("decision:", "refused:", "review-decision:"))
    ]


def _run_exchange(settings, fund: str = "cnss"):
    return exchange(fund, settings, prepared_by=PREPARER)


@pytest.mark.parametrize("fund", FUND_KEYS)
def test_a_request_is_answered_approved_delivered_acknowledged_and_reconciled(
    home, province, sftp_server, fund
):
    settings = _settings(home, _partner(sftp_server, fund), fund)
    request = _request(province, fund)
    shutil.copy(request, sftp_server.outbox / request.name)
    outcome: dict = {}
    decider = _decide_when_waiting(
        settings,
        lambda batch: outcome.setdefault(
            "cli", approve_batch(settings, batch, terminal(settings), True, "checked the counts")
        ),
    )
    result = _run_exchange(settings, fund)
    decider.join(30)
    assert not decider.is_alive() and decider.failures == []

    assert "goes on now" in outcome["cli"]  # the terminal's decision resumed the paused run
    [batch] = result["batches"]
    assert batch["state"] == "approved"
    summary = batch_summary(settings, batch["batch_id"])
    assert summary["decision"]["approver"] == APPROVER
    assert summary["decision"]["covered_sha256"] == summary["manifest_sha256"]
    assert summary["state"] == "delivered"
    assert summary["prepared_by"] == PREPARER
    # Delivered exactly as prepared: every file under its final name, nothing temporary.
    delivered = sorted(os.listdir(sftp_server.inbox))
    assert delivered == sorted(summary["files"])
    folder = batch_folder(settings, fund, batch["batch_id"])
    for name in delivered:
        assert (sftp_server.inbox / name).read_bytes() == (folder / name).read_bytes()
    # The answers agree with the generator's ground truth on what matters most.
    expected = {
        row.split(",")[0]: row.split(",")[1]
        for row in (request.parent / "expected.csv").read_text().splitlines()[1:]
    }
    answered = {
        r["fund_reference"]: r["answered"] for r in reconciliation(settings, batch["batch_id"])
    }
    assert set(answered) == set(expected)
    false_not_schooled = [
        ref
        for ref, status in answered.items()
        if status == "NOT_SCHOOLED" and expected[ref] != "NOT_SCHOOLED"
    ]
    assert false_not_schooled == []
    # The signed XML is what an independent tool accepts.
    xml = next(folder / n for n in summary["files"] if n.endswith(".xml"))
    checked = subprocess.run(
        ["xmlsec1", "--verify", "--trusted-pem", str(settings.signing_certificate), str(xml)],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stderr

    # The fund acknowledges: one child rejected; the next run reconciles it.
    profile = profile_for(fund)
    xml_name = xml.name
    refused = sorted(answered)[0]
    ack = build_acknowledgement(
        profile,
        batch["batch_id"],
        summary["sequence"],
        xml_name,
        summary["files"][xml_name],
        [
            ChildOutcome(ref, ref != refused, "" if ref != refused else "reference inconnue")
            for ref in answered
        ],
        datetime.now(UTC),
    )
    ack_name = acknowledgement_file_name(profile, summary["school_year"], summary["sequence"])
    (sftp_server.outbox / ack_name).write_bytes(ack)
    again = _run_exchange(settings, fund)
    assert again["batches"] == [] and again["overdue"] == []
    [recorded] = again["acknowledgements"]
    assert recorded["bound"] and recorded["rejected"] == 1
    assert recorded["accepted"] == len(answered) - 1
    rows = {r["fund_reference"]: r for r in reconciliation(settings, batch["batch_id"])}
    assert (
        rows[refused]["outcome"] == "rejected" and rows[refused]["reason"] == "reference inconnue"
    )
    assert {r["outcome"] for ref, r in rows.items() if ref != refused} == {"accepted"}
    assert batch_summary(settings, batch["batch_id"])["state"] == "acknowledged"
    # Nothing was sent twice, and the message log holds each file once, intact.
    database = ControlDatabase(settings.resolved_database_url)
    try:
        assert sorted(delivered_entries(database)) == delivered
        assert next(e["file_name"] for e in message_log(database)) == "decision:approved"
        assert verify_message_log(database).intact
    finally:
        database.dispose()
    assert sorted(os.listdir(sftp_server.inbox)) == delivered
    # An auditor's evidence of what was sent, from the command line.
    from massar.cli import main
    from warehouse.message_log_evidence import check_evidence

    evidence = home / "evidence.json"
    assert main(["exchange", "evidence", "--to", str(evidence), "--home", str(home)]) == 0
    assert check_evidence(evidence) == []
    document = json.loads(evidence.read_text())
    assert (
        sorted(
            e["file_name"]
            for e in document["entries"]
            if not e["file_name"].startswith("decision:")
        )
        == delivered
    )
    [decided] = document["decisions"]
    assert (decided["approver"], decided["identity_method"]) == (APPROVER, "os-account+totp")


def test_the_preparer_cannot_approve_and_a_form_from_an_outsider_is_refused(
    home, province, sftp_server
):
    from prefect.flow_runs import resume_flow_run

    settings = _settings(home, _partner(sftp_server))
    shutil.copy(_request(province), sftp_server.outbox / _request(province).name)
    seen: dict = {}

    def decide(batch: str) -> None:
        from tasks.approval_rules import DecisionRefused

        with pytest.raises(DecisionRefused, match="prepared batch"):
            approve_batch(settings, batch, terminal(settings, PREPARER), True, "")
        run_id = batch_summary(settings, batch)["flow_run_id"]
        paused = wait_paused(run_id, time.monotonic() + 60)
        # Prefect's form, filled by somebody not on the approvers list: refused, still waiting.
        resume_flow_run(run_id, run_input={"approver": "Intrus", "code": "123456", "approve": True})
        # The run read the form and paused again (a new pause): the refusal is on record.
        again = wait_paused(run_id, time.monotonic() + 60, other_than=paused)
        seen["state_after_outsider"] = batch_summary(settings, batch)["state"]
        # Then an approver rejects it through the form, with her code.
        resume_flow_run(run_id, run_input=form_input(settings, APPROVER, False, "doute"))
        seen["last_pause"] = again

    decider = _decide_when_waiting(settings, decide)
    result = _run_exchange(settings)
    decider.join(30)
    assert not decider.is_alive() and decider.failures == []
    assert seen["state_after_outsider"] == "waiting_approval"
    [batch] = result["batches"]
    assert batch["state"] == "rejected"
    database = ControlDatabase(settings.resolved_database_url)
    try:
        refusals = [(a["channel"], a["claimed"], a["reason"]) for a in refused_attempts(database)]
        assert verify_message_log(database).intact
    finally:
        database.dispose()
    assert refusals == [("cli", PREPARER, "preparer"), ("prefect-ui", "Intrus", "unlisted-name")]
    summary = batch_summary(settings, batch["batch_id"])
    assert summary["decision"]["channel"] == "prefect-ui"
    assert summary["decision"]["approver"] == APPROVER
    assert os.listdir(sftp_server.inbox) == []  # rejected: nothing delivered
    assert result["deliveries"] == []


def test_a_batch_nobody_decides_on_expires_without_delivery(home, province, sftp_server):
    # No time to decide at all: the run expires the batch at once (the clock's side of the
    # rule, before the deadline and after it, is tested on expire_batch with an injected now).
    settings = _settings(home, _partner(sftp_server), approval_timeout_hours=0)
    shutil.copy(_request(province), sftp_server.outbox / _request(province).name)
    result = _run_exchange(settings)
    [batch] = result["batches"]
    assert batch["state"] == "expired"
    summary = batch_summary(settings, batch["batch_id"])
    assert summary["decision"]["decision"] == "expired"
    assert os.listdir(sftp_server.inbox) == []
    # A late decision is refused: the batch is over.
    from tasks.approval_rules import DecisionRefused

    with pytest.raises(DecisionRefused, match="not waiting for approval any more"):
        approve_batch(settings, batch["batch_id"], terminal(settings), True, "")


def test_an_expired_certificate_is_refused_in_one_sentence_and_nothing_is_prepared(
    home, province, sftp_server
):
    now = datetime.now(UTC)
    settings = _settings(
        home,
        _partner(sftp_server),
        not_before=now - timedelta(days=400),
        not_after=now - timedelta(days=35),
    )
    shutil.copy(_request(province), sftp_server.outbox / _request(province).name)
    with pytest.raises(RequestsUnanswered) as failed:  # the run fails: schedulers see it
        _run_exchange(settings)
    result = failed.value.summary
    assert result["batches"] == []
    [problem] = result["problems"]
    assert "certificate" in problem and "\n" not in problem and str(failed.value) == problem
    assert os.listdir(sftp_server.inbox) == []


def test_a_delivery_cut_off_completes_on_the_next_run_and_sends_nothing_twice(
    home, province, sftp_server
):
    settings = _settings(home, _partner(sftp_server))
    shutil.copy(_request(province), sftp_server.outbox / _request(province).name)
    decider = _decide_when_waiting(
        settings,
        lambda batch: (
            sftp_server.go_offline(),  # the fund's server goes down while the batch waits
            approve_batch(settings, batch, terminal(settings), True, ""),
        ),
    )
    with pytest.raises(Exception, match="could not be delivered"):
        _run_exchange(settings)
    decider.join(30)
    assert not decider.is_alive() and decider.failures == []
    sftp_server.start()
    result = _run_exchange(settings)
    [delivery] = result["deliveries"]
    assert delivery["sent"] and not delivery["already_delivered"]
    batch_id = delivery["batch_id"]
    assert batch_summary(settings, batch_id)["state"] == "delivered"
    again = _run_exchange(settings)
    assert again["deliveries"] == [] and again["batches"] == []
    database = ControlDatabase(settings.resolved_database_url)
    try:
        names = delivered_entries(database)
    finally:
        database.dispose()
    assert sorted(names) == sorted(set(names)) == sorted(os.listdir(sftp_server.inbox))


def test_a_changed_host_key_stops_the_exchange_with_a_clear_sentence(home, province, sftp_server):
    settings = _settings(home, _partner(sftp_server))
    shutil.copy(_request(province), sftp_server.outbox / _request(province).name)
    sftp_server.rotate_host_key()
    with pytest.raises(Exception) as raised:
        _run_exchange(settings)
    message = str(raised.value)
    assert "host key" in message and "\n" not in message
    assert os.listdir(sftp_server.inbox) == []

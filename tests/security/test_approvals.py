"""Issue 15, attack 1: four eyes by typed name. Each way a person got a batch out without being
a verified approver other than its preparer is tried again, and refused, under Prefect and
against a real OpenSSH sshd; every refusal is in the hash-chained message log; an approver
who proves who they are still gets the batch delivered.

* the preparer runs 'massar approve BATCH --by "<another listed name>"' (even with that
  person's valid code);
* MASSAR_APPROVERS='["Mallory"]' (or approvers = [...] in massar.toml) and --by Mallory;
* a listed name typed without a code (terminal and form);
* a code used once, used again;
* Prefect's form with a wrong code (another approver's, or none);
* an approval written into the control database without a verified identity (delivery
  compared the approver only with its own record): delivery refuses it.
"""

from __future__ import annotations

import os
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest
from sqlalchemy import update

from ground.approvers import current_os_account
from ground.errors import OperatorError
from massar.cli import main
from tasks.approval_rules import Claim, DecisionRefused
from tasks.batch_decisions import record_decision
from tasks.batch_delivery import deliver_approved
from tasks.batch_preparation import batch_summary, prepare_batch
from tasks.exchange_review import review_state
from tests.flows.test_exchange import (
    _decide_when_waiting,
    _partner,
    _request,
    _settings,
    form_input,
)
from tests.harness.approvers import (
    APPROVER,
    PREPARER,
    code,
    enrol_test_approvers,
)
from tests.harness.prefect_runs import wait_paused
from tests.harness.warehouse_home import pupils_warehouse_home
from warehouse.approval_records import refused_attempts
from warehouse.control import Approval, ControlDatabase, ExchangeBatch
from warehouse.message_log import message_log
from warehouse.message_log_evidence import verify_message_log


@pytest.fixture(scope="module")
def consolidated_home(night_home) -> Path:
    """A home whose warehouse holds the generated province (one night), with Massar's leaving
    records (the session's, tests/conftest.py); copied by each test."""
    return night_home


@pytest.fixture
def home(consolidated_home, tmp_path) -> Path:
    target = tmp_path / "home"
    shutil.copytree(consolidated_home, target)
    return target


def _cli(capsys, *args: str) -> tuple[int, str]:
    exit_code = main(list(args))
    captured = capsys.readouterr()
    return exit_code, " ".join((captured.out + captured.err).split())


def _refusals(settings) -> list[tuple[str, str, str]]:
    """(channel, who asked, reason) of every refused attempt, oldest first; the message log
    holds each of them and is intact."""
    database = ControlDatabase(settings.resolved_database_url)
    try:
        attempts = refused_attempts(database)
        logged = {
            e["sha256"] for e in message_log(database) if e["file_name"].startswith("refused:")
        }
        assert {a["digest"] for a in attempts} == logged
        assert verify_message_log(database).intact
    finally:
        database.dispose()
    return [(a["channel"], a["claimed"], a["reason"]) for a in attempts]


def test_the_preparer_at_the_terminal_cannot_approve_under_any_name_and_an_approver_can(
    home, province, sftp_server, capsys, monkeypatch
):
    """The run is started from this terminal (prepared_by: this OS account, which is
    APPROVER's): every terminal attempt of this account is refused; PREPARER (here the other
    approver, who did not start the run) approves in the form with his code: delivered."""
    from prefect.flow_runs import resume_flow_run

    from flows.exchange import exchange

    settings = _settings(home, _partner(sftp_server))
    # Mallory named an approver in massar.toml and in the environment: neither is read.
    settings_file = home / "massar.toml"
    settings_file.write_text(
        'approvers = ["Mallory"]\n' + settings_file.read_text(encoding="utf-8"), encoding="utf-8"
    )
    monkeypatch.setenv("MASSAR_APPROVERS", '["Mallory"]')
    shutil.copy(_request(province), sftp_server.outbox / _request(province).name)
    seen: dict = {}

    def decide(batch: str) -> None:
        run_id = batch_summary(settings, batch)["flow_run_id"]
        said = {}
        # Another listed person's name, even with that person's valid code.
        said["other name"] = _cli(
            capsys,
            "approve",
            batch,
            "--by",
            PREPARER,
            "--code",
            code(home, PREPARER),
            "--home",
            str(home),
        )
        # As themselves, with their own valid code: they started the run.
        said["preparer"] = _cli(
            capsys, "approve", batch, "--code", code(home, APPROVER), "--home", str(home)
        )
        # Mallory of the environment and of massar.toml.
        said["mallory"] = _cli(
            capsys, "approve", batch, "--by", "Mallory", "--code", "123456", "--home", str(home)
        )
        # A name and no code at all.
        said["no code"] = _cli(capsys, "approve", batch, "--by", APPROVER, "--home", str(home))
        seen["said"] = said
        seen["state"] = batch_summary(settings, batch)["state"]
        # The form: Mallory again, then a listed approver who did not start the run.
        paused = wait_paused(run_id, time.monotonic() + 60)
        resume_flow_run(UUID(run_id), run_input={"approver": "Mallory", "code": "123456"})
        again = wait_paused(run_id, time.monotonic() + 60, other_than=paused)
        resume_flow_run(UUID(run_id), run_input=form_input(settings, PREPARER, True, "vu"))
        seen["paused"] = again

    decider = _decide_when_waiting(settings, decide)
    result = exchange("cnss", settings)  # started here: prepared by this OS account
    decider.join(60)
    assert not decider.is_alive() and decider.failures == []

    said = seen["said"]
    assert said["other name"][0] == 1
    assert f"which is {APPROVER}'s account, not {PREPARER}'s" in said["other name"][1]
    assert said["preparer"][0] == 1 and f"{APPROVER} prepared batch" in said["preparer"][1]
    assert said["mallory"][0] == 1 and "not Mallory's" in said["mallory"][1]
    assert said["no code"][0] == 1 and f"needs {APPROVER}'s current code" in said["no code"][1]
    assert all("Traceback" not in text for _, text in said.values())
    assert seen["state"] == "waiting_approval"
    me = f"os:{current_os_account()}"
    assert _refusals(settings) == [
        ("cli", f"{me} as {PREPARER}", "name-mismatch"),
        ("cli", APPROVER, "preparer"),
        ("cli", f"{me} as Mallory", "name-mismatch"),
        ("cli", APPROVER, "no-code"),
        ("prefect-ui", "Mallory", "unlisted-name"),
    ]
    [batch] = result["batches"]
    summary = batch_summary(settings, batch["batch_id"])
    assert summary["prepared_by"] == me
    assert summary["state"] == "delivered"
    assert (summary["decision"]["approver"], summary["decision"]["channel"]) == (
        PREPARER,
        "prefect-ui",
    )
    assert sorted(os.listdir(sftp_server.inbox)) == sorted(summary["files"])


def test_the_form_refuses_a_wrong_a_missing_and_a_replayed_code(home, province, sftp_server):
    """Prefect's login is shared: the form's name proves nothing without that person's code."""
    from prefect.flow_runs import resume_flow_run

    from flows.exchange import exchange

    settings = _settings(home, _partner(sftp_server))
    shutil.copy(_request(province), sftp_server.outbox / _request(province).name)
    seen: dict = {}

    def decide(batch: str) -> None:
        run_id = batch_summary(settings, batch)["flow_run_id"]
        paused = wait_paused(run_id, time.monotonic() + 60)

        def submit(run_input: dict) -> None:
            nonlocal paused
            resume_flow_run(UUID(run_id), run_input=run_input)
            paused = wait_paused(run_id, time.monotonic() + 60, other_than=paused)

        # A listed name, no code.
        submit({"approver": APPROVER, "approve": True})
        # A listed name with another approver's valid code.
        submit({"approver": APPROVER, "code": code(home, PREPARER), "approve": True})
        # The preparer, with his own valid code.
        submit(form_input(settings, PREPARER, True))
        # APPROVER decides a REVIEW child with her code (accepted: the batch is signed again)...
        child = review_state(settings, batch).queue.children[0]
        used = code(home, APPROVER)
        form = {"approver": APPROVER, "code": used, "approve": False}
        schema_child = f"child_{child.item}"
        from tasks.exchange_review import approval_form, form_description

        state = review_state(settings, batch)
        labels = approval_form(state, form_description(state, "")).children[schema_child][1]
        not_found = next(label for label, choice in labels.items() if choice == "not-found")
        submit({**form, schema_child: not_found})
        seen["manifest_after_review"] = batch_summary(settings, batch)["manifest_sha256"]
        # ... and whoever saw that code sends it again to approve: replayed.
        submit({"approver": APPROVER, "code": used, "approve": True})
        seen["state"] = batch_summary(settings, batch)["state"]
        resume_flow_run(UUID(run_id), run_input=form_input(settings, APPROVER, True, "ok"))

    decider = _decide_when_waiting(settings, decide)
    result = exchange("cnss", settings, prepared_by=PREPARER)
    decider.join(60)
    assert not decider.is_alive() and decider.failures == []
    assert seen["state"] == "waiting_approval"
    assert _refusals(settings) == [
        ("prefect-ui", APPROVER, "no-code"),
        ("prefect-ui", APPROVER, "wrong-code"),
        ("prefect-ui", PREPARER, "preparer"),
        ("prefect-ui", APPROVER, "replayed-code"),
    ]
    [batch] = result["batches"]
    summary = batch_summary(settings, batch["batch_id"])
    assert summary["state"] == "delivered"
    decision = summary["decision"]
    assert (decision["approver"], decision["covered_sha256"]) == (
        APPROVER,
        summary["manifest_sha256"],
    )
    assert summary["manifest_sha256"] == seen["manifest_after_review"]


# ---- delivery re-checks the decision ---------------------------------------------------------


@pytest.fixture(scope="module")
def warehouse_home(province, tmp_path_factory):
    return pupils_warehouse_home(province, tmp_path_factory.mktemp("security") / "home").home


@pytest.fixture
def waiting_batch(warehouse_home, province, tmp_path):
    """(settings, batch id): a CNSS batch prepared by PREPARER, waiting; no Prefect run."""
    from connectors.signing import make_test_certificate
    from ground.settings import load_settings

    target = tmp_path / "home"
    shutil.copytree(warehouse_home, target)
    now = datetime.now(UTC)
    key, certificate = make_test_certificate(
        target / "keys", now - timedelta(days=1), now + timedelta(days=30), "Direction (test)"
    )
    settings = load_settings(target).model_copy(
        update={"signing_key": key, "signing_certificate": certificate}
    )
    enrol_test_approvers(target)
    request = province / "partners" / "cnss" / "CNSS_SCOL_2023-2024_0001.csv"
    return settings, prepare_batch(settings, "cnss", request, PREPARER)["batch_id"]


def _inbox(settings):
    return settings.exchange / "cnss" / settings.partners["cnss"].remote_inbox.strip("/")


def _approve_in_the_database(settings, batch_id: str, **values) -> None:
    """What the environment's approvers list let through before: an approval on record that
    no verified person made."""
    database = ControlDatabase(settings.resolved_database_url)
    try:
        with database.session() as session:
            batch = session.get(ExchangeBatch, batch_id)
            session.add(
                Approval(
                    batch_id=batch_id,
                    decision="approved",
                    covered_sha256=batch.manifest_sha256,
                    channel="cli",
                    **{"approver": "Mallory", **values},
                )
            )
            batch.state = "approved"
    finally:
        database.dispose()


@pytest.mark.parametrize(
    ("values", "said"),
    [
        ({}, "was not verified"),
        ({"approver": APPROVER}, "was not verified"),
        # A verified-looking row, written by hand: no digest, no message-log entry.
        ({"approver": APPROVER, "identity_method": "os-account+totp"}, "changed after"),
        ({"approver": PREPARER, "identity_method": "name+totp"}, f"{PREPARER} prepared it"),
    ],
)
def test_delivery_refuses_an_approval_no_verified_approver_made(waiting_batch, values, said):
    settings, batch_id = waiting_batch
    _approve_in_the_database(settings, batch_id, **values)
    with pytest.raises(OperatorError, match=said) as refused:
        deliver_approved(settings, batch_id)
    assert "\n" not in str(refused.value)
    assert not _inbox(settings).exists() or list(_inbox(settings).iterdir()) == []


def test_delivery_refuses_an_approver_taken_off_the_list_since(waiting_batch, capsys):
    settings, batch_id = waiting_batch
    claim = Claim("cli", code=code(settings.home, APPROVER), os_account=current_os_account())
    record_decision(settings, batch_id, claim, True)
    exit_code, said = _cli(capsys, "approvers", "remove", APPROVER, "--home", str(settings.home))
    assert exit_code == 0 and f"{APPROVER} may no longer approve" in said
    with pytest.raises(OperatorError, match="not on the approvers list"):
        deliver_approved(settings, batch_id)
    assert not _inbox(settings).exists() or list(_inbox(settings).iterdir()) == []


def test_an_approval_changed_in_the_database_after_it_was_recorded_is_not_delivered(
    waiting_batch,
):
    settings, batch_id = waiting_batch
    claim = Claim("prefect-ui", code=code(settings.home, APPROVER), name=APPROVER)
    record_decision(settings, batch_id, claim, True)
    database = ControlDatabase(settings.resolved_database_url)
    try:
        with database.session() as session:
            session.execute(update(Approval).values(comment="rewritten"))
    finally:
        database.dispose()
    with pytest.raises(OperatorError, match="changed after it was recorded"):
        deliver_approved(settings, batch_id)


def test_an_approvers_list_others_can_change_stops_every_decision(waiting_batch):
    settings, batch_id = waiting_batch
    claim = Claim("cli", code=code(settings.home, APPROVER), os_account=current_os_account())
    os.chmod(settings.home / "approvers.toml", 0o666)
    with pytest.raises(DecisionRefused, match="can be changed by other accounts") as refused:
        record_decision(settings, batch_id, claim, True)
    assert "\n" not in str(refused.value)
    assert _refusals(settings) == [("cli", f"os:{current_os_account()}", "approvers-file-unsafe")]
    assert batch_summary(settings, batch_id)["state"] == "waiting_approval"


def test_an_administrator_enrols_an_approver_and_the_secret_is_shown_once(tmp_path, capsys):
    from massar.home import init_home

    fresh = init_home(tmp_path / "fresh").home
    exit_code, said = _cli(
        capsys, "approvers", "add", "Nadia Tazi", "--os-account", "ntazi", "--home", str(fresh)
    )
    assert exit_code == 0 and "otpauth://totp/" in said and "not shown again" in said
    secret = said.split("secret: ")[1].split()[0]
    exit_code, listed = _cli(capsys, "approvers", "list", "--home", str(fresh))
    assert exit_code == 0 and "Nadia Tazi (account ntazi)" in listed and secret not in listed
    assert oct((fresh / "keys" / "approvers" / "ntazi.totp").stat().st_mode)[-3:] == "600"
    # The same account twice is refused in a sentence.
    exit_code, said = _cli(
        capsys, "approvers", "add", "Other", "--os-account", "ntazi", "--home", str(fresh)
    )
    assert exit_code == 1 and "already" in said and "Traceback" not in said

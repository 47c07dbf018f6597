"""Officers decide REVIEW children of a paused exchange run, under Prefect and against a real
OpenSSH sshd: in the paused run's form (as Prefect's UI submits it) and from the terminal. The
decisions are recorded and logged, the batch is signed again before the approval, which covers
the final manifest only, and what the fund receives carries them (checked with xmlsec1 and
openssl). The form, the artifact and the logs show counts and reasons, never a name, a birth
date or a pupil's code."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from uuid import UUID

import pytest

from connectors.exchange.registry import profile_for
from connectors.exchange.response_files import read_response_csv
from massar.runner import approve_batch
from tasks.batch_delivery import undecided_batches
from tasks.batch_preparation import batch_summary
from tasks.exchange_batches import batch_folder
from tasks.exchange_review import ChildChoice, decide_children, review_state
from tests.flows.test_exchange import (
    APPROVER,
    PREPARER,
    _partner,
    _request,
    _settings,
    form_input,
    terminal,
)
from tests.harness.approvers import code
from tests.harness.prefect_runs import run_in_thread
from tests.harness.prefect_ui import flow_logs_at_info
from warehouse.approval_records import refused_attempts
from warehouse.control import ControlDatabase
from warehouse.message_log import message_log
from warehouse.message_log_evidence import verify_message_log
from warehouse.review_records import review_decisions


@pytest.fixture(scope="module")
def consolidated(night_home) -> Path:
    """A home whose warehouse holds the generated province (one night) and Massar's leaving
    records (the session's, tests/conftest.py); copied by each test."""
    return night_home


@pytest.fixture
def home(consolidated, tmp_path) -> Path:
    target = tmp_path / "home"
    shutil.copytree(consolidated, target)
    return target


def _paused_form(run_id: str, thread, after: str | None = None, timeout: float = 90.0):
    """Wait until the run is paused on a form (another than ``after``); returns (keyset,
    schema, description) of the form as Prefect's UI shows it."""
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            assert thread.outcome is None, f"the run ended while waiting: {thread.outcome}"
            state = client.read_flow_run(UUID(run_id)).state
            keyset = state.state_details.run_input_keyset if state else None
            if state is not None and state.is_paused() and keyset and keyset["schema"] != after:
                schema = json.loads(client.read_flow_run_input(UUID(run_id), keyset["schema"]))
                description = client.read_flow_run_input(UUID(run_id), keyset["description"])
                return keyset, schema, description
            time.sleep(0.3)
    raise AssertionError(f"the run was not paused on a new form within {timeout:g} s")


def _waiting_batch(settings, thread, timeout: float = 120.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert thread.outcome is None, f"the exchange ended before waiting: {thread.outcome}"
        waiting = undecided_batches(settings, "cnss")
        if waiting:
            return waiting[0]
        time.sleep(0.3)
    raise AssertionError(f"no batch waited for approval within {timeout:g} s")


def _personal(settings, batch_id: str) -> list[str]:
    """What must never reach Prefect: the fund's names and birth dates of the queued children,
    their references, and each candidate's code, names and birth date."""
    queue = review_state(settings, batch_id).queue
    secrets = []
    for child in queue.children:
        secrets += [child.fund_reference, child.family_name, child.first_name, child.birth_date]
        for c in child.candidates:
            secrets += [c.student_code, c.family_name, c.first_name, c.birth_date]
    return [s for s in secrets if s]


def _leaks(secrets: list[str], texts: list[str]) -> list[str]:
    """The secrets found as whole words in the texts (a name inside a longer word is not one)."""
    return [s for s in secrets if any(re.search(rf"(?<!\w){re.escape(s)}(?!\w)", t) for t in texts)]


def _prefect_texts(run_id: str) -> list[str]:
    """The run's artifacts and log lines, as Prefect keeps them."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        LogFilter,
        LogFilterFlowRunId,
    )

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
    return [str(a.data) for a in artifacts] + [line.message for line in logs]


def _wait_for_log(run_id: str, text: str, timeout: float = 60.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        texts = _prefect_texts(run_id)
        if any(text in t for t in texts):
            return texts
        time.sleep(0.5)
    raise AssertionError(f"no log line of the run says {text!r} within {timeout:g} s")


def _delivered_answers(sftp_server, summary) -> dict[str, tuple[str, str]]:
    name = next(n for n in summary["files"] if n.endswith(".csv"))
    answers = read_response_csv(profile_for("cnss"), (sftp_server.inbox / name).read_bytes())
    return {a.fund_reference: (a.status, a.student_code or "") for a in answers}


def _verify_delivered(settings, sftp_server, summary) -> None:
    xml = next(sftp_server.inbox / n for n in summary["files"] if n.endswith(".xml"))
    table = next(sftp_server.inbox / n for n in summary["files"] if n.endswith(".csv"))
    checked = subprocess.run(
        ["xmlsec1", "--verify", "--trusted-pem", str(settings.signing_certificate), str(xml)],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stderr
    cms = subprocess.run(
        [
            *("openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", f"{table}.p7s"),
            *("-content", str(table), "-CAfile", str(settings.signing_certificate)),
            *("-purpose", "any", "-out", "/dev/null"),
        ],
        capture_output=True,
        text=True,
    )
    assert cms.returncode == 0, cms.stderr


def test_review_children_decided_in_the_paused_runs_form_reach_the_fund_signed(
    home, province, sftp_server
):
    from prefect.flow_runs import resume_flow_run

    from flows.exchange import exchange

    settings = _settings(home, _partner(sftp_server), approval_timeout_hours=240 / 3600)
    shutil.copy(_request(province), sftp_server.outbox / _request(province).name)
    with flow_logs_at_info():
        run = run_in_thread(exchange, "cnss", settings, prepared_by=PREPARER)
        batch_id = _waiting_batch(settings, run)
        summary = batch_summary(settings, batch_id)
        run_id = summary["flow_run_id"]
        keyset, schema, description = _paused_form(run_id, run)
        queue = review_state(settings, batch_id).queue
        first, second = queue.children[0], queue.children[1]
        # The form offers a choice per REVIEW child, by number, with reasons, schools, levels
        # and scores: nothing that names a child.
        field = schema["properties"][f"child_{first.item}"]
        choices = field.get("enum") or schema["definitions"][field["$ref"].split("/")[-1]]["enum"]
        assert field["default"].startswith("keep REVIEW")
        candidate = next(c for c in choices if c.startswith("candidate 1 is the child"))
        assert first.candidates[0].school_code in candidate
        shown = json.dumps(schema, ensure_ascii=False) + str(description)
        assert "REVIEW because" in shown and "massar review" in shown
        assert _leaks(_personal(settings, batch_id), [shown]) == []

        # The officer decides two children and ticks "approve" in the same form: the choices
        # are recorded and the batch signed again, the approval is not taken.
        not_found = next(c for c in choices if c.startswith("NOT_FOUND"))
        resume_flow_run(
            UUID(run_id),
            run_input={
                **form_input(settings, APPROVER, True, "vérifié avec massar review"),
                f"child_{first.item}": candidate,
                f"child_{second.item}": not_found,
            },
        )
        keyset, schema, description = _paused_form(run_id, run, after=keyset["schema"])
        after = batch_summary(settings, batch_id)
        assert after["state"] == "waiting_approval"
        assert after["manifest_sha256"] != summary["manifest_sha256"]
        assert schema["properties"]["manifest"]["default"] == after["manifest_sha256"]
        assert after["counts"]["review"]["decided"] == 2
        # Then the approval, on the form that shows the new manifest (with a new code).
        resume_flow_run(UUID(run_id), run_input=form_input(settings, APPROVER, True))
        run.join(120)
        texts = _wait_for_log(run_id, "review decision(s) recorded")
    assert run.outcome is not None and "error" not in run.outcome, run.outcome
    [batch] = run.outcome["result"]["batches"]
    assert batch["state"] == "approved"
    final = batch_summary(settings, batch_id)
    assert final["decision"]["covered_sha256"] == final["manifest_sha256"]
    assert final["decision"]["channel"] == "prefect-ui" and final["state"] == "delivered"
    assert batch["counts"]["statuses"] == final["counts"]["statuses"]  # the decided counts
    # The fund received the decided answers, signed, exactly as approved.
    folder = batch_folder(settings, "cnss", batch_id)
    assert sorted(os.listdir(sftp_server.inbox)) == sorted(final["files"])
    for name in final["files"]:
        assert (sftp_server.inbox / name).read_bytes() == (folder / name).read_bytes()
    delivered = _delivered_answers(sftp_server, final)
    chosen = first.candidates[0]
    assert delivered[first.fund_reference] == (chosen.answer["status"], chosen.student_code)
    assert delivered[second.fund_reference] == ("NOT_FOUND", "")
    assert {delivered[c.fund_reference] for c in queue.children[2:]} <= {("REVIEW", "")}
    _verify_delivered(settings, sftp_server, final)
    database = ControlDatabase(settings.resolved_database_url)
    try:
        rows = review_decisions(database, batch_id)
        assert {
            (r["fund_reference"], r["to_status"], r["decided_by"], r["channel"]) for r in rows
        } == {
            (first.fund_reference, chosen.answer["status"], APPROVER, "prefect-ui"),
            (second.fund_reference, "NOT_FOUND", APPROVER, "prefect-ui"),
        }
        logged = [e["file_name"] for e in message_log(database, batch_id=batch_id)]
        assert logged[:2] == [
            f"review-decision:{r['fund_reference']}:REVIEW->{r['to_status']}" for r in rows
        ]
        assert logged[2] == "decision:approved"  # then the approval
        assert sorted(logged[3:]) == sorted(final["files"])  # then the delivered files
        assert verify_message_log(database).intact
    finally:
        database.dispose()
    # The artifact counts the REVIEW children by reason and what was decided; Prefect holds
    # no name, birth date, reference or code of a queued child.
    assert any("2 decided by an officer so far" in t and "REVIEW because" in t for t in texts)
    assert _leaks(_personal(settings, batch_id), texts) == []


def test_a_terminal_decision_while_the_run_waits_and_a_stale_form_is_refused(
    home, province, sftp_server
):
    from prefect.flow_runs import resume_flow_run

    from flows.exchange import exchange

    settings = _settings(home, _partner(sftp_server), approval_timeout_hours=240 / 3600)
    shutil.copy(_request(province), sftp_server.outbox / _request(province).name)
    with flow_logs_at_info():
        run = run_in_thread(exchange, "cnss", settings, prepared_by=PREPARER)
        batch_id = _waiting_batch(settings, run)
        run_id = batch_summary(settings, batch_id)["flow_run_id"]
        keyset, _, _ = _paused_form(run_id, run)
        child = review_state(settings, batch_id).queue.children[0]
        chosen = child.candidates[0]
        # An officer decides at the terminal while the run is paused on its form...
        outcome = decide_children(
            settings,
            batch_id,
            [ChildChoice(child.fund_reference, chosen.student_code)],
            terminal(settings),
        )
        assert outcome.resigned
        # ... so the form still open in a browser shows a manifest the batch no longer has:
        # its approval is refused and the run waits again with a fresh form.
        resume_flow_run(UUID(run_id), run_input=form_input(settings, APPROVER, True))
        _, schema, _ = _paused_form(run_id, run, after=keyset["schema"])
        assert schema["properties"]["manifest"]["default"] == outcome.manifest_after
        _wait_for_log(run_id, "changed since it was shown")
        assert batch_summary(settings, batch_id)["state"] == "waiting_approval"
        # The terminal's approval covers the decided batch and resumes the run.
        said = approve_batch(settings, batch_id, terminal(settings), True, "")
        assert outcome.manifest_after in said and "goes on now" in said
        run.join(120)
    assert run.outcome is not None and "error" not in run.outcome, run.outcome
    final = batch_summary(settings, batch_id)
    assert final["state"] == "delivered"
    assert final["decision"]["covered_sha256"] == outcome.manifest_after
    delivered = _delivered_answers(sftp_server, final)
    assert delivered[child.fund_reference] == (chosen.answer["status"], chosen.student_code)
    _verify_delivered(settings, sftp_server, final)


@pytest.mark.parametrize(("who", "reason"), [(PREPARER, "preparer"), ("Intrus", "unlisted-name")])
def test_a_form_from_someone_who_may_not_decide_changes_nothing(
    home, province, sftp_server, who, reason
):
    from prefect.flow_runs import resume_flow_run

    from flows.exchange import exchange

    settings = _settings(home, _partner(sftp_server), approval_timeout_hours=240 / 3600)
    shutil.copy(_request(province), sftp_server.outbox / _request(province).name)
    with flow_logs_at_info():
        run = run_in_thread(exchange, "cnss", settings, prepared_by=PREPARER)
        batch_id = _waiting_batch(settings, run)
        before = batch_summary(settings, batch_id)
        run_id = before["flow_run_id"]
        keyset, schema, _ = _paused_form(run_id, run)
        child = review_state(settings, batch_id).queue.children[0]
        field = schema["properties"][f"child_{child.item}"]
        choices = field.get("enum") or schema["definitions"][field["$ref"].split("/")[-1]]["enum"]
        not_found = next(c for c in choices if c.startswith("NOT_FOUND"))
        resume_flow_run(
            UUID(run_id),
            run_input={
                "approver": who,
                "code": code(settings.home, who) if who == PREPARER else "123456",
                "approve": True,
                f"child_{child.item}": not_found,
            },
        )
        _paused_form(run_id, run, after=keyset["schema"])
        _wait_for_log(run_id, "The batch still waits for a decision")
        approve_batch(settings, batch_id, terminal(settings), False, "end of the test")
        run.join(120)
    assert batch_summary(settings, batch_id)["manifest_sha256"] == before["manifest_sha256"]
    database = ControlDatabase(settings.resolved_database_url)
    try:
        assert review_decisions(database, batch_id) == []
        [refused] = refused_attempts(database, batch_id)
        assert (refused["act"], refused["channel"], refused["reason"]) == (
            "review",
            "prefect-ui",
            reason,
        )
    finally:
        database.dispose()
    assert os.listdir(sftp_server.inbox) == []

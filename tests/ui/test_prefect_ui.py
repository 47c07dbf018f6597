"""What an officer sees in Prefect's web UI, in a real (headless) browser, against a server
protected by an auth string as in production: the nightly run with its logs and the
platform's artifacts (per-school ingest table, evaluation headline), then a partner batch
waiting for approval, approved through the paused run's form, recorded and delivered."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from flows.exchange import exchange
from flows.nightly import nightly
from massar.home import init_home
from tasks.batch_decisions import recorded_decision
from tasks.batch_delivery import undecided_batches
from tasks.batch_preparation import batch_summary
from tests.flows.test_exchange import (
    APPROVER,
    PREPARER,
    _partner,
    _request,
    _settings,
    terminal,
)
from tests.harness.approvers import code
from tests.harness.prefect_runs import run_in_thread, wait_until
from tests.harness.prefect_ui import flow_logs_at_info, prefect_ui

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "test-output" / "ui"  # ignored by git


@pytest.fixture(scope="module")
def night(ui_server, province, tmp_path_factory):
    """The province's first night, run against the UI's server; its home and flow run id."""

    settings = init_home(tmp_path_factory.mktemp("ui-home") / "home")
    schools = sorted(p for p in province.iterdir() if p.is_dir() and p.name[:5].isdigit())
    for school in schools:
        shutil.copytree(school, settings.inbox / school.name)
    with ui_server.as_api(), flow_logs_at_info():
        state = nightly(settings, return_state=True)
    assert state.is_completed(), state.message
    (settings.home / "reference").mkdir(exist_ok=True)
    shutil.copy(province / "leavers.csv", settings.home / "reference" / "leavers.csv")
    return settings, str(state.state_details.flow_run_id), [s.name for s in schools]


def _subflow_runs(ui_server, parent_id: str) -> dict[str, str]:
    """{flow name: flow run id} of the subflows of a run, from the API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    with ui_server.as_api(), get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent_id])
            )
        )
        return {client.read_flow(r.flow_id).name: str(r.id) for r in runs}


def _flow_run_state(ui_server, flow_run_id: str):
    from prefect.client.orchestration import get_client

    with ui_server.as_api(), get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id).state


def test_the_night_its_logs_and_its_artifacts_show_in_the_ui(ui_server, night, tmp_path):
    _, run_id, schools = night
    subflows = _subflow_runs(ui_server, run_id)
    assert {"ingest_submissions", "nightly_consolidation", "evaluate"} <= set(subflows)
    with prefect_ui(ui_server.url, tmp_path / "screenshots", SHOTS / "night") as ui:
        ui.login(ui_server.auth_string)
        # The site's entry lands on the classic UI, whose paused runs carry the Resume form.
        ui.page.goto(ui_server.url + "/")
        ui.page.wait_for_load_state("networkidle")
        assert "/v2" not in ui.page.url, ui.page.url
        ui.open_flow_run(run_id, state="Completed")
        assert ui.wait_for_log_line("Finished in state Completed")
        ui.open_tab("Subflow Runs")
        ui.page.get_by_text("ingest_submissions").first.wait_for()
        ui.screenshot("nightly-run")

        ui.open_flow_run(subflows["ingest_submissions"], state="Completed")
        ingest_logs = ui.log_lines()
        ingest = ui.open_artifact("ingest-by-school")
        ui.screenshot("ingest-by-school-artifact")
        # The officers' table: every school of the night, with the platform's columns.
        assert "rows quarantined" in ingest and "queries" in ingest
        assert [s for s in schools if s not in ingest] == []

        ui.open_flow_run(subflows["evaluate"], state="Completed")
        headline = ui.open_artifact("evaluation-headline")
        ui.screenshot("evaluation-headline-artifact")
        assert "pass_rate_pct" in headline and "province" in headline
        assert [s for s in schools if s not in headline] == []
    print(f"screenshots: {tmp_path / 'screenshots'} (copied to {SHOTS / 'night'})")
    assert ingest_logs, "the ingest run's page shows no log line"
    # Nothing the officers' pages load tries to leave the machine.
    assert sorted(set(ui.blocked)) == []


def _refused(settings) -> list[tuple[str, str, str]]:
    from warehouse.approval_records import refused_attempts
    from warehouse.control import ControlDatabase

    database = ControlDatabase(settings.resolved_database_url)
    try:
        return [(a["channel"], a["claimed"], a["reason"]) for a in refused_attempts(database)]
    finally:
        database.dispose()


def _waiting_batch(settings, partner: str, thread, timeout: float = 90.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert thread.outcome is None, f"the exchange ended before waiting: {thread.outcome}"
        waiting = undecided_batches(settings, partner)
        if waiting:
            return waiting[0]
        time.sleep(0.3)
    raise AssertionError(f"no {partner} batch waited for approval within {timeout:g} s")


def test_an_officer_approves_a_waiting_batch_in_the_ui_and_it_is_delivered(
    ui_server, night, sftp_server, province, tmp_path
):
    from massar.runner import approve_batch

    night_settings, _, _ = night
    home = tmp_path / "home"
    shutil.copytree(night_settings.home, home)
    # One pause long enough for the officer (no slice ends while the form is open); a test
    # that fails leaves no run waiting for long.
    settings = _settings(
        home,
        _partner(sftp_server),
        approval_poll_seconds=1,  # a submitted form resumes the run within 1 s
        approval_pause_slice_seconds=300,
        approval_timeout_hours=4 / 60,
    )
    request = _request(province)
    shutil.copy(request, sftp_server.outbox / request.name)
    with ui_server.as_api(), flow_logs_at_info():
        run = run_in_thread(exchange, "cnss", settings, prepared_by=PREPARER)
        batch_id = _waiting_batch(settings, "cnss", run)
        flow_run_id = batch_summary(settings, batch_id)["flow_run_id"]
        comment = "Comptes vérifiés dans l'interface"
        try:
            with prefect_ui(ui_server.url, tmp_path / "screenshots", SHOTS / "exchange") as ui:
                ui.login(ui_server.auth_string)
                ui.open_flow_run(flow_run_id, state="Paused")
                waits = ui.wait_for_log_line(f"Batch {batch_id} waits for a decision")
                assert "use the form of this flow run" in waits
                batch_artifact = ui.open_artifact(f"exchange-{batch_id.lower()}")
                assert batch_id in batch_artifact and "SCHOOLED" in batch_artifact
                assert "waiting_approval" in batch_artifact
                ui.screenshot("exchange-batch-artifact")

                ui.open_flow_run(flow_run_id, state="Paused")
                ui.screenshot("exchange-run-paused")
                form = ui.open_resume_form()
                # The form shows the batch as the platform describes it.
                form.get_by_text(f"Batch {batch_id} for CNSS").wait_for()
                # The UI's login is shared: a name with a code that is not hers is refused.
                wrong = code(home, PREPARER)  # another approver's code
                ui.fill_resume_form(
                    form,
                    {"Approver": APPROVER, "Code": wrong, "Comment": comment},
                    {"Approve": True},
                )
                ui.submit_resume_form(form)
                refusal = wait_until(lambda: _refused(settings), "the refusal on record")
                assert refusal == [("prefect-ui", APPROVER, "wrong-code")]
                ui.open_flow_run(flow_run_id, state="Paused")  # it waits again
                ui.wait_for_log_line("is not their current code")
                form = ui.open_resume_form()
                form.get_by_text(f"Batch {batch_id} for CNSS").wait_for()
                ui.fill_resume_form(
                    form,
                    {"Approver": APPROVER, "Code": code(home, APPROVER), "Comment": comment},
                    {"Approve": True},
                )
                ui.screenshot("approval-form-filled")
                ui.submit_resume_form(form)
                ui.wait_for_state("Completed")
                ui.wait_for_log_line("Finished in state Completed")
                ui.screenshot("exchange-run-after-approval")
        finally:
            if undecided_batches(settings, "cnss"):  # the form did nothing: end the run
                approve_batch(settings, batch_id, terminal(settings), False, "the UI failed")
            run.join(120)
    print(f"screenshots: {tmp_path / 'screenshots'} (copied to {SHOTS / 'exchange'})")

    assert run.outcome is not None and "error" not in run.outcome, run.outcome
    result = run.outcome["result"]
    assert [b["state"] for b in result["batches"]] == ["approved"]
    summary = batch_summary(settings, batch_id)
    decision = summary["decision"]
    assert decision["channel"] == "prefect-ui"  # the browser's form, not a terminal
    assert decision["approver"] == APPROVER and decision["decision"] == "approved"
    assert decision["covered_sha256"] == summary["manifest_sha256"]
    assert recorded_decision(settings, batch_id).comment == comment
    assert summary["state"] == "delivered"
    assert sorted(os.listdir(sftp_server.inbox)) == sorted(summary["files"])
    assert _flow_run_state(ui_server, flow_run_id).is_completed()

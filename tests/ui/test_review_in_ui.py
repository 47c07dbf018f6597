"""An officer decides a REVIEW child in the paused exchange run's form, in Prefect's web UI (a
real headless browser, the server behind its auth string): the form lists the REVIEW children
by number with their reason and choices, the choice is recorded under the officer's name with
the channel prefect-ui, the batch is signed again and the form comes back with the new
manifest; nothing on the page names a child."""

from __future__ import annotations

import re
import shutil

import pytest

from flows.exchange import exchange
from massar.runner import approve_batch
from tasks.batch_delivery import undecided_batches
from tasks.batch_preparation import batch_summary
from tasks.exchange_review import review_state
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
from tests.ui.test_prefect_ui import SHOTS
from warehouse.control import ControlDatabase
from warehouse.review_records import review_decisions

pytestmark = pytest.mark.slow


def _choose(ui, dialog, label: str, starts: str) -> None:
    """Pick, in the form's select titled ``label``, the option whose text starts so (the
    select's list opens from the keyboard, as an officer's arrow key opens it)."""
    title = ui.page.locator(".p-label__label", has_text=re.compile(rf"^{re.escape(label)}\b"))
    field = dialog.locator(".schema-form-property").filter(has=title).first
    button = field.locator(".p-select-button__control").first
    button.focus()
    button.press("ArrowDown")
    pattern = re.compile(rf"^\s*{re.escape(starts)}")
    ui.page.locator("[role=option]", has_text=pattern).first.click()
    field.locator(".p-select-button__value", has_text=pattern).wait_for()


def test_an_officer_decides_a_review_child_in_the_ui_form(
    ui_server, night_home, sftp_server, province, tmp_path
):
    home = tmp_path / "home"
    shutil.copytree(night_home, home)  # the session's first night
    settings = _settings(
        home,
        _partner(sftp_server),
        approval_poll_seconds=1,  # a submitted form resumes the run within 1 s
        approval_pause_slice_seconds=300,
        approval_timeout_hours=6 / 60,
    )
    request = _request(province)
    shutil.copy(request, sftp_server.outbox / request.name)
    with ui_server.as_api(), flow_logs_at_info():
        run = run_in_thread(exchange, "cnss", settings, prepared_by=PREPARER)
        batch_id = wait_until(lambda: undecided_batches(settings, "cnss"), "a waiting batch")[0]
        before = batch_summary(settings, batch_id)
        run_id = before["flow_run_id"]
        child = review_state(settings, batch_id).queue.children[0]
        try:
            with prefect_ui(ui_server.url, tmp_path / "shots", SHOTS / "review") as ui:
                ui.login(ui_server.auth_string)
                ui.open_flow_run(run_id, state="Paused")
                form = ui.open_resume_form()
                title = f"REVIEW child #{child.item}"
                form.get_by_text(title).first.wait_for()
                page_text = form.inner_text()
                for secret in (child.fund_reference, child.family_name, child.first_name):
                    assert not re.search(rf"(?<!\w){re.escape(secret)}(?!\w)", page_text)
                ui.fill_resume_form(form, {"Approver": APPROVER, "Code": code(home, APPROVER)}, {})
                _choose(ui, form, title, "NOT_FOUND")
                ui.screenshot("review-choice-in-form")
                ui.submit_resume_form(form)
                wait_until(
                    lambda: (
                        batch_summary(settings, batch_id)["manifest_sha256"]
                        != before["manifest_sha256"]
                    ),
                    "the batch signed again",
                )
                ui.open_flow_run(run_id, state="Paused")
                ui.wait_for_log_line("review decision(s) recorded")
                ui.screenshot("review-recorded-run-paused-again")
        finally:
            approve_batch(settings, batch_id, terminal(settings), False, "end of the UI test")
            run.join(120)
    database = ControlDatabase(settings.resolved_database_url)
    try:
        [row] = review_decisions(database, batch_id)
    finally:
        database.dispose()
    assert (row["fund_reference"], row["to_status"]) == (child.fund_reference, "NOT_FOUND")
    assert (row["decided_by"], row["channel"]) == (APPROVER, "prefect-ui")

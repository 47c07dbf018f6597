"""Running the flows from the command line, with Prefect pointed at the installation."""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from ground.environment import environment_variable
from ground.errors import OperatorError, RequestsUnanswered, WorkFailed
from ground.settings import Settings, apply_prefect_environment

if TYPE_CHECKING:  # tasks import Prefect, which must see this installation's settings first
    from tasks.approval_rules import Claim


# What the statistics report imports only when it draws (~0.5 s of CPU on the night's path):
# imported while the API's process starts instead, with a core to spare.
REPORT_CHARTS = ("matplotlib.figure", "matplotlib.backends.backend_agg")


@contextmanager
def prefect_api(
    settings: Settings, warm: tuple[str, ...] = (), workers: bool = False
) -> Iterator[None]:
    """Point Prefect at the installation for the flows run inside.

    In the embedded mode the local API is started here, once, and named explicitly: Prefect's
    own ephemeral mode would start one more API in each worker process of the ingest (seconds
    each), since the address of an ephemeral API is not passed to them. The API's process is
    spawned first (massar/prefect_api.py: a fresh home's database is a copy of the
    installation's migrated one), then the modules named in ``warm`` (the flow to run) are
    imported while it starts, and only then is its answer awaited. ``workers``: the flow may
    start the ingest's workers; the server they are forked from starts with the API, so that
    its imports are done when they are needed (flows/runners.start_worker_server)."""
    apply_prefect_environment(settings)  # before anything imports Prefect
    if not settings.embedded or os.environ.get("PREFECT_API_URL"):
        yield
        return
    from massar.prefect_api import EmbeddedAPI

    api = EmbeddedAPI()
    api.start()
    if workers and settings.task_runner == "default":
        from flows.runners import start_worker_server

        start_worker_server()
    _import_meanwhile(warm)
    timeout = float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", 120))
    api_url = api.wait(timeout)
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        temporary_settings,
    )

    # No flow-run heartbeats: they tell a lasting server that a run died, and this API ends
    # with the command; each flow run would wait up to 1 s at its end for the thread to stop.
    # The address goes in the environment too: Prefect's settings context does not follow
    # into the threads Prefect starts itself (the process pool's thread that forwards the
    # workers' logs and events), which, finding no API, started a temporary one of their own
    # on the same database: one more server process and its CPU during every ingest.
    with (
        _environment("PREFECT_API_URL", api_url),
        temporary_settings(
            updates={PREFECT_API_URL: api_url, PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
        ),
    ):
        yield


@contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    """``name`` set to ``value`` in the environment and in Prefect's process-wide settings (what
    a thread without a settings context of its own reads), both restored after."""
    from prefect.context import refresh_global_settings_context

    try:
        with environment_variable(name, value):
            refresh_global_settings_context()
            yield
    finally:
        refresh_global_settings_context()  # the variable as it was


def _import_meanwhile(modules: tuple[str, ...]) -> None:
    """Import ``modules`` while the API's process starts; an import that fails fails again,
    with its traceback, where the caller imports the module."""
    for name in modules:
        with contextlib.suppress(Exception):
            importlib.import_module(name)


def run_ingest(settings: Settings, path: Path | None = None) -> str:
    """Run ``ingest_submissions`` and return a short summary for the operator."""
    with prefect_api(settings, warm=("flows.ingest",), workers=True):
        from flows.ingest import ingest_submissions

        summary = ingest_submissions(settings.without_secrets(), path.resolve() if path else None)
    text = describe_ingest(summary, settings)
    fail_on_unreadable(summary["totals"], text)
    return text


def fail_on_unreadable(totals: dict, done: str) -> None:
    """A file the platform itself could not read (a reader's fault, not the school's) makes
    the run a failure: :class:`WorkFailed` with ``done`` and one sentence."""
    count = totals.get("unreadable", 0)
    if count:
        from massar.logs import error_log

        raise WorkFailed(
            f"{count} file(s) could not be read by the platform itself (a fault of the "
            "platform, not of the schools; each is rejected with F001 for now): the details "
            f"are in {error_log()}; report it to the platform's maintainers.",
            done,
        )


def describe_ingest(summary: dict, settings: Settings) -> str:
    totals = summary["totals"]
    return (
        f"Ingest: {totals['new_submissions']} new file(s) from {totals['schools']} school "
        f"folder(s) ({totals['already_known']} already known): {totals['accepted']} accepted, "
        f"{totals['partially_accepted']} partially accepted, {totals['rejected']} rejected; "
        f"{totals['rows_accepted']} rows accepted, {totals['rows_quarantined']} quarantined, "
        f"{totals['errors']} errors and {totals['queries']} queries. Reports per school: "
        f"{settings.reports}."
        + (
            f" {totals['held']} resend(s) held because they would remove much of what the "
            "school had: 'massar status' lists them, 'massar confirm SUBMISSION' applies one."
            if totals.get("held")
            else ""
        )
        + (
            f" Not ingested, at the inbox's root: {', '.join(totals['stray_entries'])} (move "
            "each file into its school's folder, inbox/<school code>/)."
            if totals.get("stray_entries")
            else ""
        )
        + (f" {summary['note']}" if summary.get("note") else "")  # left to another run
    )


def run_nightly(settings: Settings) -> str:
    """Run the ``nightly`` flow (ingest, then consolidation) and summarise it."""
    with prefect_api(settings, warm=("flows.nightly", *REPORT_CHARTS), workers=True):
        from flows.nightly import nightly

        result = nightly(settings.without_secrets())
    lines = [
        describe_ingest({"totals": result["ingest"], "note": result.get("ingest_note")}, settings),
        describe_night(result["consolidation"], settings),
    ]
    if result.get("evaluation"):
        lines.append(describe_evaluation(result["evaluation"], settings))
    if result.get("changes"):  # what the night changed ("nothing changed" ...)
        lines.append(f"Tonight: {result['changes']}.")
    fail_on_unreadable(result["ingest"], "\n".join(lines))
    return "\n".join(lines)


def run_evaluate(settings: Settings, year: str | None, semester: int | None) -> str:
    """Run the ``evaluate`` flow and summarise it."""
    apply_prefect_environment(settings)  # before anything imports Prefect
    from tasks.evaluation_steps import check_inputs

    year = check_inputs(settings, year)  # a bad year or rules file: a sentence, no flow run
    with prefect_api(settings, warm=("flows.evaluate", *REPORT_CHARTS)):
        from flows.evaluate import evaluate

        summary = evaluate(settings.without_secrets(), year=year, semester=semester)
    return describe_evaluation(summary, settings)


def describe_evaluation(summary: dict, settings: Settings) -> str:
    rows = ", ".join(f"{table} {count}" for table, count in summary["rows"].items())
    text = summary["outcome"] + (f" {summary['scope']}" if summary.get("scope") else "")
    text += f" Result rows: {rows}." if rows else ""
    if "statistics_report" in summary:
        text += (
            f" Statistics: {summary['statistics_report']}; e-services extract: "
            f"{summary['eservices_files']} file(s) under {settings.exchange / 'eservices'}."
        )
    waiting = 0
    for row in summary.get("skipped", []):  # what was held back, and why
        if row["reason"] == "school_without_marks":  # usual early in the year: counted
            waiting += 1
        else:
            text += f"\n  {row['why']}"
    if waiting:
        text += f"\n  {waiting} school(s) have a student list but no marks yet."
    return text


def run_exchange(settings: Settings, partner: str, prepared_by: str) -> str:
    """Run the ``exchange`` flow for one partner (it waits for the approvers' decision) and
    summarise it."""
    with prefect_api(settings, warm=("flows.exchange",)):
        from flows.exchange import exchange

        try:
            summary = exchange(partner, settings.without_secrets(), prepared_by=prepared_by)
        except RequestsUnanswered as failed:  # what was done, then the one sentence
            done = describe_exchange({**failed.summary, "problems": []}, quiet=True)
            raise WorkFailed(str(failed), done) from None
    return describe_exchange(summary)


def describe_exchange(summary: dict, quiet: bool = False) -> str:
    """What the run did, one line each (``quiet``: nothing when it did nothing)."""
    partner = summary["partner"].upper()
    lines = []
    for ack in summary["acknowledgements"]:
        lines.append(
            f"Acknowledgement {ack['file']} for batch {ack['batch_id']}: {ack['accepted']} "
            f"accepted, {ack['rejected']} rejected"
            + ("." if ack["bound"] else " (not bound to what was delivered: not counted).")
        )
    for late in summary["overdue"]:
        lines.append(
            f"Batch {late['batch_id']} has waited {late['waiting_hours']} h for {partner}'s "
            "acknowledgement: ask the fund."
        )
    for batch in summary["batches"]:
        statuses = batch["counts"].get("statuses", {})
        counted = ", ".join(f"{n} {s}" for s, n in statuses.items() if n)
        lines.append(
            f"Batch {batch['batch_id']}: {batch['children']} children ({counted}); "
            f"{batch['state']}."
        )
    for delivery in summary["deliveries"]:
        lines.append(delivery["message"])
    for problem in summary.get("problems", []):
        lines.append(problem)
    if summary.get("note"):  # another run held the fund's exchange
        lines.append(summary["note"])
    did = summary["batches"] or summary["deliveries"] or summary["acknowledgements"]
    if not (did or quiet or summary.get("problems") or summary.get("note")):
        lines.append(f"No new request from {partner}.")
    return "\n".join(lines)


def approval_preview(settings: Settings, batch_id: str) -> tuple[dict, str]:
    """The batch an approver is about to decide on: its summary and what the terminal shows
    (counts per status, match rate, REVIEW children, the review list's path, the manifest);
    no child data. A batch that does not exist is one sentence naming the batches that wait
    for approval, or saying that none does."""
    apply_prefect_environment(settings)
    from massar.status import unknown_batch_sentence
    from massar.status_facts import batch_state
    from tasks.batch_preparation import batch_summary

    if batch_state(settings, batch_id) is None:
        raise OperatorError(unknown_batch_sentence(settings, batch_id))
    summary = batch_summary(settings, batch_id)
    return summary, describe_batch(settings, summary)


def describe_batch(settings: Settings, summary: dict) -> str:
    """A batch for the terminal, before a decision: counts only."""
    from schemas.exchange import STATUSES
    from tasks.exchange_batches import batch_folder

    counts = summary["counts"]
    statuses = counts.get("statuses", {})
    change = counts.get("change")
    last = counts.get("previous_batch")
    per_status = ", ".join(
        f"{status} {statuses.get(status, 0)}"
        + (f" ({change[status]:+d})" if change and status in change else "")
        for status in STATUSES
    )
    lines = [
        f"Batch {summary['batch_id']} for {summary['partner'].upper()} "
        f"({summary['school_year']}), {summary['state']}: answer to "
        f"{summary['request_file']}, prepared by {summary['prepared_by']} at "
        f"{summary['prepared_at'][:16].replace('T', ' ')} UTC.",
        f"  {summary['children']} children: {per_status}"
        + (f" (change since batch {last})" if last and change else "")
        + f"; match rate {100 * counts.get('match_rate', 0):.1f} %.",
    ]
    review = counts.get("review") or {}
    if review.get("queued"):
        lines.append(
            f"  {review['queued']} REVIEW children to look at, {review.get('decided', 0)} "
            f"decided by an officer ('massar review {summary['batch_id']}' shows them)."
        )
    review_list = batch_folder(settings, summary["partner"], summary["batch_id"]) / "review.csv"
    lines.append(
        f"  Review list: {review_list}"
        + ("" if review_list.is_file() else " (not written: nothing to review)")
        + "."
    )
    lines.append(f"  Manifest sha256 {summary['manifest_sha256']}.")
    return "\n".join(lines)


def approve_batch(
    settings: Settings, batch_id: str, claim: Claim, approve: bool, comment: str
) -> str:
    """Record a decision from the terminal (who ``claim`` proves to be: the OS account and the
    approver's code, tasks/approval_rules.py) and resume the exchange run waiting on it."""
    apply_prefect_environment(settings)
    from massar.status import unknown_batch_sentence
    from massar.status_facts import batch_state
    from tasks.batch_decisions import record_decision, resume_waiting_flow
    from tasks.batch_preparation import batch_summary

    if batch_state(settings, batch_id) is None:
        raise OperatorError(unknown_batch_sentence(settings, batch_id))
    summary = batch_summary(settings, batch_id)
    decision = record_decision(settings, batch_id, claim, approve, comment)
    text = (
        f"Batch {batch_id} {decision.decision} by {decision.approver} at "
        f"{decision.decided_at:%Y-%m-%d %H:%M} UTC, covering manifest "
        f"{decision.covered_sha256}."
    )
    try:
        resumed = resume_waiting_flow(summary, decision)
    except Exception:  # Prefect unreachable: the decision stands in the control database
        resumed = False
    if resumed:
        return text + " The exchange run waiting on it goes on now."
    if decision.decision == "approved":
        return text + " The next 'massar exchange run' delivers it."
    return text + " It will not be delivered."


def describe_night(summary: dict, settings: Settings) -> str:
    if summary.get("night_id") is None and summary.get("note"):  # another run held it
        return str(summary["note"])
    rows = summary.get("rows", {})
    tables = ", ".join(f"{table} {count}" for table, count in rows.items())
    return (
        f"Night {summary['night_id']}: {summary['schools_changed']} school(s) changed; "
        f"warehouse rows: {tables}. {summary['transfers']} pupil(s) enrolled in two schools "
        f"(officers' report in {settings.reports / 'province'}). Query it with "
        "'massar query \"SQL\"'."
    )

"""Flow ``exchange``: answer a partner fund (CNSS or CMR).

acknowledgements of earlier batches → finish approved deliveries → for each new request:
match → build and sign → pause for a person's decision (officers may first decide REVIEW children:
the batch is then signed again) → deliver over SFTP."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.recorded import recorded
from ground.errors import RequestsUnanswered
from ground.settings import Settings, flow_settings
from tasks.acknowledgements import reconcile_task
from tasks.batch_decisions import wait_for_decision
from tasks.batch_delivery import deliver_task, undelivered_approved_batches
from tasks.batch_preparation import (
    batch_summary,
    prepare_batch_task,
    publish_batch_artifact,
    run_preparer,
)
from tasks.disk_space import disk_guarded, exchange_folders
from tasks.exchange_batches import operator_sentence
from tasks.exchange_requests import fetch_requests_task
from tasks.leases import exchange_not_run, exchange_resource, exchange_what, leased


@flow(name="exchange")
@recorded
@disk_guarded("The exchange", exchange_folders)
@leased(lambda a: exchange_resource(a["partner"]), exchange_not_run, exchange_what)
def exchange(
    partner: str,
    settings: Settings | None = None,
    home: str | None = None,
    prepared_by: str | None = None,
) -> dict:
    """One exchange run for ``partner``; returns counts and batch states (no child data).
    A request left without a prepared batch fails the run (:class:`RequestsUnanswered`, its
    ``summary`` what the run did) once every other request and delivery is done.
    The batches' preparer is who started the run (:func:`tasks.batch_preparation.run_preparer`): the
    schedule or deployment for a deployment's run (``prepared_by`` is then ignored), else
    ``prepared_by`` or this process's OS account."""
    settings = flow_settings(settings, home)  # secrets: from the home, not Prefect
    logger = get_run_logger()
    preparer = run_preparer(prepared_by)
    if prepared_by and preparer != prepared_by.strip():
        logger.warning(
            "prepared_by=%r is not taken for a deployment's run: its batches are prepared by %s.",
            prepared_by,
            preparer,
        )
    reconciled = reconcile_task(settings, partner)
    for problem in reconciled["problems"]:
        logger.warning(problem)
    pending = undelivered_approved_batches(settings, partner)  # e.g. a connection was cut
    deliveries = [deliver_task(settings, batch_id) for batch_id in pending]
    batches, problems = [], []
    for request in fetch_requests_task(settings, partner):
        prepared = prepare_batch_task(
            settings, partner, request, preparer, str(flow_run.id or ""), return_state=True
        )
        if prepared.is_failed():  # a bad request, a refused certificate: a sentence
            error = prepared.result(raise_on_failure=False)
            if not isinstance(error, BaseException):
                error = RuntimeError(str(error))
            problems.append(operator_sentence(error))
            logger.error(problems[-1])
            continue
        batch = prepared.result()
        publish_batch_artifact(batch)  # counts per status and REVIEW reason, no child data
        if batch["state"] == "waiting_approval":
            decision = wait_for_decision(settings, batch)
            # The counts as decided: officers' review decisions may have changed them.
            batch = {**batch_summary(settings, batch["batch_id"]), "state": decision.decision}
        if batch["state"] == "approved":
            deliveries.append(deliver_task(settings, batch["batch_id"]))
        batches.append({k: batch[k] for k in ("batch_id", "state", "children", "counts")})
    summary = {
        "partner": partner,
        "acknowledgements": reconciled["acknowledgements"],
        "overdue": reconciled["overdue"],
        "batches": batches,
        "deliveries": deliveries,
        "problems": problems,
    }
    if problems:  # a request left without an answer: the run fails, for schedulers and alerts
        raise RequestsUnanswered(" ".join(problems), summary)
    return summary

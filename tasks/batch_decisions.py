"""A person's decision on a batch: recording it (verified, in the message log), expiring a
batch, and the exchange flow waiting paused for the decision and resumed by it."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError, OperationalError

from ground.settings import Settings
from tasks.approval_rules import Claim, DecisionRefused, verify_decider
from tasks.batch_preparation import approval_text, batch_summary, publish_batch_artifact
from tasks.exchange_batches import DECIDED, WAITING, BatchDecision, _database, _latest_approval
from warehouse.approval_records import add_decision
from warehouse.control import Approval, ControlDatabase, ExchangeBatch, utcnow

_DECISION_RETRIES = 8


def _as_decision(approval: Approval) -> BatchDecision:
    return BatchDecision(
        approval.batch_id,
        approval.decision,
        approval.approver,
        approval.decided_at,
        approval.covered_sha256,
        approval.comment,
        approval.channel,
    )


def recorded_decision(settings: Settings, batch_id: str) -> BatchDecision | None:
    """The decision on record for a batch, if any."""
    database = _database(settings)
    try:
        with database.session() as session:
            approval = _latest_approval(session, batch_id)
            return None if approval is None else _as_decision(approval)
    finally:
        database.dispose()


def _waiting_batch(database: ControlDatabase, batch_id: str) -> ExchangeBatch:
    """The batch, if it still waits for a decision; :class:`DecisionRefused` otherwise."""
    with database.session() as session:
        batch = session.get(ExchangeBatch, batch_id)
        if batch is None:
            raise DecisionRefused(
                f"There is no batch {batch_id}; 'massar status' lists the batches waiting "
                "for approval."
            )
        if batch.state != WAITING:
            decided = _latest_approval(session, batch_id)
            by = f" by {decided.approver}" if decided and decided.approver else ""
            raise DecisionRefused(
                f"Batch {batch_id} is not waiting for approval any more (it is "
                f"{batch.state}{by}); nothing was recorded."
            )
        return batch


def record_decision(
    settings: Settings,
    batch_id: str,
    claim: Claim,
    approve: bool,
    comment: str = "",
    manifest: str | None = None,
    now: datetime | None = None,
) -> BatchDecision:
    """Record a person's decision on a batch waiting for approval, with the sha256 of the
    manifest it covers: the batch's manifest at that instant, which ``manifest`` (the one the
    person was shown, when known) must still be.

    The person is who ``claim`` proves to be (tasks/approval_rules.py: the terminal's OS
    account or the form's name, the approver's current code, not the preparer); a refusal
    because of who asked is recorded in the message log. The decision is an ``approvals`` row
    and a message-log entry in one transaction. Refused (:class:`DecisionRefused`, one
    sentence) also when the batch is not waiting any more, or an officer's review decision
    re-signed it since it was shown."""
    database = _database(settings)
    try:
        batch = _waiting_batch(database, batch_id)
        who = verify_decider(settings.home, database, batch, claim, "approval", now)
        covered = batch.manifest_sha256
        changed = DecisionRefused(
            f"Batch {batch_id} changed since it was shown (an officer's review decision "
            f"re-signed it: its manifest is now {covered[:12]}…), so the decision was not "
            "recorded; look at the batch again and decide."
        )
        if manifest is not None and manifest != covered:
            raise changed
        decision = "approved" if approve else "rejected"
        for attempt in range(_DECISION_RETRIES):
            try:
                with database.session() as session:
                    # Only if the batch still waits with this very manifest: a review decision
                    # recorded meanwhile changed the files, and an approval covers what it names.
                    claimed = cast(
                        CursorResult[Any],
                        session.execute(
                            update(ExchangeBatch)
                            .where(
                                ExchangeBatch.batch_id == batch_id,
                                ExchangeBatch.state == WAITING,
                                ExchangeBatch.manifest_sha256 == covered,
                            )
                            .values(state=decision)
                            .execution_options(synchronize_session=False)
                        ),
                    )
                    if claimed.rowcount != 1:
                        raise changed
                    approval = add_decision(
                        session,
                        batch.partner,
                        Approval(
                            batch_id=batch_id,
                            decision=decision,
                            approver=who.name,
                            decided_at=utcnow(),
                            comment=comment,
                            covered_sha256=covered,
                            channel=claim.channel,
                            identity_method=who.method,
                            os_account=who.os_account,
                            code_step=who.step,
                        ),
                    )
                    return _as_decision(approval)
            except IntegrityError:  # another writer took the message log's next place
                if attempt == _DECISION_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover
    finally:
        database.dispose()


def expire_batch(settings: Settings, batch_id: str, now: datetime) -> BatchDecision | None:
    """Record that nobody decided in time: the batch ends expired, never delivered (a decision
    and its message-log entry). Returns the decision on record when somebody decided
    meanwhile, and None while ``now`` is before the batch's deadline
    (:func:`approval_deadline`): nothing expires early."""
    database = _database(settings)
    try:
        for attempt in range(_DECISION_RETRIES):
            try:
                with database.session() as session:
                    batch = session.get(ExchangeBatch, batch_id)
                    if batch is None or batch.state != WAITING:
                        approval = _latest_approval(session, batch_id)
                        return None if approval is None else _as_decision(approval)
                    prepared = batch.prepared_at.replace(tzinfo=UTC)
                    if now < prepared + timedelta(hours=settings.approval_timeout_hours):
                        return None
                    batch.state = "expired"
                    approval = add_decision(
                        session,
                        batch.partner,
                        Approval(
                            batch_id=batch_id,
                            decision="expired",
                            approver="",
                            decided_at=utcnow(),
                            comment=f"no decision within {settings.approval_timeout_hours:g} h",
                            covered_sha256=batch.manifest_sha256,
                            channel="timeout",
                        ),
                    )
                    return _as_decision(approval)
            except IntegrityError:
                if attempt == _DECISION_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover
    finally:
        database.dispose()


def approval_deadline(settings: Settings, summary: dict[str, Any]) -> datetime:
    """When a batch without decision expires: its preparation time plus the configured time."""
    prepared = datetime.fromisoformat(summary["prepared_at"]).replace(tzinfo=UTC)
    return prepared + timedelta(hours=settings.approval_timeout_hours)


def wait_for_decision(settings: Settings, summary: dict[str, Any]) -> BatchDecision:
    """Pause the running flow with an approval form until a person decides (in Prefect's UI or
    with ``massar approve``) or the approval time runs out (the batch then expires).

    The form also offers a choice per REVIEW child (tasks/exchange_review.py): a changed
    choice is recorded, the batch is signed again, and the form comes back with the new
    manifest (the approve/reject of that form is not taken). A form sent by somebody not
    allowed to decide, or showing a manifest the batch no longer has, is refused in the flow's
    log and the flow waits again, until the same deadline."""
    from prefect import get_run_logger
    from prefect.exceptions import FlowPauseTimeout
    from prefect.flow_runs import pause_flow_run

    from tasks.exchange_review import (
        approval_form,
        decide_children,
        form_choices,
        form_description,
        review_state,
    )

    logger = get_run_logger()
    batch_id = summary["batch_id"]
    deadline = approval_deadline(settings, summary)
    logger.info(
        "Batch %s waits for a decision until %s UTC: use the form of this flow run in Prefect's "
        "UI (your name and your current code), or run 'massar approve %s [--reject]' under "
        "your own account; its %d REVIEW children can be "
        "decided in the form or with 'massar review %s'.",
        batch_id,
        f"{deadline:%Y-%m-%d %H:%M}",
        batch_id,
        summary["counts"].get("review", {}).get("queued", 0),
        batch_id,
    )
    pause_slice = settings.approval_pause_slice_seconds or 60 * settings.approval_poll_seconds
    attempt = 0
    while True:
        remaining = (deadline - datetime.now(UTC)).total_seconds()
        try:
            decided = recorded_decision(settings, batch_id)
            if decided is None or decided.decision not in DECIDED:
                state = review_state(settings, batch_id)  # as it stands: decisions re-sign it
        except OperationalError as error:  # the control database restarting: the batch waits
            if remaining <= 0:
                raise
            logger.warning(
                "The control database cannot be reached (%s); batch %s still waits for its "
                "decision, looking again in %d s.",
                type(error.orig).__name__,
                batch_id,
                settings.approval_poll_seconds,
            )
            time.sleep(settings.approval_poll_seconds)
            continue
        if decided is not None and decided.decision in DECIDED:
            return decided
        if remaining <= 0:
            break
        attempt += 1
        spec = approval_form(state, form_description(state, approval_text(state.summary)))
        try:
            form = pause_flow_run(
                wait_for_input=spec.model,
                # In slices, so that a decision recorded while the run was not paused (a
                # terminal's 'massar approve' at the wrong instant) is seen within one slice.
                timeout=max(1, int(min(remaining, pause_slice))),
                poll_interval=settings.approval_poll_seconds,
                key=f"approval-{batch_id.lower()}-{attempt}",
            )
        except FlowPauseTimeout:  # nobody resumed the run during this slice
            _running_again()
            continue
        decided = recorded_decision(settings, batch_id)
        if decided is not None and decided.decision in DECIDED:
            return decided  # 'massar approve' recorded it, then resumed the run
        changes = form_choices(spec, form)
        claim = Claim("prefect-ui", code=form.code, name=form.approver)
        try:
            if changes:
                done = decide_children(
                    settings,
                    batch_id,
                    changes,
                    claim,
                    form.comment,
                    manifest=form.manifest,
                )
                logger.info(
                    "%d review decision(s) recorded on batch %s by %s; %s %d of its %d REVIEW "
                    "children are still REVIEW. The batch waits for a decision on manifest %s.",
                    len(done.changes),
                    batch_id,
                    done.decided_by,
                    "its files were signed again;" if done.resigned else "no file changed;",
                    done.still_review,
                    done.queued,
                    done.manifest_after,
                )
                refreshed = batch_summary(settings, batch_id)
                publish_batch_artifact(refreshed)
                continue
            return record_decision(
                settings, batch_id, claim, form.approve, form.comment, manifest=form.manifest
            )
        except DecisionRefused as refused:
            logger.warning("%s The batch still waits for a decision.", refused)
    expired = expire_batch(settings, batch_id, now=max(datetime.now(UTC), deadline))
    assert expired is not None
    if expired.decision == "expired":
        logger.warning(
            "Nobody decided on batch %s within %g h: it expired and was not delivered.",
            batch_id,
            settings.approval_timeout_hours,
        )
    return expired


def _running_again() -> None:
    """After a pause slice ran out, put the run back to Running ourselves: Prefect's server
    refuses any transition out of a timed-out pause (it would fail the run), while the batch's
    own deadline, not the slice, decides when waiting ends."""
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run
    from prefect.states import Running

    with get_client(sync_client=True) as client:
        client.set_flow_run_state(flow_run.id, Running(), force=True)


def resume_waiting_flow(summary: dict[str, Any], decision: BatchDecision) -> bool:
    """Resume the flow run paused on this batch with the decision, so that it goes on at once;
    False when no run is paused on it (the next exchange run acts on the recorded decision)."""
    if not summary.get("flow_run_id"):
        return False
    from uuid import UUID

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        try:
            run = client.read_flow_run(UUID(summary["flow_run_id"]))
        except Exception:  # the run is unknown to this Prefect API
            return False
        if run.state is None or not run.state.is_paused():
            return False
        from prefect.flow_runs import resume_flow_run

        resume_flow_run(
            run.id,
            run_input={
                "approver": decision.approver,
                "approve": decision.decision == "approved",
                "comment": decision.comment,
            },
        )
        return True

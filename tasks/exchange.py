"""Tasks of the partner exchange: fetch a fund's request, prepare the answer batch (match, build,
sign), have a person decide on it, deliver it, and reconcile the fund's acknowledgements.

The file formats are the profiles' (connectors/exchange/), the matching is
tasks/match.py, the transport and ledger are connectors/partner_transport.py and
warehouse/exchange.py; this module ties them to the control database's batches and approvals.
Nothing here logs or returns a child's name, birth date or code: summaries are counts, school
codes, file names and sha256s.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import func, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError, OperationalError

from connectors.exchange.acknowledgement import parse_acknowledgement
from connectors.exchange.batch_files import build_batch_files
from connectors.exchange.file_error import ExchangeFileError
from connectors.exchange.file_names import acknowledgement_name_pattern
from connectors.exchange.profile import Profile
from connectors.exchange.registry import profile_for
from connectors.exchange.request_file import parse_request
from connectors.partner_transport import (
    DeliveryError,
    RefusedFile,
    RetryPolicy,
    deliver_batch,
    fetch_acknowledgements,
    fetch_requests,
    partner_transport_for,
)
from connectors.signing import SigningError, signing_identity
from ground.approvers import current_os_account, load_approvers
from ground.errors import OperatorError
from ground.settings import Settings
from schemas.exchange import STATUSES, ChildAnswer
from tasks.approval_rules import Claim, DecisionRefused, verify_decider
from tasks.disk_space import batch_prepared_whole, delivery_told_when_full
from tasks.fund_files_set_aside import (
    max_bytes,
    request_problem,
    set_aside,
    set_aside_names,
)
from tasks.leaving_records import load_leaving_records
from tasks.match import match_children
from tasks.match_summary import match_summary
from tasks.province_register import load_province_register
from tasks.review_queue import (
    Decision,
    ReviewQueue,
    build_review_queue,
    group_counts,
    group_label,
    review_csv,
    write_queue,
)
from warehouse.acknowledgement_records import (
    acknowledged_files,
    overdue_batches,
    record_acknowledgement,
)
from warehouse.approval_records import add_decision
from warehouse.control import Approval, ControlDatabase, ExchangeBatch, utcnow
from warehouse.exchange_ledger import ExchangeRecordError, VerifiedDecisionLedger

WAITING = "waiting_approval"
DECIDED = ("approved", "rejected", "expired")


_DECISION_RETRIES = 8


@dataclass(frozen=True)
class BatchDecision:
    """A decision as recorded: who, what, when, on which manifest."""

    batch_id: str
    decision: str  # approved | rejected | expired
    approver: str
    decided_at: datetime
    covered_sha256: str
    comment: str
    channel: str


def _database(settings: Settings) -> ControlDatabase:
    return ControlDatabase(settings.resolved_database_url)


def batch_folder(settings: Settings, partner: str, batch_id: str) -> Path:
    """Where a batch's files are kept in the home: ``exchange/<partner>/batches/<batch_id>/``."""
    return settings.exchange / partner / "batches" / batch_id


def _profile(partner: str) -> Profile:
    try:
        return profile_for(partner)
    except (KeyError, ValueError) as error:
        raise OperatorError(
            f"There is no exchange profile for {partner!r}; the platform knows cnss and cmr."
        ) from error


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.part")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---- requests ---------------------------------------------------------------------------------


def fetch_new_requests(settings: Settings, partner: str) -> list[Path]:
    """The fund's request files not answered yet, fetched from its outbox (SFTP, or the home's
    ``exchange/<partner>/outbox/`` in the embedded mode) into ``exchange/<partner>/received/``,
    as received. A request already answered by a batch is not fetched again.

    A request that is not a plain file name, is larger than ``request_max_megabytes`` or cannot
    be read as its profile says is set aside with a sentence (tasks/fund_files_set_aside.py)
    and not returned: the fund's other requests are answered."""
    profile = _profile(partner)
    database = _database(settings)
    try:
        with database.session() as session:
            known = set(
                session.scalars(
                    select(ExchangeBatch.request_file).where(ExchangeBatch.partner == partner)
                )
            )
    finally:
        database.dispose()
    transport = partner_transport_for(settings, partner)
    refused: list[RefusedFile] = []
    try:
        received = fetch_requests(
            transport,
            pattern=re.compile(profile.request.file_name),
            known=known | set_aside_names(settings, partner),
            max_bytes=max_bytes(settings.partners[partner].request_max_megabytes),
            refused=refused.append,
        )
    except DeliveryError as error:
        raise OperatorError(str(error)) from error
    for refusal in refused:
        set_aside(settings, partner, "request", refusal.name, refusal.reason, size=refusal.size)
    paths = []
    for item in received:
        path = transport.received_folder / item.name
        problem = request_problem(profile, path)
        if problem is None:
            paths.append(path)
        else:
            set_aside(
                settings, partner, "request", item.name, problem, data=item.data, received=path
            )
    return paths


def _request_year(name: str) -> str | None:
    found = re.search(r"_(\d{4})-(\d{4})_", name)
    return f"{found.group(1)}/{found.group(2)}" if found else None


# ---- preparing a batch ---------------------------------------------------------------------------


def prepare_batch(
    settings: Settings,
    partner: str,
    request_path: Path,
    prepared_by: str,
    flow_run_id: str = "",
    now: datetime | None = None,
) -> dict[str, Any]:
    """Answer one request file: match every child, build and sign the XML, CSV, ``.p7s`` and
    manifest, keep them under :func:`batch_folder` and record the batch as waiting for
    approval. Preparing the same request again returns the batch already prepared.

    Returns the batch summary (:func:`batch_summary`): counts, match rate, change since the
    last batch, file names and sha256s; no child's data. A malformed request, a missing
    warehouse or an unusable signing certificate is an :class:`OperatorError` (one sentence).
    """
    now = now or datetime.now(UTC)
    profile = _profile(partner)
    data = request_path.read_bytes()
    request_sha = _sha256(data)
    database = _database(settings)
    try:
        with database.session() as session:
            existing = session.scalars(
                select(ExchangeBatch).where(
                    ExchangeBatch.partner == partner, ExchangeBatch.request_sha256 == request_sha
                )
            ).first()
            if existing is not None:
                return batch_summary(settings, existing.batch_id)
        try:
            requests = parse_request(profile, request_path)
        except ExchangeFileError as error:
            raise OperatorError(
                f"The {profile.code} request {request_path.name} cannot be answered: {error} "
                "Ask the fund for a corrected file."
            ) from error
        school_year = _request_year(request_path.name)
        if school_year is None:
            raise OperatorError(
                f"The request {request_path.name} does not name its school year "
                f"(expected {profile.code}_SCOL_YYYY-YYYY_NNNN.csv); ask the fund to rename it."
            )
        try:
            identity = signing_identity(settings, at=now)
        except SigningError as error:
            raise OperatorError(str(error)) from error
        register = load_province_register(settings, school_year)
        leavers = load_leaving_records(settings)
        endpoint = settings.partners[partner]
        # Ages are counted on the matcher's reference date of the school year (31 December),
        # not on the day the batch is prepared.
        answers = match_children(
            requests, register, leavers, school_year, endpoint.age_windows, processes=2
        )
        with database.session() as session:
            sequence = (
                session.scalar(
                    select(func.max(ExchangeBatch.sequence)).where(ExchangeBatch.partner == partner)
                )
                or 0
            ) + 1
        batch_id = f"{profile.code}-{school_year[:4]}-{sequence:06d}"
        files = build_batch_files(
            profile,
            batch_id,
            sequence,
            school_year,
            answers,
            now,
            identity,
            legal_basis=endpoint.legal_basis,
        )
        folder = batch_folder(settings, partner, batch_id)
        # The REVIEW children with their candidates, for the officers (stays in the folder).
        queue = build_review_queue(batch_id, requests, answers, register, leavers, school_year)
        write_queue(folder, queue)
        for name, content in files.items():
            _write_atomically(folder / name, content)
        manifest = next(name for name in files if name.endswith("_manifest.json"))
        summary = match_summary(answers)
        with database.session() as session:
            counts = _counts_with_change(session, partner, summary, sequence, queue, {})
            _write_atomically(folder / "review.csv", review_csv(answers, queue, {}, counts))
            session.add(
                ExchangeBatch(
                    batch_id=batch_id,
                    partner=partner,
                    sequence=sequence,
                    profile_version=profile.version,
                    request_file=request_path.name,
                    request_sha256=request_sha,
                    school_year=school_year,
                    legal_basis=endpoint.legal_basis,
                    state=WAITING,
                    prepared_by=prepared_by,
                    prepared_at=now.replace(tzinfo=None),
                    children=len(answers),
                    counts=counts,
                    manifest_sha256=_sha256(files[manifest]),
                    files={name: _sha256(content) for name, content in files.items()},
                    flow_run_id=flow_run_id,
                )
            )
    finally:
        database.dispose()
    return batch_summary(settings, batch_id)


def run_preparer(given: str | None = None) -> str:
    """Who started the run that prepares batches, as batches record it and the approval rules
    compare it (``ground.approvers.is_preparer``): a deployment's run is
    ``schedule:<flow>/<deployment>`` when Prefect's scheduler made it, else
    ``deployment:<flow>/<deployment>`` (started from Prefect's UI or API, whose shared login
    proves nobody); a run of the flow in this
    process is ``given`` (the command line passes ``os:<account>``), else the OS account of
    the process. A ``prepared_by`` parameter of a deployment's run is never believed."""
    from prefect.runtime import deployment, flow_run

    if deployment.id:
        name = f"{flow_run.flow_name}/{deployment.name or deployment.id}"
        scheduled = False
        try:
            from uuid import UUID

            from prefect.client.orchestration import get_client

            with get_client(sync_client=True) as client:
                run = client.read_flow_run(UUID(str(flow_run.id)))
            scheduled = bool(run.auto_scheduled)
            if run.created_by is not None and run.created_by.display_value and not scheduled:
                return f"deployment:{name} by {run.created_by.display_value}"
        except Exception:  # the API cannot say: not taken for a schedule
            scheduled = False
        return f"{'schedule' if scheduled else 'deployment'}:{name}"
    if given and given.strip():
        return given.strip()
    return f"os:{current_os_account()}"


def review_list(answers: list[ChildAnswer]) -> bytes:
    """The officers' ``review.csv`` for answers alone (no queue, no decisions, no last
    batch): :func:`tasks.review_queue.review_csv`."""
    return review_csv(answers)


def _counts_with_change(
    session: Any,
    partner: str,
    summary: dict[str, Any],
    sequence: int,
    queue: ReviewQueue,
    decisions: dict[str, Decision],
) -> dict[str, Any]:
    """What the batch record, the artifact, the form and review.csv say about the batch's
    answers (as they stand after the officers' decisions): counts per status, match rates,
    the REVIEW children per reason and how many were decided, and the change since the fund's
    batch before this one. Counts and school codes only."""
    previous = session.scalars(
        select(ExchangeBatch)
        .where(ExchangeBatch.partner == partner, ExchangeBatch.sequence < sequence)
        .order_by(ExchangeBatch.sequence.desc())
        .limit(1)
    ).first()
    counts = {status: int(summary["by_status"].get(status, 0)) for status in STATUSES}
    groups = group_counts(queue, decisions)
    result: dict[str, Any] = {
        "statuses": counts,
        "match_rate": summary["match_rate"],
        "schools": {
            code: {"children": v["total"], "match_rate": v["match_rate"]}
            for code, v in summary["schools"].items()
        },
        "review_groups": {row["group"]: row["children"] for row in groups},
        "review": {
            "queued": len(queue.children),
            "decided": sum(row["decided"] for row in groups),
            "groups": groups,
        },
    }
    if previous is not None:
        earlier = previous.counts or {}
        before = earlier.get("statuses", {})
        result["previous_batch"] = previous.batch_id
        result["previous_statuses"] = {s: int(before.get(s, 0)) for s in STATUSES}
        result["change"] = {s: counts[s] - int(before.get(s, 0)) for s in STATUSES}
        result["match_rate_change"] = round(
            summary["match_rate"] - float(earlier.get("match_rate", 0.0)), 4
        )
        if "review_groups" in earlier:  # batches prepared before the queue have none
            last = {str(k): int(v) for k, v in earlier["review_groups"].items()}
            result["previous_review_groups"] = last
            result["review_group_change"] = {
                key: result["review_groups"].get(key, 0) - last.get(key, 0)
                for key in sorted(set(last) | set(result["review_groups"]))
            }
    return result


def batch_summary(settings: Settings, batch_id: str) -> dict[str, Any]:
    """What an approver sees: the batch, its counts per status, match rate, change since the
    last batch, its files with their sha256, and its latest decision."""
    database = _database(settings)
    try:
        with database.session() as session:
            batch = session.get(ExchangeBatch, batch_id)
            if batch is None:
                raise OperatorError(
                    f"There is no batch {batch_id}; 'massar status' lists the batches."
                )
            approval = _latest_approval(session, batch_id)
            return {
                "batch_id": batch.batch_id,
                "partner": batch.partner,
                "sequence": batch.sequence,
                "school_year": batch.school_year,
                "request_file": batch.request_file,
                "state": batch.state,
                "prepared_by": batch.prepared_by,
                "prepared_at": batch.prepared_at.isoformat(),
                "children": batch.children,
                "counts": dict(batch.counts or {}),
                "files": dict(batch.files or {}),
                "manifest_sha256": batch.manifest_sha256,
                "legal_basis": batch.legal_basis,
                "flow_run_id": batch.flow_run_id,
                "decision": None
                if approval is None
                else {
                    "decision": approval.decision,
                    "approver": approval.approver,
                    "decided_at": approval.decided_at.isoformat(),
                    "covered_sha256": approval.covered_sha256,
                    "channel": approval.channel,
                },
            }
    finally:
        database.dispose()


def approval_text(summary: dict[str, Any]) -> str:
    """The batch as markdown, for the approval form and the Prefect artifact (no child data)."""
    counts = summary["counts"]
    statuses = counts.get("statuses", {})
    change = counts.get("change")
    before = counts.get("previous_statuses")
    last = counts.get("previous_batch")
    lines = [
        f"### Batch {summary['batch_id']} for {summary['partner'].upper()} "
        f"({summary['school_year']})",
        "",
        f"Request `{summary['request_file']}`: {summary['children']} children; prepared by "
        f"{summary['prepared_by']} at {summary['prepared_at']} UTC. Match rate "
        f"{100 * counts.get('match_rate', 0):.1f} %.",
        "",
        f"| status | children | last batch{f' ({last})' if last else ''} | change |",
        "|---|---:|---:|---:|",
    ]
    for status in STATUSES:
        delta = "" if change is None else f"{change[status]:+d}"
        earlier = "" if before is None else str(before.get(status, 0))
        lines.append(f"| {status} | {statuses.get(status, 0)} | {earlier} | {delta} |")
    lines += review_groups_text(counts, summary["batch_id"])
    lines += ["", "| file | sha256 |", "|---|---|"]
    lines += [f"| {name} | `{sha}` |" for name, sha in summary["files"].items()]
    lines += [
        "",
        f"Approving covers the manifest `{summary['manifest_sha256']}`. Legal basis: "
        f"{summary['legal_basis'] or 'not configured'}. A REVIEW answer approved as it is "
        "tells the fund not to suspend the benefit and to ask again in a later request.",
    ]
    return "\n".join(lines)


def review_groups_text(counts: dict[str, Any], batch_id: str) -> list[str]:
    """Markdown lines: the batch's REVIEW children per reason (the matcher's reason codes, in
    French and Arabic), how many an officer decided, the fund's last batch and the change.
    Counts and reasons only."""
    review = counts.get("review")
    if not review or not review.get("queued"):
        return ["", "No child to review: the matcher answered every child."]
    last = counts.get("previous_review_groups")
    lines = [
        "",
        f"**{review['queued']} REVIEW children to look at, {review['decided']} decided by an "
        "officer so far**, by reason (the names needed to decide are shown only by "
        f"`massar review {batch_id}` on the platform's machine; the "
        "batch folder's review.csv lists them by reason, without names):",
        "",
        "| REVIEW because (raison) | السبب | children | decided | last batch | change |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in review["groups"]:
        french, arabic = group_label(row["group"])
        earlier = "" if last is None else str(last.get(row["group"], 0))
        delta = "" if last is None else f"{row['children'] - last.get(row['group'], 0):+d}"
        lines.append(
            f"| {french} | {arabic} | {row['children']} | {row['decided']} | {earlier} | {delta} |"
        )
    for key, count in sorted((last or {}).items()):
        if count and key not in {row["group"] for row in review["groups"]}:
            french, arabic = group_label(key)
            lines.append(f"| {french} | {arabic} | 0 | 0 | {count} | {-count:+d} |")
    return lines


# ---- decisions ----------------------------------------------------------------------------------


def _latest_approval(session: Any, batch_id: str) -> Approval | None:
    return session.scalars(
        select(Approval)
        .where(Approval.batch_id == batch_id)
        .order_by(Approval.approval_id.desc())
        .limit(1)
    ).first()


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
                timeout=max(1, int(min(remaining, 60 * settings.approval_poll_seconds))),
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


# ---- delivery -----------------------------------------------------------------------------------


def deliver_approved(settings: Settings, batch_id: str) -> dict[str, Any]:
    """Deliver an approved batch's files (manifest last) as they were approved; re-running sends
    nothing twice. Before any byte leaves, the ledger re-checks the decision
    (:class:`warehouse.exchange.VerifiedDecisionLedger`): approved, by a verified person on the
    approvers list who did not prepare the batch, on the batch's manifest, with its digest and
    message-log entry intact; anything else is refused in a sentence."""
    summary = batch_summary(settings, batch_id)
    partner = summary["partner"]
    folder = batch_folder(settings, partner, batch_id)
    names = sorted(summary["files"], key=lambda n: (n.endswith("_manifest.json"), n))
    files = {}
    for name in names:
        path = folder / name
        if not path.is_file():
            raise OperatorError(
                f"File {name} of batch {batch_id} is missing from {folder}; it cannot be "
                "delivered as approved. Restore the folder from the backup."
            )
        files[name] = path.read_bytes()
    decision = summary["decision"] or {}
    database = _database(settings)
    endpoint = settings.partners[partner]
    try:
        report = deliver_batch(
            partner_transport_for(settings, partner),
            VerifiedDecisionLedger(database, load_approvers(settings.home)),
            batch_id=batch_id,
            files=files,
            approver=decision.get("approver", ""),
            retry=RetryPolicy(
                attempts=endpoint.delivery_attempts, base_delay=endpoint.delivery_backoff_seconds
            ),
        )
    except (DeliveryError, ExchangeRecordError) as error:
        raise OperatorError(str(error)) from error
    finally:
        database.dispose()
    return {
        "batch_id": batch_id,
        "sent": report.sent,
        "already_delivered": report.already_delivered,
        "found_at_partner": report.found_at_partner,
        "connection_failures": report.connection_failures,
        "message": report.message,
    }


def undecided_batches(settings: Settings, partner: str) -> list[str]:
    """Batches of a partner waiting for a person's decision, oldest first."""
    database = _database(settings)
    try:
        with database.session() as session:
            return list(
                session.scalars(
                    select(ExchangeBatch.batch_id)
                    .where(ExchangeBatch.partner == partner, ExchangeBatch.state == WAITING)
                    .order_by(ExchangeBatch.sequence)
                )
            )
    finally:
        database.dispose()


def undelivered_approved_batches(settings: Settings, partner: str) -> list[str]:
    """Approved batches whose delivery did not finish (a cut connection, a stopped run)."""
    database = _database(settings)
    try:
        with database.session() as session:
            return list(
                session.scalars(
                    select(ExchangeBatch.batch_id)
                    .where(ExchangeBatch.partner == partner, ExchangeBatch.state == "approved")
                    .order_by(ExchangeBatch.sequence)
                )
            )
    finally:
        database.dispose()


# ---- acknowledgements ---------------------------------------------------------------------------


def reconcile_acknowledgements(
    settings: Settings, partner: str, now: datetime | None = None
) -> dict[str, Any]:
    """Fetch the fund's new acknowledgements, bind each to the sha256 of the file it
    acknowledges, record the outcome per child, and list the delivered batches whose
    acknowledgement is late. An acknowledgement that cannot be bound is reported in a sentence
    and kept as received; it does not count as an answer. One that is not a plain file name,
    is larger than ``acknowledgement_max_megabytes`` or cannot be read is set aside with a
    sentence (tasks/fund_files_set_aside.py), reported, and not fetched again."""
    now = now or datetime.now(UTC)
    profile = _profile(partner)
    database = _database(settings)
    problems: list[str] = []
    recorded: list[dict[str, Any]] = []
    try:
        transport = partner_transport_for(settings, partner)
        refused: list[RefusedFile] = []
        known = set(acknowledged_files(database, partner)) | set_aside_names(settings, partner)
        try:
            received = fetch_acknowledgements(
                transport,
                pattern=acknowledgement_name_pattern(profile),
                known=known,
                max_bytes=max_bytes(settings.partners[partner].acknowledgement_max_megabytes),
                refused=refused.append,
            )
        except DeliveryError as error:
            raise OperatorError(str(error)) from error
        for refusal in refused:
            aside = set_aside(
                settings,
                partner,
                "acknowledgement",
                refusal.name,
                refusal.reason,
                size=refusal.size,
            )
            problems.append(aside.sentence)
        for item in received:
            try:
                ack = parse_acknowledgement(profile, item.data, name=item.name)
            except ExchangeFileError as error:
                problems.append(str(error))
                set_aside(
                    settings,
                    partner,
                    "acknowledgement",
                    item.name,
                    str(error),
                    data=item.data,
                    received=transport.received_folder / item.name,
                )
                continue
            with database.session() as session:
                batch = session.get(ExchangeBatch, ack.batch_id)
                expected = (batch.files or {}).get(ack.response_file) if batch else None
            if expected is not None and expected != ack.response_sha256:
                problems.append(
                    f"The acknowledgement {item.name} names {ack.response_file} with sha256 "
                    f"{ack.response_sha256[:12]}…, which is not the file delivered in batch "
                    f"{ack.batch_id}; it does not count as an answer. Ask {profile.code} which "
                    "file it received."
                )
            rejected = [
                {"fund_reference": c.fund_reference, "reason": c.reason}
                for c in ack.children
                if not c.accepted
            ]
            try:
                record = record_acknowledgement(
                    database,
                    batch_id=ack.batch_id,
                    partner=partner,
                    file_name=item.name,
                    data_sha256=item.sha256,
                    acknowledged_sha256=ack.response_sha256,
                    accepted=ack.accepted,
                    rejected=ack.rejected,
                    detail={
                        "response_file": ack.response_file,
                        "file_accepted": ack.file_accepted,
                        "file_reason": ack.file_reason,
                        "rejected_children": rejected,
                    },
                    received_at=ack.received_at.astimezone(UTC).replace(tzinfo=None),
                )
            except ExchangeRecordError as error:
                problems.append(str(error))
                continue
            recorded.append(
                {
                    "file": item.name,
                    "batch_id": ack.batch_id,
                    "bound": record.bound,
                    "accepted": ack.accepted,
                    "rejected": ack.rejected,
                }
            )
        late = overdue_batches(
            database, now, settings.partners[partner].acknowledgement_delay_hours, partner
        )
    finally:
        database.dispose()
    return {
        "partner": partner,
        "acknowledgements": recorded,
        "problems": problems,
        "overdue": [
            {"batch_id": b.batch_id, "waiting_hours": round(b.waiting_hours, 1)} for b in late
        ],
    }


def reconciliation(settings: Settings, batch_id: str) -> list[dict[str, str]]:
    """Per child of a batch: what we answered and what the fund did with it (accepted, or
    rejected with its reason; ``pending`` without acknowledgement). For the officers."""
    summary = batch_summary(settings, batch_id)
    folder = batch_folder(settings, summary["partner"], batch_id)
    csv_name = next(n for n in summary["files"] if n.endswith(".csv"))
    profile = _profile(summary["partner"])
    layout = profile.response_csv
    text = (folder / csv_name).read_bytes().decode(layout.encoding)
    rows = list(csv.DictReader(io.StringIO(text), delimiter=layout.delimiter))
    reference, status = layout.header["fund_reference"], layout.header["status"]
    database = _database(settings)
    try:
        from warehouse.control import Acknowledgement

        with database.session() as session:
            acks = session.scalars(
                select(Acknowledgement).where(Acknowledgement.batch_id == batch_id)
            ).all()
            bound = [a for a in acks if (a.detail or {}).get("bound_to_delivery")]
    finally:
        database.dispose()
    rejected: dict[str, str] = {}
    for ack in bound:
        for child in (ack.detail or {}).get("rejected_children", []):
            rejected[child["fund_reference"]] = child["reason"]
    outcome = "accepted" if bound else "pending"
    return [
        {
            "fund_reference": row[reference],
            "answered": row[status],
            "outcome": "rejected" if row[reference] in rejected else outcome,
            "reason": rejected.get(row[reference], ""),
        }
        for row in rows
    ]


def operator_sentence(error: BaseException) -> str:
    """The sentence of an :class:`OperatorError`; anything else is a defect and is raised."""
    if isinstance(error, OperatorError):
        return str(error)
    raise error


def exchange_artifact(summary: dict[str, Any]) -> str:
    """Markdown for the Prefect artifact of a batch (no child data)."""
    return approval_text(summary) + "\n\nState: **" + summary["state"] + "**.\n"


def publish_batch_artifact(summary: dict[str, Any]) -> None:
    """The batch's Prefect artifact (a new version under the same key each time): counts per
    status and per REVIEW reason, the change since the fund's last batch, the files."""
    from prefect.artifacts import create_markdown_artifact

    batch_id, partner = summary["batch_id"], summary["partner"].upper()
    create_markdown_artifact(
        key=f"exchange-{batch_id.lower()}",
        markdown=exchange_artifact(summary),
        description=f"{partner} batch {batch_id}: {summary['state']}",
    )


fetch_requests_task = task(name="fetch_partner_requests", cache_policy=NO_CACHE)(fetch_new_requests)
# A batch is prepared whole or not at all, a full disk is one sentence (tasks/disk_space.py).
prepare_batch_task = task(name="prepare_batch", cache_policy=NO_CACHE)(
    batch_prepared_whole(prepare_batch)
)
deliver_task = task(name="deliver_batch", cache_policy=NO_CACHE, retries=0)(
    delivery_told_when_full(deliver_approved)
)
reconcile_task = task(name="reconcile_acknowledgements", cache_policy=NO_CACHE)(
    reconcile_acknowledgements
)

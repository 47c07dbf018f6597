"""Preparing a fund's answer batch (match, build, sign), its summary and the texts a person
reads before deciding on it (no child data), and its Prefect artifact."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import func, select

from connectors.exchange.batch_files import build_batch_files
from connectors.exchange.file_error import ExchangeFileError
from connectors.exchange.request_file import parse_request
from connectors.signing import SigningError, signing_identity
from ground.approvers import current_os_account
from ground.errors import OperatorError
from ground.settings import Settings
from schemas.exchange import STATUSES, ChildAnswer
from tasks.disk_space import batch_prepared_whole
from tasks.exchange_batches import (
    WAITING,
    _database,
    _latest_approval,
    _profile,
    _sha256,
    _write_atomically,
    batch_folder,
)
from tasks.exchange_requests import _request_year
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
from warehouse.control import ExchangeBatch


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


# A batch is prepared whole or not at all, a full disk is one sentence (tasks/disk_space.py).
prepare_batch_task = task(name="prepare_batch", cache_policy=NO_CACHE)(
    batch_prepared_whole(prepare_batch)
)

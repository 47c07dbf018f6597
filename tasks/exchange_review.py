"""Officers' decisions on the REVIEW children of a batch waiting for approval: from the terminal
(``massar review``) and from the paused exchange run's form in Prefect's UI.

A decision is recorded (table ``review_decisions``: who, when, which child, from what to what)
and logged in the hash-chained message log, and the batch's XML, CSV, ``.p7s`` and manifest are
rebuilt and signed again with the answers as decided, all in one transaction that only goes
through while the batch still waits with the manifest the officer saw. An approval then covers
the new manifest (tasks/batch_decisions.py ``record_decision``); once a batch is decided, its REVIEW
children can no longer change.

Only counts, reasons, school and level codes reach Prefect (the form, the artifact, the logs);
the names the officer compares are shown by ``massar review BATCH`` on the platform's machine.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, cast

from sqlalchemy import update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError

from connectors.exchange.batch_files import build_batch_files
from connectors.exchange.response_files import contracted_values, read_response_csv
from connectors.signing import SigningError, signing_identity
from ground.errors import OperatorError
from ground.settings import Settings
from schemas.exchange import NOT_FOUND, REVIEW
from tasks.approval_rules import Claim, DecisionRefused, verify_decider
from tasks.batch_preparation import _counts_with_change, batch_summary
from tasks.exchange_batches import (
    WAITING,
    _database,
    _profile,
    _sha256,
    _write_atomically,
    batch_folder,
)
from tasks.match_summary import match_summary
from tasks.review_queue import (
    Decision,
    QueuedChild,
    ReviewQueue,
    decided_answer,
    final_answers,
    group_label,
    latest_decisions,
    read_queue,
    review_csv,
)
from warehouse.control import ExchangeBatch
from warehouse.review_records import add_review_decision, review_decisions

KEEP = "keep"
NOT_FOUND_CHOICE = "not-found"
FORM_CHILDREN = 30  # children a Prefect form lists; 'massar review' decides any of them
_RETRIES = 8


@dataclass(frozen=True)
class ChildChoice:
    """What an officer says of one child: ``keep``, ``not-found``, or a candidate's Massar
    code (or its number in the child's list)."""

    fund_reference: str
    choice: str


@dataclass
class ReviewOutcome:
    """What :func:`decide_children` recorded; ``changes`` name children and statuses only."""

    batch_id: str
    decided_by: str
    changes: list[dict[str, Any]] = field(default_factory=list)
    manifest_before: str = ""
    manifest_after: str = ""
    still_review: int = 0
    queued: int = 0

    @property
    def resigned(self) -> bool:
        return self.manifest_after != self.manifest_before


@dataclass(frozen=True)
class ReviewState:
    summary: dict[str, Any]
    queue: ReviewQueue
    decisions: dict[str, Decision]


def review_state(settings: Settings, batch_id: str) -> ReviewState:
    """The batch (:func:`batch_summary`), its review queue and the latest decision per child."""
    summary = batch_summary(settings, batch_id)
    queue = read_queue(batch_folder(settings, summary["partner"], batch_id))
    database = _database(settings)
    try:
        decisions = latest_decisions(review_decisions(database, batch_id))
    finally:
        database.dispose()
    return ReviewState(summary, queue, decisions)


def _target(child: QueuedChild, choice: str, batch_id: str) -> tuple[str, str]:
    """(status, candidate code) a choice gives; DecisionRefused for a code not among the
    child's candidates."""
    wanted = choice.strip()
    if wanted.lower() == KEEP:
        return REVIEW, ""
    if wanted.lower() == NOT_FOUND_CHOICE:
        return NOT_FOUND, ""
    candidate = child.candidate(wanted)
    if candidate is None:
        codes = ", ".join(c.student_code for c in child.candidates) or "none"
        raise DecisionRefused(
            f"{wanted} is not a candidate of child {child.fund_reference} in batch {batch_id} "
            f"(its candidates: {codes}); nothing was recorded. 'massar review {batch_id} --child "
            f"{child.fund_reference}' lists them."
        )
    return candidate.answer["status"], candidate.student_code


def decide_children(
    settings: Settings,
    batch_id: str,
    choices: Sequence[ChildChoice],
    claim: Claim,
    comment: str = "",
    manifest: str | None = None,
    now: datetime | None = None,
) -> ReviewOutcome:
    """Record officers' decisions on REVIEW children of a batch waiting for approval, then
    rebuild and sign its files with the answers as decided.

    ``claim`` must prove a person allowed to decide on the batch
    (:func:`tasks.approval_rules.verify_decider`: a verified approver, with their code, who did
    not prepare it; a refusal is recorded in the message log). ``manifest``: the manifest the
    officer was shown; when given, the decisions are refused if the batch changed since. A
    choice that changes nothing is not recorded, except an explicit ``keep`` of a child never
    decided. Refused (:class:`DecisionRefused`, one sentence) when the batch is not waiting, a
    child is not one of its REVIEW children, a code is not one of the child's candidates, or the
    batch changed while the decisions were recorded; nothing is recorded then."""
    code_at = now  # None: the code is checked at the approval rules' clock
    now = now or datetime.now(UTC)
    state = review_state(settings, batch_id)
    summary, queue = state.summary, state.queue
    latest = dict(state.decisions)
    database = _database(settings)
    try:
        with database.session() as session:
            batch = session.get(ExchangeBatch, batch_id)
            assert batch is not None  # batch_summary found it
            if batch.state != WAITING:
                raise DecisionRefused(
                    f"Batch {batch_id} is not waiting for approval any more (it is "
                    f"{batch.state}), so its REVIEW children can no longer be decided; nothing "
                    "was recorded."
                )
        name = verify_decider(settings.home, database, batch, claim, "review", code_at).name
        before = batch.manifest_sha256
        sequence = batch.sequence
    finally:
        database.dispose()
    if manifest is not None and manifest != before:
        raise DecisionRefused(
            f"Batch {batch_id} changed since it was shown (another decision re-signed it: its "
            f"manifest is now {before[:12]}…), so these review decisions were not recorded; "
            "look at the batch again."
        )
    outcome = ReviewOutcome(batch_id, name, manifest_before=before, queued=len(queue.children))
    year = summary["school_year"]
    for choice in choices:
        child = queue.child(choice.fund_reference)
        if child is None:
            raise DecisionRefused(
                f"{choice.fund_reference} is not a REVIEW child of batch {batch_id}, so nothing "
                f"was recorded; 'massar review {batch_id}' lists them."
            )
        to_status, code = _target(child, choice.choice, batch_id)
        answer = decided_answer(child, to_status, code, year)
        try:
            contracted_values(answer, year)
        except ValueError as error:
            raise DecisionRefused(
                f"Candidate {code} of child {child.fund_reference} cannot be answered "
                f"({error}); nothing was recorded. Keep the child REVIEW or choose another "
                "candidate."
            ) from error
        current = latest.get(child.fund_reference)
        from_status = current.to_status if current else REVIEW
        from_code = current.student_code if current else ""
        if current is not None and (from_status, from_code) == (to_status, code):
            continue  # already so
        latest[child.fund_reference] = Decision(to_status, code, name, now.isoformat())
        outcome.changes.append(
            {
                "item": child.item,
                "fund_reference": child.fund_reference,
                "from_status": from_status,
                "from_code": from_code,
                "to_status": to_status,
                "student_code": code,
            }
        )
    if not outcome.changes:
        outcome.manifest_after = before
        outcome.still_review = _still_review(queue, latest)
        return outcome

    folder = batch_folder(settings, summary["partner"], batch_id)
    files_change = any(
        (c["from_status"], c["from_code"]) != (c["to_status"], c["student_code"])
        for c in outcome.changes
    )
    staging = folder / ".rebuild"
    files = dict(summary["files"])
    counts = summary["counts"]
    answers = None
    if files_change:
        answers, built = _rebuild(settings, summary, queue, latest, sequence, now)
        shutil.rmtree(staging, ignore_errors=True)
        for file_name, content in built.items():
            _write_atomically(staging / file_name, content)
        files = {file_name: _sha256(content) for file_name, content in built.items()}
        manifest_name = next(n for n in built if n.endswith("_manifest.json"))
        after = files[manifest_name]
    else:
        after = before
    outcome.manifest_after = after
    outcome.still_review = _still_review(queue, latest)
    try:
        for attempt in range(_RETRIES):
            database = _database(settings)
            try:
                with database.session() as session:
                    if answers is not None:
                        counts = _counts_with_change(
                            session,
                            summary["partner"],
                            match_summary(answers),
                            sequence,
                            queue,
                            latest,
                        )
                    claimed = cast(
                        CursorResult[Any],
                        session.execute(
                            update(ExchangeBatch)
                            .where(
                                ExchangeBatch.batch_id == batch_id,
                                ExchangeBatch.state == WAITING,
                                ExchangeBatch.manifest_sha256 == before,
                            )
                            .values(manifest_sha256=after, files=files, counts=counts)
                            .execution_options(synchronize_session=False)
                        ),
                    )
                    if claimed.rowcount != 1:
                        raise DecisionRefused(
                            f"Batch {batch_id} was decided or changed by somebody else while "
                            "these review decisions were recorded, so none was; look at the "
                            "batch again."
                        )
                    for change in outcome.changes:
                        add_review_decision(
                            session,
                            partner=summary["partner"],
                            batch_id=batch_id,
                            item=change["item"],
                            fund_reference=change["fund_reference"],
                            from_status=change["from_status"],
                            to_status=change["to_status"],
                            student_code=change["student_code"],
                            decided_by=name,
                            channel=claim.channel,
                            comment=comment,
                            manifest_before=before,
                            manifest_after=after,
                        )
                    # The files change last, inside the transaction: the batch's record and
                    # its files name the same manifest once it commits.
                    if files_change:
                        for file_name in files:
                            os.replace(staging / file_name, folder / file_name)
                break
            except IntegrityError:  # another writer took the message log's next place
                if attempt == _RETRIES - 1:
                    raise
            finally:
                database.dispose()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if answers is None:
        answers = read_response_csv(
            _profile(summary["partner"]),
            (folder / next(n for n in files if n.endswith(".csv"))).read_bytes(),
        )
    _write_atomically(folder / "review.csv", review_csv(answers, queue, latest, counts))
    return outcome


def _still_review(queue: ReviewQueue, decisions: dict[str, Decision]) -> int:
    return sum(
        1
        for child in queue.children
        if decisions.get(child.fund_reference, Decision(REVIEW)).to_status == REVIEW
    )


def _rebuild(
    settings: Settings,
    summary: dict[str, Any],
    queue: ReviewQueue,
    decisions: dict[str, Decision],
    sequence: int,
    now: datetime,
) -> tuple[list[Any], dict[str, bytes]]:
    """The batch's answers as decided and its files built and signed again (same names, same
    batch id and sequence, generated now)."""
    partner, batch_id = summary["partner"], summary["batch_id"]
    profile = _profile(partner)
    folder = batch_folder(settings, partner, batch_id)
    csv_name = next(n for n in summary["files"] if n.endswith(".csv"))
    answers = final_answers(
        read_response_csv(profile, (folder / csv_name).read_bytes()),
        queue,
        decisions,
        summary["school_year"],
    )
    try:
        identity = signing_identity(settings, at=now)
    except SigningError as error:
        raise OperatorError(str(error)) from error
    files = build_batch_files(
        profile,
        batch_id,
        sequence,
        summary["school_year"],
        answers,
        now,
        identity,
        legal_basis=summary["legal_basis"],
    )
    return answers, files


# ---- the paused run's form ----------------------------------------------------------------------


def _choice_labels(child: QueuedChild) -> dict[str, str]:
    """Form label → choice, for one child: counts, statuses, school and level codes only."""
    labels = {
        "keep REVIEW (the fund is told not to suspend)": KEEP,
        "NOT_FOUND: no pupil of the province is this child": NOT_FOUND_CHOICE,
    }
    for c in child.candidates:
        label = (
            f"candidate {c.number} is the child → {c.answer['status']}, school "
            f"{c.school_code or '?'}, level {c.level_code or '?'} (score {c.score:.2f})"
        )
        labels[label] = c.student_code
    return labels


def _current_label(labels: dict[str, str], decision: Decision | None) -> str:
    if decision is None or decision.to_status == REVIEW:
        wanted = KEEP
    elif decision.to_status == NOT_FOUND:
        wanted = NOT_FOUND_CHOICE
    else:
        wanted = decision.student_code
    return next(label for label, choice in labels.items() if choice == wanted)


@dataclass(frozen=True)
class ApprovalFormSpec:
    """The form of one pause and how to read its answers back."""

    model: Any  # a prefect.input.RunInput subclass
    children: dict[str, tuple[str, dict[str, str], str]]  # field → (reference, labels, initial)


def approval_form(state: ReviewState, description: str) -> ApprovalFormSpec:
    """The paused run's form: the approver's name and current code, approve (ticked) or reject,
    a comment, the
    manifest shown, and one choice per REVIEW child (the first :data:`FORM_CHILDREN`, those
    not decided yet first). Labels hold statuses, school and level codes and scores; the
    children are numbered as in ``massar review``, never named."""
    import pydantic
    from prefect.input import RunInput

    fields: dict[str, Any] = {
        "approver": (
            str,
            pydantic.Field(default="", title="Approver", description="Your name, as listed."),
        ),
        "code": (
            str,
            pydantic.Field(
                default="",
                title="Code",
                description="The 6-digit code your authenticator app shows now (the UI's "
                "login is shared: this code proves it is you). A code is taken once.",
            ),
        ),
        "approve": (
            bool,
            pydantic.Field(
                default=False,
                title="Approve",
                description="Ticked: approve the batch; not ticked: reject it. Not taken when "
                "a REVIEW choice below changes: the batch is signed again and comes back.",
            ),
        ),
        "comment": (str, pydantic.Field(default="", title="Comment")),
        "manifest": (
            str,
            pydantic.Field(
                default=state.summary["manifest_sha256"],
                title="Manifest shown",
                description="The manifest this form shows; leave it as it is.",
            ),
        ),
    }
    children: dict[str, tuple[str, dict[str, str], str]] = {}
    ordered = sorted(
        state.queue.children,
        key=lambda c: (c.fund_reference in state.decisions, c.item),
    )
    for child in ordered[:FORM_CHILDREN]:
        labels = _choice_labels(child)
        initial = _current_label(labels, state.decisions.get(child.fund_reference))
        key = f"child_{child.item}"
        fields[key] = (
            Literal[tuple(labels)],  # type: ignore[valid-type]
            pydantic.Field(
                default=initial,
                title=f"REVIEW child #{child.item}",
                description=f"{group_label(child.group)[0]}. {child.reason}.",
            ),
        )
        children[key] = (child.fund_reference, labels, initial)
    model = pydantic.create_model("ApprovalForm", __base__=RunInput, **fields)
    model._description = description  # type: ignore[attr-defined]  # Prefect shows it
    return ApprovalFormSpec(model, children)


def form_choices(spec: ApprovalFormSpec, form: Any) -> list[ChildChoice]:
    """The children whose choice the submitted form changed."""
    out = []
    for key, (reference, labels, initial) in spec.children.items():
        chosen = getattr(form, key, initial)
        if chosen != initial:
            out.append(ChildChoice(reference, labels[chosen]))
    return out


def form_description(state: ReviewState, approval_text: str) -> str:
    """The form's text: the batch as the artifact shows it, and how to decide its children."""
    queued = len(state.queue.children)
    if not queued:
        return approval_text
    batch_id = state.summary["batch_id"]
    shown = min(queued, FORM_CHILDREN)
    more = (
        f" The form lists {shown} of them (those not decided first); decide the others with "
        f"'massar review {batch_id}'."
        if queued > shown
        else ""
    )
    return (
        f"{approval_text}\n\n**REVIEW children.** Each can be decided below: a candidate is "
        "the child, no pupil is the child (NOT_FOUND), or keep REVIEW. Compare the names first "
        f"with 'massar review {batch_id}' on the platform's machine: names, birth dates and "
        "codes never come to Prefect. A changed choice is recorded under the approver's name, "
        "the batch is signed again and this form comes back with the new manifest to approve."
        f"{more}"
    )


# ---- the terminal ------------------------------------------------------------------------------


def review_listing(
    settings: Settings, batch_id: str, child: str | None = None, undecided: bool = False
) -> str:
    """What ``massar review BATCH`` prints: the batch, its REVIEW children per reason with
    counts, then each child (or only ``child``, or only those still undecided) with the names
    and birth date the fund sent and its candidates (names, birth date, school, level, class,
    scores, what choosing it answers). For the officer at the platform's terminal only."""
    from tasks.review_queue import describe_child

    state = review_state(settings, batch_id)
    summary, queue = state.summary, state.queue
    if child is not None:
        found = queue.child(child)
        if found is None:
            raise OperatorError(
                f"{child} is not a REVIEW child of batch {batch_id}; 'massar review {batch_id}' "
                "lists them."
            )
        return "\n".join(describe_child(found, state.decisions.get(found.fund_reference)))
    counts = summary["counts"]
    review = counts.get("review") or {"queued": 0, "decided": 0, "groups": []}
    waiting = summary["state"] == WAITING
    lines = [
        f"Batch {batch_id} ({summary['partner'].upper()}, {summary['school_year']}), "
        f"{summary['state']}: {summary['children']} children, {review['queued']} answered "
        f"REVIEW by the matcher, {review['decided']} decided by an officer, "
        f"{_still_review(queue, state.decisions)} still REVIEW.",
    ]
    if not queue.children:
        lines.append("No child to review.")
        return "\n".join(lines)
    for row in review["groups"]:
        french, _ = group_label(row["group"])
        lines.append(f"  {row['children']:>4} {french} ({row['decided']} decided)")
    if waiting:
        lines.append(
            f"Decide a child with 'massar review {batch_id} --child REF --candidate CODE|"
            "--not-found|--keep' under your own account (it asks for your code); then approve "
            "the batch with 'massar approve'."
        )
    else:
        lines.append("The batch is not waiting for approval: its children can no longer change.")
    for queued in queue.children:
        decision = state.decisions.get(queued.fund_reference)
        if undecided and decision is not None:
            continue
        lines += ["", *describe_child(queued, decision)]
    return "\n".join(lines)


def decision_text(outcome: ReviewOutcome) -> str:
    """One paragraph for the terminal about what :func:`decide_children` recorded."""
    if not outcome.changes:
        return (
            f"Nothing changed in batch {outcome.batch_id}: the child already had that answer; "
            f"{outcome.still_review} of its {outcome.queued} REVIEW children are still REVIEW."
        )
    done = "; ".join(
        f"{c['fund_reference']} {c['from_status']} → {c['to_status']}"
        + (f" ({c['student_code']})" if c["student_code"] else "")
        for c in outcome.changes
    )
    files = (
        f"its files were signed again (manifest {outcome.manifest_after})"
        if outcome.resigned
        else "no file changed"
    )
    return (
        f"Batch {outcome.batch_id}: {done}, decided by {outcome.decided_by}; {files}. "
        f"{outcome.still_review} of its {outcome.queued} REVIEW children are still REVIEW. "
        f"Approve the batch with 'massar approve {outcome.batch_id}' when done."
    )

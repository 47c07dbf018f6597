"""The officers' review queue of a batch: its REVIEW children, each with the candidates the
matcher considered, and what an officer's decision makes of the child's answer.

    build_review_queue(requests, answers, register, leavers, school_year) -> ReviewQueue
    write_queue(folder, queue) / read_queue(folder)         <batch folder>/review-queue.json
    decided_answer(child, to_status, code, school_year)     the answer a decision gives
    final_answers(answers, queue, decisions)                 the batch's answers after decisions
    answer_group(answer) / group_counts(...)                 REVIEW children grouped by reason
    review_csv(...)                                          <batch folder>/review.csv
    describe_child(child, decision)                          the terminal's lines for one child

A decision is one of three: a candidate is the child (the answer becomes what the matcher would
have answered for that candidate: SCHOOLED, LEFT with the date, or NOT_SCHOOLED for a leaver not
enrolled this year, with the candidate's Massar code, school and level), no pupil is the child
(NOT_FOUND), or keep REVIEW. docs/decisions/0004-matching-children.md says what REVIEW means.

The queue holds personal data (the names and birth date the fund sent, each candidate's names,
birth date, school and class): it stays in the batch folder, is shown only by ``massar review``
on the platform's machine, and never reaches a response file, a Prefect form, artifact or log.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from functools import cache, cached_property
from pathlib import Path
from typing import Any

from schemas.exchange import (
    LEFT,
    NOT_FOUND,
    NOT_SCHOOLED,
    REVIEW,
    SCHOOLED,
    ChildAnswer,
    ChildRequest,
)
from tasks.identifier_keys import cin_key, code_key, number_key
from tasks.match_decision import Matcher
from tasks.match_reasons import BY_CODE
from tasks.match_scoring import DEFAULT_POLICY, request_keys

QUEUE_FILE = "review-queue.json"
QUEUE_FORMAT = "massar-review-queue/1"
CANDIDATES_SHOWN = 5  # enough to compare by eye; the matcher rarely finds two plausible ones
DECIDABLE = (SCHOOLED, LEFT, NOT_SCHOOLED, NOT_FOUND, REVIEW)


# ---- reasons, grouped: the matcher's reason codes (tasks/match_reasons.py) ---------------------

# An answer without a code (one made by hand, not by the matcher) still falls in a group.
_WITHOUT_CODE = {REVIEW: "not_sure", NOT_FOUND: "no_match"}


def answer_group(answer: ChildAnswer) -> str:
    """The reason group of a REVIEW or NOT_FOUND answer: the matcher's ``reason_code``."""
    if answer.reason_code in BY_CODE:
        return answer.reason_code
    return _WITHOUT_CODE.get(answer.status, "not_sure")


def group_label(code: str) -> tuple[str, str]:
    """(French, Arabic) label of a reason group; the code itself for one the matcher no longer
    writes (a batch prepared by an older version)."""
    reason = BY_CODE.get(code)
    return (reason.french, reason.arabic) if reason else (code, code)


# ---- the queue ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """A pupil (or a leaver) the matcher considered for a REVIEW child, and the answer the
    child gets when an officer says this candidate is the child."""

    number: int  # 1, 2... within the child
    student_code: str
    family_name: str  # Arabic, as in Massar
    first_name: str
    family_name_fr: str  # the father's Latin family name when the register has it
    birth_date: str  # ISO, or ""
    school_code: str
    level_code: str
    class_code: str
    score: float
    evidence: str  # how each detail compares, in words and scores
    situation: str  # enrolled this year / left on ... / left by transfer in ...
    answer: dict[str, str]  # status, student_code, school_code, level_code, leaving_date (ISO)


@dataclass(frozen=True)
class QueuedChild:
    """A REVIEW child of the batch, as the fund sent it and as the matcher saw it."""

    item: int  # its number in the batch's queue: 1, 2...
    fund_reference: str
    family_name: str  # as the fund sent them
    first_name: str
    birth_date: str  # ISO, or ""
    reason: str  # the matcher's, in English
    group: str
    confidence: float
    school_code: str  # of the candidate the matcher's answer named, for review.csv
    candidates: tuple[Candidate, ...]

    def candidate(self, wanted: str) -> Candidate | None:
        """The candidate with this Massar code, or with this number (1, 2...)."""
        text = wanted.strip().upper()
        for candidate in self.candidates:
            if candidate.student_code == text or str(candidate.number) == text:
                return candidate
        return None


@dataclass(frozen=True)
class ListedChild:
    """A NOT_FOUND child, listed in review.csv (not decidable: nobody to choose)."""

    fund_reference: str
    reason: str
    group: str


@dataclass(frozen=True)
class ReviewQueue:
    batch_id: str
    school_year: str
    children: tuple[QueuedChild, ...]
    not_found: tuple[ListedChild, ...] = ()
    group_counts: dict[str, int] = field(default_factory=dict)  # REVIEW children per group

    def child(self, fund_reference: str) -> QueuedChild | None:
        return self._by_reference.get(fund_reference.strip())

    @cached_property
    def _by_reference(self) -> dict[str, QueuedChild]:
        return {child.fund_reference: child for child in self.children}


def _iso(value: date | None) -> str:
    return value.isoformat() if value else ""


def build_review_queue(
    batch_id: str,
    requests: Sequence[ChildRequest],
    answers: Sequence[ChildAnswer],
    register: Any,
    leavers: Iterable[Any],
    school_year: str,
    policy: Any = None,
) -> ReviewQueue:
    """The queue of a batch: every REVIEW answer with up to :data:`CANDIDATES_SHOWN`
    candidates (the plausible ones by confidence, and always the pupil the answer named), each
    with what it would answer if chosen; NOT_FOUND answers listed with their reason.

    The candidates are scored again by the matcher itself (tasks/match_decision.py), for the REVIEW
    children only."""
    policy = policy or DEFAULT_POLICY
    matcher = Matcher(register, leavers, school_year, policy)
    by_reference = {request.fund_reference: request for request in requests}
    children: list[QueuedChild] = []
    listed: list[ListedChild] = []
    for answer in answers:
        if answer.status == NOT_FOUND:
            listed.append(ListedChild(answer.fund_reference, answer.reason, answer_group(answer)))
        if answer.status != REVIEW:
            continue
        request = by_reference[answer.fund_reference]
        scored = _scored(matcher, request, policy)
        shown = [
            s
            for s in scored
            if s.plausible or s.code or s.person.student_code == answer.student_code
        ][:CANDIDATES_SHOWN]
        if answer.student_code and all(s.person.student_code != answer.student_code for s in shown):
            named = [s for s in scored if s.person.student_code == answer.student_code]
            shown = (named + shown)[:CANDIDATES_SHOWN]
        children.append(
            QueuedChild(
                item=len(children) + 1,
                fund_reference=answer.fund_reference,
                family_name=request.child_family_name,
                first_name=request.child_first_name,
                birth_date=_iso(request.birth_date),
                reason=answer.reason,
                group=answer_group(answer),
                confidence=answer.confidence,
                school_code=answer.school_code or "",
                candidates=tuple(
                    _candidate(matcher, request, s, number, school_year)
                    for number, s in enumerate(shown, 1)
                ),
            )
        )
    return ReviewQueue(
        batch_id=batch_id,
        school_year=school_year,
        children=tuple(children),
        not_found=tuple(listed),
        group_counts=dict(Counter(child.group for child in children)),
    )


def _scored(matcher: Any, request: ChildRequest, policy: Any) -> list[Any]:
    """The matcher's own evidence on every candidate of one request, most sure first: its
    keys and scoring, as ``Matcher.answer`` computes them (tasks/match_decision.py)."""
    keys = request_keys(
        request,
        code_key(request.student_code),
        number_key(request.parent_number),
        cin_key(request.parent_cin),
        policy,
    )
    return list(matcher.candidates(request, keys))


def _candidate(
    matcher: Any, request: ChildRequest, scored: Any, number: int, school_year: str
) -> Candidate:
    person = scored.person
    pupil, leaving = person.pupil, person.leaving
    source = pupil or leaving
    accepted = matcher._accept(request, scored, "decided by an officer")
    if accepted.status in (SCHOOLED, LEFT, NOT_SCHOOLED):
        answer = {
            "status": accepted.status,
            "student_code": accepted.student_code or "",
            "school_code": accepted.school_code or "",
            "level_code": accepted.level_code or "",
            "leaving_date": _iso(accepted.leaving_date),
        }
    else:  # a leaver the matcher would not answer on its own: known, not enrolled this year
        record = leaving or source
        answer = {
            "status": NOT_SCHOOLED,
            "student_code": person.student_code,
            "school_code": (record.school_code or "") if record else "",
            "level_code": (record.level_code or "") if record else "",
            "leaving_date": _iso(leaving.leaving_date) if leaving else "",
        }
    if answer["status"] == SCHOOLED:
        situation = f"enrolled this year ({school_year})"
    elif answer["status"] == LEFT:
        situation = f"left on {answer['leaving_date']} (this year)"
    elif leaving is not None and leaving.is_transfer:
        situation = f"left the province by transfer in {leaving.school_year}"
    else:
        situation = f"left in {leaving.school_year if leaving else '?'}; not enrolled this year"
    evidence = [
        "parent agrees" if scored.parent else "parent differs",
        f"birth date {scored.birth}",
        f"first name {scored.first:.2f} ({scored.agreement.lower()})",
        f"family name {scored.family:.2f}",
    ]
    if scored.swapped:
        evidence.append("names read in the other order")
    if scored.sex_differs:
        evidence.append("sex differs")
    if scored.code:
        evidence.append("the Massar code given is this pupil's")
    return Candidate(
        number=number,
        student_code=person.student_code,
        family_name=source.family_name if source else "",
        first_name=source.first_name if source else "",
        family_name_fr=(pupil.family_name_fr or "") if pupil else "",
        birth_date=_iso(person.birth_date),
        school_code=(source.school_code or "") if source else "",
        level_code=(source.level_code or "") if source else "",
        class_code=(pupil.class_code or "") if pupil else "",
        score=scored.score,
        evidence=", ".join(evidence),
        situation=situation,
        answer=answer,
    )


def write_queue(folder: Path, queue: ReviewQueue) -> Path:
    """Write ``review-queue.json`` into the batch folder (atomically); returns its path."""
    path = folder / QUEUE_FILE
    document = {"format": QUEUE_FORMAT, **asdict(queue)}
    temporary = path.with_name(f".{path.name}.part")
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
    return path


def read_queue(folder: Path) -> ReviewQueue:
    """The queue written by :func:`write_queue`; an empty queue for a batch prepared before
    queues existed (its REVIEW children cannot be decided one by one)."""
    path = folder / QUEUE_FILE
    if not path.is_file():
        return ReviewQueue(batch_id=folder.name, school_year="", children=())
    document = json.loads(path.read_text(encoding="utf-8"))
    children = tuple(
        QueuedChild(
            **{
                **child,
                "candidates": tuple(Candidate(**c) for c in child["candidates"]),
            }
        )
        for child in document["children"]
    )
    return ReviewQueue(
        batch_id=document["batch_id"],
        school_year=document["school_year"],
        children=children,
        not_found=tuple(ListedChild(**row) for row in document.get("not_found", [])),
        group_counts=dict(document.get("group_counts", {})),
    )


# ---- decisions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """The latest decision on a child: its answer's status and the candidate chosen."""

    to_status: str
    student_code: str = ""
    decided_by: str = ""
    decided_at: str = ""


def latest_decisions(rows: Iterable[Mapping[str, Any]]) -> dict[str, Decision]:
    """Per fund reference, the latest of the review decisions given oldest first."""
    latest: dict[str, Decision] = {}
    for row in rows:
        latest[row["fund_reference"]] = Decision(
            row["to_status"], row["student_code"], row["decided_by"], row["decided_at"]
        )
    return latest


def decided_answer(
    child: QueuedChild, to_status: str, student_code: str, school_year: str
) -> ChildAnswer:
    """The answer a decision gives the child: the chosen candidate's answer, NOT_FOUND, or
    REVIEW. ValueError (a sentence) for a code that is not one of the child's candidates."""
    if to_status in (REVIEW, NOT_FOUND):
        return ChildAnswer(child.fund_reference, to_status, school_year)
    candidate = child.candidate(student_code)
    if candidate is None:
        codes = ", ".join(c.student_code for c in child.candidates) or "none"
        raise ValueError(
            f"{student_code} is not a candidate of child {child.fund_reference} (its "
            f"candidates: {codes})."
        )
    chosen = candidate.answer
    return ChildAnswer(
        fund_reference=child.fund_reference,
        status=chosen["status"],
        school_year=school_year,
        student_code=chosen["student_code"] or None,
        level_code=chosen["level_code"] or None,
        school_code=chosen["school_code"] or None,
        leaving_date=date.fromisoformat(chosen["leaving_date"]) if chosen["leaving_date"] else None,
        confidence=1.0,
        reason="decided by an officer",
    )


def final_answers(
    answers: Sequence[ChildAnswer],
    queue: ReviewQueue,
    decisions: Mapping[str, Decision],
    school_year: str,
) -> list[ChildAnswer]:
    """The batch's answers with every queued child set to its latest decision (REVIEW when
    none): what the rebuilt files carry, in the request's order."""
    out = []
    for answer in answers:
        child = queue.child(answer.fund_reference)
        if child is None:
            out.append(answer)
            continue
        decision = decisions.get(child.fund_reference)
        if decision is None:
            out.append(ChildAnswer(child.fund_reference, REVIEW, school_year))
        else:
            out.append(
                decided_answer(child, decision.to_status, decision.student_code, school_year)
            )
    return out


def group_counts(queue: ReviewQueue, decisions: Mapping[str, Decision]) -> list[dict[str, Any]]:
    """The REVIEW children per reason group, most first: children, decided (to something else
    than REVIEW), still REVIEW."""
    rows: dict[str, dict[str, Any]] = {}
    for child in queue.children:
        row = rows.setdefault(child.group, {"group": child.group, "children": 0, "decided": 0})
        row["children"] += 1
        decision = decisions.get(child.fund_reference)
        if decision is not None and decision.to_status != REVIEW:
            row["decided"] += 1
    for row in rows.values():
        row["still_review"] = row["children"] - row["decided"]
    return sorted(rows.values(), key=lambda r: (-r["children"], r["group"]))


# ---- review.csv and the terminal ----------------------------------------------------------------

REVIEW_CSV_COLUMNS = (
    "kind",
    "status",
    "group_fr",
    "group_ar",
    "children",
    "last_batch",
    "change",
    "item",
    "fund_reference",
    "decision",
    "confidence",
    "candidate_school",
    "reason_fr",
    "reason_ar",
)


def review_csv(
    answers: Sequence[ChildAnswer],
    queue: ReviewQueue | None = None,
    decisions: Mapping[str, Decision] | None = None,
    counts: Mapping[str, Any] | None = None,
) -> bytes:
    """The officers' ``review.csv`` (UTF-8 with a BOM, so a spreadsheet shows the Arabic): one
    table whose ``kind`` says what a row is —

    * ``status``: children per status of the batch as it stands, the fund's last batch and the
      change (``counts`` of the batch: its ``statuses``, ``previous_statuses``);
    * ``group``: REVIEW children per reason (the matcher's reason codes, most first, then
      NOT_FOUND), in French and Arabic, with the last batch's count and the change;
    * ``child``: each REVIEW and NOT_FOUND child, grouped the same way: its queue number, the
      fund's reference, the officer's decision so far, the matcher's confidence, the school of
      the candidate it named and its reason in French and Arabic.

    No names, birth dates or pupil codes; the file stays in the batch folder and never leaves.
    """
    from tasks.review_reasons import translate

    translate = cache(translate)  # a batch repeats a few reasons many times
    decisions = decisions or {}
    counts = counts or {}
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(REVIEW_CSV_COLUMNS)

    def row(**values: Any) -> None:
        writer.writerow([values.get(column, "") for column in REVIEW_CSV_COLUMNS])

    statuses = counts.get("statuses") or dict(Counter(a.status for a in answers))
    before = counts.get("previous_statuses")
    for status in DECIDABLE:
        now = int(statuses.get(status, 0))
        last = None if before is None else int(before.get(status, 0))
        row(
            kind="status",
            status=status,
            children=now,
            last_batch="" if last is None else last,
            change="" if last is None else f"{now - last:+d}",
        )
    groups: Counter[str] = Counter()
    listed: list[tuple[str, ChildAnswer]] = []
    for answer in answers:
        if answer.status in (REVIEW, NOT_FOUND):
            key = answer_group(answer)
            groups[key] += 1
            listed.append((key, answer))
    if queue is not None:  # the matcher's REVIEW children, whatever was decided since
        groups = Counter(child.group for child in queue.children)
        groups.update(n.group for n in queue.not_found)
        listed = [(c.group, _queued_answer(c)) for c in queue.children] + [
            (n.group, ChildAnswer(n.fund_reference, NOT_FOUND, "", reason=n.reason))
            for n in queue.not_found
        ]
    statuses_of = {key: answer.status for key, answer in listed}
    last_groups = counts.get("previous_review_groups")
    order = sorted(groups, key=lambda k: (statuses_of[k] == NOT_FOUND, -groups[k], k))
    for key in order:
        french, arabic = group_label(key)
        last = None if last_groups is None else int(last_groups.get(key, 0))
        row(
            kind="group",
            status=statuses_of[key],
            group_fr=french,
            group_ar=arabic,
            children=groups[key],
            last_batch="" if last is None else last,
            change="" if last is None else f"{groups[key] - last:+d}",
        )
    items = {child.fund_reference: child.item for child in (queue.children if queue else ())}
    rank = {key: position for position, key in enumerate(order)}
    for key, answer in sorted(listed, key=lambda pair: rank[pair[0]]):
        group_fr, group_ar = group_label(key)
        french, arabic = translate(answer.reason)
        decision = decisions.get(answer.fund_reference)
        row(
            kind="child",
            status=answer.status,
            group_fr=group_fr,
            group_ar=group_ar,
            item=items.get(answer.fund_reference, ""),
            fund_reference=answer.fund_reference,
            decision=_decision_text(decision),
            confidence=f"{answer.confidence:.2f}",
            candidate_school=answer.school_code or "",
            reason_fr=french,
            reason_ar=arabic,
        )
    return buffer.getvalue().encode("utf-8-sig")


def _queued_answer(child: QueuedChild) -> ChildAnswer:
    return ChildAnswer(
        child.fund_reference,
        REVIEW,
        "",
        school_code=child.school_code or None,
        confidence=child.confidence,
        reason=child.reason,
    )


def _decision_text(decision: Decision | None) -> str:
    """A decision in review.csv: the status it gave, without the pupil's code."""
    if decision is None:
        return ""
    if decision.to_status == REVIEW:
        return f"REVIEW kept by {decision.decided_by}"
    return f"{decision.to_status} by {decision.decided_by}"


def describe_child(child: QueuedChild, decision: Decision | None) -> list[str]:
    """The terminal's lines for one queued child: what the fund sent, why it is REVIEW, its
    candidates with their scores and what choosing each answers, and the decision so far.
    Personal data: only for the officer at the platform's terminal (never a log)."""
    group = group_label(child.group)[0]
    if decision is None:
        state = "REVIEW, not decided yet"
    elif decision.to_status == REVIEW:
        state = f"REVIEW kept by {decision.decided_by} at {decision.decided_at[:16]}"
    else:
        code = f" ({decision.student_code})" if decision.student_code else ""
        state = (
            f"decided {decision.to_status}{code} by {decision.decided_by} at "
            f"{decision.decided_at[:16]}"
        )
    lines = [
        f"#{child.item}  {child.fund_reference}  — {state}",
        f"    sent by the fund: {child.family_name} {child.first_name}, born "
        f"{child.birth_date or 'unknown'}",
        f"    why REVIEW ({group}): {child.reason}",
    ]
    if not child.candidates:
        lines.append("    no candidate: decide --not-found or --keep")
    for c in child.candidates:
        latin = f" ({c.family_name_fr})" if c.family_name_fr else ""
        place = f"school {c.school_code or '?'}, level {c.level_code or '?'}"
        if c.class_code:
            place += f", class {c.class_code}"
        answer = c.answer["status"] + (
            f" on {c.answer['leaving_date']}" if c.answer["status"] == LEFT else ""
        )
        lines += [
            f"    {c.number}. {c.student_code}  {c.family_name} {c.first_name}{latin}, born "
            f"{c.birth_date or 'unknown'}; {place}; {c.situation}",
            f"       score {c.score:.2f}: {c.evidence} → chosen, the answer is {answer}",
        ]
    return lines

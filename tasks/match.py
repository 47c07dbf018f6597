"""Matching a partner fund's children against the province's pupils: the batch, in order.

    match_children(requests, register, leavers, school_year, age_windows, on_date)
        -> list[ChildAnswer]                                       one answer per child, in order

One room per question (docs/decisions/0004-matching-children.md has the rules):

    tasks/province_register.py   the province's pupils, indexed (load_province_register)
    tasks/leaving_records.py     Massar's leaving records (load_leaving_records)
    tasks/identifier_keys.py     how a parent's number, a CIN and a Massar code are compared
    tasks/name_keys.py           how names are keyed and compared (Latin or Arabic)
    tasks/match_scoring.py       how sure the matcher is of one candidate (Evidence)
    tasks/match_decision.py      which answer a child gets from its candidates (Matcher)
    tasks/age_window.py          whether the child is within the age window of its benefit
    tasks/match_reasons.py       the reason codes of REVIEW and NOT_FOUND answers
    tasks/match_summary.py       counts and match rates of a batch, no pupil data

This file answers every child of a batch, in the request's order, in one process or split
across several (from 50,000 children), with the last guard of the rule: a weak match never
answers NOT_SCHOOLED. Its Prefect tasks wrap the loading, the matching and the summary.
"""

from __future__ import annotations

import itertools
import pickle
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import date
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from ground.collector import collector_paused
from schemas.exchange import NOT_SCHOOLED, REVIEW, ChildAnswer, ChildRequest
from tasks.age_window import age_reference_date, check_age_window
from tasks.leaving_records import LeavingRecord, load_leaving_records
from tasks.match_decision import Matcher
from tasks.match_scoring import DEFAULT_POLICY, MatchPolicy
from tasks.match_summary import match_summary
from tasks.province_register import Register, load_province_register


def match_children(
    requests: Sequence[ChildRequest],
    register: Register,
    leavers: Iterable[LeavingRecord],
    school_year: str,
    age_windows: Mapping[str, tuple[int, int]],
    on_date: date | None = None,
    policy: MatchPolicy = DEFAULT_POLICY,
    processes: int = 1,
) -> list[ChildAnswer]:
    """One answer per requested child, in the request's order.

    ``processes`` > 1 splits a large request (from 50,000 children) between this process and
    processes forked from it (where the system forks; else one process): each child's answer
    depends only on the child and the register, so the answers are the same, in the same order.

    ``register``: the province's pupils of ``school_year`` (load_province_register);
    ``leavers``: Massar's leaving records (load_leaving_records; may be empty); ``age_windows``:
    benefit → (youngest, oldest) age in completed years, from ``settings.partners[fund]``; ages
    are counted on ``on_date`` (default: 31 December of the year's first calendar year, as Massar
    counts them). A child outside the window of its benefit, or whose benefit has no window,
    gets REVIEW with the reason and the answer it would have had; never NOT_SCHOOLED.

    REVIEW answers carry the best candidate considered (student_code, school, level) and the
    reason, for the officers' review queue (tasks/review_queue.py); a response file writes none
    of them. An officer may decide a REVIEW child before the batch is approved (the files are
    then signed again); a REVIEW nobody decided is sent as REVIEW: "do not suspend, ask again"
    (docs/decisions/0004-matching-children.md, docs/exchange-spec.md).
    NOT_FOUND answers name nobody (confidence 0). Confidence: how sure the match of the pupil
    named is (see MatchPolicy)."""
    on_date = on_date or age_reference_date(school_year)
    # The matcher's indexes and an answer per child, hundreds of thousands of records: the
    # garbage collector paused (ground/collector.py), in a forked process too.
    with collector_paused():
        matcher = Matcher(register, leavers, school_year, policy)
        if processes > 1 and len(requests) >= PARALLEL_FROM and _can_fork():
            return _match_in_processes(matcher, requests, age_windows, on_date, policy, processes)
        return _answer_all(matcher, requests, age_windows, on_date, policy)


def _answer_all(
    matcher: Matcher,
    requests: Sequence[ChildRequest],
    age_windows: Mapping[str, tuple[int, int]],
    on_date: date,
    policy: MatchPolicy,
) -> list[ChildAnswer]:
    answers = []
    for request in requests:
        answer = matcher.answer(request)
        matched = matcher.person(answer.student_code) if answer.student_code else None
        answer = check_age_window(
            answer, request, age_windows, on_date, matched.birth_date if matched else None
        )
        # The last guard of the rule: a weak match never answers NOT_SCHOOLED.
        if answer.status == NOT_SCHOOLED and answer.confidence < policy.not_schooled:
            answer = replace(
                answer,
                status=REVIEW,
                reason=f"weak match: {answer.reason}",
                reason_code="weak_match",
            )
        answers.append(answer)
    return answers


PARALLEL_FROM = 50_000  # below this, a second process costs more than it saves


def _can_fork() -> bool:
    import multiprocessing

    return "fork" in multiprocessing.get_all_start_methods()


def _match_in_processes(
    matcher: Matcher,
    requests: Sequence[ChildRequest],
    age_windows: Mapping[str, tuple[int, int]],
    on_date: date,
    policy: MatchPolicy,
    processes: int,
) -> list[ChildAnswer]:
    """The batch cut into small spans, answered here and in processes forked once the matcher
    is built, each taking the next span not yet taken until none is left: a process slowed
    down (by the machine's other work, or by building the matcher before the fork) takes fewer
    spans, and all finish within a span of each other. A forked process starts with the
    matcher, its indexes, its name caches and the requests as this process holds them (nothing
    imported again, nothing pickled to it); only its answers come back, pickled."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    size = max(SPAN_FROM, -(-len(requests) // (processes * SPANS_PER_PROCESS)))
    spans = [(i, min(i + size, len(requests))) for i in range(0, len(requests), size)]
    # fork, though the parent may hold Prefect's threads (decision 0010): a forked process
    # only matches (pure Python and rapidfuzz; no logging, I/O, network or database) and
    # leaves with os._exit; the locks Python itself needs (import, logging) are reset after
    # a fork. Its garbage collector is paused as this process's is: it copies no page of
    # the register by visiting it.
    context = multiprocessing.get_context("fork")
    taken = context.Value("i", 0)  # the next span to answer, shared with the forked processes
    # under a key of this call's own: two batches matched at once in two threads each fork
    # their own (the process forks in ``submit``, from this thread)
    token = next(_calls)
    _forked[token] = (matcher, requests, dict(age_windows), on_date, policy, spans, taken)
    try:
        with ProcessPoolExecutor(max_workers=processes - 1, mp_context=context) as pool:
            others = [pool.submit(_answer_spans, token) for _ in range(processes - 1)]
            answered = dict(_take_spans(token))
            for future in others:
                answered.update(_unpacked(future.result()))
    finally:
        del _forked[token]
    return [answer for index in range(len(spans)) for answer in answered[index]]


SPAN_FROM = 1_000  # children of a span at least
SPANS_PER_PROCESS = 32  # spans a process answers, about: a span apart at most when they end


def _take_spans(token: int) -> list[tuple[int, list[ChildAnswer]]]:
    """The spans this process answers: the next one not taken, until none is left."""
    matcher, requests, age_windows, on_date, policy, spans, taken = _forked[token]
    done: list[tuple[int, list[ChildAnswer]]] = []
    while True:
        with taken.get_lock():
            index = taken.value
            taken.value = index + 1
        if index >= len(spans):
            return done
        start, stop = spans[index]
        done.append(
            (index, _answer_all(matcher, requests[start:stop], age_windows, on_date, policy))
        )


def _packed(value: object) -> bytes:
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def _unpacked(data: bytes) -> Any:
    """Unpickled with the cyclic garbage collector paused: hundreds of thousands of records
    would otherwise set it off again and again over everything already loaded (4× slower)."""
    with collector_paused():
        return pickle.loads(data)


# What a forked matching process answers from, by call: set just before the fork, removed after.
_forked: dict[
    int,
    tuple[
        Matcher,
        Sequence[ChildRequest],
        dict[str, tuple[int, int]],
        date,
        MatchPolicy,
        list[tuple[int, int]],
        Any,  # multiprocessing's shared Value: the next span to answer
    ],
] = {}
_calls = itertools.count()


def _answer_spans(token: int) -> bytes:
    return _packed(_take_spans(token))


# ---- Prefect tasks ------------------------------------------------------------------------------

load_register_task = task(name="load_province_register", cache_policy=NO_CACHE)(
    load_province_register
)
load_leavers_task = task(name="load_leaving_records", cache_policy=NO_CACHE)(load_leaving_records)
match_children_task = task(name="match_children", cache_policy=NO_CACHE)(match_children)
match_summary_task = task(name="match_summary", cache_policy=NO_CACHE)(match_summary)

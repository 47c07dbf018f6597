"""How sure the matcher is that a candidate of the province is the child a fund asks about.

    request_keys(request, policy) -> RequestKeys          a request's comparison keys
    score(request, keys, candidate, policy, first_names) -> Evidence | None

A candidate is a pupil of the register and/or the latest leaving record of one Massar code
(``Candidate``). Its ``Evidence`` says what agrees — the parent's identifier, the birth date, the
family and first names (in the order the fund wrote them or the other), the sex, the code — and
gives a confidence in 0..1 (``MatchPolicy`` holds the weights). tasks/match_decision.py decides
the answer from the evidence of every candidate; docs/decisions/0004-matching-children.md has
the rules.

A pupil's code is given only for that pupil: ``strong`` (acceptable without a code) needs the
first name to *agree* (tasks/name_keys.py: ``FirstNames.agreement``), not only to be similar, and
a candidate whose first name is another one (``DIFFER``) is not plausible: a brother, a sister or
a twin who is not the pupil is answered NOT_FOUND, never with the pupil's code.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, NamedTuple

from schemas.exchange import ChildRequest
from tasks.name_keys import (
    AGREE,
    DIFFER,
    PART,
    FirstNames,
    blocking_key,
    family_similarity,
    name_similarity,
    name_skeletons,
    skeletons,
)

if TYPE_CHECKING:
    from tasks.leaving_records import LeavingRecord
    from tasks.province_register import RegisteredPupil


@dataclass(frozen=True)
class MatchPolicy:
    """Weights and thresholds of the matcher (docs/decisions/0004-matching-children.md)."""

    parent_weight: float = 0.30  # the parent's CNSS / CMR number or CIN is a guardian's
    birth_weight: float = 0.30
    first_weight: float = 0.25
    family_weight: float = 0.15
    code_share: float = 0.60  # share of the remaining doubt a Massar code of the pupil removes
    sex_factor: float = 0.8  # confidence kept when the sex differs
    swapped_birth: float = 0.3  # birth evidence when day and month are swapped
    near_birth: float = 0.3  # within a few days, or the same day and month a year apart
    accept: float = 0.85  # SCHOOLED / LEFT on a unique candidate this sure
    not_schooled: float = 0.95  # NOT_SCHOOLED needs this (and the birth date, and a parent
    # identifier or the code)
    margin: float = 0.02  # a second candidate at most this much less sure → REVIEW
    name_agrees: float = 0.8  # a family name this similar counts as agreeing
    agreeing_first: float = 0.9  # at least this first-name evidence when it agrees
    doubtful_first: float = 0.6  # at most this first-name evidence when it does not agree
    near_days: int = 2


DEFAULT_POLICY = MatchPolicy()


class RequestKeys(NamedTuple):
    """A request's comparison keys (a named tuple: made once per child, 200,000 of them, in a
    fifth of a frozen dataclass's time)."""

    code: str
    number: str
    cin: str
    birth: date | None
    birth_dates: tuple[date, ...]  # exact, day/month swapped
    near_dates: tuple[date, ...]  # a few days off, a year off
    family_skeletons: tuple[str, ...]
    first_skeletons: frozenset[str]  # to read the names in the other order
    names_skeletons: frozenset[str]  # of the family and the first name (name_skeletons)
    name_key: str


@dataclass(frozen=True)
class Candidate:
    """A pupil of the register and/or the latest leaving record of one code."""

    student_code: str
    pupil: RegisteredPupil | None
    leaving: LeavingRecord | None
    family_names: tuple[str, ...]
    family_skeletons: frozenset[str]
    first_name: str
    sex: str | None
    birth_date: date | None
    numbers: frozenset[str]
    cins: frozenset[str]


@dataclass
class Evidence:
    """A candidate's evidence against one request."""

    person: Candidate
    parent: bool  # parent's number or CIN among the guardians'
    birth: str  # exact | swapped | near | differs | unknown
    first: float  # first-name evidence in the confidence
    family: float
    agreement: str  # of the first names: AGREE | PART | UNSURE | DIFFER (tasks/name_keys.py)
    swapped: bool  # the fund's family and first names read in the other order
    sex_differs: bool
    code: bool  # the request's Massar code is this person's
    details: float = 0.0  # confidence without the code
    score: float = 0.0  # confidence
    plausible: bool = False
    strong: bool = False  # acceptable on details alone (no code needed)


def request_keys(
    request: ChildRequest, code: str, number: str, cin: str, policy: MatchPolicy
) -> RequestKeys:
    """The request's keys; ``code``, ``number`` and ``cin`` keyed by tasks/identifier_keys.py."""
    birth = request.birth_date
    days, near = _birth_keys(birth, policy.near_days) if birth else ((), ())
    family_skeletons, first, names, name_key = _name_keys(
        request.child_family_name, request.child_first_name
    )
    return RequestKeys(
        code=code,
        number=number,
        cin=cin,
        birth=birth,
        birth_dates=days,
        near_dates=near,
        family_skeletons=family_skeletons,
        first_skeletons=first,
        names_skeletons=names,
        name_key=name_key,
    )


@lru_cache(maxsize=1 << 17)
def _name_keys(
    family: str, first_name: str
) -> tuple[tuple[str, ...], frozenset[str], frozenset[str], str]:
    """A request's names' keys (``RequestKeys``' family_skeletons, first_skeletons,
    names_skeletons, name_key); remembered: a fund's children share their names."""
    first = name_skeletons(first_name)
    return (
        _sorted_skeletons(family),
        first,
        first | name_skeletons(family),
        blocking_key(family, first_name),
    )


@lru_cache(maxsize=1 << 16)
def _birth_keys(birth: date, near_days: int) -> tuple[tuple[date, ...], tuple[date, ...]]:
    """A birth date's exact and day/month-swapped dates, and its near dates (a few days off, a
    year off); remembered: a request of 200,000 children has a few thousand birth dates."""
    days = [birth]
    if birth.day <= 12 and birth.day != birth.month:
        days.append(date(birth.year, birth.day, birth.month))
    near: list[date] = []
    for delta in range(1, near_days + 1):
        near += [birth - timedelta(days=delta), birth + timedelta(days=delta)]
    for year in (birth.year - 1, birth.year + 1):
        with suppress(ValueError):  # 29 February
            near.append(birth.replace(year=year))
    return tuple(days), tuple(near)


@lru_cache(maxsize=1 << 16)
def _sorted_skeletons(name: str) -> tuple[str, ...]:
    return tuple(sorted(skeletons([name])))


def birth_evidence(asked: date | None, known: date | None, policy: MatchPolicy) -> str:
    if asked is None or known is None:
        return "unknown"
    if asked == known:
        return "exact"
    if asked.year == known.year and (asked.day, asked.month) == (known.month, known.day):
        return "swapped"
    if abs((asked - known).days) <= policy.near_days or (
        (asked.month, asked.day) == (known.month, known.day) and abs(asked.year - known.year) == 1
    ):
        return "near"
    return "differs"


_BIRTH_AGREES = frozenset(("exact", "swapped", "near"))
_AGREEMENT_RANK = {AGREE: 3, PART: 2, DIFFER: 0}  # UNSURE: 1


def _family(name: str, person: Candidate) -> float:
    return max((family_similarity(name, known) for known in person.family_names), default=0.0)


def score(
    request: ChildRequest,
    keys: RequestKeys,
    person: Candidate,
    policy: MatchPolicy,
    first_names: FirstNames,
) -> Evidence | None:
    """The candidate's evidence and confidence; None when it cannot be plausible (no code, no
    parent identifier, and the birth date or the family name — in either order — does not
    agree): most candidates of the birth-date blocks stop here, on a consonant key of the names
    (name_skeletons), before any name is compared.

    The names are read in the fund's order and, when that does not agree, in the other order
    (family name in the first name's column); the better reading is kept, ``swapped`` says
    which. The first names' agreement caps the first name's evidence when it is not AGREE."""
    parent = bool(
        (keys.number and keys.number in person.numbers) or (keys.cin and keys.cin in person.cins)
    )
    birth = birth_evidence(keys.birth, person.birth_date, policy)
    code = bool(keys.code) and keys.code == person.student_code
    identified = parent or code
    if not identified and (
        birth not in _BIRTH_AGREES or keys.names_skeletons.isdisjoint(person.family_skeletons)
    ):
        return None  # nothing could make it plausible: the names share no consonant key
    asked_family, asked_first = request.child_family_name, request.child_first_name
    family = _family(asked_family, person)
    may_swap = identified
    if not identified and family < policy.name_agrees:
        # only the names in the other order could still agree (a cheap test first)
        if keys.first_skeletons.isdisjoint(person.family_skeletons):
            return None
        may_swap = True
    agreement = first_names.agreement(asked_first, person.first_name, request.sex)
    swapped = False
    if may_swap and (agreement != AGREE or family < policy.name_agrees):
        # the other order counts only when both names agree in it (OULAHCEN ILYAS is not the
        # twin OULAHCEN LAHCEN with his names swapped)
        other_family = _family(asked_first, person)
        other = first_names.agreement(asked_family, person.first_name, request.sex)
        if other_family >= policy.name_agrees and (_AGREEMENT_RANK.get(other, 1), other_family) > (
            _AGREEMENT_RANK.get(agreement, 1),
            family,
        ):
            swapped, family, agreement = True, other_family, other
            asked_family, asked_first = asked_first, asked_family
    if not identified and family < policy.name_agrees:
        return None
    first = name_similarity(asked_first, person.first_name)
    if agreement == AGREE:  # the same name: a spelling's distance is not a doubt (OMAR: عمر)
        first = max(first, policy.agreeing_first)
    elif agreement == DIFFER:
        first = 0.0
    else:
        first = min(first, policy.doubtful_first)
    sex_differs = bool(request.sex and person.sex and request.sex != person.sex)
    birth_value = (
        1.0
        if birth == "exact"
        else policy.swapped_birth
        if birth == "swapped"
        else policy.near_birth
        if birth == "near"
        else 0.0
    )
    details = (
        policy.parent_weight * parent
        + policy.birth_weight * birth_value
        + policy.first_weight * first
        + policy.family_weight * family
    )
    if sex_differs:
        details *= policy.sex_factor
    confidence = details + (1.0 - details) * policy.code_share if code else details
    if code:
        plausible = True
    elif agreement == DIFFER:
        plausible = False  # another first name: a brother, a sister, another child
    else:
        agreeing = (
            parent
            + (birth in _BIRTH_AGREES)
            + (agreement in (AGREE, PART))
            + (family >= policy.name_agrees)
        )
        plausible = agreeing >= 3 or (parent and birth == "exact")
    strong = (
        details >= policy.accept
        and parent
        and birth == "exact"
        and not sex_differs
        and agreement == AGREE
    )
    return Evidence(
        person=person,
        parent=parent,
        birth=birth,
        first=first,
        family=family,
        agreement=agreement,
        swapped=swapped,
        sex_differs=sex_differs,
        code=code,
        details=round(details, 4),
        score=round(min(1.0, confidence), 4),
        plausible=plausible,
        strong=strong,
    )

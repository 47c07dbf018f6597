"""Which answer a child gets, from the evidence on every candidate of the province.

    Matcher(register, leavers, school_year, policy)
    Matcher.answer(request) -> ChildAnswer       SCHOOLED, LEFT, NOT_SCHOOLED, REVIEW or NOT_FOUND
    Matcher.candidates(request, keys) -> list[Evidence]   every candidate scored, most sure first

A false "not schooled" suspends a family's allowance, so the matcher answers ``NOT_SCHOOLED`` only
on a strong match with a leaving record, sends everything uncertain to ``REVIEW`` and never lets
a weak match become ``NOT_SCHOOLED``. A pupil's code is given only when the first name *agrees*
with the pupil's: a brother, a sister or a twin is NOT_FOUND, or REVIEW when unsure. Every
REVIEW and NOT_FOUND answer carries a reason code (tasks/match_reasons.py); names and birth dates
never appear in a reason. The rules: docs/decisions/0004-matching-children.md.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import replace
from datetime import date
from functools import lru_cache

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
from tasks.leaving_records import LeavingRecord
from tasks.match_reasons import main_reason
from tasks.match_scoring import (
    Candidate,
    Evidence,
    MatchPolicy,
    RequestKeys,
    request_keys,
    score,
)
from tasks.name_keys import AGREE, DIFFER, PART, UNSURE, FirstNames, name_skeletons
from tasks.province_register import Register, RegisteredPupil, person_identifiers


def _doubts(best: Evidence, policy: MatchPolicy) -> list[tuple[str, str]]:
    """Why a candidate is not sure enough, as (sentence without pupil data, reason code)."""
    out = []
    if best.agreement == UNSURE:
        out.append(
            (
                "the first name does not clearly designate this pupil (a brother or sister?)",
                "first_name_doubt",
            )
        )
    elif best.agreement == PART:
        out.append(("only part of a compound first name agrees", "first_name_part"))
    if best.swapped:
        out.append(("the names match only with family and first names swapped", "names_swapped"))
    if best.birth == "swapped":
        out.append(("the birth date matches only with day and month swapped", "birth_swapped"))
    elif best.birth in ("near", "differs"):
        out.append(("the birth date differs", "birth_differs"))
    elif best.birth == "unknown":
        out.append(("the birth date is missing", "birth_missing"))
    if not best.parent:
        out.append(
            (
                "the parent's CNSS/CMR number and CIN are not those of the pupil's guardians",
                "parent_differs",
            )
        )
    if best.family < policy.name_agrees or best.agreement not in (AGREE, PART, UNSURE):
        out.append(("the names match only weakly", "names_weak"))
    if best.sex_differs:
        out.append(("the sex differs", "sex_differs"))
    return out or [("the match is not sure enough", "not_sure")]


@lru_cache(maxsize=1 << 14)
def _agreeing_dates(days: tuple[date, ...], near: tuple[date, ...]) -> frozenset[date]:
    """The birth dates ``birth_evidence`` reads as exact, swapped or near: the request's keys'
    ``birth_dates`` and ``near_dates`` (none without a birth date: "unknown")."""
    return frozenset((*days, *near))


def _family_names(pupil: RegisteredPupil | None, leaving: LeavingRecord | None) -> tuple[str, ...]:
    """The family names a candidate is compared with: the pupil's, the leaving record's and the
    father's Latin spelling, each once."""
    families = [source.family_name for source in (pupil, leaving) if source is not None]
    if pupil and pupil.family_name_fr:
        families.append(pupil.family_name_fr)
    return tuple(dict.fromkeys(f for f in families if f))


def _family_skeletons(family_names: tuple[str, ...]) -> frozenset[str]:
    return frozenset().union(*map(name_skeletons, family_names))


class Matcher:
    """One request batch against a register and the leaving records."""

    def __init__(
        self,
        register: Register,
        leavers: Iterable[LeavingRecord],
        school_year: str,
        policy: MatchPolicy,
    ) -> None:
        self.register = register
        self.school_year = school_year
        self.previous_year = f"{int(school_year[:4]) - 1}/{int(school_year[:4])}"
        self.policy = policy
        # Latest record per code (by school year, then leaving date).
        latest: dict[str, LeavingRecord] = {}
        for record in sorted(
            leavers,
            key=lambda r: (
                r.student_code,
                r.school_year,
                r.leaving_date or date.min,
                r.school_code,
            ),
        ):
            latest[record.student_code] = record
        self.leavers = tuple(latest[code] for code in sorted(latest))
        self.leaving_by_code = latest
        people: tuple[RegisteredPupil | LeavingRecord, ...] = (*register.pupils, *self.leavers)
        # the pupils' and the leavers' keys in one index: one look-up per key
        self._index = register.index_with(self.leavers)
        self._code_at = tuple(person.student_code for person in people)
        self.first_names = FirstNames((person.first_name, person.sex) for person in people)
        self._people: dict[str, Candidate | None] = {}
        # per code, the candidate's birth date and its family names' consonant keys
        self._gate: dict[str, tuple[date | None, frozenset[str]]] = {}
        self._born = self._birth_blocks(people)
        self._dates_by_key = self._birth_dates_by_key()

    def _birth_blocks(
        self, people: Iterable[RegisteredPupil | LeavingRecord]
    ) -> dict[date, dict[str, list[str]]]:
        """By birth date, then by each consonant key of the family names a candidate is compared
        with (``Candidate.family_skeletons``): the codes of the pupils and leavers born that
        day (and, in ``self._gate``, each code's birth date and keys).

        A candidate found only by its birth date has neither the parent's identifier nor the
        code (those bring it by their own keys), so ``score`` drops it unless its family names
        share a consonant key with the request's names: ``candidates`` looks up only those,
        about one of the eleven a birth date brings."""
        blocks: dict[date, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        gate = self._gate
        for person in people:
            code = person.student_code
            if code not in gate:
                pupil = self.register.by_code(code)
                leaving = self.leaving_by_code.get(code)
                main = pupil if pupil is not None else leaving
                assert main is not None
                gate[code] = (
                    main.birth_date,
                    _family_skeletons(_family_names(pupil, leaving)),
                )
            if person.birth_date:
                block = blocks[person.birth_date]
                for skeleton in gate[code][1]:
                    block[skeleton].append(code)
        return {day: dict(block) for day, block in blocks.items()}

    def _birth_dates_by_key(self) -> dict[str, frozenset[date]]:
        """By consonant key of a family name a candidate is compared with, the birth dates of
        the candidates (pupils and leavers) having it.

        Without the request's code or parent identifier, ``score`` drops every candidate unless
        its birth date agrees with the request's (exact, swapped, near) and one of its family
        names' keys is one of the request's names' keys: a request none of whose names' keys
        has such a birth date has no candidate worth finding (about half of a fund's children
        from elsewhere), and is answered without looking its keys up one index at a time."""
        dates: dict[str, set[date]] = defaultdict(set)
        for birth, family_skeletons in self._gate.values():
            if birth is not None:
                for skeleton in family_skeletons:
                    dates[skeleton].add(birth)
        return {skeleton: frozenset(days) for skeleton, days in dates.items()}

    def may_have_candidates(self, keys: RequestKeys, identified: set[int] | None = None) -> bool:
        """False only when ``score`` would drop every candidate ``candidates`` finds.
        ``identified``: the index's positions of the request's code and parent, when known."""
        if identified is None and (keys.code or keys.number or keys.cin):
            identified = self._index.identified(keys)
        if identified:
            return True
        agreeing = _agreeing_dates(keys.birth_dates, keys.near_dates)
        if not agreeing:
            return False  # no birth date: only the code or the parent could bring a candidate
        by_key = self._dates_by_key
        for skeleton in keys.names_skeletons:
            days = by_key.get(skeleton)
            if days is not None and not agreeing.isdisjoint(days):
                return True
        return False

    def person(self, code: str) -> Candidate | None:
        if code not in self._people:
            self._people[code] = self._person(code)
        return self._people[code]

    def _person(self, code: str) -> Candidate | None:
        pupil = self.register.by_code(code)
        leaving = self.leaving_by_code.get(code)
        if pupil is None and leaving is None:
            return None
        numbers: set[str] = set()
        cins: set[str] = set()
        for source in (pupil, leaving):
            if source is None:
                continue
            more_numbers, more_cins = person_identifiers(source)
            numbers |= more_numbers
            cins |= more_cins
        main = pupil if pupil is not None else leaving
        assert main is not None
        family_names = _family_names(pupil, leaving)
        return Candidate(
            student_code=code,
            pupil=pupil,
            leaving=leaving,
            family_names=family_names,
            family_skeletons=_family_skeletons(family_names),
            first_name=main.first_name,
            sex=main.sex,
            birth_date=main.birth_date,
            numbers=frozenset(numbers),
            cins=frozenset(cins),
        )

    def candidates(
        self, request: ChildRequest, keys: RequestKeys, identified: set[int] | None = None
    ) -> list[Evidence]:
        """Every candidate the request's keys find (Register.lookup's pupils and the leavers the
        same keys find), scored; those ``score`` drops are left out. ``identified``: the
        index's positions of the request's code and parent, when known."""
        code_at = self._code_at
        if identified is None:
            identified = self._index.identified(keys)
        codes = {code_at[i] for i in identified}
        # Found by birth date and name keys only: neither the code nor the parent's identifier
        # is the request's (those bring a candidate by their own keys), so ``score`` drops
        # the candidate unless its birth date agrees (exact, swapped, near) and its family
        # names share a consonant key with the request's names. Tested here first.
        names = keys.names_skeletons
        agreeing = _agreeing_dates(keys.birth_dates, keys.near_dates)
        gate = self._gate
        for position in self._index.blocked(keys, births=False):
            code = code_at[position]
            if code not in codes:
                birth, family_skeletons = gate[code]
                if birth in agreeing and not names.isdisjoint(family_skeletons):
                    codes.add(code)
        blocks = self._born
        for day in keys.birth_dates:
            block = blocks.get(day)
            if block:
                for skeleton in names:
                    same = block.get(skeleton)
                    if same:
                        codes.update(same)
        scored = []
        for code in codes:
            person = self.person(code)
            if person is not None:
                evidence = score(request, keys, person, self.policy, self.first_names)
                if evidence is not None:
                    scored.append(evidence)
        scored.sort(key=lambda s: (-s.score, s.person.student_code))
        return scored

    def answer(self, request: ChildRequest) -> ChildAnswer:
        keys = request_keys(
            request,
            code_key(request.student_code),
            number_key(request.parent_number),
            cin_key(request.parent_cin),
            self.policy,
        )
        identified = self._index.identified(keys) if keys.code or keys.number or keys.cin else set()
        scored = (
            self.candidates(request, keys, identified)
            if self.may_have_candidates(keys, identified)
            else []
        )
        plausible = [s for s in scored if s.plausible]
        policy = self.policy
        if keys.code:
            target = next((s for s in scored if s.code), None)
            others = [s for s in plausible if s is not target and s.strong]
            if target is None:
                if not plausible:
                    return self._not_found(
                        request,
                        "the Massar code given is not a pupil of the province and no pupil "
                        "matches the names, birth date and parent",
                        self._sibling(scored),
                    )
                return self._review(
                    request,
                    plausible[0],
                    "the Massar code given is not a pupil of the province; another pupil "
                    "matches the details",
                    "code_unknown",
                )
            # the code and the first name, whole or the first part of a compound (FATIMA for
            # فاطمة الزهراء), designate the pupil
            if target.score >= policy.accept and target.agreement in (AGREE, PART):
                if others and others[0].details >= target.details + policy.margin:
                    return self._review(
                        request,
                        others[0],
                        "the Massar code given and the names, birth date and parent point at "
                        "different pupils",
                        "code_other_pupil",
                    )
                return self._accept(request, target, "matched on the Massar code and details")
            if others:
                return self._review(
                    request,
                    others[0],
                    "the Massar code given belongs to another pupil; names, birth date and "
                    "parent match a different pupil",
                    "code_other_pupil",
                )
            if target.agreement not in (AGREE, PART):
                return self._review(
                    request,
                    target,
                    "the first name given is not clearly that of the pupil with this Massar code",
                    "code_first_name",
                )
            return self._review(
                request,
                target,
                "the names, birth date or parent of the pupil with this Massar code do not match",
                "code_details_differ",
            )
        if not plausible:
            return self._not_found(
                request,
                "no pupil of the province matches the names, birth date and parent",
                self._sibling(scored),
            )
        best = plausible[0]
        second = plausible[1] if len(plausible) > 1 else None
        close = second is not None and second.score >= best.score - policy.margin
        if best.strong and not close:
            how = "matched on parent identifier, birth date and names"
            if best.swapped:
                how += " (family and first names in the other order)"
            return self._accept(request, best, how)
        doubts = [] if best.strong else _doubts(best, policy)
        if close:
            doubts.insert(
                0, ("two pupils match almost equally (twins or a duplicate?)", "two_candidates")
            )
        return self._review(
            request,
            best,
            "; ".join(sentence for sentence, _ in doubts),
            main_reason([code for _, code in doubts]),
        )

    def _sibling(self, scored: list[Evidence]) -> str:
        """``sibling`` when a pupil shares the parent and the birth date but has another first
        name: the child is a brother, a sister or a twin; else ``no_match``."""
        for evidence in scored:
            if evidence.agreement == DIFFER and evidence.parent and evidence.birth == "exact":
                return "sibling"
        return "no_match"

    # -- answers

    def _base(
        self,
        request: ChildRequest,
        status: str,
        best: Evidence | None,
        reason: str,
        reason_code: str = "",
    ) -> ChildAnswer:
        person = best.person if best else None
        pupil = person.pupil if person else None
        leaving = person.leaving if person else None
        source = pupil or leaving
        return ChildAnswer(
            fund_reference=request.fund_reference,
            status=status,
            school_year=self.school_year,
            student_code=person.student_code if person else None,
            level_code=source.level_code if source else None,
            school_code=source.school_code if source else None,
            leaving_date=None,
            confidence=best.score if best else 0.0,
            reason=reason,
            reason_code=reason_code,
        )

    def _not_found(self, request: ChildRequest, reason: str, reason_code: str) -> ChildAnswer:
        if reason_code == "sibling":
            reason += "; a pupil with the same parent and birth date has another first name"
        return self._base(request, NOT_FOUND, None, reason, reason_code)

    def _review(
        self, request: ChildRequest, best: Evidence, reason: str, reason_code: str
    ) -> ChildAnswer:
        return self._base(request, REVIEW, best, reason, reason_code)

    def _accept(self, request: ChildRequest, best: Evidence, how: str) -> ChildAnswer:
        person, policy = best.person, self.policy
        pupil, leaving = person.pupil, person.leaving
        if pupil is not None:
            left_this_year = (
                leaving is not None
                and leaving.school_year == self.school_year
                and leaving.leaving_date is not None
                and (
                    pupil.enrolled_from is None
                    or leaving.leaving_date >= pupil.enrolled_from.date()
                )
            )
            if not left_this_year:
                return self._base(request, SCHOOLED, best, how)
        assert leaving is not None
        if leaving.school_year == self.school_year:
            answer = self._base(request, LEFT, best, f"{how}; a leaving record of this year")
            return replace(
                answer,
                school_code=leaving.school_code,
                level_code=leaving.level_code,
                leaving_date=leaving.leaving_date,
            )
        if leaving.school_year != self.previous_year:
            return self._review(
                request,
                best,
                "the last leaving record is not of this year or the previous one; no enrolment "
                "since",
                "leaver_old",
            )
        if leaving.is_transfer:
            return self._review(
                request,
                best,
                "left the province by transfer at the end of the previous year: schooling "
                "elsewhere cannot be confirmed here",
                "transfer_out",
            )
        sure = (
            best.score >= policy.not_schooled
            and best.birth == "exact"
            and (best.parent or best.code)
        )
        if not sure:
            return self._review(
                request,
                best,
                "a leaving record of the previous year matches, but not strongly enough to "
                "answer NOT_SCHOOLED",
                "leaver_unsure",
            )
        return self._base(
            request,
            NOT_SCHOOLED,
            best,
            f"{how}; left at the end of the previous year and not enrolled this year",
        )

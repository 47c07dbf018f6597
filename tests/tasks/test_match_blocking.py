"""The matcher's candidates are those of its keys, scored: the shortcuts that keep it fast on a
request of 200,000 children (one index of the pupils and the leavers, the birth date's blocks
looked up by the names' consonant keys, a candidate tested on its birth date and names before
it is scored, a request whose birth dates meet none of its names' keys not looked up at all)
leave out only candidates the scoring would drop. Checked on the broad request set
(tests/tasks/match_variant_set.py) against the plain way: every pupil and leaver
``Register.lookup``'s keys find, each scored."""

from __future__ import annotations

import pytest

from tasks.identifier_keys import cin_key, code_key, number_key
from tasks.match_decision import Matcher
from tasks.match_scoring import DEFAULT_POLICY, request_keys, score
from tasks.province_register import CandidateIndex
from tests.tasks.match_variant_set import YEAR, variant_set


def _every_candidate_scored(matcher: Matcher, request, keys) -> list:
    codes = {pupil.student_code for pupil in matcher.register.lookup(keys)}
    codes |= {matcher.leavers[i].student_code for i in CandidateIndex(matcher.leavers).lookup(keys)}
    scored = []
    for code in codes:
        person = matcher.person(code)
        assert person is not None
        evidence = score(request, keys, person, DEFAULT_POLICY, matcher.first_names)
        if evidence is not None:
            scored.append(evidence)
    return sorted(scored, key=lambda s: (-s.score, s.person.student_code))


@pytest.mark.parametrize("seed", [2024, 7, 31])
def test_the_matcher_scores_every_candidate_its_keys_find_that_could_be_plausible(seed) -> None:
    variants = variant_set(seed=seed)
    matcher = Matcher(variants.register, variants.leavers, YEAR, DEFAULT_POLICY)
    with_candidates = skipped = 0
    for child in variants.children:
        request = child.request
        keys = request_keys(
            request,
            code_key(request.student_code),
            number_key(request.parent_number),
            cin_key(request.parent_cin),
            DEFAULT_POLICY,
        )
        expected = _every_candidate_scored(matcher, request, keys)
        assert matcher.candidates(request, keys) == expected, child.kind
        with_candidates += bool(expected)
        # the look-up skipped for a child no candidate could be found for
        if not matcher.may_have_candidates(keys):
            assert expected == [], child.kind
            skipped += 1
    # the set exercises the shortcuts: most children have candidates to keep, some none
    assert with_candidates >= len(variants.children) // 2
    assert skipped >= 1


@pytest.mark.parametrize(
    ("value", "number", "cin", "code"),
    [
        ("00123456", "123456", "123456", "00123456"),
        ("ab 012-345", "AB012345", "AB12345", "AB012-345"),
        ("٠٠١٢٣", "123", "123", "00123"),
        ("j0123", "J0123", "J123", "J0123"),
        ("0000", "0000", "0", "0000"),
        ("", "", "", ""),
    ],
)
def test_identifiers_are_keyed_alike_with_and_without_anything_to_clean(
    value, number, cin, code
) -> None:
    assert number_key(value) == number
    assert cin_key(value) == cin
    assert code_key(value) == code

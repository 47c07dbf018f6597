"""A pupil's code is given only for that pupil (issue 14): a brother, a sister or a twin who is
not the pupil — the same parent, family name and birth date, another first name — never receives
the pupil's code, whatever the spelling and whether the fund gives the sex (CNSS) or not (CMR).
NOT_FOUND when the first names clearly differ, REVIEW when unsure."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace
from functools import cache

from hypothesis import given, settings
from hypothesis import strategies as st

from massar.synthetic import names
from schemas.exchange import FAMILY_ALLOWANCE, NOT_FOUND, REVIEW, ChildRequest
from tasks.match import match_children
from tasks.name_keys import name_similarity
from tasks.province_register import Register
from tests.tasks.match_variant_set import (
    MATCHED,
    SAME_NAME,
    YEAR,
    insured,
    province,
    registered,
    sex_of,
)

# Every age: the age window would turn some answers into REVIEW and hide what matching said.
EVERY_AGE = {FAMILY_ALLOWANCE: (0, 99)}
TABLES = {"M": names.MALE, "F": names.FEMALE}


def _same_name(a: str, b: str) -> bool:
    return a == b or any(a in group and b in group for group in SAME_NAME)


@cache
def closest_other_names(arabic: str, sex: str, count: int) -> tuple[names.Name, ...]:
    """The ``count`` names of ``sex`` closest to ``arabic`` in spelling (the hard cases)."""
    others = [n for n in TABLES[sex] if not _same_name(n[0], arabic)]
    return tuple(
        sorted(others, key=lambda n: -max(name_similarity(s, arabic) for s in (n[0], *n[1])))[
            :count
        ]
    )


def _spellings(sibling: names.Name, pupil: names.Name) -> list[str]:
    """The sibling's name as Massar writes it and as funds spell it, leaving out a spelling the
    tables also give for the pupil's own name (FATIMA EZZAHRA is listed under فاطمة too)."""
    return [s for s in (sibling[0], *sibling[1]) if s not in (pupil[0], *pupil[1])]


def test_no_sibling_of_any_pupil_of_a_generated_province_gets_the_pupils_code() -> None:
    places = province(seed=7, schools=8)
    register = Register(YEAR, [registered(*place) for place in places.values()])
    requests: list[ChildRequest] = []
    siblings_of: list[str] = []
    for code, (pupil, *_) in sorted(places.items()):
        number, cin = insured(pupil) or ("", pupil.guardians[0].cin)
        sex = sex_of(pupil)
        other = "F" if sex == "M" else "M"
        for sibling_sex, sibling in [
            *((sex, n) for n in closest_other_names(pupil.first[0], sex, 3)),
            *((other, n) for n in closest_other_names(pupil.first[0], other, 1)),
        ]:
            for index, spelling in enumerate(_spellings(sibling, pupil.first)):
                arabic = index == 0
                for asked_sex in (sibling_sex, None) if index <= 1 else (sibling_sex,):
                    requests.append(
                        ChildRequest(
                            fund_reference=f"S{len(requests)}",
                            parent_number=number,
                            parent_cin=cin,
                            parent_family_name=pupil.family[1][0],
                            parent_first_name="AHMED",
                            child_family_name=pupil.family[0] if arabic else pupil.family[1][0],
                            child_first_name=spelling,
                            birth_date=pupil.birth,
                            sex=asked_sex,
                            student_code=None,
                            benefit=FAMILY_ALLOWANCE,
                            source_line=len(requests) + 2,
                        )
                    )
                    siblings_of.append(code)
    answers = match_children(requests, register, (), YEAR, EVERY_AGE)

    given_away = [
        (request.child_first_name, places[code][0].first[0])
        for request, answer, code in zip(requests, answers, siblings_of, strict=True)
        if answer.status in MATCHED and answer.student_code == code
    ]
    assert given_away == []
    statuses = Counter(answer.status for answer in answers)
    print(f"{len(places)} pupils, {len(requests)} siblings asked about: {dict(statuses)}")
    # only NOT_FOUND or REVIEW (no other pupil shares the parent and the birth date) ...
    assert set(statuses) <= {NOT_FOUND, REVIEW}
    # ... and NOT_FOUND for most: REVIEW is for a first name close enough to be unsure of
    assert statuses[REVIEW] <= 0.1 * len(requests)
    # the reasons say why
    codes = Counter(answer.reason_code for answer in answers)
    print(f"reason codes: {dict(codes)}")
    assert codes["sibling"] >= statuses[NOT_FOUND] * 0.9
    assert codes["first_name_doubt"] + codes["first_name_part"] >= statuses[REVIEW] * 0.9


PUPIL_NAMES = [(n, sex) for sex, table in TABLES.items() for n in table]


@settings(max_examples=300, deadline=None)
@given(
    pupil=st.sampled_from(PUPIL_NAMES),
    sibling=st.sampled_from(PUPIL_NAMES),
    family=st.sampled_from(names.FAMILY),
    spelling=st.integers(min_value=0, max_value=3),
    sex_given=st.booleans(),
    twin_enrolled=st.booleans(),
)
def test_a_sibling_never_gets_the_pupils_code(
    pupil, sibling, family, spelling, sex_given, twin_enrolled
) -> None:
    (pupil_name, pupil_sex), (sibling_name, sibling_sex) = pupil, sibling
    written = _spellings(sibling_name, pupil_name)
    if _same_name(pupil_name[0], sibling_name[0]) or not written:
        return
    rng = random.Random(f"{pupil_name[0]}{sibling_name[0]}")
    places = province(seed=3, schools=1)
    model, school, level, klass = places[sorted(places)[rng.randrange(len(places))]]
    model = replace(
        model,
        family=family,
        first=pupil_name,
        sex="ذكر" if pupil_sex == "M" else "أنثى",
    )
    pupils = [registered(model, school, level, klass)]
    if twin_enrolled:  # the twin is a pupil too: the request names the twin, or is REVIEW
        pupils.append(
            replace(
                pupils[0], student_code="T000000001", first_name=sibling_name[0], sex=sibling_sex
            )
        )
    number, cin = insured(model) or ("", model.guardians[0].cin)
    text = written[spelling % len(written)]
    request = ChildRequest(
        fund_reference="R1",
        parent_number=number,
        parent_cin=cin,
        parent_family_name=family[1][0],
        parent_first_name="AHMED",
        child_family_name=family[0] if text == sibling_name[0] else family[1][0],
        child_first_name=text,
        birth_date=model.birth,
        sex=sibling_sex if sex_given else None,
        student_code=None,
        benefit=FAMILY_ALLOWANCE,
        source_line=2,
    )
    (answer,) = match_children([request], Register(YEAR, pupils), (), YEAR, EVERY_AGE)
    assert not (answer.status in MATCHED and answer.student_code == model.code), (
        text,
        pupil_name[0],
        answer.reason,
    )

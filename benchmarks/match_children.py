"""Benchmark: matching a partner fund's request against a Tiznit-like province.

Builds the province in memory with the synthetic generator's models (the default plan: about
48 000 pupils in 136 submitting schools; no files written), turns it into the warehouse's
``students`` / ``enrollments`` / ``guardians`` frames and a Register (``register_from_frames``,
the same code ``load_province_register`` runs after reading the Delta tables), then matches a
request of N children (default 20 000) drawn the way the generator draws the funds' requests:
pupils aged 12-21 whose parent is insured (names as the exact Latin spelling 55 %, a spelling
variant 25 %, Arabic 20 %; the Massar code given for 25 %), plus 15 % children unknown to the
province. Prints the register build time, the matching throughput (children per second of wall
and of CPU time: the machine is shared, CPU time is the figure to compare), how many candidates
the blocking keys gave per child, the agreement with the known truth and the REVIEW answers per
reason code.

    .venv/bin/python benchmarks/match_children.py [--children 20000] [--seed 2024]
        [--year 2024/2025] [--schools N]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import polars as pl  # noqa: E402

from ground.settings import Settings  # noqa: E402
from massar.synthetic import names  # noqa: E402
from massar.synthetic.partners import school_leavers  # noqa: E402
from massar.synthetic.province import Pupil, build_plan, build_school, first_year  # noqa: E402
from schemas.exchange import (  # noqa: E402
    FAMILY_ALLOWANCE,
    LEFT,
    NOT_FOUND,
    NOT_SCHOOLED,
    REVIEW,
    SCHOOLED,
    STATUSES,
    ChildRequest,
)
from tasks.leaving_records import LeavingRecord  # noqa: E402
from tasks.match import match_children  # noqa: E402
from tasks.match_summary import match_summary  # noqa: E402
from tasks.province_register import Register, register_from_frames  # noqa: E402

RELATIONS = {"الأب": "father", "الأم": "mother", "الوصي": "guardian"}


def province_frames(seed: int, year: str, schools: int | None):
    """The warehouse's students, enrollments and guardians frames of a synthetic province, the
    pupils (model objects) by code with their school, and the generator's leavers."""
    plan = build_plan(seed, year, schools)
    students, enrollments, guardians, leavers = [], [], [], []
    pupils: dict[str, tuple[Pupil, str]] = {}
    received = datetime(first_year(year) + 1, 1, 15, tzinfo=UTC)
    for school in plan.folders:
        model = build_school(school, plan)
        leavers += school_leavers(model, seed)
        for klass in model.classes:
            for pupil in klass.pupils:
                pupils[pupil.code] = (pupil, school.code)
                students.append(
                    {
                        "school_code": school.code,
                        "school_year": year,
                        "student_code": pupil.code,
                        "family_name": pupil.family_ar,
                        "first_name": pupil.first_ar,
                        "sex": "M" if pupil.sex == "ذكر" else "F",
                        "birth_date": pupil.birth,
                    }
                )
                enrollments.append(
                    {
                        "school_code": school.code,
                        "school_year": year,
                        "student_code": pupil.code,
                        "level_code": klass.level.code,
                        "class_code": klass.code,
                        "enrolled_from": received,
                        "status": "active",
                    }
                )
                for guardian in pupil.guardians:
                    guardians.append(
                        {
                            "school_code": school.code,
                            "student_code": pupil.code,
                            "relation": RELATIONS[guardian.relation],
                            "guardian_family_name": guardian.family_ar,
                            "guardian_family_name_fr": guardian.family_fr,
                            "guardian_cin": guardian.cin,
                            "cnss_number": guardian.cnss or None,
                            "cmr_number": guardian.cmr or None,
                        }
                    )
    frames = pl.DataFrame(students), pl.DataFrame(enrollments), pl.DataFrame(guardians)
    return (*frames, pupils, leavers)


def leaving_records(leavers: list[dict]) -> list[LeavingRecord]:
    return [
        LeavingRecord(
            school_code=lv["school_code"],
            school_year=lv["school_year"],
            student_code=lv["student_code"],
            family_name=lv["family"][0],
            first_name=lv["first"][0],
            sex="M" if lv["sex"] == "ذكر" else "F",
            birth_date=lv["birth"],
            level_code=lv["level_code"],
            leaving_date=lv["leaving_date"],
            reason=lv["reason"],
            parent_cin=lv["parent_cin"],
            cnss_number=lv["cnss"] or None,
            cmr_number=lv["cmr"] or None,
        )
        for lv in leavers
    ]


def _latin(rng: random.Random, name: names.Name, variant: bool) -> str:
    spellings = name[1]
    return rng.choice(spellings[1:]) if variant and len(spellings) > 1 else spellings[0]


def _child(
    rng: random.Random,
    ref: str,
    family: names.Name,
    first: names.Name,
    sex: str,
    birth: date,
    parent_number: str,
    parent_cin: str,
    code: str | None,
) -> ChildRequest:
    r = rng.random()
    arabic, variant = r >= 0.8, 0.55 <= r < 0.8
    return ChildRequest(
        fund_reference=ref,
        parent_number=parent_number,
        parent_cin=parent_cin,
        parent_family_name=family[1][0],
        parent_first_name=names.pick(rng, names.MALE)[1][0],
        child_family_name=family[0] if arabic else _latin(rng, family, variant),
        child_first_name=first[0] if arabic else _latin(rng, first, variant),
        birth_date=birth,
        sex="M" if sex == "ذكر" else "F",
        student_code=code,
        benefit=FAMILY_ALLOWANCE,
        source_line=0,
    )


def build_requests(
    rng: random.Random,
    pupils: dict[str, tuple[Pupil, str]],
    leavers: list[dict],
    year: str,
    size: int,
) -> tuple[list[ChildRequest], dict[str, tuple[str, str | None]]]:
    """A request of ``size`` children and the truth: reference → (status, student code).

    85 % pupils aged 12-21 (their insured parent's number, or the father's CIN with a number
    Massar does not hold: guardians' numbers are often missing); 4 % of them with a birth date
    wrong by a day or with day and month swapped, and no code (→ REVIEW); the generator's
    leavers (LEFT, NOT_SCHOOLED; REVIEW when outside the age window or transferred out of the
    province); children unknown to the province for the rest (NOT_FOUND)."""
    fy = first_year(year)
    eligible = [
        (code, pupil)
        for code, (pupil, _school) in sorted(pupils.items())
        if 12 <= fy - pupil.birth.year <= 21
    ]
    rng.shuffle(eligible)
    requests: list[ChildRequest] = []
    truth: dict[str, tuple[str, str | None]] = {}

    def ref() -> str:
        return f"B{len(requests) + 1:07d}"

    for code, pupil in eligible[: int(size * 0.85) - len(leavers)]:
        insured = [g for g in pupil.guardians if g.cnss or g.cmr]
        parent = insured[0] if insured else pupil.guardians[0]
        number = parent.cnss or parent.cmr or f"{rng.randint(100000000, 999999999)}"
        birth, status = pupil.birth, SCHOOLED
        given = code if rng.random() < 0.25 else None
        if rng.random() < 0.04:
            given, status = None, REVIEW
            if birth.day <= 12 and birth.day != birth.month:
                birth = date(birth.year, birth.day, birth.month)
            else:
                birth = birth + timedelta(days=1)
        request = _child(
            rng, ref(), pupil.family, pupil.first, pupil.sex, birth, number, parent.cin, given
        )
        truth[request.fund_reference] = (status, code)
        requests.append(request)
    for lv in leavers:
        status = LEFT if lv["this_year"] else NOT_SCHOOLED
        if not 12 <= fy - lv["birth"].year <= 21 or (
            status == NOT_SCHOOLED and "انتقال" in lv["reason"]
        ):
            status = REVIEW
        number = lv["cnss"] or lv["cmr"]
        given = lv["student_code"] if rng.random() < 0.5 else None
        request = _child(
            rng,
            ref(),
            lv["family"],
            lv["first"],
            lv["sex"],
            lv["birth"],
            number,
            lv["parent_cin"],
            given,
        )
        truth[request.fund_reference] = (status, lv["student_code"])
        requests.append(request)
    while len(requests) < size:
        sex = rng.choice(("ذكر", "أنثى"))
        first = names.pick(rng, names.MALE if sex == "ذكر" else names.FEMALE)
        family = names.pick(rng, names.FAMILY)
        birth = date(fy - rng.randint(12, 21), 1, 1) + timedelta(days=rng.randrange(365))
        number = f"{rng.randint(100000000, 999999999)}"
        cin = f"{rng.choice(names.CIN_PREFIXES)}{rng.randint(100000, 999999)}"
        request = _child(rng, ref(), family, first, sex, birth, number, cin, None)
        truth[request.fund_reference] = (NOT_FOUND, None)
        requests.append(request)
    rng.shuffle(requests)
    return requests, truth


def candidates_per_child(register: Register, requests: list[ChildRequest]) -> list[int]:
    from tasks.identifier_keys import cin_key, code_key, number_key
    from tasks.match_scoring import DEFAULT_POLICY, request_keys

    return [
        len(
            register.lookup(
                request_keys(
                    r,
                    code_key(r.student_code),
                    number_key(r.parent_number),
                    cin_key(r.parent_cin),
                    DEFAULT_POLICY,
                )
            )
        )
        for r in requests
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--year", default="2024/2025")
    parser.add_argument("--schools", type=int, default=None, help="default: the Tiznit plan")
    args = parser.parse_args()

    started = time.perf_counter()
    students, enrollments, guardians, pupils, leavers = province_frames(
        args.seed, args.year, args.schools
    )
    built = time.perf_counter()
    register = register_from_frames(students, enrollments, guardians, args.year)
    registered = time.perf_counter()
    records = leaving_records(leavers)
    print(
        f"province: {len(pupils)} pupils, {guardians.height} guardians, {len(records)} leaving "
        f"records (synthetic models {built - started:.1f} s); register built in "
        f"{registered - built:.2f} s"
    )

    requests, truth = build_requests(
        random.Random(args.seed), pupils, leavers, args.year, args.children
    )
    windows = Settings().partners["cnss"].age_windows
    sizes = candidates_per_child(register, requests)
    print(
        f"blocking: {statistics.mean(sizes):.1f} register candidates per child on average, "
        f"max {max(sizes)} (a scan would compare {len(register)})"
    )

    cold, cold_cpu = time.perf_counter(), time.process_time()
    answers = match_children(requests, register, records, args.year, windows)
    elapsed, cpu = time.perf_counter() - cold, time.process_time() - cold_cpu
    print(
        f"matching: {len(requests)} children in {elapsed:.2f} s = "
        f"{len(requests) / elapsed:,.0f} children/s, CPU {cpu:.2f} s = "
        f"{len(requests) / cpu:,.0f} children per CPU second (name cache cold)"
    )
    warm, warm_cpu = time.perf_counter(), time.process_time()
    match_children(requests, register, records, args.year, windows)
    again, cpu = time.perf_counter() - warm, time.process_time() - warm_cpu
    print(
        f"matching again: {again:.2f} s = {len(requests) / again:,.0f} children/s, CPU "
        f"{cpu:.2f} s = {len(requests) / cpu:,.0f} children per CPU second (name cache warm, "
        "as for a second batch of the same province)"
    )

    agreement: Counter[tuple[str, str]] = Counter()
    wrong_code = 0
    for request, answer in zip(requests, answers, strict=True):
        status, code = truth[request.fund_reference]
        agreement[(status, answer.status)] += 1
        if answer.status in (SCHOOLED, LEFT, NOT_SCHOOLED) and answer.student_code != code:
            wrong_code += 1
    for expected in STATUSES:
        total = sum(n for (e, _), n in agreement.items() if e == expected)
        if total:
            got = {a: n for (e, a), n in agreement.items() if e == expected}
            share = got.get(expected, 0) / total
            print(f"expected {expected}: {total} → {got} ({share:.2%} agree)")
    false_not_schooled = sum(
        n for (e, a), n in agreement.items() if a == NOT_SCHOOLED and e != NOT_SCHOOLED
    )
    print(f"false NOT_SCHOOLED: {false_not_schooled}; matched to the wrong pupil: {wrong_code}")
    reasons = Counter(answer.reason_code for answer in answers if answer.status == REVIEW)
    print("REVIEW by reason: " + ", ".join(f"{code} {n}" for code, n in reasons.most_common()))
    summary = match_summary(answers)
    print(
        f"summary: match rate {summary['match_rate']:.2%}, review rate "
        f"{summary['review_rate']:.2%}, {len(summary['schools'])} schools"
    )


if __name__ == "__main__":
    main()

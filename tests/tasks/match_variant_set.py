"""A broad request set for the matcher, with the answer each child should get.

``variant_set()`` builds a province in memory (the generator's models: Arabic names as Massar
holds them, guardians with their CNSS / CMR numbers and CIN) and asks about children the way
families and funds write them: 28 kinds, from exact spellings to Latin transliteration variants
written here (OU/U/O, KH/X, CH/SH, GH/RH, doubled letters, a final E, I/Y, AI/AY — not only the
generator's own spellings), Arabic variants (hamza and alef forms, ta marbuta, alef maqsura,
tatweel, harakat), names in the other order, compound first names split or joined, family names
with or without their particle, day and month swapped, twins and siblings, outsiders, wrong and
unknown codes, this year's and last year's leavers, transfers. ``figures()`` counts what a
matcher answered against the expected answers.

It only needs the matcher's records and keys (Register, RegisteredPupil, LeavingRecord, the
keys): the same set measures an older matcher from another tree (``PYTHONPATH=<tree>``).
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta

from massar.synthetic import names
from massar.synthetic.province import Pupil, build_plan, build_school
from schemas.exchange import (
    FAMILY_ALLOWANCE,
    LEFT,
    NOT_FOUND,
    NOT_SCHOOLED,
    REVIEW,
    SCHOOLED,
    STATUSES,
    ChildAnswer,
    ChildRequest,
)
from tasks.age_window import age_on
from tasks.identifier_keys import cin_key, number_key
from tasks.leaving_records import LeavingRecord
from tasks.name_keys import name_similarity
from tasks.province_register import Register, RegisteredPupil

YEAR, PREVIOUS = "2024/2025", "2023/2024"
ON_DATE = date(2024, 12, 31)
WINDOWS = {FAMILY_ALLOWANCE: (12, 21)}
RECEIVED = datetime(2025, 1, 15, tzinfo=UTC)  # when the schools' lists were received
MATCHED = (SCHOOLED, LEFT, NOT_SCHOOLED)
# Names the matcher may take for one another: the same name with or without its article.
SAME_NAME = ({"حسن", "الحسن", "لحسن"}, {"حسين", "الحسين"})


@dataclass(frozen=True)
class VariantChild:
    kind: str
    request: ChildRequest
    expected: str  # the status a correct matcher answers
    code: str | None  # the pupil a matched answer must name (None: no pupil may be named)
    resembles: str | None = None  # the pupil the child resembles (a twin's brother...)

    @property
    def certain(self) -> bool:
        """Whether the answer is certain (REVIEW is expected only where a person must look)."""
        return self.expected != REVIEW


@dataclass
class VariantSet:
    register: Register
    leavers: list[LeavingRecord]
    children: list[VariantChild] = field(default_factory=list)


# ---- spellings ------------------------------------------------------------------------------


def _sub_once(rng: random.Random, text: str, pattern: str, repl: str) -> str | None:
    spots = [m for m in re.finditer(pattern, text)]
    if not spots:
        return None
    m = rng.choice(spots)
    return text[: m.start()] + m.expand(repl) + text[m.end() :]


# Latin variants families write, each a list of (pattern, replacement) tried in turn; for
# the consonants, only where the Arabic name has the letter (ISHAQ's SH is not a ش).
LATIN_RULES: dict[str, list[tuple[str, str]]] = {
    "ou_u_o": [(r"OU", "U"), (r"(?<![OA])U", "OU"), (r"O(?!U)", "OU"), (r"OU", "O")],
    "kh_ch_sh_gh": [(r"KH", "X"), (r"CH", "SH"), (r"SH", "CH"), (r"(?<=[BMNRL])GH", "RH")],
    "double_single": [
        (r"([BDFKLMNRSTZ])\1", r"\1"),
        (r"(?<=[AEIOU])([LMNRST])(?=[AEIOU])", r"\1\1"),
        (r"(?<=[AEIOU])S(?=[AEIOU])", "SS"),
    ],
    "final_e_i_y": [
        (r"(?<=[BDKLMNRST])E$", ""),
        (r"(?<=[BDKLMNRST])$", "E"),
        (r"(?<=[AEOU])I(?=[AEOU])", "Y"),
        (r"AI", "AY"),
        (r"(?<=[AEOU])Y", "I"),
    ],
}


_LETTER_OF = {"KH": "خ", "CH": "ش", "SH": "ش", "GH": "غ"}


def latin_variant(rng: random.Random, spelling: str, rule: str, arabic: str) -> str | None:
    """One variant of ``spelling`` (of the Arabic name ``arabic``) by one of the rules of
    ``rule``, or None."""
    options = [
        (pattern, repl)
        for pattern, repl in LATIN_RULES[rule]
        if _LETTER_OF.get(pattern[-2:], "") in arabic
    ]
    rng.shuffle(options)
    for pattern, repl in options:
        changed = _sub_once(rng, spelling, pattern, repl)
        if changed and changed != spelling:
            return changed
    return None


_HAMZA = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا"})


def arabic_variant(rng: random.Random, text: str, rule: str) -> str | None:
    """One way Arabic is typed differently, or None when it changes nothing."""
    if rule == "hamza_alef":
        bare = text.translate(_HAMZA)
        if bare != text:
            return bare
        if text.startswith("ا"):
            return "أ" + text[1:]
        return None
    if rule == "ta_marbuta_ya":
        for old, new in (("ة", "ه"), ("ى", "ي")):
            if old in text:
                return text.replace(old, new)
        if text.endswith("ي"):
            return text[:-1] + "ى"
        return None
    if rule == "tatweel_harakat":
        stretched = names.with_tatweel(text)
        return stretched[:1] + "\u064e" + stretched[1:]  # a fatha after the first letter
    raise ValueError(rule)


def _group(arabic: str) -> frozenset[str]:
    for group in SAME_NAME:
        if arabic in group:
            return frozenset(group)
    return frozenset({arabic})


def other_first_name(rng: random.Random, first: names.Name, sex: str) -> tuple[names.Name, str]:
    """A sibling's first name: another name, often one close to the pupil's (the hard case);
    a quarter of the time of the other sex (boy and girl twins)."""
    if rng.random() < 0.25:
        sex = "F" if sex == "M" else "M"
    table = names.MALE if sex == "M" else names.FEMALE
    same = _group(first[0])
    others = [n for n in table if n[0] not in same and not (_group(n[0]) & same)]
    close = sorted(
        others,
        key=lambda n: -max(name_similarity(s, first[0]) for s in (n[0], *n[1])),
    )
    return (rng.choice(close[:6]) if rng.random() < 0.75 else rng.choice(others)), sex


# ---- the province -----------------------------------------------------------------------------


def _years(day: date, years: int) -> date:
    """The same day ``years`` later (28 February for 29 February)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def sex_of(pupil: Pupil) -> str:
    return "M" if pupil.sex == "ذكر" else "F"


def insured(pupil: Pupil) -> tuple[str, str] | None:
    """(parent number, CIN) of the insured guardian, or None."""
    for guardian in pupil.guardians:
        if guardian.cnss or guardian.cmr:
            return guardian.cnss or guardian.cmr, guardian.cin
    return None


def registered(pupil: Pupil, school: str, level: str, klass: str) -> RegisteredPupil:
    father = next((g for g in pupil.guardians if g.relation == "الأب"), None)
    numbers = {number_key(g.cnss) for g in pupil.guardians} | {
        number_key(g.cmr) for g in pupil.guardians
    }
    return RegisteredPupil(
        student_code=pupil.code,
        school_code=school,
        level_code=level,
        class_code=klass,
        family_name=pupil.family[0],
        first_name=pupil.first[0],
        family_name_fr=father.family_fr if father and father.family_ar == pupil.family[0] else None,
        sex=sex_of(pupil),
        birth_date=pupil.birth,
        parent_numbers=frozenset(numbers - {""}),
        parent_cins=frozenset({cin_key(g.cin) for g in pupil.guardians} - {""}),
        enrolled_from=RECEIVED,
    )


def _leaving(
    pupil: Pupil, school: str, level: str, year: str, left: date, reason: str
) -> LeavingRecord:
    number, cin = insured(pupil) or ("", pupil.guardians[0].cin)
    return LeavingRecord(
        school_code=school,
        school_year=year,
        student_code=pupil.code,
        family_name=pupil.family[0],
        first_name=pupil.first[0],
        sex=sex_of(pupil),
        birth_date=pupil.birth,
        level_code=level,
        leaving_date=left,
        reason=reason,
        parent_cin=cin,
        cnss_number=number,
        cmr_number=None,
    )


def province(seed: int, schools: int) -> dict[str, tuple[Pupil, str, str, str]]:
    """The generator's province in memory: code → (pupil, school, level, class)."""
    plan = build_plan(seed, YEAR, schools)
    places: dict[str, tuple[Pupil, str, str, str]] = {}
    for school in plan.folders:
        model = build_school(school, plan)
        for klass in model.classes:
            for pupil in klass.pupils:
                places[pupil.code] = (pupil, school.code, klass.level.code, klass.code)
    return places


def variant_set(seed: int = 2024, schools: int = 8, per_kind: int = 18) -> VariantSet:
    """The province and the children asked about, with their expected answers."""
    rng = random.Random(seed)
    places = province(seed, schools)
    school_codes = sorted({place[1] for place in places.values()})
    pool = [
        code
        for code, (pupil, *_) in sorted(places.items())
        if 12 <= age_on(pupil.birth, ON_DATE) <= 21 and insured(pupil)
    ]
    rng.shuffle(pool)

    def take(n: int, wanted=lambda pupil: True) -> list[Pupil]:
        out = []
        for code in list(pool):
            if len(out) == n:
                break
            if wanted(places[code][0]):
                pool.remove(code)
                out.append(places[code][0])
        return out

    leavers: list[LeavingRecord] = []
    left_province: set[str] = set()
    extra: list[RegisteredPupil] = []
    children: list[VariantChild] = []

    def ask(
        kind: str,
        pupil: Pupil,
        family: str,
        first: str,
        expected: str,
        code: str | None,
        *,
        birth: date | None = None,
        given: str | None = None,
        parent: tuple[str, str] | None = None,
        resembles: str | None = None,
        sex: str | None = None,
    ) -> None:
        number, cin = parent or insured(pupil) or ("1", "X1")
        index = len(children)
        request = ChildRequest(
            fund_reference=f"V{index + 1:05d}",
            parent_number=number,
            parent_cin=cin,
            parent_family_name=pupil.family[1][0],
            parent_first_name="AHMED",
            child_family_name=family,
            child_first_name=first,
            birth_date=birth or pupil.birth,
            # a third of the children as CMR asks: without the sex
            sex=None if index % 3 == 2 else (sex or sex_of(pupil)),
            student_code=given,
            benefit=FAMILY_ALLOWANCE,
            source_line=index + 2,
        )
        children.append(VariantChild(kind, request, expected, code, resembles))

    def latin(name: names.Name, variant: bool = False) -> str:
        spellings = name[1]
        return rng.choice(spellings[1:]) if variant and len(spellings) > 1 else spellings[0]

    # -- the same child, written in many ways: SCHOOLED with its code
    for pupil in take(per_kind):
        ask("latin exact", pupil, latin(pupil.family), latin(pupil.first), SCHOOLED, pupil.code)
    for pupil in take(per_kind, lambda p: len(p.first[1]) > 1 or len(p.family[1]) > 1):
        fam, first = latin(pupil.family, True), latin(pupil.first, True)
        ask("latin variant (generator)", pupil, fam, first, SCHOOLED, pupil.code)
    for pupil in take(per_kind):
        ask("arabic as in Massar", pupil, pupil.family[0], pupil.first[0], SCHOOLED, pupil.code)
    for rule in ("hamza_alef", "ta_marbuta_ya", "tatweel_harakat"):

        def typed(p: Pupil, rule: str = rule) -> bool:
            return bool(
                arabic_variant(random.Random(0), p.first[0], rule)
                or arabic_variant(random.Random(0), p.family[0], rule)
            )

        for pupil in take(per_kind, typed):
            family = arabic_variant(rng, pupil.family[0], rule) or pupil.family[0]
            first = arabic_variant(rng, pupil.first[0], rule) or pupil.first[0]
            ask(f"arabic {rule}", pupil, family, first, SCHOOLED, pupil.code)
    for rule in LATIN_RULES:

        def spelled(p: Pupil, rule: str = rule) -> bool:
            return bool(
                latin_variant(random.Random(0), latin(p.first), rule, p.first[0])
                or latin_variant(random.Random(0), latin(p.family), rule, p.family[0])
            )

        for pupil in take(per_kind, spelled):
            first = latin(pupil.first)
            first = latin_variant(rng, first, rule, pupil.first[0]) or first
            family = latin(pupil.family)
            family = latin_variant(rng, family, rule, pupil.family[0]) or family
            ask(f"latin {rule}", pupil, family, first, SCHOOLED, pupil.code)
    for pupil in take(per_kind):
        # the first name in the family name's column and the other way round
        fam, first = latin(pupil.family, rng.random() < 0.3), latin(pupil.first)
        ask("names swapped (latin)", pupil, first, fam, SCHOOLED, pupil.code)
    for pupil in take(per_kind // 2):
        ask("names swapped (arabic)", pupil, pupil.first[0], pupil.family[0], SCHOOLED, pupil.code)
    for pupil in take(per_kind, lambda p: " " in p.first[0]):
        spelling = latin(pupil.first, rng.random() < 0.3)
        words = re.split(r"[\s-]+", spelling)
        form = rng.choice(("joined", "hyphen", "arabic joined", "arabic hyphen"))
        if form == "joined":
            first = "".join(words)
        elif form == "hyphen":
            first = "-".join(words)
        elif form == "arabic joined":
            first = pupil.first[0].replace(" ", "")
        else:
            first = pupil.first[0].replace(" ", "-")
        family = pupil.family[0] if form.startswith("arabic") else latin(pupil.family)
        ask("compound first name split or joined", pupil, family, first, SCHOOLED, pupil.code)
    particle = re.compile(r"^(أيت |أو|بن|ال)")
    for pupil in take(per_kind, lambda p: bool(particle.match(p.family[0]))):
        arabic, spelling = pupil.family[0], latin(pupil.family)
        choice = rng.randrange(4)
        if arabic.startswith("أيت "):
            options = [
                spelling.replace("AIT", "AÏT"),
                spelling.replace("AIT ", "AIT-").replace("AIT-", "AIT"),
                spelling.split(" ", 1)[-1],  # without the particle
                arabic.replace("أيت", rng.choice(("آيت", "ايت"))),
            ]
        elif arabic.startswith("أو"):
            options = [
                "OU " + spelling[2:],
                spelling[2:],
                arabic.replace("أو", "أو ", 1),
                arabic.replace("أو", "", 1),
            ]
        elif arabic.startswith("بن"):
            options = [
                spelling.replace("BEN ", "BEN"),
                "BEN " + spelling[3:].lstrip() if not spelling.startswith("BEN ") else spelling,
                spelling[3:].lstrip(),
                arabic.replace("بن", "بن ", 1),
            ]
        else:  # ال
            bare = re.sub(r"^(EL |E[LSTZRN]-?)", "", spelling)
            options = [
                "EL " + bare,
                "EL-" + bare,
                bare,
                arabic[2:],
            ]
        ask(
            "family name with or without its particle",
            pupil,
            options[choice],
            pupil.first[0] if options[choice] == options[3] else latin(pupil.first),
            SCHOOLED,
            pupil.code,
        )
    for pupil in take(per_kind):
        fam, first = latin(pupil.family, True), latin(pupil.first, True)
        ask(
            "massar code given, variant names",
            pupil,
            fam,
            first,
            SCHOOLED,
            pupil.code,
            given=pupil.code.lower() if rng.random() < 0.3 else pupil.code,
        )

    # -- twins and siblings
    for pupil in take(per_kind):
        # the twin is a pupil too: each is found with its own code
        (name, sex), (_, school, level, klass) = (
            other_first_name(rng, pupil.first, sex_of(pupil)),
            places[pupil.code],
        )
        twin_code = f"T{len(extra) + 1:09d}"
        twin = registered(pupil, school, level, klass)
        extra.append(replace(twin, student_code=twin_code, first_name=name[0], sex=sex))
        twin_pupil = Pupil(
            code=twin_code,
            internal_id=0,
            family=pupil.family,
            first=name,
            sex="ذكر" if sex == "M" else "أنثى",
            birth=pupil.birth,
            birthplace="",
            ability=0.5,
            guardians=pupil.guardians,
        )
        arabic = rng.random() < 0.3
        for child in (pupil, twin_pupil):
            ask(
                "twins both pupils",
                child,
                child.family[0] if arabic else latin(child.family),
                child.first[0] if arabic else latin(child.first, rng.random() < 0.3),
                SCHOOLED,
                child.code,
            )
    for pupil in take(per_kind):
        name, sex = other_first_name(rng, pupil.first, sex_of(pupil))
        form = rng.random()
        first = name[0] if form < 0.25 else latin(name, form > 0.75)
        family = pupil.family[0] if form < 0.25 else latin(pupil.family)
        ask(
            "twin not in the province",
            pupil,
            family,
            first,
            NOT_FOUND,
            None,
            resembles=pupil.code,
            sex=sex,
        )
    for pupil in take(per_kind):
        name, sex = other_first_name(rng, pupil.first, sex_of(pupil))
        shifts = [s for s in (-3, -2, 2, 3) if 12 <= age_on(_years(pupil.birth, s), ON_DATE) <= 21]
        birth = _years(pupil.birth, rng.choice(shifts))
        ask(
            "sibling, another birth date",
            pupil,
            latin(pupil.family),
            latin(name),
            NOT_FOUND,
            None,
            birth=birth,
            resembles=pupil.code,
            sex=sex,
        )
    for pupil in take(per_kind):
        # the same names as a pupil, another family (parent) and another birth date
        shifts = [s for s in (-2, 2) if 12 <= age_on(_years(pupil.birth, s), ON_DATE) <= 21]
        birth = _years(pupil.birth, rng.choice(shifts))
        ask(
            "namesake of a pupil",
            pupil,
            latin(pupil.family),
            latin(pupil.first),
            NOT_FOUND,
            None,
            birth=birth,
            parent=(f"{rng.randint(100000000, 999999999)}", f"ZT{rng.randint(100000, 999999)}"),
            resembles=pupil.code,
        )
    for pupil in take(per_kind):
        # a child of the region not schooled in the province: other names, ids and birth date
        sex = rng.choice(("M", "F"))
        first = names.pick(rng, names.MALE if sex == "M" else names.FEMALE)
        family = names.pick(rng, names.FAMILY)
        birth = date(2024 - rng.randint(12, 21), 1, 1) + timedelta(days=rng.randrange(365))
        ask(
            "outsider",
            pupil,
            latin(family),
            latin(first),
            NOT_FOUND,
            None,
            birth=birth,
            parent=(f"{rng.randint(100000000, 999999999)}", f"ZT{rng.randint(100000, 999999)}"),
            sex=sex,
        )

    # -- codes
    for pupil in take(per_kind):
        other = rng.choice([c for c in places if c != pupil.code and c not in left_province])
        ask(
            "wrong massar code (another pupil's)",
            pupil,
            latin(pupil.family),
            latin(pupil.first),
            REVIEW,
            pupil.code,
            given=other,
        )
    for pupil in take(per_kind):
        ask(
            "massar code unknown to the province",
            pupil,
            latin(pupil.family),
            latin(pupil.first),
            REVIEW,
            pupil.code,
            given=f"Z{rng.randint(100000000, 999999999)}",
        )

    # -- birth dates
    for pupil in take(per_kind, lambda p: p.birth.day <= 12 and p.birth.day != p.birth.month):
        swapped = date(pupil.birth.year, pupil.birth.day, pupil.birth.month)
        ask(
            "day and month swapped",
            pupil,
            latin(pupil.family),
            latin(pupil.first),
            REVIEW,
            pupil.code,
            birth=swapped,
        )
    for pupil in take(per_kind):
        ask(
            "birth date a day off",
            pupil,
            latin(pupil.family),
            latin(pupil.first),
            REVIEW,
            pupil.code,
            birth=pupil.birth + timedelta(days=rng.choice((-1, 1))),
        )

    # -- leavers and transfers
    for pupil in take(per_kind):
        _, school, level, _ = places[pupil.code]
        left = date(2024, 9, 20) + timedelta(days=rng.randrange(150))
        leavers.append(_leaving(pupil, school, level, YEAR, left, "انقطاع عن الدراسة"))
        left_province.add(pupil.code)
        ask("left this year", pupil, latin(pupil.family), latin(pupil.first), LEFT, pupil.code)
    for pupil in take(per_kind):
        _, school, level, _ = places[pupil.code]
        leavers.append(
            _leaving(pupil, school, level, PREVIOUS, date(2024, 6, 30), "انقطاع عن الدراسة")
        )
        left_province.add(pupil.code)
        fam, first = latin(pupil.family), latin(pupil.first)
        ask("left last year", pupil, fam, first, NOT_SCHOOLED, pupil.code)
    for pupil in take(per_kind):
        _, school, level, _ = places[pupil.code]
        leavers.append(
            _leaving(pupil, school, level, PREVIOUS, date(2024, 6, 30), "انتقال إلى خارج الإقليم")
        )
        left_province.add(pupil.code)
        fam, first = latin(pupil.family), latin(pupil.first)
        ask("left the province last year (transfer)", pupil, fam, first, REVIEW, pupil.code)
    for pupil in take(per_kind):
        # moved to another school of the province in the autumn: SCHOOLED where it is now
        _, school, level, _ = places[pupil.code]
        before = rng.choice([c for c in school_codes if c != school])
        left = date(2024, 10, 1) + timedelta(days=rng.randrange(60))
        leavers.append(_leaving(pupil, before, level, YEAR, left, "انتقال"))
        fam, first = latin(pupil.family, True), latin(pupil.first)
        ask("transferred within the province", pupil, fam, first, SCHOOLED, pupil.code)

    register = Register(
        YEAR,
        [
            registered(pupil, school, level, klass)
            for code, (pupil, school, level, klass) in sorted(places.items())
            if code not in left_province
        ]
        + extra,
    )
    return VariantSet(register, leavers, children)


# ---- figures --------------------------------------------------------------------------------


def figures(children: list[VariantChild], answers: list[ChildAnswer]) -> dict:
    """Per kind and per status counts; wrong pupils (a matched answer naming another pupil than
    the child, or any pupil for a child who is none); false NOT_SCHOOLED; false NOT_FOUND (a
    pupil or an uncertain child answered NOT_FOUND); the REVIEW rate among the children whose
    answer is certain; the children answered otherwise than expected, by kind."""
    per_kind: dict[str, Counter[str]] = defaultdict(Counter)
    wrong_pupils = false_not_schooled = false_not_found = 0
    certain = certain_review = 0
    misses: dict[str, Counter[str]] = defaultdict(Counter)
    for child, answer in zip(children, answers, strict=True):
        per_kind[child.kind][answer.status] += 1
        if answer.status in MATCHED and answer.student_code != child.code:
            wrong_pupils += 1
        if answer.status == NOT_SCHOOLED and child.expected != NOT_SCHOOLED:
            false_not_schooled += 1
        if answer.status == NOT_FOUND and child.expected != NOT_FOUND:
            false_not_found += 1
        if child.certain:
            certain += 1
            certain_review += answer.status == REVIEW
        if answer.status != child.expected:
            misses[child.kind][f"{child.expected}→{answer.status}"] += 1
    statuses = Counter(answer.status for answer in answers)
    return {
        "children": len(children),
        "kinds": {kind: sum(counts.values()) for kind, counts in per_kind.items()},
        "answers_per_kind": {kind: dict(counts) for kind, counts in per_kind.items()},
        "answers": {status: statuses.get(status, 0) for status in STATUSES},
        "expected": dict(Counter(child.expected for child in children)),
        "wrong_pupils": wrong_pupils,
        "false_not_schooled": false_not_schooled,
        "false_not_found": false_not_found,
        "certain": certain,
        "certain_review": certain_review,
        "review_rate": round(certain_review / certain, 4) if certain else 0.0,
        "misses": {kind: dict(counts) for kind, counts in misses.items()},
    }

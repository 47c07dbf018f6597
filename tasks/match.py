"""Matching a partner fund's children against the province's pupils.

    load_province_register(settings, school_year) -> Register      the warehouse, for matching
    load_leaving_records(settings) -> tuple[LeavingRecord, ...]    Massar's leaving records
    match_children(requests, register, leavers, school_year, age_windows, on_date)
        -> list[ChildAnswer]                                       one answer per child, in order
    match_summary(answers) -> dict                                 counts and rates, no pupil data

A false "not schooled" suspends a family's allowance, so the matcher answers ``NOT_SCHOOLED`` only
on a strong match with a leaving record, sends everything uncertain to ``REVIEW`` and never lets
a weak match become ``NOT_SCHOOLED``. The rules, thresholds and their reasons are in
docs/decisions/0004-matching-children.md.

How a child is matched: candidates come from indexes (the Massar code, the parent's CNSS / CMR
number, the parent's CIN, the birth date and its near or day/month-swapped variants, a name key),
never from a scan of the register. Each candidate gets a confidence in 0..1 from the parent's
identifiers, the birth date, the first and the family name (Latin or Arabic, compared through one
transliteration key, see tasks/name_keys.py) and the sex (tasks/match_scoring.py); a Massar code
that belongs to the candidate removes most of the remaining doubt. A pupil's code is given only
when the first name *agrees* with the pupil's: a brother, a sister or a twin is NOT_FOUND, or
REVIEW when unsure. Names and birth dates never appear in a reason or a summary; every REVIEW and
NOT_FOUND answer carries a reason code (tasks/match_reasons.py).
"""

from __future__ import annotations

import functools
import io
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.compute as pc
from prefect import task
from prefect.cache_policies import NO_CACHE

from ground.errors import OperatorError
from ground.settings import Settings
from schemas.exchange import (
    LEAVERS_COLUMNS,
    LEFT,
    NOT_FOUND,
    NOT_SCHOOLED,
    REVIEW,
    SCHOOLED,
    STATUSES,
    ChildAnswer,
    ChildRequest,
)
from schemas.text import clean_text, match_key
from tasks.match_reasons import main_reason
from tasks.match_scoring import (
    DEFAULT_POLICY,
    Candidate,
    Evidence,
    MatchPolicy,
    RequestKeys,
    request_keys,
    score,
)
from tasks.name_keys import (
    AGREE,
    DIFFER,
    PART,
    UNSURE,
    FirstNames,
    blocking_key,
    name_skeletons,
    skeletons,
)
from tasks.name_keys import (
    name_similarity as name_similarity,  # re-exported: the tests and benchmarks use it
)
from tasks.normalise import SEX_SYNONYMS, clean_expr, code_key_expr, date_expr, match_key_expr
from warehouse.control import ControlDatabase
from warehouse.delta import read_table
from warehouse.nights import published_versions

# Where the home keeps Massar's leaving records (the generator writes leavers.csv at the root of
# the province folder; the demo copies it here). Columns: docs/data-dictionary.md §4.
LEAVERS_FILE = Path("reference") / "leavers.csv"
# A leaving reason holding one of these words is a transfer out of the province: the child is
# probably schooled elsewhere, which the province cannot confirm or deny.
TRANSFER_WORDS = ("انتقال", "transfer", "mutation")


# ---- the province as matching sees it -----------------------------------------------------------


@dataclass(frozen=True)
class RegisteredPupil:
    """A pupil enrolled (active) in a school of the province in the register's school year."""

    student_code: str
    school_code: str
    level_code: str | None
    class_code: str | None
    family_name: str  # Arabic, as in Massar
    first_name: str  # Arabic, as in Massar
    family_name_fr: str | None  # the father's family name in Latin letters, when known
    sex: str | None  # M or F
    birth_date: date | None
    parent_numbers: frozenset[str] = frozenset()  # guardians' CNSS and CMR numbers (keys)
    parent_cins: frozenset[str] = frozenset()  # guardians' CIN (keys)
    enrolled_from: datetime | None = None  # when the list enrolling the pupil was received


@dataclass(frozen=True)
class LeavingRecord:
    """One row of Massar's leaving records (leavers.csv)."""

    school_code: str
    school_year: str  # the year the pupil left in
    student_code: str
    family_name: str
    first_name: str
    sex: str | None
    birth_date: date | None
    level_code: str | None
    leaving_date: date | None
    reason: str
    parent_cin: str | None
    cnss_number: str | None
    cmr_number: str | None

    @property
    def is_transfer(self) -> bool:
        key = match_key(self.reason)
        return any(word in key for word in TRANSFER_WORDS)


class Register:
    """The pupils of the province for one school year, indexed for matching.

    Holds, per pupil: Massar code, Arabic names, the father's Latin family name where the
    guardians file has it, sex, birth date, school, level, class, when the enrolment was received,
    and the guardians' CIN, CNSS and CMR numbers (as comparison keys). Nothing else: no marks,
    no phone numbers."""

    def __init__(self, school_year: str, pupils: Iterable[RegisteredPupil]) -> None:
        self.school_year = school_year
        self.pupils: tuple[RegisteredPupil, ...] = tuple(pupils)
        self._index = _Index(self.pupils)

    def __len__(self) -> int:
        return len(self.pupils)

    def by_code(self, code: str) -> RegisteredPupil | None:
        found = self._index.code.get(code)
        return self.pupils[found[0]] if found else None

    def lookup(self, request: RequestKeys) -> list[RegisteredPupil]:
        """Pupils sharing a key with the request (code, parent, birth date, name key)."""
        return [self.pupils[i] for i in sorted(self._index.lookup(request))]

    def __repr__(self) -> str:  # never the pupils themselves
        return f"Register(school_year={self.school_year!r}, pupils={len(self.pupils)})"


class _Index:
    """Positions by code, parent number, parent CIN, birth date (exact or day/month swapped),
    near birth date together with the family name's skeleton, and name key."""

    def __init__(self, people: Sequence[RegisteredPupil | LeavingRecord]) -> None:
        self.code: dict[str, list[int]] = defaultdict(list)
        self.birth: dict[date, list[int]] = defaultdict(list)
        self.near: dict[tuple[date, str], list[int]] = defaultdict(list)
        self.number: dict[str, list[int]] = defaultdict(list)
        self.cin: dict[str, list[int]] = defaultdict(list)
        self.names: dict[str, list[int]] = defaultdict(list)
        for position, person in enumerate(people):
            self.code[person.student_code].append(position)
            if person.birth_date:
                self.birth[person.birth_date].append(position)
                families = [person.family_name]
                if isinstance(person, RegisteredPupil) and person.family_name_fr:
                    families.append(person.family_name_fr)
                for skeleton in skeletons(families):
                    self.near[(person.birth_date, skeleton)].append(position)
            numbers, cins = _identifiers(person)
            for number in numbers:
                self.number[number].append(position)
            for cin in cins:
                self.cin[cin].append(position)
            key = blocking_key(person.family_name, person.first_name)
            if key:
                self.names[key].append(position)

    def lookup(self, request: RequestKeys) -> set[int]:
        found: set[int] = set()
        if request.code:
            found.update(self.code.get(request.code, ()))
        if request.number:
            found.update(self.number.get(request.number, ()))
        if request.cin:
            found.update(self.cin.get(request.cin, ()))
        for day in request.birth_dates:
            found.update(self.birth.get(day, ()))
        # A birth date a few days or a year off only brings pupils of the same family name:
        # without a parent identifier or a code nothing else could be plausible.
        for day in request.near_dates:
            for skeleton in request.family_skeletons:
                found.update(self.near.get((day, skeleton), ()))
        if request.name_key:
            found.update(self.names.get(request.name_key, ()))
        return found


def _identifiers(person: RegisteredPupil | LeavingRecord) -> tuple[frozenset[str], frozenset[str]]:
    if isinstance(person, RegisteredPupil):
        return person.parent_numbers, person.parent_cins
    numbers = {number_key(person.cnss_number), number_key(person.cmr_number)} - {""}
    cins = {cin_key(person.parent_cin)} - {""}
    return frozenset(numbers), frozenset(cins)


def number_key(value: str | None) -> str:
    """A CNSS or CMR number as compared: spaces, dots, dashes and slashes removed, upper case,
    leading zeros of an all-digit number dropped (spreadsheets drop them)."""
    if not value:
        return ""
    text = re.sub(r"[\s./-]", "", clean_text(str(value))).upper()
    return (text.lstrip("0") or text) if text.isdigit() else text


def cin_key(value: str | None) -> str:
    """A CIN as compared: upper case, no separators, no leading zeros in its digits."""
    if not value:
        return ""
    text = re.sub(r"[^0-9A-Z]", "", clean_text(str(value)).upper())
    return re.sub(r"^([A-Z]*)0+(?=\d)", r"\1", text)


def code_key(value: str | None) -> str:
    """A Massar code as compared: clean, upper case, no spaces."""
    return re.sub(r"\s", "", clean_text(value or "")).upper()


def number_key_expr(expr: pl.Expr) -> pl.Expr:
    """number_key as a polars expression (null for a blank value)."""
    text = clean_expr(expr).str.replace_all(r"[\s./-]", "").str.to_uppercase()
    stripped = text.str.strip_chars_start("0")
    digits = text.str.contains(r"^[0-9]+$")
    key = pl.when(digits & (stripped.str.len_bytes() > 0)).then(stripped).otherwise(text)
    return pl.when(key.str.len_bytes() > 0).then(key)


def cin_key_expr(expr: pl.Expr) -> pl.Expr:
    """cin_key as a polars expression (null for a blank value)."""
    text = clean_expr(expr).str.to_uppercase().str.replace_all(r"[^0-9A-Z]", "")
    key = text.str.replace(r"^([A-Z]*)0+([0-9])", "${1}${2}")
    return pl.when(key.str.len_bytes() > 0).then(key)


def register_from_frames(
    students: pl.DataFrame,
    enrollments: pl.DataFrame,
    guardians: pl.DataFrame,
    school_year: str,
) -> Register:
    """The register from frames with the warehouse's columns (warehouse/tables.py): the pupils
    of ``students`` with an active enrolment in ``school_year``, their guardians' identifiers
    and the father's Latin family name."""
    pupil_key = ["school_code", "student_code"]
    enrolled = (
        enrollments.filter(
            (pl.col("school_year") == school_year)
            & (pl.col("status").fill_null("active") == "active")
        )
        .sort("enrolled_from", descending=True, nulls_last=True)
        .unique(subset=["student_code"], keep="first", maintain_order=True)
        .select(*pupil_key, "level_code", "class_code", "enrolled_from")
    )
    pupils = (
        students.filter(pl.col("school_year") == school_year)
        .unique(subset=pupil_key, keep="first", maintain_order=True)
        .select(*pupil_key, "family_name", "first_name", "sex", "birth_date")
        .join(enrolled, on=pupil_key, how="inner")
    )
    keys = guardians.join(
        pupils.select(*pupil_key, "family_name"), on=pupil_key, how="inner"
    ).select(
        *pupil_key,
        pl.col("relation"),
        pl.col("family_name"),
        pl.col("guardian_family_name"),
        pl.col("guardian_family_name_fr"),
        cin_key_expr(pl.col("guardian_cin")).alias("cin"),
        pl.concat_list(
            number_key_expr(pl.col("cnss_number")), number_key_expr(pl.col("cmr_number"))
        ).alias("number"),
    )
    numbers = (
        keys.select(*pupil_key, "number")
        .explode("number")
        .drop_nulls("number")
        .group_by(pupil_key)
        .agg(pl.col("number").unique().alias("numbers"))
    )
    cins = keys.drop_nulls("cin").group_by(pupil_key).agg(pl.col("cin").unique().alias("cins"))
    # A child carries the father's family name: keep his Latin spelling when his Arabic family
    # name is the child's (or unknown).
    fathers = (
        keys.filter(
            (pl.col("relation") == "father")
            & pl.col("guardian_family_name_fr").is_not_null()
            & (
                pl.col("guardian_family_name").is_null()
                | (
                    match_key_expr(pl.col("guardian_family_name"))
                    == match_key_expr(pl.col("family_name"))
                )
            )
        )
        .group_by(pupil_key)
        .agg(pl.col("guardian_family_name_fr").first().alias("family_name_fr"))
    )
    joined = (
        pupils.join(numbers, on=pupil_key, how="left")
        .join(cins, on=pupil_key, how="left")
        .join(fathers, on=pupil_key, how="left")
    )
    out = [
        RegisteredPupil(
            student_code=row["student_code"],
            school_code=row["school_code"],
            level_code=row["level_code"],
            class_code=row["class_code"],
            family_name=row["family_name"] or "",
            first_name=row["first_name"] or "",
            family_name_fr=row["family_name_fr"],
            sex=row["sex"],
            birth_date=row["birth_date"],
            parent_numbers=frozenset(row["numbers"] or ()),
            parent_cins=frozenset(row["cins"] or ()),
            enrolled_from=row["enrolled_from"]
            if isinstance(row["enrolled_from"], datetime)
            else None,
        )
        for row in joined.iter_rows(named=True)
    ]
    return Register(school_year, out)


_STUDENT_COLUMNS = (
    "school_code",
    "school_year",
    "student_code",
    "family_name",
    "first_name",
    "sex",
    "birth_date",
)
_ENROLLMENT_COLUMNS = (
    "school_code",
    "school_year",
    "student_code",
    "level_code",
    "class_code",
    "enrolled_from",
    "status",
)
_GUARDIAN_COLUMNS = (
    "school_code",
    "student_code",
    "relation",
    "guardian_family_name",
    "guardian_family_name_fr",
    "guardian_cin",
    "cnss_number",
    "cmr_number",
)


def load_province_register(settings: Settings, school_year: str) -> Register:
    """The register of ``school_year`` from the warehouse as of the last completed night (the
    tables' current versions before any night was published), reading only the columns
    matching needs. Raises warehouse.delta.TableMissing when a table was never consolidated."""
    database = ControlDatabase(settings.resolved_database_url)
    try:
        versions = published_versions(database)
    finally:
        database.dispose()

    def read(table: str, columns: tuple[str, ...], by_year: bool) -> pl.DataFrame:
        dataset = read_table(settings.warehouse, table, versions.get(table))
        condition = pc.field("school_year") == school_year if by_year else None
        frame = pl.from_arrow(dataset.to_table(columns=list(columns), filter=condition))
        assert isinstance(frame, pl.DataFrame)
        return frame

    return register_from_frames(
        read("students", _STUDENT_COLUMNS, True),
        read("enrollments", _ENROLLMENT_COLUMNS, True),
        read("guardians", _GUARDIAN_COLUMNS, False),
        school_year,
    )


def leavers_path(settings: Settings) -> Path:
    """``<home>/reference/leavers.csv``: where the home keeps Massar's leaving records."""
    return settings.home / LEAVERS_FILE


def read_leaving_records(path: Path) -> tuple[LeavingRecord, ...]:
    """Leaving records from a leavers.csv (UTF-8, with or without BOM, comma separated, dates
    dd/mm/yyyy; columns of docs/data-dictionary.md §4). Raises OperatorError when the file
    lacks a column."""
    text = path.read_bytes().decode("utf-8-sig")
    frame = pl.read_csv(io.StringIO(text), infer_schema=False)
    missing = [column for column in LEAVERS_COLUMNS if column not in frame.columns]
    if missing:
        raise OperatorError(
            f"The leaving records file {path} lacks the column(s) {', '.join(missing)}; "
            "export it again with the columns of docs/data-dictionary.md §4."
        )
    sexes = {match_key(label): code for code, labels in SEX_SYNONYMS.items() for label in labels}
    frame = frame.select(
        code_key_expr(pl.col("school_code")).alias("school_code"),
        clean_expr(pl.col("school_year")).alias("school_year"),
        code_key_expr(pl.col("student_code")).alias("student_code"),
        clean_expr(pl.col("family_name")).fill_null("").alias("family_name"),
        clean_expr(pl.col("first_name")).fill_null("").alias("first_name"),
        pl.col("sex"),
        date_expr(pl.col("birth_date")).alias("birth_date"),
        code_key_expr(pl.col("level_code")).alias("level_code"),
        date_expr(pl.col("leaving_date")).alias("leaving_date"),
        clean_expr(pl.col("reason")).fill_null("").alias("reason"),
        pl.col("parent_cin"),
        pl.col("cnss_number"),
        pl.col("cmr_number"),
    ).filter(pl.col("student_code").is_not_null())
    return tuple(
        LeavingRecord(
            **{
                **row,
                "sex": sexes.get(match_key(row["sex"] or "")),
                "school_year": row["school_year"] or "",
            }
        )
        for row in frame.iter_rows(named=True)
    )


def load_leaving_records(settings: Settings) -> tuple[LeavingRecord, ...]:
    """Massar's leaving records kept in the home (``reference/leavers.csv``); empty when the
    file is absent (every match is then judged on enrolments alone)."""
    path = leavers_path(settings)
    return read_leaving_records(path) if path.is_file() else ()


# ---- matching ---------------------------------------------------------------------------------


def age_reference_date(school_year: str) -> date:
    """31 December of the school year's first calendar year: the day Massar counts ages on."""
    return date(int(school_year[:4]), 12, 31)


def age_on(birth: date, on_date: date) -> int:
    """Age in completed years on ``on_date``."""
    return on_date.year - birth.year - ((on_date.month, on_date.day) < (birth.month, birth.day))


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


class _Matcher:
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
        self.leavers_index = _Index(self.leavers)
        self.leaving_by_code = latest
        self.first_names = FirstNames(
            (person.first_name, person.sex) for person in (*register.pupils, *self.leavers)
        )
        self._people: dict[str, Candidate | None] = {}

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
        families: list[str] = []
        for source in (pupil, leaving):
            if source is None:
                continue
            more_numbers, more_cins = _identifiers(source)
            numbers |= more_numbers
            cins |= more_cins
            families.append(source.family_name)
        if pupil and pupil.family_name_fr:
            families.append(pupil.family_name_fr)
        main = pupil if pupil is not None else leaving
        assert main is not None
        family_names = tuple(dict.fromkeys(f for f in families if f))
        return Candidate(
            student_code=code,
            pupil=pupil,
            leaving=leaving,
            family_names=family_names,
            family_skeletons=frozenset().union(*map(name_skeletons, family_names)),
            first_name=main.first_name,
            sex=main.sex,
            birth_date=main.birth_date,
            numbers=frozenset(numbers),
            cins=frozenset(cins),
        )

    def candidates(self, request: ChildRequest, keys: RequestKeys) -> list[Evidence]:
        codes = {pupil.student_code for pupil in self.register.lookup(keys)}
        codes |= {self.leavers[i].student_code for i in self.leavers_index.lookup(keys)}
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
        scored = self.candidates(request, keys)
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


def _check_age(
    answer: ChildAnswer,
    request: ChildRequest,
    age_windows: Mapping[str, tuple[int, int]],
    on_date: date,
    matched_birth: date | None,
) -> ChildAnswer:
    """The answer, or REVIEW when the child is outside the age window of its benefit (or the
    window or the birth date is missing); the reason keeps what the match alone said, the
    reason code says why it is REVIEW."""

    def review(why: str, code: str) -> ChildAnswer:
        alone = (
            answer.reason
            if answer.status == REVIEW
            else f"the match alone would answer {answer.status}"
        )
        return replace(answer, status=REVIEW, reason=f"{why}; {alone}", reason_code=code)

    window = age_windows.get(request.benefit)
    if window is None:
        return review(
            f"no age window is configured for the benefit {request.benefit}", "no_age_window"
        )
    birth = request.birth_date or matched_birth
    if birth is None:
        if answer.status == NOT_FOUND:
            return answer
        return review(
            f"no birth date to check the age window of {request.benefit}", "no_birth_date"
        )
    age = age_on(birth, on_date)
    low, high = window
    if low <= age <= high:
        return answer
    return review(
        f"outside the age window of {request.benefit} ({low}-{high}): aged {age} on "
        f"{on_date.isoformat()}",
        "outside_age_window",
    )


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

    ``processes`` > 1 splits a large request (from 20,000 children) across that many worker
    processes: each child's answer depends only on the child and the register, so the answers
    are the same, in the same order.

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
    if processes > 1 and len(requests) >= PARALLEL_FROM:
        return _match_in_processes(
            requests, register, leavers, school_year, age_windows, on_date, policy, processes
        )
    matcher = _Matcher(register, leavers, school_year, policy)
    answers = []
    for request in requests:
        answer = matcher.answer(request)
        matched = matcher.person(answer.student_code) if answer.student_code else None
        answer = _check_age(
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


PARALLEL_FROM = 20_000  # below this, starting processes costs more than it saves


def _match_in_processes(
    requests: Sequence[ChildRequest],
    register: Register,
    leavers: Iterable[LeavingRecord],
    school_year: str,
    age_windows: Mapping[str, tuple[int, int]],
    on_date: date,
    policy: MatchPolicy,
    processes: int,
) -> list[ChildAnswer]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    leavers = tuple(leavers)
    size = -(-len(requests) // processes)
    chunks = [list(requests[i : i + size]) for i in range(0, len(requests), size)]
    # forkserver: the parent may hold Prefect's threads, which fork would copy half-alive.
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=len(chunks), mp_context=context) as pool:
        answer_chunk = functools.partial(
            match_children,
            register=register,
            leavers=leavers,
            school_year=school_year,
            age_windows=age_windows,
            on_date=on_date,
            policy=policy,
        )
        parts = pool.map(answer_chunk, chunks)
        return [answer for part in parts for answer in part]


# ---- summary ----------------------------------------------------------------------------------

MATCHED = (SCHOOLED, LEFT, NOT_SCHOOLED)  # answered from a pupil's record


def _counts(answers: Sequence[ChildAnswer]) -> dict[str, Any]:
    by_status = Counter(a.status for a in answers)
    total = len(answers)
    matched = sum(by_status[s] for s in MATCHED)
    return {
        "total": total,
        "by_status": {status: by_status.get(status, 0) for status in STATUSES},
        "matched": matched,
        "match_rate": round(matched / total, 4) if total else 0.0,
        "review_rate": round(by_status.get(REVIEW, 0) / total, 4) if total else 0.0,
    }


def match_summary(answers: Sequence[ChildAnswer]) -> dict[str, Any]:
    """Counts per status and match rates (SCHOOLED + LEFT + NOT_SCHOOLED over all answers) for
    the batch and per school (answers without a school — NOT_FOUND, some REVIEW — are counted
    under ``without_school``). Only counts and school codes: no names, birth dates or pupil
    codes."""
    by_school: dict[str, list[ChildAnswer]] = defaultdict(list)
    for answer in answers:
        by_school[answer.school_code or ""].append(answer)
    summary = _counts(answers)
    summary["schools"] = {code: _counts(group) for code, group in sorted(by_school.items()) if code}
    summary["without_school"] = _counts(by_school.get("", []))
    return summary


# ---- Prefect tasks ------------------------------------------------------------------------------

load_register_task = task(
    load_province_register, name="load_province_register", cache_policy=NO_CACHE
)
load_leavers_task = task(load_leaving_records, name="load_leaving_records", cache_policy=NO_CACHE)
match_children_task = task(match_children, name="match_children", cache_policy=NO_CACHE)
match_summary_task = task(match_summary, name="match_summary", cache_policy=NO_CACHE)

"""The province's pupils as the matcher sees them: who they are and how a request finds them.

    load_province_register(settings, school_year) -> Register   the warehouse, for matching
    register_from_frames(students, enrollments, guardians, school_year) -> Register
    Register.lookup(keys) -> list[RegisteredPupil]               the candidates of a request
    CandidateIndex(people)                                       the same keys over any records
                                                                 (the pupils, the leavers)

Candidates come from indexes (the Massar code, the parent's CNSS / CMR number, the parent's CIN,
the birth date and its near or day/month-swapped variants, a name key), never from a scan of the
register.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

import polars as pl
import pyarrow.compute as pc

from ground.collector import collector_paused
from ground.settings import Settings
from tasks.identifier_keys import cin_key, cin_key_expr, number_key, number_key_expr
from tasks.leaving_records import LeavingRecord
from tasks.match_scoring import RequestKeys
from tasks.name_keys import blocking_key, skeletons
from tasks.normalise import match_key_expr
from warehouse.control import ControlDatabase
from warehouse.delta import read_table
from warehouse.nights import published_versions


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


class Register:
    """The pupils of the province for one school year, indexed for matching.

    Holds, per pupil: Massar code, Arabic names, the father's Latin family name where the
    guardians file has it, sex, birth date, school, level, class, when the enrolment was received,
    and the guardians' CIN, CNSS and CMR numbers (as comparison keys). Nothing else: no marks,
    no phone numbers."""

    def __init__(self, school_year: str, pupils: Iterable[RegisteredPupil]) -> None:
        self.school_year = school_year
        self.pupils: tuple[RegisteredPupil, ...] = tuple(pupils)
        self._index = CandidateIndex(self.pupils)

    def __len__(self) -> int:
        return len(self.pupils)

    def by_code(self, code: str) -> RegisteredPupil | None:
        found = self._index.code.get(code)
        return self.pupils[found[0]] if found else None

    def lookup(self, request: RequestKeys) -> list[RegisteredPupil]:
        """Pupils sharing a key with the request (code, parent, birth date, name key)."""
        return [self.pupils[i] for i in sorted(self._index.lookup(request))]

    def index_with(self, leavers: Sequence[LeavingRecord]) -> CandidateIndex:
        """One index of the pupils (positions 0..) and ``leavers`` (positions after the
        pupils'), for the matcher."""
        return self._index.extended(leavers, len(self.pupils))

    def __repr__(self) -> str:  # never the pupils themselves
        return f"Register(school_year={self.school_year!r}, pupils={len(self.pupils)})"


class CandidateIndex:
    """Positions by code, parent number, parent CIN, birth date (exact or day/month swapped),
    near birth date together with the family name's skeleton, and name key."""

    def __init__(self, people: Sequence[RegisteredPupil | LeavingRecord]) -> None:
        self.code: dict[str, list[int]] = defaultdict(list)
        self.birth: dict[date, list[int]] = defaultdict(list)
        self.near: dict[tuple[date, str], list[int]] = defaultdict(list)
        self.number: dict[str, list[int]] = defaultdict(list)
        self.cin: dict[str, list[int]] = defaultdict(list)
        self.names: dict[str, list[int]] = defaultdict(list)
        family_skeletons: dict[tuple[str, ...], set[str]] = {}  # siblings share their names
        for position, person in enumerate(people):
            self.code[person.student_code].append(position)
            if person.birth_date:
                self.birth[person.birth_date].append(position)
                families: tuple[str, ...] = (person.family_name,)
                if isinstance(person, RegisteredPupil) and person.family_name_fr:
                    families = (person.family_name, person.family_name_fr)
                found = family_skeletons.get(families)
                if found is None:
                    found = family_skeletons[families] = skeletons(families)
                for skeleton in found:
                    self.near[(person.birth_date, skeleton)].append(position)
            numbers, cins = person_identifiers(person)
            for number in numbers:
                self.number[number].append(position)
            for cin in cins:
                self.cin[cin].append(position)
            key = blocking_key(person.family_name, person.first_name)
            if key:
                self.names[key].append(position)

    def extended(
        self, more: Sequence[RegisteredPupil | LeavingRecord], offset: int
    ) -> CandidateIndex:
        """This index and ``more``'s records at positions ``offset``, ``offset + 1``...: one
        index for the pupils and the leavers (this index's lists are shared, not changed)."""
        added = CandidateIndex(more)
        merged = CandidateIndex(())
        for name in ("code", "birth", "near", "number", "cin", "names"):
            mine: dict = getattr(self, name)
            theirs: dict = getattr(added, name)
            both = dict(mine)
            for key, positions in theirs.items():
                both[key] = [*mine.get(key, ()), *(offset + i for i in positions)]
            setattr(merged, name, both)
        return merged

    def lookup(self, request: RequestKeys) -> set[int]:
        """Positions sharing a key with the request."""
        return self.identified(request) | self.blocked(request)

    def identified(self, request: RequestKeys) -> set[int]:
        """Positions of the request's code, parent's number or CIN."""
        found: set[int] = set()
        if request.code:
            found.update(self.code.get(request.code, ()))
        if request.number:
            found.update(self.number.get(request.number, ()))
        if request.cin:
            found.update(self.cin.get(request.cin, ()))
        return found

    def blocked(self, request: RequestKeys, *, births: bool = True) -> set[int]:
        """Positions of the request's birth dates (``births=False``: without the exact and
        day/month-swapped ones), near birth dates with the family name, and name key."""
        found: set[int] = set()
        if births:
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


def person_identifiers(
    person: RegisteredPupil | LeavingRecord,
) -> tuple[frozenset[str], frozenset[str]]:
    """A pupil's guardians' or a leaving record's parent CNSS / CMR numbers and CINs, as keys."""
    if isinstance(person, RegisteredPupil):
        return person.parent_numbers, person.parent_cins
    numbers = {number_key(person.cnss_number), number_key(person.cmr_number)} - {""}
    cins = {cin_key(person.parent_cin)} - {""}
    return frozenset(numbers), frozenset(cins)


def register_from_frames(
    students: pl.DataFrame,
    enrollments: pl.DataFrame,
    guardians: pl.DataFrame,
    school_year: str,
) -> Register:
    """The register from frames with the warehouse's columns (warehouse/tables.py): the pupils
    of ``students`` with an active enrolment in ``school_year``, their guardians' identifiers
    and the father's Latin family name."""
    with collector_paused():  # a record per pupil and its index: see ground/collector.py
        return _register_from_frames(students, enrollments, guardians, school_year)


def _register_from_frames(
    students: pl.DataFrame,
    enrollments: pl.DataFrame,
    guardians: pl.DataFrame,
    school_year: str,
) -> Register:
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
    # Column by column (a list each) rather than a dict per row: a third of the time.
    columns = (
        "student_code",
        "school_code",
        "level_code",
        "class_code",
        "family_name",
        "first_name",
        "family_name_fr",
        "sex",
        "birth_date",
        "numbers",
        "cins",
        "enrolled_from",
    )
    out = [
        RegisteredPupil(
            student_code=code,
            school_code=school,
            level_code=level,
            class_code=klass,
            family_name=family or "",
            first_name=first or "",
            family_name_fr=family_fr,
            sex=sex,
            birth_date=birth,
            parent_numbers=frozenset(numbers or ()),
            parent_cins=frozenset(cins or ()),
            enrolled_from=enrolled if isinstance(enrolled, datetime) else None,
        )
        for (
            code,
            school,
            level,
            klass,
            family,
            first,
            family_fr,
            sex,
            birth,
            numbers,
            cins,
            enrolled,
        ) in zip(*(joined.get_column(name).to_list() for name in columns), strict=True)
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

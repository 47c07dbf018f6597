"""Reference data the generator reads: schemas/reference/{levels,subjects,curriculum}.csv."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

from schemas.reference_data import REFERENCE_DIR, reference_rows

__all__ = [
    "REFERENCE_DIR",
    "CurriculumEntry",
    "Level",
    "Subject",
    "curriculum",
    "levels",
    "subjects",
]


@dataclass(frozen=True)
class Level:
    code: str
    label_ar: str
    label_fr: str
    cycle: str  # primary | college | lycee
    cycle_year: int
    stream_ar: str
    stream_fr: str
    internal_code: str
    mark_scale: int
    nominal_age: int
    min_age: int
    max_age: int


@dataclass(frozen=True)
class Subject:
    code: str
    name_ar: str
    name_fr: str
    cycle: str


@dataclass(frozen=True)
class CurriculumEntry:
    level_code: str
    subject_code: str
    coefficient: int
    weekly_hours: int
    tests: int
    activities: bool
    activities_weight: float | None
    exams: tuple[str, ...]  # local, provincial, regional, national


def _rows(name: str) -> tuple[Mapping[str, str], ...]:
    rows = reference_rows(name)
    if not rows:  # the generator cannot do without them
        raise FileNotFoundError(f"The reference table {REFERENCE_DIR / name} is missing or empty.")
    return rows


@cache
def levels() -> dict[str, Level]:
    return {
        r["level_code"]: Level(
            code=r["level_code"],
            label_ar=r["label_ar"],
            label_fr=r["label_fr"],
            cycle=r["cycle"],
            cycle_year=int(r["cycle_year"]),
            stream_ar=r["stream_ar"],
            stream_fr=r["stream_fr"],
            internal_code=r["internal_code"],
            mark_scale=int(r["mark_scale"]),
            nominal_age=int(r["nominal_age"]),
            min_age=int(r["min_age"]),
            max_age=int(r["max_age"]),
        )
        for r in _rows("levels.csv")
    }


@cache
def subjects() -> dict[str, Subject]:
    return {
        r["subject_code"]: Subject(r["subject_code"], r["name_ar"], r["name_fr"], r["cycle"])
        for r in _rows("subjects.csv")
    }


@cache
def curriculum() -> dict[str, tuple[CurriculumEntry, ...]]:
    out: dict[str, list[CurriculumEntry]] = {}
    for r in _rows("curriculum.csv"):
        out.setdefault(r["level_code"], []).append(
            CurriculumEntry(
                level_code=r["level_code"],
                subject_code=r["subject_code"],
                coefficient=int(r["coefficient"]),
                weekly_hours=int(r["weekly_hours"]),
                tests=int(r["tests_per_semester"]),
                activities=r["activities"] == "1",
                activities_weight=float(r["activities_weight"]) if r["activities_weight"] else None,
                exams=tuple(e for e in r["exams"].split(";") if e),
            )
        )
    return {k: tuple(v) for k, v in out.items()}

"""Collection campaigns: what schools must send, for which school year, by when.

A province declares its campaigns in ``<home>/campaigns.toml`` (docs/coverage.md), one
``[[campaign]]`` table each::

    [[campaign]]
    id = "2023-2024-s1"
    school_year = "2023/2024"
    period = "semester_1"          # start_of_year | semester_1 | semester_2 | annual_exams
    datasets = ["marks"]           # names of schemas/datasets.py
    opens = 2024-01-15             # dates in Africa/Casablanca (the settings' time zone)
    deadline = 2024-02-10          # the last day a school may send, included

Several campaigns may be open at once. What each school owes is not typed here: it is derived
from the school's classes, their levels and the levels' curriculum (warehouse/coverage.py).
"""

from __future__ import annotations

import tomllib
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from ground.errors import OperatorError
from schemas.datasets import DATASETS

CAMPAIGNS_FILE = "campaigns.toml"
Period = Literal["start_of_year", "semester_1", "semester_2", "annual_exams"]
PERIOD_LABELS = {
    "start_of_year": ("الدخول المدرسي", "rentrée"),
    "semester_1": ("الدورة الأولى", "semestre 1"),
    "semester_2": ("الدورة الثانية", "semestre 2"),
    "annual_exams": ("الامتحانات", "examens"),
}
# The semesters of the NotesCC a period asks for, unless the campaign names them.
PERIOD_SEMESTERS = {
    "start_of_year": (1, 2),
    "semester_1": (1,),
    "semester_2": (2,),
    "annual_exams": (1, 2),
}


class CampaignError(OperatorError):
    """The campaigns file cannot be used; the message says which campaign and what to fix."""


class Campaign(BaseModel):
    """One collection campaign of the province."""

    model_config = {"extra": "forbid", "frozen": True}

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,59}$")
    school_year: str = Field(pattern=r"^\d{4}/\d{4}$")
    period: Period
    datasets: tuple[str, ...] = Field(min_length=1)
    opens: date
    deadline: date
    semesters: tuple[int, ...] = ()  # empty: the period's (PERIOD_SEMESTERS)
    title: str = ""

    @field_validator("datasets")
    @classmethod
    def _known_datasets(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if name not in DATASETS:
                raise ValueError(
                    f"the dataset {name!r} is not one the platform knows (known: "
                    f"{', '.join(DATASETS)})"
                )
        return tuple(dict.fromkeys(value))

    @field_validator("semesters")
    @classmethod
    def _semesters(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(s not in (1, 2) for s in value):
            raise ValueError("semesters are 1 and/or 2")
        return tuple(sorted(set(value)))

    @field_validator("school_year")
    @classmethod
    def _consecutive_years(cls, value: str) -> str:
        first, second = value.split("/")
        if int(second) != int(first) + 1:
            raise ValueError(f"{value!r} is not a school year written YYYY/YYYY+1")
        return value

    @model_validator(mode="after")
    def _deadline_after_opening(self) -> Campaign:
        if self.deadline < self.opens:
            raise ValueError(
                f"the deadline {self.deadline.isoformat()} is before the opening "
                f"{self.opens.isoformat()}"
            )
        return self

    @property
    def marks_semesters(self) -> tuple[int, ...]:
        return self.semesters or PERIOD_SEMESTERS[self.period]

    def closes_at(self, zone: ZoneInfo) -> datetime:
        """The first instant after the deadline day, in ``zone`` (Africa/Casablanca)."""
        return datetime.combine(self.deadline + timedelta(days=1), time(0), zone)

    def days_left(self, today: date) -> int:
        """Days from ``today`` (local) to the deadline: 0 on the deadline day, negative after."""
        return (self.deadline - today).days

    def label(self) -> str:
        ar, fr = PERIOD_LABELS[self.period]
        return self.title or f"{self.school_year} — {fr} / {ar}"


def _sentence(place: str, error: ValidationError) -> str:
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "missing":
        message = "this field is required"
    elif first["type"] == "extra_forbidden":
        message = (
            "a campaign has no such field (it has id, school_year, period, datasets, "
            "opens, deadline, semesters and title)"
        )
    return f"{place}: '{field}' — {message}." if field else f"{place}: {message}."


def parse_campaigns(text: str, source: str = CAMPAIGNS_FILE) -> list[Campaign]:
    """The campaigns of a ``campaigns.toml`` text; a :class:`CampaignError` (one sentence
    naming the campaign and the field) when one is not acceptable."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise CampaignError(f"The campaigns file {source} is not valid TOML: {error}.") from error
    unknown = sorted(set(data) - {"campaign"})
    if unknown:
        raise CampaignError(
            f"The campaigns file {source} has '{unknown[0]}'; it holds only [[campaign]] tables."
        )
    raw = data.get("campaign", [])
    if not isinstance(raw, list):
        raise CampaignError(f"The campaigns file {source} must declare [[campaign]] tables.")
    campaigns: list[Campaign] = []
    for index, entry in enumerate(raw, start=1):
        name = entry.get("id") if isinstance(entry, dict) else None
        place = f"Campaign '{name}'" if name else f"Campaign number {index}"
        try:
            campaigns.append(Campaign.model_validate(entry))
        except ValidationError as error:
            raise CampaignError(f"{_sentence(f'{place} of {source}', error)}") from error
    seen: set[str] = set()
    for campaign in campaigns:
        if campaign.id in seen:
            raise CampaignError(
                f"Two campaigns of {source} have the id '{campaign.id}'; give each its own."
            )
        seen.add(campaign.id)
    return campaigns


def load_campaigns(path: Path) -> list[Campaign]:
    """The campaigns declared in ``path``; none when the file does not exist."""
    if not path.is_file():
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CampaignError(f"The campaigns file {path} cannot be read ({error}).") from error
    return parse_campaigns(text, str(path))

"""Evaluation rules as data (schemas/evaluation/<cycle>.toml), loaded and validated.

    >>> rules = load_rules()
    >>> rules.cycle_of("3APIC"), rules.subject("3APIC", "0020").activities_weight
    ('college', 0.4)

One TOML file per cycle (primary, college, lycee) holds the scale, the pass mark, the weights of
tests vs integrated activities (with per-subject exceptions), coefficient overrides, decisions,
mentions and exam formulas. Coefficients come from schemas/reference/curriculum.csv unless a file
overrides them. A wrong or incomplete file is refused with :class:`RulesError`, whose message is
one sentence naming the file, the level (or the cycle) and the field.

Behaviour for missing marks, absences, exemptions and missing exam papers:
docs/evaluation-rules.md.
"""

from __future__ import annotations

import errno
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas.reference_data import (
    CURRICULUM,
    LEVELS,
    REFERENCE_DIR,
    read_rows,
    reference_file,
)

RULES_DIR = Path(__file__).with_name("evaluation")
CYCLES: tuple[str, ...] = ("primary", "college", "lycee")
EXAM_COMPONENTS: tuple[str, ...] = ("cc", "local", "provincial", "regional", "national")
EXAM_LEVELS_OF: dict[str, tuple[str, ...]] = {
    # which exam papers (curriculum.csv `exams`) feed which component of which exam
    "primary_certificate": ("local", "provincial"),
    "college_certificate": ("local", "regional"),
    "baccalaureate": ("regional", "national"),
}
# Every annual decision a results table may hold: the evaluation gives promoted, oriented and
# repeats; excluded and council (waiting for the class council) come from schools' data.
DECISIONS: tuple[str, ...] = ("promoted", "oriented", "repeats", "excluded", "council")
Decision = Literal["promoted", "oriented", "repeats", "excluded", "council"]
TOLERANCE = 1e-9


class RulesError(ValueError):
    """A rules file that cannot be used; the message is one sentence for the operator."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ContinuousAssessment(_Model):
    tests_weight: float = Field(ge=0, le=1)
    activities_weight: float = Field(ge=0, le=1)
    subject_activities_weight: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _sums_to_one(self) -> ContinuousAssessment:
        if abs(self.tests_weight + self.activities_weight - 1) > TOLERANCE:
            raise ValueError("tests_weight and activities_weight must add up to 1")
        for code, weight in self.subject_activities_weight.items():
            if not 0 <= weight <= 1:
                raise ValueError(f"the activities weight of subject {code} must be between 0 and 1")
        return self


class Coefficients(_Model):
    source: Literal["curriculum"] = "curriculum"
    overrides: dict[str, dict[str, float]] = Field(default_factory=dict)


class Decisions(_Model):
    promote_at: float
    below: Literal["repeats"] = "repeats"
    oriented_levels: list[str] = Field(default_factory=list)
    max_repeats_in_cycle: int = Field(ge=0)
    repeat_limit_requires: Literal["repeat_history"] = "repeat_history"
    # Which decisions count as a pass in pass rates (statistics): data, not code.
    pass_decisions: list[Decision] = Field(min_length=1)

    @model_validator(mode="after")
    def _passes_agree(self) -> Decisions:
        # The evaluation gives these at or above promote_at and `below` under it: a file that
        # counted them otherwise would contradict its own threshold.
        given_at_pass = ["promoted"] + (["oriented"] if self.oriented_levels else [])
        for decision in given_at_pass:
            if decision not in self.pass_decisions:
                raise ValueError(
                    f"{decision} is given at or above promote_at, so it must be listed"
                )
        if self.below in self.pass_decisions:
            raise ValueError(f"{self.below} is given below promote_at, so it cannot be a pass")
        return self


class MentionBand(_Model):
    name: str
    lower: float = Field(alias="from")
    upper: float | None = Field(default=None, alias="to")


class Mentions(_Model):
    apply: bool
    bands: list[MentionBand] = Field(default_factory=list)

    @model_validator(mode="after")
    def _bands_present(self) -> Mentions:
        if self.apply and not self.bands:
            raise ValueError("mentions apply but no bands are given")
        return self


class Makeup(_Model):
    lower: float = Field(alias="from")
    upper: float = Field(alias="to")
    lower_inclusive: bool
    upper_inclusive: bool
    best_of_sessions: Literal["per_national_subject"] = "per_national_subject"


class Exam(_Model):
    levels: list[str] = Field(min_length=1)
    scale: float = Field(gt=0)
    pass_mark: float = Field(ge=0)
    weights: dict[Literal["cc", "local", "provincial", "regional", "national"], float]
    absent_counts: float = 0.0
    regional_from: Literal["same_year", "earlier_year"] = "same_year"
    zero_national_fails: bool = False
    zero_blocks_makeup: bool = False
    makeup: Makeup | None = None

    @model_validator(mode="after")
    def _weights(self) -> Exam:
        if abs(sum(self.weights.values()) - 1) > TOLERANCE:
            raise ValueError("the exam weights must add up to 1")
        if any(weight < 0 for weight in self.weights.values()):
            raise ValueError("an exam weight cannot be negative")
        return self


class CycleRules(_Model):
    cycle: Literal["primary", "college", "lycee"]
    scale: float = Field(gt=0)
    pass_mark: float = Field(ge=0)
    unconfirmed: list[str] = Field(default_factory=list)
    continuous_assessment: ContinuousAssessment
    coefficients: Coefficients = Field(default_factory=Coefficients)
    decisions: Decisions
    mentions: Mentions
    exams: dict[Literal["primary_certificate", "college_certificate", "baccalaureate"], Exam] = (
        Field(default_factory=dict)
    )


@dataclass(frozen=True)
class SubjectRule:
    """The resolved rule of one subject at one level."""

    level_code: str
    subject_code: str
    coefficient: float
    activities: bool
    activities_weight: float
    exams: tuple[str, ...]


@dataclass(frozen=True)
class EvaluationRules:
    """All cycles' rules plus the resolved per level × subject table."""

    cycles: dict[str, CycleRules]
    level_cycle: dict[str, str]
    level_scale: dict[str, float]
    subjects: dict[tuple[str, str], SubjectRule]
    sources: dict[str, Path]

    def cycle_of(self, level_code: str) -> str:
        return self.level_cycle[level_code]

    def for_level(self, level_code: str) -> CycleRules:
        return self.cycles[self.level_cycle[level_code]]

    def subject(self, level_code: str, subject_code: str) -> SubjectRule:
        return self.subjects[(level_code, subject_code)]

    def subject_rows(self) -> list[dict[str, Any]]:
        """One dict per level × subject (level_code, subject_code, coefficient, activities,
        activities_weight, exams as a ';'-joined string)."""
        return [
            {
                "level_code": rule.level_code,
                "subject_code": rule.subject_code,
                "coefficient": rule.coefficient,
                "activities": rule.activities,
                "activities_weight": rule.activities_weight,
                "exams": ";".join(rule.exams),
            }
            for rule in self.subjects.values()
        ]

    def level_rows(self) -> list[dict[str, Any]]:
        """One dict per level of a loaded cycle: level_code, cycle, scale, pass_mark,
        default_activities_weight, promote_at, oriented."""
        rows = []
        for level, cycle in self.level_cycle.items():
            if cycle not in self.cycles:
                continue
            rules = self.cycles[cycle]
            rows.append(
                {
                    "level_code": level,
                    "cycle": cycle,
                    "scale": float(self.level_scale.get(level, rules.scale)),
                    "pass_mark": rules.pass_mark,
                    "default_activities_weight": rules.continuous_assessment.activities_weight,
                    "promote_at": rules.decisions.promote_at,
                    "oriented": level in rules.decisions.oriented_levels,
                }
            )
        return rows

    def pass_decisions(self, cycle: str | None = None) -> tuple[str, ...]:
        """The decisions counted as a pass in ``cycle`` (its rules file's
        ``decisions.pass_decisions``); without a known cycle, those of any loaded cycle."""
        if cycle in self.cycles:
            return tuple(self.cycles[cycle].decisions.pass_decisions)
        loaded = [rules.decisions.pass_decisions for rules in self.cycles.values()]
        return tuple(d for d in DECISIONS if any(d in passes for passes in loaded))

    def exams(self) -> dict[str, Exam]:
        """Every exam of every loaded cycle by name."""
        return {name: exam for rules in self.cycles.values() for name, exam in rules.exams.items()}


# ---- loading ----------------------------------------------------------------------------------


def _read_csv(name: str, folder: Path) -> tuple[Mapping[str, str], ...]:
    file = reference_file(name, folder)
    if not file.exists:  # the rules cannot be checked without it
        raise FileNotFoundError(errno.ENOENT, "No such reference file", str(file.path))
    return read_rows(file)


def _refuse(file: Path, where: str, field: str, problem: str) -> RulesError:
    problem = problem.rstrip(".")
    problem = problem[:1].lower() + problem[1:]
    return RulesError(f"Rules file {file} is refused for {where}, field {field}: {problem}.")


def _where(cycle: str, loc: tuple[Any, ...], level_cycle: dict[str, str]) -> str:
    levels = [str(part) for part in loc if str(part) in level_cycle]
    return f"level {levels[0]}" if levels else f"cycle {cycle}"


def _parse(file: Path, level_cycle: dict[str, str]) -> CycleRules:
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise _refuse(file, f"cycle {file.stem}", "(whole file)", str(error)) from error
    cycle = str(data.get("cycle", file.stem))
    try:
        return CycleRules.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        loc = tuple(first["loc"])
        field = ".".join(str(part) for part in loc) or "(top level)"
        problem = first["msg"].removeprefix("Value error, ")
        raise _refuse(file, _where(cycle, loc, level_cycle), field, problem) from error


def _check_levels(
    file: Path, rules: CycleRules, level_cycle: dict[str, str], curriculum: set[tuple[str, str]]
) -> None:
    def known(level: str, field: str) -> None:
        if level_cycle.get(level) != rules.cycle:
            raise _refuse(
                file, f"level {level}", field, f"{level} is not a level of cycle {rules.cycle}"
            )

    # A weight keyed by a code no level of the cycle teaches would silently weigh nothing (or
    # another subject, were the code reused): refuse it.
    taught = {subject for level, subject in curriculum if level_cycle.get(level) == rules.cycle}
    for subject in rules.continuous_assessment.subject_activities_weight:
        if subject not in taught:
            raise _refuse(
                file,
                f"cycle {rules.cycle}",
                f"continuous_assessment.subject_activities_weight.{subject}",
                f"subject {subject} is not taught at any level of cycle {rules.cycle}",
            )
    for level in rules.decisions.oriented_levels:
        known(level, "decisions.oriented_levels")
    for name, exam in rules.exams.items():
        for level in exam.levels:
            known(level, f"exams.{name}.levels")
    for level, overrides in rules.coefficients.overrides.items():
        known(level, f"coefficients.overrides.{level}")
        for subject, value in overrides.items():
            field = f"coefficients.overrides.{level}.{subject}"
            if (level, subject) not in curriculum:
                raise _refuse(
                    file, f"level {level}", field, f"subject {subject} is not taught at {level}"
                )
            if value <= 0:
                raise _refuse(file, f"level {level}", field, "a coefficient must be positive")


def load_rules(
    path: str | Path | None = None, reference: str | Path | None = None
) -> EvaluationRules:
    """Load the rules: ``path`` is a directory of ``<cycle>.toml`` files (default
    schemas/evaluation/, every cycle of levels.csv required) or one file (that cycle only);
    ``reference`` the directory of levels.csv and curriculum.csv."""
    reference_dir = Path(reference) if reference else REFERENCE_DIR
    levels = _read_csv(LEVELS, reference_dir)
    level_cycle = {row["level_code"]: row["cycle"] for row in levels}
    level_scale = {row["level_code"]: float(row["mark_scale"] or 0) for row in levels}
    curriculum = _read_csv(CURRICULUM, reference_dir)
    taught = {(row["level_code"], row["subject_code"]) for row in curriculum}

    target = Path(path) if path else RULES_DIR
    if target.is_dir():
        files = {cycle: target / f"{cycle}.toml" for cycle in sorted(set(level_cycle.values()))}
        for cycle, file in files.items():
            if not file.exists():
                raise _refuse(file, f"cycle {cycle}", "(whole file)", "the file is missing")
    else:
        files = {target.stem: target}
    cycles: dict[str, CycleRules] = {}
    sources: dict[str, Path] = {}
    for stem, file in files.items():
        rules = _parse(file, level_cycle)
        if target.is_dir() and rules.cycle != stem:
            raise _refuse(file, f"cycle {stem}", "cycle", f"the file declares {rules.cycle}")
        if rules.cycle in cycles:
            raise _refuse(file, f"cycle {rules.cycle}", "cycle", "the cycle is loaded twice")
        _check_levels(file, rules, level_cycle, taught)
        cycles[rules.cycle] = rules
        sources[rules.cycle] = file

    subjects: dict[tuple[str, str], SubjectRule] = {}
    for row in curriculum:
        level, subject = row["level_code"], row["subject_code"]
        taught_in = level_cycle.get(level)
        if taught_in is None or taught_in not in cycles:
            continue
        rules = cycles[taught_in]
        ca = rules.continuous_assessment
        coefficient = rules.coefficients.overrides.get(level, {}).get(subject)
        if coefficient is None:
            coefficient = float(row["coefficient"])
        weight = ca.subject_activities_weight.get(subject)
        if weight is None:
            weight = float(row["activities_weight"]) if row["activities_weight"] else None
        if weight is None:
            weight = ca.activities_weight
        exams = tuple(part for part in (row.get("exams") or "").split(";") if part)
        subjects[(level, subject)] = SubjectRule(
            level, subject, float(coefficient), row["activities"] == "1", float(weight), exams
        )
    return EvaluationRules(cycles, level_cycle, level_scale, subjects, sources)

"""Running the cross-record rules: those of one school over its current picture
(``cross_check_school``), those of the province over every school's lists
(``cross_check_province``). Each runs the declared rules in order; a school rule whose datasets
are missing does not run (``skipped_cross_rules`` says why).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import polars as pl

from tasks.validation.findings import CROSS_COLUMNS, empty_findings, one_per_cell
from tasks.validation.province_rules import PROVINCE_RULES, ProvincePicture
from tasks.validation.school_rules import SCHOOL_RULES, SchoolPicture

# The rules ``cross_check_province`` raises (their findings are recomputed each time).
PROVINCE_RULE_IDS: tuple[str, ...] = tuple(rule.rule_id for rule in PROVINCE_RULES)


def skipped_cross_rules(datasets: Iterable[str], reference: Any = None) -> dict[str, str]:
    """Cross-record rules that cannot run with these datasets (rule id → reason)."""
    present = set(datasets)
    skipped = {}
    for rule in SCHOOL_RULES:
        reason = rule.skipped(present, reference)
        if reason:
            skipped[rule.rule_id] = reason
    return skipped


def cross_check_school(
    frames: Mapping[str, pl.DataFrame], *, school_code: str | None = None, reference: Any = None
) -> pl.DataFrame:
    """Cross-record findings of one school's current picture (X003-X011, X013, X014).

    ``frames`` maps a dataset name to its frame (read or normalised, with ``submission_id``).
    A rule whose datasets are missing does not run: see ``skipped_cross_rules``. X008 judges
    only classes that have at least one lesson in the timetable. ``school_code`` is the school
    whose picture this is (the frames are already that school's)."""
    picture = SchoolPicture.of(frames, reference)
    present = set(picture.frames)
    parts: list[pl.DataFrame] = []
    for rule in SCHOOL_RULES:
        if rule.skipped(present, reference) is None:
            parts.extend(rule.check(picture))
    columns = pl.Schema({**CROSS_COLUMNS, "submission_id": picture.submission_dtype})
    if not parts:
        return empty_findings(columns)
    return one_per_cell(pl.concat([p.cast(columns) for p in parts]))


def cross_check_province(students_by_school: Mapping[str, pl.DataFrame]) -> pl.DataFrame:
    """The province's rules (X002: a pupil enrolled in two schools, reported on each school's
    row(s)) over every school's list. Output adds ``school_code`` to the cross-record
    columns."""
    picture = ProvincePicture.of(students_by_school)
    parts = [rule.check(picture) for rule in PROVINCE_RULES]
    found = [part for part in parts if part.height]
    if len(found) <= 1:
        return found[0] if found else empty_findings(picture.columns)
    return pl.concat(found)

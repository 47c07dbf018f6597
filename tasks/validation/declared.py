"""How a rule is declared. The catalogue (schemas/rules.csv) gives a rule's id, severity and
messages (the schools' texts are data); a declaration gives, once, what the code needs: the
placeholders its findings fill, the datasets it reads, and the function that checks it, or
where it is raised when another room raises it (a reader, the nightly consolidation).

Each rule family declares its rules in its own module (file_rules, row_rules, school_rules,
province_rules); ``tasks.validation.all_rules`` gathers them and ties them to the catalogue.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import polars as pl

from schemas.rules import Rule, catalogue


@dataclass(frozen=True, kw_only=True)
class Declared:
    """What every declaration has: the rule's id and the placeholders its findings fill (the
    catalogue's messages must use exactly these, see ``all_rules.disagreements``)."""

    rule_id: str
    placeholders: tuple[str, ...]

    @property
    def catalogued(self) -> Rule:
        """The rule's row of schemas/rules.csv: severity, title, messages."""
        return catalogue()[self.rule_id]

    @property
    def severity(self) -> str:
        return self.catalogued.severity


@dataclass(frozen=True, kw_only=True)
class RowRule(Declared):
    """A rule on one row of a submission. ``params`` gives the findings' placeholders at a
    column of the dataset (``Field``) for the submitting school; the check is the dataset's
    pandera model (schemas/models.py, a check named by the rule id) unless ``check`` is given
    (a rule over several rows of the same file, e.g. R007 duplicates)."""

    params: Callable[[Any, str | None], dict[str, Any]] | None = None
    check: Callable[..., pl.DataFrame] | None = None


@dataclass(frozen=True, kw_only=True)
class SchoolRule(Declared):
    """A cross-record rule over one school's current picture (its datasets together).

    It runs when the school has every dataset of ``needs``, at least one of ``needs_one_of``
    (when given) and, when ``ready`` is given, a reference that ``ready`` accepts (it returns
    why not, else None). ``check`` returns the findings (frames of ``CROSS_COLUMNS``)."""

    needs: tuple[str, ...]
    needs_one_of: tuple[str, ...] = ()
    one_of_reason: str = ""  # why it does not run without any of ``needs_one_of``
    ready: Callable[[Any], str | None] | None = None
    check: Callable[[Any], Iterable[pl.DataFrame]]

    def skipped(self, present: set[str], reference: Any = None) -> str | None:
        """Why the rule cannot run with these datasets and reference, or None when it can."""
        missing = [name for name in self.needs if name not in present]
        if missing:
            return "missing dataset: " + ", ".join(missing)
        if self.ready is not None:
            reason = self.ready(reference)
            if reason:
                return reason
        if self.needs_one_of and not set(self.needs_one_of) & present:
            return self.one_of_reason or "missing dataset: " + " or ".join(self.needs_one_of)
        return None


@dataclass(frozen=True, kw_only=True)
class ProvinceRule(Declared):
    """A cross-record rule over every school's lists at once (run by the ingest after the
    schools). ``check`` takes the province's picture and returns its findings."""

    needs: tuple[str, ...]
    check: Callable[[Any], pl.DataFrame]


@dataclass(frozen=True, kw_only=True)
class RaisedElsewhere(Declared):
    """A rule raised outside validation: ``where`` names the packages or files (paths from
    the project's root) whose code raises it, ``how`` says in a few words how. ``needs``: the
    datasets (or files) it reads."""

    where: tuple[str, ...]
    how: str
    needs: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Retired(Declared):
    """A rule no longer raised, kept in the catalogue so that findings recorded with it still
    render."""

    reason: str
    placeholders: tuple[str, ...] = ()

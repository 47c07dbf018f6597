"""The rule catalogue (schemas/rules.csv): one row per rule with its severity and its message in
French and Arabic. Code refers to rules by id only; the sentences a school reads live in the CSV.

    >>> render("R003", {"value": "23", "scale": 20})[1]
    "La note « 23 » n'est pas un nombre entre 0 et 20. ..."

A placeholder missing from ``params`` is rendered as ``…`` (never an exception): a finding must
always be readable, even when the code that raised it forgot a parameter.
"""

from __future__ import annotations

import csv
import string
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

CATALOGUE_PATH = Path(__file__).with_name("rules.csv")
MISSING = "…"

Severity = Literal["error", "query"]
SEVERITIES: tuple[str, ...] = ("error", "query")


@dataclass(frozen=True)
class Rule:
    rule_id: str
    severity: Severity
    category: str
    title_en: str
    message_fr: str
    message_ar: str

    @property
    def placeholders(self) -> frozenset[str]:
        """Names used in either message, e.g. {"value", "scale"}."""
        return placeholders(self.message_fr) | placeholders(self.message_ar)

    @property
    def blocking(self) -> bool:
        return self.severity == "error"


def placeholders(template: str) -> frozenset[str]:
    """The ``{name}`` fields of a message template."""
    return frozenset(
        field.split(".")[0].split("[")[0]
        for _, field, _, _ in string.Formatter().parse(template)
        if field
    )


@cache
def catalogue(path: Path | None = None) -> dict[str, Rule]:
    """Every rule of the catalogue by id (read once)."""
    with (path or CATALOGUE_PATH).open(encoding="utf-8", newline="") as handle:
        rules = {}
        for row in csv.DictReader(handle):
            rule = Rule(
                rule_id=row["rule_id"].strip(),
                severity=row["severity"].strip(),  # type: ignore[arg-type]
                category=row["category"].strip(),
                title_en=row["title_en"].strip(),
                message_fr=row["message_fr"].strip(),
                message_ar=row["message_ar"].strip(),
            )
            if rule.severity not in SEVERITIES:
                raise ValueError(f"rule {rule.rule_id}: unknown severity {rule.severity!r}")
            if rule.rule_id in rules:
                raise ValueError(f"rule {rule.rule_id} declared twice in {path or CATALOGUE_PATH}")
            rules[rule.rule_id] = rule
    return rules


def rule(rule_id: str) -> Rule:
    try:
        return catalogue()[rule_id]
    except KeyError:
        raise KeyError(f"unknown rule id {rule_id!r} (see schemas/rules.csv)") from None


def severity(rule_id: str) -> Severity:
    return rule(rule_id).severity


class _Params(dict):
    """format_map mapping: a missing placeholder stays visible as … instead of raising."""

    def __missing__(self, key: str) -> str:
        return MISSING


def _display(value: Any) -> str:
    if value is None:
        return MISSING
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:g}"
    if isinstance(value, list | tuple):
        return ", ".join(_display(item) for item in value)
    return str(value)


def _fill(template: str, params: dict[str, Any]) -> str:
    values = _Params({key: _display(value) for key, value in params.items()})
    try:
        return template.format_map(values)
    except (ValueError, IndexError, AttributeError, KeyError):
        # A malformed template (stray brace) must not hide the finding: show it unfilled.
        return template


def render(
    rule_id: str, params: dict[str, Any] | None = None, rules: dict[str, Rule] | None = None
) -> tuple[str, str]:
    """(message_ar, message_fr) of a rule with its placeholders filled from ``params``."""
    entry = (rules or catalogue()).get(rule_id) or rule(rule_id)
    params = params or {}
    return _fill(entry.message_ar, params), _fill(entry.message_fr, params)

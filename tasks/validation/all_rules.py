"""Every rule of the catalogue (schemas/rules.csv) and its one declaration: checked by
validation (row, school and province rules, with their check), raised elsewhere (with where),
or retired. tests/tasks/validation/test_rule_declarations.py holds the catalogue and the
declarations to each other: every rule declared once, the same placeholders.
"""

from __future__ import annotations

from schemas.rules import Rule, catalogue
from tasks.validation.declared import Declared, Retired
from tasks.validation.file_rules import FILE_RULES
from tasks.validation.province_rules import PROVINCE_RULES, RAISED_ELSEWHERE
from tasks.validation.row_rules import ROW_RULES
from tasks.validation.school_rules import RETIRED, SCHOOL_RULES

FAMILIES: dict[str, tuple[Declared, ...]] = {
    "file": FILE_RULES,
    "row": ROW_RULES,
    "school": SCHOOL_RULES,
    "province": (*PROVINCE_RULES, *RAISED_ELSEWHERE),
    "retired": RETIRED,
}


def _declared() -> dict[str, Declared]:
    declared: dict[str, Declared] = {}
    for family in FAMILIES.values():
        for rule in family:
            if rule.rule_id in declared:
                raise ValueError(f"rule {rule.rule_id} is declared twice (tasks/validation/)")
            declared[rule.rule_id] = rule
    return declared


DECLARED: dict[str, Declared] = _declared()
RETIRED_RULES: dict[str, str] = {rule.rule_id: rule.reason for rule in RETIRED}
# The placeholders the findings of each row and cross-record rule fill.
PARAMS: dict[str, tuple[str, ...]] = {
    rule_id: rule.placeholders
    for rule_id, rule in DECLARED.items()
    if rule_id[0] in "RX" and not isinstance(rule, Retired)
}


def undeclared(rules: dict[str, Rule] | None = None) -> list[str]:
    """Rules of the catalogue without a declaration."""
    return sorted(set(rules or catalogue()) - set(DECLARED))


def disagreements(rules: dict[str, Rule] | None = None) -> list[str]:
    """Where a declaration and the catalogue disagree, one sentence each: a declared rule
    missing from the catalogue, or placeholders other than its messages' (retired rules keep
    their messages as they were)."""
    rules = rules or catalogue()
    found = []
    for rule_id, rule in DECLARED.items():
        entry = rules.get(rule_id)
        if entry is None:
            found.append(f"{rule_id} is declared but not in schemas/rules.csv")
        elif not isinstance(rule, Retired) and set(rule.placeholders) != entry.placeholders:
            found.append(
                f"{rule_id} fills {sorted(rule.placeholders)} but its messages use "
                f"{sorted(entry.placeholders)}"
            )
    return found

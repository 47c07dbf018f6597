"""The rule catalogue (schemas/rules.csv) and the rules' declarations (tasks/validation/) hold
each other: every rule of the catalogue declared once, checked by validation with its check or
raised where its declaration says, filling exactly the placeholders of its messages."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from schemas.datasets import DATASETS
from schemas.models import row_checks
from schemas.rules import catalogue
from tasks.validation import file_rules, province_rules
from tasks.validation.all_rules import (
    DECLARED,
    FAMILIES,
    PARAMS,
    RETIRED_RULES,
    disagreements,
    undeclared,
)
from tasks.validation.declared import ProvinceRule, RaisedElsewhere, Retired, RowRule, SchoolRule

ROOT = Path(__file__).resolve().parents[3]
PREFIX = {"file": "F", "row": "R", "school": "X", "province": "X", "retired": "X"}


def sources(where: str) -> list[Path]:
    path = ROOT / where
    return sorted(path.rglob("*.py")) if path.is_dir() else [path]


def test_every_rule_of_the_catalogue_is_declared_once():
    assert undeclared() == []
    assert set(DECLARED) == set(catalogue())
    assert sum(len(family) for family in FAMILIES.values()) == len(DECLARED)
    for name, family in FAMILIES.items():
        assert all(rule.rule_id.startswith(PREFIX[name]) for rule in family), name


def test_declarations_fill_exactly_the_placeholders_of_their_messages():
    assert disagreements() == []
    assert set(PARAMS) == {r for r in DECLARED if r[0] in "RX"} - set(RETIRED_RULES)


def test_a_message_using_another_placeholder_is_a_disagreement():
    rules = dict(catalogue())
    rules["X004"] = dataclasses.replace(rules["X004"], message_fr="{class_code} {floor}")
    rules["X099"] = rules.pop("X003")
    found = disagreements(rules)
    assert any(s.startswith("X004 fills") and "floor" in s for s in found)
    assert "X003 is declared but not in schemas/rules.csv" in found
    assert undeclared(rules) == ["X099"]


def test_row_rules_are_checks_of_a_dataset_model_or_have_their_own():
    checks = {c.rule_id for name in DATASETS for c in row_checks(name, "27783Y")}
    for rule in FAMILIES["row"]:
        assert isinstance(rule, RowRule)
        assert (rule.check is not None) != (rule.rule_id in checks), rule.rule_id
        assert rule.params is not None or rule.check is not None, rule.rule_id


def test_cross_record_rules_have_a_check_and_need_known_datasets():
    for rule in (*FAMILIES["school"], *province_rules.PROVINCE_RULES):
        assert isinstance(rule, SchoolRule | ProvinceRule)
        assert callable(rule.check), rule.rule_id
        assert rule.needs and set(rule.needs) <= set(DATASETS), rule.rule_id
    for rule in FAMILIES["school"]:
        assert set(rule.needs_one_of) <= set(DATASETS), rule.rule_id


def test_rules_raised_elsewhere_are_raised_where_their_declaration_says():
    raised = [rule for rule in DECLARED.values() if isinstance(rule, RaisedElsewhere)]
    assert {rule.rule_id for rule in raised} == {f"F{n:03d}" for n in range(1, 13)} | {
        "X012",
        "X015",
    }
    for rule in raised:
        # the rule's id in quotes, or the name its declaration has in its family's module
        names = [
            name
            for module in (file_rules, province_rules)
            for name, value in vars(module).items()
            if value is rule
        ]
        pattern = re.compile("|".join([f'"{rule.rule_id}"', *names]))
        assert rule.where and rule.how, rule.rule_id
        for where in rule.where:
            files = sources(where)
            assert files and all(f.is_file() for f in files), (rule.rule_id, where)
            assert any(pattern.search(f.read_text(encoding="utf-8")) for f in files), (
                f"{rule.rule_id} is declared as raised in {where}, which never names it"
            )


def test_retired_rules_are_raised_nowhere():
    assert RETIRED_RULES == {
        "X001": "an error that quarantined the marks; replaced by the queries X013 and X014"
    }
    code = [ROOT / "tasks", ROOT / "connectors", ROOT / "flows", ROOT / "warehouse"]
    for rule_id, rule in DECLARED.items():
        if not isinstance(rule, Retired):
            continue
        for path in (f for folder in code for f in folder.rglob("*.py")):
            if path.parent.name == "validation" and path.name == "school_rules.py":
                continue  # its declaration
            assert f'"{rule_id}"' not in path.read_text(encoding="utf-8"), (rule_id, path)

"""The rule catalogue: complete, bilingual, and in step with the code that fills it."""

from __future__ import annotations

import pytest

from schemas.datasets import DATASETS
from schemas.models import model
from schemas.rules import MISSING, catalogue, placeholders, render
from tasks.validate import PARAMS, RETIRED_RULES, skipped_cross_rules


def test_every_rule_has_both_messages_and_a_known_severity():
    rules = catalogue()
    assert {"F001", "R001", "R010", "X001", "X011"} <= set(rules)
    for rule in rules.values():
        assert rule.message_fr.strip() and rule.message_ar.strip(), rule.rule_id
        assert rule.severity in ("error", "query")
        assert rule.title_en


def test_arabic_and_french_messages_use_the_same_placeholders():
    for rule in catalogue().values():
        assert placeholders(rule.message_ar) == placeholders(rule.message_fr), rule.rule_id


def test_the_code_fills_exactly_the_placeholders_of_each_rule_it_raises():
    rules = catalogue()
    for rule_id, params in PARAMS.items():
        assert rule_id in rules, rule_id
        assert set(params) == rules[rule_id].placeholders, rule_id
    # every row and cross-record rule of the catalogue is raised somewhere, or retired
    assert {r for r in rules if r[0] in "RX"} - set(RETIRED_RULES) == set(PARAMS)
    assert set(RETIRED_RULES) <= set(rules) and not set(RETIRED_RULES) & set(PARAMS)


def test_every_pandera_check_is_named_by_a_catalogue_rule():
    rules = catalogue()
    for name in DATASETS:
        schema = model(name, "27783Y")
        for column in schema.columns.values():
            for check in column.checks:
                assert check.name in rules, (name, check.name)
                assert check.statistics["severity"] == rules[check.name].severity


def test_render_fills_placeholders_in_both_languages():
    ar, fr = render("R003", {"value": "23", "scale": 20})
    assert "« 23 »" in fr and "20" in fr
    assert "23" in ar and "20" in ar


def test_render_never_raises_on_a_missing_placeholder():
    ar, fr = render("R006", {"value": "x"})
    assert MISSING in fr and MISSING in ar
    assert "« x »" in fr


def test_render_shows_whole_numbers_without_decimals():
    _, fr = render(
        "X004", {"class_code": "1APIC-1", "size": 41.0, "room_code": "S01", "capacity": 40}
    )
    assert "41 élèves" in fr and "40 places" in fr


def test_unknown_rule_is_an_error():
    with pytest.raises(KeyError):
        render("Z999", {})


def test_skipped_cross_rules_name_the_missing_dataset():
    skipped = skipped_cross_rules(["marks"])
    assert "students" in skipped["X013"] and "students" in skipped["X014"]
    assert "X010" in skipped
    assert (
        skipped_cross_rules(
            [
                "students",
                "classes",
                "rooms",
                "marks",
                "timetable",
                "absences",
                "support",
                "guardians",
            ]
        )
        == {}
    )

"""The evaluation rules files load, resolve coefficients and weights, and bad files are refused
with one sentence naming the file, the level (or cycle) and the field."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from schemas.evaluation_rules import RULES_DIR, RulesError, load_rules


def test_default_rules_load() -> None:
    rules = load_rules()
    assert set(rules.cycles) == {"primary", "college", "lycee"}
    assert rules.cycle_of("2BACSPF") == "lycee"
    # coefficients from curriculum.csv (2nd bac physical sciences: maths 7, physics 7)
    assert rules.subject("2BACSPF", "0060").coefficient == 7
    assert rules.subject("2BACSPF", "0080").coefficient == 7
    # weights: language exception 0.4, default 0.25, primary 0
    assert rules.subject("TCS", "0020").activities_weight == 0.4
    assert rules.subject("TCS", "0010").activities_weight == 0.25
    assert rules.subject("1APG", "0501").activities_weight == 0.0
    bac = rules.exams()["baccalaureate"]
    assert bac.weights == {"national": 0.5, "regional": 0.25, "cc": 0.25}
    assert bac.makeup is not None and bac.makeup.lower_inclusive and not bac.makeup.upper_inclusive
    assert rules.exams()["college_certificate"].weights["regional"] == 0.4
    assert "exams.baccalaureate.weights" in rules.cycles["lycee"].unconfirmed
    assert rules.cycles["college"].decisions.max_repeats_in_cycle == 1


def test_every_unconfirmed_comment_is_listed() -> None:
    for file in RULES_DIR.glob("*.toml"):
        text = file.read_text()
        assert "unconfirmed = [" in text, file
        assert "# unconfirmed" in text, file


def edited(tmp_path: Path, cycle: str, old: str, new: str) -> Path:
    rules_dir = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules_dir)
    file = rules_dir / f"{cycle}.toml"
    text = file.read_text()
    assert old in text
    file.write_text(text.replace(old, new, 1))
    return rules_dir


def refused(rules_dir: Path) -> str:
    with pytest.raises(RulesError) as caught:
        load_rules(rules_dir)
    message = str(caught.value)
    assert message.endswith(".") and message.count(". ") == 0, message  # one sentence
    return message


@pytest.mark.parametrize(
    ("cycle", "old", "new", "where", "field"),
    [
        # incomplete: a required field removed
        (
            "college",
            "pass_mark = 10\n# MG",
            "# MG",
            "cycle college",
            "exams.college_certificate.pass_mark",
        ),
        ("primary", "promote_at = 5 ", "# ", "cycle primary", "decisions.promote_at"),
        # wrong values
        (
            "lycee",
            "tests_weight = 0.75",
            "tests_weight = 0.7",
            "cycle lycee",
            "continuous_assessment",
        ),
        ("lycee", "national = 0.50,", "national = 0.60,", "cycle lycee", "exams.baccalaureate"),
        ("college", "scale = 20\npass", 'scale = "twenty"\npass', "cycle college", "scale"),
        (
            "college",
            "promote_at = 10",
            "promote_at = 10\npromte = 3",
            "cycle college",
            "decisions.promte",
        ),
        # levels
        (
            "college",
            '"3APIC", "3ASCG"]\nscale',
            '"3APIC", "TCS"]\nscale',
            "level TCS",
            "exams.college_certificate.levels",
        ),
        (
            "college",
            "[coefficients.overrides]\n",
            '[coefficients.overrides]\n"1APIC" = { "0090" = 2 }\n',
            "level 1APIC",
            "coefficients.overrides.1APIC.0090",
        ),
        (
            "lycee",
            "[coefficients.overrides]\n",
            '[coefficients.overrides]\n"2BACSPF" = { "0060" = "seven" }\n',
            "level 2BACSPF",
            "coefficients.overrides.2BACSPF.0060",
        ),
        ("lycee", "[decisions]", "[decisions", "cycle lycee", "(whole file)"),
        # a per-subject weight keyed by a code the cycle does not teach (philosophy in collège)
        (
            "college",
            '"0110" = 0.4 }',
            '"0110" = 0.4, "0090" = 0.4 }',
            "cycle college",
            "continuous_assessment.subject_activities_weight.0090",
        ),
    ],
)
def test_bad_file_refused_naming_level_and_field(
    tmp_path: Path, cycle: str, old: str, new: str, where: str, field: str
) -> None:
    message = refused(edited(tmp_path, cycle, old, new))
    assert f"{cycle}.toml" in message
    assert f"for {where}," in message
    assert re.search(rf"field {re.escape(field)}\S*:", message), message


def test_missing_cycle_file_refused(tmp_path: Path) -> None:
    rules_dir = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules_dir)
    (rules_dir / "primary.toml").unlink()
    message = refused(rules_dir)
    assert "primary.toml" in message and "cycle primary" in message


def test_single_file_loads_one_cycle() -> None:
    rules = load_rules(RULES_DIR / "college.toml")
    assert set(rules.cycles) == {"college"}
    assert ("1APG", "0501") not in rules.subjects

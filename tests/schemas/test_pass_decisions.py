"""Which decisions count as a pass is data of each cycle's rules file; a file that contradicts
its own threshold, or names an unknown decision, is refused with one sentence."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from schemas.evaluation_rules import DECISIONS, RULES_DIR, RulesError, load_rules


def test_every_cycle_says_which_decisions_pass():
    rules = load_rules()
    assert rules.pass_decisions("primary") == ("promoted",)
    assert rules.pass_decisions("college") == ("promoted", "oriented")
    assert rules.pass_decisions("lycee") == ("promoted", "oriented")
    assert rules.pass_decisions(None) == ("promoted", "oriented")  # a pupil of unknown cycle
    for cycle in rules.cycles:
        assert set(rules.pass_decisions(cycle)) <= set(DECISIONS)


def _refused(tmp_path: Path, cycle: str, old: str, new: str) -> str:
    rules_dir = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules_dir)
    file = rules_dir / f"{cycle}.toml"
    text = file.read_text("utf-8")
    assert old in text
    file.write_text(text.replace(old, new, 1), "utf-8")
    with pytest.raises(RulesError) as caught:
        load_rules(rules_dir)
    message = str(caught.value)
    assert message.endswith(".") and message.count(". ") == 0, message
    assert f"{cycle}.toml" in message and "decisions" in message
    return message


@pytest.mark.parametrize(
    ("cycle", "old", "new", "says"),
    [
        ("college", 'pass_decisions = ["promoted", "oriented"]', "", "pass_decisions"),
        ("college", '"promoted", "oriented"]', '"promoted"]', "oriented is given at or above"),
        ("primary", '["promoted"]', '["promoted", "repeats"]', "repeats is given below"),
        (
            "lycee",
            '"promoted", "oriented"]',
            '"promoted", "oriented", "admis"]',
            "should be 'promoted'",
        ),
        ("primary", '["promoted"]', "[]", "at least 1"),
    ],
)
def test_a_pass_list_against_the_rules_is_refused(tmp_path, cycle, old, new, says):
    assert says in _refused(tmp_path, cycle, old, new)

"""review.csv gives the matcher's reasons in French and Arabic."""

from __future__ import annotations

import ast
import csv
import io
import re
from pathlib import Path

import pytest

from schemas.exchange import NOT_FOUND, REVIEW, SCHOOLED, ChildAnswer
from tasks.batch_preparation import review_list
from tasks.review_reasons import REASONS, translate, untranslated

TASKS = Path(__file__).resolve().parents[2] / "tasks"
# The matcher's files that write an answer's reason, and their functions that write it.
MATCHER = [TASKS / "match_decision.py", TASKS / "age_window.py", TASKS / "match.py"]
ARABIC = re.compile(r"[\u0600-\u06FF]")
REASON_WRITERS = {"answer", "_accept", "_doubts", "check_age_window", "review", "match_children"}


def _sentences_of_the_matcher() -> list[str]:
    """Every English text piece the matcher's reason writers hold (f-strings in pieces)."""
    pieces = []
    functions = [ast.walk(ast.parse(path.read_text(encoding="utf-8"))) for path in MATCHER]
    for function in (node for walk in functions for node in walk):
        if not isinstance(function, ast.FunctionDef) or function.name not in REASON_WRITERS:
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value.strip(" ;:()")
                if " " in text and text[:1].islower():
                    pieces.append(text)
    return pieces


def test_every_sentence_the_matcher_writes_is_in_the_catalogue():
    pieces = _sentences_of_the_matcher()
    assert len(pieces) >= 20
    english = [reason.english for reason in REASONS]
    missing = [p for p in pieces if not any(p in e for e in english) and p != "weak match"]
    assert missing == []


@pytest.mark.parametrize("reason", REASONS, ids=lambda r: r.english[:40])
def test_each_reason_reads_back_in_french_and_arabic(reason):
    sample = {"benefit": "family_allowance", "low": 12, "high": 21, "age": 23}
    sample |= {"date": "2023-12-31", "status": "NOT_SCHOOLED"}
    english = reason.english.format(**sample)
    french, arabic = translate(english)
    assert untranslated(english) == []
    assert french == reason.french.format(**sample)
    assert arabic == reason.arabic.format(**sample) and ARABIC.search(arabic)


def test_combined_reasons_and_the_weak_match_guard_translate_part_by_part():
    reason = (
        "weak match: outside the age window of survivor_pension (16-21): aged 15 on "
        "2023-12-31; the Massar code given belongs to another pupil; names, birth date and "
        "parent match a different pupil"
    )
    french, arabic = translate(reason)
    assert untranslated(reason) == []
    assert french.startswith("correspondance faible : hors de la tranche d'âge de")
    assert "(16-21) : 15 ans au 2023-12-31 ; le code Massar donné appartient" in french
    assert arabic.startswith("مطابقة ضعيفة: خارج الفئة العمرية لـ survivor_pension")
    assert "weak" not in french + arabic and "pupil" not in french + arabic


def test_an_unknown_reason_is_kept_rather_than_lost():
    assert translate("something new; the sex differs") == (
        "something new ; le sexe diffère",
        "something new؛ النوع مختلف",
    )
    assert untranslated("something new; the sex differs") == ["something new"]


def _answer(status: str, reason: str, school: str | None = "27783Y") -> ChildAnswer:
    return ChildAnswer(
        fund_reference=f"REF-{status}",
        status=status,
        school_year="2023/2024",
        student_code=None,
        level_code=None,
        school_code=school,
        leaving_date=None,
        confidence=0.5,
        reason=reason,
    )


def test_review_csv_lists_review_and_not_found_with_french_and_arabic_reasons():
    answers = [
        _answer(SCHOOLED, "matched on the Massar code and details"),
        _answer(REVIEW, "the names match only weakly; the sex differs"),
        _answer(
            NOT_FOUND, "no pupil of the province matches the names, birth date and parent", None
        ),
    ]
    content = review_list(answers)
    assert content.startswith(b"\xef\xbb\xbf")  # a spreadsheet shows the Arabic
    every = list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"))))
    rows = [row for row in every if row["kind"] == "child"]  # after counts per status, reason
    assert [row["fund_reference"] for row in rows] == ["REF-REVIEW", "REF-NOT_FOUND"]
    for column in ("fund_reference", "status", "confidence", "candidate_school"):
        assert column in rows[0]
    assert rows[0]["reason_fr"] == "les noms ne correspondent que faiblement ; le sexe diffère"
    assert rows[0]["reason_ar"] == "الأسماء لا تتطابق إلا جزئيا؛ النوع مختلف"
    assert rows[1]["reason_fr"].startswith("aucun élève de la province")
    assert all(ARABIC.search(row["reason_ar"]) for row in rows)

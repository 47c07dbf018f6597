"""The officers' review queue: which candidates an officer sees for each REVIEW child, what
choosing one answers, how decisions change a batch's answers, and review.csv grouped by reason
(hand-made registers, no Prefect)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

import pytest

from connectors.exchange.registry import all_profiles
from connectors.exchange.response_files import (
    build_response_csv,
    contracted_values,
    read_response_csv,
)
from schemas.exchange import (
    FAMILY_ALLOWANCE,
    LEFT,
    NOT_FOUND,
    NOT_SCHOOLED,
    REVIEW,
    SCHOOLED,
    ChildAnswer,
    ChildRequest,
)
from tasks.leaving_records import LeavingRecord
from tasks.match import match_children
from tasks.match_reasons import BY_CODE
from tasks.province_register import Register, RegisteredPupil
from tasks.review_queue import (
    Decision,
    answer_group,
    build_review_queue,
    decided_answer,
    describe_child,
    final_answers,
    group_counts,
    group_label,
    read_queue,
    review_csv,
    write_queue,
)

YEAR, PREVIOUS = "2024/2025", "2023/2024"
WINDOWS = {FAMILY_ALLOWANCE: (12, 21)}
BIRTH = date(2010, 3, 7)


def pupil(code: str, family: str, first: str, birth: date, **more) -> RegisteredPupil:
    values = {
        "student_code": code,
        "school_code": "59819H",
        "level_code": "3APIC",
        "class_code": "3APIC-1",
        "family_name": family,
        "first_name": first,
        "family_name_fr": None,
        "sex": "M",
        "birth_date": birth,
        "parent_numbers": frozenset({"123456789"}),
        "parent_cins": frozenset({"JB123456"}),
        "enrolled_from": datetime(2024, 9, 15, tzinfo=UTC),
    }
    values.update(more)
    return RegisteredPupil(**values)


def ask(reference: str, family: str, first: str, birth: date | None, **more) -> ChildRequest:
    values = {
        "fund_reference": reference,
        "parent_number": "123456789",
        "parent_cin": "JB123456",
        "parent_family_name": "AMRANI",
        "parent_first_name": "LAHCEN",
        "child_family_name": family,
        "child_first_name": first,
        "birth_date": birth,
        "sex": "M",
        "student_code": None,
        "benefit": FAMILY_ALLOWANCE,
        "source_line": 2,
    }
    values.update(more)
    return ChildRequest(**values)


def leaving(code: str, family: str, first: str, birth: date, **more) -> LeavingRecord:
    values = {
        "school_code": "27783Y",
        "school_year": PREVIOUS,
        "student_code": code,
        "family_name": family,
        "first_name": first,
        "sex": "M",
        "birth_date": birth,
        "level_code": "6AP",
        "leaving_date": date(2024, 6, 30),
        "reason": "انتقال إلى خارج الإقليم",
        "parent_cin": "JB123456",
        "cnss_number": "123456789",
        "cmr_number": None,
    }
    values.update(more)
    return LeavingRecord(**values)


AMRANI = pupil("K100300001", "العمراني", "يوسف", BIRTH, family_name_fr="AMRANI")
# The same pupil registered twice (two codes): nothing tells them apart.
TWIN_A = pupil("K100300011", "بلعيد", "حسن", date(2011, 5, 20), parent_numbers=frozenset({"55"}))
TWIN_B = pupil("K100300012", "بلعيد", "حسن", date(2011, 5, 20), parent_numbers=frozenset({"55"}))
MOVED = leaving("R100390003", "بنداود", "خالد", date(2010, 4, 5))
REGISTER = Register(YEAR, [AMRANI, TWIN_A, TWIN_B])

REQUESTS = [
    ask("R-SCHOOLED", "AMRANI", "YOUSSEF", BIRTH),
    ask("R-SWAPPED", "AMRANI", "YOUSSEF", date(2010, 7, 3)),  # day and month swapped
    ask("R-TWINS", "BELAID", "HASSAN", date(2011, 5, 20), parent_number="55", parent_cin=""),
    ask("R-MOVED", "BENDAOUD", "KHALID", date(2010, 4, 5)),  # left by transfer last year
    ask("R-NOBODY", "OUBELLA", "NIZAR", date(2012, 1, 1), parent_number="1", parent_cin="X1"),
]


@pytest.fixture(scope="module")
def matched():
    answers = match_children(REQUESTS, REGISTER, [MOVED], YEAR, WINDOWS)
    queue = build_review_queue("CNSS-2024-000001", REQUESTS, answers, REGISTER, [MOVED], YEAR)
    return answers, queue


def test_every_review_child_is_queued_with_what_an_officer_needs_to_decide(matched):
    answers, queue = matched
    statuses = {a.fund_reference: a.status for a in answers}
    assert statuses == {
        "R-SCHOOLED": SCHOOLED,
        "R-SWAPPED": REVIEW,
        "R-TWINS": REVIEW,
        "R-MOVED": REVIEW,
        "R-NOBODY": NOT_FOUND,
    }
    assert [c.fund_reference for c in queue.children] == ["R-SWAPPED", "R-TWINS", "R-MOVED"]
    assert [c.item for c in queue.children] == [1, 2, 3]
    assert [n.fund_reference for n in queue.not_found] == ["R-NOBODY"]
    swapped = queue.child("R-SWAPPED")
    # What the fund sent, and the candidate as Massar knows him: names, birth, school, class.
    assert (swapped.family_name, swapped.first_name, swapped.birth_date) == (
        "AMRANI",
        "YOUSSEF",
        "2010-07-03",
    )
    [candidate] = swapped.candidates
    assert candidate.student_code == "K100300001"
    assert (candidate.family_name, candidate.first_name, candidate.family_name_fr) == (
        "العمراني",
        "يوسف",
        "AMRANI",
    )
    assert (candidate.birth_date, candidate.school_code, candidate.level_code) == (
        "2010-03-07",
        "59819H",
        "3APIC",
    )
    assert candidate.class_code == "3APIC-1"
    assert "birth date swapped" in candidate.evidence and "parent agrees" in candidate.evidence
    assert candidate.answer == {
        "status": SCHOOLED,
        "student_code": "K100300001",
        "school_code": "59819H",
        "level_code": "3APIC",
        "leaving_date": "",
    }
    # A duplicate: both pupils are offered, in the order of their codes (equal scores).
    twins = queue.child("R-TWINS")
    assert [c.student_code for c in twins.candidates] == ["K100300011", "K100300012"]
    assert twins.group == "two_candidates"


def test_a_transferred_leaver_chosen_by_an_officer_is_not_schooled_with_his_record(matched):
    _, queue = matched
    moved = queue.child("R-MOVED")
    assert moved.group == "transfer_out"
    [candidate] = moved.candidates
    assert "transfer" in candidate.situation and PREVIOUS in candidate.situation
    answer = decided_answer(moved, NOT_SCHOOLED, "R100390003", YEAR)
    assert (answer.status, answer.student_code, answer.school_code, answer.level_code) == (
        NOT_SCHOOLED,
        "R100390003",
        "27783Y",
        "6AP",
    )
    assert answer.leaving_date == date(2024, 6, 30)
    contracted_values(answer, YEAR)  # a valid answer for the files


def test_a_decision_names_only_one_of_the_childs_candidates(matched):
    _, queue = matched
    twins = queue.child("R-TWINS")
    with pytest.raises(ValueError, match="not a candidate of child R-TWINS"):
        decided_answer(twins, SCHOOLED, "K100300001", YEAR)  # a pupil, but not offered here
    by_number = decided_answer(twins, SCHOOLED, "2", YEAR)
    assert by_number.student_code == "K100300012" and by_number.status == SCHOOLED
    for status in (NOT_FOUND, REVIEW):
        nobody = decided_answer(twins, status, "", YEAR)
        assert nobody.student_code is None and nobody.school_code is None
        assert contracted_values(nobody, YEAR)["student_code"] is None


def test_final_answers_follow_the_latest_decisions_in_the_request_order(matched):
    answers, queue = matched
    decisions = {
        "R-SWAPPED": Decision(SCHOOLED, "K100300001", "Fatima"),
        "R-TWINS": Decision(NOT_FOUND, "", "Fatima"),
        "R-MOVED": Decision(REVIEW, "", "Fatima"),  # kept
    }
    final = final_answers(answers, queue, decisions, YEAR)
    assert [a.fund_reference for a in final] == [r.fund_reference for r in REQUESTS]
    assert [a.status for a in final] == [SCHOOLED, SCHOOLED, NOT_FOUND, REVIEW, NOT_FOUND]
    assert final[1].student_code == "K100300001" and final[1].level_code == "3APIC"
    # Nothing decided: every queued child leaves as a plain REVIEW naming nobody.
    plain = final_answers(answers, queue, {}, YEAR)
    assert [a.status for a in plain] == [a.status for a in answers]
    assert all(a.student_code is None for a in plain if a.status == REVIEW)
    counts = group_counts(queue, decisions)
    assert {row["group"]: (row["children"], row["decided"]) for row in counts} == {
        "birth_swapped": (1, 1),
        "two_candidates": (1, 1),
        "transfer_out": (1, 0),
    }


def test_the_queue_is_kept_in_the_batch_folder_and_read_back(matched, tmp_path):
    _, queue = matched
    write_queue(tmp_path, queue)
    assert read_queue(tmp_path) == queue
    # A batch prepared before queues existed has none: nothing to decide one by one.
    assert read_queue(tmp_path / "older").children == ()


def test_the_terminal_shows_names_birth_dates_and_what_each_choice_answers(matched):
    _, queue = matched
    text = "\n".join(describe_child(queue.child("R-SWAPPED"), None))
    assert "AMRANI YOUSSEF, born 2010-07-03" in text  # as the fund sent it
    assert "K100300001  العمراني يوسف (AMRANI), born 2010-03-07" in text
    assert "class 3APIC-1" in text and "the answer is SCHOOLED" in text
    decided = describe_child(queue.child("R-SWAPPED"), Decision(NOT_FOUND, "", "Fatima", "x"))
    assert "decided NOT_FOUND by Fatima" in decided[0]


def test_children_are_grouped_by_the_matchers_reason_code_in_french_and_arabic(matched):
    _, queue = matched
    assert [child.group for child in queue.children] == [
        "birth_swapped",
        "two_candidates",
        "transfer_out",
    ]
    assert [n.group for n in queue.not_found] == ["no_match"]
    assert group_label("transfer_out") == (
        BY_CODE["transfer_out"].french,
        BY_CODE["transfer_out"].arabic,
    )
    # An answer made by hand, without a code, still has its group.
    assert answer_group(ChildAnswer("X", REVIEW, YEAR, reason="?")) == "not_sure"
    assert answer_group(ChildAnswer("X", NOT_FOUND, YEAR)) == "no_match"
    # A code an older batch holds and the matcher no longer writes is shown as it is.
    assert group_label("retired_code") == ("retired_code", "retired_code")


def test_review_csv_groups_by_reason_with_counts_and_the_change_since_the_last_batch(matched):
    answers, queue = matched
    decisions = {"R-TWINS": Decision(SCHOOLED, "K100300011", "Fatima Zahra Idrissi")}
    final = final_answers(answers, queue, decisions, YEAR)
    statuses = {s: sum(a.status == s for a in final) for s in (SCHOOLED, LEFT, NOT_SCHOOLED)}
    statuses |= {s: sum(a.status == s for a in final) for s in (NOT_FOUND, REVIEW)}
    counts = {
        "statuses": statuses,
        "previous_statuses": {SCHOOLED: 1, NOT_FOUND: 3, REVIEW: 5},
        "previous_review_groups": {"birth_swapped": 3, "code_other_pupil": 2},
    }
    content = review_csv(final, queue, decisions, counts)
    assert content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"))))
    by_status = {r["status"]: r for r in rows if r["kind"] == "status"}
    assert by_status[SCHOOLED]["children"] == "2" and by_status[SCHOOLED]["change"] == "+1"
    assert by_status[REVIEW]["children"] == "2" and by_status[REVIEW]["change"] == "-3"
    groups = [r for r in rows if r["kind"] == "group"]
    assert [(g["status"], g["children"]) for g in groups] == [
        (REVIEW, "1"),
        (REVIEW, "1"),
        (REVIEW, "1"),
        (NOT_FOUND, "1"),
    ]
    french, arabic = group_label("birth_swapped")
    birth = next(g for g in groups if g["group_fr"] == french)
    assert (birth["last_batch"], birth["change"]) == ("3", "-2")
    assert birth["group_ar"] == arabic
    children = [r for r in rows if r["kind"] == "child"]
    assert [c["fund_reference"] for c in children][-1] == "R-NOBODY"  # NOT_FOUND last
    twins = next(c for c in children if c["fund_reference"] == "R-TWINS")
    assert twins["decision"] == "SCHOOLED by Fatima Zahra Idrissi" and twins["item"] == "2"
    assert twins["group_fr"] == group_label("two_candidates")[0]
    # review.csv names nobody: no pupil's code, Arabic name or birth date.
    text = content.decode("utf-8-sig")
    for secret in ("K1003000", "R100390003", "العمراني", "بلعيد", "2010-03-07", "YOUSSEF"):
        assert secret not in text


@pytest.mark.parametrize("profile", all_profiles(), ids=lambda p: p.fund)
def test_a_response_csv_reads_back_as_the_answers_it_was_built_from(profile):
    answers = [
        ChildAnswer("A1", SCHOOLED, YEAR, "K100300001", "3APIC", "59819H"),
        ChildAnswer("A2", LEFT, YEAR, "K100300002", "2APIC", "59819H", date(2025, 1, 17)),
        ChildAnswer("A3", REVIEW, YEAR, "K100300003", "1APIC", "59819H", reason="x"),
        ChildAnswer("A4", NOT_FOUND, YEAR),
    ]
    read = read_response_csv(profile, build_response_csv(profile, YEAR, answers))
    assert [contracted_values(a, YEAR) for a in read] == [
        contracted_values(a, YEAR) for a in answers
    ]
    with pytest.raises(ValueError, match="response header"):
        read_response_csv(profile, b"a;b\n1;2\n")

"""What a batch's answers add up to: counts and match rates, for the batch and per school.

match_summary(answers) -> dict      counts per status and rates; no pupil data
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from schemas.exchange import LEFT, NOT_SCHOOLED, REVIEW, SCHOOLED, STATUSES, ChildAnswer

MATCHED = (SCHOOLED, LEFT, NOT_SCHOOLED)  # answered from a pupil's record


def _counts(answers: Sequence[ChildAnswer]) -> dict[str, Any]:
    by_status = Counter(a.status for a in answers)
    total = len(answers)
    matched = sum(by_status[s] for s in MATCHED)
    return {
        "total": total,
        "by_status": {status: by_status.get(status, 0) for status in STATUSES},
        "matched": matched,
        "match_rate": round(matched / total, 4) if total else 0.0,
        "review_rate": round(by_status.get(REVIEW, 0) / total, 4) if total else 0.0,
    }


def match_summary(answers: Sequence[ChildAnswer]) -> dict[str, Any]:
    """Counts per status and match rates (SCHOOLED + LEFT + NOT_SCHOOLED over all answers) for
    the batch and per school (answers without a school — NOT_FOUND, some REVIEW — are counted
    under ``without_school``). Only counts and school codes: no names, birth dates or pupil
    codes."""
    by_school: dict[str, list[ChildAnswer]] = defaultdict(list)
    for answer in answers:
        by_school[answer.school_code or ""].append(answer)
    summary = _counts(answers)
    summary["schools"] = {code: _counts(group) for code, group in sorted(by_school.items()) if code}
    summary["without_school"] = _counts(by_school.get("", []))
    return summary

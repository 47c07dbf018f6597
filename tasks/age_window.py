"""Whether a matched child is within the age window of the benefit a fund asks about.

    age_reference_date(school_year) -> date     the day Massar counts ages on
    age_on(birth, on_date) -> int               age in completed years
    check_age_window(answer, request, age_windows, on_date, matched_birth) -> ChildAnswer

A child outside the window of its benefit, or whose benefit has no window, gets REVIEW with the
reason and the answer it would have had; never NOT_SCHOOLED.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import date

from schemas.exchange import NOT_FOUND, REVIEW, ChildAnswer, ChildRequest


def age_reference_date(school_year: str) -> date:
    """31 December of the school year's first calendar year: the day Massar counts ages on."""
    return date(int(school_year[:4]), 12, 31)


def age_on(birth: date, on_date: date) -> int:
    """Age in completed years on ``on_date``."""
    return on_date.year - birth.year - ((on_date.month, on_date.day) < (birth.month, birth.day))


def check_age_window(
    answer: ChildAnswer,
    request: ChildRequest,
    age_windows: Mapping[str, tuple[int, int]],
    on_date: date,
    matched_birth: date | None,
) -> ChildAnswer:
    """The answer, or REVIEW when the child is outside the age window of its benefit (or the
    window or the birth date is missing); the reason keeps what the match alone said, the
    reason code says why it is REVIEW."""

    def review(why: str, code: str) -> ChildAnswer:
        alone = (
            answer.reason
            if answer.status == REVIEW
            else f"the match alone would answer {answer.status}"
        )
        return replace(answer, status=REVIEW, reason=f"{why}; {alone}", reason_code=code)

    window = age_windows.get(request.benefit)
    if window is None:
        return review(
            f"no age window is configured for the benefit {request.benefit}", "no_age_window"
        )
    birth = request.birth_date or matched_birth
    if birth is None:
        if answer.status == NOT_FOUND:
            return answer
        return review(
            f"no birth date to check the age window of {request.benefit}", "no_birth_date"
        )
    age = age_on(birth, on_date)
    low, high = window
    if low <= age <= high:
        return answer
    return review(
        f"outside the age window of {request.benefit} ({low}-{high}): aged {age} on "
        f"{on_date.isoformat()}",
        "outside_age_window",
    )

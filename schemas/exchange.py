"""What a partner fund asks about a child and what the platform answers: the shape shared by the
CNSS and CMR profiles (connectors/cnss, connectors/cmr), the matcher (tasks/match.py) and the
exchange flow. Only the fields of ``ChildAnswer.CONTRACTED`` ever leave the platform
(DOMAIN.md §5)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

SCHOOLED = "SCHOOLED"
NOT_SCHOOLED = "NOT_SCHOOLED"
LEFT = "LEFT"
NOT_FOUND = "NOT_FOUND"
REVIEW = "REVIEW"
STATUSES = (SCHOOLED, NOT_SCHOOLED, LEFT, NOT_FOUND, REVIEW)

# Massar's leaving records (``reference/leavers.csv`` in the home; docs/data-dictionary.md §4),
# which the matcher reads and the generator writes.
LEAVERS_COLUMNS = (
    "school_code",
    "school_year",
    "student_code",
    "family_name",
    "first_name",
    "sex",
    "birth_date",
    "level_code",
    "leaving_date",
    "reason",
    "parent_cin",
    "cnss_number",
    "cmr_number",
)

# Benefits the funds ask about; their age windows come from the partner's settings.
FAMILY_ALLOWANCE = "family_allowance"
SURVIVOR_PENSION = "survivor_pension"
ORPHAN_PENSION = "orphan_pension"


@dataclass(frozen=True)
class ChildRequest:
    """One child of a fund's request, as its profile parsed it (text kept as the fund wrote it)."""

    fund_reference: str
    parent_number: str  # CNSS immatriculation or CMR affiliation number
    parent_cin: str
    parent_family_name: str
    parent_first_name: str
    child_family_name: str
    child_first_name: str
    birth_date: date | None
    sex: str | None  # "M", "F" or None
    student_code: str | None  # the Massar code when the fund has it
    benefit: str  # FAMILY_ALLOWANCE | SURVIVOR_PENSION | ORPHAN_PENSION
    source_line: int  # line of the request file (header = 1)


@dataclass(frozen=True)
class ChildAnswer:
    """The answer for one child. ``confidence``, ``reason`` and ``reason_code`` stay inside the
    platform."""

    fund_reference: str
    status: str  # one of STATUSES
    school_year: str
    student_code: str | None = None
    level_code: str | None = None
    school_code: str | None = None
    leaving_date: date | None = None
    confidence: float = 0.0  # 0..1, how sure the match is
    reason: str = ""  # why REVIEW / NOT_FOUND, for the officer's review list only
    # the main reason of a REVIEW / NOT_FOUND as a code of tasks/match_reasons.py (labels in
    # French and Arabic there), to group and count the children an officer looks at
    reason_code: str = ""

    # The only fields written into a response file.
    CONTRACTED = (
        "fund_reference",
        "student_code",
        "school_year",
        "status",
        "level_code",
        "school_code",
        "leaving_date",
    )

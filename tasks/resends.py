"""Resends that would remove much of what a school had are held, not applied.

A school that sends a 4-line guardians file after a 627-line one most likely sent the wrong
file. When a new submission would leave fewer than ``1 - resend_hold_share`` of the lines the
school's applied submissions of the same scope hold, it is recorded with its public state
(accepted or partially accepted), its rows are staged, and it is marked ``held``: the
consolidation leaves it out (warehouse/submissions.py ``active_submissions``), the school's
report carries the query ``HOLD_RULE`` saying how many lines it had and how many the file has,
and ``massar status`` lists it. An officer applies it with ``massar confirm SUBMISSION``
(:func:`confirm_resend`); a complete file sent later replaces it. A first submission of a
scope, or a resend that keeps or adds lines, is never held.

Lines are counted as the school sees them (one per sheet row): a NotesCC row holds several
marks.
"""

from __future__ import annotations

import getpass
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from ground.settings import Settings
from schemas.rules import render, severity
from warehouse.control import ControlDatabase, Submission
from warehouse.staging import read_staged
from warehouse.submissions import confirm_held, delete_findings, scope_lines

HOLD_RULE = "F012"


@dataclass(frozen=True)
class Resend:
    """A new submission that replaces a scope, with the rows it would apply."""

    submission_id: int
    file_name: str
    dataset: str
    scope_key: str
    accepted: pl.DataFrame | None


@dataclass(frozen=True)
class Hold:
    """Why a resend is held: the lines the school had and the lines the file would leave."""

    lines_before: int
    lines_after: int

    @property
    def removed(self) -> int:
        return self.lines_before - self.lines_after


def count_lines(frame: pl.DataFrame | None) -> int:
    """Lines of the school's files behind these rows (one per submission, sheet and row)."""
    if frame is None or frame.height == 0:
        return 0
    keys = [name for name in ("submission_id", "sheet", "sheet_row") if name in frame.columns]
    if "sheet_row" not in keys:
        return frame.height
    return frame.select(keys).unique().height


def removes_too_much(lines_before: int, lines_after: int, share: float) -> bool:
    """True when going from ``lines_before`` to ``lines_after`` removes more than ``share``
    of the lines (nothing to remove, or more lines: never)."""
    return lines_before > 0 and (lines_before - lines_after) > share * lines_before


def shrinking_resends(
    settings: Settings, database: ControlDatabase, school_code: str, resends: Sequence[Resend]
) -> dict[int, Hold]:
    """The resends of a school's new batch that must be held, by submission id.

    Each is compared with the staged lines of the applied submissions (accepted, not held,
    not superseded) of its scope: the ones it would replace."""
    candidates = [r for r in resends if r.scope_key]
    applied = scope_lines(database, [r.scope_key for r in candidates])
    new_ids = {r.submission_id for r in resends}
    holds: dict[int, Hold] = {}
    for resend in candidates:
        earlier = [sid for sid in applied.get(resend.scope_key, []) if sid not in new_ids]
        if not earlier:
            continue  # the first submission of its scope
        before = count_lines(read_staged(settings.staging, school_code, resend.dataset, earlier))
        after = count_lines(resend.accepted)
        if removes_too_much(before, after, settings.resend_hold_share):
            holds[resend.submission_id] = Hold(before, after)
    return holds


def hold_finding(file_name: str, submission_id: int, hold: Hold) -> dict[str, Any]:
    """The file-level query that tells the school why its file is held and what to do."""
    share = round(100 * hold.removed / hold.lines_before) if hold.lines_before else 0
    message_ar, message_fr = render(
        HOLD_RULE,
        {
            "file": file_name,
            "before": hold.lines_before,
            "after": hold.lines_after,
            "removed": hold.removed,
            "share": share,
            "submission": submission_id,
        },
    )
    return {
        "sheet": None,
        "sheet_row": None,
        "column_name": None,
        "value": None,
        "rule_id": HOLD_RULE,
        "severity": severity(HOLD_RULE),
        "message_ar": message_ar,
        "message_fr": message_fr,
    }


@dataclass(frozen=True)
class Confirmation:
    """What ``massar confirm`` did (no pupil data)."""

    submission_id: int
    school_code: str
    dataset: str
    file_name: str
    lines_before: int | None
    lines_after: int | None
    superseded: tuple[int, ...]
    confirmed_by: str


def confirm_resend(
    settings: Settings, submission_id: int, confirmed_by: str | None = None
) -> Confirmation:
    """Apply a held resend at the next night: it replaces the earlier submissions of its
    scope, its hold query leaves the school's report (rewritten now). ``confirmed_by``
    defaults to the user running the command. Raises ``LookupError`` (no such submission) or
    ``ValueError`` (not held) like :func:`warehouse.submissions.confirm_held`."""
    from tasks.ingest import write_reports

    who = (confirmed_by or "").strip() or getpass.getuser()
    database = ControlDatabase(settings.resolved_database_url)
    try:
        submission, superseded = confirm_held(database, submission_id, who)
        delete_findings(database, [submission_id], [HOLD_RULE])
    finally:
        database.dispose()
    write_reports(settings, [submission.school_code], datetime.now(settings.zone))
    return Confirmation(
        submission_id=submission.submission_id,
        school_code=submission.school_code,
        dataset=submission.dataset,
        file_name=submission.file_name,
        lines_before=submission.hold_rows_before,
        lines_after=submission.hold_rows_after,
        superseded=tuple(superseded),
        confirmed_by=who,
    )


def _confirm_or_say_why(
    settings: Settings, submission_id: int, confirmed_by: str | None = None
) -> Confirmation:
    """:func:`confirm_resend` for the Prefect form: a refusal is one sentence (the run fails
    with it)."""
    if not (confirmed_by or "").strip():
        raise ValueError("Give your name in confirmed_by: it is kept with the confirmation.")
    try:
        return confirm_resend(settings, submission_id, confirmed_by)
    except LookupError:
        raise ValueError(
            f"There is no submission {submission_id}; 'massar status' lists the held resends."
        ) from None
    except ValueError:
        raise ValueError(
            f"Submission {submission_id} is not held (never held, confirmed already, or "
            "replaced since by a newer file); 'massar status' lists the held resends."
        ) from None


confirm_resend_task = task(name="confirm_resend", cache_policy=NO_CACHE, retries=0)(
    _confirm_or_say_why
)


def held_resends(settings: Settings) -> list[Submission]:
    """The resends waiting for an officer (for ``massar status``)."""
    from warehouse.submissions import held_submissions

    database = ControlDatabase(settings.resolved_database_url)
    try:
        return held_submissions(database)
    finally:
        database.dispose()

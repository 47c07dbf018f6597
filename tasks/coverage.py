"""Coverage of the collection campaigns, where an officer looks (docs/coverage.md).

The computation is ``warehouse/coverage.py``'s; this module gives it the home's campaigns and
its local date (Africa/Casablanca), and shapes it for ``massar coverage`` (one row per school,
or a school's missing items), the ingest's Prefect artifact (the province's rate and the late
schools: codes and counts, no pupil data), the snapshot recorded after each ingest, and each
school's feedback report (what it still owes).
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from sqlalchemy import select

from ground.errors import OperatorError
from ground.settings import Settings
from ground.utc import as_utc
from schemas.campaigns import CAMPAIGNS_FILE, Campaign, CampaignError
from schemas.reference_data import reference_rows
from tasks.feedback import OwedLine, OwedSection
from warehouse.control import ControlDatabase
from warehouse.coverage import (
    CampaignCoverage,
    CoverageSnapshot,
    campaign_coverage,
    home_campaigns,
)

log = logging.getLogger(__name__)

SCHOOL_COLUMNS = (
    "campaign",
    "school_code",
    "name",
    "cycle",
    "owed",
    "received",
    "accepted",
    "partially_accepted",
    "rejected",
    "missing",
    "rate",
    "days_to_deadline",
)
ITEM_COLUMNS = (
    "campaign",
    "school_code",
    "dataset",
    "class_code",
    "subject_code",
    "semester",
    "state",
    "file_name",
    "deadline",
)


def local_today(settings: Settings, now: datetime | None = None) -> date:
    """The date in the settings' time zone (Africa/Casablanca) at ``now`` (default: now)."""
    return as_utc(now or datetime.now(UTC)).astimezone(settings.zone).date()


def campaigns(settings: Settings) -> list[Campaign]:
    """The home's campaigns (``<home>/campaigns.toml``); none without the file."""
    return home_campaigns(settings.home)


def compute_coverage(
    settings: Settings,
    campaign_id: str | None = None,
    school_codes: list[str] | None = None,
    now: datetime | None = None,
) -> list[CampaignCoverage]:
    """Coverage of every campaign (or of ``campaign_id``), for every school (or only
    ``school_codes``), on the local date of ``now``. An :class:`OperatorError` sentence when
    no campaign is declared or the id is not one of them."""
    declared = campaigns(settings)
    if not declared:
        raise OperatorError(
            f"No collection campaign is declared: write {settings.home / CAMPAIGNS_FILE} "
            "(docs/coverage.md shows one)."
        )
    if campaign_id is not None:
        chosen = [c for c in declared if c.id == campaign_id]
        if not chosen:
            raise OperatorError(
                f"There is no campaign '{campaign_id}'; the campaigns are "
                f"{', '.join(c.id for c in declared)}."
            )
        declared = chosen
    database = ControlDatabase(settings.resolved_database_url)
    try:
        found = campaign_coverage(
            database,
            settings.staging,
            settings.quarantine,
            declared,
            local_today(settings, now),
            school_codes,
        )
    finally:
        database.dispose()
    unknown = sorted({s.school_code for c in found for s in c.schools if not s.known})
    if unknown:
        raise OperatorError(
            f"School {unknown[0]} is not in the province's list of schools and has sent no "
            "file; check the code ('massar schools import' loads the list)."
        )
    return found


def school_rows(coverages: list[CampaignCoverage]) -> list[dict[str, Any]]:
    """One row per campaign × school (SCHOOL_COLUMNS), the most missing first."""
    rows = []
    for coverage in coverages:
        for school in sorted(coverage.schools, key=lambda s: (-s.missing, s.school_code)):
            rows.append(
                {
                    "campaign": coverage.campaign.id,
                    "school_code": school.school_code,
                    "name": school.name,
                    "cycle": school.cycle,
                    "owed": school.owed,
                    "received": school.received,
                    "accepted": school.count("accepted"),
                    "partially_accepted": school.count("partially_accepted"),
                    "rejected": school.count("rejected"),
                    "missing": school.missing,
                    "rate": round(100 * school.rate, 1),
                    "days_to_deadline": coverage.days_left,
                }
            )
    return rows


def item_rows(coverages: list[CampaignCoverage]) -> list[dict[str, Any]]:
    """The items the schools of ``coverages`` still owe, per campaign (ITEM_COLUMNS): never
    sent, rejected, or received and not processed yet (compute the coverage of one school
    to list its items: a satellite's are its main school's)."""
    rows = []
    for coverage in coverages:
        for school in coverage.schools:
            for entry in school.still_owed:
                item = entry.item
                rows.append(
                    {
                        "campaign": coverage.campaign.id,
                        "school_code": item.school_code,
                        "dataset": item.dataset,
                        "class_code": item.class_code,
                        "subject_code": item.subject_code,
                        "semester": item.semester,
                        "state": entry.state,
                        "file_name": entry.file_name,
                        "deadline": coverage.campaign.deadline.isoformat(),
                    }
                )
    return rows


def campaign_lines(coverages: list[CampaignCoverage]) -> list[str]:
    """One sentence per campaign: rate, schools still owing, days to the deadline."""
    lines = []
    for coverage in coverages:
        campaign, left = coverage.campaign, coverage.days_left
        when = (
            f"{left} day(s) to the deadline {campaign.deadline}"
            if left >= 0
            else f"deadline {campaign.deadline} passed {-left} day(s) ago"
        )
        owing = len(coverage.incomplete())
        lines.append(
            f"{campaign.id}: {coverage.covered} of {coverage.owed} items covered "
            f"({100 * coverage.rate:.1f} %), {owing} of {len(coverage.schools)} schools still "
            f"owe something; {when}."
        )
    return lines


# ---- after each ingest: snapshot, artifact, page --------------------------------------------


def record_snapshots(
    settings: Settings, coverages: list[CampaignCoverage], now: datetime | None = None
) -> int:
    """One snapshot row per campaign × cycle (counts only); returns how many."""
    taken = as_utc(now or datetime.now(UTC))
    rows = []
    for coverage in coverages:
        for cycle, counts in coverage.by_cycle().items():
            owed = counts.get("owed", 0)
            covered = counts.get("covered", 0)
            rows.append(
                CoverageSnapshot(
                    campaign_id=coverage.campaign.id,
                    taken_at=taken,
                    cycle=cycle,
                    schools=counts.get("schools", 0),
                    owed=owed,
                    covered=covered,
                    rejected=counts.get("rejected", 0),
                    missing=counts.get("missing", 0),
                    rate=covered / owed if owed else 1.0,
                )
            )
    database = ControlDatabase(settings.resolved_database_url)
    try:
        with database.session() as session:
            session.add_all(rows)
    finally:
        database.dispose()
    return len(rows)


def snapshots(settings: Settings, campaign_id: str) -> list[CoverageSnapshot]:
    """The campaign's snapshots, oldest first."""
    database = ControlDatabase(settings.resolved_database_url)
    try:
        with database.session() as session:
            return list(
                session.scalars(
                    select(CoverageSnapshot)
                    .where(CoverageSnapshot.campaign_id == campaign_id)
                    .order_by(CoverageSnapshot.taken_at, CoverageSnapshot.snapshot_id)
                )
            )
    finally:
        database.dispose()


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


LATE_SCHOOLS_SHOWN = 50


def artifact_markdown(coverages: list[CampaignCoverage]) -> str:
    """The ingest's coverage artifact: per campaign the province's rate, per cycle, and the
    schools still owing (late after the deadline): school codes and counts only."""
    parts = ["# Coverage of the collection campaigns", ""]
    for coverage in coverages:
        campaign = coverage.campaign
        parts += [f"## {_cell(campaign.id)} — {_cell(campaign.label())}", ""]
        parts += [campaign_lines([coverage])[0], ""]
        parts += ["| cycle | schools | owed | covered | rejected | missing | rate |"]
        parts += ["|---|---|---|---|---|---|---|"]
        for cycle, c in coverage.by_cycle().items():
            rate = c.get("covered", 0) / c["owed"] if c.get("owed") else 1.0
            parts.append(
                f"| {cycle or '?'} | {c.get('schools', 0)} | {c.get('owed', 0)} | "
                f"{c.get('covered', 0)} | {c.get('rejected', 0)} | {c.get('missing', 0)} | "
                f"{100 * rate:.1f} % |"
            )
        owing = coverage.incomplete()
        title = "Late schools" if coverage.days_left < 0 else "Schools still owing"
        parts += ["", f"### {title} ({len(owing)})", ""]
        if owing:
            parts += ["| school | cycle | missing | rejected | owed |", "|---|---|---|---|---|"]
            for school in owing[:LATE_SCHOOLS_SHOWN]:
                parts.append(
                    f"| {school.school_code} | {school.cycle or '?'} | {school.missing} | "
                    f"{school.count('rejected')} | {school.owed} |"
                )
            if len(owing) > LATE_SCHOOLS_SHOWN:
                parts.append(f"\n… and {len(owing) - LATE_SCHOOLS_SHOWN} more (massar coverage).")
        else:
            parts.append("None.")
        parts.append("")
    return "\n".join(parts)


def coverage_after_ingest(settings: Settings, now: datetime | None = None) -> dict[str, Any]:
    """After an ingest: compute every campaign's coverage, record a snapshot, write the
    province's page and return a summary (counts and school codes). A campaigns file that
    cannot be used is reported in the summary, never fails the ingest."""
    from tasks.coverage_page import page_path, write_province_page
    from tasks.output_fingerprints import (
        coverage_fingerprint,
        coverage_unchanged,
        kept_coverage,
        record_coverage,
    )

    now = as_utc(now or datetime.now(UTC))
    try:
        if not campaigns(settings):
            return {"campaigns": 0}
        # the same submissions, campaigns file and day as the page on disk: it stands, and no
        # snapshot is added (issue 17, item 2)
        made_of = coverage_fingerprint(
            settings, settings.home / CAMPAIGNS_FILE, now.astimezone(settings.zone).date()
        )
        if coverage_unchanged(settings, made_of, page_path(settings)):
            return kept_coverage(settings)
        coverages = compute_coverage(settings, now=now)
    except CampaignError as error:
        return {"campaigns": 0, "error": str(error)}
    record_snapshots(settings, coverages, now)
    page = write_province_page(settings, coverages, now)
    summary = {
        "campaigns": len(coverages),
        "page": str(page),
        "markdown": artifact_markdown(coverages),
        "rates": {c.campaign.id: round(100 * c.rate, 1) for c in coverages},
        "late": {c.campaign.id: [s.school_code for s in c.late()] for c in coverages},
    }
    record_coverage(settings, made_of, summary)
    return summary


@task(name="coverage_after_ingest", cache_policy=NO_CACHE)
def coverage_after_ingest_task(settings: Settings) -> dict[str, Any]:
    """Snapshot, province page and the ``coverage`` artifact (no pupil data)."""
    from prefect import get_run_logger

    try:
        summary = coverage_after_ingest(settings)
    except Exception as error:  # the files are in: the coverage is told, never fails the ingest
        log.debug("coverage after ingest", exc_info=True)
        summary = {
            "campaigns": 0,
            "error": (
                f"The coverage of the campaigns could not be brought up to date after this "
                f"ingest ({type(error).__name__}: {str(error)[:200]}); the files are ingested, "
                "and the next ingest or 'massar coverage' computes it again."
            ),
        }
    if "error" in summary:
        get_run_logger().warning(summary["error"])
    if summary.get("markdown"):
        create_markdown_artifact(
            key="coverage",
            markdown=summary["markdown"],
            description="Coverage of the collection campaigns after this ingest",
        )
    return {key: value for key, value in summary.items() if key != "markdown"}


# ---- the school's report ---------------------------------------------------------------------


def owed_sections(
    settings: Settings, school_codes: list[str], now: datetime | None = None
) -> dict[str, list[OwedSection]]:
    """Per school, the ``coverage`` section of its report: for every campaign, what it still
    owes; empty when no campaign is declared or the campaigns file cannot be used (the
    ingest's coverage step says why)."""
    try:
        if not campaigns(settings):
            return {}
        coverages = compute_coverage(settings, school_codes=school_codes, now=now)
    except CampaignError as error:
        log.warning("%s", error)
        return {}
    names = {row["subject_code"]: row for row in reference_rows("subjects.csv")}
    sections: dict[str, list[OwedSection]] = {}
    for coverage in coverages:
        campaign = coverage.campaign
        for school in coverage.schools:
            lines = tuple(
                OwedLine(
                    entry.item.dataset,
                    entry.item.class_code,
                    entry.item.subject_code,
                    names.get(entry.item.subject_code, {}).get("name_ar", ""),
                    names.get(entry.item.subject_code, {}).get("name_fr", ""),
                    entry.item.semester,
                    entry.state,
                )
                for entry in school.still_owed
            )
            sections.setdefault(school.school_code, []).append(
                OwedSection(
                    campaign.id,
                    campaign.label(),
                    campaign.deadline.isoformat(),
                    coverage.days_left,
                    school.classes_known,
                    lines,
                )
            )
    return sections

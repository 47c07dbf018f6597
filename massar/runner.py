"""Running the flows from the command line, with Prefect pointed at the installation."""

from __future__ import annotations

from pathlib import Path

from massar.settings import Settings, apply_prefect_environment


def run_ingest(settings: Settings, path: Path | None = None) -> str:
    """Run ``ingest_submissions`` and return a short summary for the operator."""
    apply_prefect_environment(settings)
    from flows.ingest import ingest_submissions

    summary = ingest_submissions(settings, path.resolve() if path else None)
    return describe_ingest(summary, settings)


def describe_ingest(summary: dict, settings: Settings) -> str:
    totals = summary["totals"]
    return (
        f"Ingest: {totals['new_submissions']} new file(s) from {totals['schools']} school "
        f"folder(s) ({totals['already_known']} already known): {totals['accepted']} accepted, "
        f"{totals['partially_accepted']} partially accepted, {totals['rejected']} rejected; "
        f"{totals['rows_accepted']} rows accepted, {totals['rows_quarantined']} quarantined, "
        f"{totals['errors']} errors and {totals['queries']} queries. Reports per school: "
        f"{settings.reports}."
    )

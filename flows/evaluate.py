"""Flow ``evaluate``: results of every school year with marks from the published warehouse,
then the e-services extract and the officers' statistics; what cannot be evaluated is said,
never a failure."""

from __future__ import annotations

from prefect import flow

from massar.settings import Settings, load_settings
from tasks.evaluation import (
    compute_task,
    eservices_task,
    plan_task,
    publish_task,
    read_task,
    report_task,
    rules_task,
    statistics_task,
    write_task,
)


@flow(name="evaluate")
def evaluate(
    settings: Settings | None = None,
    home: str | None = None,
    year: str | None = None,
    semester: int | None = None,
) -> dict:
    """Averages, ranks, decisions and exams of every school year with marks (or ``year``),
    written to the result tables and published with the night; what is held back, and why,
    in the summary, the log and the artifact ``evaluation-skipped``."""
    settings = settings or load_settings(home)
    rules = rules_task()
    plan = plan_task(read_task(settings), rules, year)
    results = compute_task(plan.inputs, rules, semester) if plan.years else {}
    versions = write_task(settings, results, plan, semester)
    summary = report_task(plan, results)
    summary["rows"] = {table: frame.height for table, frame in results.items()}
    summary["night_id"] = publish_task(settings, versions, summary)
    if semester is None and plan.years:
        summary["eservices_files"] = eservices_task(settings, plan, results)
        summary["statistics_report"] = statistics_task(settings, plan, results)
    return summary

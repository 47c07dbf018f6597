"""Flow ``evaluate``: results of every school year with marks from the published warehouse
(or of one year, or of one semester), then the e-services extract and the officers'
statistics; what cannot be evaluated is said, never a failure."""

from __future__ import annotations

from prefect import flow

from flows.recorded import recorded
from ground.settings import Settings, flow_settings
from tasks.disk_space import disk_guarded, evaluation_estimate, warehouse_folders
from tasks.evaluation_steps import (
    eservices_task,
    evaluate_task,
    publish_task,
    report_task,
    reports_input_task,
    rules_task,
    scope_sentence,
    statistics_task,
)
from tasks.leases import WAREHOUSE, evaluation_not_run, leased


@flow(name="evaluate")
@recorded
@disk_guarded("The evaluation", warehouse_folders, evaluation_estimate)
@leased(WAREHOUSE, evaluation_not_run)  # one writer of the warehouse at a time
def evaluate(
    settings: Settings | None = None,
    home: str | None = None,
    year: str | None = None,
    semester: int | None = None,
) -> dict:
    """Averages, ranks, decisions and exams of every school year with marks (or ``year``),
    written to the result tables and published with the night; what is held back, and why,
    in the summary, the log and the artifact ``evaluation-skipped``.

    With ``semester``, that semester's results are recomputed from the marks and the other
    semester's are kept as the warehouse holds them; the annual and exam results of the
    years evaluated are recomputed from both semesters."""
    settings = flow_settings(settings, home)  # secrets: from the home, not Prefect
    rules = rules_task()
    run = evaluate_task(settings, rules, year, semester)  # writes the result tables
    summary = report_task(run)
    summary["scope"] = scope_sentence(run.plan, year, semester)
    summary["rows"] = dict(run.rows)
    summary["night_id"] = publish_task(settings, run.versions, summary)
    if run.plan.years:
        plan, results = reports_input_task(settings, rules, run, year)
        # side by side: the statistics' charts (Python, one core) beside the extract (polars);
        # the statistics copy no marks, so their peaks do not add up
        statistics = statistics_task.submit(settings, plan, results)
        summary["eservices_files"] = eservices_task(settings, plan, results)
        summary["statistics_report"] = statistics.result()
    return summary

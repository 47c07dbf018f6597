"""Flow ``evaluate``: results of the year from the published warehouse, then the e-services
extract and the officers' statistics."""

from __future__ import annotations

from prefect import flow

from massar.settings import Settings, load_settings
from tasks.evaluation import (
    compute_task,
    eservices_task,
    publish_task,
    read_task,
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
    """Averages, ranks, decisions and exams of ``year`` (default: the latest), written to the
    result tables and published with the night."""
    settings = settings or load_settings(home)
    rules = rules_task()
    inputs = read_task(settings, year)
    results = compute_task(inputs, rules, semester)
    versions = write_task(settings, results)
    night_id = publish_task(settings, versions, {t: f.height for t, f in results.items()})
    summary = {
        "night_id": night_id,
        "year": inputs["year"].item(0, "school_year"),
        "rows": {t: f.height for t, f in results.items()},
    }
    if semester is None:
        summary["eservices_files"] = eservices_task(settings, inputs, results)
        summary["statistics_report"] = statistics_task(settings, inputs, results)
    return summary

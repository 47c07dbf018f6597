"""Tasks of the ``evaluate`` flow: read the published warehouse, compute results, write them,
publish them with the night, the e-services extract and the officers' statistics.

The formulas are in :mod:`tasks.evaluate` (plain polars), the rules in ``schemas/evaluation``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from massar.errors import OperatorError
from massar.settings import Settings
from schemas.evaluation_rules import EvaluationRules, RulesError, load_rules
from tasks import evaluate as formulas
from tasks.eservices import build_extract, write_school_extracts
from tasks.statistics import compute_statistics, headline_table
from tasks.statistics_report import write_statistics_report
from warehouse.control import ControlDatabase
from warehouse.delta import read_table, replace_school_rows
from warehouse.nights import finish_night, last_completed_night, start_night

RESULT_TABLES = ("subject_results", "semester_results", "annual_results", "exam_results")
INPUT_TABLES = ("marks", "exam_marks", "students", "enrollments", "schools")


def rules_for_run(path: Path | None = None) -> EvaluationRules:
    """The evaluation rules; a bad rules file is one sentence for the operator."""
    try:
        return load_rules(path)
    except RulesError as error:
        raise OperatorError(str(error)) from error


def check_inputs(settings: Settings, year: str | None) -> str:
    """Before any flow starts: the rules load and the year has marks in the published
    warehouse; returns the year to evaluate, or one sentence for the operator."""
    rules_for_run()
    database = ControlDatabase(settings.resolved_database_url)
    try:
        night = last_completed_night(database)
    finally:
        database.dispose()
    versions = dict(night.versions) if night else {}
    if "marks" not in versions:
        raise OperatorError(
            "There is no consolidated warehouse yet: run 'massar nightly' before 'massar evaluate'."
        )
    years = sorted(
        pl.from_arrow(
            read_table(settings.warehouse, "marks", versions["marks"]).to_table(
                columns=["school_year"]
            )
        )  # type: ignore[union-attr]
        .get_column("school_year")
        .unique()
        .to_list()
    )
    chosen = year or (years[-1] if years else None)
    if chosen is None or chosen not in years:
        raise OperatorError(
            f"The warehouse has no marks for the school year {chosen}; "
            f"years present: {', '.join(years) or 'none'}."
        )
    return chosen


def read_published(settings: Settings, year: str | None) -> dict[str, pl.DataFrame]:
    """The input tables as of the last completed night (empty frames when absent)."""
    database = ControlDatabase(settings.resolved_database_url)
    try:
        night = last_completed_night(database)
    finally:
        database.dispose()
    versions = dict(night.versions) if night else {}
    if "marks" not in versions:
        raise OperatorError(
            "There is no consolidated warehouse yet: run 'massar nightly' before 'massar evaluate'."
        )
    frames: dict[str, pl.DataFrame] = {}
    for table in (*INPUT_TABLES, "annual_results", "exam_results"):
        if table not in versions:
            continue
        frame = pl.from_arrow(read_table(settings.warehouse, table, versions[table]).to_table())
        assert isinstance(frame, pl.DataFrame)
        frames[table] = frame
    if "enrollments" in frames:  # a pupil counts where the enrolment is active
        frames["enrollments"] = frames["enrollments"].filter(pl.col("status") == "active")
        active = frames["enrollments"].select("school_code", "school_year", "student_code")
        for table in ("marks", "exam_marks"):
            if table in frames:
                frames[table] = frames[table].join(active, on=list(active.columns), how="semi")
    if "annual_results" in frames:  # earlier years: the schooling history and comparisons
        frames["history"] = frames.pop("annual_results")
    if "exam_results" in frames:  # earlier years: the exams' comparison with last year
        frames["exam_history"] = frames.pop("exam_results")
    years = frames["marks"].get_column("school_year").unique().sort().to_list()
    chosen = year or (years[-1] if years else None)
    if chosen is None or chosen not in years:
        raise OperatorError(
            f"The warehouse has no marks for the school year {chosen}; "
            f"years present: {', '.join(years) or 'none'}."
        )
    for table in ("marks", "exam_marks", "students", "enrollments"):
        if table in frames and "school_year" in frames[table].columns:
            frames[table] = frames[table].filter(pl.col("school_year") == chosen)
    frames["year"] = pl.DataFrame({"school_year": [chosen]})
    return frames


def compute_results(
    inputs: dict[str, pl.DataFrame], rules: EvaluationRules, semester: int | None = None
) -> dict[str, pl.DataFrame]:
    """Subject, semester, annual and exam results of the year (semester: only that one)."""
    marks = inputs["marks"]
    if semester is not None:
        marks = marks.filter(pl.col("semester") == semester)
    subjects = formulas.subject_results(marks, rules)
    semesters = formulas.semester_results(subjects, rules)
    results = {"subject_results": subjects, "semester_results": semesters}
    if semester is None:
        annual = formulas.annual_results(semesters, rules)
        results["annual_results"] = annual
        if "exam_marks" in inputs and inputs["exam_marks"].height:
            results["exam_results"] = formulas.exam_results(inputs["exam_marks"], annual, rules)
    return results


def write_results(settings: Settings, results: dict[str, pl.DataFrame]) -> dict[str, int]:
    """One commit per result table, replacing the rows of the schools evaluated."""
    versions = {}
    for table, frame in results.items():
        schools = frame.get_column("school_code").unique().to_list()
        versions[table] = replace_school_rows(settings.warehouse, table, schools, frame.to_arrow())
    return versions


def publish_results(settings: Settings, versions: dict[str, int], summary: dict[str, Any]) -> int:
    """A new completed night: the last night's tables plus the new result versions."""
    database = ControlDatabase(settings.resolved_database_url)
    try:
        night = last_completed_night(database)
        published = {**(dict(night.versions) if night else {}), **versions}
        night_id = start_night(database)
        finish_night(database, night_id, published, {"evaluation": summary})
        return night_id
    finally:
        database.dispose()


def publish_eservices(
    settings: Settings, inputs: dict[str, pl.DataFrame], results: dict[str, pl.DataFrame]
) -> int:
    """One file per school under ``exchange/eservices/<year>/<school>/``; returns the count."""
    year = inputs["year"].item(0, "school_year").replace("/", "-")
    empty = pl.DataFrame()
    extracts = build_extract(
        inputs.get("students", empty),
        inputs["marks"],
        results["subject_results"],
        results["semester_results"],
        results.get("annual_results", empty),
        results.get("exam_results", empty),
        history=inputs.get("history"),
    )
    paths = write_school_extracts(settings.exchange / "eservices" / year, extracts)
    return len(paths)


def publish_statistics(
    settings: Settings, inputs: dict[str, pl.DataFrame], results: dict[str, pl.DataFrame]
) -> str:
    """The officers' statistics report and the headline artifact (counts and rates only)."""
    year = inputs["year"].item(0, "school_year")
    levels = pl.read_csv(
        Path(__file__).resolve().parent.parent / "schemas" / "reference" / "levels.csv",
        infer_schema=False,
    )
    history = inputs.get("history")
    previous = None if history is None else history.filter(pl.col("school_year") < year)
    exam_history = inputs.get("exam_history")
    if exam_history is not None:
        exam_history = exam_history.filter(pl.col("school_year") < year)
    stats = compute_statistics(
        results["annual_results"],
        results["semester_results"],
        inputs.get("students", pl.DataFrame()),
        inputs.get("schools", pl.DataFrame()),
        levels,
        previous=previous if previous is not None and previous.height else None,
        rules=rules_for_run(),
        exam_results=results.get("exam_results"),
        previous_exam_results=exam_history,
    )
    report = write_statistics_report(settings.reports / "province", stats, year)
    create_table_artifact(
        key="evaluation-headline",
        table=headline_table(stats),
        description=f"Evaluation {year}: pass rates and mean averages, province and schools. "
        f"Full report with charts: {report}",
    )
    return str(report)


rules_task = task(rules_for_run, name="load_evaluation_rules", cache_policy=NO_CACHE)
read_task = task(read_published, name="read_published_warehouse", cache_policy=NO_CACHE)
compute_task = task(compute_results, name="compute_results", cache_policy=NO_CACHE)
write_task = task(write_results, name="write_results", cache_policy=NO_CACHE)
publish_task = task(publish_results, name="publish_results", cache_policy=NO_CACHE)
eservices_task = task(publish_eservices, name="eservices_extract", cache_policy=NO_CACHE)
statistics_task = task(publish_statistics, name="statistics_report", cache_policy=NO_CACHE)

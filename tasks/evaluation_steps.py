"""The steps of the ``evaluate`` flow as Prefect tasks: load the rules, evaluate the published
warehouse school batch by school batch (tasks/evaluation_batches.py, which writes the result
tables), say what was held back, publish the results with a night, then the e-services extract
and the officers' statistics.

The formulas are in :mod:`tasks.results_formulas` (plain polars), what can be evaluated in
:mod:`tasks.evaluable`, the rules in ``schemas/evaluation``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from ground.errors import OperatorError
from ground.settings import Settings
from schemas.evaluation_rules import EvaluationRules, RulesError, load_rules
from tasks.eservices import changed_extracts, write_school_extracts
from tasks.evaluable import (
    SCHOOL_WITHOUT_MARKS,
    YEAR_TABLES,
    Evaluable,
    evaluable,
    outcome_sentence,
    skipped_sentences,
)
from tasks.evaluation_batches import RESULT_TABLES, EvaluationRun, evaluate_warehouse
from tasks.statistics import compute_statistics, headline_table
from tasks.statistics_report import write_statistics_report
from warehouse.control import ControlDatabase
from warehouse.delta import read_frame
from warehouse.nights import finish_night, last_completed_night, start_night

INPUT_TABLES = ("marks", "exam_marks", "students", "enrollments", "schools")
# What the statistics report reads of the inputs (publish_statistics).
STATISTICS_INPUTS = ("students", "schools", "history", "exam_history")


def rules_for_run(path: Path | None = None) -> EvaluationRules:
    """The evaluation rules; a bad rules file is one sentence for the operator."""
    try:
        return load_rules(path)
    except RulesError as error:
        raise OperatorError(str(error)) from error


def check_inputs(settings: Settings, year: str | None) -> str | None:
    """Before any flow starts: the rules load, a night is published and, when ``year`` is
    asked for, the warehouse has marks for it; returns ``year`` (None: every year with
    marks), or one sentence for the operator. What the flow cannot evaluate it reports."""
    rules_for_run()
    database = ControlDatabase(settings.resolved_database_url)
    try:
        night = last_completed_night(database)
    finally:
        database.dispose()
    if night is None:
        raise OperatorError(
            "There is no consolidated warehouse yet: run 'massar nightly' before 'massar evaluate'."
        )
    if year is None:
        return None
    versions = dict(night.versions)
    years: list[str] = []
    if "marks" in versions:
        marks = read_frame(settings.warehouse, "marks", versions["marks"], ["school_year"])
        years = marks.get_column("school_year").drop_nulls().unique().sort().to_list()
    if year not in years:
        raise OperatorError(
            f"The warehouse has no marks for the school year {year}; "
            f"years with marks: {', '.join(years) or 'none'}."
        )
    return year


def read_published(
    settings: Settings, versions: dict[str, int] | None = None
) -> dict[str, pl.DataFrame]:
    """The input tables as of the last completed night (or at ``versions``), as they are
    (tables the night does not have are absent; no night at all: an empty dict). What can be
    evaluated is decided by :func:`plan_evaluation`."""
    database = ControlDatabase(settings.resolved_database_url)
    try:
        night = last_completed_night(database)
    finally:
        database.dispose()
    if night is None:
        return {}
    versions = dict(night.versions) if versions is None else versions
    frames: dict[str, pl.DataFrame] = {}
    for table in (*INPUT_TABLES, "annual_results", "exam_results"):
        if table not in versions:
            continue
        frames[table] = read_frame(settings.warehouse, table, versions[table])
    if "annual_results" in frames:  # earlier years: the schooling history and comparisons
        frames["history"] = frames.pop("annual_results")
    if "exam_results" in frames:  # earlier years: the exams' comparison with last year
        frames["exam_history"] = frames.pop("exam_results")
    frames.setdefault("_night", pl.DataFrame({"night_id": [night.night_id]}))
    return frames


def plan_evaluation(
    frames: dict[str, pl.DataFrame], rules: EvaluationRules, year: str | None = None
) -> Evaluable:
    """What the published tables allow to evaluate (every school year with marks, or
    ``year``), and what is held back with its reason (tasks/evaluable.py)."""
    return evaluable(frames, rules.level_cycle, year)


def report_skipped(run: EvaluationRun) -> dict[str, Any]:
    """Say what the evaluation did and held back: one log line per school and reason and the
    artifact ``evaluation-skipped`` (codes and counts, no pupil); returns the summary's part."""
    logger = get_run_logger()
    plan, schools = run.plan, run.schools_evaluated
    outcome = outcome_sentence(plan.years, run.pupils, schools, plan.skipped)
    sentences = skipped_sentences(plan.skipped)
    (logger.info if plan.years else logger.warning)(outcome)
    reasons = plan.skipped.get_column("reason").to_list()
    for sentence, reason in zip(sentences, reasons, strict=True):
        if reason != SCHOOL_WITHOUT_MARKS:  # usual early in the year: one line for them all
            logger.warning("Evaluation held back: %s", sentence)
    waiting = plan.skipped.filter(pl.col("reason") == SCHOOL_WITHOUT_MARKS)
    if waiting.height:
        logger.info(
            "%d school(s) have a student list but no marks yet: %s",
            waiting.get_column("school_code").n_unique(),
            ", ".join(waiting.get_column("school_code").unique().sort().to_list()),
        )
    rows = plan.skipped.with_columns(pl.Series("why", sentences, dtype=pl.Utf8)).to_dicts()
    if rows:
        create_table_artifact(
            key="evaluation-skipped",
            table=[
                {
                    "school year": row["school_year"],
                    "school": row["school_code"],
                    "level": row["level_code"],
                    "dataset": row["dataset"],
                    "marks held": row["marks"],
                    "pupils": row["pupils"],
                    "why": row["why"],
                }
                for row in rows
            ],
            description=outcome,
        )
    else:
        create_markdown_artifact(
            key="evaluation-skipped",
            markdown=f"{outcome}\n\nNothing held back: every mark of the warehouse was evaluated.",
            description=outcome,
        )
    return {
        "outcome": outcome,
        "years": plan.years,
        "year": plan.years[-1] if plan.years else None,
        "pupils": run.pupils,
        "schools": schools,
        "skipped": [{k: v for k, v in row.items()} for row in rows],
    }


def scope_sentence(plan: Evaluable, year: str | None, semester: int | None) -> str:
    """What the run rewrote, in one sentence for the officer."""
    if not plan.looked_at:
        return "No result was rewritten."
    years = ", ".join(plan.looked_at)
    which = f"school year {years}" if year else f"every school year with marks ({years})"
    if semester is None:
        return f"Rewritten: every result of {which}; results of other school years are kept."
    other = 2 if semester == 1 else 1
    return (
        f"Rewritten: semester {semester} of {which}, and the annual and exam results "
        f"recomputed from it and semester {other} as the warehouse holds it (semester "
        f"{other} and other school years are kept)."
    )


def results_for_reports(
    settings: Settings, rules: EvaluationRules, run: EvaluationRun, year: str | None
) -> tuple[Evaluable, dict[str, pl.DataFrame]]:
    """What the e-services extract and the statistics read, in memory: the inputs of the night
    the run evaluated, restricted as the run restricted them, and the results the run wrote
    (the years it looked at, in the schools it looked at). When the run held no mark back,
    the marks are not checked again (tasks/evaluable.py's ``marks_kept``)."""
    plan = evaluable(
        read_published(settings, run.night_versions),
        rules.level_cycle,
        year,
        marks_kept=not marks_held(run.plan.skipped),
    )
    results = {}
    for table in RESULT_TABLES:
        if table not in run.rows or table not in run.versions:
            continue
        frame = read_frame(settings.warehouse, table, run.versions[table])
        results[table] = frame.filter(
            pl.col("school_year").is_in(run.plan.looked_at)
            & pl.col("school_code").is_in(run.plan.schools)
        )
    return plan, results


def marks_held(skipped: pl.DataFrame) -> bool:
    """Whether the held-back rows ``skipped`` (SKIPPED_SCHEMA) hold back any mark (a school
    with a list but no marks holds none)."""
    held = (pl.col("dataset") == "marks") & (pl.col("reason") != SCHOOL_WITHOUT_MARKS)
    return bool(skipped.filter(held).height)


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
    folder = settings.exchange / "eservices" / year
    extracts, made_of = changed_extracts(  # built for the schools whose inputs changed only
        folder,
        inputs.get("students", empty),
        inputs["marks"],
        results["subject_results"],
        results["semester_results"],
        results.get("annual_results", empty),
        results.get("exam_results", empty),
        history=inputs.get("history"),
    )
    paths = write_school_extracts(folder, extracts, made_of)
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


def of_year(frames: dict[str, pl.DataFrame], year: str) -> dict[str, pl.DataFrame]:
    """The inputs or results of one school year (tables without a year pass through)."""
    out = {
        name: frame.filter(pl.col("school_year") == year)
        if name in (*YEAR_TABLES, *RESULT_TABLES) and "school_year" in frame.columns
        else frame
        for name, frame in frames.items()
    }
    out["year"] = pl.DataFrame({"school_year": [year]})
    return out


def publish_eservices_by_year(
    settings: Settings, plan: Evaluable, results: dict[str, pl.DataFrame]
) -> int:
    """The e-services extract of each school year evaluated; returns the files written."""
    return sum(
        publish_eservices(settings, of_year(plan.inputs, year), of_year(results, year))
        for year in plan.years
    )


def publish_statistics_by_year(
    settings: Settings, plan: Evaluable, results: dict[str, pl.DataFrame]
) -> str | None:
    """The statistics report of each school year evaluated; returns the latest one's path."""
    report = None
    # the inputs it reads only: no copy of the year's marks (it runs beside the e-services
    # extract, which holds one)
    read = {name: frame for name, frame in plan.inputs.items() if name in STATISTICS_INPUTS}
    for year in plan.years:
        inputs = with_earlier_results(of_year(read, year), results, year)
        report = publish_statistics(settings, inputs, of_year(results, year))
    return report


def with_earlier_results(
    inputs: dict[str, pl.DataFrame], results: dict[str, pl.DataFrame], year: str
) -> dict[str, pl.DataFrame]:
    """``inputs`` whose ``history`` and ``exam_history`` (the published annual and exam
    results) also hold this run's results of the years before ``year``, in place of the
    published ones of those years: a first evaluation of two years compares the later with
    the earlier."""
    out = dict(inputs)
    for name, table in (("history", "annual_results"), ("exam_history", "exam_results")):
        computed = results.get(table)
        if computed is None or not computed.height:
            continue
        earlier = computed.filter(pl.col("school_year") < year)
        published = out.get(name)
        if published is not None and published.height:
            redone = computed.get_column("school_year").unique().implode()
            published = published.filter(~pl.col("school_year").is_in(redone))
            earlier = pl.concat([published, earlier], how="diagonal_relaxed")
        out[name] = earlier
    return out


rules_task = task(name="load_evaluation_rules", cache_policy=NO_CACHE)(rules_for_run)
report_task = task(name="report_skipped", cache_policy=NO_CACHE)(report_skipped)
evaluate_task = task(name="evaluate_by_school_batches", cache_policy=NO_CACHE)(evaluate_warehouse)
reports_input_task = task(name="read_results_for_reports", cache_policy=NO_CACHE)(
    results_for_reports
)
publish_task = task(name="publish_results", cache_policy=NO_CACHE)(publish_results)
eservices_task = task(name="eservices_extract", cache_policy=NO_CACHE)(publish_eservices_by_year)
statistics_task = task(name="statistics_report", cache_policy=NO_CACHE)(publish_statistics_by_year)

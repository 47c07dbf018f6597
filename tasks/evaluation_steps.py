"""Tasks of the ``evaluate`` flow: read the published warehouse, compute results, write them,
publish them with the night, the e-services extract and the officers' statistics.

The formulas are in :mod:`tasks.evaluate` (plain polars), the rules in ``schemas/evaluation``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from ground.errors import OperatorError
from ground.settings import Settings
from schemas.evaluation_rules import EvaluationRules, RulesError, load_rules
from tasks import evaluate as formulas
from tasks.eservices import build_extract, write_school_extracts
from tasks.evaluable import (
    EARLIER_EXAM_MARKS,
    SCHOOL_WITHOUT_MARKS,
    YEAR_TABLES,
    Evaluable,
    evaluable,
    outcome_sentence,
    skipped_sentences,
)
from tasks.statistics import compute_statistics, headline_table
from tasks.statistics_report import write_statistics_report
from warehouse.control import ControlDatabase
from warehouse.delta import current_version, read_table, replace_school_rows
from warehouse.nights import finish_night, last_completed_night, start_night

RESULT_TABLES = ("subject_results", "semester_results", "annual_results", "exam_results")
INPUT_TABLES = ("marks", "exam_marks", "students", "enrollments", "schools")


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
        marks = pl.from_arrow(
            read_table(settings.warehouse, "marks", versions["marks"]).to_table(
                columns=["school_year"]
            )
        )
        assert isinstance(marks, pl.DataFrame)
        years = marks.get_column("school_year").drop_nulls().unique().sort().to_list()
    if year not in years:
        raise OperatorError(
            f"The warehouse has no marks for the school year {year}; "
            f"years with marks: {', '.join(years) or 'none'}."
        )
    return year


def read_published(settings: Settings) -> dict[str, pl.DataFrame]:
    """The input tables as of the last completed night, as they are (tables the night does
    not have are absent; no night at all: an empty dict). What can be evaluated is decided by
    :func:`plan_evaluation`."""
    database = ControlDatabase(settings.resolved_database_url)
    try:
        night = last_completed_night(database)
    finally:
        database.dispose()
    if night is None:
        return {}
    versions = dict(night.versions)
    frames: dict[str, pl.DataFrame] = {}
    for table in (*INPUT_TABLES, "annual_results", "exam_results"):
        if table not in versions:
            continue
        frame = pl.from_arrow(read_table(settings.warehouse, table, versions[table]).to_table())
        assert isinstance(frame, pl.DataFrame)
        frames[table] = frame
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


def report_skipped(plan: Evaluable, results: dict[str, pl.DataFrame]) -> dict[str, Any]:
    """Say what the evaluation did and held back: one log line per school and reason and the
    artifact ``evaluation-skipped`` (codes and counts, no pupil); returns the summary's part."""
    logger = get_run_logger()
    pupils = results.get("annual_results", results.get("semester_results"))
    counted = pupils if pupils is not None else pl.DataFrame({"school_code": []})
    schools = counted.get_column("school_code").n_unique()
    outcome = outcome_sentence(plan.years, counted.height, schools, plan.skipped)
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
        "pupils": counted.height,
        "schools": schools,
        "skipped": [{k: v for k, v in row.items()} for row in rows],
    }


def compute_results(
    inputs: dict[str, pl.DataFrame],
    rules: EvaluationRules,
    semester: int | None = None,
    other_semester: dict[str, pl.DataFrame] | None = None,
) -> dict[str, pl.DataFrame]:
    """Subject, semester, annual and exam results of the school years of ``inputs``.

    With ``semester``, only that semester's subject and semester results are computed from the
    marks; the other semester's are ``other_semester`` (the warehouse's rows, unchanged, from
    :func:`other_semester_results`). The annual and exam results are computed from both, so
    they never contradict the semester results the warehouse holds after the run."""
    marks = inputs["marks"]
    if semester is not None:
        marks = marks.filter(pl.col("semester") == semester)
    subjects = formulas.subject_results(marks, rules)
    semesters = formulas.semester_results(subjects, rules)
    if other_semester:
        subjects = _stacked(subjects, other_semester.get("subject_results"))
        semesters = _stacked(semesters, other_semester.get("semester_results"))
    annual = formulas.annual_results(semesters, rules)
    results = {"subject_results": subjects, "semester_results": semesters, "annual_results": annual}
    if "exam_marks" in inputs and inputs["exam_marks"].height:
        results["exam_results"] = _exam_results(inputs, annual, rules)
    return results


def _exam_results(
    inputs: dict[str, pl.DataFrame], annual: pl.DataFrame, rules: EvaluationRules
) -> pl.DataFrame:
    """Exam results of the years evaluated; the papers of earlier years (the baccalaureate's
    regional exam) are read with them, their results not kept."""
    earlier = inputs.get(EARLIER_EXAM_MARKS)
    if earlier is None or not earlier.height:
        return formulas.exam_results(inputs["exam_marks"], annual, rules)
    papers = pl.concat([inputs["exam_marks"], earlier], how="diagonal_relaxed")
    years = inputs["exam_marks"].get_column("school_year").unique().implode()
    return formulas.exam_results(papers, annual, rules).filter(pl.col("school_year").is_in(years))


def other_semester_results(
    settings: Settings, plan: Evaluable, semester: int
) -> dict[str, pl.DataFrame]:
    """The warehouse's subject and semester results that a run of ``semester`` keeps: the
    other semester's, in the schools and school years the run looks at."""
    kept = {}
    for table in ("subject_results", "semester_results"):
        if not plan.schools or current_version(settings.warehouse, table) < 0:
            continue
        scope = (
            pc.field("school_code").isin(pa.array(plan.schools, pa.string()))
            & pc.field("school_year").isin(pa.array(plan.looked_at, pa.string()))
            & (pc.field("semester") != semester)
        )
        frame = pl.from_arrow(read_table(settings.warehouse, table).to_table(filter=scope))
        assert isinstance(frame, pl.DataFrame)
        kept[table] = frame
    return kept


def _stacked(computed: pl.DataFrame, stored: pl.DataFrame | None) -> pl.DataFrame:
    """``computed`` and the ``stored`` rows, typed as the computed ones (the warehouse stores
    no unsigned integers)."""
    if stored is None or not stored.height:
        return computed
    return pl.concat([computed, _typed_as(stored, computed.schema)])


def _typed_as(frame: pl.DataFrame, schema: pl.Schema) -> pl.DataFrame:
    return frame.select(
        pl.col(name).cast(dtype) if name in frame.columns else pl.lit(None, dtype).alias(name)
        for name, dtype in schema.items()
    )


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


def write_results(
    settings: Settings, results: dict[str, pl.DataFrame], plan: Evaluable
) -> dict[str, int]:
    """One commit per result table: in the schools whose marks were looked at, the results of
    the school years looked at are replaced by ``results``; their rows of other years are
    kept, as are other schools' rows. A school whose marks are all held back loses its
    results of those years: results say what the inputs allow tonight. Exam results are
    written only when computed (a warehouse without exam marks keeps its rows)."""
    versions = {}
    for table in RESULT_TABLES:
        computed = results.get(table)
        if computed is None and table == "exam_results":
            continue
        schools = sorted(set(plan.schools) | set(_column(computed, "school_code")))
        if not schools:
            continue
        kept = _rows_outside(settings, table, schools, plan.looked_at)
        if computed is None and kept is None:
            continue
        if computed is None:
            frame = kept
        elif kept is not None and kept.height:
            frame = pl.concat([computed, _typed_as(kept, computed.schema)])
        else:
            frame = computed
        assert frame is not None
        versions[table] = replace_school_rows(settings.warehouse, table, schools, frame.to_arrow())
    return versions


def _column(frame: pl.DataFrame | None, name: str) -> list[Any]:
    if frame is None or name not in frame.columns:
        return []
    return frame.get_column(name).unique().to_list()


def _rows_outside(
    settings: Settings, table: str, schools: list[str], years: list[str]
) -> pl.DataFrame | None:
    """The rows of ``schools`` in the result table of school years other than ``years``
    (None: no table yet)."""
    if current_version(settings.warehouse, table) < 0:
        return None
    outside = pc.field("school_code").isin(pa.array(schools, pa.string())) & ~pc.field(
        "school_year"
    ).isin(pa.array(years, pa.string()))
    dataset = read_table(settings.warehouse, table)
    # usually none (one school year evaluated): counted before anything is read
    found = dataset.to_table(filter=outside) if dataset.count_rows(filter=outside) else None
    frame = pl.from_arrow(found if found is not None else dataset.schema.empty_table())
    assert isinstance(frame, pl.DataFrame)
    return frame


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
    for year in plan.years:
        inputs = with_earlier_results(of_year(plan.inputs, year), results, year)
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


rules_task = task(rules_for_run, name="load_evaluation_rules", cache_policy=NO_CACHE)
read_task = task(read_published, name="read_published_warehouse", cache_policy=NO_CACHE)
plan_task = task(plan_evaluation, name="plan_evaluation", cache_policy=NO_CACHE)
report_task = task(report_skipped, name="report_skipped", cache_policy=NO_CACHE)
compute_task = task(compute_results, name="compute_results", cache_policy=NO_CACHE)
other_semester_task = task(
    other_semester_results, name="read_other_semester_results", cache_policy=NO_CACHE
)
write_task = task(write_results, name="write_results", cache_policy=NO_CACHE)
publish_task = task(publish_results, name="publish_results", cache_policy=NO_CACHE)
eservices_task = task(publish_eservices_by_year, name="eservices_extract", cache_policy=NO_CACHE)
statistics_task = task(publish_statistics_by_year, name="statistics_report", cache_policy=NO_CACHE)

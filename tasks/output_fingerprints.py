"""Nothing recomputed that did not change (issue 17, item 2): the fingerprints of the night's
derived outputs, compared with those they were last made from (warehouse/output_fingerprints.py).

Two fingerprints decide what a night computes:

- ``evaluation`` (scope ``province``): the published versions of the tables the evaluation
  reads (marks, exam marks, students, enrolments, schools), the rules files (schemas/evaluation
  and the reference tables) and the evaluation's code. Unchanged: the nightly flow does not run
  the evaluation at all (no result, e-services file or statistics report is touched).
- ``results`` (scope: a school): the Delta files of the school's partition in marks, exam marks
  and enrolments, the rules, the code, and the earlier years' regional exam papers of the
  province (the baccalaureate's regional exam may have been sat in another school). The
  evaluation leaves the result rows of a school whose fingerprint is unchanged as they are
  (tasks/evaluation_batches.py), and says what it held back there as it said last time.

Both are recorded only after the evaluation's night is published, by the nightly flow.

When the evaluation runs, each school's e-services extract carries the fingerprint of what it
is made from (``inputs_sha256`` in its manifest) and only those whose inputs changed are built
and written (tasks/eservices.py); the statistics report, province-wide, is made again but a
page or chart equal to the file is not rewritten (tasks/statistics_report.py). A school report
carries the fingerprint of what it was made from beside it (tasks/feedback.py); the coverage
page is made again only when the submissions, the campaigns file or the day changed
(:func:`coverage_unchanged`, recorded here too).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import select

from ground.settings import Settings
from schemas import evaluation_rules
from schemas.evaluation_rules import EvaluationRules
from warehouse.control import ControlDatabase, Submission
from warehouse.delta import partition_rows, scan_table
from warehouse.nights import published_versions
from warehouse.output_fingerprints import (
    PROVINCE,
    digest,
    files_digest,
    partition_digests,
    record,
    recorded,
)

ROOT = Path(__file__).resolve().parent.parent
EVALUATION = "evaluation"
RESULTS = "results"
COVERAGE_PAGE = "coverage_page"
EVALUATION_INPUTS = ("marks", "exam_marks", "students", "enrollments", "schools")
RESULT_INPUTS = ("marks", "exam_marks", "enrollments")
RESULT_TABLES = ("subject_results", "semester_results", "annual_results", "exam_results")
# The code that turns the inputs into the results (a change of it is a change of the inputs).
RESULTS_CODE = (
    "tasks/results_formulas.py",
    "tasks/evaluation_batches.py",
    "tasks/evaluable.py",
    "warehouse/delta.py",
)
# ... and into the e-services extract and the statistics report.
EVALUATION_CODE = (
    *RESULTS_CODE,
    "tasks/evaluation_steps.py",
    "tasks/eservices.py",
    "tasks/statistics.py",
    "tasks/statistics_report.py",
)
COVERAGE_CODE = ("warehouse/coverage.py", "tasks/coverage.py", "tasks/coverage_page.py")
SKIPPED_COLUMNS = (
    "school_year",
    "school_code",
    "level_code",
    "dataset",
    "reason",
    "marks",
    "pupils",
    "detail",
)


def code_digest(files: tuple[str, ...]) -> str:
    return files_digest(ROOT / name for name in files)


def rules_digest() -> str:
    """The evaluation rules files and the reference tables they are read with (read where
    load_rules reads them, at call time)."""
    return files_digest(
        [
            *evaluation_rules.RULES_DIR.glob("*.toml"),
            *evaluation_rules.REFERENCE_DIR.glob("*.csv"),
        ]
    )


# ---- the evaluation as a whole -------------------------------------------------------------


@dataclass(frozen=True)
class EvaluationInputs:
    """The evaluation's fingerprint tonight and whether its outputs were made from it."""

    fingerprint: str | None  # None: no night published yet
    unchanged: bool
    versions: dict[str, int] = field(default_factory=dict)


def _outputs_present(inputs: Mapping[str, Any]) -> bool:
    """The files the evaluation wrote last time are still there."""
    report = inputs.get("statistics_report")
    if report and not Path(report).is_file():
        return False
    folder = inputs.get("eservices_folder")
    return not (inputs.get("eservices_files") and folder and not Path(folder).is_dir())


def evaluation_inputs(settings: Settings) -> EvaluationInputs:
    """Tonight's fingerprint of the evaluation's inputs (the last published night), and whether
    the evaluation's outputs were made from exactly these (and are still on disk)."""
    database = ControlDatabase(settings.resolved_database_url)
    try:
        versions = published_versions(database)
        if not versions:
            return EvaluationInputs(None, False)
        read = {table: versions[table] for table in EVALUATION_INPUTS if table in versions}
        fingerprint = digest(read, rules_digest(), code_digest(EVALUATION_CODE))
        last = recorded(database, EVALUATION).get(PROVINCE)
    finally:
        database.dispose()
    unchanged = (
        last is not None and last.fingerprint == fingerprint and _outputs_present(last.inputs)
    )
    return EvaluationInputs(fingerprint, unchanged, read)


def record_evaluation(
    settings: Settings, inputs: EvaluationInputs, summary: Mapping[str, Any]
) -> dict[str, Any]:
    """After an evaluation that published its night: record its fingerprint and each school's
    results fingerprint at that night. Returns the schools whose results were recomputed
    (their fingerprint changed) and how many were kept. An evaluation that did not run (left
    to another run, nothing published) records nothing."""
    night_id = summary.get("night_id")
    if inputs.fingerprint is None or night_id is None or summary.get("note"):
        return {"recorded": False}
    database = ControlDatabase(settings.resolved_database_url)
    try:
        versions = published_versions(database, int(night_id))
        rules = evaluation_rules.load_rules()
        prints = school_results_fingerprints(settings, versions, rules)
        before = recorded(database, RESULTS)
        per_school = _results_inputs(settings, versions, summary)
        record(database, RESULTS, prints, per_school)
        folder = settings.exchange / "eservices"
        record(
            database,
            EVALUATION,
            {PROVINCE: inputs.fingerprint},
            {
                PROVINCE: {
                    "versions": inputs.versions,
                    "night_id": int(night_id),
                    "statistics_report": summary.get("statistics_report"),
                    "eservices_files": summary.get("eservices_files", 0),
                    "eservices_folder": str(folder),
                }
            },
        )
    finally:
        database.dispose()
    recomputed = sorted(
        s for s, fp in prints.items() if s not in before or before[s].fingerprint != fp
    )
    return {"recorded": True, "recomputed": recomputed, "kept": len(prints) - len(recomputed)}


def _results_inputs(
    settings: Settings,
    versions: Mapping[str, int],
    summary: Mapping[str, Any],
) -> dict[str, dict[str, Any]]:
    """Per school, what the evaluation says of it when its results are kept: the rows it held
    back (codes and counts), the school years and pupils with annual results."""
    out: dict[str, dict[str, Any]] = {}
    for row in summary.get("skipped") or []:
        school = row.get("school_code")
        if school:
            entry = out.setdefault(str(school), {"skipped": []})
            entry["skipped"].append({name: row.get(name) for name in SKIPPED_COLUMNS})
    if "annual_results" in versions:
        annual = (
            scan_table(settings.warehouse, "annual_results", versions["annual_results"])
            .group_by("school_code")
            .agg(pl.col("school_year").unique().sort().alias("years"), pl.len().alias("pupils"))
            .collect()
        )
        evaluated = set(summary.get("years") or [])
        for school, years, pupils in annual.iter_rows():
            entry = out.setdefault(str(school), {"skipped": []})
            entry["years"] = [y for y in years if y in evaluated] if evaluated else list(years)
            entry["pupils"] = int(pupils) if entry["years"] else 0
    for entry in out.values():
        entry.setdefault("years", [])
        entry.setdefault("pupils", 0)
    return out


# ---- the results of each school -------------------------------------------------------------


def _regional_digest(
    settings: Settings, versions: Mapping[str, int], rules: EvaluationRules
) -> str:
    """A digest of the regional exam papers of earlier years (any school), which the exam
    results of a school read for its candidates who sat them elsewhere; empty when no exam
    reads an earlier year's paper."""
    if not any(exam.regional_from == "earlier_year" for exam in rules.exams().values()):
        return ""
    if "exam_marks" not in versions or "marks" not in versions:
        return ""
    years = (
        scan_table(settings.warehouse, "marks", versions["marks"])
        .select(pl.col("school_year").drop_nulls().unique())
        .collect(engine="streaming")
        .get_column("school_year")
        .to_list()
    )
    if not years:
        return ""
    papers = (
        scan_table(settings.warehouse, "exam_marks", versions["exam_marks"])
        .filter(
            (pl.col("exam") == "regional")
            & (pl.col("session") == "normal")
            & (pl.col("school_year") < max(years))
        )
        .collect()
    )
    if not papers.height:
        return "none"
    hashes = papers.hash_rows(seed=0).sort()
    return hashlib.sha256(hashes.to_numpy().tobytes()).hexdigest()


def school_results_fingerprints(
    settings: Settings, versions: Mapping[str, int], rules: EvaluationRules
) -> dict[str, str]:
    """Per school with rows in marks, exam marks or enrolments (at ``versions``), the
    fingerprint of what its results are computed from."""
    common = digest(
        rules_digest(), code_digest(RESULTS_CODE), _regional_digest(settings, versions, rules)
    )
    parts = {
        table: partition_digests(settings.warehouse, table, versions.get(table))
        for table in RESULT_INPUTS
    }
    schools = sorted(set().union(*parts.values()))
    return {
        school: digest(common, {table: parts[table].get(school) for table in RESULT_INPUTS})
        for school in schools
    }


def unchanged_results(
    settings: Settings,
    versions: Mapping[str, int],
    rules: EvaluationRules,
    year: str | None = None,
    semester: int | None = None,
) -> dict[str, dict[str, Any]]:
    """The schools whose results were made from exactly tonight's inputs, each with what the
    evaluation said of it then (held-back rows, years, pupils). A run asked for one school
    year or one semester recomputes everything it looks at (an operator's explicit request)."""
    if year is not None or semester is not None:
        return {}
    database = ControlDatabase(settings.resolved_database_url)
    try:
        stored = recorded(database, RESULTS)
    finally:
        database.dispose()
    if not stored:
        return {}
    current = school_results_fingerprints(settings, versions, rules)
    return {
        school: dict(stored[school].inputs)
        for school, fingerprint in current.items()
        if school in stored and stored[school].fingerprint == fingerprint
    }


@dataclass
class KeptResults:
    """What the evaluation adds to its account for the schools whose results it kept: what it
    held back there, their years, schools and pupils, and per result table the rows they keep
    (read, like the others, by the e-services extract and the statistics)."""

    skipped: pl.DataFrame
    years: list[str]
    schools: list[str]
    pupils: int
    schools_evaluated: int
    rows: dict[str, int] = field(default_factory=dict)


def kept_results(
    unchanged: Mapping[str, Mapping[str, Any]],
    schema: Mapping[str, Any],
    warehouse: Path | None = None,
    versions: Mapping[str, int] | None = None,
) -> KeptResults:
    """The held-back rows (typed as ``schema``), years, schools and pupils of the kept
    schools, as the evaluation that made their results said them, and their rows in each
    result table published at ``versions`` (from the Delta log, nothing read)."""
    held = [row for entry in unchanged.values() for row in entry.get("skipped", [])]
    skipped = pl.DataFrame(
        [{name: row.get(name) for name in schema} for row in held], schema=dict(schema)
    )
    years = sorted({y for entry in unchanged.values() for y in entry.get("years", [])})
    pupils = sum(int(entry.get("pupils", 0)) for entry in unchanged.values())
    with_results = sum(1 for entry in unchanged.values() if entry.get("pupils"))
    rows: dict[str, int] = {}
    for table in RESULT_TABLES:
        if warehouse is None or versions is None or table not in versions:
            continue
        counts = partition_rows(warehouse, table, versions[table])
        kept = sum(counts.get(school, 0) for school in unchanged)
        if kept:
            rows[table] = kept
    return KeptResults(skipped, years, sorted(unchanged), pupils, with_results, rows)


# ---- the coverage page ------------------------------------------------------------------------


def coverage_fingerprint(settings: Settings, campaigns_file: Path, today: date) -> str:
    """What the coverage page is made from: every submission's school, dataset, state and
    hold, the campaigns file, the day (days left, late schools) and the code."""
    database = ControlDatabase(settings.resolved_database_url)
    try:
        with database.session() as session:
            rows = session.execute(
                select(
                    Submission.submission_id,
                    Submission.school_code,
                    Submission.dataset,
                    Submission.state,
                    Submission.hold,
                ).order_by(Submission.submission_id)
            ).all()
    finally:
        database.dispose()
    return digest(
        [list(row) for row in rows],
        files_digest([campaigns_file]),
        today.isoformat(),
        code_digest(COVERAGE_CODE),
    )


def coverage_unchanged(settings: Settings, fingerprint: str, page: Path) -> bool:
    """The coverage page on disk was made from ``fingerprint``."""
    database = ControlDatabase(settings.resolved_database_url)
    try:
        last = recorded(database, COVERAGE_PAGE).get(PROVINCE)
    finally:
        database.dispose()
    return last is not None and last.fingerprint == fingerprint and page.is_file()


def record_coverage(settings: Settings, fingerprint: str, summary: Mapping[str, Any]) -> None:
    database = ControlDatabase(settings.resolved_database_url)
    try:
        kept = {k: v for k, v in summary.items() if k in ("campaigns", "page", "rates", "late")}
        record(database, COVERAGE_PAGE, {PROVINCE: fingerprint}, {PROVINCE: kept})
    finally:
        database.dispose()


def kept_coverage(settings: Settings) -> dict[str, Any]:
    """The summary of the coverage page that stands (``unchanged``: not made again)."""
    database = ControlDatabase(settings.resolved_database_url)
    try:
        last = recorded(database, COVERAGE_PAGE).get(PROVINCE)
    finally:
        database.dispose()
    return {**(dict(last.inputs) if last is not None else {}), "unchanged": True}


# ---- the night's account ------------------------------------------------------------------------


def changes_sentence(
    new_submissions: int, schools_changed: int, evaluation: Mapping[str, Any]
) -> str:
    """What the night changed, in one sentence (``nothing changed`` when nothing did)."""
    if not new_submissions and not schools_changed and evaluation.get("unchanged"):
        return "nothing changed: no new submission, no warehouse table written, no output rewritten"
    parts = [f"{new_submissions} new submission(s)", f"{schools_changed} school(s) consolidated"]
    if evaluation.get("unchanged"):
        parts.append("the evaluation's inputs unchanged (no output rewritten)")
    elif evaluation.get("recorded"):
        recomputed = evaluation.get("recomputed", [])
        kept = evaluation.get("kept", 0)
        parts.append(f"results recomputed in {len(recomputed)} school(s), kept in {kept}")
    return "; ".join(parts)


evaluation_inputs_task = task(name="evaluation_inputs", cache_policy=NO_CACHE)(evaluation_inputs)
record_evaluation_task = task(name="record_evaluation_fingerprints", cache_policy=NO_CACHE)(
    record_evaluation
)

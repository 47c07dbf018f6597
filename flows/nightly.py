"""Flows ``nightly_consolidation`` and ``nightly`` (ingest → consolidate → evaluate)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from prefect import flow
from prefect.futures import PrefectFuture
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner
from prefect.utilities.annotations import quote

from flows.evaluate import evaluate
from flows.ingest import ingest_submissions
from flows.recorded import recorded
from ground.settings import Settings, flow_settings
from tasks.consolidation_steps import (
    TABLE_WRITERS,
    consolidated_tables,
    enrollments_task,
    find_changed_schools_task,
    largest_first,
    open_night_task,
    publish_night_task,
    reference_task,
    table_task,
    tables_without_changes,
    unchanged_tables_task,
)
from tasks.disk_space import consolidation_estimate, disk_guarded, warehouse_folders
from tasks.leases import WAREHOUSE, leased, night_not_run
from tasks.output_fingerprints import (
    changes_sentence,
    evaluation_inputs_task,
    record_evaluation_task,
)

# the night's tables, each written by a task of its own, a few at a time
TABLES_SIDE_BY_SIDE = cast(  # Prefect types a flow's runner by its futures' base class
    "TaskRunner[PrefectFuture[Any]]", ThreadPoolTaskRunner(max_workers=TABLE_WRITERS)
)


@flow(name="nightly_consolidation", task_runner=TABLES_SIDE_BY_SIDE)
@recorded
@disk_guarded("The night's consolidation", warehouse_folders, consolidation_estimate)
@leased(WAREHOUSE, night_not_run)  # one writer of the warehouse at a time
def nightly_consolidation(settings: Settings | None = None, home: str | None = None) -> dict:
    """Bring every warehouse table up to the accepted submissions, one Delta commit per table,
    then publish the night's table versions together."""
    settings = flow_settings(settings, home)  # secrets: from the home, not Prefect
    night_id = open_night_task(settings)
    pending = find_changed_schools_task(settings)
    versions: dict[str, int] = {"schools": reference_task(settings)}
    unchanged = tables_without_changes(pending)
    kept = unchanged_tables_task(settings, unchanged) if unchanged else {}
    # the tables are written side by side, the longest write started first
    written: dict[str, PrefectFuture] = {}
    for table, dataset in largest_first(consolidated_tables(), pending):
        schools = sorted(pending.get(dataset, {}))
        if table in kept:
            continue
        if table == "enrollments":
            written[table] = enrollments_task.submit(settings, schools, datetime.now(settings.zone))
        else:
            written[table] = table_task.submit(settings, table, schools)
    done = {table: future.result() for table, future in written.items()}
    done["enrollments"], transfers = done["enrollments"]  # (version, pupils who moved)
    for table, _ in consolidated_tables():  # in warehouse/tables.py's order
        versions[table] = kept[table] if table in kept else done[table]
    published = {table: version for table, version in versions.items() if version >= 0}
    # quoted: Prefect would otherwise visit every submission id of the night (~31 k on a first
    # night) twice, looking for futures among them, before the task starts
    return publish_night_task(settings, night_id, published, cast(Any, quote(pending)), transfers)


@flow(name="nightly")
@recorded
def nightly(settings: Settings | None = None, home: str | None = None) -> dict:
    """The night: ingest what arrived, consolidate the warehouse, evaluate what the warehouse
    allows (what it does not is reported by the evaluation, and the night still completes).

    Nothing is recomputed that did not change (tasks/output_fingerprints.py): when the tables
    the evaluation reads, its rules and its code are those its outputs were made from, the
    evaluation does not run; when it runs, schools whose inputs are unchanged keep their
    results. ``changes`` says what the night changed ("nothing changed" ...)."""
    settings = flow_settings(settings, home)  # secrets: from the home, not Prefect
    ingested = ingest_submissions(settings.without_secrets())
    consolidated = nightly_consolidation(settings.without_secrets())
    inputs = evaluation_inputs_task(settings)
    if inputs.unchanged:
        evaluated: dict = {
            "outcome": "The evaluation's inputs did not change: its outputs stand as they are.",
            "rows": {},
            "skipped": [],
        }
        fingerprints: dict = {"unchanged": True}
    else:
        evaluated = evaluate(settings.without_secrets())
        fingerprints = record_evaluation_task(settings, inputs, evaluated)
    evaluated["fingerprints"] = fingerprints
    return {
        "ingest": ingested["totals"],
        "ingest_note": ingested.get("note", ""),  # school folders left to another run
        "consolidation": consolidated,
        "evaluation": evaluated,
        "changes": changes_sentence(
            int(ingested["totals"].get("new_submissions", 0)),
            int(consolidated.get("schools_changed", 0)),
            fingerprints,
        ),
    }

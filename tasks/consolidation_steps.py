"""The steps of the nightly consolidation as Prefect tasks: one per warehouse table, plus the
night's bookkeeping (which schools changed, open the night, publish it).

The logic is in :mod:`tasks.consolidate` (plain functions); here are the thin Prefect tasks and
the record of a night: its table versions are published in the control database only after
every table is written, so readers never see half a night.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from ground.settings import Settings
from tasks.consolidate import (
    consolidate_enrollments,
    consolidate_school_reference,
    consolidate_table,
    mark_consolidated,
    pending_by_dataset,
    write_transfer_report,
)
from warehouse.control import ControlDatabase
from warehouse.delta import current_version, table_rows
from warehouse.nights import finish_night, published_versions, start_night
from warehouse.tables import TABLES

# Tables written at the same time by a night's consolidation (each a Delta commit of its own,
# reading the staged rows a few schools ahead): one per core of the 2-core machine; more only
# add memory (marks and the others each hold a few schools' rows).
TABLE_WRITERS = 2


def consolidated_tables() -> list[tuple[str, str]]:
    """The warehouse tables a night writes from the schools' submissions, each with the dataset
    it comes from, in warehouse/tables.py's order (``schools`` comes from the control
    database: consolidate_school_reference)."""
    return [(table, spec.dataset) for table, spec in TABLES.items() if spec.dataset is not None]


def largest_first(
    tables: list[tuple[str, str]], pending: dict[str, dict[str, list[int]]]
) -> list[tuple[str, str]]:
    """``tables`` (consolidated_tables) ordered by the submissions each has to take in
    (``pending``), most first: written side by side, the longest write (the marks) starts
    first instead of last."""

    def submissions(item: tuple[str, str]) -> int:
        return sum(len(ids) for ids in pending.get(item[1], {}).values())

    return sorted(tables, key=submissions, reverse=True)


def find_changed_schools(settings: Settings) -> dict[str, dict[str, list[int]]]:
    """Per dataset, per school, the processed submissions no night has consolidated yet."""
    database = ControlDatabase(settings.resolved_database_url)
    datasets = sorted({t.dataset for t in TABLES.values() if t.dataset})
    try:
        pending = pending_by_dataset(database, datasets)
        return {dataset: pending.get(dataset, {}) for dataset in datasets}
    finally:
        database.dispose()


def tables_without_changes(pending: dict[str, dict[str, list[int]]]) -> list[str]:
    """The tables no school changed tonight (``pending``: find_changed_schools), enrolments
    aside (their first night writes the table even without a student list)."""
    return [
        table
        for table, dataset in consolidated_tables()
        if not pending.get(dataset) and table != "enrollments"
    ]


def unchanged_tables(settings: Settings, tables: list[str]) -> dict[str, int]:
    """The current version of each table no school changed tonight (-1: not written yet):
    nothing is read or written, and one Prefect task for all of them instead of one each."""
    return {table: current_version(settings.warehouse, table) for table in tables}


def open_night(settings: Settings) -> int:
    from prefect.runtime import flow_run

    database = ControlDatabase(settings.resolved_database_url)
    try:
        return start_night(database, str(flow_run.id or ""))
    finally:
        database.dispose()


def publish_night(
    settings: Settings,
    night_id: int,
    versions: dict[str, int],
    pending: dict[str, dict[str, list[int]]],
    transfers: int,
) -> dict[str, Any]:
    """Publish the night's versions, then mark its submissions consolidated; returns the
    summary (counts only: no pupil data)."""
    rows = {table: table_rows(settings.warehouse, table, v) for table, v in versions.items()}
    changed = sorted({school for by_school in pending.values() for school in by_school})
    summary = {
        "night_id": night_id,
        "versions": versions,
        "rows": rows,
        "schools_changed": len(changed),
        "transfers": transfers,
    }
    database = ControlDatabase(settings.resolved_database_url)
    try:
        # The tables no consolidation writes (the evaluation's results) stay published at
        # their last version: a night whose evaluation fails or has not run yet still has them.
        kept = {t: v for t, v in published_versions(database).items() if t not in versions}
        finish_night(database, night_id, {**kept, **versions}, summary)
        mark_consolidated(
            database,
            [sid for by_school in pending.values() for ids in by_school.values() for sid in ids],
        )
    finally:
        database.dispose()
    create_table_artifact(
        key="nightly-warehouse",
        table=[{"table": t, "version": v, "rows": rows[t]} for t, v in versions.items()],
        description=(
            f"Night {night_id}: {len(changed)} school(s) changed, {transfers} pupil(s) "
            "enrolled in two schools resolved (details for officers in "
            "reports/province/)."
        ),
    )
    return summary


def consolidate_enrollments_and_report(
    settings: Settings, schools: list[str], now: datetime
) -> tuple[int, int]:
    """Enrolments with the province resolution, and the officers' transfer report; returns
    the table's version and the number of pupils who moved (ties are on the report). When no
    student list changed, nothing is read or written: the enrolments, their statuses and the
    last transfer report stand (0 moved tonight)."""
    version = current_version(settings.warehouse, "enrollments")
    if not schools and version >= 0:
        return version, 0
    version, transfers = consolidate_enrollments(settings, schools)
    write_transfer_report(settings.reports, transfers, now)
    ties = sum(1 for t in transfers if t.tie)
    if ties:  # counts only: the report names the pupils
        get_run_logger().warning(
            "%d pupil(s) are listed by two schools with lists of the same date: both "
            "enrolments stay counted until the transfer is regularised in Massar; see "
            "reports/province/transfers-%s.html",
            ties,
            now.strftime("%Y-%m-%d"),
        )
    return version, len(transfers) - ties


find_changed_schools_task = task(name="find_changed_schools", cache_policy=NO_CACHE)(
    find_changed_schools
)
unchanged_tables_task = task(name="unchanged_tables", cache_policy=NO_CACHE)(unchanged_tables)
open_night_task = task(name="open_night", cache_policy=NO_CACHE)(open_night)
publish_night_task = task(name="publish_night", cache_policy=NO_CACHE)(publish_night)
reference_task = task(name="consolidate_schools", cache_policy=NO_CACHE)(
    consolidate_school_reference
)
table_task = task(
    name="consolidate_table", cache_policy=NO_CACHE, task_run_name="consolidate-{table}"
)(consolidate_table)
enrollments_task = task(name="consolidate_enrollments", cache_policy=NO_CACHE)(
    consolidate_enrollments_and_report
)

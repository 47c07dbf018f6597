"""Schools ingested a chunk at a time: one Prefect task per chunk of schools, not per school.

A task run costs a worker about a tenth of a second of Prefect's own work (states, API calls,
pickling), ~26 s of worker CPU for a province's 250 schools. A chunk keeps what the per-school
task gave: each school's outcome (counts only, in the ingest's summary and one log line per
school), one bad school never stops the others (its error is raised once the chunk's other
schools are done), and a control database that goes away is retried by Prefect (5, 15, 30 s)
without doing again the schools the chunk finished before it went away.
"""

from __future__ import annotations

import gc
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from ground.settings import Settings
from tasks.ingest import SchoolOutcome, database_away, ingest_school, log, write_reports
from warehouse.control import ControlDatabase

CHUNKS_PER_WORKER = 4  # small enough to balance big and small schools, few enough task runs


class SchoolFolder:
    """One school's files waiting in the inbox, and the folder their names are relative to.

    Not a dataclass: Prefect walks a task's parameters for futures into lists and dataclasses,
    and would visit every file of a chunk three times (the flow, then the worker twice; ~0.35 s
    of CPU for a province's 31 k files); it stops at an object of another class."""

    __slots__ = ("files", "folder", "school_code")

    def __init__(self, school_code: str, files: list[Path], folder: Path) -> None:
        self.school_code = school_code
        self.files = files
        self.folder = folder

    def __repr__(self) -> str:
        return f"SchoolFolder({self.school_code!r}, {len(self.files)} files, {self.folder!r})"


def school_chunks(
    schools: dict[str, list[Path]], root: Path, workers: int
) -> list[list[SchoolFolder]]:
    """The schools dealt into ``workers * CHUNKS_PER_WORKER`` chunks of about the same number
    of files (largest school first, each to the lightest chunk), each chunk in school order."""
    count = max(1, min(len(schools), workers * CHUNKS_PER_WORKER))
    chunks: list[list[SchoolFolder]] = [[] for _ in range(count)]
    weights = [0] * count
    for code in sorted(schools, key=lambda c: (-len(schools[c]), c)):
        lightest = weights.index(min(weights))
        folder = root if root.name == code else root / code
        chunks[lightest].append(SchoolFolder(code, schools[code], folder))
        weights[lightest] += len(schools[code]) or 1
    return [sorted(chunk, key=lambda s: s.school_code) for chunk in chunks if chunk]


def chunk_label(chunk: list[SchoolFolder]) -> str:
    """The task run's name: its schools (no pupil data)."""
    codes = [s.school_code for s in chunk]
    return codes[0] if len(codes) == 1 else f"{codes[0]}..{codes[-1]} ({len(codes)} schools)"


def ingest_schools(
    settings: Settings,
    chunk: list[SchoolFolder],
    reports_at: datetime | None = None,
    finished: dict[str, SchoolOutcome] | None = None,
    say: Callable[[str], None] = log.info,
) -> list[SchoolOutcome]:
    """Ingest the chunk's schools one after the other (`tasks.ingest.ingest_school`), then
    write the feedback report of each school that sent something new (at ``reports_at``; none
    when it is None). Returns one outcome per school, in the chunk's order.

    ``finished`` holds the outcomes of schools already done by an earlier attempt of this
    chunk; each school done is added to it. A school that fails on the control database stops
    the chunk at once (the whole chunk is tried again); any other failure is raised after the
    chunk's other schools are done."""
    finished = {} if finished is None else finished
    failed: list[tuple[str, Exception]] = []
    # One handle for the chunk: a school's own engine cost a new connection and the compiling
    # of every statement again (~5 ms of CPU for four queries, per school).
    database = ControlDatabase(settings.resolved_database_url)
    try:
        with fewer_collections():
            for school in chunk:
                if school.school_code in finished:
                    continue
                try:
                    outcome = ingest_school(
                        settings, school.school_code, school.files, school.folder, database
                    )
                except Exception as error:
                    if _database_error(error):
                        raise
                    # The traceback is for developers; the message may quote cell values.
                    log.error(
                        "the ingest of school %s failed (%s):\n%s",
                        school.school_code,
                        type(error).__name__,
                        "".join(traceback.format_tb(error.__traceback__)),
                    )
                    failed.append((school.school_code, error))
                    continue
                finished[school.school_code] = outcome
                say(_outcome_line(outcome))
            reported = [s.school_code for s in chunk if s.school_code in finished]
            if reports_at is not None:
                news = [c for c in reported if finished[c].new_submissions]
                write_reports(settings, news, reports_at, database)
    finally:
        database.dispose()
    if failed:
        raise failed[0][1]
    return [finished[code] for code in reported]


@contextmanager
def fewer_collections() -> Iterator[None]:
    """The cyclic garbage collector kept out of the way of a chunk: the objects alive before it
    (modules, Prefect's and the readers' memos) are left out of its full passes, which would
    walk them all again every few hundred files, and it runs after every 50,000 new objects
    rather than 700 (a NotesCC workbook's cells alone are ~2,000). Reference counting still
    frees nearly everything at once; the settings are restored after the chunk."""
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(50_000, *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


def _database_error(error: Exception) -> bool:
    from sqlalchemy.exc import OperationalError

    return isinstance(error, OperationalError)


def _outcome_line(outcome: SchoolOutcome) -> str:
    """One line per school for the task run's log: counts only."""
    return (
        f"school {outcome.school_code}: {len(outcome.new_submissions)} new file(s) of "
        f"{outcome.files_seen}; {outcome.accepted} accepted, {outcome.partially_accepted} "
        f"partially accepted, {outcome.rejected} rejected; {outcome.rows_accepted} rows "
        f"accepted, {outcome.rows_quarantined} quarantined; {outcome.errors} errors, "
        f"{outcome.queries} queries"
    )


# A retry of a chunk runs in the same worker process, under the same task run id: the schools
# its earlier attempts finished are kept here, so their outcomes are not lost.
_FINISHED: dict[str, dict[str, SchoolOutcome]] = {}


def _ingest_chunk(
    settings: Settings,
    chunk: list[SchoolFolder],
    label: str,
    reports_at: datetime | None = None,
) -> list[SchoolOutcome]:
    from prefect import get_run_logger
    from prefect.runtime import task_run

    key = str(task_run.id or "")
    finished = _FINISHED.setdefault(key, {})
    logger: Any = get_run_logger()
    try:
        outcomes = ingest_schools(settings, chunk, reports_at, finished, logger.info)
    except Exception as error:
        if not _database_error(error):  # not retried: nothing to keep
            _FINISHED.pop(key, None)
        raise
    _FINISHED.pop(key, None)
    return outcomes


# A database restart during a chunk: tried again after 5, 15 and 30 s (schools done are kept).
ingest_chunk_task = task(
    name="ingest_schools",
    cache_policy=NO_CACHE,
    task_run_name="ingest-{label}",
    retries=3,
    retry_delay_seconds=[5, 15, 30],
    retry_condition_fn=database_away,
)(_ingest_chunk)

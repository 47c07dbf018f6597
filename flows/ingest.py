"""Flow ``ingest_submissions``: the inbox → archive → staging | quarantine → school reports."""

from __future__ import annotations

from concurrent.futures.process import BrokenProcessPool
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any, cast
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.futures import PrefectFuture, as_completed
from prefect.utilities.annotations import quote

# The coverage step after the schools reads the published tables' fingerprints
# (tasks/output_fingerprints.py: deltalake, pyarrow's dataset and compute modules, ~0.8 s to
# import). tasks/coverage.py imports it only when called, since the workers import that module
# too and never call it; imported here, with the flow, it is not paid for at the ingest's end
# (the 'massar' commands import the flow while their API starts).
import tasks.output_fingerprints  # noqa: F401
from flows.recorded import recorded
from flows.runners import (
    in_flow_process,
    ingest_stranded,
    let_workers_go,
    school_task_runner,
    submit_chunk,
    worker_count,
)
from ground.settings import Settings, flow_settings
from tasks.coverage import coverage_after_ingest_task
from tasks.disk_space import disk_guarded, ingest_folders
from tasks.ingest import (
    check_province_task,
    discover_inbox_task,
    fetch_sftp_inbox_task,
    publish_ingest_summary,
    record_run_finish,
    record_run_start,
    split_known_task,
    stray_entries,
    stray_sentence,
    write_reports_task,
)
from tasks.ingest_chunks import SchoolFolder, chunk_label, ingest_chunk_task, school_chunks
from tasks.leases import claim_schools, leased, wait_for_province_check


# Schools run where the settings say (flows/runners.py): worker processes or Dask.
@flow(name="ingest_submissions", log_prints=False)
@recorded
@disk_guarded("The ingest", ingest_folders)  # a full disk: a sentence
@leased(None)  # school folders another run ingests are left to it (tasks/leases.py)
def ingest_submissions(
    settings: Settings | None = None, inbox: Path | None = None, home: str | None = None
) -> dict:
    """Ingest every new file of the inbox, one task per chunk of schools (each school's
    feedback report written with it), then check the province and write again the reports its
    findings concern. Returns the counts per school.

    Deployments pass no settings: they are read from ``home`` or ``MASSAR_HOME``."""
    settings = flow_settings(settings, home)  # secrets: from the home, not Prefect
    logger = get_run_logger()
    run_id = record_run_start(settings, "ingest_submissions")
    if settings.inbox_sftp.host and inbox is None:
        fetch_sftp_inbox_task(settings)
    schools, strangers = discover_inbox_task(inbox or settings.inbox)
    if strangers:  # also in the summary artifact and in massar status
        logger.warning(stray_sentence(stray_entries(inbox or settings.inbox), inbox or "inbox"))
    progress = cast(  # a flow run's call, not awaited: the artifact's id
        UUID,
        create_progress_artifact(
            progress=0.0, key="ingest-progress", description="Schools of this ingest run processed"
        ),
    )
    root = inbox or settings.inbox
    # nothing new: no worker for them; quote: the inbox's 31 k paths not walked by Prefect
    # for futures (~0.5 s of an unchanged night's CPU)
    schools, unchanged = split_known_task(settings, cast(Any, quote(schools)))
    schools, left = claim_schools(settings, schools)
    outcomes = list(unchanged)
    stranded: list[SchoolFolder] = []  # schools of chunks whose worker process died
    reports_at = datetime.now(settings.zone)
    files = sum(len(paths) for paths in schools.values())
    with ExitStack() as workers:  # started or not, they wind down while the province is checked
        if schools and in_flow_process(settings, files):  # a small night: no worker started
            chunks = school_chunks(schools, root, 1)
            for done, chunk in enumerate(chunks, start=1):
                outcomes.extend(ingest_chunk_task(settings, chunk, chunk_label(chunk), reports_at))
                update_progress_artifact(progress, 100.0 * done / len(chunks))
        elif schools:  # a task per chunk of schools; each writes its schools' reports
            runner = workers.enter_context(school_task_runner(settings))
            futures: dict[PrefectFuture[Any], list[SchoolFolder]] = {
                submit_chunk(runner, settings, chunk, reports_at): chunk
                for chunk in school_chunks(schools, root, worker_count(settings))
            }
            for done, future in enumerate(as_completed(list(futures)), start=1):
                try:
                    outcomes.extend(future.result())
                except BrokenProcessPool:  # a worker died: every chunk not done is stranded
                    stranded.extend(futures[future])
                update_progress_artifact(progress, 100.0 * done / len(futures))
            if not stranded:
                let_workers_go(runner)
        if stranded:
            outcomes.extend(ingest_stranded(settings, stranded, reports_at))
        update_progress_artifact(progress, 100.0)
        province_left = wait_for_province_check(settings)
        changed = set() if province_left else check_province_task(settings)
        # the province's findings; and a stranded chunk's schools, whose reports its worker
        # did not write
        changed |= {school.school_code for school in stranded}
        write_reports_task(settings, sorted(changed), reports_at)
        # quote: each school's new submission ids (31 k for a province) not walked twice by
        # Prefect for futures at the run's end (~0.25 s of CPU)
        summary = publish_ingest_summary(cast(Any, quote(outcomes)), strangers, root)
        if left or province_left:  # the run completes, saying what it left to another one
            summary["note"] = " ".join(s for s in (left, province_left) if s)
        summary["coverage"] = coverage_after_ingest_task(settings)  # snapshot, page, artifact
    record_run_finish(settings, run_id, summary)
    return summary

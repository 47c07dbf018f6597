"""Housekeeping's plain functions against real components: flow runs really old (states with
timestamps in the past) on the session's Prefect server, real log files rotated while a writer
keeps appending, the archive of an ingested province measured, the disk alert e-mailed over a
real SMTP server on 127.0.0.1."""

from __future__ import annotations

import gzip
import shutil
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from ground.settings import HousekeepingSettings, Settings
from tasks.housekeeping import (
    ROTATION_STATE,
    delete_old_flow_runs,
    disk_low_alerts,
    housekeeping_markdown,
    measure_archive,
    rotate_logs,
)

NOW = datetime.now(UTC)


# ---- Prefect's run history ----------------------------------------------------------------------


def _flow(name: str):
    from prefect import flow

    @flow(name=name)
    def placeholder() -> None:  # only its name is used: runs are made through the API
        return None

    return placeholder


def _run(client, flow, states, parent_task_run_id=None):
    """A flow run driven through ``states`` through the API (forced)."""
    run = client.create_flow_run(
        flow, name=f"hk-{uuid.uuid4().hex[:8]}", parent_task_run_id=parent_task_run_id
    )
    for state in states:
        client.set_flow_run_state(run.id, state, force=True)
    return run.id


def _ended(final="completed"):
    from prefect.states import Cancelled, Completed, Crashed, Failed, Running

    final_state = {"completed": Completed, "failed": Failed, "crashed": Crashed}.get(
        final, Cancelled
    )
    return [Running(), final_state()]


def _make_old(ages: dict) -> None:
    """Move runs back in time in the test server's own database: Prefect's API stamps every
    state with the server's clock (a state's timestamp is not part of what a client sends), so
    a run of 500 days ago can only be made by dating its rows. ``ages``: run id → days."""
    import asyncio

    import sqlalchemy as sa
    from prefect.server.database import provide_database_interface

    async def update() -> None:
        db = provide_database_interface()
        async with db.session_context(begin_transaction=True) as session:
            for run_id, days in ages.items():
                run = await session.get(db.FlowRun, run_id)
                shift = run.state_timestamp - (NOW - timedelta(days=days))
                values = {
                    column: getattr(run, column) - shift
                    for column in ("start_time", "end_time", "expected_start_time", "created")
                    if getattr(run, column) is not None
                }
                values["state_timestamp"] = run.state_timestamp - shift
                await session.execute(
                    sa.update(db.FlowRun).where(db.FlowRun.id == run_id).values(**values)
                )
                states = (
                    await session.execute(
                        sa.select(db.FlowRunState).where(db.FlowRunState.flow_run_id == run_id)
                    )
                ).scalars()
                for state in states:  # all moved by the same shift: their order is kept
                    state.timestamp = state.timestamp - shift

    for attempt in range(10):  # the server writes to the same SQLite file now and then
        try:
            asyncio.run(update())
            return
        except sa.exc.OperationalError:
            if attempt == 9:
                raise


def _exists(client, run_id) -> bool:
    from prefect.exceptions import ObjectNotFound

    try:
        client.read_flow_run(run_id)
    except ObjectNotFound:
        return False
    return True


@pytest.fixture
def history(prefect_server):
    """Runs of a flow of their own on the test server: old ones (500 days) in every final
    state, recent ones (10 and 399 days), old ones still paused (an approval), running,
    scheduled or pending; an old parent with a sub-flow run, logs and artifacts."""
    from prefect import task
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import ArtifactCreate, LogCreate
    from prefect.states import Completed, Paused, Pending, Running, Scheduled

    name = f"hk_test_{uuid.uuid4().hex[:8]}"
    flow = _flow(name)

    @task(name="hk_subflow_placeholder")
    def placeholder() -> None:
        return None

    ids: dict[str, object] = {}
    with get_client(sync_client=True) as client:
        for final in ("completed", "failed", "crashed", "cancelled"):
            ids[f"old_{final}"] = _run(client, flow, _ended(final))
        ids["recent"] = _run(client, flow, _ended())
        ids["just_inside"] = _run(client, flow, _ended())
        ids["old_paused"] = _run(client, flow, [Running(), Paused(timeout_seconds=86400 * 1000)])
        ids["old_running"] = _run(client, flow, [Running()])
        ids["old_scheduled"] = _run(client, flow, [Scheduled(scheduled_time=NOW)])
        ids["old_pending"] = _run(client, flow, [Pending()])
        ids["old_parent"] = _run(client, flow, [Running()])
        task_run = client.create_task_run(
            placeholder, flow_run_id=ids["old_parent"], dynamic_key="0"
        )
        ids["old_child"] = _run(client, flow, _ended(), parent_task_run_id=task_run.id)
        client.set_flow_run_state(ids["old_parent"], Completed(), force=True)
        client.create_logs(
            [
                LogCreate(
                    name="hk",
                    level=20,
                    message=f"line {number}",
                    timestamp=NOW,
                    flow_run_id=ids[key],
                )
                for key in ("old_parent", "old_child", "recent")
                for number in range(3)
            ]
        )
        for key in ("old_parent", "old_child", "recent"):
            client.create_artifact(
                ArtifactCreate(
                    key=f"hk-{key.replace('_', '-')}-{uuid.uuid4().hex[:6]}",
                    type="markdown",
                    data="| a | b |\n|---|---|\n| 1 | 2 |\n",
                    flow_run_id=ids[key],
                )
            )
        ages = {run_id: 500 for key, run_id in ids.items() if key.startswith("old_")}
        _make_old({**ages, ids["recent"]: 10, ids["just_inside"]: 399})
        runs = {key: client.read_flow_run(run_id) for key, run_id in ids.items()}
    return name, runs


def test_history_fixture_is_really_old(history):
    _, runs = history
    assert runs["old_completed"].end_time < NOW - timedelta(days=499)
    assert runs["old_parent"].end_time < NOW - timedelta(days=499)
    assert runs["old_paused"].state.is_paused()
    assert runs["old_child"].parent_task_run_id is not None


def test_old_final_runs_go_and_everything_else_stays(history, massar_home):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        LogFilter,
        LogFilterFlowRunId,
    )

    name, runs = history
    result = delete_old_flow_runs(massar_home, NOW)
    gone = {"old_completed", "old_failed", "old_crashed", "old_cancelled", "old_parent"}
    kept = {
        "recent",
        "just_inside",
        "old_paused",
        "old_running",
        "old_scheduled",
        "old_pending",
    }
    assert result["deleted_by_flow"][name] == len(gone)
    assert result["subflow_runs_deleted"] >= 1
    assert result["artifacts_deleted"] >= 2
    with get_client(sync_client=True) as client:
        for key in gone | {"old_child"}:
            assert not _exists(client, runs[key].id), key
        for key in kept:
            assert _exists(client, runs[key].id), key
            assert client.read_flow_run(runs[key].id).state.type == runs[key].state.type
        old_ids = [runs[key].id for key in ("old_parent", "old_child")]
        assert not client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=old_ids))
        )
        recent = [runs["recent"].id]
        assert client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=recent))
        )
        assert (
            len(client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=recent))))
            == 3
        )
        # The server deletes a deleted run's logs in a background task: poll until they are
        # gone, with a deadline (not a timing assertion: only whether it happens).
        old_logs = LogFilter(flow_run_id=LogFilterFlowRunId(any_=old_ids))
        deadline = time.monotonic() + 60
        while (left := client.read_logs(log_filter=old_logs)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not left, "the server left a deleted run's logs for 60 s"
    # A second pass has nothing left to do.
    again = delete_old_flow_runs(massar_home, NOW)
    assert name not in again["deleted_by_flow"]


def test_a_flow_with_its_own_retention(history, massar_home):
    from prefect.client.orchestration import get_client

    name, runs = history
    settings = massar_home.model_copy(
        update={
            "housekeeping": HousekeepingSettings(
                flow_run_retention_days=1000, flow_run_retention_by_flow={name: 5}
            )
        }
    )
    result = delete_old_flow_runs(settings, NOW)
    # 5 days: the runs of 10 and 399 days go too; paused, running, scheduled stay.
    assert result["deleted_by_flow"][name] == 7
    with get_client(sync_client=True) as client:
        assert not _exists(client, runs["recent"].id)
        assert not _exists(client, runs["just_inside"].id)
        for key in ("old_paused", "old_running", "old_scheduled", "old_pending"):
            assert _exists(client, runs[key].id), key


def test_a_longer_default_keeps_the_old_runs(history, massar_home):
    from prefect.client.orchestration import get_client

    name, runs = history
    settings = massar_home.model_copy(
        update={"housekeeping": HousekeepingSettings(flow_run_retention_days=600)}
    )
    result = delete_old_flow_runs(settings, NOW)
    assert name not in result["deleted_by_flow"]
    with get_client(sync_client=True) as client:
        assert _exists(client, runs["old_completed"].id)


# ---- log rotation -------------------------------------------------------------------------------


def _settings_with_logs(settings: Settings, folder, **values) -> Settings:
    return settings.model_copy(
        update={"housekeeping": HousekeepingSettings(log_folders=[folder], **values)}
    )


def test_a_large_log_is_rotated_while_its_writer_keeps_its_handle(massar_home, tmp_path):
    stack_logs = tmp_path / "stack" / "logs"
    stack_logs.mkdir(parents=True)
    log = stack_logs / "prefect-server.log"
    writer = log.open("a", encoding="utf-8")  # a long-running process's append handle
    first = "".join(f"line {n} of the first generation\n" for n in range(40_000))
    writer.write(first)
    writer.flush()
    small = stack_logs / "worker.log"
    small.write_text("a few lines\n", encoding="utf-8")
    settings = _settings_with_logs(massar_home, stack_logs, log_max_megabytes=1)

    rows = rotate_logs(settings, NOW)

    rotated = [row for row in rows if row["file"]]
    assert [(r["file"], r["reason"]) for r in rotated] == [("prefect-server.log", "size")]
    assert gzip.decompress((stack_logs / "prefect-server.log.1.gz").read_bytes()).decode() == first
    assert log.stat().st_size == 0
    assert small.read_text(encoding="utf-8") == "a few lines\n"  # under the size, not old
    writer.write("after the rotation\n")
    writer.flush()
    writer.close()
    # Append mode: the writer continues at the start of the truncated file, no hole.
    assert log.read_text(encoding="utf-8") == "after the rotation\n"
    assert not list(stack_logs.glob(".*.tmp"))


def test_generations_are_shifted_and_the_oldest_dropped(massar_home, tmp_path):
    folder = tmp_path / "logs"
    folder.mkdir()
    log = folder / "postgres.log"
    settings = _settings_with_logs(
        massar_home, folder, log_max_megabytes=0.000001, log_generations=3
    )
    for number in range(5):
        log.write_text(f"generation {number}\n", encoding="utf-8")
        rotate_logs(settings, NOW + timedelta(minutes=number))
    kept = {
        path.name: gzip.decompress(path.read_bytes()).decode()
        for path in sorted(folder.glob("postgres.log.*.gz"))
    }
    assert kept == {
        "postgres.log.1.gz": "generation 4\n",
        "postgres.log.2.gz": "generation 3\n",
        "postgres.log.3.gz": "generation 2\n",
    }


def test_a_log_is_rotated_by_age_once_its_period_has_passed(massar_home):
    log = massar_home.logs / "massar-errors.log"
    log.write_text("--- a traceback\n", encoding="utf-8")
    settings = massar_home.model_copy(
        update={"housekeeping": HousekeepingSettings(log_max_age_days=7)}
    )
    assert not [r for r in rotate_logs(settings, NOW) if r["file"]]  # first seen: age starts
    assert (massar_home.logs / ROTATION_STATE).is_file()
    assert not [r for r in rotate_logs(settings, NOW + timedelta(days=6)) if r["file"]]
    rows = [r for r in rotate_logs(settings, NOW + timedelta(days=7, minutes=1)) if r["file"]]
    assert [(r["file"], r["reason"]) for r in rows] == [("massar-errors.log", "age")]
    assert gzip.decompress((massar_home.logs / "massar-errors.log.1.gz").read_bytes()) == (
        b"--- a traceback\n"
    )
    # An empty log is not rotated by age.
    assert not [r for r in rotate_logs(settings, NOW + timedelta(days=30)) if r["file"]]


def test_a_missing_log_folder_is_reported_not_created(massar_home, tmp_path):
    missing = tmp_path / "no-stack" / "logs"
    rows = rotate_logs(_settings_with_logs(massar_home, missing), NOW)
    assert {"folder": str(missing.resolve()), "file": "", "reason": "missing", "bytes": 0} in rows
    assert not missing.exists()


# ---- archive growth and free disk ---------------------------------------------------------------


@pytest.fixture(scope="module")
def ingested_home(tmp_path_factory, province, prefect_server):
    """A home with two schools ingested (once for this module; the tests only read it)."""
    from flows.ingest import ingest_submissions
    from massar.home import init_home

    massar_home = init_home(tmp_path_factory.mktemp("housekeeping") / "home")
    schools = sorted(p for p in province.iterdir() if p.is_dir() and p.name[:5].isdigit())[:2]
    for school in schools:
        shutil.copytree(school, massar_home.inbox / school.name)
    ingest_submissions(massar_home)
    return massar_home


def test_the_archive_is_measured_per_school_year_and_month(ingested_home):
    from warehouse.control import ControlDatabase, Submission

    database = ControlDatabase(ingested_home.resolved_database_url)
    with database.session() as session:
        submissions = session.query(Submission).all()
    database.dispose()
    originals = {s.sha256: s.size_bytes for s in submissions}
    files_on_disk = [p for p in ingested_home.archive.rglob("*") if p.is_file()]
    before = {p: p.stat().st_mtime_ns for p in files_on_disk}

    report = measure_archive(ingested_home, NOW)

    assert report.files_on_disk == len(files_on_disk) == len(originals)
    assert report.bytes_on_disk == sum(originals.values())
    assert sum(files for files, _ in report.by_school_year.values()) == len(originals)
    assert "2023/2024" in report.by_school_year
    this_month = f"{NOW.astimezone(ingested_home.zone):%Y-%m}"
    assert report.by_month == {this_month: (len(originals), sum(originals.values()))}
    assert report.bytes_per_month == 0 and report.months_left is None  # nothing before
    assert 0 < report.disk_free_bytes <= report.disk_total_bytes
    # Measuring changes nothing in the archive.
    assert {p: p.stat().st_mtime_ns for p in files_on_disk} == before


def test_growth_of_the_last_three_months_gives_months_left(ingested_home):
    later = NOW + timedelta(days=62)  # the ingest's month is now complete and in the window
    report = measure_archive(ingested_home, later)
    assert report.bytes_per_month == report.bytes_on_disk // 3
    assert report.months_left == round(report.disk_free_bytes / report.bytes_per_month, 1)


def test_low_disk_raises_one_alert_a_day_without_pupil_data(ingested_home):
    report = measure_archive(ingested_home, NOW)
    enough = ingested_home.model_copy(
        update={"housekeeping": HousekeepingSettings(min_free_disk_gb=0)}
    )
    assert disk_low_alerts(enough, report, NOW) == []
    tight = ingested_home.model_copy(
        update={"housekeeping": HousekeepingSettings(min_free_disk_gb=report.free_gb + 1000)}
    )
    alerts = disk_low_alerts(tight, report, NOW)
    assert len(alerts) == 1
    day = f"{NOW.astimezone(ingested_home.zone):%Y-%m-%d}"
    assert alerts[0].key == f"disk-low:{day}" and alerts[0].kind == "disk_low"
    assert "jamais supprimés" in alerts[0].text_fr


def test_the_report_names_no_pupil(ingested_home, history):
    from warehouse.control import ControlDatabase, Submission

    report = measure_archive(ingested_home, NOW)
    runs = delete_old_flow_runs(ingested_home, NOW)
    markdown = housekeeping_markdown(runs, [], report, "", [])
    assert "| archive | school year 2023/2024 |" in markdown
    assert f"| Prefect runs | deleted, flow {history[0]} | 5 |" in markdown
    database = ControlDatabase(ingested_home.resolved_database_url)
    with database.session() as session:
        names = [s.file_name for s in session.query(Submission).all()]
        schools = {s.school_code for s in session.query(Submission).all()}
    database.dispose()
    for text in [*names, *schools]:
        assert text not in markdown

"""End to end: the ingest flow runs under Prefect on a generated province."""

from __future__ import annotations

import asyncio
import hashlib
import re
import shutil
import threading

import polars as pl
import pytest
from prefect.utilities.annotations import quote
from python_calamine import CalamineWorkbook

import flows.ingest
import flows.runners
from flows.ingest import ingest_submissions
from massar.demo import stage_inbox
from massar.home import init_home
from tests.harness.prefect_runs import wait_until
from warehouse.control import ControlDatabase
from warehouse.query import run_query

STUDENT_CODE = re.compile(r"[A-Z]\d{9}")


def _ingest(settings):
    state = ingest_submissions(settings, return_state=True)
    assert state.is_completed(), state.message
    return state.result(), state.state_details.flow_run_id


def _query(settings, sql):
    database = ControlDatabase(settings.resolved_database_url)
    try:
        return run_query(sql, warehouse=settings.warehouse, database=database).to_pylist()
    finally:
        database.dispose()


@pytest.fixture(scope="module")
def clean_run(prefect_server, province, tmp_path_factory):
    settings = init_home(tmp_path_factory.mktemp("clean-home") / "home")
    stage_inbox(province, settings.inbox)
    summary, flow_run_id = _ingest(settings)
    return settings, summary, flow_run_id


def test_clean_province_is_accepted_without_any_finding(clean_run):
    settings, summary, _ = clean_run
    totals = summary["totals"]
    assert totals["new_submissions"] == totals["files_seen"] > 0
    assert totals["rejected"] == 0 and totals["partially_accepted"] == 0
    findings = _query(settings, "select rule_id, count(*) as n from findings group by rule_id")
    assert findings == []
    states = _query(settings, "select distinct state from submissions")
    assert states == [{"state": "accepted"}]


def test_every_row_ends_staged_or_quarantined_and_counts_add_up(clean_run):
    settings, summary, _ = clean_run
    rows = _query(
        settings,
        "select submission_id, school_code, dataset, rows_read, "
        "rows_accepted, rows_quarantined from submissions",
    )
    staged = pl.concat(
        [
            pl.read_parquet(path, columns=["submission_id"])
            for path in settings.staging.glob("*/*/*.parquet")
        ]
    )
    per_submission = dict(staged.group_by("submission_id").len().iter_rows())
    for row in rows:
        assert row["rows_read"] == row["rows_accepted"] + row["rows_quarantined"]
        assert per_submission.get(row["submission_id"], 0) == row["rows_accepted"]
    assert staged.height == sum(r["rows_accepted"] for r in rows)
    assert sum(r["rows_read"] for r in rows) == summary["totals"]["rows_read"] > 1000


def test_every_original_is_archived_unchanged(clean_run):
    settings, _, _ = clean_run
    for path in settings.inbox.rglob("*"):
        if path.is_file():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            archived = settings.archive / digest[:2] / digest
            assert archived.read_bytes() == path.read_bytes()


def test_each_school_gets_its_reports(clean_run):
    settings, summary, _ = clean_run
    for school in summary["schools"]:
        code = school["school_code"]
        workbook = CalamineWorkbook.from_path(str(settings.reports / code / f"rapport_{code}.xlsx"))
        assert workbook.sheet_names == ["ملخص - Résumé", "الملاحظات - Constats"]
        summary_rows = workbook.get_sheet_by_index(0).to_python()
        assert len(summary_rows) - 3 == school["new_submissions"]
        from openpyxl import load_workbook

        book = load_workbook(settings.reports / code / f"rapport_{code}.xlsx")
        assert all(sheet.sheet_view.rightToLeft for sheet in book.worksheets)
        page = (settings.reports / code / f"rapport_{code}.html").read_text(encoding="utf-8")
        assert 'dir="rtl"' in page and code in page


def test_artifacts_show_counts_per_school_and_no_pupil_data(clean_run):
    _, summary, flow_run_id = clean_run
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async def artifacts():
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
                )
            )

    found = {a.key: a for a in asyncio.run(artifacts())}
    assert {"ingest-by-school", "ingest-progress"} <= set(found)
    table = found["ingest-by-school"]
    text = str(table.data) + str(table.description)
    for school in summary["schools"]:
        assert school["school_code"] in text
    assert not STUDENT_CODE.search(text)
    assert found["ingest-progress"].data == 100.0


def test_rerun_of_an_unchanged_inbox_changes_nothing(clean_run):
    settings, first, _ = clean_run
    before = _query(settings, "select submission_id, state from submissions order by 1")
    summary, _ = _ingest(settings)
    assert summary["totals"]["new_submissions"] == 0
    assert summary["totals"]["already_known"] == first["totals"]["files_seen"]
    assert _query(settings, "select submission_id, state from submissions order by 1") == before


def test_a_changed_file_supersedes_the_earlier_version(clean_run, monkeypatch):
    settings, _, _ = clean_run

    def no_workers(_settings):
        raise AssertionError("a night of one new file is ingested without starting workers")

    monkeypatch.setattr("flows.ingest.school_task_runner", no_workers)
    guardians = sorted(settings.inbox.glob("*/guardians.csv"))[0]
    school = guardians.parent.name
    lines = guardians.read_bytes().splitlines(keepends=True)
    guardians.write_bytes(b"".join(lines[:-1]))  # the school removed its last line
    summary, _ = _ingest(settings)
    assert summary["totals"]["new_submissions"] == 1
    versions = _query(
        settings,
        "select submission_id, state, rows_read from submissions "
        f"where school_code = '{school}' and file_name = "
        "'guardians.csv' order by submission_id",
    )
    assert [v["state"] for v in versions] == ["superseded", "accepted"]
    assert versions[1]["rows_read"] == versions[0]["rows_read"] - 1


def test_only_a_small_night_on_the_default_runner_stays_in_the_flows_process():
    from flows.runners import in_flow_process
    from ground.settings import Settings

    assert Settings().small_night_files == 1000
    assert in_flow_process(Settings(), 1)
    assert in_flow_process(Settings(), 999)
    assert not in_flow_process(Settings(), 1000)  # a province's first night
    assert not in_flow_process(Settings(task_runner="dask"), 1)  # the cluster asked for
    assert not in_flow_process(Settings(small_night_files=0), 1)  # the workers, always


def test_the_outcomes_reach_the_summary_quoted_and_every_school_is_counted(
    prefect_server, province, tmp_path, monkeypatch
):
    """Each school's outcome carries its new submission ids (31 k for a province): unquoted,
    Prefect visits each of them twice before publish_ingest_summary starts (~0.25 s of the run's
    serial end), so the flow hands them over quoted and the summary still counts them all."""
    settings = init_home(tmp_path / "home")
    schools = sorted(p for p in province.iterdir() if p.is_dir() and p.name[:5].isdigit())[:2]
    for school in schools:
        shutil.copytree(school, settings.inbox / school.name)
    handed: list[object] = []
    publish = flows.ingest.publish_ingest_summary

    def recording(*args, **kwargs):  # type: ignore[no-untyped-def]
        handed.append(args[0])
        return publish(*args, **kwargs)

    monkeypatch.setattr(flows.ingest, "publish_ingest_summary", recording)
    summary, _ = _ingest(settings)

    assert len(handed) == 1 and isinstance(handed[0], quote)
    outcomes = handed[0].unquote()
    assert sorted(o.school_code for o in outcomes) == [s.name for s in schools]
    ids = sorted(sid for o in outcomes for sid in o.new_submissions)
    assert ids == [
        r["submission_id"]
        for r in _query(settings, "select submission_id from submissions order by 1")
    ]
    assert summary["totals"]["new_submissions"] == len(ids) == summary["totals"]["files_seen"]


def test_a_worker_that_dies_stops_no_school(
    prefect_server, province, tmp_path, caplog, monkeypatch
):
    """A worker process killed mid-run (as the kernel kills one short of memory, or a library's
    native code aborts on a file: no Python exception to catch) broke the whole process pool,
    and the ingest failed for every school. Now the schools of the chunks not reported are
    ingested again one at a time in a fresh pool: the run completes, every file becomes a
    submission once, every school has its report, and the files the dead worker had recorded
    count as this run's new submissions (not as files known from before)."""
    import psutil

    from tasks.ingest import discover_inbox
    from tasks.ingest_chunks import school_chunks

    # two schools a chunk: a chunk can be left with a school done and another not begun
    monkeypatch.setattr("tasks.ingest_chunks.CHUNKS_PER_WORKER", 1)
    settings = init_home(tmp_path / "home").model_copy(update={"small_night_files": 0})
    stage_inbox(province, settings.inbox)
    files = sum(1 for p in settings.inbox.rglob("*") if p.is_file())
    chunks = school_chunks(discover_inbox(settings.inbox)[0], settings.inbox, 2)
    assert max(len(chunk) for chunk in chunks) >= 2
    killed: list[int] = []

    def a_worker_with_schools_under_way() -> psutil.Process | None:
        # a chunk with a school recorded and one not begun: its worker's death strands a
        # school whose files this run did, and which read as already known the second time
        states = {
            (row["school_code"], row["state"])
            for row in _query(settings, "select distinct school_code, state from submissions")
        }
        begun = {code for code, _ in states}
        recorded = {code for code, state in states if state != "received"}
        servers = [
            child
            for child in psutil.Process().children(recursive=True)
            if "forkserver" in " ".join(child.cmdline())
        ]
        workers = [w for server in servers for w in server.children()]
        halfway = any(
            {s.school_code for s in chunk} & recorded and {s.school_code for s in chunk} - begun
            for chunk in chunks
        )
        return workers[0] if halfway and workers else None

    def kill_a_worker_once_schools_are_under_way() -> None:
        worker = wait_until(
            a_worker_with_schools_under_way, "a worker under way", timeout=180, interval=0.05
        )
        worker.kill()
        killed.append(worker.pid)

    watcher = threading.Thread(target=kill_a_worker_once_schools_are_under_way)
    watcher.start()
    summary, _ = _ingest(settings)
    watcher.join()

    assert killed, "no worker was under way to kill: the test tested nothing"
    assert "A worker process of this ingest died" in caplog.text, "killed after the last chunk"
    totals = summary["totals"]
    assert totals["unreadable"] == 0  # killed once: its schools went through the second time
    assert totals["files_seen"] == files
    # what the dead worker had recorded is this run's work, not files known from before
    assert (totals["already_known"], totals["new_submissions"]) == (0, files)
    recorded = _query(
        settings,
        "select count(*) as n, sum(rows_read) as r, sum(rows_accepted) as a,"
        " sum(rows_quarantined) as q, sum(case when state = 'rejected' then 1 else 0 end) as x"
        " from submissions",
    )[0]
    assert totals["accepted"] + totals["partially_accepted"] + totals["rejected"] == files
    assert totals["rejected"] == recorded["x"]
    assert (totals["rows_read"], totals["rows_accepted"], totals["rows_quarantined"]) == (
        recorded["r"],
        recorded["a"],
        recorded["q"],
    )
    rows = _query(settings, "select count(*) as n, count(distinct sha256) as d from submissions")
    assert rows == [{"n": files, "d": files}]
    schools = sorted(p.name for p in settings.inbox.iterdir())
    assert sorted(o["school_code"] for o in summary["schools"]) == schools
    assert all(any((settings.reports / code).glob("*.xlsx")) for code in schools)


def _stand_in_pools(monkeypatch, dying: set[str]) -> list[list[str]]:  # type: ignore[no-untyped-def]
    """Fresh pools for the stranded schools whose worker dies for every school in ``dying``
    (BrokenProcessPool, as a killed worker gives), each school's outcome otherwise; returns
    the schools each pool was given, pool by pool (filled as the flow runs)."""
    from concurrent.futures.process import BrokenProcessPool
    from contextlib import contextmanager

    from tasks.ingest import SchoolOutcome

    pools: list[list[str]] = []

    class Pool:
        def submit(self, _task, parameters):  # type: ignore[no-untyped-def]
            (school,) = parameters["chunk"]
            pools[-1].append(school.school_code)

            class Future:
                def result(self):  # type: ignore[no-untyped-def]
                    if school.school_code in dying:
                        raise BrokenProcessPool("A process in the process pool was terminated")
                    return [SchoolOutcome(school.school_code, files_seen=len(school.files))]

            return Future()

    @contextmanager
    def fresh_pool(_settings):  # type: ignore[no-untyped-def]
        pools.append([])
        yield Pool()

    monkeypatch.setattr(flows.runners, "school_task_runner", fresh_pool)
    return pools


def _stranded_night(home, schools):  # type: ignore[no-untyped-def]
    """The stranded schools ingested again under a flow run, as the ingest flow does."""
    from prefect import flow

    @flow
    def stranded_night():  # type: ignore[no-untyped-def]
        return flows.runners.ingest_stranded(init_home(home), schools, None)

    return stranded_night()


def test_a_school_whose_own_worker_dies_is_counted_unreadable_and_the_next_goes_on(
    prefect_server, tmp_path, monkeypatch
):
    """Again one at a time, a school whose worker dies is the culprit: its files counted
    unreadable (the command then fails with a sentence), and the schools after it run in a
    fresh pool (the broken one takes no task). The pool is a stand-in here; the test above
    kills a real worker."""
    from tasks.ingest_chunks import SchoolFolder

    pools = _stand_in_pools(monkeypatch, {"22222B"})
    schools = [
        SchoolFolder(code, [tmp_path / f"{code}-{n}.xlsx" for n in range(3)], tmp_path)
        for code in ("11111A", "22222B", "33333C")
    ]

    outcomes = _stranded_night(tmp_path / "home", schools)
    assert pools == [["11111A", "22222B"], ["33333C"]]
    assert [(o.school_code, o.files_seen, o.unreadable) for o in outcomes] == [
        ("11111A", 3, 0),
        ("22222B", 3, 3),
        ("33333C", 3, 0),
    ]


def test_workers_that_die_school_after_school_are_given_up_with_one_sentence(
    prefect_server, tmp_path, monkeypatch, caplog
):
    """Workers that die whatever the school (a broken installation, no memory left) are not
    tried again for every school of the province: after three schools in a row lose their
    worker, the schools left are counted unreadable untried, with one sentence. A culprit
    school between schools that go through counts as one death, not three."""
    from tasks.ingest_chunks import SchoolFolder

    dying: set[str] = set()
    pools = _stand_in_pools(monkeypatch, dying)
    codes = [f"{n}{n}{n}{n}{n}{letter}" for n, letter in zip(range(1, 8), "ABCDEFG", strict=True)]
    schools = [
        SchoolFolder(code, [tmp_path / f"{code}-{n}.xlsx" for n in range(2)], tmp_path)
        for code in codes
    ]

    # 22222B, 44444D and 55555E die: never three in a row, each school is tried
    dying.update({"22222B", "44444D", "55555E"})
    outcomes = _stranded_night(tmp_path / "home", schools)
    assert pools == [["11111A", "22222B"], ["33333C", "44444D"], ["55555E"], ["66666F", "77777G"]]
    assert [o.unreadable for o in outcomes] == [0, 2, 0, 2, 2, 0, 0]

    # from 33333C on every worker dies: three tried, the last four given up untried
    pools.clear()
    dying.update(codes[2:])
    outcomes = _stranded_night(tmp_path / "home", schools)
    assert pools == [["11111A", "22222B"], ["33333C"], ["44444D"]]
    assert [(o.school_code, o.unreadable) for o in outcomes] == [
        (code, 0 if code == "11111A" else 2) for code in codes
    ]
    assert "died for 3 schools in a row" in caplog.text
    assert "The 3 school(s) left (6 file(s)) were not tried" in caplog.text


def test_the_flows_body_names_nothing_of_its_own_module():
    """The flow's function travels by value with each chunk task's context (cloudpickle: the
    module's attribute is the Flow, not the function), with the globals its body names; a
    function of flows/ingest.py named there made every worker import flows.ingest at its start
    (deltalake and pyarrow with it: ~0.5 s each, the ingest's head 1.4 -> 1.8 s)."""
    import inspect

    body = inspect.unwrap(flows.ingest.ingest_submissions.fn)
    own = {
        name
        for name, value in vars(flows.ingest).items()
        if inspect.isfunction(value) and value.__module__ == "flows.ingest"
    }
    assert set(body.__code__.co_names) & own == set()

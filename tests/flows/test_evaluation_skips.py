"""A night never fails because a school's dataset is missing or rejected: under Prefect, a night
where one school's student list is rejected, and a night without any marks, end Completed; the
evaluation computes what it can and says what it held back and why (log, artifact
``evaluation-skipped``, ``massar status``); marks held for want of a list are evaluated the night
the list arrives, without the school sending them again. Every figure of the artifact is checked
against DuckDB over the published warehouse."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest
from rich.console import Console

from flows.nightly import nightly
from massar.home import init_home
from massar.status import installation_status
from tasks.evaluable import SCHOOL_WITHOUT_MARKS
from warehouse.control import ControlDatabase
from warehouse.query import run_query

PUPIL_CODE = re.compile(r"\b[A-Z]\d{9}\b")


def _schools(province: Path) -> list[Path]:
    return sorted(p for p in province.iterdir() if p.is_dir() and p.name[:5].isdigit())


def _query(settings, sql: str) -> list[dict]:
    database = ControlDatabase(settings.resolved_database_url)
    try:
        return run_query(sql, warehouse=settings.warehouse, database=database).to_pylist()
    finally:
        database.dispose()


def _night(settings) -> tuple[dict, dict]:
    """Run the nightly; returns its result and, of its evaluate sub-flow, the artifact
    ``evaluation-skipped`` (key, description, data) and the log messages."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
        FlowRunFilter,
        FlowRunFilterParentFlowRunId,
        LogFilter,
        LogFilterFlowRunId,
    )

    state = nightly(settings, return_state=True)
    assert state.is_completed(), state.message
    with get_client(sync_client=True) as client:
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(
                    any_=[state.state_details.flow_run_id]
                )
            )
        )
        ids = [run.id for run in children]
        (artifact,) = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["evaluation-skipped"]),
                flow_run_id=ArtifactFilterFlowRunId(any_=ids),
            )
        )
        # Prefect ships log lines in the background: wait (with a deadline) until the evaluation's
        # "held back" lines have reached the server: one per part held back (schools merely
        # without marks yet share one line of their own).
        evaluation = state.result()["evaluation"]
        held = [x for x in evaluation["skipped"] if x["reason"] != SCHOOL_WITHOUT_MARKS]
        deadline = time.monotonic() + 60
        while True:
            logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids)))
            shipped = [x for x in logs if x.message.startswith("Evaluation held back:")]
            if len(shipped) >= len(held) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    data = artifact.data
    table = json.loads(data) if artifact.type == "table" else data
    seen = {"description": artifact.description, "table": table, "logs": [x.message for x in logs]}
    return state.result(), seen


def _status_text(settings) -> str:
    console = Console(record=True, width=400)
    for table in installation_status(settings):
        console.print(table)
    return console.export_text()


# ---- a rejected student list, then the list a night later ----------------------------------


@pytest.fixture(scope="module")
def rejected_list(prefect_server, province, tmp_path_factory):
    settings = init_home(tmp_path_factory.mktemp("skips-home") / "home")
    first, second = _schools(province)[:2]
    for school in (first, second):
        shutil.copytree(school, settings.inbox / school.name)
    (good,) = sorted((settings.inbox / first.name).glob("ListEleve_*"))
    kept = good.read_bytes()
    good.write_bytes(b"PK\x03\x04" + b"\x00" * 64)  # cut short: the file is rejected (F001)
    result, seen = _night(settings)
    return settings, first.name, second.name, good, kept, result, seen


def test_the_night_with_a_rejected_list_completes_and_evaluates_the_other_school(rejected_list):
    settings, school, other, _, _, result, seen = rejected_list
    assert result["ingest"]["rejected"] == 1
    rejected = _query(
        settings,
        f"select file_name from submissions where school_code = '{school}' and state = 'rejected'",
    )
    assert [row["file_name"][:10] for row in rejected] == ["ListEleve_"]
    evaluation = result["evaluation"]
    assert evaluation["years"] == ["2023/2024"]
    evaluated = _query(
        settings,
        "select count(distinct m.school_code || m.student_code) as pupils, "
        "count(distinct m.school_code) as schools from marks m join enrollments e "
        "on e.school_code = m.school_code and e.school_year = m.school_year "
        "and e.student_code = m.student_code where e.status = 'active'",
    )[0]
    assert evaluated["schools"] == 1
    assert evaluation["pupils"] == evaluated["pupils"] > 0
    assert seen["description"] == (
        f"Evaluation 2023/2024: {evaluated['pupils']} pupil(s) of 1 school(s) evaluated. "
        f"{len(seen['table'])} part(s) held back, with their reasons."
    )
    annual = _query(
        settings, "select school_code, count(*) as n from annual_results group by school_code"
    )
    assert annual == [{"school_code": other, "n": evaluated["pupils"]}]


def test_the_marks_without_a_list_are_kept_and_counted_in_the_artifact(rejected_list):
    settings, school, _, _, _, result, seen = rejected_list
    expected = {}
    for table in ("marks", "exam_marks"):
        (row,) = _query(
            settings,
            f"select count(*) as n, count(distinct student_code) as pupils from {table} "
            f"where school_code = '{school}'",
        )
        assert row["n"] > 0  # kept in the warehouse
        expected[table] = (row["n"], row["pupils"])
    rows = {row["dataset"]: row for row in seen["table"]}
    assert set(rows) == {"marks", "exam_marks"}
    for dataset, row in rows.items():
        assert (row["school"], row["school year"], row["level"]) == (school, "2023/2024", None)
        assert (row["marks held"], row["pupils"]) == expected[dataset]
        assert "no accepted student list" in row["why"]
    assert result["evaluation"]["skipped"] == [
        {
            "school_year": "2023/2024",
            "school_code": school,
            "level_code": None,
            "dataset": dataset,
            "reason": "no_list",
            "marks": expected[dataset][0],
            "pupils": expected[dataset][1],
            "detail": None,
            "why": rows[dataset]["why"],
        }
        for dataset in ("marks", "exam_marks")
    ]


def test_the_log_says_what_was_held_back_without_pupil_data(rejected_list):
    _, school, _, _, _, _, seen = rejected_list
    held = [line for line in seen["logs"] if line.startswith("Evaluation held back:")]
    assert len(held) == 2 and all(school in line for line in held)
    assert not any(PUPIL_CODE.search(line) for line in seen["logs"])


def test_massar_status_shows_what_the_last_evaluation_held_back(rejected_list):
    settings, school, _, _, _, result, seen = rejected_list
    text = _status_text(settings)
    assert "Last evaluation" in text
    for row in seen["table"]:
        line = next(x for x in text.splitlines() if school in x and str(row["marks held"]) in x)
        assert str(row["pupils"]) in line and "no accepted student list" in line
    assert result["evaluation"]["outcome"] in " ".join(text.split())
    assert not PUPIL_CODE.search(text)


def test_the_list_a_night_later_gets_the_kept_marks_evaluated(rejected_list):
    settings, school, other, path, kept, _, _ = rejected_list
    path.write_bytes(kept)  # the school sends its list again; its marks stay as they were
    result, seen = _night(settings)
    assert result["ingest"]["new_submissions"] == 1
    assert result["ingest"]["accepted"] + result["ingest"]["partially_accepted"] == 1
    expected = _query(
        settings,
        "select m.school_code, count(distinct m.student_code) as n from marks m "
        "join enrollments e on e.school_code = m.school_code and e.school_year = "
        "m.school_year and e.student_code = m.student_code where e.status = 'active' "
        "group by m.school_code order by m.school_code",
    )
    assert {row["school_code"] for row in expected} == {school, other}
    annual = _query(
        settings,
        "select school_code, count(*) as n from annual_results group by school_code "
        "order by school_code",
    )
    assert annual == expected
    assert result["evaluation"]["pupils"] == sum(row["n"] for row in expected)
    assert result["evaluation"]["skipped"] == []  # a clean province: nothing left behind
    assert "Nothing held back" in seen["table"]  # the artifact is a sentence then
    assert seen["description"] == (
        f"Evaluation 2023/2024: {result['evaluation']['pupils']} pupil(s) of 2 school(s) evaluated."
    )


# ---- a night without any marks ------------------------------------------------------------


@pytest.fixture(scope="module")
def no_marks(prefect_server, province, tmp_path_factory):
    settings = init_home(tmp_path_factory.mktemp("no-marks-home") / "home")
    for school in _schools(province)[2:4]:
        target = settings.inbox / school.name
        shutil.copytree(school, target)
        shutil.rmtree(target / "NotesCC")
        (target / "exam_marks.csv").unlink()
    result, seen = _night(settings)
    return settings, result, seen


def test_a_night_without_marks_completes_with_a_clear_sentence(no_marks):
    settings, result, seen = no_marks
    evaluation = result["evaluation"]
    assert evaluation["years"] == [] and evaluation["rows"] == {}
    assert evaluation["outcome"] == (
        "Nothing could be evaluated: the warehouse holds no marks yet (no NotesCC file "
        "accepted): nothing to evaluate."
    )
    assert seen["description"] == evaluation["outcome"]
    assert result["consolidation"]["rows"]["students"] > 0  # the rest of the night was done
    listed = _query(
        settings,
        "select school_code, school_year, count(distinct student_code) as pupils "
        "from enrollments where status = 'active' group by all order by school_code",
    )
    assert len(listed) == 2
    rows = sorted(seen["table"], key=lambda row: row["school"] or "")
    assert rows[0]["school"] is None and "no marks yet" in rows[0]["why"]
    assert all("no marks accepted yet" in row["why"] for row in rows[1:])
    assert [(r["school"], r["school year"], r["pupils"], r["marks held"]) for r in rows[1:]] == [
        (row["school_code"], row["school_year"], row["pupils"], 0) for row in listed
    ]
    text = _status_text(settings)
    assert "Nothing could be evaluated" in " ".join(text.split())
    for row in listed:
        assert any(row["school_code"] in x and str(row["pupils"]) in x for x in text.splitlines())

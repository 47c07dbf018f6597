"""Registering and recording submissions in one statement each (Core executemany), on SQLite
and PostgreSQL: every row gets its own id and its own values, whatever the rows' keys."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from tests.harness.postgres import fresh_control_database
from warehouse.control import ControlDatabase, Finding, Submission
from warehouse.submissions import record_outcomes, register_submissions

ARRIVED = datetime(2026, 11, 30, 7, 15, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    handle = fresh_control_database(request, tmp_path, request.param)
    yield handle
    handle.dispose()


def arrival(school: str, index: int, **extra) -> dict:
    return {
        "school_code": school,
        "file_name": f"NotesCC_{index}.xlsx",
        "sha256": f"{index:064x}",
        "size_bytes": 100 + index,
        "archive_path": f"/archive/{index}",
        **extra,
    }


def stored(database: ControlDatabase) -> dict[int, Submission]:
    with database.session() as session:
        return {s.submission_id: s for s in session.scalars(select(Submission))}


def test_a_batch_of_files_gets_one_id_each_in_the_order_given(database):
    rows = [arrival("27783Y", i) for i in range(300)]
    ids = register_submissions(database, rows)
    assert len(set(ids)) == 300
    kept = stored(database)
    assert [(kept[i].sha256, kept[i].size_bytes) for i in ids] == [
        (r["sha256"], r["size_bytes"]) for r in rows
    ]
    assert {kept[i].state for i in ids} == {"received"}
    # again, with a new file in the middle: the same ids, one new
    again = register_submissions(database, [*rows[:150], arrival("27783Y", 999), *rows[150:]])
    assert again[:150] + again[151:] == ids
    assert again[150] not in ids


def test_files_of_different_keys_keep_each_its_values(database):
    """Some rows say when they arrived, others not: none takes another's value, none is
    lost (whether the first row has the key or not)."""
    ids = register_submissions(
        database,
        [
            arrival("27783Y", 1),
            arrival("27783Y", 2, arrived_at=ARRIVED),
            arrival("11742K", 3),
            arrival("11742K", 4, arrived_at=ARRIVED),
        ],
    )
    kept = stored(database)
    arrived = [kept[i].arrived_at for i in ids]
    assert [a is not None and a.replace(tzinfo=UTC) == ARRIVED for a in arrived] == [
        False,
        True,
        False,
        True,
    ]
    assert arrived[0] is None and arrived[2] is None
    assert [kept[i].school_code for i in ids] == ["27783Y", "27783Y", "11742K", "11742K"]


FINDING = {
    "sheet": "Feuil1",
    "sheet_row": 12,
    "column_name": "mark",
    "value": "21",
    "rule_id": "R003",
    "severity": "error",
    "message_ar": "ar",
    "message_fr": "fr",
}


def test_each_submission_is_recorded_with_its_own_outcome_and_findings(database):
    ids = register_submissions(database, [arrival("27783Y", 1), arrival("27783Y", 2)])
    finding = dict(FINDING)
    record_outcomes(
        database,
        [
            {
                "submission_id": ids[0],
                "dataset": "marks",
                "state": "partially_accepted",
                "school_year": "2025/2026",
                "scope_key": "marks|27783Y|2025/2026|1APIC-1|0030|1",
                "rows_read": 30,
                "rows_accepted": 29,
                "rows_quarantined": 1,
                "findings": [finding],
                "detail": "",
                "hold_rows_before": 40,
                "hold_rows_after": 29,
            },
            {
                "submission_id": ids[1],
                "dataset": "students",
                "state": "accepted",
                "school_year": "2025/2026",
                "scope_key": "students|27783Y|2025/2026",
                "rows_read": 31,
                "rows_accepted": 31,
                "rows_quarantined": 0,
                "findings": [],
                "detail": "",
                "exported_on": date(2026, 11, 29),
                "exported_on_source": "file name",
            },
        ],
    )
    kept = stored(database)
    marks, students = kept[ids[0]], kept[ids[1]]
    assert (marks.dataset, marks.state, marks.rows_read, marks.rows_quarantined) == (
        "marks",
        "partially_accepted",
        30,
        1,
    )
    assert (marks.hold, marks.hold_rows_before, marks.hold_rows_after) == ("held", 40, 29)
    assert marks.scope_key.startswith("marks|") and marks.processed_at is not None
    assert (students.dataset, students.state, students.rows_accepted, students.hold) == (
        "students",
        "accepted",
        31,
        "",
    )
    assert students.exported_on == date(2026, 11, 29)
    assert students.exported_on_source == "file name"
    with database.session() as session:
        findings = list(session.scalars(select(Finding)))
    assert [(f.submission_id, f.school_code, f.file_name, f.rule_id) for f in findings] == [
        (ids[0], "27783Y", "NotesCC_1.xlsx", "R003")
    ]


def test_recording_again_replaces_the_findings_even_with_none(database):
    """A submission recorded again (a run that died after recording it) keeps only its new
    findings: none when it is now clean, though no school or file is looked up for it."""
    ids = register_submissions(database, [arrival("27783Y", 1), arrival("27783Y", 2)])
    finding = dict(FINDING)
    first = [
        {**outcome(sid, f"marks|27783Y|2025/2026|1APIC-1|00{sid}|1"), "findings": [finding]}
        for sid in ids
    ]
    record_outcomes(database, first)
    record_outcomes(database, [{**first[0], "findings": []}, first[1]])
    with database.session() as session:
        findings = list(session.scalars(select(Finding)))
    assert [(f.submission_id, f.file_name, f.rule_id) for f in findings] == [
        (ids[1], "NotesCC_2.xlsx", "R003")
    ]


def outcome(submission_id: int, scope_key: str) -> dict:
    return {
        "submission_id": submission_id,
        "dataset": "marks",
        "state": "accepted",
        "school_year": "2025/2026",
        "scope_key": scope_key,
        "rows_read": 30,
        "rows_accepted": 30,
        "rows_quarantined": 0,
        "findings": [],
        "detail": "",
    }


def test_a_schools_scopes_are_looked_up_by_their_index_not_by_walking_every_active_file(
    database,
):
    """A school's ingest asks for the active submissions of its files' scopes (resends,
    supersession). Those lookups must use the index on (scope_key, state): SQLite's planner,
    with one index per column, took the state's and walked every accepted submission of the
    province for each school (7 ms a school at 31 k submissions, growing every night). Checked
    on the statements the functions really send; PostgreSQL's planner decides on statistics,
    so there the index is checked to exist."""
    from sqlalchemy import event, inspect

    from warehouse.submissions import scope_lines

    names = {
        tuple(index["column_names"]): index["name"]
        for index in inspect(database.engine).get_indexes("submissions")
    }
    assert names[("scope_key", "state")] == "ix_submissions_scope_state"
    # A school's night holds a hundred scopes and more (one a NotesCC workbook): with that many
    # values in the IN list, SQLite's planner without statistics prefers the state's index.
    scopes = [f"marks|27783Y|2025/2026|1APIC-{c}|{i:04d}|1" for c in range(1, 4) for i in range(40)]
    ids = register_submissions(database, [arrival("27783Y", i) for i in range(len(scopes))])
    record_outcomes(database, [outcome(i, s) for i, s in zip(ids, scopes, strict=True)])
    resent = register_submissions(database, [arrival("27783Y", 1000 + i) for i in range(100)])
    sent: list[tuple[str, object]] = []

    def keep(connection, cursor, statement, parameters, context, executemany):
        if "scope_key IN" in statement and not executemany:
            sent.append((statement, parameters))

    event.listen(database.engine, "before_cursor_execute", keep)
    try:
        earlier = zip(scopes[:100], ids[:100], strict=True)
        assert scope_lines(database, scopes[:100]) == {s: [i] for s, i in earlier}
        again = [outcome(i, s) for i, s in zip(resent, scopes, strict=False)]
        assert sorted(record_outcomes(database, again)) == ids[:100]
    finally:
        event.remove(database.engine, "before_cursor_execute", keep)
    assert len(sent) == 2  # scope_lines' query and record_outcomes' active submissions
    if database.engine.dialect.name != "sqlite":
        return
    with database.engine.connect() as connection:
        for statement, parameters in sent:
            plan = " ".join(
                str(row[-1])
                for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            )
            assert "USING INDEX ix_submissions_scope_state" in plan, plan


def test_a_night_finds_what_is_left_to_consolidate_by_index_not_by_walking_every_file(database):
    """Each night asks, dataset by dataset, for the submissions no consolidation has taken
    yet: among a year's files, a few. Through the state's index that walked every processed
    submission ever recorded; the query must use the index on consolidated_at (SQLite's plan
    of the statement really sent; on PostgreSQL the index is checked to exist)."""
    from sqlalchemy import event, inspect, update

    from tasks.consolidate import pending_submissions

    names = {
        tuple(index["column_names"]): index["name"]
        for index in inspect(database.engine).get_indexes("submissions")
    }
    assert names[("consolidated_at",)] == "ix_submissions_consolidated_at"
    scopes = [f"marks|27783Y|2025/2026|1APIC-1|{i:04d}|1" for i in range(60)]
    ids = register_submissions(database, [arrival("27783Y", i) for i in range(len(scopes))])
    record_outcomes(database, [outcome(i, s) for i, s in zip(ids, scopes, strict=True)])
    with database.session() as session:  # all but the last two consolidated by earlier nights
        session.execute(
            update(Submission)
            .where(Submission.submission_id.in_(ids[:-2]))
            .values(consolidated_at=ARRIVED)
        )
    sent: list[tuple[str, object]] = []

    def keep(connection, cursor, statement, parameters, context, executemany):
        if "consolidated_at IS NULL" in statement:
            sent.append((statement, parameters))

    event.listen(database.engine, "before_cursor_execute", keep)
    try:
        assert pending_submissions(database, "marks") == {"27783Y": ids[-2:]}
    finally:
        event.remove(database.engine, "before_cursor_execute", keep)
    assert len(sent) == 1
    if database.engine.dialect.name != "sqlite":
        return
    with database.engine.connect() as connection:
        statement, parameters = sent[0]
        plan = " ".join(
            str(row[-1])
            for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
        )
    assert "USING INDEX ix_submissions_consolidated_at" in plan, plan


def _outcome(submission_id: int, state: str, scope: str, read: int, quarantined: int, findings):
    return {
        "submission_id": submission_id,
        "dataset": "marks",
        "state": state,
        "school_year": "2025/2026",
        "scope_key": scope if state != "rejected" else "",
        "rows_read": read,
        "rows_accepted": 0 if state == "rejected" else read - quarantined,
        "rows_quarantined": quarantined,
        "findings": findings,
        "detail": "",
    }


def test_a_run_finds_back_what_it_recorded_for_a_school_since_it_began(database):
    """What a dead worker had recorded is read back for the school's outcome: the school's
    files recorded since the run began, each with its state as recorded (one superseded since
    by a newer file of its scope as what it was), rows and findings by severity; not a file
    recorded before, nor one only registered, nor another school's."""
    from datetime import timedelta

    from warehouse.submissions import RecordedFile, recorded_since

    earlier = register_submissions(database, [arrival("27783Y", 1)])
    record_outcomes(database, [_outcome(earlier[0], "accepted", "s|old", 10, 0, [])])
    since = datetime.now(UTC) + timedelta(milliseconds=5)
    while datetime.now(UTC) <= since:  # the clock past `since` (a few ms)
        pass
    ids = register_submissions(
        database, [arrival("27783Y", i) for i in (2, 3, 4, 5, 6)] + [arrival("11742K", 7)]
    )
    query = {**FINDING, "severity": "query", "rule_id": "X013"}
    held = {"hold_rows_before": 40, "hold_rows_after": 12}
    record_outcomes(
        database,
        [
            _outcome(ids[0], "partially_accepted", "s|a", 30, 2, [FINDING, FINDING, query]),
            _outcome(ids[1], "rejected", "s|b", 0, 0, [{**FINDING, "rule_id": "F001"}]),
            _outcome(ids[2], "accepted", "s|a", 31, 0, []),  # supersedes ids[0]
            {**_outcome(ids[3], "accepted", "s|d", 12, 0, []), **held},
            _outcome(ids[5], "accepted", "s|c", 5, 0, []),  # another school's
        ],
    )  # ids[4]: registered only
    assert stored(database)[ids[0]].state == "superseded"

    assert recorded_since(database, "27783Y", since) == [
        RecordedFile(ids[0], "partially_accepted", False, 30, 28, 2, 2, 1),
        RecordedFile(ids[1], "rejected", False, 0, 0, 0, 1, 0),
        RecordedFile(ids[2], "accepted", False, 31, 31, 0, 0, 0),
        RecordedFile(ids[3], "accepted", True, 12, 12, 0, 0, 0),
    ]

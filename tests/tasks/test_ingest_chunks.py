"""Schools ingested a chunk at a time (tasks/ingest_chunks.py), without Prefect: every school
in exactly one chunk, each school's outcome and report kept, a school that fails never stops
the chunk's others, and schools a retried chunk already finished are not done again."""

from __future__ import annotations

import gc
import shutil
from datetime import datetime
from pathlib import Path

import pytest

from tasks.ingest import SchoolOutcome, discover_inbox
from tasks.ingest_chunks import (
    SchoolFolder,
    _ingest_chunk,
    chunk_label,
    ingest_chunk_task,
    ingest_schools,
    school_chunks,
)
from warehouse.control import ControlDatabase
from warehouse.submissions import known_files


def _school_folders(province: Path) -> list[Path]:
    return sorted(p for p in province.iterdir() if p.is_dir() and p.name[:5].isdigit())


def test_every_school_is_in_one_chunk_and_chunks_weigh_about_the_same(tmp_path):
    sizes = {f"{10000 + i}A": 1 + (i * 37) % 90 for i in range(30)}
    schools = {code: [tmp_path / code / f"{n}.xlsx" for n in range(k)] for code, k in sizes.items()}
    chunks = school_chunks(schools, tmp_path, workers=2)
    assert len(chunks) == 8
    codes = [s.school_code for chunk in chunks for s in chunk]
    assert sorted(codes) == sorted(schools)  # each school once
    assert all(s.folder == tmp_path / s.school_code for chunk in chunks for s in chunk)
    weights = [sum(len(s.files) for s in chunk) for chunk in chunks]
    assert max(weights) - min(weights) <= max(sizes.values())
    assert all([s.school_code for s in c] == sorted(s.school_code for s in c) for c in chunks)
    # fewer schools than chunks: one school a chunk, none empty
    few = school_chunks(dict(list(schools.items())[:3]), tmp_path, workers=2)
    assert sorted(len(c) for c in few) == [1, 1, 1]
    assert school_chunks({}, tmp_path, workers=2) == []
    # the inbox may be one school's folder
    one = school_chunks({"27783Y": []}, tmp_path / "27783Y", workers=2)
    assert one[0][0].folder == tmp_path / "27783Y"


def test_prefect_does_not_walk_a_chunks_files_when_the_chunk_is_submitted(tmp_path):
    """Prefect looks for futures in a task's parameters (the flow once, the worker twice),
    going into lists and dataclasses: a chunk's schools stop it, their files are not visited
    (a province's 31 k paths cost ~0.35 s of CPU), and the chunk reaches the task whole."""
    from prefect.utilities.collections import visit_collection
    from prefect.utilities.engine import collect_task_run_inputs_sync, resolve_inputs_sync

    schools = {
        f"{10000 + i}A": [tmp_path / f"{i}" / f"{n}.xlsx" for n in range(5)] for i in range(4)
    }
    chunk = [SchoolFolder(code, files, tmp_path / code) for code, files in schools.items()]
    visited: list[object] = []
    visit_collection({"chunk": chunk}, visit_fn=visited.append, return_data=False)
    assert not [v for v in visited if isinstance(v, Path)]
    assert [v for v in visited if isinstance(v, SchoolFolder)] == chunk
    resolved = resolve_inputs_sync({"chunk": chunk, "label": chunk_label(chunk)})["chunk"]
    assert resolved is chunk
    assert [(s.school_code, s.files, s.folder) for s in resolved] == [
        (code, files, tmp_path / code) for code, files in schools.items()
    ]
    assert collect_task_run_inputs_sync({"chunk": chunk}) == set()


def test_a_chunks_name_says_its_schools():
    chunk = [SchoolFolder(code, [], Path(code)) for code in ("11111A", "22222B", "33333C")]
    assert chunk_label(chunk) == "11111A..33333C (3 schools)"
    assert chunk_label(chunk[:1]) == "11111A"
    # the flow's task runs the plain function
    assert ingest_chunk_task.fn is _ingest_chunk


@pytest.fixture
def two_schools(province, massar_home):
    folders = _school_folders(province)[:2]
    for folder in folders:
        shutil.copytree(folder, massar_home.inbox / folder.name)
    schools, _ = discover_inbox(massar_home.inbox)
    return massar_home, [
        SchoolFolder(f.name, schools[f.name], massar_home.inbox / f.name) for f in folders
    ]


def _known(settings, code: str) -> dict[str, int]:
    database = ControlDatabase(settings.resolved_database_url)
    try:
        return known_files(database, code)
    finally:
        database.dispose()


def test_each_school_of_a_chunk_gets_its_outcome_and_its_report(two_schools):
    settings, chunk = two_schools
    lines: list[str] = []
    outcomes = ingest_schools(settings, chunk, datetime.now(settings.zone), say=lines.append)
    assert [o.school_code for o in outcomes] == [s.school_code for s in chunk]
    for school, outcome in zip(chunk, outcomes, strict=True):
        assert len(outcome.new_submissions) == len(school.files) > 0
        assert outcome.rows_read == outcome.rows_accepted + outcome.rows_quarantined > 0
        assert len(_known(settings, school.school_code)) == len(school.files)
        folder = settings.reports / school.school_code
        assert (folder / f"rapport_{school.school_code}.xlsx").is_file()
        assert (folder / f"rapport_{school.school_code}.html").is_file()
    # one line per school for the task's log, counts only
    assert len(lines) == 2
    assert all(s.school_code in line for s, line in zip(chunk, lines, strict=True))
    # the chunk again: nothing new, no report rewritten
    again = ingest_schools(settings, chunk, None)
    assert [o.already_known for o in again] == [len(s.files) for s in chunk]


def test_a_failing_school_never_stops_the_others_of_its_chunk(two_schools):
    settings, (first, second) = two_schools
    gone = SchoolFolder(first.school_code, [*first.files, first.folder / "gone.csv"], first.folder)
    with pytest.raises(FileNotFoundError):
        ingest_schools(settings, [gone, second], datetime.now(settings.zone))
    # the school after the failing one was ingested and reported all the same
    assert len(_known(settings, second.school_code)) == len(second.files)
    assert (settings.reports / second.school_code / f"rapport_{second.school_code}.html").exists()


def test_the_garbage_collector_is_as_it_was_after_a_chunk_even_a_failing_one(two_schools):
    # A small night runs its chunks in the flow's own process: it goes on collecting as before.
    settings, (first, second) = two_schools
    threshold, frozen = gc.get_threshold(), gc.get_freeze_count()
    gone = SchoolFolder(first.school_code, [*first.files, first.folder / "gone.csv"], first.folder)
    with pytest.raises(FileNotFoundError):
        ingest_schools(settings, [gone, second], datetime.now(settings.zone))
    assert (gc.get_threshold(), gc.get_freeze_count()) == (threshold, frozen)
    assert len(_known(settings, second.school_code)) == len(second.files)


def test_a_retried_chunk_does_not_redo_the_schools_it_finished(two_schools):
    settings, (first, second) = two_schools
    earlier = SchoolOutcome(first.school_code, files_seen=9, accepted=9)
    finished = {first.school_code: earlier}
    outcomes = ingest_schools(settings, [first, second], None, finished)
    assert outcomes[0] is earlier  # kept from the earlier attempt, not ingested again
    assert _known(settings, first.school_code) == {}
    assert len(outcomes[1].new_submissions) == len(second.files)
    assert set(finished) == {first.school_code, second.school_code}


def test_a_chunk_retried_by_prefect_after_a_database_outage_keeps_what_it_finished(
    prefect_server, two_schools, monkeypatch
):
    """The real task under Prefect: the second school meets an unusable control database
    once; Prefect tries the chunk again (after 5 s) and the first school is not done again."""
    from prefect import flow
    from sqlalchemy.exc import OperationalError

    import tasks.ingest_chunks as chunks

    settings, chunk = two_schools
    calls: list[str] = []
    real = chunks.ingest_school

    def away_once(settings, school_code, files, folder, database=None):
        calls.append(school_code)
        if school_code == chunk[1].school_code and calls.count(school_code) == 1:
            raise OperationalError("select 1", {}, Exception("the database is restarting"))
        return real(settings, school_code, files, folder, database)

    monkeypatch.setattr(chunks, "ingest_school", away_once)

    @flow
    def one_chunk():
        return ingest_chunk_task(settings, chunk, chunk_label(chunk), None, return_state=True)

    state = one_chunk()
    assert state.is_completed(), state.message
    outcomes = state.result()
    first, second = chunk
    assert calls == [first.school_code, second.school_code, second.school_code]
    assert [len(o.new_submissions) for o in outcomes] == [len(first.files), len(second.files)]
    assert chunks._FINISHED == {}  # nothing left behind in the worker

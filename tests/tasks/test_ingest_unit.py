"""The ingest's own rules without Prefect: which folders and files of the inbox are ingested,
what a file already sent costs, how a file is archived, when a file is accepted, partially
accepted or rejected, and what the summary adds up. The plain functions of tasks/ingest.py (and
a task's ``.fn``) run here with no Prefect server; tests/flows/test_ingest.py runs the flow."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import polars as pl
import pytest

from tasks.ingest import (
    SchoolOutcome,
    _Batch,
    _state,
    archive_content,
    archive_original,
    discover_inbox,
    discover_inbox_task,
    ingest_school,
    sha256_file,
    split_known_schools,
    stray_entries,
    stray_sentence,
    summarise_outcomes,
)
from warehouse.control import ControlDatabase
from warehouse.query import control_table


def _school_folders(province: Path) -> list[Path]:
    return sorted(p for p in province.iterdir() if p.is_dir() and p.name[:5].isdigit())


def _write(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ---- the inbox ------------------------------------------------------------------------------


def test_school_folders_are_ingested_and_everything_else_is_named(tmp_path):
    inbox = tmp_path / "inbox"
    lists = _write(inbox / "27783Y" / "ListEleve.xlsx")
    nested = _write(inbox / "27783Y" / "term 1" / "marks.xlsx")
    _write(inbox / "27783Y" / ".upload.part")  # an upload still under its temporary name
    _write(inbox / "27784Z" / "guardians.csv")
    _write(inbox / "notes.txt")  # a loose file
    (inbox / "School 27785").mkdir()  # not a school code
    (inbox / ".trash").mkdir()  # hidden: left alone
    schools, strangers = discover_inbox(inbox)
    assert schools == {"27783Y": [lists, nested], "27784Z": [inbox / "27784Z" / "guardians.csv"]}
    assert sorted(strangers) == ["School 27785", "notes.txt"]
    # the inbox may be one school's folder
    assert discover_inbox(inbox / "27783Y") == ({"27783Y": [lists, nested]}, [])
    # no inbox yet: nothing to do, no error
    assert discover_inbox(tmp_path / "absent") == ({}, [])


def test_links_in_the_inbox_are_never_followed(tmp_path):
    outside = _write(tmp_path / "elsewhere" / "secret.csv")
    inbox = tmp_path / "inbox"
    real = _write(inbox / "27783Y" / "guardians.csv")
    os.symlink(outside, inbox / "27783Y" / "linked.csv")
    os.symlink(outside.parent, inbox / "27783Y" / "linked-folder")
    os.symlink(inbox / "27783Y", inbox / "27786A")  # a school folder that is a link
    schools, strangers = discover_inbox(inbox)
    assert schools == {"27783Y": [real]}
    assert strangers == ["27786A"]
    assert [(e.name, e.kind) for e in stray_entries(inbox)] == [("27786A", "link")]


def test_the_officer_is_told_what_lies_at_the_root_and_what_to_do(tmp_path):
    inbox = tmp_path / "inbox"
    _write(inbox / "27783Y" / "guardians.csv")
    _write(inbox / "notes.txt")
    (inbox / "old exports").mkdir()
    strays = stray_entries(inbox)
    assert {(e.name, e.kind) for e in strays} == {("notes.txt", "file"), ("old exports", "folder")}
    sentence = stray_sentence(strays, "inbox")
    assert sentence.startswith("1 file(s) and 1 folder(s) not named after a school code")
    assert "notes.txt" in sentence and "old exports/" in sentence
    assert "move each file into the folder of the school that sent it" in sentence
    assert stray_sentence([], "inbox") == ""


# ---- the archive ----------------------------------------------------------------------------


def test_an_original_is_kept_once_read_only_under_its_hash(tmp_path):
    received = _write(tmp_path / "inbox" / "27783Y" / "élèves 2024 (copie) ; rm.csv", "a,b\n")
    sha = sha256_file(received)
    kept = archive_original(tmp_path / "archive", received, sha)
    assert kept == tmp_path / "archive" / sha[:2] / sha  # the school's name never is a path
    assert kept.read_bytes() == received.read_bytes()
    assert not kept.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    again = _write(tmp_path / "other.csv", "a,b\n")
    assert archive_original(tmp_path / "archive", again, sha) == kept
    assert [p for p in (tmp_path / "archive").rglob("*") if p.is_file()] == [kept]


def test_bytes_already_read_are_archived_as_an_original_is(tmp_path):
    received = _write(tmp_path / "inbox" / "27783Y" / "notes.csv", "a,b\n1,2\n")
    sha = sha256_file(received)
    data = received.read_bytes()
    kept, whole = archive_content(tmp_path / "archive", data, sha)  # its folder made for it
    assert kept == tmp_path / "archive" / sha[:2] / sha and whole
    assert kept.read_bytes() == received.read_bytes()
    assert not kept.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert archive_original(tmp_path / "archive", received, sha) == kept  # one copy per hash
    assert archive_content(tmp_path / "archive", data, sha) == (kept, True)
    assert kept.read_bytes() == received.read_bytes()
    assert [p for p in (tmp_path / "archive").rglob("*") if p.is_file()] == [kept]
    # something else in the archive's place (a folder): not taken for the file
    odd = tmp_path / "archive" / "ab" / ("ab" + "0" * 62)
    odd.mkdir(parents=True)
    assert archive_content(tmp_path / "archive", data, odd.name) == (odd, False)


def test_bytes_archived_beside_others_in_an_existing_folder(tmp_path):
    """A second file whose archive folder exists already (no folder to make), and a third
    whose archive does not exist yet (its parents made): both kept whole, read-only."""
    first, second = b"a,b\n1,2\n", b"a,b\n3,4\n"
    archive = tmp_path / "archive"
    sha = "ab" + "1" * 62
    kept, _ = archive_content(archive, first, sha)
    beside, whole = archive_content(archive, second, "ab" + "2" * 62)
    assert whole and beside.parent == kept.parent and beside.read_bytes() == second
    assert not beside.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert sorted(p.name for p in kept.parent.iterdir()) == [kept.name, beside.name]


# ---- a file's fate ----------------------------------------------------------------------------


def _batch(accepted: int, quarantined: int, rejected: str = "") -> _Batch:
    rows = pl.DataFrame({"sheet_row": list(range(accepted))}, schema={"sheet_row": pl.Int64})
    held = pl.DataFrame({"sheet_row": list(range(quarantined))}, schema={"sheet_row": pl.Int64})
    return _Batch(1, "ListEleve.xlsx", accepted=rows, quarantined=held, rejected=rejected)


@pytest.mark.parametrize(
    ("accepted", "quarantined", "rejected", "state"),
    [
        (10, 0, "", ("accepted", "")),
        (8, 2, "", ("partially_accepted", "")),
        (0, 3, "", ("rejected", "every row has an error")),
        (10, 0, "F004", ("rejected", "file-level finding F004")),
    ],
)
def test_a_file_is_accepted_partially_accepted_or_rejected(accepted, quarantined, rejected, state):
    assert _state(_batch(accepted, quarantined, rejected)) == state


# ---- a school's batch, on a real home (SQLite, staging, archive), without Prefect -----------


@pytest.fixture
def one_school(province, massar_home):
    folder = _school_folders(province)[0]
    inbox_folder = massar_home.inbox / folder.name
    shutil.copytree(folder, inbox_folder)
    schools, _ = discover_inbox(massar_home.inbox)
    return massar_home, folder.name, schools[folder.name], inbox_folder


def _submissions(settings) -> pl.DataFrame:
    database = ControlDatabase(settings.resolved_database_url)
    try:
        frame = pl.from_arrow(control_table(database, "submissions"))
        assert isinstance(frame, pl.DataFrame)
        return frame
    finally:
        database.dispose()


def test_a_school_is_ingested_once_and_every_row_is_counted(one_school):
    settings, code, files, folder = one_school
    outcome = ingest_school(settings, code, files, folder)
    assert outcome.files_seen == len(files) == len(outcome.new_submissions)
    assert outcome.accepted + outcome.partially_accepted + outcome.rejected == len(files)
    assert outcome.rows_read == outcome.rows_accepted + outcome.rows_quarantined > 0
    submissions = _submissions(settings)
    assert submissions.height == len(files)
    assert set(submissions["sha256"]) == {sha256_file(path) for path in files}
    assert submissions["rows_accepted"].sum() == outcome.rows_accepted
    # the originals are in the archive, as received
    for path in files:
        sha = sha256_file(path)
        assert (settings.archive / sha[:2] / sha).read_bytes() == path.read_bytes()

    # the same files again: nothing new, nothing read, no worker needed
    again = ingest_school(settings, code, files, folder)
    assert again.already_known == len(files) and again.new_submissions == []
    assert again.rows_read == 0
    assert _submissions(settings).height == len(files)
    pending, done = split_known_schools(settings, {code: files})
    assert pending == {}
    assert [(o.school_code, o.already_known) for o in done] == [(code, len(files))]


def test_a_datasets_files_are_validated_as_one_chunk(one_school, monkeypatch):
    """Stacked, the files' frames keep a chunk each; every select of validation, of the
    cross-record rules and of the staged Parquet would pay for each of them."""
    import tasks.ingest

    settings, code, files, folder = one_school
    seen: dict[str, tuple[int, int]] = {}
    validate = tasks.ingest.validate_submission

    def watched(dataset, frame, **options):  # type: ignore[no-untyped-def]
        seen[dataset] = (frame.height, max(frame.n_chunks("all"), default=1))
        return validate(dataset, frame, **options)

    monkeypatch.setattr("tasks.ingest.validate_submission", watched)
    ingest_school(settings, code, files, folder)
    assert "marks" in seen and seen["marks"][0] > 0
    marks_files = _submissions(settings).filter(pl.col("dataset") == "marks").height
    assert marks_files > 1  # several files stacked: the case this is about
    assert {dataset: chunks for dataset, (_, chunks) in seen.items()} == dict.fromkeys(seen, 1)


def test_files_too_big_to_hold_are_read_back_from_the_archive_with_the_same_outcome(
    one_school, monkeypatch
):
    settings, code, files, folder = one_school
    held = ingest_school(settings, code, files[: len(files) // 2], folder)
    monkeypatch.setattr("tasks.ingest.READ_ONCE_BYTES", 0)  # every file "too big": the archive
    archived = ingest_school(settings, code, files[len(files) // 2 :], folder)
    assert held.rows_read > 0 and archived.rows_read > 0
    for outcome in (held, archived):
        assert outcome.rows_read == outcome.rows_accepted + outcome.rows_quarantined
        assert outcome.unreadable == 0
    submissions = _submissions(settings)
    assert submissions.height == len(files)
    assert set(submissions["sha256"]) == {sha256_file(path) for path in files}
    for path in files:  # the originals are in the archive, as received, either way
        sha = sha256_file(path)
        assert (settings.archive / sha[:2] / sha).read_bytes() == path.read_bytes()


def test_a_file_whose_archive_place_is_taken_is_not_accepted_from_memory(one_school):
    settings, code, files, folder = one_school
    small = next(path for path in files if path.name == "guardians.csv")
    sha = sha256_file(small)
    (settings.archive / sha[:2] / sha).mkdir(parents=True)  # not a file: the archive is broken
    outcome = ingest_school(settings, code, files, folder)
    assert outcome.unreadable == 1 and outcome.rejected >= 1  # F001, the platform's fault
    rejected = _submissions(settings).filter(pl.col("sha256") == sha)
    assert rejected["state"].to_list() == ["rejected"]


def test_a_school_with_one_new_file_is_ingested_for_that_file_only(one_school):
    settings, code, files, folder = one_school
    ingest_school(settings, code, files, folder)
    guardians = next(path for path in files if path.name == "guardians.csv")
    lines = guardians.read_bytes().splitlines(keepends=True)
    guardians.write_bytes(b"".join(lines[:-1]))  # the school sends its guardians again
    pending, done = split_known_schools(settings, {code: files})
    assert pending == {code: files} and done == []
    outcome = ingest_school(settings, code, files, folder)
    assert outcome.already_known == len(files) - 1
    assert len(outcome.new_submissions) == 1
    assert _submissions(settings).height == len(files) + 1


def test_the_summary_adds_up_the_schools_and_names_no_pupil(tmp_path):
    first = SchoolOutcome("27783Y", files_seen=3, accepted=2, rejected=1, rows_read=40)
    first.new_submissions.extend([1, 2, 3])
    first.rows_accepted, first.rows_quarantined = 35, 5
    first.seconds, first.cpu_seconds = {"read": 1.25}, {"read": 1.0}
    second = SchoolOutcome("27784Z", files_seen=2, already_known=2)
    second.seconds = {"read": 0.5}
    summary = summarise_outcomes([second, first], ["notes.txt"])
    totals = summary["totals"]
    assert totals["schools"] == 2 and totals["unknown_folders"] == 1
    assert totals["files_seen"] == 5 and totals["already_known"] == 2
    assert totals["new_submissions"] == 3 and totals["accepted"] == 2 and totals["rejected"] == 1
    assert totals["rows_read"] == 40 == totals["rows_accepted"] + totals["rows_quarantined"]
    assert totals["seconds"] == {"read": 1.75}
    assert [row["school_code"] for row in summary["schools"]] == ["27783Y", "27784Z"]
    assert summary["schools"][0]["new_submissions"] == 3  # a count, not the ids


def test_a_task_runs_its_plain_function_without_a_prefect_server(tmp_path):
    inbox = tmp_path / "inbox"
    listed = _write(inbox / "27783Y" / "guardians.csv")
    assert discover_inbox_task.fn(inbox) == ({"27783Y": [listed]}, [])

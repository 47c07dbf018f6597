"""The inbox digests' memo: an unchanged file is not read again, any change to a file is seen.

A wrong "already known" would leave a school's new file out of the night without a word, so
each way a school's file can change is made here on a real file system and must be hashed
again; the clock is injected for the racy window."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

import tasks.inbox_digests
from tasks.inbox_digests import SETTLED_NS, SchoolDigests, sha256_file
from tasks.ingest import discover_inbox, ingest_school, split_known_schools


@pytest.fixture
def hashed(monkeypatch) -> list[Path]:
    """The files actually read and hashed."""
    read: list[Path] = []

    def counted(path: Path) -> str:
        read.append(path)
        return sha256_file(path)

    monkeypatch.setattr(tasks.inbox_digests, "sha256_file", counted)
    return read


def _later(path: Path) -> int:
    """A clock reading well after the file's last change: its status is settled."""
    return path.stat().st_ctime_ns + SETTLED_NS + 1


def _file(folder: Path, name: str, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return path


def test_a_settled_unchanged_file_is_not_read_again(tmp_path, hashed):
    inbox = tmp_path / "inbox"
    path = _file(inbox / "27783Y", "ListEleve.xlsx", b"first list")
    first = SchoolDigests(tmp_path, "27783Y", now_ns=lambda: _later(path))
    assert first.digest(path) == hashlib.sha256(b"first list").hexdigest()
    first.save()
    second = SchoolDigests(tmp_path, "27783Y", now_ns=lambda: _later(path))
    assert second.digest(path) == hashlib.sha256(b"first list").hexdigest()
    assert hashed == [path]  # read once, by the first pre-check only


def test_every_kind_of_change_to_a_file_is_hashed_again(tmp_path, hashed):
    """Rewritten in place with the same size and its modification time set back, replaced by
    another file under the same name (as an upload does), or grown: each is read again."""
    inbox = tmp_path / "inbox"
    folder = inbox / "27783Y"
    in_place = _file(folder, "a.xlsx", b"AAAA")
    replaced = _file(folder, "b.xlsx", b"BBBB")
    grown = _file(folder, "c.xlsx", b"CCCC")
    files = [in_place, replaced, grown]
    first = SchoolDigests(tmp_path, "27783Y", now_ns=lambda: max(_later(p) for p in files))
    for path in files:
        first.digest(path)
    first.save()
    hashed.clear()

    times = in_place.stat()
    in_place.write_bytes(b"aaaa")  # same size
    os.utime(in_place, ns=(times.st_atime_ns, times.st_mtime_ns))  # mtime set back
    upload = _file(folder, ".b.xlsx.part", b"bbbb")
    os.utime(upload, ns=(replaced.stat().st_atime_ns, replaced.stat().st_mtime_ns))
    os.replace(upload, replaced)  # same name, size and mtime; another file
    grown.write_bytes(b"CCCCC")

    second = SchoolDigests(tmp_path, "27783Y", now_ns=lambda: max(_later(p) for p in files))
    assert [second.digest(path) for path in files] == [
        hashlib.sha256(data).hexdigest() for data in (b"aaaa", b"bbbb", b"CCCCC")
    ]
    assert hashed == files


def test_a_file_changed_just_before_the_hashing_is_not_remembered(tmp_path, hashed):
    """The racy window: a file written in the same timestamp tick as its hashing could keep
    its status through a second write, so it is hashed again next time."""
    inbox = tmp_path / "inbox"
    path = _file(inbox / "27783Y", "a.xlsx", b"young")
    young = SchoolDigests(
        tmp_path, "27783Y", now_ns=lambda: path.stat().st_ctime_ns + SETTLED_NS - 1
    )
    young.digest(path)
    young.save()
    SchoolDigests(tmp_path, "27783Y", now_ns=lambda: _later(path)).digest(path)
    assert hashed == [path, path]


@pytest.mark.parametrize(
    "memo_text",
    ["{not json", json.dumps({"format": 99, "files": {}}), json.dumps(["a", "list"]), ""],
)
def test_a_memo_that_cannot_be_trusted_means_every_file_is_read(tmp_path, hashed, memo_text):
    path = _file(tmp_path / "inbox" / "27783Y", "a.xlsx", b"data")
    digests = SchoolDigests(tmp_path, "27783Y")
    digests.memo.parent.mkdir(parents=True)
    digests.memo.write_text(memo_text, encoding="utf-8")
    assert SchoolDigests(tmp_path, "27783Y").digest(path) == hashlib.sha256(b"data").hexdigest()
    assert hashed == [path]


def test_the_same_file_elsewhere_is_read(tmp_path, hashed):
    inbox = tmp_path / "inbox"
    path = _file(inbox / "27783Y", "a.xlsx", b"data")
    first = SchoolDigests(tmp_path, "27783Y", now_ns=lambda: _later(path))
    first.digest(path)
    first.save()
    copy = tmp_path / "elsewhere" / "27783Y"
    shutil.copytree(path.parent, copy, copy_function=shutil.copy2)
    SchoolDigests(tmp_path, "27783Y", now_ns=lambda: _later(path)).digest(copy / "a.xlsx")
    assert hashed == [path, copy / "a.xlsx"]


def test_a_school_whose_file_changed_in_place_is_ingested_again(province, massar_home, hashed):
    """End to end through the pre-check: the worker that ingested a school remembers its
    files' digests, so the next pre-check reads none of them; a student list then rewritten in
    place (same size, modification time set back) sends the school to the workers again, and
    the new content becomes a submission."""
    source = next(p for p in sorted(province.iterdir()) if p.is_dir() and p.name[:5].isdigit())
    folder = massar_home.inbox / source.name
    shutil.copytree(source, folder)
    schools, _ = discover_inbox(massar_home.inbox)
    files = schools[source.name]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tasks.inbox_digests, "SETTLED_NS", 0)  # no racy window: files settled
        ingest_school(massar_home, source.name, files, folder)
        hashed.clear()
        pending, done = split_known_schools(massar_home, schools)
        assert pending == {} and [o.already_known for o in done] == [len(files)]
        assert hashed == []  # the worker's digests answered for every file

        csv = next(p for p in files if p.suffix == ".csv")
        times = csv.stat()
        data = bytearray(csv.read_bytes())
        data[-2] = ord("0") if data[-2] != ord("0") else ord("1")  # one character, same size
        csv.write_bytes(bytes(data))
        os.utime(csv, ns=(times.st_atime_ns, times.st_mtime_ns))
        pending, done = split_known_schools(massar_home, schools)
    assert pending == {source.name: files} and done == []
    outcome = ingest_school(massar_home, source.name, files, folder)
    assert outcome.already_known == len(files) - 1 and len(outcome.new_submissions) == 1

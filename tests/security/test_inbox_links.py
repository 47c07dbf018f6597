"""Issue 15, attack 5: links followed in the inbox. ``inbox/<school>/x.csv → /outside/secret.txt``
was archived; ``inbox/12345A → /outside/dir`` was ingested as a school. A link in the inbox is
never followed: it is skipped with a log line (a file or folder inside a school's folder) or
shown with the entries that are not schools (a school folder that is a link), and nothing it
points to reaches the archive.
"""

from __future__ import annotations

import logging

from massar.home import init_home
from tasks.ingest import discover_inbox, ingest_school, stray_entries, stray_sentence

SECRET = b"root:x:0:0:secret of the server\n"


def _archived(settings) -> list[bytes]:
    return [p.read_bytes() for p in settings.archive.rglob("*") if p.is_file()]


def test_a_file_link_in_a_school_folder_is_skipped_and_never_archived(tmp_path, caplog):
    settings = init_home(tmp_path / "home")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    (outside / "dir").mkdir()
    (outside / "dir" / "more.csv").write_bytes(SECRET)
    school = settings.inbox / "27783Y"
    school.mkdir(parents=True)
    (school / "guardians.csv").write_bytes(b"not a real file, but the school's own\n")
    (school / "x.csv").symlink_to(outside / "secret.txt")
    (school / "sub").symlink_to(outside / "dir", target_is_directory=True)

    with caplog.at_level(logging.WARNING):
        schools, strangers = discover_inbox(settings.inbox)
    assert schools == {"27783Y": [school / "guardians.csv"]} and strangers == []
    logged = [r.getMessage() for r in caplog.records]
    assert any("x.csv is a link and is skipped" in line for line in logged)
    assert any("sub is a link and is skipped" in line for line in logged)

    ingest_school(settings, "27783Y", schools["27783Y"], school)
    archived = _archived(settings)
    assert archived and SECRET not in archived


def test_a_school_folder_that_is_a_link_is_not_a_school(tmp_path, caplog):
    settings = init_home(tmp_path / "home")
    outside = tmp_path / "outside" / "dir"
    outside.mkdir(parents=True)
    (outside / "ListEleve_12345A.csv").write_bytes(SECRET)
    settings.inbox.mkdir(parents=True, exist_ok=True)
    (settings.inbox / "12345A").symlink_to(outside, target_is_directory=True)

    with caplog.at_level(logging.WARNING):
        schools, strangers = discover_inbox(settings.inbox)
    assert schools == {} and strangers == ["12345A"]
    assert any("12345A is a link" in r.getMessage() for r in caplog.records)
    # The officer sees it where loose entries are shown (massar status, the ingest artifact).
    [entry] = stray_entries(settings.inbox)
    assert (entry.name, entry.kind) == ("12345A", "link")
    assert "1 link(s), which are never followed" in stray_sentence([entry])
    assert _archived(settings) == []

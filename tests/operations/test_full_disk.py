"""A nearly full disk under the home's archive or warehouse (a small tmpfs mounted by the test,
as root): the ingest, the night's consolidation and the evaluation stop with one sentence
naming the folder and the space needed; nothing is half-registered or half-published; once
space is freed, the next run completes."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.operations.runs import check_ingested_once, fill_inbox, finish, start, submissions

pytestmark = pytest.mark.slow


@contextmanager
def nearly_full(folder: Path, size_mb: int = 24, free_kb: int = 512) -> Iterator[Path]:
    """A tmpfs of ``size_mb`` mounted on ``folder`` with a filler file leaving ``free_kb``
    free; yields the filler (delete it to free the space). Skips where mounting is refused."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"this machine cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        filler = folder / "filler.bin"
        with filler.open("wb") as handle:
            handle.truncate(0)
            room = shutil.disk_usage(folder).free - free_kb * 1024
            chunk = b"\0" * (1 << 20)
            while room > 0:  # tmpfs: written bytes take room (truncate would not)
                handle.write(chunk[: min(room, len(chunk))])
                room -= len(chunk)
        yield filler
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture
def home(tmp_path, province):
    from massar.home import init_home

    settings = init_home(tmp_path / "home")
    # Two schools: a full disk is refused before any school's work, whatever their number.
    return settings.home, fill_inbox(settings.home, province, schools=2)


def error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1, err[-3000:]
    return lines[0]


def nights(home: Path) -> list[tuple[int, str]]:
    from sqlalchemy import select

    from tests.operations.runs import database
    from warehouse.control import Night

    handle = database(home)
    try:
        with handle.session() as session:
            return [(n.night_id, n.state) for n in session.scalars(select(Night))]
    finally:
        handle.dispose()


def test_an_ingest_on_a_full_archive_disk_stops_with_a_sentence_then_completes(
    home, prefect_server
):
    path, files = home
    with nearly_full(path / "archive") as filler:
        code, out, err = finish(start(path, prefect_server, "ingest"))
        assert code == 1
        sentence = error_line(err)
        assert f"the disk holding {path / 'archive'} is full" in sentence
        assert "MB needed" in sentence and "then run it again" in sentence
        assert "Traceback" not in out + err
        # Nothing half-done: no file registered, no half-copied original.
        assert submissions(path) == []
        assert sorted(p.name for p in (path / "archive").rglob("*") if p.is_file()) == [
            "filler.bin"
        ]
        filler.unlink()  # the operator frees space
        code, out, err = finish(start(path, prefect_server, "ingest"))
        assert code == 0, err[-3000:]
        check_ingested_once(path, files)


def test_a_night_and_an_evaluation_on_a_full_warehouse_disk_publish_nothing(home, prefect_server):
    path, files = home
    code, _, err = finish(start(path, prefect_server, "ingest"))
    assert code == 0, err[-3000:]
    with nearly_full(path / "warehouse", size_mb=64) as filler:
        code, _, err = finish(start(path, prefect_server, "nightly"))
        assert code == 1
        sentence = error_line(err)
        assert f"The night's consolidation stopped: the disk holding {path / 'warehouse'}" in (
            sentence
        )
        assert "MB needed" in sentence
        assert all(state != "completed" for _, state in nights(path))
        filler.unlink()
        code, _out, err = finish(start(path, prefect_server, "nightly"))
        assert code == 0, err[-3000:]
        published = [n for n, state in nights(path) if state == "completed"]
        assert published
        # The evaluation on a disk full again: refused, the published night stays the last.
        with (path / "warehouse" / "filler.bin").open("wb") as handle:
            room = shutil.disk_usage(path / "warehouse").free - 256 * 1024
            while room > 0:
                handle.write(b"\0" * min(room, 1 << 20))
                room -= 1 << 20
        code, _, err = finish(start(path, prefect_server, "evaluate"))
        assert code == 1
        assert f"The evaluation stopped: the disk holding {path / 'warehouse'}" in error_line(err)
        assert [n for n, state in nights(path) if state == "completed"] == published
        (path / "warehouse" / "filler.bin").unlink()
        code, _, err = finish(start(path, prefect_server, "evaluate"))
        assert code == 0, err[-3000:]
    check_ingested_once(path, files)


def test_a_disk_that_fills_during_the_night_publishes_no_half_night(
    home, prefect_server, monkeypatch
):
    """The estimate said there was room, the disk filled anyway (another process, a short
    estimate): the write fails inside Delta; the night is not published, the sentence names
    the warehouse, and the next night completes."""
    import tasks.disk_space
    from flows.ingest import ingest_submissions
    from flows.nightly import nightly_consolidation
    from ground.settings import load_settings

    path, files = home
    monkeypatch.setenv("PREFECT_API_URL", prefect_server)
    settings = load_settings(path)
    ingest_submissions(settings)
    monkeypatch.setattr(tasks.disk_space, "MARGIN", 0)
    monkeypatch.setattr(tasks.disk_space, "folder_bytes", lambda folder: 0)
    with nearly_full(path / "warehouse", size_mb=16, free_kb=96) as filler:
        with pytest.raises(tasks.disk_space.DiskFull) as failed:
            nightly_consolidation(settings)
        assert f"the disk holding {path / 'warehouse'} is full" in str(failed.value)
        assert all(state != "completed" for _, state in nights(path))
        filler.unlink()
        summary = nightly_consolidation(settings)
        assert summary["night_id"] in [n for n, state in nights(path) if state == "completed"]
    check_ingested_once(path, files)


# ---- a fund's exchange --------------------------------------------------------------------------


def test_an_exchange_on_a_full_disk_prepares_and_delivers_nothing_half_then_completes(
    exchange_home, prefect_server
):
    """The batches' disk full: one sentence, no batch recorded, no file left; once freed, the
    batch is prepared and waits for its approval. The fund's inbox (the embedded mode's
    folder) full when it is delivered: one sentence naming it, no half-written file and no
    manifest there; once freed, the next run delivers the rest, each file once."""
    import time

    from ground.settings import load_settings
    from massar.runner import approve_batch
    from tasks.approval_rules import Claim
    from tasks.batch_preparation import batch_summary
    from tests.harness.approvers import PREPARER, PREPARER_ACCOUNT, code
    from tests.harness.prefect_runs import wait_paused
    from tests.operations.runs import batches, delivered, wait_until

    path, env = exchange_home
    settings = load_settings(path)
    folder = path / "exchange" / "cnss" / "batches"
    with nearly_full(folder, size_mb=8, free_kb=256) as filler:
        code_1, out, err = finish(start(path, prefect_server, "exchange", "run", "cnss", **env))
        assert code_1 == 1, err[-3000:]
        sentence = error_line(err)
        assert f"the disk holding {folder} is full" in sentence, sentence
        assert "MB needed" in sentence and "then run it again" in sentence
        assert "Traceback" not in out + err
        assert batches(path) == []
        assert [p.name for p in folder.iterdir()] == ["filler.bin"]
        filler.unlink()  # the operator frees space

        inbox = path / "exchange" / "cnss" / settings.partners["cnss"].remote_inbox
        running = start(path, prefect_server, "exchange", "run", "cnss", **env)
        try:
            [batch] = wait_until(  # type: ignore[misc]
                lambda: [b for b in batches(path) if b.state == "waiting_approval"],
                600,
                "the batch is prepared once space is freed",
            )
            wait_paused(batch.flow_run_id, time.monotonic() + 120)
            with nearly_full(inbox, size_mb=4, free_kb=0) as inbox_filler:
                claim = Claim("cli", code=code(path, PREPARER), os_account=PREPARER_ACCOUNT)
                approve_batch(settings, batch.batch_id, claim, True, "")
                code_2, out, err = finish(running, timeout=600)
                assert code_2 == 1, err[-3000:]
                sentence = error_line(err)
                assert f"The delivery of batch {batch.batch_id} stopped" in sentence, sentence
                assert f"the disk holding {inbox} is full" in sentence, sentence
                assert "Traceback" not in out + err
                summary = batch_summary(settings, batch.batch_id)
                assert summary["state"] == "approved"
                there = sorted(p.name for p in inbox.iterdir() if p.name != "filler.bin")
                assert not [n for n in there if n.endswith((".part", "_manifest.json"))]
                assert there == sorted(delivered(path))  # complete files only, recorded
                inbox_filler.unlink()
                code_3, out, err = finish(
                    start(path, prefect_server, "exchange", "run", "cnss", **env)
                )
                assert code_3 == 0, err[-3000:]
                summary = batch_summary(settings, batch.batch_id)
                assert summary["state"] == "delivered"
                assert sorted(p.name for p in inbox.iterdir()) == sorted(summary["files"])
                assert sorted(delivered(path)) == sorted(summary["files"])
        finally:
            if running.poll() is None:
                running.kill()


def test_a_batch_cut_off_by_a_full_disk_leaves_no_file(exchange_home, prefect_server, monkeypatch):
    """The estimate said there was room, the disk filled while the batch's files were written:
    the run fails with the sentence, no batch is recorded and none of its files stays."""
    import tasks.disk_space
    from flows.exchange import exchange
    from ground.errors import RequestsUnanswered
    from ground.settings import load_settings
    from tests.operations.runs import batches

    path, env = exchange_home
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PREFECT_API_URL", prefect_server)
    settings = load_settings(path)
    monkeypatch.setattr(tasks.disk_space, "MARGIN", 0)
    monkeypatch.setattr(tasks.disk_space, "BATCH_BYTES_PER_REQUEST_BYTE", 0)
    folder = path / "exchange" / "cnss" / "batches"
    with nearly_full(folder, size_mb=4, free_kb=8):
        with pytest.raises(RequestsUnanswered) as failed:
            exchange("cnss", settings)
        assert f"the disk holding {folder} is full" in str(failed.value)
        assert batches(path) == []
        assert [p.name for p in folder.iterdir()] == ["filler.bin"]

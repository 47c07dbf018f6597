"""The ``housekeeping`` flow for real, on the session's Prefect server: old runs deleted and
the rest kept, a stack's log rotated, the archive measured and never touched, the warehouse
left to the weekly maintenance (real Delta tables), the disk alert e-mailed once to an SMTP
server on 127.0.0.1, the artifact free of pupil data, and ``massar housekeeping``."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from flows.housekeeping import housekeeping
from flows.warehouse_maintenance import warehouse_maintenance
from ground.settings import HousekeepingSettings, Settings
from massar.cli import main
from tests.harness.smtp import loopback_alerts
from tests.tasks.test_housekeeping import _exists, history  # noqa: F401 (fixture)
from warehouse.delta import replace_school_rows

PUPIL_CODE, PUPIL_NAME = "K100000123", "AMRANI Fatima"


def _marks(mark: float) -> pa.Table:
    return pa.table(
        {"school_code": ["11111A"], "student_code": [PUPIL_CODE], "mark": [mark]},
        schema=pa.schema(
            [
                pa.field("school_code", pa.string(), nullable=False),
                pa.field("student_code", pa.string()),
                pa.field("mark", pa.float64()),
            ]
        ),
    )


def _files(folder) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def home(massar_home: Settings, tmp_path, smtp, prefect_server) -> Settings:
    """A home with an archived original, a Delta table of two versions, a stack's log folder
    with a big log, an SMTP server, and a disk threshold no disk meets."""
    _, port = smtp
    (massar_home.archive / "ab").mkdir()
    (massar_home.archive / "ab" / ("ab" + "0" * 62)).write_bytes(b"an original, kept as is")
    replace_school_rows(massar_home.warehouse, "marks_test", ["11111A"], _marks(12.0))
    replace_school_rows(massar_home.warehouse, "marks_test", ["11111A"], _marks(13.0))
    stack_logs = tmp_path / "stack" / "logs"
    stack_logs.mkdir(parents=True)
    (stack_logs / "prefect-worker.log").write_text(
        f"worker line mentioning {PUPIL_NAME}\n" * 30_000, encoding="utf-8"
    )
    return massar_home.model_copy(
        update={
            "alerts": loopback_alerts(port),
            "housekeeping": HousekeepingSettings(
                log_folders=[stack_logs], log_max_megabytes=0.5, min_free_disk_gb=1e9
            ),
        }
    )


def _artifact_markdown() -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        artifacts = client.read_latest_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["housekeeping"]))
        )
    assert artifacts
    return artifacts[0].data


def test_housekeeping_deletes_rotates_measures_and_alerts_once(home, history, smtp):  # noqa: F811
    from prefect.client.orchestration import get_client

    mailbox, _ = smtp
    name, runs = history
    warehouse_maintenance(home)  # the weekly flow, as deployed
    warehouse_before = _files(home.warehouse)
    archive_before = {p: p.read_bytes() for p in home.archive.rglob("*") if p.is_file()}

    result = housekeeping(home)

    assert result["runs"]["deleted_by_flow"][name] == 5
    with get_client(sync_client=True) as client:
        assert not _exists(client, runs["old_completed"].id)
        for key in ("recent", "just_inside", "old_paused", "old_running", "old_scheduled"):
            assert _exists(client, runs[key].id), key
    rotated = [row for row in result["logs"] if row["file"]]
    assert [(r["file"], r["reason"]) for r in rotated] == [("prefect-worker.log", "size")]
    stack_logs = home.housekeeping.log_folders[0]
    assert (stack_logs / "prefect-worker.log").stat().st_size == 0
    assert (
        gzip.decompress((stack_logs / "prefect-worker.log.1.gz").read_bytes()).count(b"\n")
        == 30_000
    )
    # The archive and the warehouse are untouched: the weekly maintenance owns old versions.
    assert {p: p.read_bytes() for p in home.archive.rglob("*") if p.is_file()} == archive_before
    assert _files(home.warehouse) == warehouse_before
    assert result["warehouse_maintenance"]
    assert result["archive"]["files_on_disk"] == 1
    # One e-mail about the disk.
    day = f"{datetime.now(UTC).astimezone(home.zone):%Y-%m-%d}"
    assert result["sent"] == [f"disk-low:{day}"]
    assert len(mailbox.messages) == 1
    assert "Espace disque faible" in mailbox.messages[0]["Subject"]
    # The artifact: what was done, no pupil data, no log content.
    markdown = _artifact_markdown()
    assert f"| Prefect runs | deleted, flow {name} | 5 |" in markdown
    assert "| logs | prefect-worker.log rotated (size)" in markdown
    assert "| warehouse | old versions: weekly warehouse_maintenance" in markdown
    assert "never" not in markdown.split("warehouse_maintenance, last completed |")[1][:8]
    for text in (PUPIL_CODE, PUPIL_NAME, "11111A"):
        assert text not in markdown
        assert text not in mailbox.bodies()[0]

    again = housekeeping(home)  # the same day: nothing more to delete, no second e-mail
    assert name not in again["runs"]["deleted_by_flow"]
    assert again["sent"] == [] and len(mailbox.messages) == 1


def test_massar_housekeeping_command(massar_home, prefect_server, monkeypatch, capsys):
    monkeypatch.setenv("PREFECT_API_URL", prefect_server)
    (massar_home.logs / "massar-errors.log").write_text("--- a traceback\n", encoding="utf-8")
    code = main(["housekeeping", "--home", str(massar_home.home)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "Prefect's history:" in captured.out
    assert "(never deleted)" in captured.out
    assert "Old warehouse versions: the weekly warehouse_maintenance" in captured.out
    assert (massar_home.logs / ".massar-logrotate.json").is_file()


def test_massar_housekeeping_on_a_missing_home_is_one_sentence(tmp_path, capsys):
    code = main(["housekeeping", "--home", str(tmp_path / "nowhere")])
    captured = capsys.readouterr()
    assert code == 1
    assert "massar init" in captured.err and "Traceback" not in captured.err

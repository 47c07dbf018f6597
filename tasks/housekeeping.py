"""Daily housekeeping: Prefect's run history, log rotation, archive growth and free disk.

Plain functions, each usable on its own; the ``housekeeping`` flow (flows/housekeeping.py)
wires them. The policy — what is kept how long and why, what is never deleted — is
docs/housekeeping.md.

* :func:`delete_old_flow_runs`: top-level flow runs that ended (a final state) before their
  flow's retention are deleted through Prefect's API, with their sub-flow runs and artifacts;
  Prefect deletes their task runs (cascade) and logs (a server task on each deletion). Runs
  that are scheduled, running, paused (an approval) or otherwise not final are never touched.
* :func:`rotate_logs`: ``*.log`` files of the home's ``logs/`` and of ``log_folders`` are
  rotated by size or age with copytruncate semantics (the writer keeps its file handle) into
  ``<name>.1.gz`` … ``<name>.<N>.gz``.
* :func:`measure_archive`: the archive of originals per school year and per month, on disk,
  and the free space of the home's file system. The archive is only measured: never deleted,
  never repacked.
* :func:`disk_low_alerts`: one e-mail a day (``tasks.alerts``) while free space is below
  ``min_free_disk_gb``.

Old warehouse versions are not deleted here: the weekly ``warehouse_maintenance`` flow does it
(docs/warehouse-policy.md); :func:`last_warehouse_maintenance` reports when it last completed.

Nothing returned or shown in the artifact names a pupil: counts, sizes, months, flow names and
log file names only.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import select

from ground.settings import Settings
from ground.utc import as_utc
from tasks.alerts import Alert, already_sent
from warehouse.control import ControlDatabase, Submission

MAINTENANCE_FLOW = "warehouse_maintenance"  # flows/warehouse_maintenance.py, deployment weekly
ROTATION_STATE = ".massar-logrotate.json"  # per log folder: when each log was last rotated
_PAGE = 200


# ---- Prefect's run history ----------------------------------------------------------------------


def retention_cutoffs(settings: Settings, now: datetime) -> tuple[datetime, dict[str, datetime]]:
    """The default cutoff and each listed flow's own: runs that ended before it go."""
    config = settings.housekeeping
    now = as_utc(now)
    default = now - timedelta(days=config.flow_run_retention_days)
    by_flow = {
        name: now - timedelta(days=days) for name, days in config.flow_run_retention_by_flow.items()
    }
    return default, by_flow


def _final_runs_ended_before(client: Any, cutoff: datetime, flow_names: list[str] | None):
    """Top-level runs in a final state whose end time is before ``cutoff`` (every page)."""
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterEndTime,
        FlowRunFilterParentTaskRunId,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import TERMINAL_STATES
    from prefect.client.schemas.sorting import FlowRunSort

    run_filter = FlowRunFilter(
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=sorted(TERMINAL_STATES))),
        # Prefect's filter takes a datetime at run time; its stubs name its own type.
        end_time=FlowRunFilterEndTime(before_=cutoff),  # type: ignore[arg-type]
        parent_task_run_id=FlowRunFilterParentTaskRunId(is_null_=True),
    )
    flow_filter = FlowFilter(name=FlowFilterName(any_=flow_names)) if flow_names else None
    runs, offset = [], 0
    while True:
        page = client.read_flow_runs(
            flow_filter=flow_filter,
            flow_run_filter=run_filter,
            sort=FlowRunSort.END_TIME_DESC,
            limit=_PAGE,
            offset=offset,
        )
        runs += page
        offset += len(page)
        if len(page) < _PAGE:
            return runs


def _run_tree(client: Any, run: Any) -> list[Any]:
    """The run and all its sub-flow runs, children first."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    children = client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run.id])
        )
    )
    tree: list[Any] = []
    for child in children:
        if child.id != run.id:
            tree += _run_tree(client, child)
    return [*tree, run]


def _delete_run_tree(client: Any, tree: list[Any]) -> int:
    """Delete the runs' artifacts, then the runs (children first); returns artifacts deleted."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.exceptions import ObjectNotFound

    artifacts = 0
    for run in tree:
        for artifact in client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
        ):
            try:
                client.delete_artifact(artifact.id)
                artifacts += 1
            except ObjectNotFound:
                pass
        # Already gone (the server's own vacuum, a person): nothing to do.
        with contextlib.suppress(ObjectNotFound):
            client.delete_flow_run(run.id)
    return artifacts


def delete_old_flow_runs(settings: Settings, now: datetime | None = None) -> dict[str, Any]:
    """Delete from Prefect's API (the server, or the home's embedded API) the top-level flow
    runs in a final state (completed, failed, crashed, cancelled) that ended before their
    retention, with their sub-flow runs, task runs, logs and artifacts.

    A run whose sub-flow runs are not all final is kept. Returns the cutoffs and the counts
    deleted per flow name (no data)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterId

    now = as_utc(now or datetime.now(UTC))
    default_cutoff, by_flow = retention_cutoffs(settings, now)
    deleted: dict[str, int] = defaultdict(int)
    kept_unfinished = 0
    artifacts = 0
    subflow_runs = 0
    with get_client(sync_client=True) as client:
        candidates: list[tuple[Any, str | None]] = []
        for run in _final_runs_ended_before(client, default_cutoff, None):
            candidates.append((run, None))  # its flow's own cutoff is checked below
        for name, cutoff in by_flow.items():
            candidates += [(run, name) for run in _final_runs_ended_before(client, cutoff, [name])]
        flow_ids = sorted({run.flow_id for run, _ in candidates}, key=str)
        flows = (
            client.read_flows(flow_filter=FlowFilter(id=FlowFilterId(any_=flow_ids)))
            if flow_ids
            else []
        )
        names = {flow.id: flow.name for flow in flows}
        seen = set()
        for run, group in candidates:
            flow_name = names.get(run.flow_id, "?")
            if group is None and flow_name in by_flow:
                continue  # this flow has its own retention: its group decides
            if run.id in seen:
                continue
            seen.add(run.id)
            tree = _run_tree(client, run)
            if any(not (member.state and member.state.is_final()) for member in tree):
                kept_unfinished += 1
                continue
            artifacts += _delete_run_tree(client, tree)
            subflow_runs += len(tree) - 1
            deleted[flow_name] += 1
    return {
        "default_cutoff": default_cutoff.isoformat(),
        "cutoffs_by_flow": {name: cutoff.isoformat() for name, cutoff in by_flow.items()},
        "deleted_by_flow": dict(sorted(deleted.items())),
        "flow_runs_deleted": sum(deleted.values()),
        "subflow_runs_deleted": subflow_runs,
        "artifacts_deleted": artifacts,
        "kept_with_unfinished_subflows": kept_unfinished,
    }


def last_warehouse_maintenance(settings: Settings) -> str:
    """When ``warehouse_maintenance`` last completed (ISO time, UTC), or "" if never."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[MAINTENANCE_FLOW])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.COMPLETED]))
            ),
            sort=FlowRunSort.END_TIME_DESC,
            limit=1,
        )
    if not runs or runs[0].end_time is None:
        return ""
    return as_utc(runs[0].end_time).isoformat(timespec="seconds")


# ---- log rotation -------------------------------------------------------------------------------


def log_folders(settings: Settings) -> list[Path]:
    """The home's ``logs/`` and the configured ``log_folders``, each once."""
    folders: list[Path] = []
    for folder in [settings.logs, *settings.housekeeping.log_folders]:
        resolved = Path(folder).resolve()
        if resolved not in folders:
            folders.append(resolved)
    return folders


def _generation(log: Path, number: int) -> Path:
    return log.with_name(f"{log.name}.{number}.gz")


def _read_state(folder: Path) -> dict[str, str]:
    try:
        state = json.loads((folder / ROTATION_STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _write_state(folder: Path, state: dict[str, str]) -> None:
    partial = folder / f"{ROTATION_STATE}.tmp"
    partial.write_text(json.dumps(state, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(partial, folder / ROTATION_STATE)


def rotate_log(log: Path, generations: int) -> int:
    """Copy ``log`` compressed into ``<log>.1.gz`` (older generations shifted up, the oldest
    beyond ``generations`` deleted), then truncate ``log`` in place so that the process
    writing it keeps its file handle (copytruncate). The compressed copy is written to a
    hidden file and read back before anything is shifted or truncated. Returns the bytes
    copied. Lines written between the copy and the truncation are lost, as with logrotate's
    copytruncate; writers must open their log in append mode."""
    partial = log.with_name(f".{log.name}.1.gz.tmp")
    with log.open("rb") as source, gzip.open(partial, "wb") as target:
        shutil.copyfileobj(source, target, 1 << 20)
        copied = source.tell()
    with gzip.open(partial, "rb") as check:
        readable = sum(len(chunk) for chunk in iter(lambda: check.read(1 << 20), b""))
    if readable != copied:
        partial.unlink(missing_ok=True)
        raise OSError(f"the compressed copy of {log.name} does not read back")
    _generation(log, generations).unlink(missing_ok=True)
    for number in range(generations - 1, 0, -1):
        if _generation(log, number).exists():
            os.replace(_generation(log, number), _generation(log, number + 1))
    os.replace(partial, _generation(log, 1))
    with log.open("r+b") as handle:
        handle.truncate(0)
    return copied


def rotate_logs(settings: Settings, now: datetime | None = None) -> list[dict[str, Any]]:
    """Rotate each ``*.log`` of :func:`log_folders` larger than ``log_max_megabytes``, or not
    empty and last rotated more than ``log_max_age_days`` ago (a log seen for the first time
    starts its age then). A missing folder is reported, not created. Returns one row per
    folder and rotated file (folder, file, reason, bytes; no content)."""
    config = settings.housekeeping
    now = as_utc(now or datetime.now(UTC))
    max_bytes = int(config.log_max_megabytes * 1_000_000)
    max_age = timedelta(days=config.log_max_age_days)
    rows: list[dict[str, Any]] = []
    for folder in log_folders(settings):
        if not folder.is_dir():
            rows.append({"folder": str(folder), "file": "", "reason": "missing", "bytes": 0})
            continue
        state = _read_state(folder)
        for log in sorted(folder.glob("*.log")):
            if not log.is_file() or log.is_symlink():
                continue
            size = log.stat().st_size
            last = state.get(log.name)
            if last is None:
                state[log.name] = now.isoformat()
                last = state[log.name]
            reason = ""
            if size >= max_bytes:
                reason = "size"
            elif size > 0 and now - as_utc(datetime.fromisoformat(last)) >= max_age:
                reason = "age"
            if not reason:
                continue
            copied = rotate_log(log, config.log_generations)
            state[log.name] = now.isoformat()
            rows.append(
                {"folder": str(folder), "file": log.name, "reason": reason, "bytes": copied}
            )
        for name in [name for name in state if not (folder / name).exists()]:
            del state[name]
        _write_state(folder, state)
    return rows


# ---- archive growth and free disk ---------------------------------------------------------------


@dataclass
class ArchiveReport:
    """The archive's size by school year and by month of reception (from the control
    database, each original counted once), on disk, and the home's free disk."""

    by_school_year: dict[str, tuple[int, int]] = field(default_factory=dict)  # files, bytes
    by_month: dict[str, tuple[int, int]] = field(default_factory=dict)  # "YYYY-MM", local time
    files_on_disk: int = 0
    bytes_on_disk: int = 0
    disk_total_bytes: int = 0
    disk_free_bytes: int = 0
    bytes_per_month: int = 0  # mean of the last three complete months
    months_left: float | None = None  # free space at that pace; None: no growth measured

    @property
    def free_gb(self) -> float:
        return self.disk_free_bytes / 1e9

    def as_dict(self) -> dict[str, Any]:
        return {
            "by_school_year": {k: list(v) for k, v in self.by_school_year.items()},
            "by_month": {k: list(v) for k, v in self.by_month.items()},
            "files_on_disk": self.files_on_disk,
            "bytes_on_disk": self.bytes_on_disk,
            "disk_total_bytes": self.disk_total_bytes,
            "disk_free_bytes": self.disk_free_bytes,
            "bytes_per_month": self.bytes_per_month,
            "months_left": self.months_left,
        }


def _month(moment: datetime, settings: Settings) -> str:
    return f"{as_utc(moment).astimezone(settings.zone):%Y-%m}"


def measure_archive(settings: Settings, now: datetime | None = None) -> ArchiveReport:
    """Measure ``archive/``: every original by its sha256, counted once, under the school
    year and the month (local time) it was first received; the files and bytes on disk; the
    free space of the home's file system, and months left at the last three months' pace."""
    now = as_utc(now or datetime.now(UTC))
    first_seen: dict[str, tuple[datetime, str, int]] = {}
    database = ControlDatabase(settings.resolved_database_url)
    try:
        with database.session() as session:
            rows = session.execute(
                select(
                    Submission.sha256,
                    Submission.received_at,
                    Submission.school_year,
                    Submission.size_bytes,
                ).where(Submission.archive_path != "")
            ).all()
    finally:
        database.dispose()
    for sha256, received_at, school_year, size in rows:
        received = as_utc(received_at)
        if sha256 not in first_seen or received < first_seen[sha256][0]:
            first_seen[sha256] = (received, school_year or "", size or 0)
    by_year: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    by_month: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for received, school_year, size in first_seen.values():
        for bucket in (by_year[school_year or "unknown"], by_month[_month(received, settings)]):
            bucket[0] += 1
            bucket[1] += size
    report = ArchiveReport(
        by_school_year={k: (v[0], v[1]) for k, v in sorted(by_year.items())},
        by_month={k: (v[0], v[1]) for k, v in sorted(by_month.items())},
    )
    if settings.archive.is_dir():
        for path in settings.archive.rglob("*"):
            if path.is_file() and not path.is_symlink():
                report.files_on_disk += 1
                report.bytes_on_disk += path.stat().st_size
    usage = shutil.disk_usage(settings.home)
    report.disk_total_bytes, report.disk_free_bytes = usage.total, usage.free
    # The pace: the three complete months before this one.
    local = now.astimezone(settings.zone)
    months, year, month = [], local.year, local.month
    for _ in range(3):
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
        months.append(f"{year:04d}-{month:02d}")
    report.bytes_per_month = sum(report.by_month.get(m, (0, 0))[1] for m in months) // 3
    if report.bytes_per_month > 0:
        report.months_left = round(report.disk_free_bytes / report.bytes_per_month, 1)
    return report


def disk_low_alerts(settings: Settings, report: ArchiveReport, now: datetime) -> list[Alert]:
    """One alert (key ``disk-low:<local date>``: e-mailed once a day) when the home's file
    system has less than ``min_free_disk_gb`` free; none otherwise."""
    threshold = settings.housekeeping.min_free_disk_gb
    if report.free_gb >= threshold:
        return []
    day = f"{as_utc(now).astimezone(settings.zone):%Y-%m-%d}"
    free = f"{report.free_gb:.1f}"
    pace = (
        f" Au rythme des trois derniers mois ({report.bytes_per_month / 1e9:.2f} Go par mois), "
        f"l'archive remplirait l'espace restant en {report.months_left:g} mois."
        if report.months_left is not None
        else ""
    )
    return [
        Alert(
            key=f"disk-low:{day}",
            kind="disk_low",
            subject=f"[Massar {settings.province}] Espace disque faible : {free} Go libres",
            text_fr=(
                f"Le disque du dossier de la plateforme ({settings.home}) n'a plus que {free} Go "
                f"libres (seuil : {threshold:g} Go).{pace} Les originaux de l'archive ne sont "
                "jamais supprimés : ajoutez de l'espace disque ou déplacez les sauvegardes "
                "hors de ce disque avant qu'il ne soit plein, sinon l'ingestion et la nuit "
                "échoueront."
            ),
            text_ar=f"المساحة الحرة على قرص المنصة {free} جيغابايت فقط؛ المرجو إضافة مساحة.",
            facts={
                "dossier": str(settings.home),
                "libre (Go)": free,
                "seuil (Go)": f"{threshold:g}",
                "archive (Go)": f"{report.bytes_on_disk / 1e9:.2f}",
                "fichiers archivés": report.files_on_disk,
                "date": day,
            },
        )
    ]


def not_yet_sent(settings: Settings, alerts: list[Alert]) -> list[Alert]:
    """The alerts whose key is not recorded in ``sent_alerts`` (each is e-mailed once)."""
    if not alerts:
        return []
    database = ControlDatabase(settings.resolved_database_url)
    try:
        sent = already_sent(database, [alert.key for alert in alerts])
    finally:
        database.dispose()
    return [alert for alert in alerts if alert.key not in sent]


# ---- the run's report ---------------------------------------------------------------------------


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f}"


def housekeeping_markdown(
    runs: dict[str, Any],
    logs: list[dict[str, Any]],
    archive: ArchiveReport,
    maintenance: str,
    alerts: list[Alert],
) -> str:
    """The run's artifact: what was deleted, rotated and measured (counts, sizes, months,
    flow and log file names; no pupil data)."""
    lines = [
        "## Housekeeping",
        "",
        "| part | what | value |",
        "|---|---|---|",
        f"| Prefect runs | ended before {runs['default_cutoff'][:10]}, deleted | "
        f"{runs['flow_runs_deleted']} ({runs['subflow_runs_deleted']} sub-flow runs, "
        f"{runs['artifacts_deleted']} artifacts) |",
    ]
    for name, cutoff in runs["cutoffs_by_flow"].items():
        lines.append(f"| Prefect runs | flow {name}: retention until {cutoff[:10]} | own cutoff |")
    for name, count in runs["deleted_by_flow"].items():
        lines.append(f"| Prefect runs | deleted, flow {name} | {count} |")
    if runs["kept_with_unfinished_subflows"]:
        lines.append(
            f"| Prefect runs | kept: a sub-flow run not final | "
            f"{runs['kept_with_unfinished_subflows']} |"
        )
    rotated = [row for row in logs if row["file"]]
    for row in rotated:
        lines.append(
            f"| logs | {row['file']} rotated ({row['reason']}) in {row['folder']} | "
            f"{_mb(row['bytes'])} MB |"
        )
    if not rotated:
        lines.append("| logs | rotated | none |")
    for row in logs:
        if row["reason"] == "missing":
            lines.append(f"| logs | folder missing | {row['folder']} |")
    lines.append(
        f"| warehouse | old versions: weekly warehouse_maintenance, last completed | "
        f"{maintenance or 'never'} |"
    )
    for year, (files, size) in archive.by_school_year.items():
        lines.append(f"| archive | school year {year} | {files} files, {_mb(size)} MB |")
    for month, (files, size) in list(archive.by_month.items())[-12:]:
        lines.append(f"| archive | received {month} | {files} files, {_mb(size)} MB |")
    lines += [
        f"| archive | on disk (never deleted) | {archive.files_on_disk} files, "
        f"{_mb(archive.bytes_on_disk)} MB |",
        f"| archive | growth, mean of the last 3 months | "
        f"{_mb(archive.bytes_per_month)} MB/month |",
        f"| disk | free on the home's file system | {archive.free_gb:.1f} GB of "
        f"{archive.disk_total_bytes / 1e9:.1f} GB"
        + (f", about {archive.months_left:g} months at this pace" if archive.months_left else "")
        + " |",
        f"| disk | alert | {'free space below the threshold' if alerts else 'none'} |",
    ]
    return "\n".join(lines) + "\n"


def describe_housekeeping(result: dict[str, Any]) -> str:
    """A few sentences for the operator (``massar housekeeping``)."""
    runs, archive = result["runs"], result["archive"]
    rotated = [row["file"] for row in result["logs"] if row["file"]]
    missing = [row["folder"] for row in result["logs"] if row["reason"] == "missing"]
    lines = [
        f"Prefect's history: {runs['flow_runs_deleted']} run(s) ended before "
        f"{runs['default_cutoff'][:10]} deleted ({runs['subflow_runs_deleted']} sub-flow runs, "
        f"{runs['artifacts_deleted']} artifacts).",
        f"Logs: {len(rotated)} rotated" + (f" ({', '.join(rotated)})." if rotated else "."),
        f"Archive: {archive['files_on_disk']} originals, {_mb(archive['bytes_on_disk'])} MB "
        f"(never deleted); {archive['disk_free_bytes'] / 1e9:.1f} GB free on the home's disk.",
        "Old warehouse versions: the weekly warehouse_maintenance, last completed "
        f"{result['warehouse_maintenance'] or 'never'}.",
    ]
    if missing:
        lines.append(
            f"Log folders not found (check housekeeping.log_folders): {', '.join(missing)}."
        )
    if result["alerts"]:
        lines.append(
            "Free disk is below housekeeping.min_free_disk_gb: "
            + (
                "the officers were e-mailed."
                if result["sent"]
                else "no e-mail now (already sent today, or no SMTP server in [alerts])."
            )
        )
    return "\n".join(lines)


delete_old_flow_runs_task = task(name="delete_old_flow_runs", cache_policy=NO_CACHE)(
    delete_old_flow_runs
)
last_warehouse_maintenance_task = task(name="last_warehouse_maintenance", cache_policy=NO_CACHE)(
    last_warehouse_maintenance
)
rotate_logs_task = task(name="rotate_logs", cache_policy=NO_CACHE)(rotate_logs)
measure_archive_task = task(name="measure_archive", cache_policy=NO_CACHE)(measure_archive)
disk_low_alerts_task = task(name="disk_low_alerts", cache_policy=NO_CACHE)(disk_low_alerts)
not_yet_sent_task = task(name="alerts_not_yet_sent", cache_policy=NO_CACHE)(not_yet_sent)

"""``massar demo``: a synthetic province in a home, run through every flow that exists."""

from __future__ import annotations

import shutil
from pathlib import Path

from rich.console import Console

from ground.funds import FUND_KEYS
from massar.home import init_home


def stage_inbox(province: Path, inbox: Path) -> int:
    """Copy each school's folder of a generated province into ``inbox/<school_code>/``.

    Returns the number of files placed. Files already in the inbox are overwritten with the
    same content, so running the demo twice is safe.
    """
    placed = 0
    for school in sorted(p for p in province.iterdir() if p.is_dir() and p.name[:5].isdigit()):
        for source in sorted(q for q in school.rglob("*") if q.is_file()):
            target = inbox / school.name / source.relative_to(school)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
            placed += 1
    return placed


def load_school_reference(settings, reference: Path) -> int:  # type: ignore[no-untyped-def]
    """Record the province's schools (a generated or official schools.csv) in the control
    database."""
    import csv

    from warehouse.control import ControlDatabase
    from warehouse.submissions import upsert_schools

    with reference.open(encoding="utf-8") as handle:
        rows = [
            {
                "school_code": r["school_code"],
                "name_ar": r.get("name_ar", ""),
                "name_fr": r.get("name_fr", ""),
                "commune": r.get("commune", ""),
                "cycle": r.get("cycle", ""),
                "school_type": r.get("type", "main"),
                "parent_school_code": r.get("parent_school_code") or None,
            }
            for r in csv.DictReader(handle)
        ]
    database = ControlDatabase(settings.resolved_database_url)
    try:
        return upsert_schools(database, rows)
    finally:
        database.dispose()


def run_demo(home: Path | str | None, *, schools: int, seed: int, console: Console) -> str:
    """Initialise the home, generate a province, stage it in the inbox, run the flows."""
    from massar.synthetic import generate_province

    settings = init_home(home)
    province = settings.home / "demo-province"
    if province.exists():
        shutil.rmtree(province)
    console.print(f"Generating a synthetic province of {schools} schools into {province} ...")
    generated = generate_province(province, schools=schools, seed=seed)
    placed = stage_inbox(province, settings.inbox)
    load_school_reference(settings, province / "schools.csv")
    console.print(f"{placed} files placed in the inbox; running the nightly flow ...")
    from massar.runner import run_nightly

    ingest_line = run_nightly(settings)
    console.print("Answering the CNSS and CMR requests (a demo officer approves each batch) ...")
    exchange_lines = run_demo_exchanges(settings, province)
    lines = [
        f"Demo province: {generated.schools} schools, {generated.pupils} pupils, "
        f"{generated.files} files generated in {generated.seconds:.1f} s.",
        f"{placed} school files placed in {settings.inbox}.",
        ingest_line,
        f"Partner requests: {province / 'partners'}.",
        f"Control database: {settings.resolved_database_url}.",
        *exchange_lines,
        f"Look at: {settings.reports} (one report per school), and run "
        f"'massar status --home {settings.home}' or 'massar query \"select class_code, "
        f"count(*) from enrollments group by 1\" --home {settings.home}'.",
    ]
    return "\n".join(lines)


DEMO_PREPARER = "massar demo"
DEMO_APPROVER = "Officier de démonstration"


def run_demo_exchanges(settings, province: Path) -> list[str]:  # type: ignore[no-untyped-def]
    """Both funds' exchanges on the generated requests, in the embedded mode: the fund's
    request placed in ``exchange/<fund>/outbox/``, the batch prepared and signed with a
    throwaway certificate, approved by a demo officer enrolled under this account, with the
    code their authenticator would show (the demo plays the officer), delivered
    into ``exchange/<fund>/inbox/``; then the demo plays the fund, acknowledges, and the next
    run reconciles. Returns one line per step for the summary."""
    import contextvars
    import threading
    import time
    from datetime import UTC, datetime, timedelta

    from connectors.exchange.acknowledgement import ChildOutcome, build_acknowledgement
    from connectors.exchange.file_names import acknowledgement_file_name
    from connectors.exchange.registry import profile_for
    from connectors.signing import make_test_certificate
    from ground.approvers import (
        code_at_step,
        current_os_account,
        enrol_approver,
        load_approvers,
        time_step,
    )
    from massar.runner import approve_batch, run_exchange
    from tasks.acknowledgements import reconciliation
    from tasks.approval_rules import Claim
    from tasks.batch_delivery import undecided_batches
    from tasks.batch_preparation import batch_summary

    reference = settings.home / "reference"
    reference.mkdir(exist_ok=True)
    shutil.copy(province / "leavers.csv", reference / "leavers.csv")
    now = datetime.now(UTC)
    key, certificate = make_test_certificate(
        settings.home / "keys", now - timedelta(days=1), now + timedelta(days=30), "Demo - Tiznit"
    )
    settings = settings.model_copy(
        update={
            "signing_key": key,
            "signing_certificate": certificate,
            "approval_poll_seconds": 1,
            # A demo whose officer failed ends (expired) instead of waiting 72 hours.
            "approval_timeout_hours": 0.25,
        }
    )
    # The demo enrols its officer under this account (an administrator's 'massar approvers
    # add'); the batches are prepared by "massar demo", so the officer is not their preparer.
    listed = load_approvers(settings.home).by_name(DEMO_APPROVER)
    if listed is not None:
        from ground.approvers import remove_approver

        remove_approver(settings.home, DEMO_APPROVER)
    enrolled = enrol_approver(settings.home, DEMO_APPROVER, current_os_account(), "Massar demo")
    used: list[int] = []  # the TOTP steps the demo's officer used
    lines = []
    for fund in FUND_KEYS:
        outbox = settings.exchange / fund / settings.partners[fund].remote_outbox
        outbox.mkdir(parents=True, exist_ok=True)
        for request in sorted((province / "partners" / fund).glob("*_SCOL_*.csv")):
            shutil.copy(request, outbox / request.name)

        def approve_when_waiting(fund: str = fund) -> None:
            deadline = time.monotonic() + 600
            seen_waiting = None
            while time.monotonic() < deadline:
                waiting = undecided_batches(settings, fund)
                if waiting and seen_waiting is None:
                    seen_waiting = time.monotonic()
                # At the pause a decision resumes the run at once; a decision recorded before
                # it (when this thread cannot see the run's state) is read within a pause slice.
                if waiting and (
                    _run_paused(batch_summary(settings, waiting[0])["flow_run_id"])
                    or time.monotonic() - (seen_waiting or 0) > 30
                ):
                    # The demo plays the approver: the code their app shows, a new one for each
                    # decision (a code is taken once; the next step's is accepted too).
                    step = max(time_step(datetime.now(UTC)), used[-1] + 1 if used else 0)
                    while step > time_step(datetime.now(UTC)) + 1 and time.monotonic() < deadline:
                        time.sleep(1)  # the authenticator's next code comes with the clock
                    used.append(step)
                    claim = Claim(
                        "demo",
                        code=code_at_step(enrolled.secret, step),
                        os_account=enrolled.approver.os_account,
                    )
                    approve_batch(settings, waiting[0], claim, True, "demo: approved by the demo")
                    return
                time.sleep(0.2)

        # The thread sees this process's Prefect API (a context variable threads do not inherit).
        officer = threading.Thread(
            target=contextvars.copy_context().run, args=(approve_when_waiting,), daemon=True
        )
        officer.start()
        lines.append(run_exchange(settings, fund, DEMO_PREPARER))
        officer.join(10)
        # The fund acknowledges what it received; the next run reconciles it.
        profile = profile_for(fund)
        for batch_id in _delivered_batches(settings, fund):
            summary = batch_summary(settings, batch_id)
            xml = next(n for n in summary["files"] if n.endswith(".xml"))
            references = [r["fund_reference"] for r in reconciliation(settings, batch_id)]
            ack = build_acknowledgement(
                profile,
                batch_id,
                summary["sequence"],
                xml,
                summary["files"][xml],
                [ChildOutcome(ref, True) for ref in references],
                datetime.now(UTC),
            )
            name = acknowledgement_file_name(profile, summary["school_year"], summary["sequence"])
            (outbox / name).write_bytes(ack)
        lines.append(run_exchange(settings, fund, DEMO_PREPARER))
    lines.append(
        f"Partner files: {settings.exchange}/<fund>/batches/ (what was sent: inbox/); check one "
        "as a fund would with 'massar exchange verify FILE'."
    )
    return lines


def _run_paused(flow_run_id: str) -> bool:
    """Whether the exchange run waits in its pause (where a decision resumes it at once)."""
    from uuid import UUID

    from prefect.client.orchestration import get_client

    if not flow_run_id:
        return False
    try:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(UUID(flow_run_id)).state
    except Exception:  # this thread does not reach the run's API
        return False
    return state is not None and state.is_paused()


def _delivered_batches(settings, fund: str) -> list[str]:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from warehouse.control import ControlDatabase, ExchangeBatch

    database = ControlDatabase(settings.resolved_database_url)
    try:
        with database.session() as session:
            return list(
                session.scalars(
                    select(ExchangeBatch.batch_id).where(
                        ExchangeBatch.partner == fund, ExchangeBatch.state == "delivered"
                    )
                )
            )
    finally:
        database.dispose()

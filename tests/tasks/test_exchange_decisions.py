"""Officers decide a waiting batch's REVIEW children before its approval: from the terminal
('massar review'), recorded (who, when, which child, from what to what), in the hash-chained
message log, in files built and signed again (checked with xmlsec1 and openssl), and an
approval that covers the final manifest only. A real home with the generated province's
warehouse; plain functions, no Prefect."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from connectors.exchange.registry import profile_for
from connectors.exchange.response_files import read_response_csv
from connectors.signing import make_test_certificate
from connectors.verify import verify_file
from ground.approvers import current_os_account
from ground.errors import OperatorError
from massar.cli import main
from tasks.approval_rules import Claim, DecisionRefused
from tasks.batch_decisions import expire_batch, record_decision
from tasks.batch_delivery import deliver_approved
from tasks.batch_preparation import batch_summary, prepare_batch
from tasks.exchange_batches import batch_folder
from tasks.exchange_review import ChildChoice, decide_children, review_state
from tests.harness.approvers import APPROVER, PREPARER, code, enrol_test_approvers
from tests.harness.warehouse_home import pupils_warehouse_home
from warehouse.control import Approval, ControlDatabase, ExchangeBatch, ReviewDecision
from warehouse.message_log import message_log
from warehouse.message_log_evidence import check_evidence, export_evidence, verify_message_log
from warehouse.review_records import review_decisions

REQUEST = "CNSS_SCOL_2023-2024_0001.csv"


@pytest.fixture(scope="module")
def warehouse_home(province, tmp_path_factory) -> Path:
    """A home whose warehouse holds the province's pupils and guardians (plain ingest and
    consolidation), with Massar's leaving records; copied by each test."""
    settings = pupils_warehouse_home(province, tmp_path_factory.mktemp("decisions") / "home")
    return settings.home


@pytest.fixture
def batch(warehouse_home, province, tmp_path):
    """(settings, batch id): a CNSS batch prepared by PREPARER, waiting for approval."""
    home = tmp_path / "home"
    shutil.copytree(warehouse_home, home)
    from ground.settings import load_settings

    now = datetime.now(UTC)
    key, certificate = make_test_certificate(
        home / "keys", now - timedelta(days=1), now + timedelta(days=30), "Direction (test)"
    )
    settings = load_settings(home).model_copy(
        update={"signing_key": key, "signing_certificate": certificate}
    )
    enrol_test_approvers(home)  # APPROVER under this account, PREPARER under another
    # The command line reads the same settings from the home's file (top-level keys).
    text = (home / "massar.toml").read_text(encoding="utf-8")
    top = f'signing_key = "{key}"\nsigning_certificate = "{certificate}"\n'
    (home / "massar.toml").write_text(top + text, encoding="utf-8")
    summary = prepare_batch(settings, "cnss", province / "partners" / "cnss" / REQUEST, PREPARER)
    assert summary["counts"]["review"]["queued"] >= 3  # the generated request has some
    return settings, summary["batch_id"]


def _files(settings, batch_id: str) -> dict[str, bytes]:
    summary = batch_summary(settings, batch_id)
    folder = batch_folder(settings, "cnss", batch_id)
    return {name: (folder / name).read_bytes() for name in summary["files"]}


def _answers(settings, batch_id: str) -> dict[str, tuple[str, str]]:
    files = _files(settings, batch_id)
    data = next(content for name, content in files.items() if name.endswith(".csv"))
    return {
        a.fund_reference: (a.status, a.student_code or "")
        for a in read_response_csv(profile_for("cnss"), data)
    }


def _signatures_hold(settings, batch_id: str) -> None:
    folder = batch_folder(settings, "cnss", batch_id)
    names = batch_summary(settings, batch_id)["files"]
    xml = next(folder / n for n in names if n.endswith(".xml"))
    table = next(folder / n for n in names if n.endswith(".csv"))
    checked = subprocess.run(
        ["xmlsec1", "--verify", "--trusted-pem", str(settings.signing_certificate), str(xml)],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stderr
    cms = subprocess.run(
        [
            "openssl",
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            f"{table}.p7s",
            "-content",
            str(table),
            "-CAfile",
            str(settings.signing_certificate),
            "-purpose",
            "any",
            "-out",
            "/dev/null",
        ],
        capture_output=True,
        text=True,
    )
    assert cms.returncode == 0, cms.stderr
    manifest = next(folder / n for n in names if n.endswith("_manifest.json"))
    assert verify_file(manifest).ok


def terminal(settings) -> Claim:
    """APPROVER at the platform's terminal: this account, and her current code."""
    return Claim("cli", code=code(settings.home, APPROVER), os_account=current_os_account())


def form(settings, name: str) -> Claim:
    """``name`` in Prefect's form, with their current code."""
    return Claim("prefect-ui", code=code(settings.home, name), name=name)


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_an_officer_decides_from_the_terminal_and_the_approval_covers_the_final_files(
    batch, capsys
):
    settings, batch_id = batch
    home = str(settings.home)
    state = review_state(settings, batch_id)
    first = state.queue.children[0]
    candidate = first.candidates[0]
    before = batch_summary(settings, batch_id)["manifest_sha256"]
    assert _answers(settings, batch_id)[first.fund_reference] == ("REVIEW", "")

    # The listing shows what is needed to decide, names included (the officer's terminal).
    exit_code, out, err = run(capsys, "review", batch_id, "--home", home)
    assert exit_code == 0, err
    assert f"#1  {first.fund_reference}" in out
    assert f"{first.family_name} {first.first_name}, born {first.birth_date}" in out
    assert candidate.student_code in out and candidate.first_name in out
    assert "score" in out and "the answer is" in out

    exit_code, out, err = run(
        capsys,
        "review",
        batch_id,
        "--child",
        first.fund_reference,
        "--candidate",
        candidate.student_code,
        "--by",
        APPROVER,
        "--code",
        code(settings.home, APPROVER),
        "--comment",
        "même enfant, noms vérifiés",
        "--home",
        home,
    )
    assert exit_code == 0, err
    assert f"{first.fund_reference} REVIEW → {candidate.answer['status']}" in out
    summary = batch_summary(settings, batch_id)
    after = summary["manifest_sha256"]
    assert after != before and f"manifest {after}" in out
    # The files carry the decision, signed again and checked by independent tools.
    assert _answers(settings, batch_id)[first.fund_reference] == (
        candidate.answer["status"],
        candidate.student_code,
    )
    _signatures_hold(settings, batch_id)
    assert summary["counts"]["review"]["decided"] == 1
    assert summary["counts"]["statuses"]["REVIEW"] == len(state.queue.children) - 1
    # Recorded: who, when, which child, from what to what, on which manifests.
    database = ControlDatabase(settings.resolved_database_url)
    try:
        [row] = review_decisions(database, batch_id)
        assert (row["decided_by"], row["channel"], row["comment"]) == (
            APPROVER,
            "cli",
            "même enfant, noms vérifiés",
        )
        assert (row["fund_reference"], row["item"]) == (first.fund_reference, 1)
        assert (row["from_status"], row["to_status"]) == ("REVIEW", candidate.answer["status"])
        assert row["student_code"] == candidate.student_code
        assert (row["manifest_before"], row["manifest_after"]) == (before, after)
        # ... and in the hash-chained message log, bound to the new manifest.
        [entry] = message_log(database, batch_id=batch_id)
        assert entry["file_name"] == (
            f"review-decision:{first.fund_reference}:REVIEW->{candidate.answer['status']}"
        )
        assert (entry["sha256"], entry["signature_sha256"]) == (row["digest"], after)
        assert entry["approver"] == APPROVER
        assert verify_message_log(database).intact
    finally:
        database.dispose()
    # review.csv says what was decided, without the pupil's code.
    folder = batch_folder(settings, "cnss", batch_id)
    review = (folder / "review.csv").read_bytes().decode("utf-8-sig")
    rows = csv.DictReader(io.StringIO(review))
    child_row = next(r for r in rows if r["fund_reference"] == first.fund_reference)
    assert child_row["decision"] == f"{candidate.answer['status']} by {APPROVER}"
    assert candidate.student_code not in review

    # The approval covers the final manifest; delivered files are the decided ones.
    decision = record_decision(settings, batch_id, terminal(settings), True, "", manifest=after)
    assert decision.covered_sha256 == after
    report = deliver_approved(settings, batch_id)
    assert report["sent"]
    inbox = settings.exchange / "cnss" / settings.partners["cnss"].remote_inbox.strip("/")
    for name, content in _files(settings, batch_id).items():
        assert (inbox / name).read_bytes() == content
    # Once decided, the batch's children can no longer change.
    exit_code, _, err = run(
        capsys,
        "review",
        batch_id,
        "--child",
        first.fund_reference,
        "--keep",
        "--home",
        home,
    )
    assert exit_code == 1 and "not waiting for approval any more" in err


def test_a_batch_expires_at_its_deadline_and_not_a_moment_before(batch):
    """The clock is injected: the rule is checked on both sides of the deadline, no waiting."""
    settings, batch_id = batch
    settings = settings.model_copy(update={"approval_timeout_hours": 72})
    prepared = datetime.fromisoformat(batch_summary(settings, batch_id)["prepared_at"])
    deadline = prepared.replace(tzinfo=UTC) + timedelta(hours=72)
    assert expire_batch(settings, batch_id, now=deadline - timedelta(seconds=1)) is None
    assert batch_summary(settings, batch_id)["state"] == "waiting_approval"
    expired = expire_batch(settings, batch_id, now=deadline)
    assert expired is not None and expired.decision == "expired"
    assert batch_summary(settings, batch_id)["state"] == "expired"
    database = ControlDatabase(settings.resolved_database_url)
    try:  # the expiry is a decision in the message log
        assert [e["file_name"] for e in message_log(database)] == ["decision:expired"]
        assert verify_message_log(database).intact
    finally:
        database.dispose()
    with pytest.raises(DecisionRefused, match="not waiting for approval any more"):
        record_decision(settings, batch_id, terminal(settings), True)


def test_keep_and_not_found_name_nobody_and_a_decision_can_be_taken_back(batch):
    settings, batch_id = batch
    queue = review_state(settings, batch_id).queue
    first, second = queue.children[0], queue.children[1]
    chosen = first.candidates[0].student_code
    decide_children(
        settings, batch_id, [ChildChoice(first.fund_reference, chosen)], terminal(settings)
    )
    choices = [
        ChildChoice(first.fund_reference, "keep"),
        ChildChoice(second.fund_reference, "not-found"),
    ]
    outcome = decide_children(settings, batch_id, choices, form(settings, APPROVER))
    assert outcome.resigned and outcome.still_review == len(queue.children) - 1
    answers = _answers(settings, batch_id)
    assert answers[first.fund_reference] == ("REVIEW", "")
    assert answers[second.fund_reference] == ("NOT_FOUND", "")
    _signatures_hold(settings, batch_id)
    # Deciding what is already decided records nothing and signs nothing.
    again = decide_children(
        settings, batch_id, [ChildChoice(second.fund_reference, "not-found")], terminal(settings)
    )
    assert again.changes == [] and not again.resigned
    database = ControlDatabase(settings.resolved_database_url)
    try:
        rows = review_decisions(database, batch_id)
    finally:
        database.dispose()
    assert [(r["fund_reference"], r["from_status"], r["to_status"]) for r in rows] == [
        (first.fund_reference, "REVIEW", first.candidates[0].answer["status"]),
        (first.fund_reference, first.candidates[0].answer["status"], "REVIEW"),
        (second.fund_reference, "REVIEW", "NOT_FOUND"),
    ]


def test_only_an_approver_who_did_not_prepare_the_batch_decides_its_children(batch, capsys):
    settings, batch_id = batch
    child = review_state(settings, batch_id).queue.children[0]
    before = batch_summary(settings, batch_id)["manifest_sha256"]
    choice = [ChildChoice(child.fund_reference, "not-found")]
    with pytest.raises(DecisionRefused, match=r"prepared batch .* cannot decide its REVIEW"):
        decide_children(settings, batch_id, choice, form(settings, PREPARER))
    with pytest.raises(DecisionRefused, match="not on the approvers list"):
        decide_children(settings, batch_id, choice, Claim("prefect-ui", "123456", "Intrus"))
    exit_code, _, err = run(
        capsys,
        "review",
        batch_id,
        "--child",
        child.fund_reference,
        "--not-found",
        "--by",
        "intrus",
        "--home",
        str(settings.home),
    )
    # This terminal's account is APPROVER's: a name typed with --by is only a check.
    assert exit_code == 1 and f"which is {APPROVER}'s account, not intrus's" in err
    assert "\n" not in err.strip()
    assert batch_summary(settings, batch_id)["manifest_sha256"] == before
    database = ControlDatabase(settings.resolved_database_url)
    try:
        assert review_decisions(database, batch_id) == []
        # Each refusal is in the message log, and nothing else is.
        assert [e["file_name"] for e in message_log(database)] == [
            "refused:review:preparer",
            "refused:review:unlisted-name",
            "refused:review:name-mismatch",
        ]
        assert verify_message_log(database).intact
    finally:
        database.dispose()


def test_what_an_officer_was_shown_must_still_be_the_batch(batch):
    settings, batch_id = batch
    queue = review_state(settings, batch_id).queue
    shown = batch_summary(settings, batch_id)["manifest_sha256"]
    decide_children(
        settings,
        batch_id,
        [ChildChoice(queue.children[0].fund_reference, "not-found")],
        terminal(settings),
        manifest=shown,
    )
    # A second officer's form, or an approver, still showing the former manifest: refused.
    with pytest.raises(DecisionRefused, match="changed since it was shown"):
        decide_children(
            settings,
            batch_id,
            [ChildChoice(queue.children[1].fund_reference, "not-found")],
            form(settings, APPROVER),
            manifest=shown,
        )
    with pytest.raises(DecisionRefused, match="changed since it was shown"):
        record_decision(settings, batch_id, terminal(settings), True, manifest=shown)
    assert batch_summary(settings, batch_id)["state"] == "waiting_approval"


def test_an_approval_recorded_for_an_older_manifest_delivers_nothing(batch):
    settings, batch_id = batch
    queue = review_state(settings, batch_id).queue
    older = batch_summary(settings, batch_id)["manifest_sha256"]
    decide_children(
        settings,
        batch_id,
        [ChildChoice(queue.children[0].fund_reference, "not-found")],
        terminal(settings),
    )
    database = ControlDatabase(settings.resolved_database_url)
    try:  # as if an approval of the former files had slipped in
        with database.session() as session:
            session.add(
                Approval(
                    batch_id=batch_id,
                    decision="approved",
                    approver=APPROVER,
                    covered_sha256=older,
                    channel="cli",
                )
            )
            session.execute(
                update(ExchangeBatch)
                .where(ExchangeBatch.batch_id == batch_id)
                .values(state="approved")
            )
    finally:
        database.dispose()
    with pytest.raises(OperatorError, match="covers manifest"):
        deliver_approved(settings, batch_id)
    inbox = settings.exchange / "cnss" / settings.partners["cnss"].remote_inbox.strip("/")
    assert not inbox.exists() or list(inbox.iterdir()) == []


def test_a_decision_changed_afterwards_is_caught_by_the_log_check_and_the_evidence(batch, tmp_path):
    settings, batch_id = batch
    child = review_state(settings, batch_id).queue.children[0]
    decide_children(
        settings, batch_id, [ChildChoice(child.fund_reference, "not-found")], terminal(settings)
    )
    database = ControlDatabase(settings.resolved_database_url)
    try:
        evidence = export_evidence(database, tmp_path / "evidence.json", batch_id=batch_id)
        assert check_evidence(evidence) == []
        assert json.loads(evidence.read_text())["review_decisions"][0]["to_status"] == "NOT_FOUND"
        with database.session() as session:
            session.execute(update(ReviewDecision).values(to_status="SCHOOLED"))
        check = verify_message_log(database)
        assert not check.intact
        assert "was changed after it was recorded" in " ".join(check.problems)
    finally:
        database.dispose()


@pytest.mark.parametrize(
    ("extra", "exit_code", "said"),
    [
        (["--not-found", "--keep"], 2, "cannot go together"),
        (["--keep"], 1, f"needs {APPROVER}'s current code"),
        (["--candidate", "Z999999999", "--code", "CODE"], 1, "is not a candidate of child"),
    ],
)
def test_review_mistakes_are_one_sentence(batch, capsys, extra, exit_code, said):
    settings, batch_id = batch
    child = review_state(settings, batch_id).queue.children[0]
    extra = [code(settings.home, APPROVER) if arg == "CODE" else arg for arg in extra]
    args = ["review", batch_id, "--child", child.fund_reference, *extra]
    got, _, err = run(capsys, *args, "--home", str(settings.home))
    assert got == exit_code and said in err and "Traceback" not in err
    got, _, err = run(capsys, "review", batch_id, "--child", "NOBODY", "--home", str(settings.home))
    assert got == 1 and "NOBODY is not a REVIEW child" in err

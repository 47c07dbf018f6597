"""The delivery ledger, the hash-chained message log, acknowledgements and overdue batches, on
SQLite and PostgreSQL alike."""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, update

from tests.harness.postgres import fresh_control_database
from warehouse.acknowledgement_records import overdue_batches, record_acknowledgement
from warehouse.control import (
    Approval,
    Delivery,
    ExchangeBatch,
    MessageLogEntry,
)
from warehouse.exchange_ledger import ExchangeLedger, ExchangeRecordError, ledger_rows
from warehouse.message_log import GENESIS_HASH, canonical_entry, chain_hash, message_log
from warehouse.message_log_evidence import check_evidence, export_evidence, verify_message_log

APPROVER = "F. Zahra"


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    handle = fresh_control_database(request, tmp_path, request.param)
    yield handle
    handle.dispose()


def sha(text_: str) -> str:
    return hashlib.sha256(text_.encode()).hexdigest()


def add_batch(database, batch_id, partner="cnss", sequence=1, files=None, manifest=""):
    with database.session() as session:
        session.add(
            ExchangeBatch(
                batch_id=batch_id,
                partner=partner,
                sequence=sequence,
                files=files or {},
                manifest_sha256=manifest,
            )
        )
        session.flush()
        session.add(
            Approval(
                batch_id=batch_id, decision="approved", approver=APPROVER, covered_sha256=manifest
            )
        )


def deliver(ledger, batch_id, name, partner="cnss"):
    """What deliver_batch does for one file once the partner holds it."""
    ledger.count_attempt(batch_id, partner, name, sha(name), 10, f"/inbox/{name}")
    return ledger.record_delivered(
        batch_id, partner, name, sha(name), 10, f"/inbox/{name}", sha(name + ".p7s"), APPROVER
    )


@pytest.fixture
def delivered(database):
    """Two batches, five files delivered, logged in this order."""
    ledger = ExchangeLedger(database)
    add_batch(database, "CNSS-1", sequence=1)
    add_batch(database, "CMR-1", partner="cmr", sequence=1)
    for name in ("a.xml", "a.csv", "a.manifest.json"):
        deliver(ledger, "CNSS-1", name)
    for name in ("b.xml", "b.csv"):
        deliver(ledger, "CMR-1", name, partner="cmr")
    return database


def test_the_ledger_counts_attempts_and_records_each_delivery_once(database):
    add_batch(database, "CNSS-1")
    ledger = ExchangeLedger(database)
    assert ledger.count_attempt("CNSS-1", "cnss", "a.xml", sha("a"), 1, "/inbox/a.xml") == 1
    assert ledger.count_attempt("CNSS-1", "cnss", "a.xml", sha("a"), 1, "/inbox/a.xml") == 2
    assert ledger.delivered_files("CNSS-1") == {}
    first = ledger.record_delivered(
        "CNSS-1", "cnss", "a.xml", sha("a"), 1, "/inbox/a.xml", "", APPROVER
    )
    again = ledger.record_delivered(
        "CNSS-1", "cnss", "a.xml", sha("a"), 1, "/inbox/a.xml", "", APPROVER
    )
    assert first == again == 1 and len(message_log(database)) == 1
    assert ledger.delivered_files("CNSS-1") == {"a.xml": sha("a")}
    [row] = ledger_rows(database, "CNSS-1")
    assert (row["state"], row["attempts"]) == ("delivered", 2)
    assert row["delivered_at"].tzinfo is not None
    with pytest.raises(ExchangeRecordError, match="already delivered with other content"):
        ledger.count_attempt("CNSS-1", "cnss", "a.xml", sha("b"), 1, "/inbox/a.xml")
    ledger.finish_batch("CNSS-1")
    with database.session() as session:
        assert session.get(ExchangeBatch, "CNSS-1").state == "delivered"


def test_the_message_log_is_a_hash_chain_anyone_can_recompute(delivered):
    entries = message_log(delivered)
    assert [e["sequence"] for e in entries] == [1, 2, 3, 4, 5]
    previous = GENESIS_HASH
    for entry in entries:
        canonical = json.dumps(
            [
                entry["sequence"],
                entry["logged_at"],
                entry["partner"],
                entry["batch_id"],
                entry["file_name"],
                entry["sha256"],
                entry["signature_sha256"],
                entry["approver"],
            ],
            ensure_ascii=False,
            separators=(",", ":"),
        )
        assert entry["logged_at"].endswith("+00:00")
        assert canonical == canonical_entry(*json.loads(canonical))
        assert entry["previous_hash"] == previous
        assert entry["entry_hash"] == hashlib.sha256((previous + canonical).encode()).hexdigest()
        previous = entry["entry_hash"]
    check = verify_message_log(delivered)
    assert check.intact and check.entries == 5 and check.head_hash == previous
    assert [e["file_name"] for e in message_log(delivered, partner="cmr")] == ["b.xml", "b.csv"]


def test_a_modified_entry_is_detected(delivered):
    with delivered.session() as session:
        session.execute(
            update(MessageLogEntry)
            .where(MessageLogEntry.sequence == 2)
            .values(sha256=sha("forged"))
        )
    check = verify_message_log(delivered)
    assert not check.intact
    assert any(
        "entry 2 (batch CNSS-1, file a.csv) does not match its hash" in p for p in check.problems
    )
    assert any(
        "a.csv of batch CNSS-1 is delivered in the ledger but has no" in p for p in check.problems
    )


def test_a_modified_entry_with_its_hash_recomputed_breaks_the_next_link(delivered):
    head = verify_message_log(delivered).head_hash
    with delivered.session() as session:
        entry = session.get(MessageLogEntry, 3)
        entry.approver = "Someone else"
        entry.entry_hash = chain_hash(
            entry.previous_hash,
            canonical_entry(
                entry.sequence,
                entry.logged_at,
                entry.partner,
                entry.batch_id,
                entry.file_name,
                entry.sha256,
                entry.signature_sha256,
                entry.approver,
            ),
        )
    # Entry 3 now matches its own hash, but entry 4 still points at the original one.
    check = verify_message_log(delivered, known_head=head)
    assert len(check.problems) == 1
    assert check.problems[0].startswith("Message-log entry 4 does not link to the entry before")


def test_a_deleted_entry_is_detected_in_the_middle_and_at_the_end(delivered):
    with delivered.session() as session:
        session.execute(delete(MessageLogEntry).where(MessageLogEntry.sequence == 2))
    problems = verify_message_log(delivered).problems
    assert any("entry 2 is missing before entry 3" in p for p in problems)
    assert any("entry 3 does not link" in p for p in problems)

    with delivered.session() as session:
        session.execute(delete(MessageLogEntry).where(MessageLogEntry.sequence == 5))
    problems = verify_message_log(delivered).problems
    assert any("b.csv of batch CMR-1 is delivered in the ledger but has no" in p for p in problems)


def test_a_truncated_log_no_longer_holds_an_exported_head(delivered):
    head = verify_message_log(delivered).head_hash
    with delivered.session() as session:
        session.execute(delete(MessageLogEntry).where(MessageLogEntry.sequence == 5))
        session.execute(delete(Delivery).where(Delivery.file_name == "b.csv"))
    check = verify_message_log(delivered)
    assert check.intact  # the rest is a consistent chain...
    check = verify_message_log(delivered, known_head=head)
    assert any("chain head" in p and "no longer in the message log" in p for p in check.problems)


def test_evidence_export_is_checkable_on_its_own(delivered, tmp_path):
    path = export_evidence(delivered, tmp_path / "evidence" / "cnss.json", partner="cnss")
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["verification"] == {"intact": True, "problems": []}
    assert [e["file_name"] for e in document["entries"]] == ["a.xml", "a.csv", "a.manifest.json"]
    assert len(document["chain"]) == 5
    assert document["chain_head"] == verify_message_log(delivered).head_hash
    assert {row["partner"] for row in document["deliveries"]} == {"cnss"}
    assert "sha256_hex(previous_hash + canonical)" in document["hash_rule"]
    assert check_evidence(path) == []

    document["entries"][1]["file_name"] = "other.csv"
    path.write_text(json.dumps(document), encoding="utf-8")
    problems = check_evidence(path)
    assert any("changed after its export" in p for p in problems)
    assert any("Entry 2" in p for p in problems)

    one = export_evidence(delivered, tmp_path / "cmr-1.json", batch_id="CMR-1")
    assert [e["sequence"] for e in json.loads(one.read_text())["entries"]] == [4, 5]
    assert check_evidence(one) == []


def test_concurrent_deliveries_never_fork_the_chain(database):
    add_batch(database, "CNSS-1")
    add_batch(database, "CMR-1", partner="cmr")
    errors: list[BaseException] = []

    def worker(batch_id: str, partner: str, prefix: str) -> None:
        ledger = ExchangeLedger(database)
        try:
            for index in range(15):
                deliver(ledger, batch_id, f"{prefix}{index}.xml", partner=partner)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [
        threading.Thread(target=worker, args=("CNSS-1", "cnss", "a")),
        threading.Thread(target=worker, args=("CNSS-1", "cnss", "b")),
        threading.Thread(target=worker, args=("CMR-1", "cmr", "c")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    entries = message_log(database)
    assert [e["sequence"] for e in entries] == list(range(1, 46))
    assert verify_message_log(database).intact


def test_acknowledgements_are_bound_to_what_was_delivered(delivered):
    manifest = sha("a.manifest.json")
    record = record_acknowledgement(
        delivered,
        batch_id="CNSS-1",
        partner="cnss",
        file_name="ACK_CNSS-1.xml",
        data_sha256=sha("ack"),
        acknowledged_sha256=manifest,
        accepted=3,
        rejected=1,
        detail={"rejected_references": ["R-17"]},
    )
    assert record.bound and not record.duplicate
    again = record_acknowledgement(
        delivered,
        batch_id="CNSS-1",
        partner="cnss",
        file_name="ACK_CNSS-1.xml",
        data_sha256=sha("ack"),
        acknowledged_sha256=manifest,
        accepted=3,
        rejected=1,
    )
    assert again.duplicate and again.acknowledgement_id == record.acknowledgement_id
    stray = record_acknowledgement(
        delivered,
        batch_id="CMR-1",
        partner="cmr",
        file_name="ACK_CMR-1.xml",
        data_sha256=sha("ack2"),
        acknowledged_sha256=sha("something we never sent"),
        accepted=0,
        rejected=0,
    )
    assert not stray.bound
    with delivered.session() as session:
        assert session.get(ExchangeBatch, "CNSS-1").state == "acknowledged"
        assert session.get(ExchangeBatch, "CMR-1").state != "acknowledged"
    with pytest.raises(ExchangeRecordError, match="never prepared"):
        record_acknowledgement(
            delivered,
            batch_id="CNSS-404",
            partner="cnss",
            file_name="x",
            data_sha256=sha("x"),
            acknowledged_sha256=sha("x"),
            accepted=0,
            rejected=0,
        )
    with pytest.raises(ExchangeRecordError, match="prepared for cnss"):
        record_acknowledgement(
            delivered,
            batch_id="CNSS-1",
            partner="cmr",
            file_name="x",
            data_sha256=sha("y"),
            acknowledged_sha256=sha("x"),
            accepted=0,
            rejected=0,
        )


def test_overdue_batches_wait_for_a_bound_acknowledgement(delivered):
    with delivered.session() as session:
        session.execute(update(Delivery).values(delivered_at=datetime(2024, 3, 1, 10, tzinfo=UTC)))
    add_batch(delivered, "CNSS-2", sequence=2)
    ledger = ExchangeLedger(delivered)
    ledger.count_attempt("CNSS-2", "cnss", "c.xml", sha("c"), 1, "/inbox/c.xml")  # pending
    start = datetime(2024, 3, 1, 10, tzinfo=UTC)

    assert overdue_batches(delivered, start + timedelta(hours=47), 48) == []
    late = overdue_batches(delivered, start + timedelta(hours=49), 48)
    assert [(b.batch_id, b.partner, b.waiting_hours) for b in late] == [
        ("CMR-1", "cmr", 49.0),
        ("CNSS-1", "cnss", 49.0),
    ]
    assert late[0].delivered_at == start
    # One delay per partner, as in the settings.
    per_partner = overdue_batches(delivered, start + timedelta(hours=30), {"cnss": 24, "cmr": 72})
    assert [b.batch_id for b in per_partner] == ["CNSS-1"]
    # A stray acknowledgement does not count; a bound one does.
    record_acknowledgement(
        delivered,
        batch_id="CNSS-1",
        partner="cnss",
        file_name="ACK-stray.xml",
        data_sha256=sha("s"),
        acknowledged_sha256=sha("?"),
        accepted=0,
        rejected=0,
    )
    assert len(overdue_batches(delivered, start + timedelta(hours=49), 48, partner="cnss")) == 1
    record_acknowledgement(
        delivered,
        batch_id="CNSS-1",
        partner="cnss",
        file_name="ACK.xml",
        data_sha256=sha("a"),
        acknowledged_sha256=sha("a.xml"),
        accepted=3,
        rejected=0,
    )
    assert overdue_batches(delivered, start + timedelta(hours=49), 48, partner="cnss") == []

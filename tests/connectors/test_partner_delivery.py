"""Delivering a batch to a partner fund and fetching what it leaves, against a real OpenSSH
sshd on loopback (and the local folders of the embedded mode): temporary name then rename,
pinned host key, a connection cut mid-upload retried, a ledger that never sends twice."""

from __future__ import annotations

import hashlib
import os
import time

import pytest
from sqlalchemy import func, select

from connectors.partner_transport import (
    DeliveryConflict,
    DeliveryError,
    DeliveryFailed,
    DeliveryRefused,
    HostKeyRefused,
    LocalFolderTransport,
    RetryPolicy,
    SftpPartnerTransport,
    TransportRefused,
    deliver_batch,
    fetch_acknowledgements,
    fetch_requests,
    partner_transport,
    temporary_name,
)
from ground.settings import PartnerSettings
from warehouse.acknowledgement_records import acknowledged_files, record_acknowledgement
from warehouse.control import (
    Approval,
    ControlDatabase,
    ExchangeBatch,
    MessageLogEntry,
    upgrade_database,
)
from warehouse.exchange_ledger import ExchangeLedger, ledger_rows
from warehouse.message_log import message_log
from warehouse.message_log_evidence import verify_message_log

FAST = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)
APPROVER = "F. Zahra"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def batch_files(big: int = 64 * 1024) -> dict[str, bytes]:
    csv = b"fund_reference;status\n" + os.urandom(big)
    return {
        "CNSS_20240105_0001.xml": b"<response>" + os.urandom(2048) + b"</response>",
        "CNSS_20240105_0001.csv": csv,
        "CNSS_20240105_0001.csv.p7s": b"p7s" + os.urandom(512),
        "CNSS_20240105_0001.manifest.json": b'{"files": []}',
    }


def partner_settings(server, **changes) -> PartnerSettings:
    values = {
        "host": server.host,
        "port": server.port,
        "username": server.username,
        "private_key": server.client_key_path,
        "host_key": server.known_hosts_line,
        "remote_inbox": server.remote_inbox,
        "remote_outbox": server.remote_outbox,
        "timeout_seconds": 10,
    }
    values.update(changes)
    return PartnerSettings(**values)


@pytest.fixture
def database(tmp_path):
    url = f"sqlite:///{tmp_path / 'control.db'}"
    upgrade_database(url)
    db = ControlDatabase(url)
    yield db
    db.dispose()


def prepare_batch(
    database, batch_id="CNSS-2024-0001", files=None, approver=APPROVER, partner="cnss", seq=1
):
    with database.session() as session:
        session.add(
            ExchangeBatch(
                batch_id=batch_id,
                partner=partner,
                sequence=seq,
                state="approved",
                files={name: sha(data) for name, data in (files or {}).items()},
            )
        )
        session.flush()
        if approver:
            session.add(
                Approval(
                    batch_id=batch_id, decision="approved", approver=approver, covered_sha256=""
                )
            )


def log_count(database) -> int:
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(MessageLogEntry))


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def test_files_appear_only_under_their_final_name_once_complete(sftp_server, database, tmp_path):
    files = batch_files(big=2 * 1024 * 1024)
    prepare_batch(database, files=files)
    transport = partner_transport("cnss", partner_settings(sftp_server), tmp_path / "cnss")
    assert isinstance(transport, SftpPartnerTransport)
    seen_during_upload: list[set[str]] = []

    def watch(name: str, done: int, total: int) -> None:
        if 0 < done < total:
            seen_during_upload.append(set(os.listdir(sftp_server.inbox)) | {f"<{name}>"})

    report = deliver_batch(
        transport,
        ExchangeLedger(database),
        batch_id="CNSS-2024-0001",
        files=files,
        approver=APPROVER,
        progress=watch,
        retry=FAST,
    )

    assert seen_during_upload  # the big file was seen mid-upload
    for listing in seen_during_upload:
        assert "<CNSS_20240105_0001.csv>" in listing
        assert temporary_name("CNSS_20240105_0001.csv") in listing
        assert "CNSS_20240105_0001.csv" not in listing
    assert sorted(os.listdir(sftp_server.inbox)) == sorted(files)
    for name, data in files.items():
        assert (sftp_server.inbox / name).read_bytes() == data
    assert report.sent == list(files) and report.bytes_sent == sum(map(len, files.values()))
    assert "is delivered to cnss" in report.message
    rows = ledger_rows(database, "CNSS-2024-0001")
    assert [(r["file_name"], r["state"], r["attempts"]) for r in rows] == [
        (name, "delivered", 1) for name in files
    ]
    assert rows[0]["remote_path"] == f"{sftp_server.remote_inbox}/CNSS_20240105_0001.xml"
    entries = message_log(database, batch_id="CNSS-2024-0001")
    assert [e["file_name"] for e in entries] == list(files)
    assert {e["approver"] for e in entries} == {APPROVER}
    # The detached signature's hash is logged with the file it signs.
    csv_entry = next(e for e in entries if e["file_name"] == "CNSS_20240105_0001.csv")
    assert csv_entry["signature_sha256"] == sha(files["CNSS_20240105_0001.csv.p7s"])
    assert verify_message_log(database).intact
    with database.session() as session:
        assert session.get(ExchangeBatch, "CNSS-2024-0001").state == "delivered"


def test_a_changed_host_key_is_refused_in_one_sentence_and_never_retried(
    sftp_server, database, tmp_path
):
    files = batch_files()
    prepare_batch(database, files=files)
    pinned = sftp_server.known_hosts_line
    sftp_server.rotate_host_key()
    transport = partner_transport(
        "cnss", partner_settings(sftp_server, host_key=pinned), tmp_path / "cnss"
    )
    sleeps = Sleeps()
    with pytest.raises(HostKeyRefused) as refused:
        deliver_batch(
            transport,
            ExchangeLedger(database),
            batch_id="CNSS-2024-0001",
            files=files,
            approver=APPROVER,
            retry=FAST,
            sleep=sleeps,
        )
    assert isinstance(refused.value, DeliveryError)  # one except clause for the flow
    message = str(refused.value)
    assert f"{sftp_server.host}:{sftp_server.port}" in message
    assert "different from the pinned one" in message
    assert "update partners.cnss.host_key in the settings" in message
    assert message.endswith(".") and message.count(". ") == 0  # one sentence
    assert sleeps == []  # never retried
    assert os.listdir(sftp_server.inbox) == []
    assert ledger_rows(database, "CNSS-2024-0001") == [] and log_count(database) == 0


def test_a_connection_cut_mid_upload_leaves_no_final_file_and_the_retry_completes(
    sftp_server, database, tmp_path
):
    files = batch_files(big=4 * 1024 * 1024)
    prepare_batch(database, files=files)
    transport = partner_transport("cnss", partner_settings(sftp_server), tmp_path / "cnss")
    cut: dict[str, object] = {}

    def cut_once(name: str, done: int, total: int) -> None:
        if name == "CNSS_20240105_0001.csv" and done >= 1024 * 1024 and not cut:
            # Wait until the server really holds part of the file, then cut every connection.
            part = sftp_server.inbox / temporary_name(name)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and (not part.exists() or part.stat().st_size == 0):
                time.sleep(0.005)
            cut["partial"] = part.stat().st_size if part.exists() else 0
            cut["killed"] = sftp_server.kill_connections()
            cut["listing"] = sorted(os.listdir(sftp_server.inbox))

    sleeps = Sleeps()
    report = deliver_batch(
        transport,
        ExchangeLedger(database),
        batch_id="CNSS-2024-0001",
        files=files,
        approver=APPROVER,
        progress=cut_once,
        retry=FAST,
        sleep=sleeps,
    )

    assert cut["killed"] >= 1
    # At the cut, only the first file was complete and the big one existed half, hidden.
    assert cut["listing"] == sorted(
        ["CNSS_20240105_0001.xml", temporary_name("CNSS_20240105_0001.csv")]
    )
    assert 0 < cut["partial"] < len(files["CNSS_20240105_0001.csv"])
    assert sleeps == [FAST.base_delay] and report.connection_failures == 1
    assert sorted(os.listdir(sftp_server.inbox)) == sorted(files)  # no .part left behind
    for name, data in files.items():
        assert (sftp_server.inbox / name).read_bytes() == data
    attempts = {r["file_name"]: r["attempts"] for r in ledger_rows(database, "CNSS-2024-0001")}
    assert attempts == {name: 2 if name.endswith(".csv") else 1 for name in files}
    assert [e["file_name"] for e in message_log(database)] == list(files)  # each file once

    again = deliver_batch(
        transport,
        ExchangeLedger(database),
        batch_id="CNSS-2024-0001",
        files=files,
        approver=APPROVER,
        retry=FAST,
    )
    assert again.nothing_sent and again.already_delivered == list(files)
    assert "nothing was sent again" in again.message
    assert log_count(database) == len(files)
    assert sorted(os.listdir(sftp_server.inbox)) == sorted(files)
    assert verify_message_log(database).intact


def test_a_rerun_of_a_delivered_batch_opens_no_connection(sftp_server, database, tmp_path):
    files = batch_files()
    prepare_batch(database, files=files)
    settings = partner_settings(sftp_server)
    ledger = ExchangeLedger(database)
    deliver_batch(
        partner_transport("cnss", settings, tmp_path / "cnss"),
        ledger,
        batch_id="CNSS-2024-0001",
        files=files,
        approver=APPROVER,
    )
    sftp_server.stop()  # the server is gone: a re-run must not need it
    report = deliver_batch(
        partner_transport("cnss", settings, tmp_path / "cnss"),
        ledger,
        batch_id="CNSS-2024-0001",
        files=files,
        approver=APPROVER,
        retry=FAST,
    )
    assert report.nothing_sent and report.message.startswith("Batch CNSS-2024-0001 was already")
    assert log_count(database) == len(files)


def test_delivery_gives_up_after_the_configured_attempts(sftp_server, database, tmp_path):
    files = batch_files()
    prepare_batch(database, files=files)
    transport = partner_transport(
        "cnss", partner_settings(sftp_server, timeout_seconds=2), tmp_path / "cnss"
    )
    sftp_server.stop()
    sleeps = Sleeps()
    with pytest.raises(DeliveryFailed, match="after 4 tries in a row") as failed:
        deliver_batch(
            transport,
            ExchangeLedger(database),
            batch_id="CNSS-2024-0001",
            files=files,
            approver=APPROVER,
            retry=FAST,
            sleep=sleeps,
        )
    assert "0 of 4 file(s) are delivered" in str(failed.value)
    assert sleeps == [0.01, 0.02, 0.04]  # exponential backoff between the 4 tries
    assert log_count(database) == 0


def test_an_existing_final_file_is_never_overwritten(sftp_server, database, tmp_path):
    files = batch_files()
    prepare_batch(database, files=files)
    manifest = "CNSS_20240105_0001.manifest.json"
    (sftp_server.inbox / manifest).write_bytes(b"someone else's manifest")
    transport = partner_transport("cnss", partner_settings(sftp_server), tmp_path / "cnss")
    with pytest.raises(DeliveryConflict, match="with other content"):
        deliver_batch(
            transport,
            ExchangeLedger(database),
            batch_id="CNSS-2024-0001",
            files=files,
            approver=APPROVER,
            retry=FAST,
        )
    assert (sftp_server.inbox / manifest).read_bytes() == b"someone else's manifest"
    assert temporary_name(manifest) not in os.listdir(sftp_server.inbox)
    states = {r["file_name"]: r["state"] for r in ledger_rows(database, "CNSS-2024-0001")}
    assert states[manifest] == "pending" and log_count(database) == 3

    # The same bytes already there (e.g. a delivery whose recording was lost): recorded, once.
    (sftp_server.inbox / manifest).write_bytes(files[manifest])
    report = deliver_batch(
        transport,
        ExchangeLedger(database),
        batch_id="CNSS-2024-0001",
        files=files,
        approver=APPROVER,
        retry=FAST,
    )
    assert report.found_at_partner == [manifest] and report.sent == []
    assert log_count(database) == 4 and verify_message_log(database).intact


def test_no_approval_no_delivery(sftp_server, database, tmp_path):
    files = batch_files()
    transport = partner_transport("cnss", partner_settings(sftp_server), tmp_path / "cnss")
    ledger = ExchangeLedger(database)

    def deliver(batch_id, approver=APPROVER, payload=files):
        return deliver_batch(transport, ledger, batch_id=batch_id, files=payload, approver=approver)

    with pytest.raises(DeliveryRefused, match="is not in the control database"):
        deliver("CNSS-2024-0009")
    prepare_batch(database, "CNSS-2024-0001", files=files, approver=None)
    with pytest.raises(DeliveryRefused, match="no approval on record"):
        deliver("CNSS-2024-0001")
    prepare_batch(database, "CNSS-2024-0002", files=files, seq=2)
    with pytest.raises(DeliveryRefused, match=f"approved by {APPROVER}, not Someone"):
        deliver("CNSS-2024-0002", approver="Someone")
    changed = {**files, "CNSS_20240105_0001.csv": b"other rows"}
    with pytest.raises(DeliveryRefused, match="not the approved ones"):
        deliver("CNSS-2024-0002", payload=changed)
    prepare_batch(database, "CMR-2024-0001", files=files, partner="cmr", seq=3)
    with pytest.raises(DeliveryRefused, match="prepared for cmr, not cnss"):
        deliver("CMR-2024-0001")
    assert os.listdir(sftp_server.inbox) == [] and log_count(database) == 0


def test_requests_and_acknowledgements_are_fetched_from_the_outbox(sftp_server, database, tmp_path):
    files = batch_files()
    prepare_batch(database, files=files)
    transport = partner_transport("cnss", partner_settings(sftp_server), tmp_path / "cnss")
    deliver_batch(
        transport,
        ExchangeLedger(database),
        batch_id="CNSS-2024-0001",
        files=files,
        approver=APPROVER,
    )
    request = b"REQ_CNSS_20240201_0002.csv" + "طفل;ولي\n".encode() * 1000
    ack = b"<ack batch='CNSS-2024-0001'/>"
    (sftp_server.outbox / "REQ_CNSS_20240201_0002.csv").write_bytes(request)
    (sftp_server.outbox / "ACK_CNSS-2024-0001.xml").write_bytes(ack)
    (sftp_server.outbox / ".ACK_CNSS-2024-0002.xml.part").write_bytes(b"half")  # in progress

    requests = fetch_requests(transport, pattern="REQ_*")
    assert requests == [("REQ_CNSS_20240201_0002.csv", request)]
    received = tmp_path / "cnss" / "received"
    assert (received / "REQ_CNSS_20240201_0002.csv").read_bytes() == request

    acks = fetch_acknowledgements(transport, pattern="ACK_*")
    assert [(a.name, a.data) for a in acks] == [("ACK_CNSS-2024-0001.xml", ack)]
    record = record_acknowledgement(
        database,
        batch_id="CNSS-2024-0001",
        partner="cnss",
        file_name=acks[0].name,
        data_sha256=acks[0].sha256,
        acknowledged_sha256=sha(files["CNSS_20240105_0001.manifest.json"]),
        accepted=10,
        rejected=0,
        detail={"profile": "cnss/1.0"},
    )
    assert record.bound and not record.duplicate
    known = acknowledged_files(database, "cnss")
    assert fetch_acknowledgements(transport, pattern="ACK_*", known=known) == []
    assert sorted(os.listdir(received)) == ["ACK_CNSS-2024-0001.xml", "REQ_CNSS_20240201_0002.csv"]
    # Nothing is removed from the partner's outbox.
    assert len(os.listdir(sftp_server.outbox)) == 3
    with database.session() as session:
        assert session.get(ExchangeBatch, "CNSS-2024-0001").state == "acknowledged"


def test_the_embedded_mode_delivers_into_and_fetches_from_local_folders(database, tmp_path):
    files = batch_files()
    prepare_batch(database, files=files)
    root = tmp_path / "home" / "exchange" / "cnss"
    transport = partner_transport("cnss", PartnerSettings(), root)
    assert isinstance(transport, LocalFolderTransport)
    seen: list[tuple[str, list[str]]] = []

    def watch(name: str, done: int, total: int) -> None:
        seen.append((name, sorted(os.listdir(root / "inbox"))))

    report = deliver_batch(
        transport,
        ExchangeLedger(database),
        batch_id="CNSS-2024-0001",
        files=files,
        approver=APPROVER,
        progress=watch,
    )
    assert report.sent == list(files)
    assert seen and all(
        name not in listing and temporary_name(name) in listing for name, listing in seen
    )
    assert sorted(os.listdir(root / "inbox")) == sorted(files)
    assert all((root / "inbox" / n).read_bytes() == d for n, d in files.items())
    assert deliver_batch(
        transport,
        ExchangeLedger(database),
        batch_id="CNSS-2024-0001",
        files=files,
        approver=APPROVER,
    ).nothing_sent
    assert log_count(database) == len(files)

    (root / "outbox").mkdir()
    (root / "outbox" / "ACK_CNSS-2024-0001.xml").write_bytes(b"<ack/>")
    (root / "outbox" / "REQ_CNSS_0002.csv").write_bytes(b"ref;cin\n")
    assert fetch_requests(transport, pattern="REQ_*") == [("REQ_CNSS_0002.csv", b"ref;cin\n")]
    assert fetch_acknowledgements(transport, pattern="ACK_*") == [
        ("ACK_CNSS-2024-0001.xml", b"<ack/>")
    ]
    assert (root / "received" / "ACK_CNSS-2024-0001.xml").read_bytes() == b"<ack/>"
    # The partner corrects its acknowledgement under the same name: both copies are kept.
    (root / "outbox" / "ACK_CNSS-2024-0001.xml").write_bytes(b"<ack v='2'/>")
    assert fetch_acknowledgements(transport, pattern="ACK_*")[0].data == b"<ack v='2'/>"
    kept = sorted(p.name for p in (root / "received").iterdir())
    assert "ACK_CNSS-2024-0001.xml" in kept and len(kept) == 3


def test_a_copy_that_reads_back_differently_is_sent_again(database, tmp_path):
    files = batch_files()
    prepare_batch(database, files=files)

    class Truncating(LocalFolderTransport):
        damaged = 0

        def session(self):
            outer = super().session()
            transport = self

            class Wrapper:
                def __enter__(self):
                    self.inner = outer.__enter__()
                    original = self.inner.write_temporary

                    def write_temporary(name, data, progress):
                        if name.endswith(".xml") and transport.damaged == 0:
                            transport.damaged += 1
                            data = data[:-10]  # the copy on the other side lost bytes
                        original(name, data, progress)

                    self.inner.write_temporary = write_temporary
                    return self.inner

                def __exit__(self, *exc):
                    return outer.__exit__(*exc)

            return Wrapper()

    root = tmp_path / "cnss"
    transport = Truncating("cnss", root / "inbox", root / "outbox", root / "received")
    sleeps = Sleeps()
    report = deliver_batch(
        transport,
        ExchangeLedger(database),
        batch_id="CNSS-2024-0001",
        files=files,
        approver=APPROVER,
        retry=FAST,
        sleep=sleeps,
    )
    assert transport.damaged == 1 and sleeps == [FAST.base_delay]
    assert report.attempts["CNSS_20240105_0001.xml"] == 2
    assert (root / "inbox" / "CNSS_20240105_0001.xml").read_bytes() == files[
        "CNSS_20240105_0001.xml"
    ]
    assert sorted(os.listdir(root / "inbox")) == sorted(files)


def test_file_names_must_be_plain(database, tmp_path):
    root = tmp_path / "cnss"
    transport = LocalFolderTransport("cnss", root / "in", root / "out", root / "rx")
    for name in ("../escape.xml", ".hidden", "a/b.csv", ""):
        with pytest.raises(ValueError, match="not a plain file name"):
            deliver_batch(
                transport,
                ExchangeLedger(database),
                batch_id="B",
                files={name: b"x"},
                approver=APPROVER,
            )
    with pytest.raises(ValueError, match="at least one file"):
        deliver_batch(
            transport, ExchangeLedger(database), batch_id="B", files={}, approver=APPROVER
        )


def test_a_refused_login_stops_at_once_with_a_sentence(sftp_server, database, tmp_path):
    import paramiko

    files = batch_files()
    prepare_batch(database, files=files)
    stranger = tmp_path / "stranger_rsa"
    paramiko.RSAKey.generate(2048).write_private_key_file(str(stranger))
    transport = partner_transport(
        "cnss", partner_settings(sftp_server, private_key=stranger), tmp_path / "cnss"
    )
    sleeps = Sleeps()
    with pytest.raises(DeliveryError, match="refused the login") as refused:
        deliver_batch(
            transport,
            ExchangeLedger(database),
            batch_id="CNSS-2024-0001",
            files=files,
            approver=APPROVER,
            retry=FAST,
            sleep=sleeps,
        )
    assert isinstance(refused.value, TransportRefused) and sleeps == []

"""Benchmark: delivering partner batches over SFTP to a real OpenSSH sshd on loopback.

Starts the test harness's sshd (tests/harness), a SQLite control database in a temporary
folder, and measures ``connectors.partner_transport.deliver_batch``:

- one large batch: 4 files totalling ``--large-mb`` MB (default 20): MB/s, counting the bytes
  delivered (each file is also read back over SFTP to check its sha256, so the wire carries
  about twice as much);
- ``--batches`` small batches (default 200) of 4 files of a few KB, one SSH connection each:
  files/s and batches/s;
- a re-run of every batch, which must send nothing (ledger only, no connection): its time.

Also the embedded mode (local folders) for the same work with ``--local``.

    .venv/bin/python benchmarks/deliver_batch.py [--large-mb 20] [--batches 200] [--local]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

APPROVER = "F. Zahra"


def batch_files(prefix: str, sizes: list[int]) -> dict[str, bytes]:
    names = [f"{prefix}.xml", f"{prefix}.csv", f"{prefix}.csv.p7s", f"{prefix}.manifest.json"]
    return {name: os.urandom(size) for name, size in zip(names, sizes, strict=True)}


def prepare(database, batch_id: str, sequence: int, files: dict[str, bytes]) -> None:
    from warehouse.control import Approval, ExchangeBatch

    with database.session() as session:
        session.add(
            ExchangeBatch(
                batch_id=batch_id,
                partner="cnss",
                sequence=sequence,
                state="approved",
                files={name: hashlib.sha256(data).hexdigest() for name, data in files.items()},
            )
        )
        session.flush()
        session.add(
            Approval(batch_id=batch_id, decision="approved", approver=APPROVER, covered_sha256="")
        )


def run(transport, work: Path, large_mb: float, batches: int) -> None:
    from connectors.partner_transport import deliver_batch
    from warehouse.control import ControlDatabase, upgrade_database
    from warehouse.exchange_ledger import ExchangeLedger
    from warehouse.message_log_evidence import verify_message_log

    url = f"sqlite:///{work / 'control.db'}"
    upgrade_database(url)
    database = ControlDatabase(url)
    ledger = ExchangeLedger(database)
    try:
        total = int(large_mb * 1e6)
        large = batch_files("CNSS_LARGE", [total * 4 // 10, total * 6 // 10 - 8192, 4096, 4096])
        prepare(database, "CNSS-LARGE", 0, large)
        small = []
        for index in range(1, batches + 1):
            files = batch_files(f"CNSS_{index:04d}", [6000, 3000, 1800, 400])
            prepare(database, f"CNSS-{index:04d}", index, files)
            small.append((f"CNSS-{index:04d}", files))

        started = time.perf_counter()
        report = deliver_batch(
            transport, ledger, batch_id="CNSS-LARGE", files=large, approver=APPROVER
        )
        large_seconds = time.perf_counter() - started
        assert len(report.sent) == 4, report.message
        print(
            f"large batch: 4 files, {report.bytes_sent / 1e6:.1f} MB in {large_seconds:.2f} s "
            f"= {report.bytes_sent / 1e6 / large_seconds:.1f} MB/s (uploaded, read back, "
            "renamed, recorded)"
        )

        started = time.perf_counter()
        for batch_id, files in small:
            report = deliver_batch(
                transport, ledger, batch_id=batch_id, files=files, approver=APPROVER
            )
            assert len(report.sent) == 4, report.message
        small_seconds = time.perf_counter() - started
        files_sent = 4 * len(small)
        print(
            f"small batches: {len(small)} batches × 4 files in {small_seconds:.2f} s = "
            f"{files_sent / small_seconds:.0f} files/s, {len(small) / small_seconds:.1f} "
            f"batches/s ({1000 * small_seconds / len(small):.0f} ms per batch, one connection "
            "each)"
        )

        started = time.perf_counter()
        for batch_id, files in [("CNSS-LARGE", large), *small]:
            report = deliver_batch(
                transport, ledger, batch_id=batch_id, files=files, approver=APPROVER
            )
            assert report.nothing_sent, report.message
        rerun_seconds = time.perf_counter() - started
        print(
            f"re-run of all {len(small) + 1} batches: nothing sent, {rerun_seconds:.2f} s "
            f"({1000 * rerun_seconds / (len(small) + 1):.1f} ms per batch)"
        )
        started = time.perf_counter()
        check = verify_message_log(database)
        print(
            f"message log: {check.entries} entries, intact={check.intact}, verified in "
            f"{time.perf_counter() - started:.2f} s"
        )
    finally:
        database.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large-mb", type=float, default=20.0)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--local", action="store_true", help="also the embedded mode")
    args = parser.parse_args()

    from connectors.partner_transport import partner_transport
    from ground.settings import PartnerSettings
    from tests.harness import SftpServer

    with tempfile.TemporaryDirectory(prefix="massar-bench-delivery-") as folder:
        work = Path(folder)
        with SftpServer() as server:
            settings = PartnerSettings(
                host=server.host,
                port=server.port,
                username=server.username,
                private_key=server.client_key_path,
                host_key=server.known_hosts_line,
                remote_inbox=server.remote_inbox,
                remote_outbox=server.remote_outbox,
                timeout_seconds=30,
            )
            print(f"SFTP: OpenSSH sshd on {server.host}:{server.port}")
            (work / "sftp").mkdir()
            run(partner_transport("cnss", settings, work / "sftp"), work / "sftp", **_sizes(args))
        if args.local:
            print("embedded mode (local folders)")
            (work / "local").mkdir()
            transport = partner_transport("cnss", PartnerSettings(), work / "local" / "cnss")
            run(transport, work / "local", **_sizes(args))


def _sizes(args: argparse.Namespace) -> dict[str, float | int]:
    return {"large_mb": args.large_mb, "batches": args.batches}


if __name__ == "__main__":
    main()

"""Benchmark: what the officers' review queue adds to preparing a batch, and what one decision
costs (rebuilding and signing the batch's files again).

On the Tiznit-like province and request of ``benchmarks/match_children.py`` (default 20 000
children; ``--children 200000`` for the exchange benchmark's size), times:

1. ``match_children`` (for reference: the queue comes after it);
2. ``build_review_queue``: the REVIEW children scored again with their candidates;
3. ``write_queue`` and ``review_csv``;
4. one decision's rebuild: ``final_answers`` and ``build_batch_files`` (XML-DSig, CSV, CMS
   ``.p7s``, manifest) with a test identity, as ``tasks.exchange_review.decide_children``
   does before its transaction.

    .venv/bin/python benchmarks/review_queue.py [--children 20000] [--seed 2024]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from match_children import build_requests, leaving_records, province_frames  # noqa: E402

from connectors.exchange.batch_files import build_batch_files  # noqa: E402
from connectors.exchange.registry import profile_for  # noqa: E402
from connectors.signing import load_signing_identity, make_test_certificate  # noqa: E402
from ground.settings import Settings  # noqa: E402
from schemas.exchange import REVIEW  # noqa: E402
from tasks.match import match_children  # noqa: E402
from tasks.province_register import register_from_frames  # noqa: E402
from tasks.review_queue import (  # noqa: E402
    Decision,
    build_review_queue,
    final_answers,
    review_csv,
    write_queue,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--year", default="2024/2025")
    args = parser.parse_args()

    students, enrollments, guardians, pupils, leavers = province_frames(args.seed, args.year, None)
    register = register_from_frames(students, enrollments, guardians, args.year)
    records = leaving_records(leavers)
    requests, _ = build_requests(
        random.Random(args.seed), pupils, leavers, args.year, args.children
    )
    windows = Settings().partners["cnss"].age_windows

    started = time.perf_counter()
    answers = match_children(requests, register, records, args.year, windows, processes=2)
    matched = time.perf_counter() - started
    reviews = sum(a.status == REVIEW for a in answers)
    print(f"matching: {len(answers)} children in {matched:.2f} s ({reviews} REVIEW)")

    started = time.perf_counter()
    queue = build_review_queue("CNSS-2024-000001", requests, answers, register, records, args.year)
    queued = time.perf_counter() - started
    shown = sum(len(child.candidates) for child in queue.children)
    print(
        f"review queue: {len(queue.children)} children, {shown} candidates shown, in "
        f"{queued:.2f} s ({100 * queued / matched:.1f} % of the matching)"
    )
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        path = write_queue(Path(folder), queue)
        table = review_csv(answers, queue, {}, {})
        written = time.perf_counter() - started
        print(
            f"review-queue.json {path.stat().st_size / 1e6:.1f} MB and review.csv "
            f"{len(table) / 1e6:.1f} MB written in {written:.2f} s"
        )
        now = datetime.now(UTC)
        key, certificate = make_test_certificate(
            Path(folder) / "keys", now - timedelta(days=1), now + timedelta(days=30), "Bench"
        )
        identity = load_signing_identity(key, certificate, at=now)
        first = queue.children[0]
        decisions = {first.fund_reference: Decision("NOT_FOUND", "", "bench")}
        started = time.perf_counter()
        final = final_answers(answers, queue, decisions, args.year)
        applied = time.perf_counter() - started
        files = build_batch_files(
            profile_for("cnss"), "CNSS-2024-000001", 1, args.year, final, now, identity
        )
        rebuilt = time.perf_counter() - started
        size = sum(len(content) for content in files.values()) / 1e6
        print(
            f"one decision: answers as decided in {applied:.2f} s, the batch ({size:.1f} MB) "
            f"rebuilt and signed again in {rebuilt - applied:.2f} s (as when it was prepared)"
        )


if __name__ == "__main__":
    main()

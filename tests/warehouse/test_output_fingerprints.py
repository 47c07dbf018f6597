"""The fingerprints of derived outputs: a school's partition digest follows its own writes
only, and fingerprints round-trip through the control database (SQLite and PostgreSQL)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from tests.harness.postgres import fresh_control_database
from warehouse.delta import replace_school_rows
from warehouse.output_fingerprints import forget, partition_digests, record, recorded

SCHEMA = pa.schema(
    [("school_code", pa.string()), ("student_code", pa.string()), ("mark", pa.float64())]
)


def _rows(*items: tuple[str, str, float]) -> pa.Table:
    return pa.table(
        {name: [item[i] for item in items] for i, name in enumerate(SCHEMA.names)}, schema=SCHEMA
    )


def test_a_write_of_one_school_changes_its_digest_only(tmp_path):
    first = replace_school_rows(
        tmp_path, "t", ["11111A", "22222B"], _rows(("11111A", "K1", 12.0), ("22222B", "K2", 9.0))
    )
    before = partition_digests(tmp_path, "t", first)
    assert set(before) == {"11111A", "22222B"}

    second = replace_school_rows(tmp_path, "t", ["11111A"], _rows(("11111A", "K1", 13.0)))
    after = partition_digests(tmp_path, "t", second)

    assert after["22222B"] == before["22222B"]
    assert after["11111A"] != before["11111A"]
    assert partition_digests(tmp_path, "t", first) == before  # an earlier version reads as it was
    assert partition_digests(tmp_path, "missing", 0) == {}


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    handle = fresh_control_database(request, tmp_path, request.param)
    yield handle
    handle.dispose()


def test_fingerprints_are_replaced_per_scope_and_forgotten(database):
    record(database, "results", {"11111A": "a" * 64, "22222B": "b" * 64}, {"11111A": {"pupils": 3}})
    record(database, "results", {"11111A": "c" * 64})
    record(database, "evaluation", {"province": "d" * 64})

    found = recorded(database, "results")
    assert {scope: row.fingerprint for scope, row in found.items()} == {
        "11111A": "c" * 64,
        "22222B": "b" * 64,
    }
    assert found["11111A"].inputs == {}  # replaced whole, with what the new record keeps
    assert forget(database, "results") == 2
    assert recorded(database, "results") == {}
    assert set(recorded(database, "evaluation")) == {"province"}

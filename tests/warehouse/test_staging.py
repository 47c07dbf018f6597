"""Staged rows read back for a night: several schools at once as each alone."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from warehouse.staging import read_staged, read_staged_schools, write_staged


def staged(ids: list[int], **columns: list) -> pl.DataFrame:
    return pl.DataFrame({"submission_id": ids, **columns})


def test_several_schools_read_together_are_each_as_read_alone(tmp_path: Path) -> None:
    """Batches of one school with different columns (a later export added one, another
    typed a column otherwise) are put together as read_staged does; ids not asked for are
    left out; a school without files, without ids asked or without a matching row is
    absent; the schools come in the order asked."""
    write_staged(tmp_path, "22222B", "rooms", staged([5, 6], room=["S1", "S2"]))
    write_staged(
        tmp_path,
        "22222B",
        "rooms",
        staged([9], room=["S3"], capacity=[30]),
    )
    write_staged(tmp_path, "11111A", "rooms", staged([1, 2], room=["A", None], capacity=[1, 2]))
    write_staged(tmp_path, "11111A", "rooms", staged([3], room=["C"], capacity=[3.5], note=["x"]))
    write_staged(tmp_path, "33333C", "rooms", staged([7], room=["Z"]))
    asked = {
        "22222B": [5, 9],
        "11111A": [1, 3, 4],
        "33333C": [8],  # its file holds another submission
        "44444D": [10],  # nothing staged
        "55555E": [],
    }
    together = read_staged_schools(tmp_path, "rooms", asked)
    assert list(together) == ["22222B", "11111A"]
    for code, ids in asked.items():
        alone = read_staged(tmp_path, code, "rooms", ids)
        if alone is None:
            assert code not in together
            continue
        assert together[code].schema == alone.schema
        assert together[code].equals(alone)
    assert together["11111A"].get_column("submission_id").to_list() == [1, 3]
    assert together["11111A"].get_column("capacity").to_list() == [1.0, 3.5]

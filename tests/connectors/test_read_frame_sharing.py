"""The grid frames share their repeated columns (slot labels, a class's metadata) from one
file to the next: a frame changed by its user must leave the next file's frame as read."""

from __future__ import annotations

import polars as pl

from connectors.reading import read_frame
from connectors.reading.read_frame import Grid, build_frame, grid_frame


def _marks_grid(codes: list[str], teacher: str | None) -> Grid:
    grid = Grid(len(codes), 2)
    grid.constant("sheet", "NotesCC")
    grid.per_outer("sheet_row", list(range(18, 18 + len(codes))))
    grid.per_outer("student_code", codes)
    grid.per_inner("slot", ["test1", "test2"])
    grid.per_row("mark", [f"{i}.5" for i in range(2 * len(codes))])
    grid.constant("teacher", teacher)
    return grid


def test_a_changed_frame_leaves_the_next_frame_as_read():
    assert read_frame._NATIVE  # this polars offers the native constructors: they are tested
    first = grid_frame(_marks_grid(["K1", "K2"], "T"))
    # What a user may do to a frame in place: set a cell, append rows.
    first[0, "teacher"] = "changed"
    first[1, "slot"] = "changed"
    first.extend(first.clone())
    second_grid = _marks_grid(["K3", "K4"], "T")
    second = grid_frame(second_grid)
    expected = build_frame(second_grid.lists())
    assert second.equals(expected, null_equal=True)
    assert second["teacher"].to_list() == ["T"] * 4
    assert second["slot"].to_list() == ["test1", "test2"] * 2
    assert second["student_code"].to_list() == ["K3", "K3", "K4", "K4"]


def test_frames_of_other_sizes_and_values_do_not_mix():
    sizes = [["K1"], ["K1", "K2", "K3"], ["K1"]]
    for codes in sizes:
        for teacher in ("T", None, "U"):
            grid = _marks_grid(codes, teacher)
            frame = grid_frame(grid)
            assert frame.equals(build_frame(grid.lists()), null_equal=True)
            assert frame.schema["sheet_row"] == pl.Int64
            assert frame["teacher"].to_list() == [teacher] * (2 * len(codes))

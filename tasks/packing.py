"""Schools packed in order into groups of bounded size: a night's consolidation derives a
table's schools a group at a time (tasks/consolidate.py), the evaluation reads the warehouse a
batch of schools at a time (tasks/evaluation_batches.py)."""

from __future__ import annotations

from collections.abc import Iterable


def packed(sizes: Iterable[tuple[str, int]], limit: int) -> list[list[str]]:
    """The schools of ``sizes`` (school, rows), in the order given, in groups of at most
    ``limit`` rows; a school with more than that is a group of its own."""
    groups: list[list[str]] = []
    current: list[str] = []
    held = 0
    for school, rows in sizes:
        if current and held + rows > limit:
            groups.append(current)
            current, held = [], 0
        current.append(school)
        held += rows
    if current:
        groups.append(current)
    return groups

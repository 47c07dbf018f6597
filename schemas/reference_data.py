"""The reference tables of ``schemas/reference/`` (levels, subjects, curriculum, first names):
the one place that locates them, and each read once.

    reference_rows("levels.csv")           the rows as text (a missing file: no rows)
    reference_frame("levels.csv")          the same as an all-text polars frame (empty: null)
    reference_rows("levels.csv", folder)   another folder's copy (tests, an evaluation's own)

A file is read again only when it changed on disk (its modification time or size), so a folder
a test rewrites is never answered from an old read.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

import polars as pl

REFERENCE_DIR = Path(__file__).resolve().with_name("reference")
LEVELS = "levels.csv"
SUBJECTS = "subjects.csv"
CURRICULUM = "curriculum.csv"


@dataclass(frozen=True)
class ReferenceFile:
    """One version of a reference file: its path and what says it changed (missing: -1)."""

    path: Path
    modified_ns: int
    size: int

    @property
    def exists(self) -> bool:
        return self.size >= 0


def reference_file(name: str, folder: Path | str | None = None) -> ReferenceFile:
    """``name`` in ``folder`` (default schemas/reference/), as it is on disk now."""
    path = (Path(folder) if folder else REFERENCE_DIR) / name
    try:
        status = os.stat(path)
    except OSError:
        return ReferenceFile(path, -1, -1)
    return ReferenceFile(path, status.st_mtime_ns, status.st_size)


@lru_cache(maxsize=64)
def read_rows(file: ReferenceFile) -> tuple[Mapping[str, str], ...]:
    """The rows of ``file`` (read-only mappings of text); none when it does not exist."""
    if not file.exists:
        return ()
    with file.path.open(encoding="utf-8", newline="") as handle:
        return tuple(MappingProxyType(row) for row in csv.DictReader(handle))


@lru_cache(maxsize=64)
def read_frame(file: ReferenceFile) -> pl.DataFrame | None:
    """``file`` as an all-text frame (an empty field is null); None when it does not exist."""
    if not file.exists:
        return None
    return pl.read_csv(file.path, infer_schema=False)


def reference_rows(name: str, folder: Path | str | None = None) -> tuple[Mapping[str, str], ...]:
    """The rows of ``name`` (e.g. ``levels.csv``) in ``folder`` (default schemas/reference/)."""
    return read_rows(reference_file(name, folder))


def reference_frame(name: str, folder: Path | str | None = None) -> pl.DataFrame | None:
    """``name`` in ``folder`` (default schemas/reference/) as an all-text polars frame."""
    return read_frame(reference_file(name, folder))

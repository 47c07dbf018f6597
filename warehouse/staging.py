"""Staging and quarantine: the rows of each submission as Parquet, before consolidation.

``staging/<school>/<dataset>/<first>-<last>.parquet`` holds the accepted rows of the submissions
``first``..``last`` of one ingest batch (a school sends hundreds of NotesCC workbooks: one file per
batch, not per workbook), each row carrying its ``submission_id``;
``quarantine/<school>/<dataset>/<first>-<last>.parquet`` the quarantined rows with the rule ids
that blocked them. Files are written to a temporary name and renamed, so a reader never sees
half a file; writing the same batch again replaces it (re-running is safe).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import cast

import polars as pl


def _write_atomically(frame: pl.DataFrame, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    # zstd's level 1: the same size as its default level here, ~15 % less CPU per write.
    # Encoded in memory, then written at once: the same bytes, ~10 % less CPU than polars
    # writing the file itself (a school's marks ~18 instead of ~20 ms, a small list ~1.1
    # instead of ~1.3 ms).
    encoded = io.BytesIO()
    frame.write_parquet(encoded, compression="zstd", compression_level=1, statistics=False)
    temporary.write_bytes(encoded.getbuffer())
    os.replace(temporary, target)
    return target


def _batch_name(frame: pl.DataFrame) -> str:
    ids = frame.get_column("submission_id")
    lowest, highest = cast(int, ids.min()), cast(int, ids.max())  # submission ids: integers
    return f"{lowest}-{highest}.parquet"


def write_staged(staging: Path, school_code: str, dataset: str, frame: pl.DataFrame) -> Path:
    """Keep accepted rows (with ``submission_id``) for the nightly consolidation."""
    return _write_atomically(frame, staging / school_code / dataset / _batch_name(frame))


def write_quarantined(
    quarantine: Path, school_code: str, dataset: str, frame: pl.DataFrame
) -> Path:
    """Keep quarantined rows (with ``submission_id``) and their blocking rule ids."""
    return _write_atomically(frame, quarantine / school_code / dataset / _batch_name(frame))


def _batches(root: Path, school_code: str, dataset: str) -> list[Path]:
    """The batch files of one school and dataset under ``root``, in name order."""
    return sorted((root / school_code / dataset).glob("*.parquet"))


def read_rows(
    root: Path, school_code: str, dataset: str, submission_ids: Iterable[int]
) -> pl.DataFrame | None:
    """The rows of these submissions of one school and dataset under ``root`` (the staging
    or the quarantine folder), or None when there is none."""
    ids = list(submission_ids)
    paths = _batches(root, school_code, dataset)
    if not paths or not ids:
        return None
    frame = pl.concat([pl.read_parquet(path) for path in paths], how="diagonal_relaxed")
    frame = frame.filter(pl.col("submission_id").is_in(ids))
    return frame if frame.height else None


def read_staged(
    staging: Path, school_code: str, dataset: str, submission_ids: Iterable[int]
) -> pl.DataFrame | None:
    """The accepted rows of these submissions of one school and dataset, or None."""
    return read_rows(staging, school_code, dataset, submission_ids)


def read_staged_schools(
    staging: Path, dataset: str, submissions: Mapping[str, Iterable[int]]
) -> dict[str, pl.DataFrame]:
    """:func:`read_staged` of several schools (``submissions``: school → submission ids) in one
    polars query, the schools' files read side by side: each school's frame as read_staged
    gives it, in the order of ``submissions``, a school without rows left out. A night reads a
    table's 135 schools' files so (one file a school and dataset, most of them small): the
    rooms' 0.09 -> 0.06 s of CPU, the guardians' 0.20 -> 0.11 s, one polars call a school
    costing more than its file's rows."""
    scans: list[tuple[str, pl.LazyFrame]] = []
    for school_code, submission_ids in submissions.items():
        ids = list(submission_ids)
        paths = _batches(staging, school_code, dataset)
        if not paths or not ids:
            continue
        files = pl.concat([pl.scan_parquet(path) for path in paths], how="diagonal_relaxed")
        scans.append((school_code, files.filter(pl.col("submission_id").is_in(ids))))
    frames = pl.collect_all([scan for _, scan in scans])
    return {code: frame for (code, _), frame in zip(scans, frames, strict=True) if frame.height}

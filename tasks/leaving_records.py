"""Massar's leaving records, as the matcher reads them from the home.

    leavers_path(settings) -> Path                           <home>/reference/leavers.csv
    read_leaving_records(path) -> tuple[LeavingRecord, ...]  one leavers.csv
    load_leaving_records(settings) -> tuple[LeavingRecord, ...]   the home's, or none

A leaving record says a pupil left a school of the province in a school year, when and why; the
matcher answers LEFT or NOT_SCHOOLED from it (tasks/match_decision.py). Columns:
docs/data-dictionary.md §4.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl

from ground.errors import OperatorError
from ground.settings import Settings
from schemas.exchange import LEAVERS_COLUMNS
from schemas.text import match_key
from tasks.normalise import SEX_SYNONYMS, clean_expr, code_key_expr, date_expr

# Where the home keeps Massar's leaving records (the generator writes leavers.csv at the root of
# the province folder; the demo copies it here). Columns: docs/data-dictionary.md §4.
LEAVERS_FILE = Path("reference") / "leavers.csv"
# A leaving reason holding one of these words is a transfer out of the province: the child is
# probably schooled elsewhere, which the province cannot confirm or deny.
TRANSFER_WORDS = ("انتقال", "transfer", "mutation")


@dataclass(frozen=True)
class LeavingRecord:
    """One row of Massar's leaving records (leavers.csv)."""

    school_code: str
    school_year: str  # the year the pupil left in
    student_code: str
    family_name: str
    first_name: str
    sex: str | None
    birth_date: date | None
    level_code: str | None
    leaving_date: date | None
    reason: str
    parent_cin: str | None
    cnss_number: str | None
    cmr_number: str | None

    @property
    def is_transfer(self) -> bool:
        key = match_key(self.reason)
        return any(word in key for word in TRANSFER_WORDS)


def leavers_path(settings: Settings) -> Path:
    """``<home>/reference/leavers.csv``: where the home keeps Massar's leaving records."""
    return settings.home / LEAVERS_FILE


def read_leaving_records(path: Path) -> tuple[LeavingRecord, ...]:
    """Leaving records from a leavers.csv (UTF-8, with or without BOM, comma separated, dates
    dd/mm/yyyy; columns of docs/data-dictionary.md §4). Raises OperatorError when the file
    lacks a column."""
    text = path.read_bytes().decode("utf-8-sig")
    frame = pl.read_csv(io.StringIO(text), infer_schema=False)
    missing = [column for column in LEAVERS_COLUMNS if column not in frame.columns]
    if missing:
        raise OperatorError(
            f"The leaving records file {path} lacks the column(s) {', '.join(missing)}; "
            "export it again with the columns of docs/data-dictionary.md §4."
        )
    sexes = {match_key(label): code for code, labels in SEX_SYNONYMS.items() for label in labels}
    frame = frame.select(
        code_key_expr(pl.col("school_code")).alias("school_code"),
        clean_expr(pl.col("school_year")).alias("school_year"),
        code_key_expr(pl.col("student_code")).alias("student_code"),
        clean_expr(pl.col("family_name")).fill_null("").alias("family_name"),
        clean_expr(pl.col("first_name")).fill_null("").alias("first_name"),
        pl.col("sex"),
        date_expr(pl.col("birth_date")).alias("birth_date"),
        code_key_expr(pl.col("level_code")).alias("level_code"),
        date_expr(pl.col("leaving_date")).alias("leaving_date"),
        clean_expr(pl.col("reason")).fill_null("").alias("reason"),
        pl.col("parent_cin"),
        pl.col("cnss_number"),
        pl.col("cmr_number"),
    ).filter(pl.col("student_code").is_not_null())
    return tuple(
        LeavingRecord(
            **{
                **row,
                "sex": sexes.get(match_key(row["sex"] or "")),
                "school_year": row["school_year"] or "",
            }
        )
        for row in frame.iter_rows(named=True)
    )


def load_leaving_records(settings: Settings) -> tuple[LeavingRecord, ...]:
    """Massar's leaving records kept in the home (``reference/leavers.csv``); empty when the
    file is absent (every match is then judged on enrolments alone)."""
    path = leavers_path(settings)
    return read_leaving_records(path) if path.is_file() else ()

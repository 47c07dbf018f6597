"""What of a school's submission is accepted: normalise the read frame, run the row rules (the
dataset's pandera model, then the declared row rules with a check of their own, e.g. R007),
and split the rows into accepted and quarantined (a row with an error is quarantined; a query
flags it only). Contract: docs/decisions/0002-ingest-frames.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import polars as pl

from schemas import datasets as ds
from schemas.models import MARK_SCALE, fields, is_mark
from schemas.rules import catalogue
from tasks.normalise import code_key_expr, normalise
from tasks.validation.findings import FINDING_COLUMNS, ROW, empty_findings, one_per_cell
from tasks.validation.levels import mark_scales
from tasks.validation.model_check import pandera_findings
from tasks.validation.row_rules import ROW_RULES

# Row rules checked over the frame by a function of their own (the others are model checks).
_OWN_CHECKS = tuple(rule.check for rule in ROW_RULES if rule.check is not None)


@dataclass
class Validated:
    """The outcome of validating one submission."""

    dataset: str
    accepted: pl.DataFrame
    quarantined: pl.DataFrame
    findings: pl.DataFrame
    school_code: str | None = None

    @property
    def rows_read(self) -> int:
        return self.accepted.height + self.quarantined.height

    @property
    def rows_accepted(self) -> int:
        return self.accepted.height

    @property
    def rows_quarantined(self) -> int:
        return self.quarantined.height


def validate_submission(
    dataset: str | ds.Dataset,
    frame: pl.DataFrame,
    *,
    school_code: str | None,
    scale: float | None = None,
    reference: Any = None,
) -> Validated:
    """Normalise and validate one submission's read frame (docs/decisions/0002)."""
    name = dataset.name if isinstance(dataset, ds.Dataset) else dataset
    rules = catalogue()
    school = None if school_code is None else code_key_expr_value(school_code)
    frame_in = _without(frame, ROW, MARK_SCALE)
    normalised = normalise(name, frame_in).with_row_index(ROW)
    if _has_marks(name):
        normalised = normalised.with_columns(
            mark_scales(normalised, scale=scale, reference=reference)
        )
    parts = [pandera_findings(name, normalised, school, rules)]
    parts += [check(name, normalised, rules) for check in _OWN_CHECKS]
    found = [part for part in parts if part.height]
    with_submission = "submission_id" in normalised.columns  # several submissions together
    if not found:  # the usual case: nothing to sort, split or join
        columns = dict(FINDING_COLUMNS)
        if with_submission:
            columns["submission_id"] = normalised.schema["submission_id"]
        accepted = _without(normalised, ROW)
        result = Validated(
            dataset=name,
            accepted=accepted,
            quarantined=accepted.clear(),
            findings=empty_findings(columns),
            school_code=school,
        )
    else:
        findings = pl.concat(found).sort([ROW, "rule_id"], maintain_order=True)
        blocked = findings.filter(pl.col("severity") == "error").get_column(ROW).unique()
        if blocked.len() == 0:
            accepted, quarantined = normalised, normalised.clear()
        else:
            mask = normalised.get_column(ROW).is_in(blocked.implode())
            quarantined, accepted = normalised.filter(mask), normalised.filter(~mask)
        if with_submission:
            findings = findings.join(normalised.select(ROW, "submission_id"), on=ROW, how="left")
        findings = one_per_cell(findings)
        result = Validated(
            dataset=name,
            accepted=_without(accepted, ROW),
            quarantined=_without(quarantined, ROW),
            findings=_without(findings, ROW),
            school_code=school,
        )
    if result.rows_read != frame.height:  # the contract of docs/decisions/0002
        raise RuntimeError(f"{name}: {result.rows_read} rows out for {frame.height} read")
    return result


def _without(frame: pl.DataFrame, *names: str) -> pl.DataFrame:
    """The frame without these columns (when present); cheaper than ``drop`` (no query)."""
    present = [name for name in names if name in frame.columns]
    if not present:
        return frame
    frame = frame.clone()  # shares the columns' data; the copy loses them, not ``frame``
    for name in present:
        frame.drop_in_place(name)
    return frame


@cache
def _has_marks(dataset: str) -> bool:
    return any(is_mark(item) for item in fields(dataset))


@lru_cache(maxsize=1024)
def code_key_expr_value(code: str) -> str:
    """A single code normalised like a code column (clean, upper case)."""
    return pl.select(code_key_expr(pl.lit(code, pl.Utf8))).item() or ""

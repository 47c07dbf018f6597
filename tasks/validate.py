"""Validation of a school's submission and the cross-record checks: the names its importers
use, from where they now live (tasks/validation/, one file per question; its __init__ is the
map). Importers still using this module: tests/tasks/test_validate.py,
tests/schemas/test_rules.py, tests/tasks/test_findings_per_cell.py,
tests/connectors/test_genuine_layouts.py. New code imports from tasks.validation.*.
"""

from __future__ import annotations

from tasks.validation.all_rules import PARAMS, RETIRED_RULES
from tasks.validation.cross_record import (
    PROVINCE_RULE_IDS,
    cross_check_province,
    cross_check_school,
    skipped_cross_rules,
)
from tasks.validation.findings import (
    CROSS_COLUMNS,
    FINDING_COLUMNS,
    FINDINGS_TABLE_COLUMNS,
    ROW,
    empty_findings,
    finding_rows,
    one_per_cell,
    with_messages,
)
from tasks.validation.levels import class_level_expr, levels, mark_scales
from tasks.validation.model_check import failing_rows as _failing_rows
from tasks.validation.model_check import pandera_findings as _pandera_findings
from tasks.validation.submission import Validated, code_key_expr_value, validate_submission

__all__ = [
    "CROSS_COLUMNS",
    "FINDINGS_TABLE_COLUMNS",
    "FINDING_COLUMNS",
    "PARAMS",
    "PROVINCE_RULE_IDS",
    "RETIRED_RULES",
    "ROW",
    "Validated",
    "_failing_rows",
    "_pandera_findings",
    "class_level_expr",
    "code_key_expr_value",
    "cross_check_province",
    "cross_check_school",
    "empty_findings",
    "finding_rows",
    "levels",
    "mark_scales",
    "one_per_cell",
    "skipped_cross_rules",
    "validate_submission",
    "with_messages",
]

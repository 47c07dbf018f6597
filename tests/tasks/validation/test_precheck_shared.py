"""A school's pre-check (tasks/validation/model_check.py) is its dataset's, built once, with
the school's own R002 check: the same expressions as the pre-check built for that school from
scratch, whichever schools came before."""

from __future__ import annotations

import pytest

from schemas.datasets import DATASETS
from schemas.models import row_checks
from tasks.validation.model_check import _built, _precheck


def _same(a, b) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and a.meta.eq(b))


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_a_schools_precheck_is_the_one_built_for_it(dataset):
    for school in ("27783Y", "11111A", None, "27783Y"):
        shared = _precheck(dataset, school)
        alone = _built(row_checks(dataset, school))
        assert shared.columns == alone.columns
        for mine, theirs in zip(
            (*shared.cleared, *shared.quick, *shared.fails),
            (*alone.cleared, *alone.quick, *alone.fails),
            strict=True,
        ):
            assert _same(mine, theirs)
    if any(c.rule_id == "R002" for c in row_checks(dataset, "27783Y")):
        a, b = _precheck(dataset, "27783Y"), _precheck(dataset, "11111A")
        assert not all(x.meta.eq(y) for x, y in zip(a.fails, b.fails, strict=True))

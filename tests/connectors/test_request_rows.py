"""A request's well-formed rows are read on a short path (no dict of values per row); it must
give the child the full reading gives, and leave every row with a problem to the full reading,
which names the problem. Checked on both funds' layouts, row by row, on rows with spaces, lower
case, empty optional cells and each kind of mistake."""

from __future__ import annotations

import pytest

from connectors.exchange.registry import profile_for
from connectors.exchange.request_file import _request_child, _well_formed_child

GOOD = {
    "fund_reference": " 20242025000001 ",
    "parent_number": "123 456",
    "parent_cin": "jb12345",
    "parent_family_name": "ALAOUI",
    "parent_first_name": "AHMED",
    "child_family_name": " العلوي ",
    "child_first_name": "omar",
    "sex": " f ",
    "student_code": " n111400145 ",
}
VARIANTS = [
    {},
    {"student_code": "", "sex": "", "parent_cin": "", "parent_number": ""},
    {"birth_date": ""},
    {"fund_reference": "  "},  # mistakes: the full reading names them
    {"child_family_name": ""},
    {"child_first_name": " "},
    {"birth_date": "31/02/2011"},
    {"birth_date": "2011-02-31"},
    {"birth_date": "yesterday"},
    {"sex": "X"},
    {"benefit": "ZZ"},
    {"benefit": " af "},
]


@pytest.mark.parametrize("fund", ["cnss", "cmr"])
@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: ",".join(v) or "well-formed")
def test_a_row_gives_the_child_the_full_reading_gives(fund, variant) -> None:
    profile = profile_for(fund)
    layout = profile.request
    header = [*layout.columns.values(), layout.benefit_column]
    position = {column: at for at, column in enumerate(header)}
    fields = [(fld, position[column]) for fld, column in layout.columns.items()]
    birth = "03/04/2011" if layout.date_format == "%d/%m/%Y" else "2011-04-03"
    values = {**GOOD, "birth_date": birth, "benefit": next(iter(layout.benefits))}
    values |= variant
    row = [values.get(fld, "") for fld in layout.columns] + [values["benefit"]]
    expected, problems = _request_child(profile, "request.csv", 7, row, position, fields)
    got = _well_formed_child(profile, position)(row, 7)
    assert got == expected
    assert (got is None) == bool(problems)

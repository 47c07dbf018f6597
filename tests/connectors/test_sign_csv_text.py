"""The response CSV written by joining its values is, byte for byte, what the csv module writes
(its quoting included): a value that needs quoting sends the batch the csv module's way."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest

from connectors.exchange.registry import profile_for
from connectors.exchange.response_files import answer_rows, read_response_csv, response_csv
from schemas.exchange import ChildAnswer
from tests.connectors.signed_responses import YEAR, answers


def _csv_module(fund: str, rows: list) -> bytes:
    layout = profile_for(fund).response_csv
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=layout.delimiter, lineterminator=layout.line_ending)
    writer.writerow(layout.header.values())
    for row in rows:
        writer.writerow(
            [
                v.strftime(layout.date_format) if isinstance(v, date) else ("" if v is None else v)
                for v in row.values()
            ]
        )
    return buffer.getvalue().encode(layout.encoding)


def _answers(reference: str) -> list[ChildAnswer]:
    return answers(second=reference)[:3]


@pytest.mark.parametrize("fund", ["cnss", "cmr"])
@pytest.mark.parametrize(
    "reference",
    ["R2", "R;2", "R,2", 'R"2', "R\r2", "R\n2", "R\r\n2", " R2 ", "عربي é"],
)
def test_the_csv_is_what_the_csv_module_writes(fund, reference) -> None:
    rows = answer_rows(_answers(reference), YEAR)
    written = response_csv(profile_for(fund), rows)
    assert written == _csv_module(fund, rows)
    if "\r" not in reference and "\n" not in reference:  # read back as the fund reads it
        back = read_response_csv(profile_for(fund), written)
        assert [answer.fund_reference for answer in back] == ["R1", reference, "R3"]


@pytest.mark.parametrize("fund", ["cnss", "cmr"])
def test_a_batch_without_children_is_its_header(fund) -> None:
    assert response_csv(profile_for(fund), []) == _csv_module(fund, [])

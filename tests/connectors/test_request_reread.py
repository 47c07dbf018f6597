"""A request read again (the exchange flow screens it when it fetches it, then answers it) gives
the same children without being read twice; a file whose bytes changed is read anew."""

from __future__ import annotations

from pathlib import Path

from connectors.exchange.registry import profile_for
from connectors.exchange.request_file import parse_request


def _write(path: Path, first_name: str) -> Path:
    layout = profile_for("cnss").request
    values = {
        "fund_reference": "20242025000001",
        "child_family_name": "ALAOUI",
        "child_first_name": first_name,
        "birth_date": "03/04/2011",
        "sex": "M",
    }
    header = [*layout.columns.values(), layout.benefit_column]
    row = [values.get(field, "") for field in layout.columns] + ["AF"]
    text = layout.delimiter.join(header) + "\r\n" + layout.delimiter.join(row) + "\r\n"
    path.write_bytes(text.encode(layout.encoding))
    return path


def test_a_request_read_again_gives_its_children_and_a_changed_one_is_read_anew(
    tmp_path,
) -> None:
    profile = profile_for("cnss")
    path = _write(tmp_path / "CNSS_SCOL_2024-2025_0001.csv", "OMAR")
    first = parse_request(profile, path)
    again = parse_request(profile, path)
    assert again == first and again is not first
    again.clear()  # the caller's list is its own
    assert [child.child_first_name for child in parse_request(profile, path)] == ["OMAR"]
    _write(path, "ALI")
    assert [child.child_first_name for child in parse_request(profile, path)] == ["ALI"]

"""Defects province: every injected defect is in ground_truth.csv and points at the real cell."""

from __future__ import annotations

import csv
import io
import os
import re
from datetime import date, datetime
from pathlib import Path

import pytest
from python_calamine import CalamineWorkbook

from ground.funds import FUND_KEYS
from massar.synthetic import generate_province
from massar.synthetic.defects import DEFECT_KINDS, GROUND_TRUTH_COLUMNS
from schemas.datasets import DATASETS, MARK_SLOTS

SCHOOLS = int(os.environ.get("SYNTHETIC_TEST_SCHOOLS", "6"))
SEED = int(os.environ.get("SYNTHETIC_TEST_SEED", "7"))


@pytest.fixture(scope="module")
def defects_province(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synthetic-defects")
    summary = generate_province(out, schools=SCHOOLS, seed=SEED, defects=True)
    assert summary.ground_truth_rows > 0
    folders = [p for p in out.iterdir() if p.is_dir() and p.name != "partners"]
    assert 0 < len(summary.defect_schools) < len(folders)  # a handful, not all
    return out


@pytest.fixture(scope="module")
def truth(defects_province: Path) -> list[dict[str, str]]:
    text = (defects_province / "ground_truth.csv").read_text("utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert tuple(rows[0].keys()) == GROUND_TRUTH_COLUMNS
    return rows


def norm(text: str) -> str:
    return " ".join(str(text).split())


def _same(cell: object, value: str) -> bool:
    if isinstance(cell, datetime | date):
        return f"{cell.day:02d}/{cell.month:02d}/{cell.year}" == value
    if isinstance(cell, float | int) and not isinstance(cell, bool):
        try:
            return float(value) == float(cell)
        except ValueError:
            return False
    return str(cell) == value


def _column_index(header: list, column_name: str) -> int:
    return [norm(h) for h in header].index(norm(column_name))


def _workbook_cell(path: Path, row: dict[str, str]) -> object:
    sheet = CalamineWorkbook.from_path(str(path)).get_sheet_by_name(row["sheet"])
    rows = sheet.to_python(skip_empty_area=False)
    r = int(row["sheet_row"]) - 1
    name = row["column_name"]
    if row["sheet"] == "NotesCC":
        if row["expected_rule"] == "F004":
            return rows[4][2]
        if " - " in name:
            slot_label, part = name.split(" - ")
            col = _column_index(rows[15], slot_label) + (0 if part == "النقطة" else 1)
            return rows[r][col]
        return rows[r][_column_index(rows[15], name)]
    if row["sheet"].startswith("Sheet"):  # ListEleve, header row 15
        return rows[r][_column_index(rows[14], name)]
    return rows[r][_column_index(rows[0], name)]  # XLSX tables, header row 1


def _csv_cell(path: Path, row: dict[str, str]) -> str:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1256")
    lines = list(csv.reader(io.StringIO(text)))
    r = int(row["sheet_row"]) - 1
    if r == 0:
        return next(h for h in lines[0] if norm(h) == norm(row["column_name"]))
    return lines[r][_column_index(lines[0], row["column_name"])]


def test_ground_truth_points_at_the_listed_values(
    defects_province: Path, truth: list[dict[str, str]]
) -> None:
    checked = 0
    for row in truth:
        path = defects_province / row["school_code"] / row["file_name"]
        assert path.is_file(), row
        if not row["sheet_row"]:
            continue
        if path.suffix == ".csv":
            assert _csv_cell(path, row) == row["value"], row
        else:
            cell = _workbook_cell(path, row)
            assert _same(cell, row["value"]), (row, cell)
        checked += 1
    assert checked >= 20


def test_every_defect_kind_and_variant_is_present(truth: list[dict[str, str]]) -> None:
    rules = {r["expected_rule"] for r in truth}
    pair = {"X002"} if SCHOOLS >= 4 else set()  # X002 needs two schools of the same cycle
    assert set(DEFECT_KINDS) | pair | {"none"} <= rules
    by_rule: dict[str, list[dict[str, str]]] = {}
    for r in truth:
        by_rule.setdefault(r["expected_rule"], []).append(r)
    # "every row involved": both ends of the conflicts, both schools of X002
    assert len(by_rule["X006"]) == 2 and len(by_rule["X007"]) == 2
    if pair:
        assert len({r["school_code"] for r in by_rule["X002"]}) == 2
    assert len(by_rule["X003"]) == 2
    descriptions = " ".join(r["description"] for r in by_rule["none"])
    for needle in (
        "Arabic-Indic digits",
        "decimal comma",
        "Windows-1256",
        "extra spaces",
        "tatweel",
    ):
        assert needle in descriptions
    assert any(
        re.search("[٠-٩]", r["value"]) for r in by_rule["none"] if "date" in r["description"]
    )
    slot_labels = {label for _, label, _ in MARK_SLOTS}
    for r in truth:
        name = r["column_name"]
        if " - " in name:
            assert name.split(" - ")[0] in slot_labels
        elif name:
            known = {c.header_ar for d in DATASETS.values() for c in d.columns}
            assert name in known, name


def test_file_level_defects(defects_province: Path, truth: list[dict[str, str]]) -> None:
    (f001,) = [r for r in truth if r["expected_rule"] == "F001"]
    with pytest.raises(Exception):  # noqa: B017 - any read error is what the ingest must report
        wb = CalamineWorkbook.from_path(
            str(defects_province / f001["school_code"] / f001["file_name"])
        )
        wb.get_sheet_by_name("NotesCC").to_python()
    (f004,) = [r for r in truth if r["expected_rule"] == "F004"]
    assert f004["value"] != f004["school_code"] and f004["sheet_row"] == "5"
    (cp,) = [r for r in truth if "Windows-1256" in r["description"]]
    raw = (defects_province / cp["school_code"] / cp["file_name"]).read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    header = next(csv.reader(io.StringIO(raw.decode("cp1256"))))
    assert tuple(header) == DATASETS["guardians"].headers_ar


def test_defects_off_means_no_ground_truth_and_same_partners(
    tmp_path: Path, defects_province: Path
) -> None:
    clean = tmp_path / "clean"
    generate_province(clean, schools=SCHOOLS, seed=SEED, defects=False)
    assert not (clean / "ground_truth.csv").exists()
    for fund in FUND_KEYS:
        for path in (defects_province / "partners" / fund).iterdir():
            assert (clean / "partners" / fund / path.name).read_bytes() == path.read_bytes()

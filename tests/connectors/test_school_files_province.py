"""Every file of a generated province read back, checked against its ground_truth.csv."""

from __future__ import annotations

import csv

import polars as pl
import pytest

from connectors.school_files import FileRejected, ReadResult, read_submission
from schemas.datasets import DATASETS
from schemas.text import label_key


@pytest.fixture(scope="module")
def province_read(defects_province):
    """(results, rejections, ground truth) for every school file of the defects province."""
    results: dict[tuple[str, str], ReadResult] = {}
    rejected: dict[tuple[str, str], FileRejected] = {}
    schools = sorted(p for p in defects_province.iterdir() if p.is_dir() and p.name[:5].isdigit())
    assert schools
    for school in schools:
        for path in sorted(p for p in school.rglob("*") if p.is_file()):
            name = path.relative_to(school).as_posix()
            try:
                results[(school.name, name)] = read_submission(path, school_code=school.name)
            except FileRejected as error:
                rejected[(school.name, name)] = error
    with (defects_province / "ground_truth.csv").open(encoding="utf-8") as stream:
        truth = list(csv.DictReader(stream))
    return results, rejected, truth


def test_rejections_are_exactly_the_expected_file_defects(province_read):
    _, rejected, truth = province_read
    expected = {
        (t["school_code"], t["file_name"]): t["expected_rule"]
        for t in truth
        if t["expected_rule"].startswith("F")
    }
    assert expected, "the defects province should hold file-level defects"
    assert {k: e.rule_id for k, e in rejected.items()} == expected


def test_every_dataset_is_read(province_read):
    results, _, _ = province_read
    datasets = {r.dataset for r in results.values()}
    assert datasets == set(DATASETS)


def test_ground_truth_cells_are_found_at_their_sheet_and_row(province_read):
    """Provenance: each defect's (sheet, Excel row / CSV line, column) holds its value."""
    results, _, truth = province_read
    # Ground truth names a column by its label as the file writes it (Massar's stray spaces).
    names = {
        (d.name, label_key(c.header_ar)): c.name
        for d in DATASETS.values()
        for c in d.columns + d.metadata
    }
    checked = 0
    for t in truth:
        if t["expected_rule"].startswith("F") or not t["sheet_row"]:
            continue
        result = results[(t["school_code"], t["file_name"])]
        frame = result.frame
        rows = frame.filter(
            (frame["sheet"] == t["sheet"]) & (frame["sheet_row"] == int(t["sheet_row"]))
        )
        column = t["column_name"]
        if rows.height == 0:
            # header variants point at the header row: the file was read, the column found
            assert t["expected_rule"] == "none" and "header" in t["description"], t
            assert frame[names[(result.dataset, label_key(column))]].null_count() < frame.height
            continue
        if " - " in column:  # NotesCC "<slot label> - النقطة" / "... - التغيب"
            part = "mark" if column.endswith("النقطة") else "absence"
            values = rows.filter(rows[f"{part}_column"] == column)[part].to_list()
        else:
            values = rows[names[(result.dataset, label_key(column))]].to_list()
        assert t["value"] in values, (t, values)
        checked += 1
    assert checked > 10


def test_notes_frames_are_pupil_by_slot(province_read):
    results, _, _ = province_read
    notes = [r for r in results.values() if r.dataset == "marks"]
    assert notes
    for result in notes:
        frame = result.frame
        pupils = frame["sheet_row"].n_unique()
        slots = frame["slot"].n_unique()
        assert frame.height == pupils * slots
        assert frame["school_code"].n_unique() == 1
        assert frame["subject_code"].str.contains(r"^\d{4}$").all()
        assert set(frame["semester"].unique()) <= {"1", "2"}


def test_list_eleve_sheets_carry_one_class_each(province_read):
    results, _, _ = province_read
    lists = [r for r in results.values() if r.dataset == "students"]
    assert {r.source_format for r in lists} == {"xls", "xlsx"}
    for result in lists:
        frame = result.frame
        assert frame["class_code"].null_count() == 0
        assert frame["school_year"].null_count() == 0
        per_sheet = frame.group_by("sheet").agg(classes=pl.col("class_code").n_unique())
        assert per_sheet["classes"].to_list() == [1] * per_sheet.height

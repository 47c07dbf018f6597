"""docs/data-dictionary.md documents every dataset column and reference file."""

from __future__ import annotations

import csv
from pathlib import Path

from massar.synthetic.reference import REFERENCE_DIR, curriculum, levels, subjects
from schemas.datasets import DATASETS

DOC = Path(__file__).resolve().parents[2] / "docs" / "data-dictionary.md"


def test_every_label_is_documented() -> None:
    text = DOC.read_text("utf-8")
    for dataset in DATASETS.values():
        assert f"`{dataset.name}`" in text
        for column in dataset.columns + dataset.metadata:
            assert f"`{column.name}`" in text, (dataset.name, column.name)
            if column.header_ar:
                assert column.header_ar in text, (dataset.name, column.header_ar)
    for name in ("levels.csv", "subjects.csv", "curriculum.csv"):
        with (REFERENCE_DIR / name).open(encoding="utf-8") as handle:
            for column in next(csv.reader(handle)):
                assert f"`{column}`" in text, (name, column)


def test_reference_files_are_consistent() -> None:
    lv, subj, cur = levels(), subjects(), curriculum()
    assert set(cur) == set(lv)
    for level_code, entries in cur.items():
        assert lv[level_code].min_age <= lv[level_code].nominal_age <= lv[level_code].max_age
        for entry in entries:
            assert entry.subject_code in subj
            assert 2 <= entry.tests <= 4
            if lv[level_code].cycle == "primary":
                assert entry.tests == 2 and not entry.activities

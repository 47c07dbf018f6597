"""Coverage after a partial ingest of a generated province: 70 % of every school's files are
dropped in and ingested, and the items coverage reports missing are exactly the files held
back, each read back as (school, dataset, class, subject, semester)."""

from __future__ import annotations

import random
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.school_files import read_submission
from massar.demo import load_school_reference
from massar.home import init_home
from schemas.datasets import DATASETS
from tasks.coverage import compute_coverage, item_rows, owed_sections, school_rows
from tasks.ingest import discover_inbox, ingest_school

HELD_BACK_SHARE = 0.30
CAMPAIGNS = """
[[campaign]]
id = "rentree-2023"
school_year = "2023/2024"
period = "start_of_year"
datasets = ["classes", "students", "rooms", "guardians", "timetable"]
opens = 2023-09-04
deadline = 2023-10-15

[[campaign]]
id = "s1-2023"
school_year = "2023/2024"
period = "semester_1"
datasets = ["marks"]
opens = 2024-01-15
deadline = 2024-02-10

[[campaign]]
id = "s2-2023"
school_year = "2023/2024"
period = "semester_2"
datasets = ["marks", "absences", "discipline", "support", "exam_marks"]
opens = 2024-06-01
deadline = 2024-07-05
"""
# Before the second semester's deadline: the first two campaigns are late, the third open.
NOW = datetime(2024, 6, 28, 10, 0, tzinfo=UTC)


def file_keys(path: Path, school: str, relative: str) -> set[tuple[str, ...]]:
    """What a file is, read back with the platform's reader: (school, dataset, class,
    subject, semester); a student list is one key per class it lists."""
    result = read_submission(path, school_code=school, file_name=Path(relative).name)
    frame, dataset = result.frame, result.dataset
    if dataset == "students":
        return {(school, dataset, c, "", "") for c in frame["class_code"].unique().to_list()}
    if dataset == "marks":
        row = frame.row(0, named=True)
        return {(school, dataset, row["class_code"], row["subject_code"], str(row["semester"]))}
    if dataset == "exam_marks" and frame.height == 0:
        return set()  # a school without exam classes sends an empty file: nothing is owed
    assert "class_code" not in DATASETS[dataset].scope
    return {(school, dataset, "", "", "")}


@pytest.fixture(scope="module")
def partial(province: Path, tmp_path_factory: pytest.TempPathFactory):
    """A home where 70 % of every school's files were dropped in and ingested; the keys of
    the files held back."""
    settings = init_home(tmp_path_factory.mktemp("coverage-home") / "home")
    (settings.home / "campaigns.toml").write_text(CAMPAIGNS, encoding="utf-8")
    load_school_reference(settings, province / "schools.csv")
    schools, _ = discover_inbox(province)
    # This seed holds back two student lists and one class list (never both of a school):
    # per-class student items are derived from the class list, and the reverse.
    chooser = random.Random(14)
    held: set[tuple[str, ...]] = set()
    structure_kept: dict[str, bool] = {}
    for code, files in sorted(schools.items()):
        files = sorted(files)
        back = set(chooser.sample(files, round(HELD_BACK_SHARE * len(files))))
        dropped = [f for f in files if f not in back]
        for path in dropped:
            target = settings.inbox / code / path.relative_to(province / code)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        for path in back:
            relative = str(path.relative_to(province / code))
            held |= file_keys(path, code, relative)
        names = {p.name for p in dropped}
        structure_kept[code] = "classes.xlsx" in names or any(
            n.startswith("ListEleve") for n in names
        )
    dropped_in, _ = discover_inbox(settings.inbox)
    for code, files in sorted(dropped_in.items()):
        ingest_school(settings, code, files, settings.inbox / code)
    return settings, held, structure_kept


def test_the_missing_items_are_exactly_the_files_held_back(partial):
    settings, held, structure_kept = partial
    assert all(structure_kept.values()), "every school kept its class list or its student list"
    coverages = compute_coverage(settings, now=NOW)
    missing = {
        (e.item.school_code, e.item.dataset, e.item.class_code, e.item.subject_code,
         e.item.semester)
        for coverage in coverages
        for school in coverage.schools
        for e in school.items
        if e.state == "missing"
    }  # fmt: skip
    assert {"marks", "students", "classes"} <= {k[1] for k in held}
    assert missing == held
    # and nothing else is owed: every item that is not missing was accepted
    states = {e.state for c in coverages for s in c.schools for e in s.items}
    assert states <= {"missing", "accepted", "partially_accepted"}
    assert not [n for c in coverages for n in c.notes]


def test_the_school_table_counts_add_up_and_the_late_are_after_the_deadline(partial):
    settings, held, _ = partial
    coverages = compute_coverage(settings, now=NOW)
    rows = school_rows(coverages)
    assert {r["school_code"] for r in rows} == {k[0] for k in held} | {
        r["school_code"] for r in rows
    }
    assert sum(r["missing"] for r in rows) == len(held)
    for row in rows:
        assert row["owed"] == row["accepted"] + row["partially_accepted"] + row["missing"]
    days = {r["campaign"]: r["days_to_deadline"] for r in rows}
    assert days == {"rentree-2023": -257, "s1-2023": -139, "s2-2023": 7}
    by_id = {c.campaign.id: c for c in coverages}
    assert by_id["s2-2023"].late() == []  # still open
    assert {s.school_code for s in by_id["s1-2023"].late()} == {
        k[0] for k in held if k[1] == "marks" and k[4] == "1"
    }


def test_a_school_lists_exactly_what_it_still_owes(partial):
    settings, held, _ = partial
    school = sorted(held)[0][0]
    coverages = compute_coverage(settings, school_codes=[school], now=NOW)
    listed = {
        (r["school_code"], r["dataset"], r["class_code"], r["subject_code"], r["semester"])
        for r in item_rows(coverages)
    }
    assert listed == {k for k in held if k[0] == school}
    sections = owed_sections(settings, [school], NOW)[school]
    in_report = {
        (school, line.dataset, line.class_code, line.subject_code, line.semester)
        for section in sections
        for line in section.lines
    }
    assert in_report == listed


def test_a_few_schools_coverage_is_the_provinces_for_those_schools(partial):
    """A chunk's reports ask for the coverage of its few schools only (the province's every
    submission is not read for them): what each of them owes, and its counts, are those of the
    whole province's computation."""
    settings, held, _ = partial
    asked = sorted({k[0] for k in held})[:3]
    whole = compute_coverage(settings, now=NOW)
    few = compute_coverage(settings, school_codes=asked, now=NOW)
    assert {s.school_code for c in few for s in c.schools} == set(asked)
    assert item_rows(few) == [r for r in item_rows(whole) if r["school_code"] in asked]
    assert school_rows(few) == [r for r in school_rows(whole) if r["school_code"] in asked]
    assert [s.known for c in few for s in c.schools] == [
        s.known for c in whole for s in c.schools if s.school_code in asked
    ]

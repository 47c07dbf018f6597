"""Scored validation: on a province generated with --defects, every injected defect is found
with the expected rule at the expected place, and clean rows get no finding."""

from __future__ import annotations

import csv

import pytest

from flows.ingest import ingest_submissions
from massar.demo import stage_inbox
from massar.home import init_home
from warehouse.control import ControlDatabase
from warehouse.query import run_query


def _place(school, file_name, sheet, row, column):
    return (
        school,
        file_name,
        sheet or "",
        int(row) if str(row or "").strip() else None,
        column or "",
    )


@pytest.fixture(scope="module")
def scored(prefect_server, defects_province, tmp_path_factory):
    settings = init_home(tmp_path_factory.mktemp("defects-home") / "home")
    stage_inbox(defects_province, settings.inbox)
    state = ingest_submissions(settings, return_state=True)
    assert state.is_completed(), state.message
    database = ControlDatabase(settings.resolved_database_url)
    try:
        findings = run_query(
            "select school_code, file_name, sheet, sheet_row, column_name, value, rule_id, "
            "severity from findings",
            warehouse=settings.warehouse,
            database=database,
        ).to_pylist()
    finally:
        database.dispose()
    with (defects_province / "ground_truth.csv").open(encoding="utf-8") as handle:
        truth = list(csv.DictReader(handle))
    return findings, truth, settings


def test_every_injected_defect_is_found_at_its_place(scored):
    findings, truth, _ = scored
    found = {
        (
            _place(f["school_code"], f["file_name"], f["sheet"], f["sheet_row"], f["column_name"]),
            f["rule_id"],
        )
        for f in findings
    }
    file_level = {
        (f["school_code"], f["file_name"], f["rule_id"]) for f in findings if f["sheet_row"] is None
    }
    missed = []
    for row in truth:
        rule = row["expected_rule"]
        if rule == "none":
            continue
        if rule.startswith("F"):
            if (row["school_code"], row["file_name"], rule) not in file_level:
                missed.append(row)
            continue
        place = _place(
            row["school_code"], row["file_name"], row["sheet"], row["sheet_row"], row["column_name"]
        )
        if (place, rule) not in found:
            missed.append(row)
    assert not missed, f"{len(missed)} defect(s) not found, e.g. {missed[:3]}"
    kinds = {row["expected_rule"] for row in truth}
    assert len(kinds - {"none"}) >= 12  # the generator covers the defect catalogue


def test_clean_rows_and_formatting_variants_get_no_finding(scored):
    findings, truth, _ = scored
    expected = {
        (
            _place(r["school_code"], r["file_name"], r["sheet"], r["sheet_row"], r["column_name"]),
            r["expected_rule"],
        )
        for r in truth
    }
    expected_rows = {(p[0], p[1], p[2], p[3]) for p, rule in expected if rule != "none"}
    variants = {p for p, rule in expected if rule == "none"}
    assert variants, "the generator injects formatting variants"
    unexpected = []
    for f in findings:
        place = _place(
            f["school_code"], f["file_name"], f["sheet"], f["sheet_row"], f["column_name"]
        )
        if f["sheet_row"] is None:
            continue  # file-level findings are checked above
        if (place[0], place[1], place[2], place[3]) not in expected_rows:
            unexpected.append(f)
        assert place not in variants, f"a formatting variant was flagged: {f}"
    assert not unexpected, f"{len(unexpected)} finding(s) on clean rows, e.g. {unexpected[:3]}"


def test_a_school_report_lists_each_finding_with_both_messages(scored):
    findings, _, settings = scored
    home = settings.home
    for finding in findings:
        school = finding["school_code"]
        page = (home / "reports" / school / f"rapport_{school}.html").read_text("utf-8")
        assert finding["rule_id"] in page
    from python_calamine import CalamineWorkbook

    school = findings[0]["school_code"]
    rows = (
        CalamineWorkbook.from_path(str(home / "reports" / school / f"rapport_{school}.xlsx"))
        .get_sheet_by_index(1)
        .to_python()
    )
    listed = [row for row in rows[1:] if row[0]]
    assert len(listed) == sum(1 for f in findings if f["school_code"] == school)
    assert all(row[7] and row[8] for row in listed)  # Arabic and French messages

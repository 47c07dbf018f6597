"""``massar query`` for exploration: ``show tables`` and ``describe TABLE`` say what can be
queried, the table format shows a stated number of rows and never cuts a code, csv and json
stay complete, and an unknown table names the real ones. A real home (``massar init``) with
Delta tables written and published as a night by the warehouse's own functions."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pyarrow as pa
import pytest

from ground.settings import load_settings
from massar.cli import QUERY_TABLE_ROWS, main
from warehouse.control import ControlDatabase
from warehouse.delta import replace_school_rows
from warehouse.nights import finish_night, start_night
from warehouse.tables import TABLES

SCHOOL = "27783Y"
PUPILS = 120
CODES = [f"F{100300100 + i}" for i in range(PUPILS)]  # invented, Massar's form


def _students(codes: list[str]) -> pa.Table:
    n = len(codes)
    return pa.table(
        {
            "school_code": [SCHOOL] * n,
            "school_year": ["2023/2024"] * n,
            "student_code": codes,
            "family_name": ["أوالطالب"] * n,
            "first_name": ["إبراهيم"] * n,
            "sex": ["M", "F"] * (n // 2) + ["M"] * (n % 2),
            "birth_date": [dt.date(2011, 3, 4)] * n,
            "birthplace": ["أربعاء الساحل"] * n,
            "submission_id": list(range(n)),
            "sheet": ["Sheet1"] * n,
            "sheet_row": list(range(16, 16 + n)),
        },
        schema=TABLES["students"].schema,
    )


def _publish(settings, tables: dict[str, pa.Table]) -> None:
    versions = {
        name: replace_school_rows(settings.warehouse, name, [SCHOOL], rows)
        for name, rows in tables.items()
    }
    database = ControlDatabase(settings.resolved_database_url)
    try:
        finish_night(database, start_night(database), versions, {})
    finally:
        database.dispose()


@pytest.fixture
def home(tmp_path, capsys):
    path = tmp_path / "home"
    assert main(["init", "--home", str(path)]) == 0
    _publish(load_settings(path), {"students": _students(CODES)})
    capsys.readouterr()
    return path


def query(capsys, home, *args: str) -> tuple[int, str, str]:
    code = main(["query", *args, "--home", str(home)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_show_tables_lists_what_can_be_queried_with_columns(capsys, home):
    code, out, err = query(capsys, home, "show tables")
    assert code == 0, err
    lines = out.splitlines()
    students = next(line for line in lines if "│ students " in line)
    assert "school_code, school_year, student_code, family_name" in out.replace("\n", " ")
    assert str(PUPILS) in students
    assert any("│ submissions " in line for line in lines)
    assert any("│ findings " in line for line in lines)
    code, out, _ = query(capsys, home, "show tables", "--format", "json")
    listed = {row["table"]: row for row in json.loads(out)}
    assert set(listed) == {"students", "submissions", "findings", "coverage"}
    assert listed["coverage"]["rows"] == 0  # no campaigns.toml: nothing is owed
    assert listed["students"]["rows"] == PUPILS
    assert listed["findings"]["columns"].startswith("submission_id, school_code, file_name")


def test_describe_gives_columns_types_and_their_meaning(capsys, home):
    code, out, _ = query(capsys, home, "describe students", "-f", "json")
    assert code == 0
    columns = {row["column"]: row for row in json.loads(out)}
    assert list(columns)[:3] == ["school_code", "school_year", "student_code"]
    assert columns["birth_date"]["type"] == "date32[day]"
    assert columns["student_code"]["about"] == "Massar code of the pupil"
    code, out, _ = query(capsys, home, "describe findings")
    assert code == 0 and "rule_id" in out and "message_fr" in out


def test_an_unknown_table_names_the_real_ones(capsys, home):
    for sql in ("select * from mark", "describe nope"):
        code, _, err = query(capsys, home, sql)
        assert code == 1
        assert "Tables you can query: students, submissions, findings" in err
        assert err.strip().count("\n") == 0 and "Traceback" not in err


def test_table_output_has_a_stated_default_limit(capsys, home):
    code, out, _ = query(capsys, home, "select student_code from students order by 1")
    assert code == 0
    shown = [code for code in CODES if code in out]
    assert shown == CODES[:QUERY_TABLE_ROWS]
    assert out.rstrip().endswith(
        f"{QUERY_TABLE_ROWS} of {PUPILS} rows shown; --limit N shows N rows, --limit 0 all of them."
    )
    code, out, _ = query(
        capsys, home, "select student_code from students order by 1", "--limit", "7"
    )
    assert [c for c in CODES if c in out] == CODES[:7]
    assert f"7 of {PUPILS} rows shown" in out
    code, out, _ = query(capsys, home, "select student_code from students", "--limit", "0")
    assert all(c in out for c in CODES) and out.rstrip().endswith(f"{PUPILS} rows.")


def test_csv_and_json_stay_complete_unless_limited(capsys, home):
    code, out, err = query(capsys, home, "select student_code from students", "-f", "csv")
    assert code == 0 and err == ""
    rows = list(csv.DictReader(io.StringIO(out)))
    assert sorted(r["student_code"] for r in rows) == CODES
    code, out, err = query(capsys, home, "select * from students", "-f", "json")
    assert len(json.loads(out)) == PUPILS and err == ""
    code, out, err = query(capsys, home, "select * from students", "-f", "json", "--limit", "3")
    assert len(json.loads(out)) == 3
    assert f"3 of {PUPILS} rows shown" in err


def test_codes_are_never_cut_even_in_a_table_wider_than_the_terminal(capsys, home):
    wide = ", ".join(f"student_code as c{i}" for i in range(12))
    code, out, _ = query(capsys, home, f"select *, {wide} from students order by student_code")
    assert code == 0
    assert "…" not in out
    first = next(line for line in out.splitlines() if CODES[0] in line)
    assert first.count(CODES[0]) == 13  # the code itself and its twelve copies, whole
    assert "أربعاء الساحل" in first and "2011-03-04" in first


def test_a_query_sees_the_published_night_only_and_the_public_columns(capsys, home):
    settings = load_settings(home)
    replace_school_rows(settings.warehouse, "students", [SCHOOL], _students(CODES[:2]))
    code, out, _ = query(capsys, home, "select count(*) as n from students", "-f", "json")
    assert json.loads(out) == [{"n": PUPILS}]  # the unpublished version is not read
    code, _, err = query(capsys, home, "select detail from submissions")
    assert code == 1 and "detail" in err


def test_a_negative_limit_is_bad_usage(capsys, home):
    code, _, err = query(capsys, home, "select 1", "--limit", "-1")
    assert code == 2 and "Invalid value" in err


def test_csv_and_json_hold_the_list_columns_of_exam_results(capsys, tmp_path):
    """exam_results names a candidate's missing papers in a list column: csv writes its items
    in one cell ("; "), json as a list (Arrow's CSV writer refused lists: exit 1)."""
    path = tmp_path / "home"
    assert main(["init", "--home", str(path)]) == 0
    exams = pa.table(
        {
            "school_code": [SCHOOL, SCHOOL],
            "school_year": ["2023/2024"] * 2,
            "student_code": CODES[:2],
            "exam": ["certificat_college"] * 2,
            "missing_papers": [["regional:francais", "regional:maths"], []],
        }
    )
    _publish(load_settings(path), {"exam_results": exams})
    capsys.readouterr()
    sql = "select student_code, missing_papers from exam_results order by student_code"
    code, out, err = query(capsys, path, sql, "-f", "csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [row["missing_papers"] for row in rows] == ["regional:francais; regional:maths", ""]
    code, out, err = query(capsys, path, sql, "-f", "json")
    assert code == 0, err
    assert [row["missing_papers"] for row in json.loads(out)] == [
        ["regional:francais", "regional:maths"],
        [],
    ]

"""The e-service extract: exactly the contracted fields, the inputs' values, one file per school."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from tasks.eservices import _MARKS, build_extract, changed_extracts, write_school_extracts

YEAR = "2023/2024"
A, B = "27783Y", "12345X"
K1, K2, K3 = "K100000001", "K100000002", "K100000003"

# The contract, written out here on purpose (not imported): a new field must be a decision.
PUPIL = {
    "student_code",
    "school_code",
    "school_year",
    "class_code",
    "level_code",
    "level_ar",
    "level_fr",
    "mark_scale",
    "assessments",
    "exams",
    "semesters",
    "annual",
    "history",
}
ASSESSMENT = {
    "subject_code",
    "subject_ar",
    "subject_fr",
    "semester",
    "tests",
    "activities",
    "average",
    "coefficient",
    "status",
}
TEST = {"slot", "mark", "justified_absence"}
ACTIVITIES = {"mark", "justified_absence"}
EXAM = {
    "exam",
    "session",
    "cc_average",
    "local_average",
    "regional_average",
    "national_average",
    "final_average",
    "result",
    "mention",
}
SEMESTER = {"semester", "average", "rank", "class_size"}
ANNUAL = {"average", "rank", "class_size", "decision", "mention"}
HISTORY = {"school_year", "school_code", "level_code", "average", "result"}

FORBIDDEN_KEYS = (
    "guardian",
    "relation",
    "cin",
    "cnss",
    "cmr",
    "phone",
    "orphan",
    "discipline",
    "incident",
    "sanction",
    "support",
    "programme",
    "amount",
    "reason",
    "name",  # family_name, first_name, guardian names
    "birth",
    "sex",
    "teacher",
    "remark",
    "submission",
    "sheet",
)
SECRETS = ("BE123456", "0612345678", "مجاهد", "Tiznit-birthplace", "غياب مرض", "2011-03-04")


# The warehouse's marks as the extract reads them, with a column it leaves out.
MARK_SCHEMA = {**_MARKS, "reason": pl.Utf8}


def _frame(rows: list[dict[str, Any]], schema: dict[str, Any]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=schema, orient="row")


@pytest.fixture
def inputs() -> dict[str, pl.DataFrame]:
    students = pl.DataFrame(
        {
            "school_code": [A, A, B, A],
            "school_year": [YEAR, YEAR, YEAR, YEAR],
            "student_code": [K1, K2, K3, "K100000009"],
            "family_name": ["مجاهد", "x", "y", "z"],
            "first_name": ["a", "b", "c", "d"],
            "sex": ["F", "M", "F", "M"],
            "birth_date": [date(2011, 3, 4)] * 4,
            "birthplace": ["Tiznit-birthplace", None, None, None],
            # columns that must never travel, even when a caller passes a wide frame
            "guardian_cin": ["BE123456", None, None, None],
            "phone": ["0612345678", None, None, None],
        }
    )
    base = {"school_year": YEAR, "class_code": "3APIC-2", "level_code": "3APIC"}
    marks = _frame(
        [
            {**base, "school_code": A, "student_code": K1, "subject_code": "0110", "semester": 1,
             "slot": "test2", "mark": None, "absence": "justified", "mark_scale": 20.0,
             "reason": "غياب مرض"},
            {**base, "school_code": A, "student_code": K1, "subject_code": "0110", "semester": 1,
             "slot": "test1", "mark": 12.5, "absence": None, "mark_scale": 20.0, "reason": None},
            {**base, "school_code": A, "student_code": K1, "subject_code": "0110", "semester": 1,
             "slot": "test3", "mark": 0.0, "absence": "unjustified", "mark_scale": 20.0,
             "reason": "غياب مرض"},
            {**base, "school_code": A, "student_code": K1, "subject_code": "0110", "semester": 1,
             "slot": "activities", "mark": 16.0, "absence": None, "mark_scale": 20.0,
             "reason": None},
            {**base, "school_code": A, "student_code": K1, "subject_code": "0060", "semester": 2,
             "slot": "test1", "mark": 9.0, "absence": None, "mark_scale": 20.0, "reason": None},
            {**base, "school_code": B, "student_code": K3, "class_code": "6APG-1",
             "level_code": "6APG", "subject_code": "0504", "semester": 1, "slot": "test1",
             "mark": 7.5, "absence": None, "mark_scale": 10.0, "reason": None},
        ],
        MARK_SCHEMA,
    )  # fmt: skip
    subject_results = pl.DataFrame(
        {
            "school_code": [A, A, A, B],
            "school_year": [YEAR] * 4,
            "class_code": ["3APIC-2", "3APIC-2", "3APIC-2", "6APG-1"],
            "level_code": ["3APIC", "3APIC", "3APIC", "6APG"],
            "student_code": [K1, K1, K1, K3],
            "subject_code": ["0110", "0060", "0100", "0504"],
            "semester": pl.Series([1, 2, 1, 1], dtype=pl.Int8),
            "tests_mean": [6.25, 9.0, None, 7.5],
            "activities": [16.0, None, None, None],
            "average": [8.6875, 9.0, None, 7.5],
            "coefficient": [2.0, 4.0, 1.0, 1.0],
            "status": ["ok", "ok", "exempt", "ok"],
        }
    )
    semester_results = pl.DataFrame(
        {
            "school_code": [A, A, A, B],
            "school_year": [YEAR] * 4,
            "class_code": ["3APIC-2", "3APIC-2", "3APIC-2", "6APG-1"],
            "level_code": ["3APIC", "3APIC", "3APIC", "6APG"],
            "student_code": [K1, K1, K2, K3],
            "semester": pl.Series([2, 1, 1, 1], dtype=pl.Int8),
            "average": [9.0, 8.6875, 11.0, 7.5],
            "rank": pl.Series([2, 2, 1, 1], dtype=pl.Int32),
            "class_size": [2, 2, 2, 1],
            "subjects_counted": [1, 1, 1, 1],
        }
    )
    annual_results = pl.DataFrame(
        {
            "school_code": [A, A, B],
            "school_year": [YEAR] * 3,
            "class_code": ["3APIC-2", "3APIC-2", "6APG-1"],
            "level_code": ["3APIC", "3APIC", "6APG"],
            "student_code": [K1, K2, K3],
            "average": [8.84375, 11.0, 7.5],
            "rank": pl.Series([2, 1, 1], dtype=pl.Int32),
            "decision": ["council", "promoted", "promoted"],
            "mention": [None, None, "bien"],
        }
    )
    exam_results = pl.DataFrame(
        {
            "school_code": [A, A],
            "school_year": [YEAR, YEAR],
            "class_code": ["3APIC-2", "3APIC-2"],
            "level_code": ["3APIC", "3APIC"],
            "student_code": [K1, K1],
            "exam": ["college_certificate", "college_certificate"],
            "cc_average": [8.84, 8.84],
            "local_average": [9.0, 9.0],
            "regional_average": [11.5, 12.0],
            "national_average": [None, None],
            "final_average": [10.05, 10.25],
            "session": ["makeup", "normal"],
            "result": ["passed", "makeup"],
            "mention": ["passable", None],
        }
    )
    history = pl.DataFrame(
        {
            "school_code": [A, B, A, B],
            "school_year": ["2021/2022", "2022/2023", "2024/2025", "2022/2023"],
            "class_code": ["1APIC-1", "2APIC-3", "4X-1", "5APG-1"],
            "level_code": ["1APIC", "2APIC", "X", "5APG"],
            "student_code": [K1, K1, K1, K3],
            "average": [13.0, 10.5, 15.0, 6.0],
            "rank": [3, 9, 1, 4],
            "decision": ["promoted", "promoted", "promoted", "promoted"],
            "mention": ["assez_bien", "passable", None, None],
        }
    )
    return {
        "students": students,
        "marks": marks,
        "subject_results": subject_results,
        "semester_results": semester_results,
        "annual_results": annual_results,
        "exam_results": exam_results,
        "history": history,
    }


def _by_code(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["student_code"]: r for r in records}


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def test_records_hold_exactly_the_contracted_fields(inputs):
    extracts = build_extract(**inputs)
    records = [r for school in extracts.values() for r in school]
    assert records
    for record in records:
        assert set(record) == PUPIL
        for row in record["assessments"]:
            assert set(row) == ASSESSMENT
            for test in row["tests"]:
                assert set(test) == TEST
            assert row["activities"] is None or set(row["activities"]) == ACTIVITIES
        assert all(set(row) == EXAM for row in record["exams"])
        assert all(set(row) == SEMESTER for row in record["semesters"])
        assert record["annual"] is None or set(record["annual"]) == ANNUAL
        assert all(set(row) == HISTORY for row in record["history"])
        leaked = {k for k in _keys(record) for word in FORBIDDEN_KEYS if word in k}
        assert not leaked, leaked


def test_extract_values_match_inputs(inputs):
    records = _by_code(build_extract(**inputs)[A])
    pupil = records[K1]
    assert pupil["school_code"] == A
    assert pupil["school_year"] == YEAR
    assert pupil["class_code"] == "3APIC-2"
    assert pupil["level_code"] == "3APIC"
    assert pupil["level_ar"] == "الثالثة إعدادي مسار دولي"
    assert pupil["mark_scale"] == 20.0

    table = {(r["subject_code"], r["semester"]): r for r in pupil["assessments"]}
    assert list(table) == [("0100", 1), ("0110", 1), ("0060", 2)]  # by semester, subject
    english = table[("0110", 1)]
    assert english["subject_fr"] == "Langue anglaise"
    assert english["tests"] == [
        {"slot": "test1", "mark": 12.5, "justified_absence": False},
        {"slot": "test2", "mark": None, "justified_absence": True},
        {"slot": "test3", "mark": 0.0, "justified_absence": False},  # unjustified is not shown
    ]
    assert english["activities"] == {"mark": 16.0, "justified_absence": False}
    assert (english["average"], english["coefficient"], english["status"]) == (8.6875, 2.0, "ok")
    exempt = table[("0100", 1)]
    assert (exempt["tests"], exempt["activities"], exempt["average"]) == ([], None, None)
    assert exempt["status"] == "exempt"
    assert table[("0060", 2)]["tests"] == [
        {"slot": "test1", "mark": 9.0, "justified_absence": False}
    ]

    assert pupil["semesters"] == [
        {"semester": 1, "average": 8.6875, "rank": 2, "class_size": 2},
        {"semester": 2, "average": 9.0, "rank": 2, "class_size": 2},
    ]
    assert pupil["annual"] == {
        "average": 8.84375,
        "rank": 2,
        "class_size": 2,
        "decision": "council",
        "mention": None,
    }
    assert [(e["session"], e["result"], e["final_average"]) for e in pupil["exams"]] == [
        ("makeup", "passed", 10.05),
        ("normal", "makeup", 10.25),
    ]
    assert pupil["exams"][1]["regional_average"] == 12.0
    # Earlier years only (2024/2025 is not history), oldest first, whatever the school.
    assert pupil["history"] == [
        {"school_year": "2021/2022", "school_code": A, "level_code": "1APIC", "average": 13.0,
         "result": "promoted"},
        {"school_year": "2022/2023", "school_code": B, "level_code": "2APIC", "average": 10.5,
         "result": "promoted"},
    ]  # fmt: skip

    primary = build_extract(**inputs)[B][0]
    assert (primary["student_code"], primary["mark_scale"]) == (K3, 10.0)
    assert primary["annual"]["mention"] == "bien"
    assert primary["history"][0]["school_year"] == "2022/2023"


def test_pupil_on_the_list_without_results_gets_an_empty_record(inputs):
    records = _by_code(build_extract(**inputs)[A])
    assert set(records) == {K1, K2, "K100000009"}
    empty = records["K100000009"]
    assert (empty["class_code"], empty["level_code"], empty["annual"]) == (None, None, None)
    assert empty["assessments"] == empty["exams"] == empty["semesters"] == empty["history"] == []
    assert records[K2]["assessments"] == []
    assert records[K2]["annual"]["decision"] == "promoted"


def test_history_is_optional(inputs):
    del inputs["history"]
    records = _by_code(build_extract(**inputs)[A])
    assert records[K1]["history"] == []


def test_a_province_without_exam_levels_still_gets_its_extract(inputs):
    # A collège's marks of one subject and no exam: the evaluation has no exam result and no
    # annual result to give (an empty frame without columns), the pupils keep their records.
    with_exams = _by_code(build_extract(**inputs)[A])
    inputs["exam_results"] = pl.DataFrame()
    inputs["annual_results"] = pl.DataFrame()
    records = _by_code(build_extract(**inputs)[A])
    assert set(records) == set(with_exams)
    assert all(r["exams"] == [] and r["annual"] is None for r in records.values())
    assert records[K1]["assessments"] == with_exams[K1]["assessments"] != []


def test_one_file_per_school_and_no_other_schools_pupil(inputs, tmp_path: Path):
    extracts = build_extract(**inputs)
    written = write_school_extracts(tmp_path, extracts)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == [
        f"{B}/eservices.jsonl",
        f"{B}/manifest.json",
        f"{A}/eservices.jsonl",
        f"{A}/manifest.json",
    ]
    pupils_of = {A: {K1, K2, "K100000009"}, B: {K3}}
    for school, expected in pupils_of.items():
        folder = tmp_path / school
        assert sorted(p.name for p in folder.iterdir()) == ["eservices.jsonl", "manifest.json"]
        data = (folder / "eservices.jsonl").read_bytes()
        lines = [json.loads(line) for line in data.decode("utf-8").splitlines()]
        assert {r["student_code"] for r in lines} == expected
        assert {r["school_code"] for r in lines} == {school}
        others = set().union(*(v for k, v in pupils_of.items() if k != school))
        assert not any(code.encode() in data for code in others)
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        assert manifest["school_code"] == school
        assert manifest["school_years"] == [YEAR]
        entry = manifest["files"][0]
        assert entry["name"] == "eservices.jsonl"
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["bytes"] == len(data)
        assert entry["records"] == manifest["counts"]["pupils"] == len(expected)
    counts = json.loads((tmp_path / A / "manifest.json").read_text())["counts"]
    assert counts == {
        "pupils": 3,
        "assessments": 3,
        "exams": 2,
        "semesters": 3,
        "annual": 2,
        "history": 2,
    }


def test_files_carry_no_personal_or_out_of_scope_data(inputs, tmp_path: Path):
    write_school_extracts(tmp_path, build_extract(**inputs))
    text = (tmp_path / A / "eservices.jsonl").read_text(encoding="utf-8")
    for secret in SECRETS:
        assert secret not in text
    assert "unjustified" not in text
    for line in text.splitlines():
        leaked = {k for k in _keys(json.loads(line)) for word in FORBIDDEN_KEYS if word in k}
        assert not leaked


def test_arabic_is_written_as_utf8(inputs, tmp_path: Path):
    write_school_extracts(tmp_path, build_extract(**inputs))
    text = (tmp_path / A / "eservices.jsonl").read_text(encoding="utf-8")
    assert "اللغة الإنجليزية" in text
    assert "\\u" not in text


def test_missing_required_column_is_an_error(inputs):
    inputs["annual_results"] = inputs["annual_results"].drop("average")
    with pytest.raises(ValueError, match="annual_results lacks columns average"):
        build_extract(**inputs)


def test_writer_refuses_another_schools_record_and_odd_folders(inputs, tmp_path: Path):
    extracts = build_extract(**inputs)
    with pytest.raises(ValueError, match="other schools"):
        write_school_extracts(tmp_path, {A: extracts[A] + extracts[B]})
    with pytest.raises(ValueError, match="cannot name a folder"):
        write_school_extracts(tmp_path, {"../x": []})


def test_an_extract_with_the_same_records_is_left_untouched(inputs, tmp_path: Path):
    extracts = build_extract(**inputs)
    write_school_extracts(tmp_path, extracts)
    files = sorted(tmp_path.rglob("*.*"))
    stamps = {path: path.stat().st_mtime_ns for path in files}
    for path in files:  # an old date: a rewrite would show
        os.utime(path, ns=(stamps[path] - 10**9, stamps[path] - 10**9))
    before = {path: path.stat().st_mtime_ns for path in files}

    again = write_school_extracts(tmp_path, build_extract(**inputs))  # nothing changed

    assert sorted(again) == files
    assert {path: path.stat().st_mtime_ns for path in files} == before
    # a pupil's record of school A changes: A's files are rewritten, B's are not
    changed = {**extracts, A: [dict(extracts[A][0], class_code="X-9"), *extracts[A][1:]]}
    write_school_extracts(tmp_path, changed)
    after = {path: path.stat().st_mtime_ns for path in files}
    assert {p.relative_to(tmp_path).as_posix() for p in files if after[p] != before[p]} == {
        f"{A}/eservices.jsonl",
        f"{A}/manifest.json",
    }
    lines = (tmp_path / A / "eservices.jsonl").read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[0])["class_code"] == "X-9"
    # a lost extract is written again, whatever its manifest says
    (tmp_path / B / "eservices.jsonl").unlink()
    write_school_extracts(tmp_path, changed)
    assert (tmp_path / B / "eservices.jsonl").is_file()


def test_a_night_builds_the_extracts_of_the_schools_whose_inputs_changed_only(
    inputs, tmp_path: Path
):
    extracts, made_of = changed_extracts(tmp_path, **inputs)
    assert sorted(extracts) == sorted(made_of) == sorted([A, B])  # nothing on disk yet
    write_school_extracts(tmp_path, extracts, made_of)
    stamps = {path: path.stat().st_mtime_ns for path in tmp_path.rglob("*.*")}

    # the same inputs, rows in another order: nothing to build, every file counted
    shuffled = {k: v.reverse() if isinstance(v, pl.DataFrame) else v for k, v in inputs.items()}
    # and the history holding this year's results too (a later night's): not read, not changed
    this_year = inputs["annual_results"].select(inputs["history"].columns)
    shuffled["history"] = pl.concat([inputs["history"], this_year], how="vertical_relaxed")
    again, same = changed_extracts(tmp_path, **shuffled)
    assert again == {} and same == made_of
    assert len(write_school_extracts(tmp_path, again, same)) == 4
    assert {path: path.stat().st_mtime_ns for path in tmp_path.rglob("*.*")} == stamps

    # one mark of school B corrected: B's extract is built and written, A's stands
    marks = inputs["marks"].with_columns(
        pl.when(pl.col("school_code") == B).then(pl.col("mark") + 0.25).otherwise(pl.col("mark"))
    )
    changed, now = changed_extracts(tmp_path, **{**inputs, "marks": marks})
    assert sorted(changed) == [B] and now[A] == made_of[A] and now[B] != made_of[B]
    write_school_extracts(tmp_path, changed, now)
    manifest = json.loads((tmp_path / B / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["inputs_sha256"] == now[B]
    moved = {
        p.relative_to(tmp_path).as_posix() for p in stamps if p.stat().st_mtime_ns != stamps[p]
    }
    assert moved == {f"{B}/eservices.jsonl", f"{B}/manifest.json"}


def test_a_pupils_earlier_result_in_any_school_is_in_the_fingerprint_of_the_pupils_school(
    inputs,
):
    """The history an extract reads is its pupils' results of earlier years, in any school,
    pupils known by a mark only included: one of them corrected gives the pupil's school a new
    fingerprint (and so a new extract); a row of a later year, read by no record, changes
    nothing."""
    from tasks.eservices import extract_inputs

    k4 = "K100000004"  # a pupil of A known by a mark only: no list, no result
    mark = inputs["marks"].head(1).with_columns(pl.lit(k4).alias("student_code"))
    inputs = {**inputs, "marks": pl.concat([inputs["marks"], mark])}
    past = (
        inputs["history"]
        .head(1)
        .with_columns(pl.lit(k4).alias("student_code"), pl.lit(B).alias("school_code"))
    )
    inputs["history"] = pl.concat([inputs["history"], past])
    made_of = extract_inputs(**inputs)

    def corrected(pupil: str, year: str) -> pl.DataFrame:
        row = (pl.col("student_code") == pupil) & (pl.col("school_year") == year)
        average = pl.when(row).then(pl.col("average") + 0.5).otherwise(pl.col("average"))
        return inputs["history"].with_columns(average)

    for pupil, year in ((K1, "2022/2023"), (k4, "2021/2022")):  # both were in B that year
        now = extract_inputs(**{**inputs, "history": corrected(pupil, year)})
        assert now[A] != made_of[A] and now[B] == made_of[B]
    later = extract_inputs(**{**inputs, "history": corrected(K1, "2024/2025")})
    assert later == made_of


def test_extracts_built_a_few_schools_at_a_time_are_those_of_one_build(
    inputs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from tasks import eservices
    from tasks.eservices import extract_records

    whole = extract_records(**inputs)
    monkeypatch.setattr(eservices, "SCHOOLS_PER_BUILD", 1)  # each school a build of its own
    extracts, _ = changed_extracts(tmp_path, **inputs)
    assert sorted(extracts) == [B, A]
    for school in (A, B):
        assert extracts[school].equals(whole.filter(pl.col("school_code") == school))
    assert pl.concat([extracts[B], extracts[A]]).equals(whole)
    # built without B's rows, A's pupil still has his year in B in his history
    pupil = extracts[A].filter(pl.col("student_code") == K1).row(0, named=True)
    assert [(h["school_year"], h["school_code"]) for h in pupil["history"]] == [
        ("2021/2022", A),
        ("2022/2023", B),
    ]


def _assessment_marks(rows: list[tuple[str, str, int, str, float | None, str | None]]):
    """Marks of school A in 2023/2024 from (pupil, subject, semester, slot, mark, absence)."""
    columns = ("student_code", "subject_code", "semester", "slot", "mark", "absence")
    return pl.DataFrame(
        [
            {"school_code": A, "school_year": YEAR, **dict(zip(columns, row, strict=True))}
            for row in rows
        ],
        schema={name: MARK_SCHEMA[name] for name in ("school_code", "school_year", *columns)},
        orient="row",
    )


# NotesCC rows: one pupil's slots of a subject and semester one after the other, slots out of
# order, a pupil with activities only, one without, one with two activities (the first counts)
IN_RUNS = [
    (K1, "0110", 1, "test2", None, "justified"),
    (K1, "0110", 1, "test1", 12.5, None),
    (K1, "0110", 1, "activities", 16.0, None),
    (K1, "0110", 1, "test3", 0.0, "unjustified"),
    (K2, "0110", 1, "activities", 11.0, "justified"),
    (K2, "0110", 1, "remark", None, None),
    (K1, "0110", 2, "test1", 9.0, "justified"),
    (K1, "0110", 2, "test4", 7.0, None),
    (K3, "0060", 1, "test1", None, None),
    (K3, "0060", 1, "activities", 3.0, None),
    (K3, "0060", 1, "activities", 4.0, "justified"),
]


def _keyed(frame: pl.DataFrame) -> pl.DataFrame:
    from tasks.eservices import ASSESSMENT_KEY

    return frame.sort(ASSESSMENT_KEY)


# NotesCC rows where every run has its tests and its activities (the usual workbook)
COMPLETE_RUNS = [
    (K1, "0110", 1, "test2", None, "justified"),
    (K1, "0110", 1, "activities", 16.0, None),
    (K1, "0110", 1, "test1", 12.5, None),
    (K1, "0110", 1, "test3", 0.0, "unjustified"),
    (K2, "0110", 1, "activities", 11.0, "justified"),
    (K2, "0110", 1, "test3", 4.0, None),
    (K1, "0110", 2, "test1", 9.0, "justified"),
    (K1, "0110", 2, "activities", 7.0, None),
    (K1, "0110", 2, "activities", 8.0, None),
    (K3, "0060", 1, "test4", 3.5, None),
    (K3, "0060", 1, "activities", 3.0, None),
]


@pytest.mark.parametrize("rows", [IN_RUNS, COMPLETE_RUNS], ids=["some-runs-partial", "complete"])
def test_slots_grouped_by_runs_are_those_grouped_by_key(rows, monkeypatch: pytest.MonkeyPatch):
    from tasks import eservices

    marks = _assessment_marks(rows)
    by_key = eservices._slots_by_key(
        marks.filter(pl.col("slot").is_in([*eservices.TEST_SLOTS, "activities"]))
    )

    def refused(_: pl.DataFrame) -> pl.DataFrame:
        raise AssertionError("marks in runs are grouped by run")

    monkeypatch.setattr(eservices, "_slots_by_key", refused)
    by_run = eservices._slots(marks)
    assert by_run.columns == by_key.columns
    assert _keyed(by_run).equals(_keyed(by_key))
    first = by_run.filter(pl.col("student_code") == K1, pl.col("semester") == 1).row(0, named=True)
    assert [t["slot"] for t in first["tests"]] == ["test1", "test2", "test3"]
    assert by_run.filter(pl.col("student_code") == K3).item(0, "activities")["mark"] == 3.0


@pytest.mark.parametrize(
    "rows",
    [
        # the same pupil, subject and semester in two runs (two classes' workbooks)
        [*IN_RUNS, (K1, "0110", 1, "test4", 5.0, None)],
        # a run that repeats a slot: which one comes first is the grouping's
        [*IN_RUNS[:2], (K1, "0110", 1, "test1", 13.0, None), *IN_RUNS[2:]],
    ],
    ids=["key-in-two-runs", "slot-repeated"],
)
def test_marks_not_in_runs_are_grouped_by_key(rows, monkeypatch: pytest.MonkeyPatch):
    from tasks import eservices

    marks = _assessment_marks(rows)
    expected = eservices._slots_by_key(
        marks.filter(pl.col("slot").is_in([*eservices.TEST_SLOTS, "activities"]))
    )
    used: list[int] = []
    by_key = eservices._slots_by_key

    def counted(frame: pl.DataFrame) -> pl.DataFrame:
        used.append(frame.height)
        return by_key(frame)

    monkeypatch.setattr(eservices, "_slots_by_key", counted)
    assert _keyed(eservices._slots(marks)).equals(_keyed(expected))
    assert used, "the key's grouping decides"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_marks_order_does_not_change_the_records(inputs, seed: int):
    from tasks.eservices import extract_records

    shuffled = {**inputs, "marks": inputs["marks"].sample(fraction=1.0, shuffle=True, seed=seed)}
    assert extract_records(**shuffled).equals(extract_records(**inputs))


def test_a_pupil_with_results_at_two_levels_gets_the_same_record_whatever_their_order(inputs):
    """A defect seen on generated provinces: a pupil with annual results in two classes of two
    levels in one school and year. The record named either class from one run to the next
    (the results come in DuckDB's order); it must not depend on that order."""
    from tasks.eservices import extract_records

    annual = inputs["annual_results"]
    pupil = annual.row(0, named=True)
    twice = pl.concat(
        [annual, pl.DataFrame([{**pupil, "class_code": "2APIC-1", "level_code": "2APIC"}],
                              schema=annual.schema)]
    )  # fmt: skip
    orders = [twice, twice.reverse(), twice.sample(fraction=1.0, shuffle=True, seed=5)]
    records = [extract_records(**{**inputs, "annual_results": order}) for order in orders]
    assert records[1].equals(records[0]) and records[2].equals(records[0])
    mine = records[0].filter(pl.col("student_code") == pupil["student_code"]).row(0, named=True)
    assert (mine["class_code"], mine["level_code"]) == ("2APIC-1", "2APIC")  # first by level code


def test_a_pupil_placed_by_subject_results_in_two_classes_gets_the_first_by_level(inputs):
    """A pupil with no annual or semester result takes the class of his subject results; in
    two classes of two levels (a defect), the first by level code, whatever their order or
    how many subjects each class has."""
    from tasks.eservices import extract_records

    subjects = inputs["subject_results"]
    mine = subjects.filter(pl.col("student_code") == K1)
    other = mine.with_columns(
        pl.lit("2APIC-1").alias("class_code"), pl.lit("2APIC").alias("level_code")
    )
    twice = pl.concat([subjects, other.head(1), mine, other.tail(2)])
    no_results = {"semester_results": pl.DataFrame(), "annual_results": pl.DataFrame()}
    orders = [
        twice,
        twice.reverse(),
        *(twice.sample(fraction=1.0, shuffle=True, seed=s) for s in (5, 6)),
    ]
    records = [
        extract_records(**{**inputs, **no_results, "subject_results": order}) for order in orders
    ]
    assert all(r.equals(records[0]) for r in records[1:])
    pupil = records[0].filter(pl.col("student_code") == K1).row(0, named=True)
    assert (pupil["class_code"], pupil["level_code"]) == ("2APIC-1", "2APIC")


@pytest.mark.parametrize("table", ["subject_results", "semester_results"])
def test_a_pupils_results_at_two_levels_give_the_same_record_whatever_their_order(
    inputs, table: str
):
    """A defect seen on a --defects province: a pupil with subject (and semester) results of
    the same subject and semester in two classes of two levels. The record's assessment took
    the average of the first in DuckDB's order, from one run to the next either; it takes the
    first by level code now, as the placement does, and lists both semesters' rows by level."""
    from tasks.eservices import extract_records

    results = inputs[table]
    mine = results.filter(pl.col("student_code") == K1)
    other = mine.with_columns(
        pl.lit("2APIC-1").alias("class_code"),
        pl.lit("2APIC").alias("level_code"),
        (pl.col("average") / 2 + 0.25).alias("average"),
    )
    twice = pl.concat([results, other])
    orders = [
        twice,
        twice.reverse(),
        *(twice.sample(fraction=1.0, shuffle=True, seed=s) for s in (5, 6, 7)),
    ]
    records = [extract_records(**{**inputs, table: order}) for order in orders]
    assert all(r.equals(records[0]) for r in records[1:])
    pupil = records[0].filter(pl.col("student_code") == K1).row(0, named=True)
    if table == "subject_results":
        averages = {(a["subject_code"], a["semester"]): a["average"] for a in pupil["assessments"]}
        expected = {(r["subject_code"], r["semester"]): r["average"] for r in other.to_dicts()}
        assert expected and averages.items() >= expected.items()  # the 2APIC rows
    else:
        assert [s["average"] for s in pupil["semesters"]] == [
            a
            for semester in sorted(mine.get_column("semester").to_list())
            for a in (
                other.filter(pl.col("semester") == semester).item(0, "average"),
                mine.filter(pl.col("semester") == semester).item(0, "average"),
            )
        ]

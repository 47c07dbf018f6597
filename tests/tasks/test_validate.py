"""Validation of a submission and the cross-record rules, as a school experiences them: the
right rule at the right row and column with the text it wrote; nothing on clean rows."""

from __future__ import annotations

import json

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.rules import MISSING
from tasks.validate import (
    FINDING_COLUMNS,
    cross_check_province,
    cross_check_school,
    finding_rows,
    validate_submission,
    with_messages,
)
from tests.tasks.validation.read_frames import (
    SCHOOL,
    TABLE_DEFAULTS,
    codes,
    marks,
    read_frame,
    school_picture,
    students,
    table,
)


def findings_of(result):
    return result.findings.select("sheet_row", "column_name", "value", "rule_id").rows()


def params_of(result, rule_id):
    return [json.loads(p) for p in result.findings.filter(pl.col("rule_id") == rule_id)["params"]]


# ---- validate_submission ---------------------------------------------------------------------


def test_clean_marks_give_no_finding_and_are_all_accepted():
    frame = marks([{"student_code": c} for c in codes(5)])
    result = validate_submission("marks", frame, school_code=SCHOOL)
    assert result.findings.height == 0
    assert result.accepted.height == 5 and result.quarantined.height == 0
    assert result.findings.schema == pl.Schema(FINDING_COLUMNS)
    assert result.accepted["mark_value"].to_list() == [12.0] * 5
    assert "mark" in result.accepted.columns  # the original text is kept


def test_harmless_variants_give_no_finding():
    frame = marks(
        [
            {"student_code": " K100000001 ", "mark": "16,25"},
            {"student_code": "K١٠٠٠٠٠٠٠٢", "mark": "١٦٫٥", "birth_date": "٠١-٠٢-٢٠١١"},
            {"student_code": "k100000003", "mark": " 9.75 ", "full_name": "العلـــوي  محمد"},
            {"student_code": "K100000004", "mark": "7،5", "absence": "  "},
            {"student_code": "K100000005", "mark": None, "absence": "مبرر"},
            {"student_code": "K100000006", "mark": "   "},
        ]
    )
    result = validate_submission("marks", frame, school_code=SCHOOL)
    assert findings_of(result) == []
    assert result.accepted["mark_value"].to_list() == [16.25, 16.5, 9.75, 7.5, None, None]


def test_mark_out_of_scale_or_not_a_number_is_r003_at_its_column():
    frame = marks(
        [
            {"student_code": "K100000001", "mark": "21"},
            {
                "student_code": "K100000002",
                "mark": "abc",
                "slot": "test2",
                "slot_label": "الفرض الثاني",
            },
            {"student_code": "K100000003", "mark": "-1"},
            {"student_code": "K100000004", "mark": "20"},
        ]
    )
    result = validate_submission("marks", frame, school_code=SCHOOL)
    assert findings_of(result) == [
        (18, "الفرض الأول - النقطة", "21", "R003"),
        (19, "الفرض الثاني - النقطة", "abc", "R003"),
        (20, "الفرض الأول - النقطة", "-1", "R003"),
    ]
    assert params_of(result, "R003")[0] == {"value": "21", "scale": 20}
    assert result.quarantined["sheet_row"].to_list() == [18, 19, 20]
    assert result.accepted["sheet_row"].to_list() == [21]


def test_primary_marks_are_on_ten():
    frame = marks(
        [
            {"student_code": "K100000001", "mark": "8,5"},
            {"student_code": "K100000002", "mark": "12"},
        ]
    ).with_columns(
        pl.lit("6APG-1").alias("class_code"),
        pl.lit(None, pl.Utf8).alias("level_code"),
        pl.lit("السنة السادسة ابتدائي").alias("level_label"),
        pl.lit("0501").alias("subject_code"),
    )
    result = validate_submission("marks", frame, school_code=SCHOOL)
    assert findings_of(result) == [(19, "الفرض الأول - النقطة", "12", "R003")]
    assert params_of(result, "R003") == [{"value": "12", "scale": 10}]
    # an explicit scale wins
    assert validate_submission("marks", frame, school_code=SCHOOL, scale=20).findings.height == 0


def test_primary_scale_without_levels_reference_uses_the_level_code():
    frame = marks(
        [
            {
                "student_code": "K100000001",
                "mark": "12",
                "class_code": "5APG-2",
                "level_code": None,
                "level_label": None,
            }
        ]
    )
    result = validate_submission(
        "marks", frame, school_code=SCHOOL, reference={"levels": pl.DataFrame({"x": [1]})}
    )
    assert [r[3] for r in findings_of(result)] == ["R003"]


def test_student_code_date_slot_and_required_values():
    frame = marks(
        [
            {"student_code": "X12"},
            {"student_code": "K100000002", "birth_date": "31-02-2011"},
            {"student_code": None},
            {"student_code": "K100000004", "slot": "test9"},
            {"student_code": "K100000005", "full_name": " ـ "},
        ]
    )
    result = validate_submission("marks", frame, school_code=SCHOOL)
    assert findings_of(result) == [
        (18, "رقم التلميذ", "X12", "R001"),
        (19, "تاريخ الإزدياد", "31-02-2011", "R004"),
        (20, "رقم التلميذ", None, "R005"),
        (21, "الفرض", "test9", "R006"),
        (22, "إسم التلميذ", " ـ ", "R005"),
    ]
    assert result.quarantined.height == 5


def test_duplicates_report_every_occurrence_after_the_first():
    frame = marks(
        [
            {"student_code": "K100000001"},
            {"student_code": "K100000002"},
            {"student_code": " k100000001"},  # same key once cleaned
            {"student_code": "K100000001"},
            {"student_code": "K100000001", "slot": "test2", "slot_label": "الفرض الثاني"},
        ]
    )
    result = validate_submission("marks", frame, school_code=SCHOOL)
    assert findings_of(result) == [
        (20, "رقم التلميذ", " k100000001", "R007"),
        (21, "رقم التلميذ", "K100000001", "R007"),
    ]
    assert [p["first_row"] for p in params_of(result, "R007")] == ["18", "18"]
    assert result.accepted["sheet_row"].to_list() == [18, 19, 22]


def test_mark_with_justified_absence_is_a_query_that_does_not_block():
    frame = marks([{"student_code": "K100000001", "mark": "12", "absence": "مبرر"}])
    result = validate_submission("marks", frame, school_code=SCHOOL)
    assert findings_of(result) == [(18, "الفرض الأول - النقطة", "12", "R010")]
    assert result.findings["severity"].to_list() == ["query"]
    assert result.accepted.height == 1 and result.quarantined.height == 0


def test_absence_label_unknown_is_r006_at_the_absence_column():
    frame = marks([{"student_code": "K100000001", "mark": None, "absence": "غائب"}])
    result = validate_submission("marks", frame, school_code=SCHOOL)
    assert findings_of(result) == [(18, "الفرض الأول - التغيب", "غائب", "R006")]


def test_row_school_code_must_be_the_submitting_school():
    frame = table(
        "classes",
        [
            {"class_code": "1APIC-1"},
            {"class_code": "1APIC-2", "school_code": "12345A"},
            {"class_code": "1APIC-3", "school_code": " ٢٧٧٨٣y "},
        ],
    )
    result = validate_submission("classes", frame, school_code=SCHOOL)
    assert findings_of(result) == [(3, "رمز المؤسسة", "12345A", "R002")]
    assert params_of(result, "R002") == [{"value": "12345A", "school": SCHOOL}]


def test_malformed_codes_and_labels_in_tables():
    frame = table(
        "classes",
        [{"class_code": "1APIC 1"}, {"class_code": "1APIC-2", "school_year": "2023-2024"}],
    )
    result = validate_submission("classes", frame, school_code=SCHOOL)
    assert findings_of(result) == [
        (2, "القسم", "1APIC 1", "R008"),
        (3, "السنة الدراسية", "2023-2024", "R008"),
    ]
    assert params_of(result, "R008")[0]["expected"] == "1APIC-1"
    rooms = table("rooms", [{"room_code": "S01", "room_type": "مطبخ", "capacity": "ثلاثون"}])
    result = validate_submission("rooms", rooms, school_code=SCHOOL)
    assert [(r[1], r[3]) for r in findings_of(result)] == [
        ("نوع القاعة", "R006"),
        ("الطاقة الاستيعابية", "R006"),
    ]


def test_guardian_identifier_malformed_is_a_query():
    frame = table(
        "guardians",
        [
            {"student_code": "K100000001", "guardian_cin": "12"},
            {"student_code": "K100000002", "relation": "الأم", "cnss_number": "١٢٣٤٥٦٧٨٩"},
        ],
    )
    result = validate_submission("guardians", frame, school_code=SCHOOL)
    assert findings_of(result) == [(2, "رقم البطاقة الوطنية", "12", "R009")]
    assert result.accepted.height == 2


def test_students_list_labels_and_dates():
    frame = students(
        [
            {"student_code": "K100000001", "sex": "أنثى", "birth_date": "40000"},
            {"student_code": "K100000002", "sex": "؟"},
            {"student_code": "K100000003", "sex": None, "birth_date": "2011/02/30"},
        ]
    )
    result = validate_submission("students", frame, school_code=SCHOOL)
    assert findings_of(result) == [
        (17, "النوع", "؟", "R006"),
        (18, "تاريخ الإزدياد", "2011/02/30", "R004"),
        (18, "النوع", None, "R005"),
    ]


def test_exam_marks_decimal_comma_and_absent_flag():
    frame = table(
        "exam_marks",
        [
            {"student_code": "K100000001", "mark": "14,5"},
            {"student_code": "K100000002", "mark": "24", "absent": "نعم"},
        ],
    )
    result = validate_submission("exam_marks", frame, school_code=SCHOOL)
    assert findings_of(result) == [(3, "النقطة", "24", "R003")]
    assert result.accepted["absent_value"].to_list() == [False]


def test_findings_render_in_both_languages_without_gaps():
    frame = marks(
        [
            {"student_code": "X1", "mark": "25", "birth_date": "x"},
            {"student_code": "K100000001", "slot": "bad", "absence": "?", "mark": None},
            {"student_code": "K100000001", "slot": "bad", "mark": "5", "absence": "مبرر"},
            {"student_code": "K100000002", "semester": "3", "level_code": "?"},
        ]
    )
    result = validate_submission("marks", frame, school_code="99999Z")
    rows = finding_rows(result.findings)
    assert {r["rule_id"] for r in rows} >= {"R001", "R002", "R003", "R004", "R006", "R007"}
    for row in rows:
        assert MISSING not in row["message_fr"] and MISSING not in row["message_ar"], row
        assert set(row) >= {
            "sheet",
            "sheet_row",
            "column_name",
            "value",
            "rule_id",
            "severity",
            "message_ar",
            "message_fr",
        }
    assert with_messages(result.findings).height == len(rows)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["K100000001", "K100000002", " k100000003", "X", None, "K١٠٠٠٠٠٠٠٤"]),
            st.sampled_from(["12", "16,25", "21", "abc", None, " ", "١٠٫٥"]),
            st.sampled_from([None, "مبرر", "?"]),
            st.sampled_from(["test1", "test2", "activities", "zz"]),
        ),
        max_size=25,
    )
)
def test_counts_always_add_up(rows):
    frame = marks([{"student_code": c, "mark": m, "absence": a, "slot": s} for c, m, a, s in rows])
    result = validate_submission("marks", frame, school_code=SCHOOL)
    assert result.accepted.height + result.quarantined.height == frame.height
    blocked = set(result.findings.filter(pl.col("severity") == "error")["sheet_row"])
    assert set(result.quarantined["sheet_row"]) == blocked
    assert not blocked & set(result.accepted["sheet_row"])


def test_large_submission_gives_the_same_findings_as_small_ones():
    """The shortcuts taken on large frames (per-value normalisation, sparse checks) must not
    change a finding."""
    small = marks(
        [
            {"student_code": "K100000001", "mark": "21"},
            {"student_code": " K100000002", "mark": "15,5", "birth_date": "31-02-2011"},
            {"student_code": "X1", "mark": None, "absence": "مبرر"},
            {"student_code": "K100000004", "mark": "abc", "full_name": " "},
            {"student_code": "K100000005", "mark": "9", "absence": "مبرر"},
        ]
    )
    copies = 2000  # 10,000 rows
    big = pl.concat(
        [
            small.with_columns(
                pl.lit(f"{i:04d}").alias("subject_code"),
                (pl.col("sheet_row") + 5 * i).alias("sheet_row"),
            )
            for i in range(copies)
        ]
    )
    one = findings_of(validate_submission("marks", small, school_code=SCHOOL))
    expected = sorted(
        (row + 5 * i, col, val, rule) for i in range(copies) for row, col, val, rule in one
    )
    got = sorted(findings_of(validate_submission("marks", big, school_code=SCHOOL)))
    assert got == expected
    assert len(one) == 6


def test_unknown_dataset_is_refused():
    with pytest.raises(KeyError):
        validate_submission("nope", pl.DataFrame({"a": ["1"]}), school_code=SCHOOL)


# ---- cross-record rules ----------------------------------------------------------------------


def cross(frames):
    return cross_check_school(frames, school_code=SCHOOL)


def rules_in(findings):
    return sorted(findings["rule_id"].to_list())


def test_a_coherent_school_has_no_cross_record_finding():
    findings = cross(school_picture())
    assert findings.height == 0, findings
    assert set(findings.columns) >= {*FINDING_COLUMNS, "dataset", "submission_id"}


def test_x013_marked_pupil_listed_in_another_class_is_a_query_naming_that_class():
    frames = school_picture()
    frames["marks"] = marks(
        [
            {"student_code": "K100000001"},
            {"student_code": "K100000003"},  # listed in 1APIC-2, marked in 1APIC-1
            {"student_code": "K100000003", "slot": "test2", "slot_label": "الفرض الثاني"},
        ],
        submission_id="s-marks",
    ).with_columns(pl.Series("sheet_row", [18, 19, 19]))  # one pupil's row, two slots
    findings = cross(frames)
    assert findings.select(
        "dataset", "sheet_row", "value", "rule_id", "severity", "submission_id"
    ).rows() == [("marks", 19, "K100000003", "X013", "query", "s-marks")]
    assert json.loads(findings["params"][0]) == {
        "value": "K100000003",
        "class_code": "1APIC-1",
        "listed_class": "1APIC-2",
    }
    (row,) = finding_rows(findings)
    assert "1APIC-2" in row["message_fr"] and "1APIC-2" in row["message_ar"]
    assert "1APIC-1" in row["message_fr"] and "1APIC-1" in row["message_ar"]


def test_x014_marked_pupil_missing_from_the_school_list_is_a_query():
    frames = school_picture()
    frames["marks"] = marks(
        [{"student_code": "K100000001"}, {"student_code": "K100000009"}],
        submission_id="s-marks",
    )
    findings = cross(frames)
    assert findings.select("sheet_row", "value", "rule_id", "severity").rows() == [
        (19, "K100000009", "X014", "query")
    ]
    assert json.loads(findings["params"][0]) == {"value": "K100000009", "class_code": "1APIC-1"}
    (row,) = finding_rows(findings)
    assert MISSING not in row["message_fr"] and MISSING not in row["message_ar"]


def test_x003_same_code_in_two_classes():
    frames = school_picture()
    frames["students"] = pl.concat(
        [
            frames["students"],
            students(
                [{"student_code": "k100000001", "class_code": "1APIC-2", "sheet": "Sheet2"}],
                submission_id="s-students",
            ),
        ]
    )
    findings = cross(frames).filter(pl.col("rule_id") == "X003")
    assert findings.select("sheet", "sheet_row", "column_name").rows() == [
        ("Sheet1", 16, "الرمز"),
        ("Sheet2", 16, "الرمز"),
    ]
    params = [json.loads(p) for p in findings["params"]]
    assert params[0]["other_class"] == "1APIC-2" and params[1]["other_class"] == "1APIC-1"


def test_x004_class_above_room_capacity():
    frames = school_picture()
    frames["rooms"] = table(
        "rooms", [{"room_code": "S01", "capacity": "1"}, {"room_code": "S02", "capacity": "30"}]
    )
    findings = cross(frames)
    assert rules_in(findings) == ["X004"]
    assert findings["dataset"].to_list() == ["classes"]
    assert json.loads(findings["params"][0]) == {
        "class_code": "1APIC-1",
        "size": 2,
        "room_code": "S01",
        "capacity": 1,
    }
    assert findings["severity"].to_list() == ["query"]


def test_x005_age_outside_the_level_range():
    frames = school_picture()
    frames["students"] = students(
        [
            {"student_code": "K100000001", "birth_date": "01/01/2012"},  # 11 on 31/12/2023: ok
            {"student_code": "K100000002", "birth_date": "01/01/2019"},  # 4: too young
            {"student_code": "K100000003", "class_code": "1APIC-2", "birth_date": "2005-06-01"},
        ]
    )
    findings = cross(frames)
    assert rules_in(findings) == ["X005", "X005"]
    assert findings["sheet_row"].to_list() == [17, 18]
    assert json.loads(findings["params"][0]) == {
        "age": 4,
        "level_code": "1APIC",
        "min_age": 11,
        "max_age": 15,
    }


def test_x005_level_from_the_label_when_classes_are_missing():
    frames = {"students": students([{"student_code": "K100000001", "birth_date": "01/01/2019"}])}
    findings = cross(frames)
    assert rules_in(findings) == ["X005"]


def test_x006_x007_teacher_or_room_in_two_places():
    frames = school_picture()
    frames["timetable"] = pl.concat(
        [
            frames["timetable"],
            table(
                "timetable",
                [
                    {
                        "class_code": "1APIC-2",
                        "day": "الإثنين",
                        "slot": "2",
                        "teacher_code": "T2",
                        "room_code": "S01",
                        "sheet_row": 5,
                    }
                ],
            ),
        ],
        how="diagonal_relaxed",
    )
    findings = cross(frames)
    x006 = findings.filter(pl.col("rule_id") == "X006")
    x007 = findings.filter(pl.col("rule_id") == "X007")
    assert x006["sheet_row"].to_list() == [4, 5]
    assert x007["sheet_row"].to_list() == [4, 5]
    assert json.loads(x006["params"][0])["classes"] == "1APIC-1, 1APIC-2"
    assert set(x007["column_name"]) == {"رمز القاعة"}


def test_x008_absence_without_a_lesson():
    frames = school_picture()
    frames["absences"] = table(
        "absences",
        [
            {"student_code": "K100000001", "date": "02/10/2023", "slot": "1"},  # Monday 1: ok
            {"student_code": "K100000001", "date": "03/10/2023", "slot": "1"},  # Tuesday
            {"student_code": "K100000001", "date": "01/10/2023", "slot": "1"},  # Sunday
            {"student_code": "K100000001", "date": "02/10/2023", "slot": "3"},  # no slot 3
        ],
    )
    findings = cross(frames)
    assert rules_in(findings) == ["X008"] * 3
    assert findings["sheet_row"].to_list() == [3, 4, 5]
    assert json.loads(findings["params"][0]) == {
        "value": "03/10/2023",
        "slot": 1,
        "class_code": "1APIC-1",
    }


def test_x009_x011_pupils_not_enrolled():
    frames = school_picture()
    frames["support"] = table("support", [{"student_code": "K100000009"}])
    frames["guardians"] = table("guardians", [{"student_code": "K100000008"}])
    frames["exam_marks"] = table(
        "exam_marks", [{"student_code": "K100000007", "class_code": "1APIC-1"}]
    )
    findings = cross(frames)
    assert findings.select("dataset", "value", "rule_id").rows() == [
        ("support", "K100000009", "X009"),
        ("guardians", "K100000008", "X011"),
        ("exam_marks", "K100000007", "X011"),
    ]


def test_x010_class_not_declared():
    frames = school_picture()
    frames["marks"] = frames["marks"].with_columns(pl.lit("1APIC-9").alias("class_code"))
    findings = cross(frames)
    x010 = findings.filter(pl.col("rule_id") == "X010")
    assert x010["dataset"].to_list() == ["marks", "marks"]
    assert set(x010["column_name"]) == {"القسم"}
    # the same pupils are listed in 1APIC-1, not in the class of the marks
    assert rules_in(findings.filter(pl.col("dataset") == "marks")) == [
        "X010",
        "X010",
        "X013",
        "X013",
    ]


def test_cross_rules_without_their_datasets_do_not_run():
    frames = {
        "marks": school_picture()["marks"].with_columns(pl.lit("1APIC-9").alias("class_code"))
    }
    assert cross(frames).height == 0


def test_cross_findings_render_without_gaps():
    frames = school_picture()
    frames["marks"] = frames["marks"].with_columns(pl.lit("1APIC-9").alias("class_code"))
    frames["support"] = table("support", [{"student_code": "K100000009"}])
    for row in finding_rows(cross(frames)):
        assert MISSING not in row["message_fr"] and MISSING not in row["message_ar"]
        assert row["submission_id"] is not None or row["rule_id"] == "X009"


def test_x002_pupil_in_two_schools_is_reported_to_both():
    a = students(
        [{"student_code": "K100000001"}, {"student_code": "K100000002"}], submission_id="a"
    )
    b = students([{"student_code": " k100000001"}], submission_id="b")
    c = students([{"student_code": "K100000003"}], submission_id="c")
    findings = cross_check_province({"11111A": a, "22222B": b, "33333C": c})
    assert findings.select("school_code", "sheet_row", "value", "rule_id", "severity").rows() == [
        ("11111A", 16, "K100000001", "X002", "query"),
        ("22222B", 16, " k100000001", "X002", "query"),
    ]
    assert [json.loads(p)["other_school"] for p in findings["params"]] == ["22222B", "11111A"]
    assert cross_check_province({"11111A": a, "33333C": c}).height == 0


# ---- the pre-check and pandera agree ---------------------------------------------------------
# validate_submission runs the model's checks as one polars select first (schemas.models.RowCheck)
# and asks pandera for the details only of the rows and columns where something fails. The
# pandera model stays what defines validity: on random frames with and without defects, the
# pre-check passes exactly when pandera validates, and the findings are those of pandera run
# whole on the whole frame.

DEFECTIVE_VALUES = (
    None,
    "",
    "   ",
    "ـ",
    "\u200b",
    "abc",
    "؟؟",
    "25",
    "20",
    "10.5",
    "-3",
    "+12",
    "-0",
    "0",
    "1",
    "3",
    "9",
    "12,5",
    "١٢",
    "1e3",
    "31/02/2011",
    "12-03-2011",
    "2011-03-12",
    "45123",
    "12/03/1850",
    "K12",
    "k100000001",
    " K100000001 ",
    "K١٠٠٠٠٠٠٠١",
    "1APIC-1",
    "1apic-1",
    "27783Y",
    "00000A",
    "2023/2024",
    "2023-2024",
    "مبرر",
    "ذكر",
    "انثى",
    "نعم",
    "لا",
    "test1",
    "test9",
    "activities",
    "الأب",
    "تيسير",
    "الإثنين",
)


def _base_frame(dataset: str, n: int):
    rows = [{"student_code": code} for code in codes(n)]
    if dataset == "marks":
        return marks(rows)
    if dataset == "students":
        return students(rows)
    return read_frame(rows, {"sheet": "", **TABLE_DEFAULTS.get(dataset, {})}, 2)


def _with_defects(frame: pl.DataFrame, dataset: str, defects: list[tuple[int, int, int]]):
    from schemas.models import fields

    names = [item.name for item in fields(dataset)]
    frame = frame.with_columns(pl.lit(None, pl.Utf8).alias(n) for n in names if n not in frame)
    for row, column, value in defects:
        name = names[column % len(names)]
        values = frame[name].to_list()
        values[row % frame.height] = DEFECTIVE_VALUES[value % len(DEFECTIVE_VALUES)]
        frame = frame.with_columns(pl.Series(name, values, dtype=pl.Utf8))
    return frame


def _normalised(dataset: str, frame: pl.DataFrame) -> pl.DataFrame:
    from schemas.models import fields, is_mark
    from tasks.normalise import normalise
    from tasks.validate import ROW, mark_scales

    normalised = normalise(dataset, frame).with_row_index(ROW)
    if any(is_mark(item) for item in fields(dataset)):
        normalised = normalised.with_columns(mark_scales(normalised))
    return normalised


DATASET_NAMES = (
    "students",
    "marks",
    "classes",
    "rooms",
    "guardians",
    "exam_marks",
    "absences",
    "discipline",
    "timetable",
    "support",
)


@settings(max_examples=150, deadline=None)
@given(
    dataset=st.sampled_from(DATASET_NAMES),
    n=st.integers(1, 12),
    defects=st.lists(
        st.tuples(st.integers(0, 99), st.integers(0, 99), st.integers(0, 999)), max_size=8
    ),
    school=st.sampled_from([SCHOOL, "11111A", None]),
)
def test_precheck_and_pandera_agree(dataset, n, defects, school):
    from pandera.errors import SchemaErrors

    from schemas.models import model, row_checks
    from schemas.rules import catalogue
    from tasks.validate import _failing_rows, _pandera_findings

    frame = _normalised(dataset, _with_defects(_base_frame(dataset, n), dataset, defects))
    columns, rows = _failing_rows(dataset, frame, school)
    try:
        model(dataset, school).validate(frame, lazy=True)
        valid = True
    except SchemaErrors:
        valid = False
    assert valid == (not columns)
    assert valid == (rows.len() == 0)
    # check by check: the pre-check's expressions give pandera's verdict on every row
    schema, row_checks_ = model(dataset, school), row_checks(dataset, school)
    for name, column in schema.columns.items():
        mine = [c for c in row_checks_ if c.column == name]
        assert [c.rule_id for c in mine] == [check.name for check in column.checks]
        for check, ours in zip(column.checks, mine, strict=True):
            verdict = check(frame.lazy(), name).check_output.collect().to_series()
            assert frame.select(ours.passes()).to_series().to_list() == verdict.to_list()
            if frame.select(ours.cleared()).item():
                assert verdict.all()
            if ours.pattern is not None:  # the pre-check's own: exactly every row passing
                assert frame.select(ours.cleared()).item() == verdict.all()
    rules = catalogue()
    fast = _pandera_findings(dataset, frame, school, rules)
    whole = _pandera_findings(dataset, frame, school, rules, whole=True)
    assert fast.to_dicts() == whole.to_dicts()
    if not valid:
        assert fast.height > 0


def test_precheck_and_pandera_agree_on_a_large_marks_frame():
    """Thousands of rows: the shortcuts (constant metadata columns, per-value normalisation)
    and the row subset given to pandera."""
    from schemas.rules import catalogue
    from tasks.validate import _pandera_findings

    frame = marks([{"student_code": f"K{100000000 + i}"} for i in range(6000)])
    defects = [(i * 37, i * 11, i * 7) for i in range(120)]
    frame = _normalised("marks", _with_defects(frame, "marks", defects))
    rules = catalogue()
    fast = _pandera_findings("marks", frame, SCHOOL, rules)
    whole = _pandera_findings("marks", frame, SCHOOL, rules, whole=True)
    assert fast.height > 0
    assert fast.to_dicts() == whole.to_dicts()


def test_a_clean_frame_of_many_pupils_is_cleared_by_the_first_select():
    """Codes that differ from row to row (pupils, their classes) but all match their pattern
    clear their checks at once: no row by row pass over a clean school's marks."""
    from tasks.validation.model_check import _uncleared

    frame = marks(
        [
            {"student_code": f"K{100000000 + i}", "class_code": f"1APG-{1 + i % 3}"}
            for i in range(300)
        ]
    )
    assert frame.get_column("student_code").n_unique() == 300
    assert _uncleared("marks", _normalised("marks", frame), SCHOOL) == []

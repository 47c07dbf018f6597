"""Read frames built by hand, as a reader hands them to validation
(docs/decisions/0002-ingest-frames.md), for the rule-family tests: one clean row per dataset
by default, a keyword to break one cell."""

from __future__ import annotations

import json

import polars as pl

from schemas.rules import MISSING, render

SCHOOL = "27783Y"

# ---- read frames built by hand (docs/decisions/0002-ingest-frames.md) -----------------------

MARK_DEFAULTS = {
    "sheet": "NotesCC",
    "internal_id": "1234567",
    "full_name": "العلوي محمد",
    "birth_date": "12-03-2011",
    "slot": "test1",
    "slot_label": "الفرض الأول",
    "mark": "12",
    "absence": None,
    "remark": None,
    "school_code": SCHOOL,
    "subject_code": "0030",
    "semester": "1",
    "class_code": "1APIC-1",
    "school_year": "2023/2024",
    "level_code": "1APIC",
    "level_label": "الأولى إعدادي مسار دولي",
    "teacher": "أستاذ",
    "subject_name": "المعلوميات",
    "academy": "سوس ماسة",
    "directorate": "تيزنيت",
    "school_name": "إعدادية",
    "session_label": "الدورة الأولى",
}

STUDENT_DEFAULTS = {
    "sheet": "Sheet1",
    "row_number": "1",
    "family_name": "العلوي",
    "first_name": "محمد",
    "sex": "ذكر",
    "birth_date": "12/03/2011",
    "birthplace": None,
    "academy": "سوس ماسة",
    "directorate": "إقليم: تيزنيت",
    "commune": "تيزنيت",
    "school_name": "إعدادية",
    "school_year": "2023/2024",
    "level_label": "الأولى إعدادي مسار دولي",
    "class_code": "1APIC-1",
}

TABLE_DEFAULTS = {
    "classes": {
        "school_code": SCHOOL,
        "school_year": "2023/2024",
        "level_code": "1APIC",
        "level_label": "الأولى إعدادي مسار دولي",
        "stream": None,
        "room_code": "S01",
        "head_teacher": None,
    },
    "rooms": {
        "school_code": SCHOOL,
        "room_name": "قاعة",
        "room_type": "قاعة عادية",
        "capacity": "40",
    },
    "guardians": {
        "school_code": SCHOOL,
        "relation": "الأب",
        "guardian_family_name": "العلوي",
        "guardian_first_name": "أحمد",
        "guardian_cin": "JK123456",
        "cnss_number": "123456789",
        "orphan": "لا",
    },
    "exam_marks": {
        "school_code": SCHOOL,
        "school_year": "2023/2024",
        "class_code": "3APIC-1",
        "exam": "محلي",
        "session": "عادية",
        "subject_code": "0060",
        "subject_name": "الرياضيات",
        "mark": "14,5",
        "absent": "لا",
    },
    "absences": {
        "school_code": SCHOOL,
        "school_year": "2023/2024",
        "class_code": "1APIC-1",
        "slot": "1",
        "justified": "لا",
    },
    "timetable": {
        "school_code": SCHOOL,
        "school_year": "2023/2024",
        "class_code": "1APIC-1",
        "subject_code": "0030",
        "teacher_name": "أستاذ",
    },
    "support": {
        "school_code": SCHOOL,
        "school_year": "2023/2024",
        "programme": "تيسير",
        "start_date": "01/10/2023",
        "amount": "140",
    },
}


def read_frame(rows: list[dict], defaults: dict, first_row: int, submission_id=None):
    records = []
    for i, row in enumerate(rows):
        record = {**defaults, "sheet_row": first_row + i, **row}
        records.append(record)
    columns = list(dict.fromkeys([*defaults, "sheet_row", *(k for r in records for k in r)]))
    data = {c: [r.get(c, defaults.get(c)) for r in records] for c in columns}
    schema = {c: (pl.Int64 if c == "sheet_row" else pl.Utf8) for c in columns}
    frame = pl.DataFrame(data, schema=schema)
    if submission_id is not None:
        frame = frame.with_columns(pl.lit(submission_id).alias("submission_id"))
    return frame


def marks(rows, **kw):
    frame = read_frame(rows, MARK_DEFAULTS, 18, **kw)
    label = pl.col("slot_label")
    return frame.with_columns(
        pl.format("{} - النقطة", label).alias("mark_column"),
        pl.format("{} - التغيب", label).alias("absence_column"),
    )


def students(rows, **kw):
    return read_frame(rows, STUDENT_DEFAULTS, 16, **kw)


def table(dataset, rows, **kw):
    return read_frame(rows, {"sheet": "", **TABLE_DEFAULTS[dataset]}, 2, **kw)


def codes(n):
    return [f"K1000000{i:02d}" for i in range(n)]


def school_picture():
    """A small coherent school: no cross-record finding."""
    return {
        "students": students(
            [
                {"student_code": "K100000001", "class_code": "1APIC-1"},
                {"student_code": "K100000002", "class_code": "1APIC-1"},
                {"student_code": "K100000003", "class_code": "1APIC-2", "sheet": "Sheet2"},
            ],
            submission_id="s-students",
        ),
        "classes": table(
            "classes",
            [
                {"class_code": "1APIC-1", "room_code": "S01"},
                {"class_code": "1APIC-2", "room_code": "S02"},
            ],
            submission_id="s-classes",
        ),
        "rooms": table(
            "rooms",
            [{"room_code": "S01", "capacity": "2"}, {"room_code": "S02", "capacity": "30"}],
            submission_id="s-rooms",
        ),
        "marks": marks(
            [
                {"student_code": "K100000001"},
                {"student_code": "K100000002"},
            ],
            submission_id="s-marks",
        ),
        "timetable": table(
            "timetable",
            [
                {
                    "class_code": "1APIC-1",
                    "day": "الإثنين",
                    "slot": "1",
                    "teacher_code": "T1",
                    "room_code": "S01",
                },
                {
                    "class_code": "1APIC-2",
                    "day": "الإثنين",
                    "slot": "1",
                    "teacher_code": "T2",
                    "room_code": "S02",
                },
                {
                    "class_code": "1APIC-1",
                    "day": "الإثنين",
                    "slot": "2",
                    "teacher_code": "T2",
                    "room_code": "S01",
                },
            ],
            submission_id="s-timetable",
        ),
        "absences": table(
            "absences",
            # 2023-10-02 is a Monday
            [{"student_code": "K100000001", "date": "02/10/2023", "slot": "1"}],
            submission_id="s-absences",
        ),
        "support": table("support", [{"student_code": "K100000002"}], submission_id="s-support"),
        "guardians": table(
            "guardians", [{"student_code": "K100000003"}], submission_id="s-guardians"
        ),
        "exam_marks": table(
            "exam_marks",
            [{"student_code": "K100000001", "class_code": "1APIC-1"}],
            submission_id="s-exam",
        ),
    }


def params_of(findings: pl.DataFrame, rule_id: str) -> list[dict]:
    """The placeholders of each finding of ``rule_id``."""
    return [json.loads(p) for p in findings.filter(pl.col("rule_id") == rule_id)["params"]]


def assert_readable(findings: pl.DataFrame, rule_id: str, placeholders: tuple[str, ...]) -> None:
    """Every finding of ``rule_id`` fills exactly the declared placeholders and its sentence
    reads whole in Arabic and French (no … where a value should be)."""
    found = params_of(findings, rule_id)
    assert found, f"no {rule_id} finding"
    for params in found:
        assert set(params) == set(placeholders), (rule_id, params)
        message_ar, message_fr = render(rule_id, params)
        assert MISSING not in message_ar and MISSING not in message_fr, (rule_id, params)

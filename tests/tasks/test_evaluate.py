"""Hand-computed examples for every formula of tasks/results_formulas.py, plus a property test
against an independent pure-Python implementation."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.evaluation_rules import RULES_DIR, load_rules
from tasks.results_formulas import annual_results, exam_results, semester_results, subject_results

RULES = load_rules()
YEAR, PREVIOUS = "2024/2025", "2023/2024"


def marks_frame(rows: list[tuple]) -> pl.DataFrame:
    """rows: (class_code, student, subject, semester, slot, mark, absence)."""
    return pl.DataFrame(
        [
            {
                "school_code": "S1",
                "school_year": YEAR,
                "class_code": class_code,
                "level_code": class_code.split("-")[0],
                "student_code": student,
                "subject_code": subject,
                "semester": semester,
                "slot": slot,
                "mark": mark,
                "absence": absence,
                "mark_scale": 10.0 if "APG" in class_code else 20.0,
            }
            for class_code, student, subject, semester, slot, mark, absence in rows
        ],
        schema_overrides={"semester": pl.Int8, "mark": pl.Float64, "absence": pl.Utf8},
    )


def one(frame: pl.DataFrame, **where) -> dict:
    for name, value in where.items():
        frame = frame.filter(pl.col(name) == value)
    assert frame.height == 1, frame
    return frame.row(0, named=True)


# ---- subject averages ------------------------------------------------------------------------

PUPIL = [
    # Arabic, activities weight 0.25: tests mean 14, activities 10 → 14 × 0.75 + 10 × 0.25 = 13
    ("1APIC-1", "P1", "0010", 1, "test1", 12.0, None),
    ("1APIC-1", "P1", "0010", 1, "test2", 14.0, None),
    ("1APIC-1", "P1", "0010", 1, "test3", 16.0, None),
    ("1APIC-1", "P1", "0010", 1, "activities", 10.0, None),
    # French, language exception 0.6 / 0.4: 12.5 × 0.6 + 15 × 0.4 = 13.5
    ("1APIC-1", "P1", "0020", 1, "test1", 10.0, None),
    ("1APIC-1", "P1", "0020", 1, "test2", 15.0, None),
    ("1APIC-1", "P1", "0020", 1, "activities", 15.0, None),
    # Maths, no activities, test4 not entered: plain mean of 8, 11, 14 = 11
    ("1APIC-1", "P1", "0060", 1, "test1", 8.0, None),
    ("1APIC-1", "P1", "0060", 1, "test2", 11.0, None),
    ("1APIC-1", "P1", "0060", 1, "test3", 14.0, None),
    ("1APIC-1", "P1", "0060", 1, "test4", None, None),
    # Islamic education: justified absence from test2 → ignored → 18
    ("1APIC-1", "P1", "0040", 1, "test1", 18.0, None),
    ("1APIC-1", "P1", "0040", 1, "test2", None, "justified"),
    # History-geography: nothing entered → no_mark
    ("1APIC-1", "P1", "0050", 1, "test1", None, None),
    ("1APIC-1", "P1", "0050", 1, "test2", None, None),
    # PE: every slot justified-absent → exempt
    ("1APIC-1", "P1", "0100", 1, "test1", None, "justified"),
    ("1APIC-1", "P1", "0100", 1, "test2", None, "justified"),
]


def test_tests_and_activities_weighting() -> None:
    result = one(subject_results(marks_frame(PUPIL), RULES), subject_code="0010")
    assert result["tests_mean"] == 14 and result["activities"] == 10
    assert result["average"] == pytest.approx(13)
    assert result["coefficient"] == 3 and result["status"] == "ok"
    assert result["tests_counted"] == 3


def test_language_exception() -> None:
    result = one(subject_results(marks_frame(PUPIL), RULES), subject_code="0020")
    assert result["activities_weight"] == 0.4
    assert result["average"] == pytest.approx(13.5)


def test_plain_mean_without_activities_and_missing_mark_ignored() -> None:
    result = one(subject_results(marks_frame(PUPIL), RULES), subject_code="0060")
    assert result["activities"] is None
    assert result["average"] == pytest.approx(11)
    assert result["tests_counted"] == 3


def test_justified_absence_ignored() -> None:
    result = one(subject_results(marks_frame(PUPIL), RULES), subject_code="0040")
    assert result["average"] == 18 and result["tests_counted"] == 1


def test_unjustified_absence_counts_zero() -> None:
    rows = [
        ("1APIC-1", "P1", "0040", 1, "test1", 18.0, None),
        ("1APIC-1", "P1", "0040", 1, "test2", None, "unjustified"),
    ]
    assert one(subject_results(marks_frame(rows), RULES), subject_code="0040")["average"] == 9


def test_subject_without_mark_and_exempt_subject() -> None:
    results = subject_results(marks_frame(PUPIL), RULES)
    assert one(results, subject_code="0050")["status"] == "no_mark"
    assert one(results, subject_code="0050")["average"] is None
    assert one(results, subject_code="0100")["status"] == "exempt"
    assert one(results, subject_code="0100")["average"] is None


def test_activities_only() -> None:
    rows = [
        ("1APIC-1", "P1", "0010", 1, "test1", None, "justified"),
        ("1APIC-1", "P1", "0010", 1, "activities", 16.0, None),
    ]
    result = one(subject_results(marks_frame(rows), RULES), subject_code="0010")
    assert result["status"] == "ok" and result["average"] == 16


def test_primary_plain_mean_on_ten() -> None:
    rows = [
        ("1APG-1", "P9", "0501", 1, "test1", 6.0, None),
        ("1APG-1", "P9", "0501", 1, "test2", 7.5, None),
    ]
    result = one(subject_results(marks_frame(rows), RULES), subject_code="0501")
    assert result["average"] == pytest.approx(6.75) and result["coefficient"] == 3


def test_mark_on_another_scale_is_rescaled() -> None:
    rows = marks_frame([("1APG-1", "P9", "0501", 1, "test1", 14.0, None)]).with_columns(
        pl.lit(20.0).alias("mark_scale")
    )
    assert one(subject_results(rows, RULES), subject_code="0501")["average"] == 7


# ---- semester averages and ranks -------------------------------------------------------------


def test_semester_average_with_coefficients() -> None:
    semesters = semester_results(subject_results(marks_frame(PUPIL), RULES), RULES)
    result = one(semesters, student_code="P1")
    # (13 × 3 + 13.5 × 3 + 11 × 3 + 18 × 2) / (3 + 3 + 3 + 2) = 148.5 / 11 = 13.5
    assert result["average"] == pytest.approx(13.5)
    assert result["subjects_counted"] == 4
    assert result["subjects_no_mark"] == 1 and result["subjects_exempt"] == 1
    assert result["rank"] == 1 and result["class_size"] == 1


def test_coefficient_override(tmp_path: Path) -> None:
    rules_dir = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules_dir)
    college = rules_dir / "college.toml"
    text = college.read_text().replace(
        "[coefficients.overrides]\n", '[coefficients.overrides]\n"1APIC" = { "0060" = 5 }\n'
    )
    college.write_text(text)
    rules = load_rules(rules_dir)
    result = one(semester_results(subject_results(marks_frame(PUPIL), rules), rules))
    # (39 + 40.5 + 11 × 5 + 36) / 13
    assert result["average"] == pytest.approx(170.5 / 13)


def test_ranks_ties_share_the_lowest_rank() -> None:
    rows = []
    for student, mark in [("A", 12.0), ("B", 15.0), ("C", 12.0), ("D", 9.0), ("E", None)]:
        rows.append(("1APIC-1", student, "0060", 1, "test1", mark, None))
    rows.append(("1APIC-2", "F", "0060", 1, "test1", 5.0, None))
    semesters = semester_results(subject_results(marks_frame(rows), RULES), RULES)
    ranks = dict(semesters.select("student_code", "rank").iter_rows())
    assert ranks == {"A": 2, "B": 1, "C": 2, "D": 4, "E": None, "F": 1}
    assert one(semesters, student_code="A")["class_size"] == 4
    assert one(semesters, student_code="F")["class_size"] == 1


# ---- annual results ------------------------------------------------------------------------


def semesters(level: str, averages: dict[str, tuple[float | None, float | None]]) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "school_code": "S1",
                "school_year": YEAR,
                "class_code": f"{level}-1",
                "level_code": level,
                "student_code": student,
                "semester": semester,
                "average": value,
            }
            for student, pair in averages.items()
            for semester, value in zip((1, 2), pair, strict=True)
        ],
        schema_overrides={"semester": pl.Int8, "average": pl.Float64},
    )


def test_annual_average_rank_and_decision() -> None:
    annual = annual_results(
        semesters("2APIC", {"A": (13.5, 9.5), "B": (9.0, 10.5), "C": (12.0, None), "D": (11, 12)}),
        RULES,
    )
    a, b, c, d = (one(annual, student_code=s) for s in "ABCD")
    assert a["average"] == 11.5 and a["decision"] == "promoted" and a["mention"] == "passable"
    assert b["average"] == 9.75 and b["decision"] == "repeats" and b["mention"] is None
    assert c["average"] == 12 and c["semesters_counted"] == 1
    assert (a["rank"], b["rank"], c["rank"], d["rank"]) == (2, 4, 1, 2)


def test_oriented_and_primary_decisions() -> None:
    annual = annual_results(semesters("3APIC", {"A": (12, 12), "B": (8, 9)}), RULES)
    assert one(annual, student_code="A")["decision"] == "oriented"
    assert one(annual, student_code="B")["decision"] == "repeats"
    primary = annual_results(semesters("1APG", {"A": (5, 5), "B": (4.5, 5.49)}), RULES)
    assert one(primary, student_code="A")["decision"] == "promoted"
    assert one(primary, student_code="A")["mention"] is None
    assert one(primary, student_code="B")["decision"] == "repeats"


@pytest.mark.parametrize(
    ("average", "mention"),
    [
        (9.99, None),
        (10.0, "passable"),
        (11.99, "passable"),
        (12.0, "assez_bien"),
        (13.99, "assez_bien"),
        (14.0, "bien"),
        (15.99, "bien"),
        (16.0, "tres_bien"),
        (20.0, "tres_bien"),
    ],
)
def test_mentions_at_their_bounds(average: float, mention: str | None) -> None:
    annual = annual_results(semesters("TCS", {"A": (average, average)}), RULES)
    assert one(annual)["mention"] == mention


# ---- exams ---------------------------------------------------------------------------------


def exam_frame(rows: list[tuple]) -> pl.DataFrame:
    """rows: (year, class_code, student, exam, session, subject, mark, absent)."""
    return pl.DataFrame(
        [
            {
                "school_code": "S1",
                "school_year": year,
                "class_code": class_code,
                "student_code": student,
                "exam": exam,
                "session": session,
                "subject_code": subject,
                "mark": mark,
                "absent": absent,
                "mark_scale": 10.0 if "APG" in class_code else 20.0,
            }
            for year, class_code, student, exam, session, subject, mark, absent in rows
        ],
        schema_overrides={"mark": pl.Float64},
    )


def cc_frame(level: str, averages: dict[str, float]) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "school_code": "S1",
                "school_year": YEAR,
                "class_code": f"{level}-1",
                "level_code": level,
                "student_code": student,
                "average": value,
            }
            for student, value in averages.items()
        ]
    )


def papers(level: str, exam: str, marks: dict[str, float | None], student: str, **kw) -> list:
    year = kw.get("year", YEAR)
    session = kw.get("session", "normal")
    return [
        (year, f"{level}-1", student, exam, session, subject, mark, mark is None)
        for subject, mark in marks.items()
    ]


COLLEGE_LOCAL = ["0010", "0020", "0040", "0050", "0060"]
COLLEGE_REGIONAL = ["0010", "0020", "0040", "0050", "0060", "0070", "0080", "0110"]


def test_college_certificate_with_an_absent_paper() -> None:
    local = dict.fromkeys(COLLEGE_LOCAL, 13.0) | {"0050": None}  # absent: counts 0
    rows = papers("3APIC", "local", local, "A")
    rows += papers("3APIC", "regional", dict.fromkeys(COLLEGE_REGIONAL, 12.0), "A")
    results = exam_results(exam_frame(rows), cc_frame("3APIC", {"A": 12.0}), RULES)
    result = one(results, exam="college_certificate")
    # local = 13 × 11 / 13 = 11; MG = (4 × 12 + 3 × 11 + 3 × 12) / 10 = 11.7
    assert result["local_average"] == pytest.approx(11)
    assert result["regional_average"] == pytest.approx(12)
    assert result["final_average"] == pytest.approx(11.7)
    assert result["result"] == "passed" and result["mention"] == "passable"
    assert result["session"] == "normal" and result["missing_papers"] == []


def test_college_certificate_missing_paper_counts_zero_and_is_named() -> None:
    rows = papers("3APIC", "local", dict.fromkeys(COLLEGE_LOCAL, 10.0), "A")
    regional = dict.fromkeys(COLLEGE_REGIONAL, 9.0)
    del regional["0080"]  # no row at all: counts 0 (coefficient 2 of 18)
    rows += papers("3APIC", "regional", regional, "A")
    result = one(exam_results(exam_frame(rows), cc_frame("3APIC", {"A": 10.0}), RULES))
    assert result["regional_average"] == pytest.approx(9 * 16 / 18)
    assert result["final_average"] == pytest.approx((4 * 8 + 3 * 10 + 3 * 10) / 10)
    assert result["missing_papers"] == ["0080"]
    assert result["result"] == "failed"


def test_a_paper_entered_twice_counts_its_best_mark() -> None:
    local = dict.fromkeys(COLLEGE_LOCAL, 10.0)
    rows = papers("3APIC", "local", local, "A")
    rows += papers("3APIC", "local", {"0010": 16.0}, "A")  # the same paper entered again
    rows += papers("3APIC", "regional", dict.fromkeys(COLLEGE_REGIONAL, 9.0), "A")
    result = one(exam_results(exam_frame(rows), cc_frame("3APIC", {"A": 10.0}), RULES))
    best = papers("3APIC", "local", local | {"0010": 16.0}, "A")
    best += papers("3APIC", "regional", dict.fromkeys(COLLEGE_REGIONAL, 9.0), "A")
    once = one(exam_results(exam_frame(best), cc_frame("3APIC", {"A": 10.0}), RULES))
    # the best of the two entries, the paper counted once (its coefficient not doubled)
    assert result["local_average"] == pytest.approx(once["local_average"])
    assert 10 < result["local_average"] < 16
    assert result["missing_papers"] == []


def test_exams_without_candidates_give_no_rows_and_keep_the_columns_types() -> None:
    rows = papers("3APIC", "local", dict.fromkeys(COLLEGE_LOCAL, 12.0), "A")
    only_college = exam_results(exam_frame(rows), cc_frame("3APIC", {"A": 12.0}), RULES)
    assert only_college.get_column("exam").to_list() == ["college_certificate"]
    nobody = exam_results(exam_frame(rows).clear(), cc_frame("1APIC", {"B": 12.0}), RULES)
    assert nobody.height == 0
    assert nobody.schema == only_college.schema


BAC_NATIONAL = {"0060": 7, "0070": 5, "0080": 7, "0090": 2, "0110": 2}  # 2BACSPF coefficients
BAC_REGIONAL = ["0010", "0020", "0040", "0050"]  # 1BACSEF regional papers


def bac(national: dict[str, float | None], cc: float = 10.0, regional: float | None = 10.0, **kw):
    rows = papers("2BACSPF", "national", national, "A")
    if regional is not None:
        rows += papers(
            "1BACSEF", "regional", dict.fromkeys(BAC_REGIONAL, regional), "A", year=PREVIOUS
        )
    rows += kw.get("extra", [])
    return exam_results(exam_frame(rows), cc_frame("2BACSPF", {"A": cc}), kw.get("rules", RULES))


def test_bac_ordinary_session_pass() -> None:
    result = one(bac(dict.fromkeys(BAC_NATIONAL, 12.0), cc=13.0, regional=14.0))
    # 0.5 × 12 + 0.25 × 14 + 0.25 × 13 = 12.75
    assert result["exam"] == "baccalaureate"
    assert result["national_average"] == pytest.approx(12)
    assert result["regional_average"] == pytest.approx(14)
    assert result["final_average"] == pytest.approx(12.75)
    assert (result["result"], result["mention"], result["session"]) == (
        "passed",
        "assez_bien",
        "normal",
    )


@pytest.mark.parametrize(
    ("national", "expected"),
    [(3.98, "failed"), (4.0, "makeup"), (9.98, "makeup"), (10.0, "passed")],
)
def test_makeup_window_at_both_bounds(national: float, expected: str) -> None:
    # MG = 0.5 × national + 0.25 × 10 + 0.25 × 10: 6.99, 7, 9.99, 10
    result = one(bac(dict.fromkeys(BAC_NATIONAL, national)))
    assert result["result"] == expected


def test_makeup_bound_inclusivity_is_configurable(tmp_path: Path) -> None:
    rules_dir = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules_dir)
    lycee = rules_dir / "lycee.toml"
    text = lycee.read_text()
    text = text.replace("lower_inclusive = true", "lower_inclusive = false")
    text = text.replace("upper_inclusive = false", "upper_inclusive = true")
    lycee.write_text(text)
    rules = load_rules(rules_dir)
    assert one(bac(dict.fromkeys(BAC_NATIONAL, 4.0), rules=rules))["result"] == "failed"
    assert one(bac(dict.fromkeys(BAC_NATIONAL, 10.0), rules=rules))["result"] == "makeup"


def test_best_of_two_sessions_per_national_subject() -> None:
    normal = dict.fromkeys(BAC_NATIONAL, 10.0) | {"0060": 4.0}
    makeup = papers("2BACSPF", "national", {"0060": 14.0, "0080": 2.0}, "A", session="makeup")
    results = bac(normal, extra=makeup)
    first = one(results, session="normal")
    # national = (20 + 28 + 50 + 70 + 20) / 23 = 188 / 23; MG = 0.5 × 188 / 23 + 5
    assert first["national_average"] == pytest.approx(188 / 23)
    assert first["final_average"] == pytest.approx(0.5 * 188 / 23 + 5)
    assert first["result"] == "makeup"
    second = one(results, session="makeup")
    # best: 0060 → 14 (make-up), 0080 → 10 (normal, the make-up 2 is worse)
    assert second["national_average"] == pytest.approx(258 / 23)
    assert second["final_average"] == pytest.approx(0.5 * 258 / 23 + 5)
    assert second["result"] == "passed" and second["mention"] == "passable"


def test_makeup_session_can_fail() -> None:
    normal = dict.fromkeys(BAC_NATIONAL, 10.0) | {"0060": 4.0}
    makeup = papers("2BACSPF", "national", {"0060": 5.0}, "A", session="makeup")
    second = one(bac(normal, extra=makeup), session="makeup")
    assert second["result"] == "failed"


@pytest.mark.parametrize("zero", [0.0, None])  # a 0, or an absence counting 0
def test_a_zero_in_a_national_subject_fails(zero: float | None) -> None:
    result = one(bac(dict.fromkeys(BAC_NATIONAL, 16.0) | {"0090": zero}))
    assert result["final_average"] == pytest.approx(0.5 * 16 * 21 / 23 + 5)
    assert result["result"] == "failed" and result["mention"] is None


def test_bac_without_regional_marks() -> None:
    result = one(bac(dict.fromkeys(BAC_NATIONAL, 12.0), regional=None))
    assert result["regional_average"] is None and result["final_average"] is None
    assert result["result"] is None and result["missing_components"] == ["regional"]


def test_sixth_primary_certificate() -> None:
    rows = papers("6APG", "local", {"0501": 8.0, "0502": 8.0}, "A")
    rows += papers("6APG", "provincial", {"0501": 4.0, "0502": 4.0}, "A")
    results = exam_results(exam_frame(rows), cc_frame("6APG", {"A": 6.0}), RULES)
    result = one(results, exam="primary_certificate")
    # papers missing from the data (0504, 0505, ...) count 0 and are named
    assert "0504" in result["missing_papers"]
    full_local = dict.fromkeys(["0501", "0502", "0504", "0505", "0506"], 8.0)
    full_provincial = dict.fromkeys(["0501", "0502", "0504", "0506", "0507"], 4.0)
    rows = papers("6APG", "local", full_local, "A")
    rows += papers("6APG", "provincial", full_provincial, "A")
    result = one(exam_results(exam_frame(rows), cc_frame("6APG", {"A": 6.0}), RULES))
    # 0.5 × 6 + 0.25 × 8 + 0.25 × 4 = 6 (/10, pass at 5)
    assert result["final_average"] == pytest.approx(6)
    assert result["result"] == "passed" and result["mention"] is None


def test_a_pupil_with_results_at_two_levels_gets_the_same_exam_result_whatever_their_order():
    """A defect seen on generated provinces: a pupil with annual results at two levels in one
    year (here 4APG and 6APG) and the certificate's papers. Which of the two counted followed
    the order the results came in (DuckDB's): an exam result in one run, none in the next.
    The row at the exam's level counts."""
    rows = papers("6APG", "local", {"0501": 8.0, "0502": 8.0}, "A")
    rows += papers("6APG", "provincial", {"0501": 4.0, "0502": 4.0}, "A")
    both = pl.concat([cc_frame("6APG", {"A": 6.0}), cc_frame("4APG", {"A": 7.0})])
    first = exam_results(exam_frame(rows), both, RULES)
    again = exam_results(exam_frame(rows), both.reverse(), RULES)
    assert again.sort(again.columns).equals(first.sort(first.columns))
    result = one(first, exam="primary_certificate")
    assert (result["level_code"], result["cc_average"]) == ("6APG", 6.0)


# ---- property: agreement with an independent implementation -----------------------------------

SUBJECTS = ["0010", "0020", "0040", "0060"]
SLOTS = ["test1", "test2", "test3", "activities"]
slot_value = st.one_of(
    st.none(),
    st.just("justified"),
    st.floats(min_value=0, max_value=20, allow_nan=False).map(lambda x: round(x, 2)),
)


def reference(rows: list[tuple]) -> tuple[dict, dict]:
    """Subject and semester averages, the plain way."""
    by_subject: dict[tuple, dict[str, list]] = {}
    for _, student, subject, semester, slot, mark, absence in rows:
        entry = by_subject.setdefault((student, subject, semester), {"t": [], "a": [], "n": 0})
        entry["n"] += 1
        if absence == "justified" or mark is None:
            entry.setdefault("j", 0)
            entry["j"] = entry["j"] + (absence == "justified")
            continue
        entry["a" if slot == "activities" else "t"].append(mark)
    subjects = {}
    for key, entry in by_subject.items():
        if entry.get("j", 0) == entry["n"]:
            subjects[key] = None
            continue
        weight = RULES.subject("1APIC", key[1]).activities_weight
        tests = sum(entry["t"]) / len(entry["t"]) if entry["t"] else None
        act = sum(entry["a"]) / len(entry["a"]) if entry["a"] else None
        if tests is not None and act is not None:
            subjects[key] = tests * (1 - weight) + act * weight
        else:
            subjects[key] = tests if tests is not None else act
    semesters: dict[tuple, list[float]] = {}
    for (student, subject, semester), average in subjects.items():
        if average is None:
            continue
        coefficient = RULES.subject("1APIC", subject).coefficient
        total = semesters.setdefault((student, semester), [0.0, 0.0])
        total[0] += average * coefficient
        total[1] += coefficient
    return subjects, {key: num / den for key, (num, den) in semesters.items()}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["A", "B", "C"]),
            st.sampled_from(SUBJECTS),
            st.sampled_from([1, 2]),
            st.lists(slot_value, min_size=4, max_size=4),
        ),
        min_size=1,
        max_size=20,
        unique_by=lambda item: item[:3],
    )
)
def test_property_matches_pure_python(draw: list) -> None:
    rows = []
    for student, subject, semester, values in draw:
        for slot, value in zip(SLOTS, values, strict=True):
            if value == "justified":
                rows.append(("1APIC-1", student, subject, semester, slot, None, "justified"))
            else:
                rows.append(("1APIC-1", student, subject, semester, slot, value, None))
    expected_subjects, expected_semesters = reference(rows)
    subjects = subject_results(marks_frame(rows), RULES)
    for row in subjects.iter_rows(named=True):
        want = expected_subjects[(row["student_code"], row["subject_code"], row["semester"])]
        if want is None:
            assert row["average"] is None
        else:
            # stored to 6 decimals (tasks/results_formulas.py STORED_DECIMALS)
            assert math.isclose(row["average"], want, rel_tol=0, abs_tol=5e-7 + 1e-12)
    results = semester_results(subjects, RULES)
    for row in results.iter_rows(named=True):
        want = expected_semesters.get((row["student_code"], row["semester"]))
        if want is None:
            assert row["average"] is None
        else:
            # the weighted mean of subject averages rounded to 6 decimals, itself rounded
            assert math.isclose(row["average"], want, rel_tol=0, abs_tol=1e-6 + 1e-12)
    assert results.height == len({(key[0], key[2]) for key in expected_subjects})

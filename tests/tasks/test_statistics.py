"""Results statistics on a small province computed by hand; the report and its charts."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest

from tasks.statistics import compute_statistics, headline_table, write_statistics_report

YEAR, LAST = "2023/2024", "2022/2023"
A, B = "27783Y", "12345X"  # a collège in Tiznit, a primary school in Aglou
PNG = b"\x89PNG\r\n\x1a\n"
CODES = [f"K10000000{i}" for i in range(1, 10)]

# (school, class, level, pupil, sex, annual average, decision, S1, S2)
PUPILS = [
    (A, "1APIC-1", "1APIC", CODES[0], "F", 12.0, "promoted", 11.0, 13.0),
    (A, "1APIC-1", "1APIC", CODES[1], "F", 8.0, "repeats", 7.0, 9.0),
    (A, "1APIC-2", "1APIC", CODES[2], "M", 15.0, "promoted", 14.0, 16.0),
    (A, "1APIC-2", "1APIC", CODES[3], "M", 10.0, "council", 10.0, 10.0),
    (B, "6APG-1", "6APG", CODES[4], "F", 7.0, "promoted", 6.0, 8.0),  # /10 → 14 on /20
    (B, "6APG-1", "6APG", CODES[5], "M", 4.0, "repeats", 4.0, 4.0),  # /10 → 8 on /20
]


def _annual(rows, year: str = YEAR) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "school_code": [r[0] for r in rows],
            "school_year": [year] * len(rows),
            "class_code": [r[1] for r in rows],
            "level_code": [r[2] for r in rows],
            "student_code": [r[3] for r in rows],
            "average": [r[5] for r in rows],
            "rank": pl.Series([1] * len(rows), dtype=pl.Int32),
            "decision": [r[6] for r in rows],
            "mention": [None] * len(rows),
        },
        schema_overrides={"mention": pl.Utf8},
    )


@pytest.fixture
def frames() -> dict[str, pl.DataFrame]:
    semester = pl.DataFrame(
        {
            "school_code": [r[0] for r in PUPILS for _ in (1, 2)],
            "school_year": [YEAR] * 2 * len(PUPILS),
            "class_code": [r[1] for r in PUPILS for _ in (1, 2)],
            "level_code": [r[2] for r in PUPILS for _ in (1, 2)],
            "student_code": [r[3] for r in PUPILS for _ in (1, 2)],
            "semester": pl.Series([s for _ in PUPILS for s in (1, 2)], dtype=pl.Int8),
            "average": [r[7 + i] for r in PUPILS for i in (0, 1)],
            "rank": pl.Series([1] * 2 * len(PUPILS), dtype=pl.Int32),
            "class_size": [2] * 2 * len(PUPILS),
            "subjects_counted": [8] * 2 * len(PUPILS),
        }
    )
    students = pl.DataFrame(
        {
            "school_code": [r[0] for r in PUPILS],
            "school_year": [YEAR] * len(PUPILS),
            "student_code": [r[3] for r in PUPILS],
            "family_name": ["مجاهد"] * len(PUPILS),
            "first_name": ["سلمى"] * len(PUPILS),
            "sex": [r[4] for r in PUPILS],
        }
    )
    schools = pl.DataFrame(
        {
            "school_code": [A, B],
            "name_ar": ["إعدادية المسيرة", "مدرسة أكلو"],
            "name_fr": ["Collège Al Massira", "École Aglou"],
            "commune": ["Tiznit", "Aglou"],
            "cycle": ["college", "primary"],
            "school_type": ["main", "main"],
        }
    )
    levels = pl.DataFrame(
        {
            "level_code": ["1APIC", "6APG"],
            "cycle": ["college", "primary"],
            "mark_scale": ["20", "10"],
        }
    )
    previous = _annual(
        [
            (A, "1APIC-1", "1APIC", CODES[6], "F", 10.0, "promoted"),
            (A, "1APIC-1", "1APIC", CODES[7], "M", 12.0, "promoted"),
            (B, "6APG-1", "6APG", CODES[8], "F", 5.0, "repeats"),  # 10 on /20
        ],
        LAST,
    )
    return {
        "annual_results": _annual(PUPILS),
        "semester_results": semester,
        "students": students,
        "schools": schools,
        "levels": levels,
        "previous": previous,
    }


def _one(frame: pl.DataFrame, **where) -> dict:
    for column, value in where.items():
        frame = frame.filter(pl.col(column) == value)
    assert frame.height == 1, where
    return frame.row(0, named=True)


BINS = ("bin_0_5", "bin_5_10", "bin_10_12", "bin_12_14", "bin_14_16", "bin_16_20")


def test_province_pass_rate_mean_and_bins(frames):
    del frames["previous"]
    stats = compute_statistics(**frames)
    province = _one(stats["province"], school_year=YEAR)
    assert (province["pupils"], province["girls"], province["boys"]) == (6, 3, 3)
    assert province["passed"] == 3
    assert province["pass_rate"] == pytest.approx(0.5)
    # averages on /20: 12, 8, 15, 10, 14, 8
    assert province["mean_average"] == pytest.approx(67 / 6)
    assert province["mean_semester_1"] == pytest.approx((11 + 7 + 14 + 10 + 12 + 8) / 6)
    assert province["mean_semester_2"] == pytest.approx((13 + 9 + 16 + 10 + 16 + 8) / 6)
    assert [province[b] for b in BINS] == [0, 2, 1, 1, 2, 0]
    assert (province["promoted"], province["repeats"], province["council"]) == (3, 2, 1)
    assert province["no_decision"] == 0
    assert "pass_rate_change" not in stats["province"].columns


def test_school_commune_and_class(frames):
    stats = compute_statistics(**frames)
    college = _one(stats["school"], school_code=A)
    assert (college["pupils"], college["passed"]) == (4, 2)
    assert college["pass_rate"] == pytest.approx(0.5)
    assert college["mean_average"] == pytest.approx(45 / 4)
    assert (college["name_fr"], college["commune"], college["cycle"]) == (
        "Collège Al Massira",
        "Tiznit",
        "college",
    )
    primary = _one(stats["school"], school_code=B)
    assert primary["pass_rate"] == pytest.approx(0.5)
    assert primary["mean_average"] == pytest.approx(11.0)  # (7 + 4) / 2 on /10 → 11 on /20
    assert [primary[b] for b in BINS] == [0, 1, 0, 0, 1, 0]

    aglou = _one(stats["commune"], commune="Aglou")
    assert (aglou["pupils"], aglou["passed"]) == (2, 1)

    first = _one(stats["class"], school_code=A, class_code="1APIC-1")
    assert (first["pupils"], first["passed"], first["level_code"]) == (2, 1, "1APIC")
    assert first["mean_average"] == pytest.approx(10.0)
    second = _one(stats["class"], school_code=A, class_code="1APIC-2")
    assert second["pass_rate"] == pytest.approx(0.5)  # the council pupil is not passed yet
    assert stats["class"].height == 3


def test_by_sex_and_cycle(frames):
    stats = compute_statistics(**frames)
    girls = _one(stats["sex"], sex="F")
    assert (girls["pupils"], girls["passed"]) == (3, 2)
    assert girls["mean_average"] == pytest.approx((12 + 8 + 14) / 3)
    boys = _one(stats["sex"], sex="M")
    assert (boys["pupils"], boys["passed"]) == (3, 1)
    assert boys["mean_average"] == pytest.approx(11.0)

    college = _one(stats["cycle"], cycle="college")
    assert (college["pupils"], college["passed"]) == (4, 2)
    primary = _one(stats["cycle"], cycle="primary")
    assert (primary["pupils"], primary["passed"]) == (2, 1)

    primary_girls = _one(stats["cycle_sex"], cycle="primary", sex="F")
    assert (primary_girls["pupils"], primary_girls["pass_rate"]) == (1, 1.0)
    college_boys = _one(stats["cycle_sex"], cycle="college", sex="M")
    assert college_boys["pass_rate"] == pytest.approx(0.5)
    assert college_boys["mean_average"] == pytest.approx(12.5)


def test_distribution_of_averages(frames):
    stats = compute_statistics(**frames)
    distribution = stats["distribution"]
    overall = distribution.filter(pl.col("cycle") == "all").sort("bin")
    counts = {r["bin"]: r["pupils"] for r in overall.iter_rows(named=True)}
    assert [counts[b] for b in BINS] == [0, 2, 1, 1, 2, 0]
    primary = distribution.filter(pl.col("cycle") == "primary")
    row = _one(primary, bin="bin_14_16")
    assert (row["range_20"], row["range_10"], row["pupils"], row["share"]) == (
        "14-16",
        "7-8",
        1,
        0.5,
    )


def test_bin_bounds(frames):
    bounds = [
        (A, "1APIC-1", "1APIC", "K100000010", "F", 20.0, "promoted"),
        (A, "1APIC-1", "1APIC", "K100000011", "F", 10.0, "promoted"),
        (A, "1APIC-1", "1APIC", "K100000012", "F", 5.0, "repeats"),
        (A, "1APIC-1", "1APIC", "K100000013", "F", 0.0, "repeats"),
        (A, "1APIC-1", "1APIC", "K100000014", "F", None, None),
        (B, "6APG-1", "6APG", "K100000015", "M", 6.0, "promoted"),  # 12 on /20
    ]
    stats = compute_statistics(_annual(bounds), None, None, frames["schools"], frames["levels"])
    province = stats["province"].row(0, named=True)
    assert [province[b] for b in BINS] == [1, 1, 1, 1, 0, 1]
    assert province["pupils"] == 6
    assert province["no_decision"] == 1
    assert province["pass_rate"] == pytest.approx(3 / 6)
    assert province["mean_average"] == pytest.approx((20 + 10 + 5 + 0 + 12) / 5)
    assert _one(stats["sex"], sex="unknown")["pupils"] == 6


def test_comparison_with_last_year(frames):
    stats = compute_statistics(**frames)
    province = stats["province"].row(0, named=True)
    # last year: 10, 12 promoted; 5/10 (10 on /20) repeats
    assert province["pass_rate_previous"] == pytest.approx(2 / 3)
    assert province["pass_rate_change"] == pytest.approx(0.5 - 2 / 3)
    assert province["mean_average_previous"] == pytest.approx(32 / 3)
    assert province["mean_average_change"] == pytest.approx(67 / 6 - 32 / 3)
    college = _one(stats["school"], school_code=A)
    assert college["pass_rate_change"] == pytest.approx(-0.5)
    assert college["mean_average_change"] == pytest.approx(45 / 4 - 11)
    primary = _one(stats["school"], school_code=B)
    assert primary["pass_rate_change"] == pytest.approx(0.5)
    assert primary["mean_average_change"] == pytest.approx(1.0)
    assert _one(stats["commune"], commune="Aglou")["pass_rate_change"] == pytest.approx(0.5)
    assert _one(stats["cycle"], cycle="college")["pass_rate_previous"] == pytest.approx(1.0)

    # Last year's statistics instead of last year's results: the same comparison.
    last = compute_statistics(frames["previous"], None, None, frames["schools"], frames["levels"])
    again = compute_statistics(**{**frames, "previous": last})
    for name in ("province", "school", "commune", "cycle"):
        assert again[name].equals(stats[name]), name


def test_no_pupil_in_statistics(frames):
    stats = compute_statistics(**frames)
    for name, frame in stats.items():
        assert "student_code" not in frame.columns, name
        assert not {"family_name", "first_name", "birth_date"} & set(frame.columns), name
        text = str(frame.write_csv())
        assert not any(code in text for code in CODES), name
        assert "مجاهد" not in text
    rows = headline_table(stats)
    assert not any(code in repr(rows) for code in CODES)


def test_headline_table(frames):
    rows = headline_table(compute_statistics(**frames))
    assert [(r["scope"], r["school_code"]) for r in rows] == [
        ("province", ""),
        ("school", B),
        ("school", A),
    ]
    assert rows[0] == {
        "scope": "province",
        "school_year": YEAR,
        "school_code": "",
        "school": "",
        "pupils": 6,
        "pass_rate_pct": 50.0,
        "mean_average_20": 11.17,
        "pass_rate_change_pts": -16.7,
    }
    assert rows[2]["school"] == "Collège Al Massira"
    assert rows[2]["pass_rate_change_pts"] == -50.0


def _images(page: str) -> list[str]:
    return re.findall(r"<img src='([^']+)'", page)


def test_report_is_static_rtl_html_with_png_charts(frames, tmp_path: Path):
    stats = compute_statistics(**frames)
    path = write_statistics_report(tmp_path / "reports", stats, YEAR)
    assert path == tmp_path / "reports" / "statistics_2023-2024.html"
    page = path.read_text(encoding="utf-8")
    assert '<html lang="ar" dir="rtl">' in page
    assert '<meta charset="utf-8">' in page
    assert "<script" not in page.lower()
    assert not re.search(r"(https?:)?//", page)  # no external resource
    assert "نسبة النجاح حسب المؤسسة" in page and "Taux de réussite par établissement" in page
    assert "إعدادية المسيرة" in page
    images = _images(page)
    assert [name.split("2023-2024_")[1] for name in images] == [
        "pass_rate_by_school.png",
        "distribution.png",
        "pass_rate_by_sex_cycle.png",
        "comparison.png",
    ]
    for name in images:
        assert "/" not in name  # next to the HTML
        data = (path.parent / name).read_bytes()
        assert data.startswith(PNG), name
        assert not any(code.encode() in data for code in CODES)
    assert not any(code in page for code in CODES)
    assert "مجاهد" not in page


def test_report_without_last_year_has_no_comparison(frames, tmp_path: Path):
    del frames["previous"]
    path = write_statistics_report(tmp_path, compute_statistics(**frames), YEAR)
    images = _images(path.read_text(encoding="utf-8"))
    assert len(images) == 3
    assert not any("comparison" in name for name in images)
    assert not list(tmp_path.glob("*comparison*"))


def test_report_of_an_empty_year(frames, tmp_path: Path):
    stats = compute_statistics(**frames)
    path = write_statistics_report(tmp_path, stats, "2030/2031")
    page = path.read_text(encoding="utf-8")
    assert "Aucune donnée" in page
    for name in _images(page):
        assert (tmp_path / name).read_bytes().startswith(PNG)

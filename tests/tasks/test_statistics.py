"""Results statistics on a small province computed by hand, pass rates and exam results
against an independent computation (DuckDB over the same rows, the rules files read with
tomllib); the report and its bilingual charts."""

from __future__ import annotations

import csv
import re
import shutil
import tomllib
from pathlib import Path

import duckdb
import polars as pl
import pytest

from schemas.evaluation_rules import DECISIONS, RULES_DIR, load_rules
from tasks import results_formulas as formulas
from tasks.statistics import compute_statistics, exam_statistics, headline_table
from tasks.statistics_report import chart_figures, write_statistics_report

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


def test_charts_are_drawn_with_the_collector_paused_and_freed_young(
    frames, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The charts' figures are drawn with the cyclic collector paused, so that they do not
    outlive its passes into the oldest generation (a full pass over the flow's process each
    report); they are garbage once the report is written, freed by a pass over the young
    objects, and the PNGs are those drawn with the collector running."""
    import gc
    import weakref

    from tasks import statistics_report

    stats = compute_statistics(**frames)
    collector_on: list[bool] = []
    drawn: list[weakref.ref] = []
    charts, save = statistics_report.chart_figures, statistics_report._save

    def figures(*args):  # type: ignore[no-untyped-def]
        out = charts(*args)
        drawn.extend(weakref.ref(figure) for figure in out.values())
        return out

    def saved(figure, path: Path) -> None:  # type: ignore[no-untyped-def]
        collector_on.append(gc.isenabled())
        save(figure, path)

    monkeypatch.setattr(statistics_report, "chart_figures", figures)
    monkeypatch.setattr(statistics_report, "_save", saved)
    assert gc.isenabled()
    page = write_statistics_report(tmp_path / "paused", stats, YEAR)
    assert gc.isenabled()
    assert collector_on == [False] * 4
    gc.collect(0)  # the young generation only
    assert drawn and all(figure() is None for figure in drawn)

    monkeypatch.undo()
    running = tmp_path / "running"
    running.mkdir()
    for name, figure in chart_figures(stats, YEAR).items():  # drawn with the collector on
        statistics_report._save(figure, running / f"statistics_2023-2024_{name}.png")
    images = _images(page.read_text(encoding="utf-8"))
    assert len(images) == 4
    for name in images:
        assert (page.parent / name).read_bytes() == (running / name).read_bytes(), name


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


# ---- pass means what the rules say ---------------------------------------------------------------

LEVELS_CSV = Path(__file__).resolve().parents[2] / "schemas" / "reference" / "levels.csv"


def _rules_as_written(rules_dir: Path = RULES_DIR) -> tuple[dict[str, str], dict[str, dict]]:
    """levels.csv's level → cycle and each cycle's [decisions] table, read without the
    platform's loader (the independent side of the comparisons below)."""
    with LEVELS_CSV.open(encoding="utf-8") as handle:
        level_cycle = {row["level_code"]: row["cycle"] for row in csv.DictReader(handle)}
    decisions = {
        cycle: tomllib.loads((rules_dir / f"{cycle}.toml").read_text("utf-8"))["decisions"]
        for cycle in set(level_cycle.values())
    }
    return level_cycle, decisions


def _every_decision_everywhere() -> pl.DataFrame:
    """For every level of every cycle, one class with one pupil per decision (and none)."""
    level_cycle, _ = _rules_as_written()
    rows = []
    for level in level_cycle:
        for index, decision in enumerate((*DECISIONS, None)):
            rows.append((A, f"{level}-1", level, f"K{len(rows):09d}", "F", 11.0 + index, decision))
    return _annual(rows)


def _duckdb_pass_rates(annual: pl.DataFrame, rules_dir: Path = RULES_DIR) -> dict[str, dict]:
    level_cycle, decisions = _rules_as_written(rules_dir)
    passes = pl.DataFrame(
        [(c, d) for c, table in decisions.items() for d in table["pass_decisions"]],
        schema={"cycle": pl.Utf8, "decision": pl.Utf8},
        orient="row",
    )
    levels = pl.DataFrame(
        list(level_cycle.items()), schema={"level_code": pl.Utf8, "cycle": pl.Utf8}, orient="row"
    )
    sql = """
        with pupils as (
            select a.class_code, l.cycle,
                   exists (select 1 from passes p
                           where p.cycle = l.cycle and p.decision = a.decision) as passed
            from annual a join levels l using (level_code))
        select {key} as key, count(*) as pupils, sum(passed::int) as passed,
               sum(passed::int) / count(*) as pass_rate
        from pupils group by all
    """
    connection = duckdb.connect()
    for name, frame in (("annual", annual), ("passes", passes), ("levels", levels)):
        connection.register(name, frame.to_arrow())
    return {
        key: {row["key"]: row for row in connection.sql(sql.format(key=key)).pl().to_dicts()}
        for key in ("class_code", "cycle")
    }


def test_every_decision_of_every_cycles_rules_goes_through_the_statistics():
    annual = _every_decision_everywhere()
    stats = compute_statistics(annual, None, None, None, None)
    expected = _duckdb_pass_rates(annual)
    classes = {r["class_code"]: r for r in stats["class"].to_dicts()}
    assert set(classes) == set(expected["class_code"])
    for class_code, row in expected["class_code"].items():
        assert (classes[class_code]["pupils"], classes[class_code]["passed"]) == (
            row["pupils"],
            row["passed"],
        ), class_code
        assert classes[class_code]["pass_rate"] == pytest.approx(row["pass_rate"]), class_code
    for cycle, row in expected["cycle"].items():
        got = _one(stats["cycle"], cycle=cycle)
        assert (got["passed"], got["pass_rate"]) == (row["passed"], pytest.approx(row["pass_rate"]))
    # the case of the issue: an oriented pupil of 3APIC, TCSF or TCLSH passed
    for level in ("3APIC", "TCSF", "TCLSH"):
        assert classes[f"{level}-1"]["passed"] == 2  # promoted and oriented, of 6
    assert stats["pass_decisions"].filter(pl.col("cycle") == "college").get_column(
        "decision"
    ).to_list() == ["promoted", "oriented"]


def test_the_rules_file_decides_what_a_pass_is(tmp_path):
    rules_dir = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules_dir)
    primary = rules_dir / "primary.toml"
    text = primary.read_text("utf-8")
    assert 'pass_decisions = ["promoted"]' in text
    primary.write_text(
        text.replace('pass_decisions = ["promoted"]', 'pass_decisions = ["promoted", "council"]')
    )
    annual = _every_decision_everywhere()
    stats = compute_statistics(annual, None, None, None, None, rules=load_rules(rules_dir))
    expected = _duckdb_pass_rates(annual, rules_dir)
    assert _one(stats["cycle"], cycle="primary")["passed"] == expected["cycle"]["primary"]["passed"]
    assert _one(stats["class"], class_code="1APG-1")["passed"] == 2  # promoted and council
    assert _one(stats["class"], class_code="1APIC-1")["passed"] == 2  # promoted and oriented


def test_pupils_at_or_above_the_threshold_pass_at_every_level():
    """The evaluation's own decisions (promoted, oriented, repeats) for averages around each
    cycle's promote_at, through the statistics: a pupil passes exactly when his average
    reaches the threshold read from the rules file."""
    level_cycle, decisions = _rules_as_written()
    rules = load_rules()
    rows = []
    for level, cycle in level_cycle.items():
        threshold = decisions[cycle]["promote_at"]
        for offset in (-2.5, -0.01, 0.0, 0.5, 3.0):
            code = f"K{len(rows):09d}"
            for semester in (1, 2):
                rows.append((A, YEAR, f"{level}-1", level, code, semester, threshold + offset))
    semesters = pl.DataFrame(
        rows,
        schema={
            "school_code": pl.Utf8,
            "school_year": pl.Utf8,
            "class_code": pl.Utf8,
            "level_code": pl.Utf8,
            "student_code": pl.Utf8,
            "semester": pl.Int8,
            "average": pl.Float64,
        },
        orient="row",
    )
    annual = formulas.annual_results(semesters, rules)
    assert set(annual.get_column("decision")) == {"promoted", "oriented", "repeats"}
    stats = compute_statistics(annual, semesters, None, None, None, rules=rules)
    promote_at = pl.DataFrame(
        [(level, decisions[cycle]["promote_at"]) for level, cycle in level_cycle.items()],
        schema={"level_code": pl.Utf8, "promote_at": pl.Float64},
        orient="row",
    )
    connection = duckdb.connect()
    connection.register("annual", annual.to_arrow())
    connection.register("promote_at", promote_at.to_arrow())
    expected = {
        row["class_code"]: row["pass_rate"]
        for row in connection.sql(
            "select class_code, avg((average >= promote_at)::int) as pass_rate "
            "from annual join promote_at using (level_code) group by class_code"
        )
        .pl()
        .to_dicts()
    }
    got = {r["class_code"]: r["pass_rate"] for r in stats["class"].to_dicts()}
    assert got == pytest.approx(expected)
    assert got["3APIC-1"] == pytest.approx(3 / 5)


# ---- exams ---------------------------------------------------------------------------------------

# (school, pupil, exam, session, result, final average)
EXAM_ROWS = [
    (B, CODES[0], "primary_certificate", "normal", "passed", 6.5),
    (B, CODES[1], "primary_certificate", "normal", "failed", 3.0),
    (B, CODES[2], "primary_certificate", "normal", None, None),
    (A, CODES[3], "college_certificate", "normal", "passed", 14.0),
    (A, CODES[4], "college_certificate", "normal", "failed", 8.0),
    (A, CODES[5], "baccalaureate", "normal", "makeup", 8.5),
    (A, CODES[5], "baccalaureate", "makeup", "passed", 10.5),
    (A, CODES[6], "baccalaureate", "normal", "makeup", 7.5),
    (A, CODES[6], "baccalaureate", "makeup", "failed", 9.0),
    (A, CODES[7], "baccalaureate", "normal", "makeup", 9.5),  # did not sit the make-up yet
    (A, CODES[8], "baccalaureate", "normal", "passed", 15.0),
]


def _exam_frame(rows, year: str = YEAR) -> pl.DataFrame:
    return pl.DataFrame(
        [(r[0], year, f"{r[2]}-class", r[1], r[2], r[3], r[4], r[5]) for r in rows],
        schema={
            "school_code": pl.Utf8,
            "school_year": pl.Utf8,
            "class_code": pl.Utf8,
            "student_code": pl.Utf8,
            "exam": pl.Utf8,
            "session": pl.Utf8,
            "result": pl.Utf8,
            "final_average": pl.Float64,
        },
        orient="row",
    )


def _duckdb_exams(exams: pl.DataFrame, by: str) -> dict:
    connection = duckdb.connect()
    connection.register("exam_results", exams.to_arrow())
    frame = connection.sql(
        f"""
        with final as (
            select * from exam_results
            qualify row_number() over (
                partition by school_code, school_year, student_code, exam
                order by session = 'makeup' desc) = 1)
        select {by}, count(*) as candidates, count(*) filter (result = 'passed') as passed,
               count(*) filter (result = 'passed') / count(*) as pass_rate,
               avg(final_average) as mean_final
        from final group by all
        """
    ).pl()
    return {tuple(r[k] for k in by.split(", ")): r for r in frame.to_dicts()}


def test_exam_results_per_exam_and_school_against_duckdb(frames):
    exams = _exam_frame(EXAM_ROWS)
    stats = exam_statistics(exams, frames["schools"], load_rules())
    for name, by in (("exam_province", "exam"), ("exam_school", "exam, school_code")):
        expected = _duckdb_exams(exams, by)
        got = {tuple(r[k] for k in by.split(", ")): r for r in stats[name].to_dicts()}
        assert set(got) == set(expected), name
        for key, row in expected.items():
            for measure in ("candidates", "passed"):
                assert got[key][measure] == row[measure], (name, key, measure)
            assert got[key]["pass_rate"] == pytest.approx(row["pass_rate"]), (name, key)
            assert got[key]["mean_final"] == pytest.approx(row["mean_final"]), (name, key)
    bac = _one(stats["exam_province"], exam="baccalaureate")
    assert (bac["candidates"], bac["passed"], bac["passed_after_makeup"]) == (4, 2, 1)
    assert (bac["awaiting_makeup"], bac["failed"], bac["scale"]) == (1, 1, 20.0)
    primary = _one(stats["exam_province"], exam="primary_certificate")
    assert (primary["no_result"], primary["scale"]) == (1, 10.0)
    assert primary["mean_final"] == pytest.approx((6.5 + 3.0) / 2)  # on /10, as the exam
    assert stats["exam_province"].get_column("exam").to_list() == [
        "primary_certificate",
        "college_certificate",
        "baccalaureate",
    ]
    assert _one(stats["exam_school"], exam="college_certificate")["name_fr"] == "Collège Al Massira"


def test_exam_results_against_last_year(frames):
    last = _exam_frame(
        [
            (A, CODES[0], "college_certificate", "normal", "passed", 12.0),
            (A, CODES[1], "college_certificate", "normal", "passed", 11.0),
            (A, CODES[2], "college_certificate", "normal", "failed", 6.0),
        ],
        LAST,
    )
    stats = exam_statistics(_exam_frame(EXAM_ROWS), frames["schools"], load_rules(), last)
    college = _one(stats["exam_province"], exam="college_certificate")
    assert college["pass_rate_previous"] == pytest.approx(2 / 3)
    assert college["pass_rate_change"] == pytest.approx(0.5 - 2 / 3)
    assert college["mean_final_change"] == pytest.approx(11.0 - 29 / 3)
    assert _one(stats["exam_province"], exam="baccalaureate")["pass_rate_previous"] is None


def _texts(figure) -> list[str]:
    texts = []
    for axes in figure.axes:
        texts += [axes.get_title(), axes.get_xlabel(), axes.get_ylabel()]
        legend = axes.get_legend()
        texts += [t.get_text() for t in legend.get_texts()] if legend else []
    for legend in figure.legends:
        texts += [t.get_text() for t in legend.get_texts()]
    return [t for t in texts if t.strip()]


def test_charts_are_labelled_in_arabic_and_french(frames):
    stats = compute_statistics(**frames, exam_results=_exam_frame(EXAM_ROWS))
    figures = chart_figures(stats, YEAR)
    assert set(figures) == {
        "pass_rate_by_school",
        "distribution",
        "pass_rate_by_sex_cycle",
        "comparison",
        "exams",
    }
    arabic, latin = re.compile(r"[\u0600-\u06ff]"), re.compile(r"[A-Za-zÀ-ÿ]{3}")
    for name, figure in figures.items():
        texts = _texts(figure)
        assert len(texts) >= 2, name
        for text in texts:
            assert arabic.search(text) and latin.search(text), (name, text)


def test_page_has_the_exam_section_and_says_what_a_pass_is(frames, tmp_path: Path):
    stats = compute_statistics(
        **frames,
        exam_results=_exam_frame(EXAM_ROWS),
        previous_exam_results=_exam_frame(
            [(A, CODES[0], "college_certificate", "normal", "passed", 12.0)], LAST
        ),
    )
    page = write_statistics_report(tmp_path, stats, YEAR).read_text("utf-8")
    assert "نتائج الامتحانات" in page and "Résultats des examens" in page
    for label in ("البكالوريا", "Baccalauréat", "Certificat du collège", "6e année primaire"):
        assert label in page
    assert "4.75 /10" in page  # the primary exam's mean on its own scale
    assert "Collège: passage, orientation" in page and "الثانوي الإعدادي: ينتقل، موجه" in page
    assert "pas de comparaison" not in page  # last year is known
    images = _images(page)
    assert any(name.endswith("_exams.png") for name in images)
    for name in images:
        assert (tmp_path / name).read_bytes().startswith(PNG)


def test_page_says_when_last_year_and_exams_are_not_in_the_warehouse(frames, tmp_path: Path):
    del frames["previous"]
    page = write_statistics_report(tmp_path, compute_statistics(**frames), YEAR).read_text("utf-8")
    assert "pas de comparaison" in page and "لا مقارنة" in page
    assert "aucun résultat d'examen" in page.lower() or "aucun résultat d&#x27;examen" in page
    assert not list(tmp_path.glob("*_exams.png"))


def test_a_first_evaluation_of_two_years_compares_the_later_with_the_earlier(frames):
    """The results computed in the same run for last year count as last year's, in place of
    what the warehouse held for that year."""
    from tasks.evaluation_steps import with_earlier_results

    this_year = _annual(PUPILS)
    computed_last = frames["previous"]  # computed by this run for 2022/2023
    stale = _annual([(A, "1APIC-1", "1APIC", CODES[8], "F", 2.0, "repeats")], LAST)
    results = {"annual_results": pl.concat([this_year, computed_last])}
    inputs = with_earlier_results({"history": stale}, results, YEAR)
    assert inputs["history"].sort("student_code").equals(computed_last.sort("student_code"))
    stats = compute_statistics(
        this_year, None, None, frames["schools"], frames["levels"], previous=inputs["history"]
    )
    assert stats["province"].item(0, "pass_rate_previous") == pytest.approx(2 / 3)
    # Nothing computed for an earlier year: the published history stays as it is.
    assert with_earlier_results({"history": stale}, {"annual_results": this_year}, YEAR)[
        "history"
    ].equals(stale)


def test_report_isolates_codes_years_and_figures_from_the_arabic(frames, tmp_path: Path):
    # In the right-to-left page a rate such as "72.9 %", a change "+1.5", the year or a code
    # must keep the order it is written in: each sits alone in a <bdi>.
    from lxml import html as lxml_html

    stats = compute_statistics(**frames)
    page = write_statistics_report(tmp_path, stats, YEAR).read_text(encoding="utf-8")
    tree = lxml_html.fromstring(page)
    isolated = [b.text_content() for b in tree.iter("bdi")]
    assert YEAR in isolated
    rate = f"{100 * stats['province'].item(0, 'pass_rate'):.1f} %"
    assert rate in isolated
    for cell in tree.iter("td"):
        text = cell.text_content().strip()
        if re.fullmatch(r"[-+]?\d[\d.]*( %| /\d+)?", text):  # a figure, alone in its cell
            assert [b.text_content() for b in cell.iter("bdi")] == [text], text

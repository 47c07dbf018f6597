"""Normalisation: typed columns next to the original text, as schemas/text.py would read them."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from schemas.text import clean_text, match_key
from tasks.normalise import (
    clean_expr,
    date_expr,
    decimal_expr,
    integer_expr,
    match_key_expr,
    normalise,
)

INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


def one(expr_fn, value):
    return pl.select(expr_fn(pl.lit(value, pl.Utf8))).item()


# ---- text ------------------------------------------------------------------------------------

TEXT_ALPHABET = (
    "abcXYZ éèçàÉ 0123 ٠١٢٣٩ ۴ ابتثجحدرسعكلمنهوي أإآٱىة ـ \u064b\u064e\u0650\u0670 "
    "\u00a0\t\n\u200b\u200f\u202b\ufeff -/:"
)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=TEXT_ALPHABET, max_size=30))
def test_clean_expr_agrees_with_clean_text(text):
    assert one(clean_expr, text) == clean_text(text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=TEXT_ALPHABET, max_size=30))
def test_match_key_expr_agrees_with_match_key(text):
    assert one(match_key_expr, text) == match_key(text)


# ---- dates -----------------------------------------------------------------------------------

dates = st.dates(min_value=dt.date(1950, 1, 1), max_value=dt.date(2099, 12, 31))


def _spellings(day: dt.date) -> list[str]:
    serial = (day - dt.date(1899, 12, 30)).days
    return [
        day.strftime("%d/%m/%Y"),
        day.strftime("%d-%m-%Y"),
        day.strftime("%Y-%m-%d"),
        f"{day.day}/{day.month}/{day.year}",
        str(serial),
        f"{serial}.0",
        day.strftime("%d/%m/%Y").translate(INDIC),
        f"  {day.strftime('%d-%m-%Y')} ",
        day.strftime("%Y-%m-%d 00:00:00"),
    ]


@settings(max_examples=200, deadline=None)
@given(dates)
def test_every_date_spelling_reads_back_the_same_day(day):
    values = _spellings(day)
    parsed = pl.DataFrame({"v": values}).select(date_expr(pl.col("v"))).to_series().to_list()
    assert parsed == [day] * len(values)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789/-. abc", max_size=12))
def test_date_parser_never_raises_and_only_returns_plausible_days(text):
    value = one(date_expr, text)
    assert value is None or dt.date(1900, 3, 1) <= value <= dt.date(2100, 12, 31)


def test_impossible_and_unreadable_dates_are_null():
    for text in ("31/02/2010", "00/01/2010", "13/13/2010", "2010-13-01", "abc", "01/02/10", ""):
        assert one(date_expr, text) is None, text


# ---- decimals --------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=2000), st.sampled_from([".", ",", "٫", "،"]))
def test_decimal_with_any_separator_and_digits(hundredths, separator):
    whole, fraction = divmod(hundredths, 100)
    text = f"{whole}{separator}{fraction:02d}"
    expected = hundredths / 100
    assert one(decimal_expr, text) == expected
    assert one(decimal_expr, text.translate(INDIC)) == expected
    assert one(decimal_expr, f" {text}\u00a0") == expected


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789.,eE+-infa ", max_size=8))
def test_decimal_parser_never_raises_and_rejects_exponents(text):
    value = one(decimal_expr, text)
    assert value is None or ("e" not in text.lower() and "n" not in text.lower())


def test_decimals_that_are_not_numbers_are_null():
    for text in ("abc", "1e3", "inf", "nan", "1.2.3", "", "  "):
        assert one(decimal_expr, text) is None, text


def test_integers():
    assert one(integer_expr, "12") == 12
    assert one(integer_expr, "12.0") == 12
    assert one(integer_expr, "١٢") == 12
    assert one(integer_expr, "12.5") is None
    assert one(integer_expr, "-3") is None


# ---- normalise a dataset ---------------------------------------------------------------------


def students_frame(**overrides) -> pl.DataFrame:
    base = {
        "sheet": ["Sheet1", "Sheet1", "Sheet1", "Sheet1"],
        "sheet_row": [16, 17, 18, 19],
        "row_number": ["1", "2", "3", "٤"],
        "student_code": ["K100000001", " k100000002 ", "K١٠٠٠٠٠٠٠٣", "K1000ـ00004"],
        "family_name": ["العلوي", "بنـاني", "  الإدريسي ", "أيت"],
        "first_name": ["محمد", "فاطمة", "يوسف", "مريم"],
        "sex": ["ذكر", "أنثى", "M", "انثى"],
        "birth_date": ["12/03/2011", "45123", "2011-05-06", "٠١/٠٢/٢٠١١"],
        "birthplace": [None, "تيزنيت", None, None],
        "school_year": ["2023/2024"] * 4,
        "level_label": ["الأولى إعدادي مسار دولي"] * 4,
        "class_code": ["1APIC-1"] * 4,
    }
    base.update(overrides)
    return pl.DataFrame(base)


def test_normalise_adds_typed_columns_and_keeps_the_originals():
    frame = students_frame()
    out = normalise("students", frame)
    assert out.select(frame.columns).equals(frame)
    assert out["student_code_key"].to_list() == [
        "K100000001",
        "K100000002",
        "K100000003",
        "K100000004",
    ]
    assert out["sex_value"].to_list() == ["M", "F", "M", "F"]
    assert out["birth_date_value"].to_list() == [
        dt.date(2011, 3, 12),
        dt.date(2023, 7, 16),
        dt.date(2011, 5, 6),
        dt.date(2011, 2, 1),
    ]
    assert out["row_number_value"].to_list() == [1, 2, 3, 4]
    assert out["class_code_key"].dtype == pl.Utf8
    assert out["birth_date_value"].dtype == pl.Date


def test_unparseable_values_become_null_while_the_original_stays():
    frame = students_frame(
        sex=["ذكر", "?", None, "  "], birth_date=["31/02/2011", "x", None, "1/1/2011"]
    )
    out = normalise("students", frame)
    assert out["sex_value"].to_list() == ["M", None, None, None]
    assert out["birth_date_value"].to_list() == [None, None, None, dt.date(2011, 1, 1)]
    assert out["sex"].to_list() == ["ذكر", "?", None, "  "]


def test_missing_optional_columns_are_added_as_null_text():
    frame = students_frame().drop("birthplace")
    out = normalise("students", frame)
    assert out["birthplace"].dtype == pl.Utf8
    assert out["birthplace"].null_count() == out.height


def test_labels_yes_no_and_semester():
    frame = pl.DataFrame(
        {
            "sheet": [""] * 4,
            "sheet_row": [2, 3, 4, 5],
            "school_code": ["27783Y"] * 4,
            "student_code": ["K100000001"] * 4,
            "relation": ["الأب", "الام", "الوصـي", "العم"],
            "guardian_family_name": ["x"] * 4,
            "guardian_first_name": ["y"] * 4,
            "orphan": ["نعم", "لا", "Oui", "peut-être"],
        }
    )
    out = normalise("guardians", frame)
    assert out["relation_value"].to_list() == ["الأب", "الأم", "الوصي", None]
    assert out["orphan_value"].to_list() == [True, False, True, None]


def test_large_frames_take_the_fast_paths_with_the_same_result():
    """Per-distinct-value, constant-column and clean-row shortcuts must not change a value."""
    small = students_frame(
        student_code=["K100000001", " k100000002 ", "bad", None],
        row_number=["1", "x", "3.0", None],
        sex=["ذكر", "أنثى", "?", None],
    )
    big = pl.concat([small] * 3000)  # 12,000 rows: low cardinality everywhere
    mixed = pl.concat([big, small.with_columns(pl.lit("K200000009").alias("student_code"))] * 2)
    expected = pl.concat([normalise("students", small)] * 3000)
    assert normalise("students", big).equals(expected)
    # and a frame where codes are all distinct (the clean-row shortcut)
    many = pl.DataFrame(
        {
            "student_code": [f"K{i:09d}" for i in range(20_000)] + [" k000000001", "x"],
        }
    )
    keys = normalise("students", many)["student_code_key"].to_list()
    assert keys[:3] == ["K000000000", "K000000001", "K000000002"]
    assert keys[-2:] == ["K000000001", "X"]
    assert normalise("students", mixed).height == mixed.height


def test_marks_metadata_are_normalised():
    frame = pl.DataFrame(
        {
            "student_code": ["K100000001", "K100000001"],
            "slot": ["test1", "activities"],
            "mark": ["16,25", "١٢٫٥"],
            "absence": [None, "مبرر"],
            "semester": ["1", "2"],
            "subject_code": ["0030", "٠٠٣٠"],
            "school_code": ["27783y", "27783Y"],
        }
    )
    out = normalise("marks", frame)
    assert out["mark_value"].to_list() == [16.25, 12.5]
    assert out["absence_value"].to_list() == [None, "justified"]
    assert out["semester_value"].to_list() == [1, 2]
    assert out["semester_value"].dtype == pl.Int8
    assert out["subject_code_key"].to_list() == ["0030", "0030"]
    assert out["school_code_key"].to_list() == ["27783Y", "27783Y"]
    assert out["slot"].to_list() == ["test1", "activities"]


# ---- one select or column by column: the same values ------------------------------------------
# normalise computes every typed column in one select where a cheap expression is exact and runs
# the full normalisation on the other rows only; normalise_by_column (very large frames) goes
# column by column with its per-value shortcuts. Both must give the same frame.

SPELLINGS = (
    None,
    "",
    "  ",
    "ـ",
    "\u200b12",
    "abc",
    "12",
    "+12",
    "-0",
    "-3",
    "0012",
    "12.0",
    "12,5",
    "١٢",
    "1e3",
    "16.25",
    "12/03/2011",
    "1/3/2011",
    "12-03-2011",
    "12/03-2011",
    "31/02/2011",
    "2011-03-12",
    "45123",
    "01/01/1850",
    "K100000001",
    " k100000001 ",
    "K١٠٠٠٠٠٠٠١",
    "1APIC-1",
    "1apic-1",
    "27783Y",
    "2023/2024",
    "ذكر",
    "أنثى",
    "انثى",
    "F",
    "Masculin",
    "نعم",
    "لا",
    "Oui",
    "مبرر",
    "Justifié",
    "S1",
    "الدورة الثانية",
    "الأب",
    "الام",
    "تيسير",
    "الإثنين",
    "الاثنين",
    "محلي",
    "عادية",
)


def _frame(dataset: str, cells: list[list[int]]) -> pl.DataFrame:
    from schemas.models import fields

    names = [item.name for item in fields(dataset)]
    data = {
        name: [SPELLINGS[row[i % len(row)] % len(SPELLINGS)] if row else None for row in cells]
        for i, name in enumerate(names)
    }
    frame = pl.DataFrame(data, schema=dict.fromkeys(names, pl.Utf8))
    return frame.with_columns(
        pl.lit("s", pl.Utf8).alias("sheet"),
        pl.int_range(pl.len(), dtype=pl.Int64).alias("sheet_row"),
    )


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


@settings(max_examples=200, deadline=None)
@given(
    dataset=st.sampled_from(DATASET_NAMES),
    cells=st.lists(st.lists(st.integers(0, 10_000), min_size=1, max_size=30), max_size=12),
)
def test_normalise_in_one_select_agrees_with_column_by_column(dataset, cells):
    from polars.testing import assert_frame_equal

    from tasks.normalise import normalise_by_column

    frame = _frame(dataset, cells)
    assert_frame_equal(normalise(dataset, frame), normalise_by_column(dataset, frame))


@settings(max_examples=12, deadline=None)
@given(
    dataset=st.sampled_from(DATASET_NAMES),
    cells=st.lists(
        st.lists(st.integers(0, 10_000), min_size=1, max_size=30), min_size=1, max_size=6
    ),
    constant=st.sampled_from(SPELLINGS),
    column=st.integers(0, 50),
    dirty=st.integers(0, 4),
)
def test_normalise_agrees_on_large_frames(dataset, cells, constant, column, dirty):
    """Thousands of rows: constant columns (one column, and every integer column), per-value
    normalisation, the quarter of unreadable integers that switches integer_column to
    integer_expr on every row."""
    from polars.testing import assert_frame_equal

    from schemas.models import fields
    from tasks.normalise import normalise_by_column

    items = fields(dataset)
    frame = _frame(dataset, cells)
    frame = pl.concat([frame] * (4200 // frame.height + 1)).head(4200)
    chosen = {items[column % len(items)].name} | {i.name for i in items if i.kind == "integer"}
    frame = frame.with_columns(pl.lit(constant, pl.Utf8).alias(name) for name in chosen)
    if dirty:  # a share of the rows unreadable in the other columns
        bad = pl.int_range(pl.len()) % 8 < dirty
        frame = frame.with_columns(
            pl.when(bad).then(pl.lit("x?")).otherwise(pl.col(item.name)).alias(item.name)
            for item in items
            if item.name not in chosen
        )
    assert_frame_equal(normalise(dataset, frame), normalise_by_column(dataset, frame))


@pytest.mark.parametrize(
    "pattern",
    [["+12"], ["-0"], ["12"], ["x"], [None], ["+12", "x"], ["+12", "12", "12", "12", "x"]],
)
@pytest.mark.parametrize("rows", [100, 4200])
def test_normalise_agrees_on_integer_quirks(pattern, rows):
    """integer_column reads a large column repeating one value, or a column with more than a
    quarter of values the cast cannot read, with integer_expr (``+12`` → null), and otherwise
    casts (``+12`` → 12): normalise keeps both behaviours."""
    from polars.testing import assert_frame_equal

    from schemas.models import fields
    from tasks.normalise import normalise_by_column

    values = (pattern * rows)[:rows]
    for dataset in ("students", "marks", "rooms", "absences", "timetable"):
        names = [item.name for item in fields(dataset)]
        frame = pl.DataFrame({name: values for name in names}, schema=dict.fromkeys(names, pl.Utf8))
        assert_frame_equal(normalise(dataset, frame), normalise_by_column(dataset, frame))


# ---- large frames: dates and labels once per run of equal texts --------------------------------
# A dataset's files are stacked before validation, so their metadata repeat over long runs and a
# marks sheet lists each pupil's rows together: on a large frame normalise computes dates and
# labels once per run (tasks.normalise._by_runs). The values must be those of every row.

RUN_TEXTS = (
    None,
    "",
    "12/03/2011",
    "12-03-2011",
    "2011-05-06",
    "45123",
    "31/02/2011",
    "٠١/٠٢/٢٠١١",
    "ذكر",
    "انثى",
    "M",
    "fille",
    "نعم",
    "Non",
    "1",
    "S2",
    "الدورة الثانية",
    "مبرر",
    "Justifiée",
    "عادية",
    "اقليمي",
    "x?",
)


def _runs(texts: list[int], lengths: list[int]) -> list[str | None]:
    pairs = zip(texts, lengths, strict=True)
    return [RUN_TEXTS[text % len(RUN_TEXTS)] for text, n in pairs for _ in range(n)]


@pytest.mark.parametrize(
    ("dataset", "column"),
    [
        ("marks", "birth_date"),
        ("marks", "semester"),
        ("marks", "absence"),
        ("students", "sex"),
        ("exam_marks", "absent"),
        ("exam_marks", "session"),
        ("guardians", "relation"),
    ],
)
@pytest.mark.parametrize("runs", [1, 7, 1200, 5000])
def test_by_runs_gives_every_rows_quick_value(dataset, column, runs):
    """Few long runs, more runs than a dict lookup takes (1200 labels), and runs too short to
    be worth it (5000 over 6000 rows): the values of the quick expression on every row."""
    from schemas.models import fields
    from tasks.normalise import _by_runs, _quick_value

    item = next(item for item in fields(dataset) if item.name == column)
    lengths = [6000 // runs + (i < 6000 % runs) for i in range(runs)]
    series = pl.Series(column, _runs([i * 7 + i // 3 for i in range(runs)], lengths), pl.Utf8)
    expected = series.to_frame().select(
        _quick_value(item, pl.col(column)).cast(item.dtype).alias(item.typed)
    )
    assert_frame_equal(_by_runs(item, series).to_frame(), expected)


@settings(max_examples=25, deadline=None)
@given(
    dataset=st.sampled_from(DATASET_NAMES),
    files=st.lists(
        st.tuples(st.integers(1, 900), st.lists(st.integers(0, 100), min_size=1, max_size=4)),
        min_size=2,
        max_size=12,
    ),
)
def test_normalise_agrees_on_stacked_files(dataset, files):
    """Files stacked as the ingest validates them (thousands of rows): each file's columns
    repeat a few texts over long runs, some of them unreadable or spelled otherwise."""
    from schemas.models import fields
    from tasks.normalise import normalise_by_column

    names = [item.name for item in fields(dataset)]
    parts = []
    for height, texts in files:
        data = {
            name: _runs([texts[(i + j) % len(texts)] + i for j in range(4)], [height] * 4)
            for i, name in enumerate(names)
        }
        parts.append(pl.DataFrame(data, schema=dict.fromkeys(names, pl.Utf8)))
    frame = pl.concat(parts)
    assert_frame_equal(normalise(dataset, frame), normalise_by_column(dataset, frame))

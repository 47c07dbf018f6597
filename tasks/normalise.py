"""Normalisation of a read frame: typed columns added next to the original text.

``normalise(dataset, frame)`` keeps every original column untouched and adds, per declared column,
the typed column named in schemas/models.py (``student_code_key``, ``birth_date_value``,
``mark_value``, ``sex_value``...). A value that cannot be understood becomes null in the typed
column while the original stays, so validation can report it with the text the school wrote.

Everything is vectorised with polars expressions. Columns with few distinct values (metadata
repeated on every row, marks, slots, labels, birth dates) are normalised once per distinct value
and spread back by index; codes with many distinct values are cleaned only where they need it.
The expressions follow schemas/text.py (clean_text, match_key, ascii_digits); the tests check they
agree with it.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache, partial
from typing import Any, cast

import polars as pl

from schemas import datasets as ds
from schemas.models import JUSTIFIED, Field, fields
from schemas.text import match_key

_INDIC = "٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹"
_INDIC_FROM = list(_INDIC)
_INDIC_TO = list("0123456789" * 2)
_INVISIBLE = r"[\x{200b}-\x{200f}\x{202a}-\x{202e}\x{2066}-\x{2069}\x{feff}\x{00ad}\x{0640}]"
_SPACES = r"[\s\x1c-\x1f]+"
_HARAKAT = r"[\x{064b}-\x{065f}\x{0670}]"
_LETTERS_FROM = ["أ", "إ", "آ", "ٱ", "ى", "ة"]
_LETTERS_TO = ["ا", "ا", "ا", "ا", "ي", "ه"]
_NON_ARABIC_MARK = r"[\p{M}&&[^\x{0600}-\x{06ff}]]"

EXCEL_EPOCH = dt.date(1899, 12, 30)
MIN_DATE = dt.date(1900, 3, 1)  # Excel serials below 61 carry the 1900 leap-year bug
MAX_DATE = dt.date(2100, 12, 31)

# Labels schools write for sex, beyond the declared ذكر / أنثى (compared by match_key).
SEX_SYNONYMS = {
    "M": ("ذكر", "ذكور", "ذ", "M", "H", "Masculin", "Masc", "Homme", "Garçon", "Male"),
    "F": ("أنثى", "انثى", "أنثي", "إناث", "أ", "F", "Féminin", "Fém", "Femme", "Fille", "Female"),
}
YES_NO_SYNONYMS = {
    True: ("نعم", "Oui", "O", "Yes", "Y", "1", "Vrai", "True", "X"),
    False: ("لا", "Non", "N", "No", "0", "Faux", "False"),
}
ABSENCE_SYNONYMS = {JUSTIFIED: (ds.JUSTIFIED_LABEL, "Justifié", "Justifiée", "J")}
SEMESTER_SYNONYMS = {
    1: ("1", "S1", "الدورة الأولى", "الأولى", "Semestre 1"),
    2: ("2", "S2", "الدورة الثانية", "الثانية", "Semestre 2"),
}

# Below this many rows, normalising per distinct value is not worth its bookkeeping.
_PER_VALUE_MIN_ROWS = 4096
_PARALLEL_MIN_ROWS = 100_000
_WORKERS = max(2, min(8, os.cpu_count() or 2))


# ---- expressions (schemas/text.py semantics) -------------------------------------------------


def clean_expr(expr: pl.Expr) -> pl.Expr:
    """clean_text: invisible marks and tatweel removed, Arabic-Indic digits in ASCII, whitespace
    collapsed to one space, ends stripped."""
    return (
        expr.str.replace_all(_INVISIBLE, "")
        .str.replace_many(_INDIC_FROM, _INDIC_TO)
        .str.replace_all(_SPACES, " ")
        .str.strip_chars(" ")
    )


def match_key_expr(expr: pl.Expr) -> pl.Expr:
    """match_key: clean_text, harakat removed, alef / ya / ta marbuta variants unified, Latin
    letters lower case without accents."""
    return (
        clean_expr(expr)
        .str.replace_all(_HARAKAT, "")
        .str.replace_many(_LETTERS_FROM, _LETTERS_TO)
        .str.normalize("NFKD")
        .str.replace_all(_NON_ARABIC_MARK, "")
        .str.normalize("NFC")
        .str.to_lowercase()
    )


def _null_if_empty(expr: pl.Expr) -> pl.Expr:
    return pl.when(expr.str.len_bytes() > 0).then(expr)


def code_key_expr(expr: pl.Expr) -> pl.Expr:
    """A code as compared: clean_text, upper case, null when blank."""
    return _null_if_empty(clean_expr(expr).str.to_uppercase())


def date_expr(expr: pl.Expr) -> pl.Expr:
    """A date from an Excel serial (45123, 45123.0), dd/mm/yyyy, dd-mm-yyyy, dd.mm.yyyy,
    yyyy-mm-dd or yyyy/mm/dd (any digits, an optional trailing time); null otherwise or when
    impossible (31/02) or outside 1900-2100."""
    text = clean_expr(expr).str.replace(r"[ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$", "")
    serial = (
        pl.when(text.str.contains(r"^\d{1,6}(\.0*)?$"))
        .then(text.str.extract(r"^(\d+)", 1).cast(pl.Int64, strict=False))
        .otherwise(None)
    )
    from_serial = pl.lit(EXCEL_EPOCH) + pl.duration(days=serial)
    slashed = text.str.replace_all(r"[\-.]", "/")
    dmy = pl.when(slashed.str.contains(r"^\d{1,2}/\d{1,2}/\d{4}$")).then(
        slashed.str.to_date("%d/%m/%Y", strict=False)
    )
    ymd = pl.when(slashed.str.contains(r"^\d{4}/\d{1,2}/\d{1,2}$")).then(
        slashed.str.to_date("%Y/%m/%d", strict=False)
    )
    value = pl.coalesce(from_serial.cast(pl.Date), dmy, ymd)
    return pl.when(value.is_between(pl.lit(MIN_DATE), pl.lit(MAX_DATE))).then(value)


def decimal_expr(expr: pl.Expr) -> pl.Expr:
    """A decimal number with a point, a decimal comma or the Arabic separators ٫ and ،; null
    otherwise (no exponent, no inf / nan)."""
    text = clean_expr(expr).str.replace_all(r"[,\x{066b}\x{060c}]", ".").str.replace_all(" ", "")
    valid = text.str.contains(r"^[+-]?(\d+\.?\d*|\.\d+)$")
    return pl.when(valid).then(text.cast(pl.Float64, strict=False))


def integer_expr(expr: pl.Expr) -> pl.Expr:
    """A whole number ≥ 0 (``12``, ``12.0``, ``١٢``); null otherwise."""
    text = clean_expr(expr).str.replace_all(" ", "")
    valid = text.str.contains(r"^\d{1,18}(\.0*)?$")
    return pl.when(valid).then(text.str.extract(r"^(\d+)", 1).cast(pl.Int64, strict=False))


def _label_map(synonyms: Mapping[Any, Sequence[str]]) -> dict[str, object]:
    return {match_key(label): value for value, labels in synonyms.items() for label in labels}


def label_expr(
    expr: pl.Expr, mapping: Mapping[str, object], dtype: pl.DataType | type[pl.DataType]
) -> pl.Expr:
    """The value of a label matched by match_key against ``mapping`` (key → value); null
    when unknown."""
    return match_key_expr(expr).replace_strict(
        list(mapping), list(mapping.values()), default=None, return_dtype=dtype
    )


# ---- per column ------------------------------------------------------------------------------


def _apply(series: pl.Series, build: Callable[[pl.Expr], pl.Expr]) -> pl.Series:
    return pl.DataFrame({"v": series}).select(build(pl.col("v"))).to_series()


def _constant(series: pl.Series, build: Callable[[pl.Expr], pl.Expr]) -> pl.Series | None:
    """``build`` evaluated once when the column repeats one value (file metadata)."""
    if series.len() < _PER_VALUE_MIN_ROWS or series.null_count():
        return None
    first = series[0]
    if not (series == first).all():
        return None
    value = _apply(pl.Series([first], dtype=series.dtype), build)
    return pl.repeat(value[0], series.len(), dtype=value.dtype, eager=True)


def _per_value(series: pl.Series, build: Callable[[pl.Expr], pl.Expr]) -> pl.Series | None:
    """``build`` evaluated once per distinct value and spread back, when values repeat a lot."""
    n = series.len()
    if n < _PER_VALUE_MIN_ROWS:
        return None
    constant = _constant(series, build)
    if constant is not None:
        return constant
    if cast(int, series.approx_n_unique()) * 4 > n:
        return None
    distinct = series.drop_nulls().unique()
    mapped = _apply(distinct, build)
    if distinct.len() == 0:
        return pl.Series(series.name, [None] * n, dtype=mapped.dtype)
    if distinct.len() == 1:
        return _apply(series, lambda v: pl.when(v.is_not_null()).then(pl.lit(mapped[0])))
    codes = series.cast(pl.Enum(distinct)).to_physical()
    return mapped.gather(codes)


def apply_per_value(series: pl.Series, build: Callable[[pl.Expr], pl.Expr]) -> pl.Series:
    """``build`` over a column, evaluated once per distinct value when values repeat."""
    result = _per_value(series, build)
    return _apply(series, build) if result is None else result


# A code that needs no cleaning: ASCII upper-case letters, digits and the separators of codes.
_CLEAN_CODE = r"^[0-9A-Z][0-9A-Z/.\-]*$"


def code_key(series: pl.Series) -> pl.Series:
    """code_key_expr over a column; rows that are already clean are taken as they are."""
    result = _constant(series, code_key_expr)
    if result is not None:
        return result
    dirty = ~series.str.contains(_CLEAN_CODE).fill_null(True)
    return _patch(series, dirty, code_key_expr)


def _patch(
    quick: pl.Series, dirty: pl.Series, build: Callable[[pl.Expr], pl.Expr], source=None
) -> pl.Series:
    """``quick`` with the ``dirty`` rows replaced by ``build`` of ``source`` (default: quick)."""
    if not dirty.any():
        return quick
    source = quick if source is None else source
    where = dirty.arg_true()
    if where.len() * 4 > quick.len():
        return _apply(source, build).cast(quick.dtype)
    return quick.clone().scatter(where, _apply(source.gather(where), build).cast(quick.dtype))


def integer_column(series: pl.Series) -> pl.Series:
    """integer_expr over a column; plain digits are cast directly."""
    result = _constant(series, integer_expr)
    if result is not None:
        return result
    quick = series.cast(pl.Int64, strict=False)
    dirty = (quick.is_null() & series.is_not_null()) | (quick < 0).fill_null(False)
    return _patch(quick, dirty, integer_expr, series)


_SEX = _label_map(SEX_SYNONYMS)
_YES_NO = _label_map(YES_NO_SYNONYMS)
_ABSENCE = _label_map(ABSENCE_SYNONYMS)
_SEMESTER = _label_map(SEMESTER_SYNONYMS)


def builder(item: Field) -> Callable[[pl.Expr], pl.Expr] | None:
    """The expression that computes a field's typed column from its original text."""
    kind = item.kind
    if kind == "code":
        return code_key_expr
    if kind == "date":
        return date_expr
    if kind == "decimal":
        return decimal_expr
    if kind == "integer":
        return integer_expr
    if kind == "sex":
        return lambda e: label_expr(e, _SEX, pl.Utf8)
    if kind in ("yes_no", "boolean"):
        return lambda e: label_expr(e, _YES_NO, pl.Boolean)
    if kind == "absence":
        return lambda e: label_expr(e, _ABSENCE, pl.Utf8)
    if kind == "semester":
        return lambda e: label_expr(e, _SEMESTER, pl.Int8)
    if kind == "label":
        mapping = {match_key(value): value for value in item.values}
        return lambda e: label_expr(e, mapping, pl.Utf8)
    return None


def _dataset_name(dataset: str | ds.Dataset) -> str:
    name = dataset.name if isinstance(dataset, ds.Dataset) else dataset
    if name not in ds.DATASETS:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(ds.DATASETS)}")
    return name


def with_original_columns(dataset: str | ds.Dataset, frame: pl.DataFrame) -> pl.DataFrame:
    """The frame with every validated column present as Utf8 (absent optional columns all
    null, non-text columns cast to text) and the provenance columns sheet / sheet_row."""
    name = _dataset_name(dataset)
    fixes = []
    schema = frame.schema
    for item in fields(name):
        if item.name not in schema:
            fixes.append(pl.lit(None, pl.Utf8).alias(item.name))
        elif schema[item.name] != pl.Utf8:
            fixes.append(_as_text(pl.col(item.name), schema[item.name]).alias(item.name))
    if "sheet" not in schema:
        fixes.append(pl.lit("", pl.Utf8).alias("sheet"))
    if "sheet_row" not in schema:
        fixes.append(pl.lit(None, pl.Int64).alias("sheet_row"))
    elif schema["sheet_row"] != pl.Int64:
        fixes.append(pl.col("sheet_row").cast(pl.Int64, strict=False))
    return frame.with_columns(fixes) if fixes else frame


def _as_text(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if dtype == pl.Date:
        return expr.dt.strftime("%d/%m/%Y")
    if dtype.is_float():
        # shortest decimal, 12.0 → "12" (what a reader renders for a numeric cell)
        return (
            pl.when(expr == expr.round(0))
            .then(expr.cast(pl.Int64).cast(pl.Utf8))
            .otherwise(expr.cast(pl.Utf8))
        )
    return expr.cast(pl.Utf8)


# Texts whose typed value a cheap expression gives exactly (the costly builders run on the
# other rows only): ASCII dates d/m/yyyy or d-m-yyyy, plain decimals.
_CLEAN_DATE = r"^[0-9]{1,2}[/\-][0-9]{1,2}[/\-][0-9]{4}$"
_CLEAN_DECIMAL = r"^[0-9]{1,15}(\.[0-9]{1,15})?$"
_LABEL_SYNONYMS: dict[str, Mapping[Any, Sequence[str]]] = {
    "sex": SEX_SYNONYMS,
    "yes_no": YES_NO_SYNONYMS,
    "boolean": YES_NO_SYNONYMS,
    "absence": ABSENCE_SYNONYMS,
    "semester": SEMESTER_SYNONYMS,
}


@cache
def _known_labels(item: Field) -> dict[str, object]:
    """Label texts as schools usually write them (the synonyms or the declared values, and
    their match keys) → their typed value, computed with the field's builder itself."""
    synonyms = _LABEL_SYNONYMS.get(item.kind)
    labels = [label for group in synonyms.values() for label in group] if synonyms else []
    labels += list(item.values)
    texts = list(dict.fromkeys(labels + [match_key(label) for label in labels]))
    if not texts:
        return {}
    values = _apply(pl.Series(texts, dtype=pl.Utf8), _full(item)).cast(_column_of(item)[1])
    return {
        text: value
        for text, value in zip(texts, values.to_list(), strict=True)
        if value is not None
    }


def _quick(item: Field) -> tuple[pl.Expr, pl.Expr]:
    """(value, needs_full) of a field's typed column: ``value`` is the typed value wherever
    ``needs_full`` is False; elsewhere the field's builder must run (``_full``). Together they
    give exactly the values of ``normalise_by_column``."""
    text = pl.col(item.name)
    value, dirty = _quick_value(item, text), _dirty(item, text)
    if item.kind == "integer":
        # integer_column: integer_expr on the dirty rows, on every row when they are more than
        # a quarter, or when the column repeats one value on a large frame (_constant).
        return value, dirty | (dirty.sum() * 4 > pl.len()) | _integer_constant(text)
    return value, dirty


def _integer_constant(text: pl.Expr) -> pl.Expr:
    """True when integer_column computes the column once (_constant: a large frame, one value)."""
    return (
        (pl.len() >= _PER_VALUE_MIN_ROWS) & (text.null_count() == 0) & (text == text.first()).all()
    )


def _any_needs_full(item: Field, large: bool) -> pl.Expr:
    """One boolean: whether ``_quick``'s needs_full is True on some row. Whether a row is dirty
    depends on its text alone, so on a large frame it is asked of each distinct text once (a
    school's marks: 27 k rows, a few hundred pupils' codes and birth dates, a few classes and
    subjects; runs of equal texts are taken first, which is cheaper than hashing every row)."""
    text = pl.col(item.name)
    if not large:
        return _dirty(item, text).any()
    dirty = _dirty(item, text.rle().struct.field("value").unique()).any()
    return dirty | _integer_constant(text) if item.kind == "integer" else dirty


def _dirty(item: Field, text: pl.Expr) -> pl.Expr:
    """Per text, True where ``_quick_value`` is not the typed value (the builder must run)."""
    kind = item.kind
    if kind == "code":  # code_key: clean codes are code_key_expr's fixed points
        return ~text.str.contains(_CLEAN_CODE).fill_null(True)
    if kind == "integer":  # the direct cast where it gives a whole number ≥ 0
        quick = text.cast(pl.Int64, strict=False)
        return (quick.is_null() & text.is_not_null()) | (quick < 0).fill_null(False)
    if kind == "date":
        return ~text.str.contains(_CLEAN_DATE).fill_null(True)
    if kind == "decimal":
        return ~text.str.contains(_CLEAN_DECIMAL).fill_null(True)
    known = _known_labels(item)
    if known:
        return ~(text.is_null() | text.is_in(list(known)))
    return text.is_null() | text.is_not_null()


def _quick_value(item: Field, text: pl.Expr) -> pl.Expr:
    """The typed value of a text wherever ``_dirty`` is False."""
    kind = item.kind
    if kind == "code":
        return text
    if kind == "integer":
        return text.cast(pl.Int64, strict=False)
    if kind == "date":
        value = text.str.replace_all("-", "/", literal=True).str.to_date("%d/%m/%Y", strict=False)
        return pl.when(value.is_between(pl.lit(MIN_DATE), pl.lit(MAX_DATE))).then(value)
    if kind == "decimal":
        return text.cast(pl.Float64, strict=False)
    known = _known_labels(item)
    if known:
        return text.replace_strict(known, default=None, return_dtype=item.dtype)
    return pl.repeat(None, pl.len(), dtype=item.dtype)


def _full(item: Field) -> Callable[[pl.Expr], pl.Expr]:
    """The builder the rows not covered by ``_quick`` go through."""
    if item.kind == "code":
        return code_key_expr
    if item.kind == "integer":
        return integer_expr
    build = builder(item)
    if build is None:  # _jobs keeps only the fields that have one
        raise ValueError(f"the column {item.name} is not normalised")
    return build


def _column_of(item: Field) -> tuple[str, type[pl.DataType]]:
    """The typed column of a normalised field and its type (_jobs keeps only such fields)."""
    if item.typed is None or item.dtype is None:
        raise ValueError(f"the column {item.name} has no typed column")
    return item.typed, item.dtype


@cache
def _quick_exprs(name: str, large: bool) -> tuple[pl.Expr, ...]:
    """Per typed column of a dataset: its quick value where the select computes it
    (``_in_select``) and whether some row needs the full normalisation (built once)."""
    exprs = []
    for i, item in enumerate(_jobs(name)):
        if _in_select(item, large):
            typed, dtype = _column_of(item)
            exprs.append(_quick_value(item, pl.col(item.name)).cast(dtype).alias(typed))
        exprs.append(_any_needs_full(item, large).alias(f"_full{i}"))
    return tuple(exprs)


def _in_select(item: Field, large: bool) -> bool:
    """Whether the select computes a field's quick value on every row: always on a small frame,
    and codes and numbers (a cast at most) on a large one, whose dates and labels are computed
    per run of equal texts (``_by_runs``)."""
    return not large or item.kind in ("code", "integer", "decimal") or not _known_labels(item)


# Below this many texts, a label is looked up in a dict: polars' replace_strict costs ~0.1 ms
# however few the texts (~0.1 us a text in Python).
_LOOKUP_MAX_TEXTS = 1000


def _by_runs(item: Field, series: pl.Series) -> pl.Series:
    """A date or label column's quick value computed once per run of equal texts and spread
    back, when the runs are long (a dataset's files stacked: their metadata repeated on every
    row, a pupil's rows of a marks sheet); among the runs, dates are parsed once per distinct
    text and few labels looked up in a dict. The quick value depends on the text alone."""
    typed, dtype = _column_of(item)
    build = _quick_builder(item)
    runs = series.rle().struct.field("value")
    if runs.len() * 4 > series.len():
        return _apply(series, build).cast(dtype).alias(typed)
    if item.kind != "date" and runs.len() <= _LOOKUP_MAX_TEXTS:
        known = _known_labels(item)
        values = pl.Series(typed, [known.get(text) for text in runs.to_list()], dtype=dtype)
    else:
        values = apply_per_value(runs, build).cast(dtype)
    return values.gather(series.rle_id()).alias(typed)


@cache
def _quick_builder(item: Field) -> Callable[[pl.Expr], pl.Expr]:
    return partial(_quick_value, item)


@cache
def _jobs(name: str) -> tuple[Field, ...]:
    return tuple(item for item in fields(name) if item.typed is not None and builder(item))


def normalise(dataset: str | ds.Dataset, frame: pl.DataFrame) -> pl.DataFrame:
    """The read frame with the typed columns of schemas/models.py added (originals kept).

    One select computes every typed column where a cheap expression is exact (clean codes,
    plain numbers and dates, labels written as declared; on a large frame, dates and labels
    once per run of equal texts: ``_by_runs``) and tells the columns where some text needs
    more (on a large frame, asked of each distinct text); the full normalisation runs on those
    rows only. Very large frames go column by column (``normalise_by_column``, threads). Both
    give the same values."""
    name = _dataset_name(dataset)
    frame = with_original_columns(name, frame)
    if frame.height >= _PARALLEL_MIN_ROWS:
        return normalise_by_column(name, frame)
    jobs = _jobs(name)
    large = frame.height >= _PER_VALUE_MIN_ROWS
    quick = frame.select(_quick_exprs(name, large))
    first = quick.row(0, named=True) if jobs and frame.height else None
    dirty = [bool(first and first[f"_full{i}"]) for i in range(len(jobs))]
    columns = []
    for i, item in enumerate(jobs):
        typed, dtype = _column_of(item)
        if _in_select(item, large):
            value = quick.get_column(typed)
        else:
            value = _by_runs(item, frame.get_column(item.name))
        if dirty[i]:
            rows = frame.select(_quick(item)[1]).to_series().arg_true()
            source = frame.get_column(item.name)
            build = _full(item)
            if rows.len() == frame.height:
                value = apply_per_value(source, build).cast(dtype)
            else:
                full = apply_per_value(source.gather(rows), build).cast(dtype)
                value = value.scatter(rows, full)
        columns.append(value.alias(typed))
    return frame.with_columns(columns)


def normalise_by_column(dataset: str | ds.Dataset, frame: pl.DataFrame) -> pl.DataFrame:
    """``normalise`` column by column: constant columns computed once, repeated values once per
    distinct value, clean codes and plain integers taken as they are (large frames)."""
    name = _dataset_name(dataset)
    frame = with_original_columns(name, frame)
    jobs = _jobs(name)

    def typed(item: Field) -> pl.Series:
        source = frame.get_column(item.name)
        if item.kind == "code":
            column = code_key(source)
        elif item.kind == "integer":
            column = integer_column(source)
        else:
            column = apply_per_value(source, _full(item))
        typed, dtype = _column_of(item)
        return column.cast(dtype).alias(typed)

    if frame.height >= _PARALLEL_MIN_ROWS and len(jobs) > 1:
        # polars releases the GIL: the columns are normalised side by side.
        with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
            columns = list(pool.map(typed, jobs))
    else:
        columns = [typed(item) for item in jobs]
    return frame.with_columns(columns)


def is_normalised(dataset: str | ds.Dataset, frame: pl.DataFrame) -> bool:
    name = _dataset_name(dataset)
    return all(item.typed is None or item.typed in frame.columns for item in fields(name))


def ensure_normalised(dataset: str | ds.Dataset, frame: pl.DataFrame) -> pl.DataFrame:
    """Normalise a frame unless it already carries the typed columns (staged frames do)."""
    return frame if is_normalised(dataset, frame) else normalise(dataset, frame)

"""Pandera (polars backend) models of every dataset, derived from schemas/datasets.py.

The models validate the NORMALISED frame (tasks/normalise.py): the reader's original text columns
plus the typed columns normalisation adds next to them. Naming of the typed columns is decided
here, once, and normalisation follows it:

- code → ``<name>_key`` Utf8: cleaned, upper case, null when blank;
- date → ``<name>_value`` Date; decimal → ``<name>_value`` Float64;
  integer → ``<name>_value`` Int64;
- label: sex (ذكر / أنثى) → ``sex_value`` Utf8 ``M`` / ``F``; yes / no (نعم / لا) →
  ``<name>_value`` Boolean; marks absence (مبرر) → ``absence_value`` Utf8 ``justified``;
  any other label → ``<name>_value`` Utf8, the declared label as written in datasets.py;
- marks ``semester`` (1 / 2) → ``semester_value`` Int8;
- text, and the marks ``slot`` (test1..activities): no typed column, kept as read.

Every check is named by the rule id of schemas/rules.csv that its failure reports (R001-R010), so a
pandera failure case maps straight to a finding; the severity comes from the catalogue. The
duplicate rule R007 needs a window over several key columns and its first occurrence: it is
computed in tasks/validate.py with polars expressions, as are the cross-record X rules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import TYPE_CHECKING

import polars as pl

from schemas import datasets as ds
from schemas.rules import catalogue

if TYPE_CHECKING:  # pandera (and the pandas it imports: ~0.75 s of CPU) only when a model is
    # built: a clean frame never reaches pandera (tasks/validation/model_check.py), so an
    # ingest worker without a failing row never pays for it.
    import pandera.polars as pa
    from pandera.api.polars.types import PolarsData

# Characters that do not make a value non-blank: whitespace, tatweel and the invisible marks
# clean_text removes.
INVISIBLE_CLASS = r"\s\x{0640}\x{200b}-\x{200f}\x{202a}-\x{202e}\x{2066}-\x{2069}\x{feff}\x{00ad}"
BLANK_PATTERN = rf"^[{INVISIBLE_CLASS}]*$"

# An example of each declared code pattern, for the {expected} placeholder of R008 / R009.
PATTERN_EXAMPLES: dict[str, str] = {
    ds.STUDENT_CODE: "K100000123",
    ds.SCHOOL_CODE: "27783Y",
    ds.SUBJECT_CODE: "0030",
    ds.CLASS_CODE: "1APIC-1",
    ds.SCHOOL_YEAR: "2023/2024",
    ds.CIN: "BE123456",
    ds.CNSS_NUMBER: "123456789",
}

# Marks rows carry, besides the declared columns, the technical metadata of the NotesCC sheet
# (docs/decisions/0002-ingest-frames.md). Their labels are those a school recognises.
MARKS_EXTRA = (
    ds.Column("school_code", "رمز المؤسسة", "code", "School code (C5)", pattern=ds.SCHOOL_CODE),
    ds.Column("subject_code", "رمز المادة", "code", "Subject code (K5)", pattern=ds.SUBJECT_CODE),
    ds.Column("semester", "الدورة", "integer", "Semester 1 or 2", values=("1", "2")),
    ds.Column("level_code", "رمز المستوى", "code", "Internal level code (O5)", required=False),
)
MARK_SLOT_NAMES: tuple[str, ...] = tuple(slot for slot, _, _ in ds.MARK_SLOTS)
JUSTIFIED = "justified"

# Identifiers that only a partner fund needs: malformed is a query (R009), not an error.
QUERY_IDENTIFIERS = {("guardians", "guardian_cin"), ("guardians", "cnss_number")}

# Integer ranges (inclusive) beyond "a whole number >= 0".
INTEGER_RANGES: dict[str, tuple[int, int | None]] = {
    "slot": (1, 8),
    "semester": (1, 2),
    "capacity": (1, None),
    "row_number": (1, None),
}
DEFAULT_SCALE = 20
# The mark scale of each row (10 or 20), a column validation adds before the model runs.
MARK_SCALE = "mark_scale"
_OK = "ok"
# Columns declared without a header of their own (the marks slot comes from the header pair).
_FALLBACK_HEADERS = {"slot": "الفرض"}


@dataclass(frozen=True)
class Field:
    """A column of a dataset as validation sees it: the original text and its typed column."""

    dataset: str
    name: str  # the original (Utf8) column of the read frame
    header_ar: str  # the column name a finding shows
    kind: str  # datasets.Kind, or "sex", "yes_no", "semester", "slot" for special labels
    typed: str | None  # the typed column normalisation adds, None when kept as text
    dtype: type[pl.DataType] | None
    required: bool
    pattern: str | None
    values: tuple[str, ...]
    metadata: bool

    @property
    def checked(self) -> str:
        """The column the checks of this field are attached to."""
        return self.typed or self.name


def _special_kind(dataset: str, column: ds.Column) -> str:
    if column.kind == "label":
        if column.values == ds.SEX_LABELS:
            return "sex"
        if column.values == ds.YES_NO:
            return "yes_no"
        if dataset == "marks" and column.name == "slot":
            return "slot"
        if dataset == "marks" and column.name == "absence":
            return "absence"
    if dataset == "marks" and column.name == "semester":
        return "semester"
    return column.kind


_TYPED: dict[str, tuple[str, type[pl.DataType]] | None] = {
    "code": ("_key", pl.Utf8),
    "date": ("_value", pl.Date),
    "decimal": ("_value", pl.Float64),
    "integer": ("_value", pl.Int64),
    "sex": ("_value", pl.Utf8),
    "yes_no": ("_value", pl.Boolean),
    "absence": ("_value", pl.Utf8),
    "label": ("_value", pl.Utf8),
    "semester": ("_value", pl.Int8),
    "slot": None,
    "text": None,
    "boolean": ("_value", pl.Boolean),
}


@cache
def fields(dataset: str) -> tuple[Field, ...]:
    """The validated columns of a dataset: its declared columns, then the metadata columns
    the reader repeats on every row (and, for marks, the NotesCC technical metadata)."""
    declaration = ds.DATASETS[dataset]
    out: dict[str, Field] = {}
    extra = MARKS_EXTRA if dataset == "marks" else ()
    for column, is_metadata in (
        [(c, False) for c in declaration.columns]
        + [(c, True) for c in declaration.metadata]
        + [(c, True) for c in extra]
    ):
        if column.name in out:
            continue
        kind = _special_kind(dataset, column)
        typed = _TYPED[kind]
        # Text metadata (academy, school name, teacher...) informs; a missing one blocks nothing.
        required = column.required and not (is_metadata and kind == "text")
        out[column.name] = Field(
            dataset=dataset,
            name=column.name,
            header_ar=column.header_ar or _FALLBACK_HEADERS.get(column.name, column.name),
            kind=kind,
            typed=None if typed is None else column.name + typed[0],
            dtype=None if typed is None else typed[1],
            required=required,
            pattern=column.pattern,
            values=MARK_SLOT_NAMES if kind == "slot" else column.values,
            metadata=is_metadata,
        )
    return tuple(out.values())


def field(dataset: str, name: str) -> Field:
    for item in fields(dataset):
        if item.name == name:
            return item
    raise KeyError(f"{dataset} has no validated column {name!r}")


def typed_name(dataset: str, name: str) -> str:
    """The column holding the normalised value of ``name`` (itself when kept as text)."""
    return field(dataset, name).checked


def is_mark(item: Field) -> bool:
    return item.kind == "decimal" and item.name == "mark"


def blank(column: str) -> pl.Expr:
    """Null, empty, or only whitespace / tatweel / invisible marks."""
    col = pl.col(column)
    return col.is_null() | col.str.contains(BLANK_PATTERN)


def allowed_text(item: Field) -> str:
    """What the {allowed} placeholder shows for a field."""
    if item.values:
        return "، ".join(item.values)
    low, high = INTEGER_RANGES.get(item.name, (0, None))
    if item.kind == "decimal":
        return "≥ 0"
    return f"{low}-{high}" if high is not None else f"≥ {low}"


def expected_text(item: Field) -> str:
    if item.pattern is None:
        return "…"
    return PATTERN_EXAMPLES.get(item.pattern, item.pattern)


# ---- the checks ------------------------------------------------------------------------------
# A check function receives pandera's PolarsData (the whole lazy frame and the key of the column
# it is attached to) and returns one boolean column: True where the row passes. Null passes
# (ignore_na), so a blank value is reported once, by R005, and not again by the format rules.


Build = Callable[[str], pl.Expr]


@dataclass(frozen=True)
class RowCheck:
    """One check of a model, defined once: the pandera check (``check()``, named by its rule
    id) and the same verdict as polars expressions over the whole frame (``passes()`` per row,
    ``cleared()`` a cheap sufficient condition for every row passing), used by validation to
    run pandera's detailed pass only where something fails.

    ``full(key)`` is True where the row passes; ``shortcut(key)``, when given, is a cheap
    sufficient condition for passing; ``pattern``, when given, marks a code pattern check whose
    shortcut is "equal to the column's first value, which matches" (metadata columns repeat one
    value). Null passes (pandera's ``ignore_na``)."""

    column: str  # the checked column (the typed one when there is one)
    rule_id: str
    full: Build
    shortcut: Build | None = None
    pattern: str | None = None

    def passes(self) -> pl.Expr:
        """Per row, True where pandera's check passes (null counts as a pass)."""
        full = self.full(self.column)
        if self.shortcut is not None:
            full = self.shortcut(self.column).fill_null(False) | full
        return full.fill_null(True)

    def quick(self) -> pl.Expr | None:
        """Per row, a cheap sufficient condition for passing (None: ``passes()`` is cheap)."""
        key = pl.col(self.column)
        if self.pattern is not None:
            first = key.drop_nulls().first()
            quick = key.is_null() | ((key == first) & first.str.contains(self.pattern))
            return quick.fill_null(False)
        if self.shortcut is not None:
            return self.shortcut(self.column).fill_null(False)
        return None

    def cleared(self) -> pl.Expr:
        """One boolean: True only if every row passes (False may still mean all pass). A code
        pattern check is cleared when each distinct code of the column matches, which is
        exactly every row passing (the check is the pattern, null passes): its row shortcut,
        the column's first value repeated, clears metadata columns only, and a school's
        pupils', classes' and subjects' codes went on to the row by row pass on every clean
        frame (a school's marks: ~1.5-2.5 ms)."""
        if self.pattern is not None:
            return pl.col(self.column).drop_nulls().unique().str.contains(self.pattern).all()
        quick = self.quick()
        return (self.passes() if quick is None else quick).all()

    def check(self) -> pa.Check:
        import pandera.polars as pa

        entry = catalogue()[self.rule_id]
        statistics = {"rule_id": self.rule_id, "severity": entry.severity}
        if self.pattern is not None:
            statistics["pattern"] = self.pattern
            run = _pattern_run(self.pattern)
        else:
            full, shortcut = self.full, self.shortcut

            def run(data: PolarsData) -> pl.LazyFrame:
                return _evaluate(data, full, shortcut)

        return pa.Check(
            run,
            name=self.rule_id,
            title=entry.title_en,
            description=f"{entry.severity}: {entry.title_en}",
            statistics=statistics,
        )


def _evaluate(data: PolarsData, full: Build, shortcut: Build | None) -> pl.LazyFrame:
    """One boolean column, True where the row passes ``full``. With a ``shortcut`` (a cheap
    sufficient condition for passing), ``full`` is computed only on the rows the shortcut does
    not clear: on a clean column the costly part (regular expressions over text) never runs."""
    frame = data.lazyframe
    if shortcut is None:
        return frame.select(full(data.key).alias(_OK))
    quick = frame.select(shortcut(data.key).fill_null(False).alias(_OK)).collect().to_series()
    todo = (~quick).arg_true()
    if todo.len() == 0:
        return quick.to_frame().lazy()
    if todo.len() * 4 > quick.len():
        return frame.select((shortcut(data.key).fill_null(False) | full(data.key)).alias(_OK))
    expr = full(data.key)
    needed = [pl.col(name).gather(todo) for name in dict.fromkeys(expr.meta.root_names())]
    rest = frame.select(needed).select(expr.alias(_OK)).collect()
    return quick.scatter(todo, rest.to_series()).to_frame().lazy()


def _pattern_run(pattern: str) -> Callable[[PolarsData], pl.LazyFrame]:
    """The key matches ``pattern``; rows equal to the first value are judged once (metadata
    columns repeat one value on every row)."""

    def run(data: PolarsData) -> pl.LazyFrame:
        key = pl.col(data.key)
        first = data.lazyframe.select(key.drop_nulls().first()).collect().item()
        if first is not None and pl.select(pl.lit(first).str.contains(pattern)).item():
            return _evaluate(
                data,
                lambda k: pl.col(k).str.contains(pattern),
                lambda k: pl.col(k).is_null() | (pl.col(k) == pl.lit(first)),
            )
        return _evaluate(data, lambda k: pl.col(k).str.contains(pattern), None)

    return run


def _required(item: Field) -> RowCheck:
    if item.kind == "code":  # the key is null exactly when the text is blank
        return RowCheck(item.checked, "R005", lambda key: pl.col(key).is_not_null())
    if item.typed is None:
        return RowCheck(item.checked, "R005", lambda key: ~blank(item.name))
    return RowCheck(
        item.checked,
        "R005",
        lambda key: pl.col(key).is_not_null() | ~blank(item.name),
        lambda key: pl.col(key).is_not_null(),
    )


def _parsed(rule_id: str, item: Field) -> RowCheck:
    """The typed value exists wherever the original text is not blank."""
    return RowCheck(
        item.checked,
        rule_id,
        lambda key: pl.col(key).is_not_null() | blank(item.name),
        lambda key: pl.col(key).is_not_null() | pl.col(item.name).is_null(),
    )


def _in_range(rule_id: str, item: Field, low, high) -> RowCheck:
    def build(key: str) -> pl.Expr:
        col = pl.col(key)
        ok = col >= low
        if high is not None:
            ok = ok & (col <= high)
        return ok

    return RowCheck(item.checked, rule_id, build)


def _checks(item: Field, school_code: str | None) -> list[RowCheck]:
    checks: list[RowCheck] = []
    if item.required:
        checks.append(_required(item))
    kind = item.kind
    column = item.checked
    if kind == "code" and item.name == "school_code" and school_code is not None:
        checks.append(
            RowCheck(column, "R002", lambda key: pl.col(key) == pl.lit(school_code, pl.Utf8))
        )
    elif kind == "code" and item.pattern:
        rule_id = (
            "R001"
            if item.pattern == ds.STUDENT_CODE
            else "R009"
            if (item.dataset, item.name) in QUERY_IDENTIFIERS
            else "R008"
        )
        pattern = item.pattern
        checks.append(
            RowCheck(column, rule_id, lambda key: pl.col(key).str.contains(pattern), None, pattern)
        )
    elif kind == "date":
        checks.append(_parsed("R004", item))
    elif kind == "decimal" and is_mark(item):

        def in_scale(key: str) -> pl.Expr:
            value = pl.col(key)
            return ((value >= 0) & (value <= pl.col(MARK_SCALE))).fill_null(False)

        checks.append(
            RowCheck(
                column,
                "R003",
                lambda key: in_scale(key) | (pl.col(key).is_null() & blank(item.name)),
                lambda key: in_scale(key) | pl.col(item.name).is_null(),
            )
        )
    elif kind == "decimal":
        checks.append(_parsed("R006", item))
        checks.append(_in_range("R006", item, 0, None))
    elif kind in ("integer", "semester"):
        checks.append(_parsed("R006", item))
        low, high = INTEGER_RANGES.get(item.name, (0, None))
        checks.append(_in_range("R006", item, low, high))
    elif kind in ("label", "sex", "yes_no", "absence"):
        checks.append(_parsed("R006", item))
    elif kind == "slot":
        names = list(item.values)
        checks.append(RowCheck(column, "R006", lambda key: pl.col(key).is_in(names)))
    if item.dataset == "marks" and is_mark(item):
        # R010 (query): a mark entered although the absence at that test is justified.
        checks.append(
            RowCheck(
                column,
                "R010",
                lambda key: (
                    ~(pl.col(key).is_not_null() & (pl.col("absence_value") == JUSTIFIED)).fill_null(
                        False
                    )
                ),
            )
        )
    return checks


PROVENANCE = {"sheet": pl.Utf8, "sheet_row": pl.Int64}


@cache
def column_types(dataset: str) -> dict[str, type[pl.DataType]]:
    """Every column of the dataset's model and its polars type, in the model's order."""
    columns: dict[str, type[pl.DataType]] = dict(PROVENANCE)
    for item in fields(dataset):
        columns[item.name] = pl.Utf8
        if item.typed is not None and item.dtype is not None:  # both or neither (fields)
            columns[item.typed] = item.dtype
    if any(is_mark(item) for item in fields(dataset)):
        columns[MARK_SCALE] = pl.Float64
    return columns


@lru_cache(maxsize=1024)
def row_checks(dataset: str, school_code: str | None = None) -> tuple[RowCheck, ...]:
    """The checks of the dataset's model, in the model's order (column, then check)."""
    return tuple(check for item in fields(dataset) for check in _checks(item, school_code))


@lru_cache(maxsize=1024)
def model(dataset: str, school_code: str | None = None) -> pa.DataFrameSchema:
    """The pandera schema of a dataset's normalised frame. With ``school_code``, R002 checks
    that every row's school code is the submitting school's."""
    import pandera.polars as pa

    checks: dict[str, list[pa.Check]] = {}
    for check in row_checks(dataset, school_code):
        checks.setdefault(check.column, []).append(check.check())
    columns = {
        name: pa.Column(dtype, nullable=True, checks=checks.get(name))
        for name, dtype in column_types(dataset).items()
    }
    return pa.DataFrameSchema(
        columns,
        name=dataset,
        strict=False,
        coerce=False,
        description=ds.DATASETS[dataset].title_fr,
    )


@lru_cache(maxsize=4096)
def model_of_columns(
    dataset: str, school_code: str | None, columns: tuple[str, ...]
) -> pa.DataFrameSchema:
    """The dataset's model restricted to ``columns`` (same checks, same order)."""
    return model(dataset, school_code).select_columns(list(columns))


def models(school_code: str | None = None) -> dict[str, pa.DataFrameSchema]:
    """The model of every dataset of schemas/datasets.py."""
    return {name: model(name, school_code) for name in ds.DATASETS}


def rules_of(dataset: str) -> dict[str, set[str]]:
    """Checked column → rule ids of its checks (for documentation and tests)."""
    schema = model(dataset, "00000A")
    return {
        name: {check.name for check in column.checks}
        for name, column in schema.columns.items()
        if column.checks
    }

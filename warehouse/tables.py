"""The warehouse tables of the public contract, declared once.

Each table names its columns in the domain's English words with their Arrow type and a one-line
doc, the dataset a school submits that feeds it, and a plain function that derives the table's
rows from one school's staged frame (warehouse/staging.py: the reader's text columns plus the
typed columns normalisation added: ``<col>_key`` clean codes, ``<col>_value`` typed values).

Rules every derivation follows:

- the typed columns are used, never the text a school typed (that stays in staging);
- every row keeps its provenance ``submission_id, sheet, sheet_row``, so a figure in the
  warehouse can be traced back to the cell a school sent;
- ``school_code`` is the school whose folder the file came from (validation rejected rows that
  disagree, R002); it is the partition column;
- a row of staging is a row of the table (no row is dropped or merged), so a table's row count
  for a school equals the ``rows_accepted`` of its active submissions;
- pupils' names and birth dates appear in ``students`` only (guardians' names in
  ``guardians``); every other table knows a pupil by ``student_code``;
- labels the platform computes with get stable English codes (``sex`` M/F, ``exam``,
  ``session``, ``relation``, ``day``, booleans); descriptive categories (room type, programme,
  incident, sanction) keep the label declared in schemas/datasets.py.

``schools`` is reference data: it comes from the control database, not from a submission.
``enrollments`` gets its ``status`` from the province-wide resolution in tasks/consolidate.py
(the derivation here says ``active``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

import polars as pl
import pyarrow as pa

from ground.utc import as_utc
from schemas import datasets as ds
from schemas.level_codes import level_code_expr

PROVENANCE = ("submission_id", "sheet", "sheet_row")
ENROLLMENT_STATUSES = ("active", "transferred_out")


@dataclass(frozen=True)
class WarehouseColumn:
    """One column of a warehouse table."""

    name: str
    type: pa.DataType
    doc: str
    nullable: bool = True

    @property
    def arrow(self) -> pa.Field:
        return pa.field(self.name, self.type, nullable=self.nullable)


# A frame holding several schools' staged rows names each row's school (the inbox folder its
# file came from) in this column (WarehouseTable.rows_of_schools); a school's own frame does not
# carry it, its school is SchoolContext.school_code.
ROW_SCHOOL = "_row_school"


@dataclass(frozen=True)
class SchoolContext:
    """What a derivation knows besides the staged frame: the school (its inbox folder), when
    each of its submissions arrived in the inbox, and for a student list the date it carries
    with where that date was read (``file name``, ``file metadata``, or ``arrival``: the day
    it arrived, when the export carries no date). For a frame of several schools (a
    ``ROW_SCHOOL`` column), ``school_code`` names them all, for messages, and the
    submissions are theirs."""

    school_code: str
    received_at: Mapping[int, datetime] = field(default_factory=dict)
    listed_on: Mapping[int, tuple[date, str]] = field(default_factory=dict)


Derive = Callable[[pl.DataFrame, SchoolContext], pl.DataFrame]


@dataclass(frozen=True)
class WarehouseTable:
    """A table of the warehouse: columns, source dataset and how its rows are derived."""

    name: str
    doc: str
    columns: tuple[WarehouseColumn, ...]
    dataset: str | None  # the dataset feeding it; None for reference data (schools)
    derive: Derive | None = None
    partitioned: bool = True  # by school_code

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([column.arrow for column in self.columns])

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    @property
    def partition_by(self) -> list[str] | None:
        return ["school_code"] if self.partitioned else None

    def column(self, name: str) -> WarehouseColumn:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"table {self.name} has no column {name!r}")

    def rows(self, frame: pl.DataFrame, context: SchoolContext) -> pa.Table:
        """The table's rows derived from one school's staged frame, with the table's schema."""
        if self.derive is None:
            raise TypeError(f"table {self.name} is reference data, not derived from staging")
        return self.to_arrow(self.derive(frame, context))

    def rows_of_schools(
        self, frames: Mapping[str, pl.DataFrame], context: SchoolContext
    ) -> dict[str, pa.Table]:
        """:meth:`rows` of several schools (``frames``: each school's staged frame; ``context``
        of all their submissions) derived in one pass, returned per school in the order of
        ``frames``: the same rows as one school at a time, a derivation's fixed cost (its
        polars calls and their mappings, ~1-3 ms) paid once instead of once a school."""
        if len(frames) == 1:
            ((code, frame),) = frames.items()
            return {code: self.rows(frame, replace(context, school_code=code))}
        schools = [
            frame.with_columns(pl.lit(code, pl.Utf8).alias(ROW_SCHOOL))
            for code, frame in frames.items()
        ]
        rows = self.rows(pl.concat(schools, how="diagonal_relaxed"), context)
        heights = [frame.height for frame in frames.values()]
        if rows.num_rows != sum(heights):  # every derivation keeps a row per staged row
            raise ValueError(f"table {self.name} derived {rows.num_rows} rows of {sum(heights)}")
        out: dict[str, pa.Table] = {}
        offset = 0
        for code, height in zip(frames, heights, strict=True):
            out[code] = rows.slice(offset, height)
            offset += height
        return out

    def to_arrow(self, frame: pl.DataFrame) -> pa.Table:
        """A polars frame holding the table's columns as an Arrow table of the table's schema."""
        missing = [name for name in self.names if name not in frame.columns]
        if missing:
            raise ValueError(f"rows for table {self.name} lack columns {', '.join(missing)}")
        return frame.select(self.names).to_arrow().cast(self.schema)

    def empty(self) -> pa.Table:
        return self.schema.empty_table()


# ---- columns shared by several tables ---------------------------------------------------------

STRING = pa.string()
SCHOOL = WarehouseColumn("school_code", STRING, "Massar code of the school (partition)", False)
YEAR = WarehouseColumn("school_year", STRING, "School year, e.g. 2023/2024")
STUDENT = WarehouseColumn("student_code", STRING, "Massar code of the pupil")
CLASS = WarehouseColumn("class_code", STRING, "Class, e.g. 1APIC-1")
SUBJECT = WarehouseColumn("subject_code", STRING, "Subject code, e.g. 0030")
LEVEL = WarehouseColumn("level_code", STRING, "Level code of levels.csv, e.g. 1APIC, TCSF")
PROVENANCE_COLUMNS = (
    WarehouseColumn("submission_id", pa.int64(), "Submission the row comes from", False),
    WarehouseColumn("sheet", STRING, "Sheet of the submitted workbook (empty for CSV)"),
    WarehouseColumn("sheet_row", pa.int64(), "Row number the school sees in the file (1-based)"),
)

EXAMS = {"محلي": "local", "إقليمي": "provincial", "جهوي": "regional", "وطني": "national"}
SESSIONS = {"عادية": "normal", "استدراكية": "makeup"}
RELATIONS = {"الأب": "father", "الأم": "mother", "الوصي": "guardian"}
DAYS = dict(
    zip(
        ds.TIMETABLE.column("day").values,
        ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday"),
        strict=True,
    )
)


# ---- expressions -----------------------------------------------------------------------------


def _col(
    frame: pl.DataFrame, name: str, dtype: pl.DataType | type[pl.DataType] = pl.Utf8
) -> pl.Expr:
    """A staged column, or nulls when the frame lacks it (an optional column never sent)."""
    if name in frame.columns:
        return pl.col(name).cast(dtype)
    return pl.lit(None, dtype)


def _text(frame: pl.DataFrame, name: str) -> pl.Expr:
    """A free-text column as the school wrote it, stripped; null when blank."""
    expr = _col(frame, name).str.strip_chars()
    return pl.when(expr.str.len_chars() > 0).then(expr)


def _coded(frame: pl.DataFrame, name: str, codes: Mapping[str, str]) -> pl.Expr:
    """A declared label (``<name>_value``) turned into its English code."""
    return _col(frame, f"{name}_value").replace_strict(
        dict(codes), default=None, return_dtype=pl.Utf8
    )


def _school(frame: pl.DataFrame, context: SchoolContext) -> pl.Expr:
    if ROW_SCHOOL in frame.columns:
        return pl.col(ROW_SCHOOL).alias("school_code")
    return pl.lit(context.school_code, pl.Utf8).alias("school_code")


def _provenance(frame: pl.DataFrame) -> list[pl.Expr]:
    return [
        _col(frame, "submission_id", pl.Int64).alias("submission_id"),
        pl.col("sheet").fill_null("") if "sheet" in frame.columns else pl.lit("").alias("sheet"),
        _col(frame, "sheet_row", pl.Int64).alias("sheet_row"),
    ]


# ---- derivations ------------------------------------------------------------------------------


def derive_classes(frame: pl.DataFrame, context: SchoolContext) -> pl.DataFrame:
    return frame.select(
        _school(frame, context),
        _col(frame, "school_year_key").alias("school_year"),
        _col(frame, "class_code_key").alias("class_code"),
        level_code_expr(frame).alias("level_code"),
        _text(frame, "level_label").alias("level_label"),
        _text(frame, "stream").alias("stream"),
        _col(frame, "room_code_key").alias("room_code"),
        _text(frame, "head_teacher").alias("head_teacher"),
        *_provenance(frame),
    )


def derive_rooms(frame: pl.DataFrame, context: SchoolContext) -> pl.DataFrame:
    return frame.select(
        _school(frame, context),
        _col(frame, "room_code_key").alias("room_code"),
        _text(frame, "room_name").alias("room_name"),
        _col(frame, "room_type_value").alias("room_type"),
        _col(frame, "capacity_value", pl.Int64).alias("capacity"),
        *_provenance(frame),
    )


def derive_students(frame: pl.DataFrame, context: SchoolContext) -> pl.DataFrame:
    return frame.select(
        _school(frame, context),
        _col(frame, "school_year_key").alias("school_year"),
        _col(frame, "student_code_key").alias("student_code"),
        _text(frame, "family_name").alias("family_name"),
        _text(frame, "first_name").alias("first_name"),
        _col(frame, "sex_value").alias("sex"),
        _col(frame, "birth_date_value", pl.Date).alias("birth_date"),
        _text(frame, "birthplace").alias("birthplace"),
        *_provenance(frame),
    )


def derive_enrollments(frame: pl.DataFrame, context: SchoolContext) -> pl.DataFrame:
    """One enrolment per pupil row of the school's list, dated by the list's arrival and by
    the date the list carries (``listed_on``: what decides between two schools listing the
    same pupil); ``status`` is ``active`` until the province resolution says otherwise."""
    received = {sid: as_utc(moment) for sid, moment in context.received_at.items()}
    sids = frame.get_column("submission_id").unique().to_list() if frame.height else []
    missing = [sid for sid in sids if sid not in received]
    if missing:
        raise ValueError(f"no reception time for submissions {missing} of {context.school_code}")
    dtype = pl.Datetime("us", "UTC")
    days = {sid: day for sid, (day, _) in context.listed_on.items()}
    sources = {sid: source for sid, (_, source) in context.listed_on.items()}
    return frame.select(
        _school(frame, context),
        _col(frame, "school_year_key").alias("school_year"),
        _col(frame, "class_code_key").alias("class_code"),
        level_code_expr(frame).alias("level_code"),
        _col(frame, "student_code_key").alias("student_code"),
        pl.col("submission_id")
        .replace_strict(received, default=None, return_dtype=dtype)
        .alias("enrolled_from"),
        pl.col("submission_id")
        .replace_strict(days, default=None, return_dtype=pl.Date)
        .alias("listed_on"),
        pl.col("submission_id")
        .replace_strict(sources, default=None, return_dtype=pl.Utf8)
        .alias("listed_on_source"),
        pl.lit("active", pl.Utf8).alias("status"),
        *_provenance(frame),
    )


def derive_guardians(frame: pl.DataFrame, context: SchoolContext) -> pl.DataFrame:
    return frame.select(
        _school(frame, context),
        _col(frame, "student_code_key").alias("student_code"),
        _coded(frame, "relation", RELATIONS).alias("relation"),
        _text(frame, "guardian_family_name").alias("guardian_family_name"),
        _text(frame, "guardian_first_name").alias("guardian_first_name"),
        _text(frame, "guardian_family_name_fr").alias("guardian_family_name_fr"),
        _text(frame, "guardian_first_name_fr").alias("guardian_first_name_fr"),
        _col(frame, "guardian_cin_key").alias("guardian_cin"),
        _col(frame, "cnss_number_key").alias("cnss_number"),
        _col(frame, "cmr_number_key").alias("cmr_number"),
        _col(frame, "orphan_value", pl.Boolean).alias("orphan"),
        _col(frame, "phone_key").alias("phone"),
        *_provenance(frame),
    )


def derive_marks(frame: pl.DataFrame, context: SchoolContext) -> pl.DataFrame:
    return frame.select(
        _school(frame, context),
        _col(frame, "school_year_key").alias("school_year"),
        _col(frame, "class_code_key").alias("class_code"),
        level_code_expr(frame).alias("level_code"),
        _col(frame, "student_code_key").alias("student_code"),
        _col(frame, "subject_code_key").alias("subject_code"),
        _col(frame, "semester_value", pl.Int8).alias("semester"),
        _col(frame, "slot").alias("slot"),
        _col(frame, "mark_value", pl.Float64).alias("mark"),
        _col(frame, "absence_value").alias("absence"),
        _col(frame, "mark_scale", pl.Float64).alias("mark_scale"),
        *_provenance(frame),
    )


def derive_exam_marks(frame: pl.DataFrame, context: SchoolContext) -> pl.DataFrame:
    return frame.select(
        _school(frame, context),
        _col(frame, "school_year_key").alias("school_year"),
        _col(frame, "class_code_key").alias("class_code"),
        _col(frame, "student_code_key").alias("student_code"),
        _coded(frame, "exam", EXAMS).alias("exam"),
        _coded(frame, "session", SESSIONS).alias("session"),
        _col(frame, "subject_code_key").alias("subject_code"),
        _col(frame, "mark_value", pl.Float64).alias("mark"),
        _col(frame, "absent_value", pl.Boolean).alias("absent"),
        _col(frame, "mark_scale", pl.Float64).alias("mark_scale"),
        *_provenance(frame),
    )


def derive_absences(frame: pl.DataFrame, context: SchoolContext) -> pl.DataFrame:
    justified = _col(frame, "justified_value", pl.Boolean)
    return frame.select(
        _school(frame, context),
        _col(frame, "school_year_key").alias("school_year"),
        _col(frame, "class_code_key").alias("class_code"),
        _col(frame, "student_code_key").alias("student_code"),
        _col(frame, "date_value", pl.Date).alias("date"),
        _col(frame, "slot_value", pl.Int8).alias("slot"),
        _col(frame, "subject_code_key").alias("subject_code"),
        pl.when(justified.is_null())
        .then(None)
        .when(justified)
        .then(pl.lit("justified"))
        .otherwise(pl.lit("unjustified"))
        .alias("absence"),
        _text(frame, "reason").alias("reason"),
        *_provenance(frame),
    )


def derive_discipline(frame: pl.DataFrame, context: SchoolContext) -> pl.DataFrame:
    return frame.select(
        _school(frame, context),
        _col(frame, "school_year_key").alias("school_year"),
        _col(frame, "incident_id_key").alias("incident_id"),
        _col(frame, "student_code_key").alias("student_code"),
        _col(frame, "date_value", pl.Date).alias("date"),
        _col(frame, "incident_type_value").alias("incident_type"),
        _col(frame, "sanction_value").alias("sanction"),
        *_provenance(frame),
    )


def derive_timetable(frame: pl.DataFrame, context: SchoolContext) -> pl.DataFrame:
    return frame.select(
        _school(frame, context),
        _col(frame, "school_year_key").alias("school_year"),
        _col(frame, "class_code_key").alias("class_code"),
        _coded(frame, "day", DAYS).alias("day"),
        _col(frame, "slot_value", pl.Int8).alias("slot"),
        _col(frame, "subject_code_key").alias("subject_code"),
        _col(frame, "teacher_code_key").alias("teacher_code"),
        _text(frame, "teacher_name").alias("teacher_name"),
        _col(frame, "room_code_key").alias("room_code"),
        *_provenance(frame),
    )


def derive_support(frame: pl.DataFrame, context: SchoolContext) -> pl.DataFrame:
    return frame.select(
        _school(frame, context),
        _col(frame, "school_year_key").alias("school_year"),
        _col(frame, "student_code_key").alias("student_code"),
        _col(frame, "programme_value").alias("programme"),
        _col(frame, "start_date_value", pl.Date).alias("start_date"),
        _col(frame, "amount_value", pl.Float64).alias("amount"),
        *_provenance(frame),
    )


def school_reference_rows(schools: list[dict[str, Any]]) -> pa.Table:
    """The ``schools`` table from the control database's schools (dicts of its columns)."""
    spec = TABLES["schools"]
    data = {name: [row.get(name) for row in schools] for name in spec.names}
    return pa.table(data, schema=spec.schema)


# ---- the tables -------------------------------------------------------------------------------

C = WarehouseColumn
DATE = pa.date32()
TIMESTAMP = pa.timestamp("us", tz="UTC")

TABLES: dict[str, WarehouseTable] = {
    table.name: table
    for table in (
        WarehouseTable(
            "schools",
            "The province's schools (reference data from the control database).",
            (
                SCHOOL,
                C("name_ar", STRING, "School name in Arabic"),
                C("name_fr", STRING, "School name in French"),
                C("commune", STRING, "Commune of the school"),
                C("cycle", STRING, "primary, college or lycee"),
                C("school_type", STRING, "main, or satellite of a main school"),
                C("parent_school_code", STRING, "Main school of a satellite, else null"),
            ),
            dataset=None,
            partitioned=False,  # ~250 rows: one file, not one per school
        ),
        WarehouseTable(
            "classes",
            "Classes of each school and year.",
            (
                SCHOOL,
                YEAR,
                CLASS,
                LEVEL,
                C("level_label", STRING, "Level label in Arabic, as the school wrote it"),
                C("stream", STRING, "Stream (lycée), null otherwise"),
                C("room_code", STRING, "Home room of the class"),
                C("head_teacher", STRING, "Head teacher's name"),
                *PROVENANCE_COLUMNS,
            ),
            dataset="classes",
            derive=derive_classes,
        ),
        WarehouseTable(
            "rooms",
            "Rooms of each school.",
            (
                SCHOOL,
                C("room_code", STRING, "Room code within the school, e.g. S01"),
                C("room_name", STRING, "Room name"),
                C("room_type", STRING, "Room type, the Arabic label of datasets.py"),
                C("capacity", pa.int32(), "Seats"),
                *PROVENANCE_COLUMNS,
            ),
            dataset="rooms",
            derive=derive_rooms,
        ),
        WarehouseTable(
            "students",
            "One row per pupil on a school's list for a year (the only table with pupils' "
            "names and birth dates).",
            (
                SCHOOL,
                YEAR,
                STUDENT,
                C("family_name", STRING, "Family name (Arabic)"),
                C("first_name", STRING, "First name (Arabic)"),
                C("sex", STRING, "M or F"),
                C("birth_date", DATE, "Birth date"),
                C("birthplace", STRING, "Birthplace, null when not given"),
                *PROVENANCE_COLUMNS,
            ),
            dataset="students",
            derive=derive_students,
        ),
        WarehouseTable(
            "enrollments",
            "A pupil's enrolment in a class of a school for a year; a pupil listed by two "
            "schools stays active in the school whose list is newer (listed_on), the other "
            "enrolment is transferred_out; lists of the same date keep both active (a tie).",
            (
                SCHOOL,
                YEAR,
                CLASS,
                LEVEL,
                STUDENT,
                C("enrolled_from", TIMESTAMP, "When the list enrolling the pupil arrived"),
                C(
                    "listed_on",
                    DATE,
                    "The list's own date: its export date, else the day it arrived",
                ),
                C(
                    "listed_on_source",
                    STRING,
                    "Where listed_on comes from: file name, file metadata or arrival",
                ),
                C("status", STRING, "active or transferred_out (a newer list elsewhere)"),
                *PROVENANCE_COLUMNS,
            ),
            dataset="students",
            derive=derive_enrollments,
        ),
        WarehouseTable(
            "guardians",
            "Parents and guardians of pupils, with the identifiers partner funds match on.",
            (
                SCHOOL,
                STUDENT,
                C("relation", STRING, "father, mother or guardian"),
                C("guardian_family_name", STRING, "Guardian's family name (Arabic)"),
                C("guardian_first_name", STRING, "Guardian's first name (Arabic)"),
                C("guardian_family_name_fr", STRING, "Family name in Latin letters"),
                C("guardian_first_name_fr", STRING, "First name in Latin letters"),
                C("guardian_cin", STRING, "National ID (CIN), null when not given"),
                C("cnss_number", STRING, "CNSS insured number"),
                C("cmr_number", STRING, "CMR affiliation number (opaque)"),
                C("orphan", pa.bool_(), "The pupil is an orphan"),
                C("phone", STRING, "Guardian's phone"),
                *PROVENANCE_COLUMNS,
            ),
            dataset="guardians",
            derive=derive_guardians,
        ),
        WarehouseTable(
            "marks",
            "Continuous assessment: one row per pupil × subject × semester × slot.",
            (
                SCHOOL,
                YEAR,
                CLASS,
                LEVEL,
                STUDENT,
                SUBJECT,
                C("semester", pa.int8(), "1 or 2"),
                C("slot", STRING, "test1, test2, test3, test4 or activities"),
                C("mark", pa.float64(), "Mark, null when not entered"),
                C(
                    "absence",
                    STRING,
                    "justified, or null (NotesCC records justified absences only; "
                    "unjustified is reserved)",
                ),
                C("mark_scale", pa.float64(), "10 (primary) or 20"),
                *PROVENANCE_COLUMNS,
            ),
            dataset="marks",
            derive=derive_marks,
        ),
        WarehouseTable(
            "exam_marks",
            "Exam marks: one row per pupil × exam × session × subject.",
            (
                SCHOOL,
                YEAR,
                CLASS,
                STUDENT,
                C("exam", STRING, "local, provincial, regional or national"),
                C("session", STRING, "normal or makeup"),
                SUBJECT,
                C("mark", pa.float64(), "Mark, null when absent or not entered"),
                C("absent", pa.bool_(), "Absent from the paper"),
                C("mark_scale", pa.float64(), "10 (primary) or 20"),
                *PROVENANCE_COLUMNS,
            ),
            dataset="exam_marks",
            derive=derive_exam_marks,
        ),
        WarehouseTable(
            "absences",
            "Absences per lesson: one row per pupil × day × hour slot.",
            (
                SCHOOL,
                YEAR,
                CLASS,
                STUDENT,
                C("date", DATE, "Day of the absence"),
                C("slot", pa.int8(), "Hour slot of the day, 1-8"),
                SUBJECT,
                C("absence", STRING, "justified or unjustified"),
                C("reason", STRING, "Reason given, null when none"),
                *PROVENANCE_COLUMNS,
            ),
            dataset="absences",
            derive=derive_absences,
        ),
        WarehouseTable(
            "discipline",
            "Discipline incidents and their sanctions.",
            (
                SCHOOL,
                YEAR,
                C("incident_id", STRING, "Incident number within the school"),
                STUDENT,
                C("date", DATE, "Day of the incident"),
                C("incident_type", STRING, "Incident, the Arabic label of datasets.py"),
                C("sanction", STRING, "Sanction, the Arabic label of datasets.py"),
                *PROVENANCE_COLUMNS,
            ),
            dataset="discipline",
            derive=derive_discipline,
        ),
        WarehouseTable(
            "timetable",
            "Weekly timetable: one row per class × day × hour slot.",
            (
                SCHOOL,
                YEAR,
                CLASS,
                C("day", STRING, "monday .. saturday"),
                C("slot", pa.int8(), "Hour slot of the day, 1-8"),
                SUBJECT,
                C("teacher_code", STRING, "Teacher's personnel number (PPR)"),
                C("teacher_name", STRING, "Teacher's name"),
                C("room_code", STRING, "Room"),
                *PROVENANCE_COLUMNS,
            ),
            dataset="timetable",
            derive=derive_timetable,
        ),
        WarehouseTable(
            "support",
            "Social support: one row per pupil × programme.",
            (
                SCHOOL,
                YEAR,
                STUDENT,
                C("programme", STRING, "Programme, the Arabic label of datasets.py"),
                C("start_date", DATE, "First day of benefit"),
                C("amount", pa.float64(), "Amount in dirhams, null for benefits in kind"),
                *PROVENANCE_COLUMNS,
            ),
            dataset="support",
            derive=derive_support,
        ),
    )
}


def tables_of(dataset: str) -> list[str]:
    """The warehouse tables a dataset feeds (students feeds students and enrollments)."""
    return [name for name, table in TABLES.items() if table.dataset == dataset]


def table(name: str) -> WarehouseTable:
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"unknown warehouse table {name!r}; known: {', '.join(TABLES)}") from None

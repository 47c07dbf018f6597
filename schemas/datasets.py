"""Every dataset a school submits, declared once.

A dataset names its columns in the domain's English words, the Arabic header label a school
sees in the file, the type, and what the column means. The generator writes these labels, the
readers find columns by them (after whitespace normalisation), the pandera schemas and the data
dictionary (docs/data-dictionary.md) are derived from the same declaration.

Two datasets come in Massar's own Excel layouts (students from ListEleve, marks from NotesCC);
their labels are those observed in genuine exports (DOMAIN.md §2). The others have no known Massar
layout: the platform defines them as CSV or XLSX files with Arabic headers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["text", "code", "integer", "decimal", "date", "boolean", "label"]


@dataclass(frozen=True)
class Column:
    """One column of a dataset as a school's file shows it."""

    name: str  # English snake_case name used in tables and code
    header_ar: str  # the Arabic header label in the file
    kind: Kind
    doc: str
    required: bool = True
    pattern: str | None = None  # regular expression a valid value matches (after normalisation)
    values: tuple[str, ...] = ()  # allowed labels for kind == "label" (as written by schools)


@dataclass(frozen=True)
class Dataset:
    """A kind of file a school submits."""

    name: str
    title_fr: str
    title_ar: str
    layout: Literal["massar_liste_eleves", "massar_notes_cc", "table"]
    file_format: str  # what the generator writes and the platform documents
    columns: tuple[Column, ...]
    keys: tuple[str, ...]  # a row is identified by these columns within a submission
    scope: tuple[str, ...]  # a newer accepted submission replaces rows of the same scope
    doc: str = ""
    metadata: tuple[Column, ...] = field(default_factory=tuple)

    def column(self, name: str) -> Column:
        for column in self.columns + self.metadata:
            if column.name == name:
                return column
        raise KeyError(f"{self.name} has no column {name!r}")

    @property
    def headers_ar(self) -> tuple[str, ...]:
        return tuple(column.header_ar for column in self.columns)


STUDENT_CODE = r"^[A-Z]\d{9}$"
SCHOOL_CODE = r"^\d{5}[A-Z]$"
SUBJECT_CODE = r"^\d{4}$"
CLASS_CODE = r"^[0-9A-Z]+-\d{1,2}$"
SCHOOL_YEAR = r"^\d{4}/\d{4}$"
CIN = r"^[A-Z]{1,2}\d{5,6}$"
CNSS_NUMBER = r"^\d{9}$"

SEX_LABELS = ("ذكر", "أنثى")
YES_NO = ("نعم", "لا")

_school = Column(
    "school_code", "رمز المؤسسة", "code", "Massar code of the school", pattern=SCHOOL_CODE
)
_year = Column(
    "school_year", "السنة الدراسية", "code", "School year, e.g. 2023/2024", pattern=SCHOOL_YEAR
)
_student = Column(
    "student_code", "رقم التلميذ", "code", "Massar code of the pupil", pattern=STUDENT_CODE
)
_class = Column("class_code", "القسم", "code", "Class, e.g. 1APIC-1", pattern=CLASS_CODE)


LIST_ELEVES_METADATA = (
    Column("academy", "الأكاديمية", "text", "Regional academy (AREF)"),
    Column(
        "directorate", "المديرية الإقليمية", "text", "Provincial directorate, e.g. إقليم: تيزنيت"
    ),
    Column("commune", "الجماعة", "text", "Commune of the school"),
    Column("school_name", "المؤسسة", "text", "School name (the code is not in this layout)"),
    Column("school_year", "السنة الدراسية", "code", "School year", pattern=SCHOOL_YEAR),
    Column("level_label", "المستوى", "text", "Level label, e.g. الأولى إعدادي مسار دولي"),
    Column("class_code", "القسم", "code", "Class code", pattern=CLASS_CODE),
)

STUDENTS = Dataset(
    name="students",
    title_fr="Liste des élèves (ListEleve)",
    title_ar="لائحة التلاميذ",
    layout="massar_liste_eleves",
    file_format="Massar export ListEleve_YYYYMMDD.xls (BIFF) or .xlsx, one sheet per class",
    columns=(
        Column("row_number", "ر.ت", "integer", "Row number within the class"),
        Column("student_code", "الرمز", "code", "Massar code of the pupil", pattern=STUDENT_CODE),
        Column("family_name", "النسب", "text", "Family name (Arabic)"),
        Column("first_name", "الإسم", "text", "First name (Arabic)"),
        Column("sex", "النوع", "label", "Sex", values=SEX_LABELS),
        Column("birth_date", "تاريخ الإزدياد", "date", "Birth date (Excel date, dd/mm/yyyy)"),
        Column("birthplace", "مكان الازدياد", "text", "Birthplace", required=False),
    ),
    keys=("student_code",),
    scope=("school_code", "school_year"),
    metadata=LIST_ELEVES_METADATA,
    doc="Feeds the warehouse tables students and enrollments (one sheet per class).",
)

NOTES_CC_METADATA = (
    Column("academy", "أكاديمية", "text", "Regional academy"),
    Column("directorate", "م.الإقليمية", "text", "Provincial directorate"),
    Column("school_name", "مؤسسة", "text", "School name"),
    Column("level_label", "المستوى", "text", "Level label"),
    Column("class_code", "القسم", "code", "Class code", pattern=CLASS_CODE),
    Column("teacher", "الاستاذ", "text", "Teacher's name", required=False),
    Column("session_label", "الدورة", "text", "الدورة الأولى (semester 1) or الدورة الثانية (2)"),
    Column("subject_name", "المادة", "text", "Subject name"),
    Column("school_year", "السنة الدراسية", "code", "School year", pattern=SCHOOL_YEAR),
)

# Slots of continuous assessment: header label in row 16, token in hidden row 15.
MARK_SLOTS = (
    ("test1", "الفرض الأول", "#1#"),
    ("test2", "الفرض الثاني", "#2#"),
    ("test3", "الفرض الثالث", "#3#"),
    ("test4", "الفرض الرابع", "#4#"),
    ("activities", "الأنشطة المندمجة", "#100#"),
)
MARK_LABEL = "النقطة"
ABSENCE_LABEL = "التغيب"
JUSTIFIED_LABEL = "مبرر"

MARKS = Dataset(
    name="marks",
    title_fr="Notes du contrôle continu (NotesCC)",
    title_ar="نقط المراقبة المستمرة",
    layout="massar_notes_cc",
    file_format="Massar export export_notesCC_<CLASS>_<SUBJECT>.xlsx, sheets NotesCC and Data",
    columns=(
        Column("internal_id", "ID", "integer", "Massar internal pupil id (hidden column)"),
        Column("student_code", "رقم التلميذ", "code", "Massar code", pattern=STUDENT_CODE),
        Column("full_name", "إسم التلميذ", "text", "Full name, family name first"),
        Column("birth_date", "تاريخ الإزدياد", "date", "Birth date as text dd-mm-yyyy"),
        Column("slot", "", "label", "test1..test4 or activities (from the header pair)"),
        Column(
            "mark",
            MARK_LABEL,
            "decimal",
            "Mark 0-20 (0-10 in primary), empty if not entered",
            required=False,
        ),
        Column(
            "absence",
            ABSENCE_LABEL,
            "label",
            "مبرر (justified) or empty",
            required=False,
            values=(JUSTIFIED_LABEL,),
        ),
        Column("remark", "ملاحظات الأستاذ", "text", "Teacher's remark", required=False),
    ),
    keys=("student_code", "subject_code", "semester", "slot"),
    scope=("school_code", "school_year", "class_code", "subject_code", "semester"),
    metadata=NOTES_CC_METADATA,
    doc="One workbook per class × subject × semester; one warehouse row per pupil × slot.",
)

CLASSES = Dataset(
    name="classes",
    title_fr="Classes",
    title_ar="الأقسام",
    layout="table",
    file_format="XLSX, sheet الأقسام, right-to-left, header in row 1",
    columns=(
        _school,
        _year,
        _class,
        Column("level_code", "رمز المستوى", "code", "Level code, e.g. 1APIC, TCSF, 2BACSPF"),
        Column("level_label", "المستوى", "text", "Level label in Arabic"),
        Column("stream", "الشعبة", "text", "Stream (lycée), empty otherwise", required=False),
        Column("room_code", "رمز القاعة", "code", "Home room of the class", required=False),
        Column("head_teacher", "الأستاذ الرئيسي", "text", "Head teacher", required=False),
    ),
    keys=("class_code",),
    scope=("school_code", "school_year"),
)

ROOMS = Dataset(
    name="rooms",
    title_fr="Salles",
    title_ar="القاعات",
    layout="table",
    file_format="XLSX, sheet القاعات, right-to-left, header in row 1",
    columns=(
        _school,
        Column("room_code", "رمز القاعة", "code", "Room code within the school, e.g. S01"),
        Column("room_name", "اسم القاعة", "text", "Room name"),
        Column(
            "room_type",
            "نوع القاعة",
            "label",
            "Room type",
            values=("قاعة عادية", "مختبر", "قاعة متعددة الوسائط", "قاعة الإعلاميات", "ملعب"),
        ),
        Column("capacity", "الطاقة الاستيعابية", "integer", "Seats"),
    ),
    keys=("room_code",),
    scope=("school_code",),
)

GUARDIANS = Dataset(
    name="guardians",
    title_fr="Tuteurs et parents",
    title_ar="أولياء الأمور",
    layout="table",
    file_format="CSV, UTF-8 with BOM (some schools: Windows-1256), comma separated",
    columns=(
        _school,
        _student,
        Column(
            "relation",
            "صلة القرابة",
            "label",
            "Relation to the pupil",
            values=("الأب", "الأم", "الوصي"),
        ),
        Column("guardian_family_name", "نسب ولي الأمر", "text", "Guardian's family name"),
        Column("guardian_first_name", "اسم ولي الأمر", "text", "Guardian's first name"),
        Column(
            "guardian_family_name_fr",
            "النسب بالفرنسية",
            "text",
            "Family name in Latin letters",
            required=False,
        ),
        Column(
            "guardian_first_name_fr",
            "الاسم بالفرنسية",
            "text",
            "First name in Latin letters",
            required=False,
        ),
        Column(
            "guardian_cin",
            "رقم البطاقة الوطنية",
            "code",
            "National ID (CIN)",
            required=False,
            pattern=CIN,
        ),
        Column(
            "cnss_number",
            "رقم التسجيل بالضمان الاجتماعي",
            "code",
            "CNSS insured number",
            required=False,
            pattern=CNSS_NUMBER,
        ),
        Column(
            "cmr_number",
            "رقم الانخراط بالصندوق المغربي للتقاعد",
            "code",
            "CMR affiliation number (opaque)",
            required=False,
        ),
        Column("orphan", "يتيم", "label", "Pupil is an orphan", values=YES_NO),
        Column("phone", "الهاتف", "code", "Guardian's phone", required=False),
    ),
    keys=("student_code", "relation"),
    scope=("school_code",),
)

EXAM_MARKS = Dataset(
    name="exam_marks",
    title_fr="Notes d'examens",
    title_ar="نقط الامتحانات",
    layout="table",
    file_format="CSV, UTF-8 with BOM, comma separated; marks with a point or a decimal comma",
    columns=(
        _school,
        _year,
        _student,
        _class,
        Column("exam", "نوع الامتحان", "label", "Exam", values=("محلي", "إقليمي", "جهوي", "وطني")),
        Column("session", "الدورة", "label", "Session", values=("عادية", "استدراكية")),
        Column("subject_code", "رمز المادة", "code", "Subject code", pattern=SUBJECT_CODE),
        Column("subject_name", "المادة", "text", "Subject name"),
        Column("mark", "النقطة", "decimal", "Mark 0-20 (0-10 in primary)", required=False),
        Column("absent", "غائب", "label", "Absent from the paper", values=YES_NO),
    ),
    keys=("student_code", "exam", "session", "subject_code"),
    scope=("school_code", "school_year"),
)

ABSENCES = Dataset(
    name="absences",
    title_fr="Absences par séance",
    title_ar="الغياب",
    layout="table",
    file_format="CSV, UTF-8 with BOM, comma separated",
    columns=(
        _school,
        _year,
        _student,
        _class,
        Column("date", "التاريخ", "date", "Day of the absence, dd/mm/yyyy"),
        Column("slot", "الحصة", "integer", "Hour slot of the day, 1-8"),
        Column(
            "subject_code",
            "رمز المادة",
            "code",
            "Subject of the lesson",
            pattern=SUBJECT_CODE,
            required=False,
        ),
        Column("justified", "مبرر", "label", "Justified", values=YES_NO),
        Column("reason", "السبب", "text", "Reason given", required=False),
    ),
    keys=("student_code", "date", "slot"),
    scope=("school_code", "school_year"),
)

DISCIPLINE = Dataset(
    name="discipline",
    title_fr="Discipline",
    title_ar="الانضباط",
    layout="table",
    file_format="CSV, UTF-8 with BOM, comma separated",
    columns=(
        _school,
        _year,
        Column("incident_id", "رقم الحادثة", "code", "Incident number within the school"),
        _student,
        Column("date", "التاريخ", "date", "Day of the incident, dd/mm/yyyy"),
        Column(
            "incident_type",
            "نوع المخالفة",
            "label",
            "Incident",
            values=(
                "تأخر متكرر",
                "غياب غير مبرر متكرر",
                "إخلال بالنظام",
                "عنف",
                "غش",
                "إتلاف ممتلكات",
            ),
        ),
        Column(
            "sanction",
            "العقوبة",
            "label",
            "Sanction",
            values=("تنبيه", "إنذار", "توبيخ", "توقيف مؤقت", "مجلس انضباط", "عمل لفائدة المؤسسة"),
        ),
    ),
    keys=("incident_id", "student_code"),
    scope=("school_code", "school_year"),
)

TIMETABLE = Dataset(
    name="timetable",
    title_fr="Emploi du temps",
    title_ar="استعمال الزمن",
    layout="table",
    file_format="XLSX, sheet استعمال الزمن, right-to-left, header in row 1",
    columns=(
        _school,
        _year,
        _class,
        Column(
            "day",
            "اليوم",
            "label",
            "Day of the week",
            values=("الإثنين", "الثلاثاء", "الأربعاء", "الخميس", "الجمعة", "السبت"),
        ),
        Column("slot", "الحصة", "integer", "Hour slot of the day, 1-8"),
        Column("subject_code", "رمز المادة", "code", "Subject code", pattern=SUBJECT_CODE),
        Column("teacher_code", "رقم التأجير", "code", "Teacher's personnel number (PPR)"),
        Column("teacher_name", "اسم الأستاذ", "text", "Teacher's name"),
        Column("room_code", "رمز القاعة", "code", "Room"),
    ),
    keys=("class_code", "day", "slot"),
    scope=("school_code", "school_year"),
)

SUPPORT = Dataset(
    name="support",
    title_fr="Appui social",
    title_ar="الدعم الاجتماعي",
    layout="table",
    file_format="CSV, UTF-8 with BOM, comma separated",
    columns=(
        _school,
        _year,
        _student,
        Column(
            "programme",
            "البرنامج",
            "label",
            "Programme",
            values=(
                "تيسير",
                "مليون محفظة",
                "المطعم المدرسي",
                "النقل المدرسي",
                "المنحة",
                "الداخلية",
            ),
        ),
        Column("start_date", "تاريخ الاستفادة", "date", "First day of benefit, dd/mm/yyyy"),
        Column(
            "amount",
            "المبلغ",
            "decimal",
            "Amount in dirhams, empty for benefits in kind",
            required=False,
        ),
    ),
    keys=("student_code", "programme"),
    scope=("school_code", "school_year"),
)

DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        STUDENTS,
        MARKS,
        CLASSES,
        ROOMS,
        GUARDIANS,
        EXAM_MARKS,
        ABSENCES,
        DISCIPLINE,
        TIMETABLE,
        SUPPORT,
    )
}

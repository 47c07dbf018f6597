"""The directorate's list of schools, declared once: what ``massar schools import FILE`` reads.

One row per school: its Massar code, its names in Arabic and French, its commune, its cycle,
whether it is a main school or a satellite, and a satellite's main school. The file is the
directorate's own (CSV or XLSX), so a column is found by any of its labels — Arabic, French or
the English names of the platform's tables — after whitespace and letter-variant
normalisation; other columns are ignored. Values of ``cycle`` and ``school_type`` are
accepted in the three languages and stored in the platform's words.

The findings of an import use the rule catalogue (schemas/rules.csv): F001, F005, F008 for the
file, R005 (value missing), R006 (value not allowed, a satellite's main school not a main
school of the list), R007 (a school listed twice), R008 (code malformed) for rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas.datasets import SCHOOL_CODE

# The submitter of the list in the control database (a school's code elsewhere).
DIRECTORATE = "province"
DATASET = "schools_list"


@dataclass(frozen=True)
class ListColumn:
    """One column of the list."""

    name: str  # the column of the ``schools`` table
    header_ar: str
    header_fr: str
    doc: str
    aliases: tuple[str, ...] = ()  # other labels accepted for the header
    header_required: bool = True
    value_required: bool = True
    pattern: str | None = None
    # stored value → the labels accepted for it (matched after normalisation)
    values: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def labels(self) -> tuple[str, ...]:
        return (self.header_ar, self.header_fr, self.name, *self.aliases)


CYCLES = {
    "primary": ("primary", "primaire", "ابتدائي", "الابتدائي", "التعليم الابتدائي"),
    "college": (
        "college",
        "collège",
        "secondaire collégial",
        "إعدادي",
        "الإعدادي",
        "ثانوي إعدادي",
        "الثانوي الإعدادي",
    ),
    "lycee": (
        "lycee",
        "lycée",
        "secondaire qualifiant",
        "تأهيلي",
        "التأهيلي",
        "ثانوي تأهيلي",
        "الثانوي التأهيلي",
    ),
}
SCHOOL_TYPES = {
    "main": ("main", "principale", "principal", "mère", "مركزية", "أم", "المؤسسة الأم", "رئيسية"),
    "satellite": ("satellite", "فرعية", "مدرسة فرعية", "وحدة مدرسية", "فرعية تابعة"),
}

COLUMNS: tuple[ListColumn, ...] = (
    ListColumn(
        "school_code",
        "رمز المؤسسة",
        "Code de l'établissement",
        "Massar code of the school, e.g. 27783Y",
        aliases=("code", "code établissement", "code etablissement", "الرمز"),
        pattern=SCHOOL_CODE,
    ),
    ListColumn(
        "name_ar",
        "اسم المؤسسة",
        "Nom en arabe",
        "School name in Arabic",
        aliases=("المؤسسة", "الاسم بالعربية", "nom arabe"),
    ),
    ListColumn(
        "name_fr",
        "الاسم بالفرنسية",
        "Nom de l'établissement",
        "School name in French (may be empty)",
        aliases=("nom en français", "nom français", "établissement", "nom"),
        value_required=False,
    ),
    ListColumn(
        "commune", "الجماعة", "Commune", "Commune of the school", aliases=("الجماعة الترابية",)
    ),
    ListColumn(
        "cycle",
        "السلك",
        "Cycle",
        "primary, college or lycee (ابتدائي، إعدادي، تأهيلي · primaire, collège, lycée)",
        aliases=("ordre", "ordre d'enseignement"),
        values=CYCLES,
    ),
    ListColumn(
        "school_type",
        "الصنف",
        "Type",
        "main or satellite (مركزية / فرعية · principale / satellite)",
        aliases=("type", "النوع", "نوع المؤسسة"),
        values=SCHOOL_TYPES,
    ),
    ListColumn(
        "parent_school_code",
        "المؤسسة الأم",
        "Établissement principal",
        "A satellite's main school (its Massar code); empty for a main school",
        aliases=("رمز المؤسسة الأم", "école mère", "parent", "main_school_code"),
        header_required=False,
        value_required=False,
        pattern=SCHOOL_CODE,
    ),
)
EXAMPLE_CODE = "27783Y"

"""Why the matcher answered REVIEW (or NOT_FOUND): one code per reason, for the officer.

Every REVIEW and NOT_FOUND answer of the matcher (tasks/match_decision.py, tasks/age_window.py)
carries one of these codes in
``ChildAnswer.reason_code`` (the main reason when there are several; the full reason, in English,
stays in ``ChildAnswer.reason``), so that the batch artifact and review.csv can group the children
an officer has to look at and count them. Each code has a short label in French and Arabic.
Codes, like reasons, never hold a name, a birth date or a pupil code.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReasonCode:
    code: str
    french: str
    arabic: str
    status: str  # REVIEW or NOT_FOUND


# In priority order: an answer with several doubts carries the first of them.
REASON_CODES: tuple[ReasonCode, ...] = (
    ReasonCode(
        "outside_age_window",
        "Hors de la tranche d'âge de la prestation",
        "خارج الفئة العمرية للخدمة",
        "REVIEW",
    ),
    ReasonCode(
        "no_age_window",
        "Prestation sans tranche d'âge configurée",
        "خدمة بدون فئة عمرية محددة",
        "REVIEW",
    ),
    ReasonCode(
        "no_birth_date",
        "Pas de date de naissance pour vérifier l'âge",
        "لا يوجد تاريخ ازدياد للتحقق من العمر",
        "REVIEW",
    ),
    ReasonCode(
        "code_unknown",
        "Code Massar inconnu de la province, un élève correspond",
        "رمز مسار غير معروف في الإقليم، وتلميذ يطابق المعطيات",
        "REVIEW",
    ),
    ReasonCode(
        "code_other_pupil",
        "Le code Massar et les renseignements désignent deux élèves",
        "رمز مسار والمعطيات يشيران إلى تلميذين",
        "REVIEW",
    ),
    ReasonCode(
        "code_first_name",
        "Prénom différent de celui de l'élève du code Massar",
        "الاسم الشخصي يختلف عن اسم تلميذ رمز مسار",
        "REVIEW",
    ),
    ReasonCode(
        "code_details_differ",
        "Renseignements différents de l'élève du code Massar",
        "المعطيات لا تطابق تلميذ رمز مسار",
        "REVIEW",
    ),
    ReasonCode(
        "two_candidates",
        "Deux élèves possibles (jumeaux ou doublon)",
        "تلميذان محتملان (توأمان أو تكرار)",
        "REVIEW",
    ),
    ReasonCode(
        "first_name_doubt",
        "Prénom incertain (frère ou sœur ?)",
        "الاسم الشخصي غير مؤكد (أخ أو أخت؟)",
        "REVIEW",
    ),
    ReasonCode(
        "first_name_part",
        "Prénom composé donné en partie",
        "اسم شخصي مركب معطى جزئيا",
        "REVIEW",
    ),
    ReasonCode(
        "names_swapped",
        "Nom et prénom inversés, avec un doute",
        "الاسم العائلي والاسم الشخصي مقلوبان، مع شك",
        "REVIEW",
    ),
    ReasonCode(
        "birth_swapped",
        "Date de naissance : jour et mois inversés",
        "تاريخ الازدياد: اليوم والشهر مقلوبان",
        "REVIEW",
    ),
    ReasonCode(
        "birth_differs",
        "Date de naissance différente",
        "تاريخ الازدياد مختلف",
        "REVIEW",
    ),
    ReasonCode(
        "birth_missing",
        "Date de naissance absente",
        "تاريخ الازدياد غير موجود",
        "REVIEW",
    ),
    ReasonCode(
        "parent_differs",
        "Parent non reconnu (numéro CNSS/CMR, CIN)",
        "ولي الأمر غير معروف (رقم الضمان أو التقاعد، البطاقة الوطنية)",
        "REVIEW",
    ),
    ReasonCode(
        "sex_differs",
        "Sexe différent",
        "النوع مختلف",
        "REVIEW",
    ),
    ReasonCode(
        "names_weak",
        "Noms peu ressemblants",
        "الأسماء متشابهة جزئيا فقط",
        "REVIEW",
    ),
    ReasonCode(
        "transfer_out",
        "Transféré hors de la province l'an dernier",
        "انتقل خارج الإقليم السنة الماضية",
        "REVIEW",
    ),
    ReasonCode(
        "leaver_old",
        "Départ ancien, aucune inscription depuis",
        "مغادرة قديمة، ولا تسجيل منذ ذلك الحين",
        "REVIEW",
    ),
    ReasonCode(
        "leaver_unsure",
        "Parti l'an dernier, correspondance pas assez sûre",
        "غادر السنة الماضية، والمطابقة غير كافية",
        "REVIEW",
    ),
    ReasonCode(
        "weak_match",
        "Correspondance trop faible pour « non scolarisé »",
        "مطابقة ضعيفة جدا للإجابة بغير متمدرس",
        "REVIEW",
    ),
    ReasonCode(
        "not_sure",
        "Correspondance pas assez sûre",
        "المطابقة غير مؤكدة بما يكفي",
        "REVIEW",
    ),
    ReasonCode(
        "sibling",
        "Frère ou sœur d'un élève, pas l'élève",
        "أخ أو أخت لتلميذ، وليس التلميذ نفسه",
        "NOT_FOUND",
    ),
    ReasonCode(
        "no_match",
        "Aucun élève de la province ne correspond",
        "لا يطابق أي تلميذ في الإقليم",
        "NOT_FOUND",
    ),
)
BY_CODE = {reason.code: reason for reason in REASON_CODES}
_PRIORITY = {reason.code: index for index, reason in enumerate(REASON_CODES)}


def main_reason(codes: list[str]) -> str:
    """The code that comes first in REASON_CODES' order."""
    return min(codes, key=_PRIORITY.__getitem__)


def reason_label(code: str) -> tuple[str, str]:
    """(French, Arabic) label of a reason code; ``KeyError`` for an unknown code."""
    reason = BY_CODE[code]
    return reason.french, reason.arabic

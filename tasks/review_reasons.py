"""The matcher's reasons in French and Arabic, for the officers' ``review.csv``.

The matcher (``tasks/match_decision.py``, ``tasks/age_window.py``, ``tasks/match.py``) explains
each answer in English (``ChildAnswer.reason``), joining several
reasons with ``"; "`` and prefixing ``"weak match: "`` when the last guard turns an answer into
REVIEW. Each English sentence it writes is declared here once with its translations; a
reason is translated by reading it back against these templates (the longest first, since
some sentences hold a ``"; "`` themselves). tests/tasks/test_review_reasons.py ties every
sentence of the matcher to this catalogue.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class Reason:
    english: str  # as the matcher writes it, {name} for what it fills in
    french: str
    arabic: str


REASONS: tuple[Reason, ...] = (
    Reason(
        "the Massar code given is not a pupil of the province and no pupil matches the names, "
        "birth date and parent",
        "le code Massar donné n'est celui d'aucun élève de la province et aucun élève ne "
        "correspond aux noms, à la date de naissance et au parent",
        "رمز مسار المعطى لا يخص أي تلميذ في الإقليم ولا يطابق أي تلميذ الأسماء وتاريخ الازدياد "
        "وولي الأمر",
    ),
    Reason(
        "the Massar code given is not a pupil of the province; another pupil matches the details",
        "le code Massar donné n'est celui d'aucun élève de la province ; un autre élève "
        "correspond aux autres renseignements",
        "رمز مسار المعطى لا يخص أي تلميذ في الإقليم؛ تلميذ آخر يطابق باقي المعطيات",
    ),
    Reason(
        "the Massar code given and the names, birth date and parent point at different pupils",
        "le code Massar donné d'une part, les noms, la date de naissance et le parent d'autre "
        "part désignent des élèves différents",
        "رمز مسار المعطى من جهة، والأسماء وتاريخ الازدياد وولي الأمر من جهة أخرى، يشيران إلى "
        "تلميذين مختلفين",
    ),
    Reason(
        "the Massar code given belongs to another pupil; names, birth date and parent match a "
        "different pupil",
        "le code Massar donné appartient à un autre élève ; les noms, la date de naissance et "
        "le parent correspondent à un élève différent",
        "رمز مسار المعطى يخص تلميذا آخر؛ الأسماء وتاريخ الازدياد وولي الأمر تطابق تلميذا مختلفا",
    ),
    Reason(
        "the names, birth date or parent of the pupil with this Massar code do not match",
        "les noms, la date de naissance ou le parent de l'élève qui porte ce code Massar ne "
        "correspondent pas",
        "الأسماء أو تاريخ الازدياد أو ولي الأمر لا تطابق التلميذ الذي يحمل رمز مسار هذا",
    ),
    Reason(
        "no pupil of the province matches the names, birth date and parent",
        "aucun élève de la province ne correspond aux noms, à la date de naissance et au parent",
        "لا يطابق أي تلميذ في الإقليم الأسماء وتاريخ الازدياد وولي الأمر",
    ),
    Reason(
        "matched on the Massar code and details",
        "retrouvé par le code Massar et les renseignements",
        "تم التعرف عليه برمز مسار والمعطيات",
    ),
    Reason(
        "matched on parent identifier, birth date and names",
        "retrouvé par l'identifiant du parent, la date de naissance et les noms",
        "تم التعرف عليه بمعرف ولي الأمر وتاريخ الازدياد والأسماء",
    ),
    Reason(
        "matched on parent identifier, birth date and names (family and first names in the "
        "other order)",
        "retrouvé par l'identifiant du parent, la date de naissance et les noms (nom et prénom "
        "inversés)",
        "تم التعرف عليه بمعرف ولي الأمر وتاريخ الازدياد والأسماء (الاسم العائلي والشخصي مقلوبان)",
    ),
    Reason(
        "the first name does not clearly designate this pupil (a brother or sister?)",
        "le prénom ne désigne pas clairement cet élève (un frère ou une sœur ?)",
        "الاسم الشخصي لا يدل بوضوح على هذا التلميذ (أخ أو أخت؟)",
    ),
    Reason(
        "only part of a compound first name agrees",
        "seule une partie d'un prénom composé correspond",
        "جزء فقط من الاسم الشخصي المركب يطابق",
    ),
    Reason(
        "the names match only with family and first names swapped",
        "les noms ne correspondent qu'en inversant le nom et le prénom",
        "الأسماء لا تتطابق إلا بقلب الاسم العائلي والاسم الشخصي",
    ),
    Reason(
        "the first name given is not clearly that of the pupil with this Massar code",
        "le prénom donné n'est pas clairement celui de l'élève qui porte ce code Massar",
        "الاسم الشخصي المعطى ليس بوضوح اسم التلميذ الذي يحمل رمز مسار هذا",
    ),
    Reason(
        "a pupil with the same parent and birth date has another first name",
        "un élève du même parent, né le même jour, a un autre prénom",
        "تلميذ له نفس ولي الأمر وتاريخ الازدياد يحمل اسما شخصيا آخر",
    ),
    Reason(
        "the birth date matches only with day and month swapped",
        "la date de naissance ne correspond qu'en inversant le jour et le mois",
        "تاريخ الازدياد لا يطابق إلا بتبديل اليوم والشهر",
    ),
    Reason(
        "the birth date differs",
        "la date de naissance diffère",
        "تاريخ الازدياد مختلف",
    ),
    Reason(
        "the birth date is missing",
        "la date de naissance manque",
        "تاريخ الازدياد غير موجود",
    ),
    Reason(
        "the parent's CNSS/CMR number and CIN are not those of the pupil's guardians",
        "le numéro CNSS/CMR et la CIN du parent ne sont pas ceux des tuteurs de l'élève",
        "رقم الضمان الاجتماعي أو الصندوق المغربي للتقاعد والبطاقة الوطنية لولي الأمر لا تخص "
        "أولياء أمر التلميذ",
    ),
    Reason(
        "the names match only weakly",
        "les noms ne correspondent que faiblement",
        "الأسماء لا تتطابق إلا جزئيا",
    ),
    Reason("the sex differs", "le sexe diffère", "النوع مختلف"),
    Reason(
        "the match is not sure enough",
        "la correspondance n'est pas assez sûre",
        "المطابقة غير مؤكدة بما يكفي",
    ),
    Reason(
        "two pupils match almost equally (twins or a duplicate?)",
        "deux élèves correspondent presque autant (jumeaux ou doublon ?)",
        "تلميذان يطابقان بنفس الدرجة تقريبا (توأمان أو تكرار؟)",
    ),
    Reason(
        "a leaving record of this year",
        "une fiche de départ de cette année",
        "سجل مغادرة خلال هذه السنة",
    ),
    Reason(
        "the last leaving record is not of this year or the previous one; no enrolment since",
        "la dernière fiche de départ n'est ni de cette année ni de la précédente ; aucune "
        "inscription depuis",
        "آخر سجل مغادرة ليس من هذه السنة ولا من السابقة؛ ولا تسجيل منذ ذلك الحين",
    ),
    Reason(
        "left the province by transfer at the end of the previous year: schooling elsewhere "
        "cannot be confirmed here",
        "a quitté la province par transfert à la fin de l'année précédente : la scolarité "
        "ailleurs ne peut pas être confirmée ici",
        "غادر الإقليم بانتقال في نهاية السنة السابقة: لا يمكن تأكيد تمدرسه في مكان آخر من هنا",
    ),
    Reason(
        "a leaving record of the previous year matches, but not strongly enough to answer "
        "NOT_SCHOOLED",
        "une fiche de départ de l'année précédente correspond, mais pas assez sûrement pour "
        "répondre NOT_SCHOOLED",
        "سجل مغادرة من السنة السابقة يطابق، لكن ليس بما يكفي للإجابة بـ NOT_SCHOOLED",
    ),
    Reason(
        "left at the end of the previous year and not enrolled this year",
        "a quitté l'établissement à la fin de l'année précédente et n'est pas inscrit cette année",
        "غادر في نهاية السنة السابقة وغير مسجل هذه السنة",
    ),
    Reason(
        "no age window is configured for the benefit {benefit}",
        "aucune tranche d'âge n'est configurée pour la prestation {benefit}",
        "لم تحدد أي فئة عمرية للخدمة {benefit}",
    ),
    Reason(
        "no birth date to check the age window of {benefit}",
        "pas de date de naissance pour vérifier la tranche d'âge de {benefit}",
        "لا يوجد تاريخ ازدياد للتحقق من الفئة العمرية لـ {benefit}",
    ),
    Reason(
        "outside the age window of {benefit} ({low}-{high}): aged {age} on {date}",
        "hors de la tranche d'âge de {benefit} ({low}-{high}) : {age} ans au {date}",
        "خارج الفئة العمرية لـ {benefit} ({low}-{high}): عمره {age} سنة في {date}",
    ),
    Reason(
        "the match alone would answer {status}",
        "la correspondance seule répondrait {status}",
        "المطابقة وحدها كانت ستجيب بـ {status}",
    ),
)
WEAK_PREFIX = "weak match: "
WEAK_WORDS = ("correspondance faible : ", "مطابقة ضعيفة: ")
SEPARATOR = "; "


@cache
def _patterns() -> tuple[tuple[re.Pattern[str], Reason], ...]:
    """Each template as a regex anchored at the start of what is left (longest first)."""
    compiled = []
    for reason in sorted(REASONS, key=lambda r: -len(r.english)):
        parts = re.split(r"\{(\w+)\}", reason.english)
        pattern = "".join(
            re.escape(part) if index % 2 == 0 else f"(?P<{part}>[^;]+?)"
            for index, part in enumerate(parts)
        )
        compiled.append((re.compile(pattern + r"(?=; |$)"), reason))
    return tuple(compiled)


def translate(reason: str) -> tuple[str, str]:
    """(French, Arabic) of a matcher's reason. A part no template knows is kept in English
    (tests/tasks/test_review_reasons.py makes sure the matcher writes none)."""
    french: list[str] = []
    arabic: list[str] = []
    rest = reason
    weak = rest.startswith(WEAK_PREFIX)
    if weak:
        rest = rest[len(WEAK_PREFIX) :]
    while rest:
        for pattern, known in _patterns():
            found = pattern.match(rest)
            if found:
                french.append(known.french.format(**found.groupdict()))
                arabic.append(known.arabic.format(**found.groupdict()))
                rest = rest[found.end() :]
                break
        else:
            part, _, rest = rest.partition(SEPARATOR)
            french.append(part)
            arabic.append(part)
            continue
        rest = rest.removeprefix(SEPARATOR)
    fr, ar = " ; ".join(french), "؛ ".join(arabic)
    if weak:
        fr, ar = WEAK_WORDS[0] + fr, WEAK_WORDS[1] + ar
    return fr, ar


def untranslated(reason: str) -> list[str]:
    """The parts of a reason no template knows (empty when all are translated)."""
    rest = reason.removeprefix(WEAK_PREFIX)
    unknown = []
    while rest:
        for pattern, _ in _patterns():
            found = pattern.match(rest)
            if found:
                rest = rest[found.end() :].removeprefix(SEPARATOR)
                break
        else:
            part, _, rest = rest.partition(SEPARATOR)
            unknown.append(part)
    return unknown

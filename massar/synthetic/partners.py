"""Partner funds' request files (CNSS, CMR), the leavers reference, and the expected answers.

Request layouts (UTF-8, no BOM; documented in docs/data-dictionary.md):

* CNSS ``partners/cnss/CNSS_SCOL_<YYYY-YYYY>_0001.csv``: ``;`` separated, dates dd/mm/yyyy,
  header ``REF_CNSS;NUM_IMMATRICULATION;CIN_ASSURE;NOM_ASSURE;PRENOM_ASSURE;NOM_ENFANT;
  PRENOM_ENFANT;DATE_NAISSANCE;SEXE;CODE_MASSAR;TYPE_PRESTATION`` (AF family allowance 12-21,
  PS survivors' pension 16-21).
* CMR ``partners/cmr/CMR_SCOL_<YYYY-YYYY>_0001.csv``: ``,`` separated, ISO dates, header
  ``reference,numero_affiliation,cin_affilie,nom_affilie,prenom_affilie,nom_enfant,
  prenom_enfant,date_naissance,code_massar,nature_prestation`` (PTO orphans 16-21, AF).

``expected.csv`` beside each request: ``fund_reference,expected_status,student_code,
school_code,level_code,leaving_date,reason``.
"""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from massar.synthetic import names
from massar.synthetic.province import SchoolModel, first_year, make_pupil, school_seed, year_bounds
from massar.synthetic.reference import levels
from schemas.exchange import LEAVERS_COLUMNS

EXPECTED_COLUMNS = (
    "fund_reference",
    "expected_status",
    "student_code",
    "school_code",
    "level_code",
    "leaving_date",
    "reason",
)
CNSS_COLUMNS = (
    "REF_CNSS",
    "NUM_IMMATRICULATION",
    "CIN_ASSURE",
    "NOM_ASSURE",
    "PRENOM_ASSURE",
    "NOM_ENFANT",
    "PRENOM_ENFANT",
    "DATE_NAISSANCE",
    "SEXE",
    "CODE_MASSAR",
    "TYPE_PRESTATION",
)
CMR_COLUMNS = (
    "reference",
    "numero_affiliation",
    "cin_affilie",
    "nom_affilie",
    "prenom_affilie",
    "nom_enfant",
    "prenom_enfant",
    "date_naissance",
    "code_massar",
    "nature_prestation",
)
LEAVING_REASONS = ("انقطاع عن الدراسة", "انتقال إلى خارج الإقليم", "انقطاع عن الدراسة")


def school_leavers(model: SchoolModel, seed: int) -> list[dict]:
    """Pupils of this school who left: this year (LEFT) or at the end of last year."""
    rng = random.Random(school_seed(seed, model.plan.code, "leavers"))
    start, _ = year_bounds(model.year)
    fy = first_year(model.year)
    level_codes = sorted({c.level.code for c in model.classes if c.level.nominal_age >= 11})
    out: list[dict] = []
    if not level_codes:
        return out
    for k in range(max(2, len(model.pupils) // 120)):
        level = levels()[rng.choice(level_codes)]
        pupil = make_pupil(rng, model.plan, 90_001 + k, level, model.year)
        this_year = k % 3 != 2
        if this_year:
            left = start + timedelta(days=rng.randrange(15, 200))
            school_year = model.year
        else:
            left = date(fy, 6, 30)
            school_year = f"{fy - 1}/{fy}"
        father = pupil.guardians[0]
        if k % 2 == 0:
            father.cnss, father.cmr = f"{rng.randint(100000000, 999999999)}", ""
        else:
            father.cnss, father.cmr = "", f"{rng.randint(1000000, 9999999)}"
        out.append(
            {
                "student_code": pupil.code,
                "family": pupil.family,
                "first": pupil.first,
                "sex": pupil.sex,
                "birth": pupil.birth,
                "school_code": model.plan.code,
                "level_code": level.code,
                "school_year": school_year,
                "leaving_date": left,
                "reason": rng.choice(LEAVING_REASONS),
                "parent_cin": father.cin,
                "parent_family_fr": father.family_fr,
                "parent_first_fr": father.first_fr,
                "cnss": father.cnss,
                "cmr": father.cmr,
                "orphan": False,
                "this_year": this_year,
            }
        )
    return out


def write_leavers(leavers: list[dict], path: Path) -> int:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(LEAVERS_COLUMNS)
    for r in leavers:
        w.writerow(
            [
                r["school_code"],
                r["school_year"],
                r["student_code"],
                r["family"][0],
                r["first"][0],
                r["sex"],
                _dmy(r["birth"]),
                r["level_code"],
                _dmy(r["leaving_date"]),
                r["reason"],
                r["parent_cin"],
                r["cnss"],
                r["cmr"],
            ]
        )
    path.write_bytes(buf.getvalue().encode("utf-8"))
    return len(leavers)


def _dmy(d: date) -> str:
    return f"{d.day:02d}/{d.month:02d}/{d.year}"


@dataclass
class RequestRow:
    ref: str
    insured: str
    cin: str
    parent_family: str
    parent_first: str
    family: str
    first: str
    birth: date
    sex: str
    code: str
    benefit: str
    # expected
    status: str
    student_code: str = ""
    school_code: str = ""
    level_code: str = ""
    leaving_date: str = ""
    reason: str = ""


def _age(birth: date, year: str) -> int:
    return first_year(year) - birth.year


def _latin(rng: random.Random, name: names.Name, variant: bool) -> str:
    spellings = name[1]
    if variant and len(spellings) > 1:
        return rng.choice(spellings[1:])
    return spellings[0]


def _request(
    fund: str, rng: random.Random, year: str, candidates: list[dict], leavers: list[dict], size: int
) -> list[RequestRow]:
    id_key = "cnss" if fund == "cnss" else "cmr"
    pool = [c for c in candidates if c[id_key] and 12 <= _age(c["birth"], year) <= 21]
    rng.shuffle(pool)
    rows: list[RequestRow] = []

    def benefit(child: dict) -> str:
        orphan_window = (
            child["orphan"]
            and child["parent_relation"] == "الأب"
            and _age(child["birth"], year) >= 16
        )
        if fund == "cnss":
            return "PS" if orphan_window else "AF"
        return "PTO" if orphan_window else "AF"

    def base(
        child: dict,
        status: str,
        reason: str,
        *,
        variant: bool = False,
        arabic: bool = False,
        with_code: bool = False,
        birth: date | None = None,
    ) -> RequestRow:
        family = child["family"][0] if arabic else _latin(rng, child["family"], variant)
        first = child["first"][0] if arabic else _latin(rng, child["first"], variant)
        return RequestRow(
            ref="",
            insured=child[id_key],
            cin=child["parent_cin"],
            parent_family=child["parent_family_fr"],
            parent_first=child["parent_first_fr"],
            family=family,
            first=first,
            birth=birth or child["birth"],
            sex="M" if child["sex"] == "ذكر" else "F",
            code=child["student_code"] if with_code else "",
            benefit=benefit(child),
            status=status,
            student_code=child["student_code"],
            school_code=child["school_code"],
            level_code=child["level_code"],
            reason=reason,
        )

    n_review = 2 if len(pool) >= 6 else 0
    schooled = pool[: max(0, min(len(pool) - n_review, size))]
    review = pool[len(schooled) : len(schooled) + n_review]
    for child in schooled:
        r = rng.random()
        if r < 0.55:
            rows.append(
                base(child, "SCHOOLED", "exact Latin transliteration", with_code=rng.random() < 0.3)
            )
        elif r < 0.8:
            rows.append(
                base(
                    child,
                    "SCHOOLED",
                    "spelling variant of the Latin names",
                    variant=True,
                    with_code=rng.random() < 0.2,
                )
            )
        else:
            rows.append(
                base(
                    child,
                    "SCHOOLED",
                    "names sent in Arabic",
                    arabic=True,
                    with_code=rng.random() < 0.3,
                )
            )
    if review:
        child = review[0]
        b = child["birth"]
        swapped = (
            date(b.year, b.day, b.month)
            if b.day <= 12 and b.day != b.month
            else b + timedelta(days=40)
        )
        row = base(
            child,
            "REVIEW",
            "birth date differs (day/month swapped or wrong month) and "
            "names are a spelling variant; no Massar code",
            variant=True,
            birth=swapped,
        )
        rows.append(row)
        child, other = review[1], schooled[0] if schooled else review[0]
        row = base(
            child,
            "REVIEW",
            f"Massar code given belongs to another child ({other['student_code']}); "
            "names and birth date match a different pupil",
        )
        row.code = other["student_code"]
        rows.append(row)
    for lv in leavers:
        # A fund asks only about children whose benefit needs a schooling proof (12-21).
        if not lv[id_key] or not 12 <= _age(lv["birth"], year) <= 21:
            continue
        this_year = lv["this_year"]
        status = "LEFT" if this_year else "NOT_SCHOOLED"
        reason = (
            "left during the school year (leavers.csv)"
            if this_year
            else "left at the end of the previous school year, not enrolled this year (leavers.csv)"
        )
        if not this_year and lv["reason"] == "انتقال إلى خارج الإقليم":
            # Transferred out of the province: probably schooled elsewhere, so not a "no".
            status, reason = "REVIEW", "left last year for a school outside the province"
        child = dict(lv)
        child["parent_relation"] = "الأب"
        row = base(child, status, reason, with_code=rng.random() < 0.5, variant=rng.random() < 0.3)
        if this_year:
            row.leaving_date = _dmy(lv["leaving_date"])
        rows.append(row)
    # children unknown to the province: out-of-province pupils, students, apprentices
    for _ in range(max(3, size // 6)):
        sex = rng.choice(("ذكر", "أنثى"))
        first = names.pick(rng, names.MALE if sex == "ذكر" else names.FEMALE)
        family = names.pick(rng, names.FAMILY)
        age = rng.randint(12, 21)
        birth = date(first_year(year) - age, 1, 1) + timedelta(days=rng.randrange(365))
        insured = (
            f"{rng.randint(100000000, 999999999)}"
            if fund == "cnss"
            else f"{rng.randint(1000000, 9999999)}"
        )
        prefix = rng.choice(names.CIN_PREFIXES)
        father_first = names.pick(rng, names.MALE)
        benefit_code = (
            ("PS" if fund == "cnss" else "PTO") if age >= 16 and rng.random() < 0.2 else "AF"
        )
        rows.append(
            RequestRow(
                ref="",
                insured=insured,
                cin=f"{prefix}{rng.randint(100000, 999999)}",
                parent_family=family[1][0],
                parent_first=father_first[1][0],
                family=family[1][0],
                first=first[1][0],
                birth=birth,
                sex="M" if sex == "ذكر" else "F",
                code="",
                benefit=benefit_code,
                status="NOT_FOUND",
                reason=f"child aged {age} not schooled in the province under these identifiers",
            )
        )
    rng.shuffle(rows)
    year_tag = year.replace("/", "")
    for k, row in enumerate(rows, start=1):
        row.ref = f"{year_tag}{k:06d}" if fund == "cnss" else f"CMR/{year_tag[:4]}/{k:05d}"
    return rows


def write_partner_files(
    outdir: Path, seed: int, year: str, candidates: list[dict], leavers: list[dict], pupils: int
) -> dict[str, int]:
    """Write both funds' requests and expected answers; returns rows per request."""
    counts: dict[str, int] = {}
    tag = year.replace("/", "-")
    for fund in ("cnss", "cmr"):
        rng = random.Random(f"{seed}:{fund}")
        size = max(6, pupils // 80) if fund == "cnss" else max(4, pupils // 400)
        rows = _request(fund, rng, year, candidates, leavers, size)
        folder = outdir / "partners" / fund
        folder.mkdir(parents=True, exist_ok=True)
        buf = io.StringIO()
        if fund == "cnss":
            w = csv.writer(buf, delimiter=";", lineterminator="\r\n")
            w.writerow(CNSS_COLUMNS)
            for r in rows:
                w.writerow(
                    [
                        r.ref,
                        r.insured,
                        r.cin,
                        r.parent_family,
                        r.parent_first,
                        r.family,
                        r.first,
                        _dmy(r.birth),
                        r.sex,
                        r.code,
                        r.benefit,
                    ]
                )
            name = f"CNSS_SCOL_{tag}_0001.csv"
        else:
            w = csv.writer(buf, delimiter=",", lineterminator="\n")
            w.writerow(CMR_COLUMNS)
            for r in rows:
                w.writerow(
                    [
                        r.ref,
                        r.insured,
                        r.cin,
                        r.parent_family,
                        r.parent_first,
                        r.family,
                        r.first,
                        r.birth.isoformat(),
                        r.code,
                        r.benefit,
                    ]
                )
            name = f"CMR_SCOL_{tag}_0001.csv"
        (folder / name).write_bytes(buf.getvalue().encode("utf-8"))
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(EXPECTED_COLUMNS)
        for r in rows:
            w.writerow(
                [
                    r.ref,
                    r.status,
                    r.student_code,
                    r.school_code,
                    r.level_code,
                    r.leaving_date,
                    r.reason,
                ]
            )
        (folder / "expected.csv").write_bytes(buf.getvalue().encode("utf-8"))
        counts[fund] = len(rows)
    return counts

"""From the model of one school to the content of every file it submits, and the writing."""

from __future__ import annotations

import random
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from massar.synthetic.massar_layouts import (
    LIST_HEADERS,
    TEST_SLOTS,
    ListSheet,
    ListWorkbook,
    NotesFile,
    write_list,
    write_notes,
)
from massar.synthetic.province import (
    ACADEMY,
    DAYS,
    DIRECTORATE,
    SchoolModel,
    age_on_reference,
    first_year,
    school_seed,
    year_bounds,
)
from massar.synthetic.reference import subjects
from massar.synthetic.table_files import CSV_DATASETS, XLSX_DATASETS, Table, new_table, write_table
from schemas.datasets import JUSTIFIED_LABEL

SESSION_LABELS = {1: "الدورة الأولى", 2: "الدورة الثانية"}
EXAM_LABELS = {"local": "محلي", "provincial": "إقليمي", "regional": "جهوي", "national": "وطني"}
ORDINARY, MAKEUP = "عادية", "استدراكية"
YES, NO = "نعم", "لا"
REMARKS = (
    "عمل جيد",
    "نتائج مشجعة",
    "يحتاج إلى دعم",
    "عليه بذل المزيد من الجهد",
    "مستوى حسن",
    "تحسن ملحوظ",
    "غياب متكرر",
)
ABSENCE_REASONS = ("مرض", "ظروف عائلية", "موعد طبي", "سفر", "ظروف مناخية")
INCIDENTS = ("تأخر متكرر", "غياب غير مبرر متكرر", "إخلال بالنظام", "عنف", "غش", "إتلاف ممتلكات")
SANCTIONS = ("تنبيه", "إنذار", "توبيخ", "توقيف مؤقت", "مجلس انضباط", "عمل لفائدة المؤسسة")
RURAL_SUPPORT = ("تيسير", "مليون محفظة", "المطعم المدرسي", "النقل المدرسي")


def ddmmyyyy(d: date, sep: str = "/") -> str:
    return f"{d.day:02d}{sep}{d.month:02d}{sep}{d.year}"


def quarter(value: float, scale: int) -> float:
    value = min(float(scale), max(0.0, value))
    return round(value * 4) / 4


@dataclass(frozen=True)
class FileStyle:
    list_format: str  # xls | xlsx
    notes_naming: str  # old (export_notesCC_<CLASS>_<CODE>) | new (Export_<SCHOOL>_..._<stamp>)


@dataclass
class SchoolFiles:
    code: str
    liste: ListWorkbook
    notes: list[NotesFile]
    tables: dict[str, Table]
    # what the liste sheets stand for, for defects: sheet index -> class code
    sheet_class: list[str] = field(default_factory=list)


def list_file_name(model: SchoolModel, rng: random.Random, fmt: str) -> str:
    y = first_year(model.year) + 1
    d = date(y, 1, 8) + timedelta(days=rng.randrange(20))
    return f"ListEleve_{d:%Y%m%d}.{fmt}"


def written_birthplace(birthplace: str, rng: random.Random) -> str:
    """Genuine lists carry stray spaces around some birthplaces ('  دوار تاركانت  ')."""
    return f"  {birthplace}  " if birthplace and rng.random() < 0.2 else birthplace


def build_liste(model: SchoolModel, fmt: str, rng: random.Random) -> tuple[ListWorkbook, list[str]]:
    book = ListWorkbook(list_file_name(model, rng, fmt), fmt)
    order: list[str] = []
    for klass in model.classes:
        meta = {
            "academy": ACADEMY,
            "directorate": DIRECTORATE,
            "commune": model.plan.commune_ar,
            "school_name": model.plan.name_ar,
            "school_year": model.year,
            "level_label": klass.level.label_ar,
            "class_code": klass.code,
        }
        rows = [
            [
                k,
                p.code,
                p.family_ar,
                p.first_ar,
                p.sex,
                p.birth,
                written_birthplace(p.birthplace, rng),
            ]
            for k, p in enumerate(klass.pupils, start=1)
        ]
        book.sheets.append(ListSheet(meta, list(LIST_HEADERS), rows))
        order.append(klass.code)
    return book, order


def french_capitals(name_fr: str) -> str:
    """'Langue française' → 'LANGUE FRANCAISE', as Massar names newer exports."""
    bare = unicodedata.normalize("NFKD", name_fr)
    return "".join(ch for ch in bare if not unicodedata.combining(ch)).upper()


def _notes_name(
    model: SchoolModel,
    naming: str,
    klass_code: str,
    subject_code: str,
    subject_fr: str,
    semester: int,
    rng: random.Random,
) -> str:
    if naming == "old":  # the two semesters' exports carry the same name: one folder each
        return f"NotesCC/S{semester}/export_notesCC_{klass_code}_{subject_code}.xlsx"
    y = first_year(model.year) + 1
    day = date(y, 1, 22) if semester == 1 else date(y, 6, 10)
    day += timedelta(days=rng.randrange(18))
    stamp = f"{day:%d%m%Y}{rng.randrange(8, 18):02d}{rng.randrange(60):02d}{rng.randrange(60):02d}"
    subject = french_capitals(subject_fr)
    return f"NotesCC/Export_{model.plan.code}_{klass_code}_{subject}_{stamp}.xlsx"


def build_notes(model: SchoolModel, naming: str, rng: random.Random) -> list[NotesFile]:
    subj = subjects()
    out: list[NotesFile] = []
    for klass in model.classes:
        scale = klass.level.mark_scale
        for entry in klass.subjects:
            subject = subj[entry.subject_code]
            teacher = klass.teachers[entry.subject_code]
            difficulty = rng.gauss(0, 0.06)
            # Massar's sheet has three test pairs: a fourth test has no column to go to
            slots = list(TEST_SLOTS[: entry.tests]) + (["activities"] if entry.activities else [])
            for semester in (1, 2):
                meta = {
                    "academy": ACADEMY,
                    "directorate": DIRECTORATE,
                    "school_name": model.plan.name_ar,
                    "level_label": klass.level.label_ar,
                    "class_code": klass.code,
                    "teacher": teacher.name,
                    "session_label": SESSION_LABELS[semester],
                    "subject_name": subject.name_ar,
                    "school_year": model.year,
                }
                nf = NotesFile(
                    rel_path=_notes_name(
                        model,
                        naming,
                        klass.code,
                        entry.subject_code,
                        subject.name_fr,
                        semester,
                        rng,
                    ),
                    school_code=model.plan.code,
                    guid=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    session=semester,
                    subject_code=entry.subject_code,
                    level_internal=klass.level.internal_code,
                    meta=meta,
                    slots=slots,
                    mark_scale=scale,
                )
                not_entered = rng.random() < 0.08  # some teachers have not entered a test yet
                missing_slot = len(slots) - 1 if not_entered else -1
                for p in klass.pupils:
                    row: list = [
                        p.internal_id,
                        p.code,
                        f"{p.family_ar} {p.first_ar}",
                        ddmmyyyy(p.birth, "-"),
                    ]
                    base = (p.ability - difficulty) * scale
                    for i, key in enumerate(slots):
                        r = rng.random()
                        if i == missing_slot or r < 0.015:
                            row += [None, None]
                        elif r < 0.025:
                            row += [None, JUSTIFIED_LABEL]
                        else:
                            spread = 0.08 if key == "activities" else 0.14
                            bonus = 0.06 if key == "activities" else 0.0
                            mark = quarter(rng.gauss(base + bonus * scale, spread * scale), scale)
                            row += [mark, None]
                    row.append(rng.choice(REMARKS) if rng.random() < 0.05 else "")
                    nf.rows.append(row)
                out.append(nf)
    return out


def build_tables(model: SchoolModel, rng: random.Random) -> dict[str, Table]:
    plan, year = model.plan, model.year
    code = plan.code
    subj = subjects()
    t = {name: new_table(name) for name in (*XLSX_DATASETS, *CSV_DATASETS)}

    for klass in model.classes:
        t["classes"].rows.append(
            [
                code,
                year,
                klass.code,
                klass.level.code,
                klass.level.label_ar,
                klass.level.stream_ar,
                klass.room,
                klass.head_teacher,
            ]
        )
    for room in model.rooms:
        t["rooms"].rows.append([code, room.code, room.name, room.type, room.capacity])
    for lesson in model.lessons:
        t["timetable"].rows.append(
            [
                code,
                year,
                lesson.class_code,
                DAYS[lesson.day],
                lesson.slot,
                lesson.subject_code,
                lesson.teacher.code,
                lesson.teacher.name,
                lesson.room,
            ]
        )

    for p in model.pupils:
        for g in p.guardians:
            t["guardians"].rows.append(
                [
                    code,
                    p.code,
                    g.relation,
                    g.family_ar,
                    g.first_ar,
                    g.family_fr,
                    g.first_fr,
                    g.cin,
                    g.cnss,
                    g.cmr,
                    YES if p.orphan else NO,
                    g.phone,
                ]
            )

    start, end = year_bounds(year)
    n_weeks = (end - start).days // 7 + 1
    lessons_of: dict[str, list] = {}
    for lesson in model.lessons:
        lessons_of.setdefault(lesson.class_code, []).append(lesson)

    # exams
    for klass in model.classes:
        scale = klass.level.mark_scale
        exam_subjects: dict[str, list[str]] = {}
        for entry in klass.subjects:
            for exam in entry.exams:
                exam_subjects.setdefault(exam, []).append(entry.subject_code)
        if not exam_subjects:
            continue
        for p in klass.pupils:
            national: list[tuple[str, float | None]] = []
            for exam in ("local", "provincial", "regional", "national"):
                for s in exam_subjects.get(exam, ()):
                    absent = rng.random() < 0.01
                    mark = (
                        None
                        if absent
                        else quarter(rng.gauss(p.ability * scale, 0.15 * scale), scale)
                    )
                    t["exam_marks"].rows.append(
                        [
                            code,
                            year,
                            p.code,
                            klass.code,
                            EXAM_LABELS[exam],
                            ORDINARY,
                            s,
                            subj[s].name_ar,
                            mark,
                            YES if absent else NO,
                        ]
                    )
                    if exam == "national":
                        national.append((s, mark))
            if national:
                mean = sum(m or 0.0 for _, m in national) / len(national)
                if 7 <= mean < 10:
                    for s, m in national:
                        better = quarter((m or 0.0) + abs(rng.gauss(1.5, 1.0)), scale)
                        t["exam_marks"].rows.append(
                            [
                                code,
                                year,
                                p.code,
                                klass.code,
                                EXAM_LABELS["national"],
                                MAKEUP,
                                s,
                                subj[s].name_ar,
                                better,
                                NO,
                            ]
                        )

    # absences per hour slot, only on the class's lessons
    for klass in model.classes:
        mine = lessons_of.get(klass.code, [])
        if not mine:
            continue
        rate = 1.2 if klass.level.cycle == "primary" else 2.5
        for p in klass.pupils:
            seen: set[tuple[date, int]] = set()
            for _ in range(min(8, int(rng.expovariate(1 / rate)))):
                lesson = rng.choice(mine)
                day = start + timedelta(days=lesson.day + 7 * rng.randrange(n_weeks))
                if day > end or (day, lesson.slot) in seen:
                    continue
                seen.add((day, lesson.slot))
                justified = rng.random() < 0.4
                t["absences"].rows.append(
                    [
                        code,
                        year,
                        p.code,
                        klass.code,
                        ddmmyyyy(day),
                        lesson.slot,
                        lesson.subject_code,
                        YES if justified else NO,
                        rng.choice(ABSENCE_REASONS) if justified else "",
                    ]
                )
        # rows grouped by date like a register export
    t["absences"].rows.sort(key=lambda r: (r[3], r[4][6:], r[4][3:5], r[4][:2], r[5], r[2]))

    # discipline
    incident = 0
    rate = 0.004 if plan.cycle == "primary" else 0.03
    days = (end - start).days
    for p in model.pupils:
        if rng.random() < rate:
            incident += 1
            day = start + timedelta(days=rng.randrange(days))
            if day.weekday() == 6:
                day -= timedelta(days=1)
            k = rng.choices(range(len(INCIDENTS)), weights=(5, 4, 5, 1, 2, 1))[0]
            sanction = SANCTIONS[min(len(SANCTIONS) - 1, max(0, k // 2 + rng.randint(-1, 1)))]
            t["discipline"].rows.append(
                [
                    code,
                    year,
                    f"{first_year(year)}-{incident:04d}",
                    p.code,
                    ddmmyyyy(day),
                    INCIDENTS[k],
                    sanction,
                ]
            )

    # social support
    for klass in model.classes:
        cycle = klass.level.cycle
        for p in klass.pupils:
            progs: list[tuple[str, float | None]] = []
            if not plan.urban and cycle in ("primary", "college") and rng.random() < 0.45:
                progs.append(("تيسير", 600.0 if cycle == "primary" else 1000.0))
            if cycle != "lycee" and rng.random() < 0.55:
                progs.append(("مليون محفظة", None))
            if not plan.urban and cycle == "primary" and rng.random() < 0.3:
                progs.append(("المطعم المدرسي", None))
            if not plan.urban and cycle != "primary" and rng.random() < 0.15:
                progs.append(("النقل المدرسي", None))
            if cycle != "primary" and rng.random() < 0.06:
                progs.append(("الداخلية", None))
                progs.append(("المنحة", 1400.0 if cycle == "college" else 1800.0))
            for name, amount in progs:
                day = start + timedelta(days=rng.randrange(0, 21))
                t["support"].rows.append([code, year, p.code, name, ddmmyyyy(day), amount])
    return t


def build_school_files(model: SchoolModel, style: FileStyle, seed: int) -> SchoolFiles:
    rng = random.Random(school_seed(seed, model.plan.code, "files"))
    liste, order = build_liste(model, style.list_format, rng)
    notes = build_notes(
        model, style.notes_naming, random.Random(school_seed(seed, model.plan.code, "marks"))
    )
    tables = build_tables(model, random.Random(school_seed(seed, model.plan.code, "tables")))
    return SchoolFiles(model.plan.code, liste, notes, tables, order)


@dataclass
class WriteStats:
    files: int = 0
    bytes: int = 0
    rows: dict[str, int] = field(default_factory=dict)


def write_school_files(files: SchoolFiles, outdir: Path) -> WriteStats:
    """Write one school's folder in Massar's layouts."""
    list_writer, notes_writer = write_list, write_notes
    folder = outdir / files.code
    folder.mkdir(parents=True, exist_ok=True)
    stats = WriteStats()
    path = folder / files.liste.rel_path
    list_writer(files.liste, path)
    stats.files += 1
    stats.bytes += path.stat().st_size
    stats.rows["students"] = sum(len(s.rows) for s in files.liste.sheets)
    made: set[Path] = set()
    marks = 0
    for nf in files.notes:
        path = folder / nf.rel_path
        if path.parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(path.parent)
        stats.bytes += notes_writer(nf, path)
        stats.files += 1
        marks += len(nf.rows)
    stats.rows["marks"] = marks
    for name, table in files.tables.items():
        stats.bytes += write_table(table, folder / table.rel_path)
        stats.files += 1
        stats.rows[name] = len(table.rows)
    return stats


def partner_candidates(model: SchoolModel, seed: int) -> list[dict]:
    """Pupils aged 11+ with a parent insured at CNSS or affiliated to CMR (for the funds' lists)."""
    rng = random.Random(school_seed(seed, model.plan.code, "partners"))
    out: list[dict] = []
    for klass in model.classes:
        for p in klass.pupils:
            if age_on_reference(p.birth, model.year) < 11:
                continue
            insured = [g for g in p.guardians if g.cnss or g.cmr]
            if not insured or rng.random() > 0.5:
                continue
            out.append(_child_record(p, model.plan.code, klass.level.code, insured[0]))
    return out


def _child_record(p, school_code: str, level_code: str, g) -> dict:
    return {
        "student_code": p.code,
        "family": p.family,
        "first": p.first,
        "sex": p.sex,
        "birth": p.birth,
        "school_code": school_code,
        "level_code": level_code,
        "orphan": p.orphan,
        "parent_relation": g.relation,
        "parent_family_fr": g.family_fr,
        "parent_first_fr": g.first_fr,
        "parent_cin": g.cin,
        "cnss": g.cnss,
        "cmr": g.cmr,
    }

"""Known defects injected into a handful of schools, and the ground truth that lists them.

Every injected defect (and every formatting variant that must be read *without* a finding)
becomes one or more rows of ``ground_truth.csv``:

    school_code, file_name, sheet, sheet_row, column_name, value, expected_rule, description

``sheet_row`` is the 1-based Excel row (for CSV: the line number, the header being line 1);
``column_name`` is the header label as defined in schemas/datasets.py (NotesCC mark/absence
cells: ``<slot label> - النقطة`` / ``<slot label> - التغيب``). File-level findings leave sheet,
row, column and value empty. Formatting variants carry ``expected_rule = none``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date

from massar.synthetic.massar_layouts import (
    LIST_FIRST_ROW,
    LIST_HEADER_ROW,
    NOTES_FIRST_ROW,
    notes_column_name,
)
from massar.synthetic.province import (
    DAYS,
    ProvincePlan,
    SchoolModel,
    first_year,
    school_seed,
)
from massar.synthetic.school import SchoolFiles, ddmmyyyy
from massar.synthetic.table_files import fmt_decimal
from schemas.datasets import (
    ABSENCES,
    EXAM_MARKS,
    JUSTIFIED_LABEL,
    MARKS,
    STUDENTS,
    SUPPORT,
    TIMETABLE,
)

GROUND_TRUTH_COLUMNS = (
    "school_code",
    "file_name",
    "sheet",
    "sheet_row",
    "column_name",
    "value",
    "expected_rule",
    "description",
)

# One instance of each defect kind is injected per province (when the province allows it).
DEFECT_KINDS = (
    "R001",
    "R003",
    "R004",
    "R007",
    "R010",
    "X013",
    "X003",
    "X004",
    "X005",
    "X006",
    "X007",
    "X008",
    "X009",
    "X010",
    "F001",
    "F004",
)
VARIANT_KINDS = (
    "digits_mark",
    "digits_date",
    "decimal_comma",
    "cp1256",
    "header_spaces",
    "tatweel",
)
ARABIC_DIGITS = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")

_L = {c.name: c.header_ar for c in STUDENTS.columns}
_M = {c.name: c.header_ar for c in MARKS.columns}


@dataclass(frozen=True)
class GroundTruth:
    school_code: str
    file_name: str
    sheet: str
    sheet_row: int | None
    column_name: str
    value: str
    expected_rule: str
    description: str

    def as_row(self) -> list[str]:
        return [
            self.school_code,
            self.file_name,
            self.sheet,
            "" if self.sheet_row is None else str(self.sheet_row),
            self.column_name,
            self.value,
            self.expected_rule,
            self.description,
        ]


@dataclass(frozen=True)
class DefectPlan:
    """Which school receives which defects; X002 pairs a source school with a target."""

    kinds: dict[str, tuple[str, ...]]  # school code -> defect and variant kinds
    x002: tuple[str, str] | None  # (source school, target school)

    @property
    def schools(self) -> set[str]:
        out = set(self.kinds)
        if self.x002:
            out |= set(self.x002)
        return out


def plan_defects(province: ProvincePlan) -> DefectPlan:
    """A deterministic handful of schools (never all of them when there are two or more)."""
    folders = sorted(province.folders, key=lambda s: s.code)
    if not folders:
        return DefectPlan({}, None)
    rng = random.Random(f"{province.seed}:defects")
    rng.shuffle(folders)
    n = 1 if len(folders) == 1 else max(1, min(8, len(folders) - 1, (len(folders) + 1) // 2 + 1))
    pair: tuple[str, str] | None = None
    chosen = []
    if len(folders) >= 3:
        for a in folders:
            b = next((s for s in folders if s.code != a.code and s.cycle == a.cycle), None)
            if b is not None:
                pair = (a.code, b.code)
                chosen = [a, b]
                break
    for s in folders:
        if len(chosen) >= n:
            break
        if s not in chosen:
            chosen.append(s)
    kinds: dict[str, list[str]] = {s.code: [] for s in chosen}
    order = [s.code for s in chosen]
    for k, kind in enumerate(DEFECT_KINDS + VARIANT_KINDS):
        kinds[order[k % len(order)]].append(kind)
    return DefectPlan({c: tuple(v) for c, v in kinds.items()}, pair)


class Injector:
    """Applies the defects of one school to its in-memory files and records the ground truth."""

    def __init__(self, files: SchoolFiles, model: SchoolModel, province: ProvincePlan):
        self.f = files
        self.m = model
        self.province = province
        self.rng = random.Random(school_seed(province.seed, model.plan.code, "defects"))
        self.gt: list[GroundTruth] = []
        self.used: set[tuple[str, int]] = set()
        self.used_files: set[str] = set()

    # ---------------------------------------------------------------- helpers
    def add(
        self,
        file_name: str,
        sheet: str,
        row: int | None,
        column: str,
        value: object,
        rule: str,
        description: str,
    ) -> None:
        self.gt.append(
            GroundTruth(
                self.m.plan.code,
                file_name,
                sheet,
                row,
                column,
                "" if value is None else str(value),
                rule,
                description,
            )
        )

    def _free(self, key: str, row: int) -> bool:
        if (key, row) in self.used:
            return False
        self.used.add((key, row))
        return True

    def pick_list_row(self, min_sheets: int = 1) -> tuple[int, int]:
        sheets = self.f.liste.sheets
        for _ in range(200):
            i = self.rng.randrange(len(sheets))
            if not sheets[i].rows:
                continue
            k = self.rng.randrange(len(sheets[i].rows))
            if self._free(f"liste:{i}", k):
                return i, k
        raise RuntimeError("no free ListEleve row")

    def pick_notes(self, need_mark: bool = False) -> tuple[int, int, int]:
        """(file index, row index, slot index) of a NotesCC cell with a numeric mark."""
        notes = self.f.notes
        for _ in range(500):
            j = self.rng.randrange(len(notes))
            nf = notes[j]
            if nf.rel_path in self.used_files or not nf.rows or not nf.slots:
                continue
            k = self.rng.randrange(len(nf.rows))
            s = self.rng.randrange(len(nf.slots))
            if need_mark and not isinstance(nf.rows[k][4 + 2 * s], float):
                continue
            if self._free(f"notes:{j}", k):
                self.used_files.add(nf.rel_path)
                return j, k, s
        raise RuntimeError("no free NotesCC cell")

    def pick_table_row(self, name: str, predicate=None) -> int:
        rows = self.f.tables[name].rows
        for _ in range(500):
            k = self.rng.randrange(len(rows))
            if predicate is not None and not predicate(rows[k]):
                continue
            if self._free(f"table:{name}", k):
                return k
        raise RuntimeError(f"no free row in {name}")

    def list_ref(self, i: int) -> tuple[str, str]:
        return self.f.liste.rel_path, f"Sheet{i + 1}"

    def class_level(self, class_code: str):
        return self.m.class_by_code()[class_code].level

    # ---------------------------------------------------------------- defects
    def R001(self) -> None:
        j, k, _ = self.pick_notes()
        nf = self.f.notes[j]
        bad = nf.rows[k][1][:-1]
        nf.rows[k][1] = bad
        self.add(
            nf.rel_path,
            "NotesCC",
            NOTES_FIRST_ROW + k,
            _M["student_code"],
            bad,
            "R001",
            "student Massar code with 8 digits instead of 9",
        )

    def R003(self) -> None:
        j, k, s = self.pick_notes(need_mark=True)
        nf = self.f.notes[j]
        scale = self.class_level(nf.meta["class_code"]).mark_scale
        bad = scale + 3.5
        nf.rows[k][4 + 2 * s] = bad
        self.add(
            nf.rel_path,
            "NotesCC",
            NOTES_FIRST_ROW + k,
            notes_column_name(nf.slots[s], "mark"),
            fmt_decimal(bad),
            "R003",
            f"mark above the /{scale} scale",
        )

    def R004(self) -> None:
        i, k = self.pick_list_row()
        row = self.f.liste.sheets[i].rows[k]
        bad = f"31/02/{row[5].year}"
        row[5] = bad
        self.add(
            *self.list_ref(i),
            LIST_FIRST_ROW + k,
            _L["birth_date"],
            bad,
            "R004",
            "impossible birth date (31 February) written as text",
        )

    def R007(self) -> None:
        table = self.f.tables["absences"]
        k = self.pick_table_row("absences")
        table.rows.append(list(table.rows[k]))
        line = len(table.rows) + 1
        self._free("table:absences", len(table.rows) - 1)
        self.add(
            table.rel_path,
            "",
            line,
            ABSENCES.column("student_code").header_ar,
            table.rows[k][2],
            "R007",
            f"duplicate of line {k + 2} (same pupil, date and slot)",
        )

    def R010(self) -> None:
        j, k, s = self.pick_notes(need_mark=True)
        nf = self.f.notes[j]
        nf.rows[k][5 + 2 * s] = JUSTIFIED_LABEL
        self.add(
            nf.rel_path,
            "NotesCC",
            NOTES_FIRST_ROW + k,
            notes_column_name(nf.slots[s], "mark"),
            fmt_decimal(nf.rows[k][4 + 2 * s]),
            "R010",
            f"mark entered together with the absence {JUSTIFIED_LABEL} for the same test",
        )

    def X013(self) -> None:
        j, k, _ = self.pick_notes()
        nf = self.f.notes[j]
        others = [c for c in self.m.classes if c.code != nf.meta["class_code"] and c.pupils]
        if not others:
            return
        intruder = self.rng.choice(self.rng.choice(others).pupils)
        nf.rows[k][:4] = [
            intruder.internal_id,
            intruder.code,
            f"{intruder.family_ar} {intruder.first_ar}",
            ddmmyyyy(intruder.birth, "-"),
        ]
        self.add(
            nf.rel_path,
            "NotesCC",
            NOTES_FIRST_ROW + k,
            _M["student_code"],
            intruder.code,
            "X013",
            f"pupil of {intruder.class_code} listed in the marks of {nf.meta['class_code']}",
        )

    def X003(self) -> None:
        sheets = self.f.liste.sheets
        classes = self.f.sheet_class
        for _ in range(200):
            i, k = self.pick_list_row()
            row = sheets[i].rows[k]
            if not isinstance(row[5], date):
                continue
            age = first_year(self.m.year) - row[5].year
            targets = [
                t
                for t in range(len(sheets))
                if t != i
                and self.class_level(classes[t]).min_age
                <= age
                <= self.class_level(classes[t]).max_age
            ]
            if not targets:
                continue
            t = self.rng.choice(targets)
            copy = list(row)
            copy[0] = len(sheets[t].rows) + 1
            sheets[t].rows.append(copy)
            self._free(f"liste:{t}", len(sheets[t].rows) - 1)
            desc = f"same code in {classes[i]} and {classes[t]}"
            self.add(
                *self.list_ref(i), LIST_FIRST_ROW + k, _L["student_code"], row[1], "X003", desc
            )
            self.add(
                *self.list_ref(t),
                LIST_FIRST_ROW + len(sheets[t].rows) - 1,
                _L["student_code"],
                row[1],
                "X003",
                desc,
            )
            return

    def X004(self) -> None:
        classes = self.f.tables["classes"]
        rooms = self.f.tables["rooms"]
        k = self.pick_table_row("classes")
        class_code, room_code = classes.rows[k][2], classes.rows[k][6]
        size = len(self.m.class_by_code()[class_code].pupils)
        for row in rooms.rows:
            if row[1] == room_code:
                row[4] = max(1, size - 4)
        self.add(
            classes.rel_path,
            classes.sheet,
            k + 2,
            classes.spec.column("room_code").header_ar,
            room_code,
            "X004",
            f"class of {size} pupils in room {room_code} of capacity {size - 4}",
        )

    def X005(self) -> None:
        i, k = self.pick_list_row()
        row = self.f.liste.sheets[i].rows[k]
        level = self.class_level(self.f.sheet_class[i])
        bad = date(first_year(self.m.year) - (level.max_age + 5), row[5].month, min(row[5].day, 28))
        row[5] = bad
        self.add(
            *self.list_ref(i),
            LIST_FIRST_ROW + k,
            _L["birth_date"],
            ddmmyyyy(bad),
            "X005",
            f"age {level.max_age + 5} in {level.code} (max {level.max_age})",
        )

    def _timetable_pair(self, differ: int) -> tuple[int, int] | None:
        rows = self.f.tables["timetable"].rows
        by_slot: dict[tuple[str, int], list[int]] = {}
        for idx, row in enumerate(rows):
            by_slot.setdefault((row[3], row[4]), []).append(idx)
        keys = sorted(k for k, v in by_slot.items() if len(v) >= 2)
        self.rng.shuffle(keys)
        for key in keys:
            cands = by_slot[key]
            for a in cands:
                for b in cands:
                    if (
                        a != b
                        and rows[a][2] != rows[b][2]
                        and rows[a][differ] != rows[b][differ]
                        and ("table:timetable", a) not in self.used
                        and ("table:timetable", b) not in self.used
                    ):
                        self.used |= {("table:timetable", a), ("table:timetable", b)}
                        return a, b
        return None

    def X006(self) -> None:
        pair = self._timetable_pair(6)
        if pair is None:
            return
        a, b = pair
        table = self.f.tables["timetable"]
        rows = table.rows
        rows[a][6], rows[a][7] = rows[b][6], rows[b][7]
        label = TIMETABLE.column("teacher_code").header_ar
        where = f"{rows[a][3]} slot {rows[a][4]}"
        desc = f"teacher {rows[b][6]} with {rows[a][2]} and {rows[b][2]} on {where}"
        for idx in (a, b):
            self.add(table.rel_path, table.sheet, idx + 2, label, rows[idx][6], "X006", desc)

    def X007(self) -> None:
        pair = self._timetable_pair(8)
        if pair is None:
            return
        a, b = pair
        table = self.f.tables["timetable"]
        rows = table.rows
        rows[a][8] = rows[b][8]
        label = TIMETABLE.column("room_code").header_ar
        where = f"{rows[a][3]} slot {rows[a][4]}"
        desc = f"room {rows[b][8]} used by {rows[a][2]} and {rows[b][2]} on {where}"
        for idx in (a, b):
            self.add(table.rel_path, table.sheet, idx + 2, label, rows[idx][8], "X007", desc)

    def X008(self) -> None:
        table = self.f.tables["absences"]
        busy: dict[tuple[str, int], set[int]] = {}
        for lesson in self.m.lessons:
            busy.setdefault((lesson.class_code, lesson.day), set()).add(lesson.slot)
        taken = {(r[2], r[4], r[5]) for r in table.rows}
        for _ in range(200):
            k = self.pick_table_row("absences")
            row = table.rows[k]
            d, m, y = (int(x) for x in row[4].split("/"))
            day = date(y, m, d).weekday()
            free = [
                s
                for s in range(1, 9)
                if s not in busy.get((row[3], day), set()) and (row[2], row[4], s) not in taken
            ]
            if not free:
                continue
            row[5] = self.rng.choice(free)
            row[6] = ""
            self.add(
                table.rel_path,
                "",
                k + 2,
                ABSENCES.column("slot").header_ar,
                row[5],
                "X008",
                f"{row[3]} has no lesson on {DAYS[day]} slot {row[5]}",
            )
            return

    def X009(self) -> None:
        table = self.f.tables["support"]
        code = f"Z9{self.rng.randrange(10**8):08d}"
        table.rows.append(
            [
                self.m.plan.code,
                self.m.year,
                code,
                "مليون محفظة",
                f"15/09/{first_year(self.m.year)}",
                None,
            ]
        )
        self._free("table:support", len(table.rows) - 1)
        self.add(
            table.rel_path,
            "",
            len(table.rows) + 1,
            SUPPORT.column("student_code").header_ar,
            code,
            "X009",
            "beneficiary not enrolled in the school",
        )

    def X010(self) -> None:
        table = self.f.tables["exam_marks"]
        if not table.rows:
            return
        declared = {c.code for c in self.m.classes}
        k = self.pick_table_row("exam_marks")
        row = table.rows[k]
        level = row[3].rsplit("-", 1)[0]
        n = 9
        while f"{level}-{n}" in declared:
            n += 1
        row[3] = f"{level}-{n}"
        self.add(
            table.rel_path,
            "",
            k + 2,
            EXAM_MARKS.column("class_code").header_ar,
            row[3],
            "X010",
            "class not declared in classes.xlsx",
        )

    def F001(self) -> None:
        j, _, _ = self.pick_notes()
        nf = self.f.notes[j]
        nf.truncate = True
        self.add(nf.rel_path, "", None, "", "", "F001", "workbook cut in the middle of its zip")

    def F004(self) -> None:
        j, _, _ = self.pick_notes()
        nf = self.f.notes[j]
        other = (
            next(s.code for s in self.province.folders if s.code != self.m.plan.code)
            if len(self.province.folders) > 1
            else "99999Z"
        )
        nf.school_code = other
        self.add(
            nf.rel_path,
            "NotesCC",
            5,
            "",
            other,
            "F004",
            "hidden cell C5 holds another school's code",
        )

    # ---------------------------------------------------------------- variants
    def digits_mark(self) -> None:
        j, k, s = self.pick_notes(need_mark=True)
        nf = self.f.notes[j]
        text = fmt_decimal(nf.rows[k][4 + 2 * s]).translate(ARABIC_DIGITS)
        nf.rows[k][4 + 2 * s] = text
        self.add(
            nf.rel_path,
            "NotesCC",
            NOTES_FIRST_ROW + k,
            notes_column_name(nf.slots[s], "mark"),
            text,
            "none",
            "mark written with Arabic-Indic digits (text cell)",
        )

    def digits_date(self) -> None:
        j, k, _ = self.pick_notes()
        nf = self.f.notes[j]
        text = nf.rows[k][3].translate(ARABIC_DIGITS)
        nf.rows[k][3] = text
        self.add(
            nf.rel_path,
            "NotesCC",
            NOTES_FIRST_ROW + k,
            _M["birth_date"],
            text,
            "none",
            "birth date written with Arabic-Indic digits",
        )

    def decimal_comma(self) -> None:
        table = self.f.tables["exam_marks"]
        label = EXAM_MARKS.column("mark").header_ar
        for k, row in enumerate(table.rows):
            if isinstance(row[8], float):
                text = fmt_decimal(row[8]).replace(".", ",")
                row[8] = text
                if "," in text:
                    self.add(
                        table.rel_path, "", k + 2, label, text, "none", "decimal comma in a mark"
                    )

    def cp1256(self) -> None:
        table = self.f.tables["guardians"]
        table.encoding = "cp1256"
        self.add(
            table.rel_path,
            "",
            None,
            "",
            "",
            "none",
            "CSV encoded in Windows-1256 (no BOM) instead of UTF-8",
        )

    def header_spaces(self) -> None:
        sheet = self.f.liste.sheets[0]
        for idx, text in (
            (2, f"  {sheet.headers[2]}"),
            (5, sheet.headers[5].replace(" ", "  ") + " "),
        ):
            canonical = STUDENTS.columns[idx].header_ar  # the genuine 'النسب ' has a space
            sheet.headers[idx] = text
            self.add(
                self.f.liste.rel_path,
                "Sheet1",
                LIST_HEADER_ROW,
                canonical,
                text,
                "none",
                "header label with extra spaces",
            )
        table = self.f.tables["absences"]
        canonical = table.headers[2]
        table.headers[2] = f" {canonical}  "
        self.add(
            table.rel_path,
            "",
            1,
            canonical,
            table.headers[2],
            "none",
            "header label with leading/trailing spaces",
        )

    def tatweel(self) -> None:
        from massar.synthetic.names import with_tatweel

        i, k = self.pick_list_row()
        row = self.f.liste.sheets[i].rows[k]
        row[2] = with_tatweel(row[2])
        self.add(
            *self.list_ref(i),
            LIST_FIRST_ROW + k,
            _L["family_name"],
            row[2],
            "none",
            "tatweel (kashida) inside the family name",
        )

    # ---------------------------------------------------------------- cross-school
    def x002(self, source: SchoolModel, target: SchoolModel) -> None:
        """Copy a pupil of ``source`` into ``target``'s ListEleve; report this school's row."""
        src_cls, k, tgt_cls = x002_choice(source, target)
        pupil = source.classes[src_cls].pupils[k]
        desc = f"{pupil.code} listed by {source.plan.code} and {target.plan.code}"
        if self.m.plan.code == source.plan.code:
            self.used.add((f"liste:{src_cls}", k))
            self.add(
                *self.list_ref(src_cls),
                LIST_FIRST_ROW + k,
                _L["student_code"],
                pupil.code,
                "X002",
                desc,
            )
        else:
            rows = self.f.liste.sheets[tgt_cls].rows
            rows.append(
                [
                    len(rows) + 1,
                    pupil.code,
                    pupil.family_ar,
                    pupil.first_ar,
                    pupil.sex,
                    pupil.birth,
                    pupil.birthplace,
                ]
            )
            self.used.add((f"liste:{tgt_cls}", len(rows) - 1))
            self.add(
                *self.list_ref(tgt_cls),
                LIST_FIRST_ROW + len(rows) - 1,
                _L["student_code"],
                pupil.code,
                "X002",
                desc,
            )


def x002_choice(source: SchoolModel, target: SchoolModel) -> tuple[int, int, int]:
    """(source class index, pupil index, target class index) with the same level when possible."""
    for i, klass in enumerate(source.classes):
        for t, other in enumerate(target.classes):
            if other.level.code == klass.level.code and klass.pupils:
                return i, min(1, len(klass.pupils) - 1), t
    return 0, 0, 0


def inject(
    files: SchoolFiles, model: SchoolModel, province: ProvincePlan, plan: DefectPlan, build_model
) -> list[GroundTruth]:
    """Apply this school's share of the defect plan; returns its ground-truth rows."""
    code = model.plan.code
    injector = Injector(files, model, province)
    if plan.x002 and code in plan.x002:
        src_code, tgt_code = plan.x002
        by_code = province.by_code()
        source = model if code == src_code else build_model(by_code[src_code], province)
        target = model if code == tgt_code else build_model(by_code[tgt_code], province)
        injector.x002(source, target)
    for kind in plan.kinds.get(code, ()):
        getattr(injector, kind)()
    return injector.gt

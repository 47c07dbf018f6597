"""The deterministic model of a province: schools, classes, pupils, rooms, teachers, timetable.

Everything here is derived from the main seed. The province plan (which schools exist) is cheap
and built once; the model of one school (its classes, pupils, timetable ...) is built from a
seed derived from the main seed and the school code only, so building it in any process, in any
order, gives the same school.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta

from massar.synthetic import names
from massar.synthetic.reference import CurriculumEntry, Level, curriculum, levels

# As genuine exports write them (ListEleve T6/U8, NotesCC D7/I7).
ACADEMY = "سوس ماسة"
DIRECTORATE = "إقليم: تيزنيت"

# Default province (Tiznit-like): counts of each kind of school.
DEFAULT_COUNTS = {"primary": 95, "satellite": 115, "college": 26, "lycee": 14}

# (Arabic, French, urban?) communes of the province of Tiznit; Tiznit city weighs more.
COMMUNES: tuple[tuple[str, str, bool], ...] = (
    ("تيزنيت", "Tiznit", True),
    ("أكلو", "Aglou", False),
    ("ميرلفت", "Mirleft", True),
    ("تافراوت", "Tafraout", True),
    ("أنزي", "Anzi", False),
    ("أربعاء الساحل", "Arbaa Sahel", False),
    ("الركادة", "Reggada", False),
    ("تيغمي", "Tighmi", False),
    ("سيدي بوعبدلي", "Sidi Bouabdelli", False),
    ("بونعمان", "Bounaamane", False),
    ("وجان", "Ouijjane", False),
    ("المعدر الكبير", "Maader Kabir", False),
    ("أربعاء رسموكة", "Arbaa Rasmouka", False),
    ("أملن", "Ammelne", False),
    ("أفلا إغير", "Afella Ighir", False),
    ("تارسواط", "Tarsouat", False),
    ("أيت وافقا", "Ait Ouafka", False),
    ("إريغ نتاهالة", "Irigh N'Tahala", False),
    ("تيزغران", "Tizoughrane", False),
    ("تاسريرت", "Tasrirt", False),
)
_COMMUNE_WEIGHTS = (14, 3, 3, 3, 2, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1)

SCHOOL_NAMES: tuple[tuple[str, str], ...] = (
    ("ابن خلدون", "Ibn Khaldoun"),
    ("المختار السوسي", "Al Mokhtar Essoussi"),
    ("محمد الخامس", "Mohammed V"),
    ("الحسن الثاني", "Hassan II"),
    ("عبد الله بن ياسين", "Abdellah Ben Yassine"),
    ("يوسف بن تاشفين", "Youssef Ben Tachfine"),
    ("المسيرة الخضراء", "Al Massira Al Khadra"),
    ("الأمل", "Al Amal"),
    ("النهضة", "Annahda"),
    ("الفتح", "Al Fath"),
    ("ابن بطوطة", "Ibn Battouta"),
    ("الزرقطوني", "Zerktouni"),
    ("علال الفاسي", "Allal El Fassi"),
    ("ابن رشد", "Ibn Rochd"),
    ("ابن سينا", "Ibn Sina"),
    ("الإمام مالك", "Imam Malik"),
    ("الخوارزمي", "Al Khawarizmi"),
    ("الفارابي", "Al Farabi"),
    ("أنوال", "Anoual"),
    ("الوحدة", "Al Wahda"),
    ("الاستقلال", "Al Istiqlal"),
    ("طارق بن زياد", "Tarik Ibn Ziad"),
    ("عقبة بن نافع", "Okba Ibn Nafii"),
    ("الإمام البخاري", "Imam Al Boukhari"),
    ("المنصور الذهبي", "Al Mansour Eddahbi"),
    ("أحمد الهيبة", "Ahmed El Hiba"),
    ("سيدي محمد بن عبد الله", "Sidi Mohamed Ben Abdellah"),
    ("الأطلس", "Al Atlas"),
    ("الرازي", "Arrazi"),
    ("ابن الهيثم", "Ibn Al Haytham"),
    ("المعتمد بن عباد", "Al Moutamid Ibn Abbad"),
    ("أبو القاسم الشابي", "Abou Al Kacem Chabbi"),
    ("الشريف الإدريسي", "Charif Al Idrissi"),
    ("محمد السادس", "Mohammed VI"),
    ("الأدارسة", "Al Adarissa"),
    ("المرابطين", "Al Mourabitine"),
    ("الموحدين", "Al Mouwahidine"),
    ("الأندلس", "Al Andalous"),
    ("الياسمين", "Al Yasmine"),
    ("الفضيلة", "Al Fadila"),
)

DOUARS: tuple[tuple[str, str], ...] = (
    ("تاكموت", "Tagmout"),
    ("إدوسكا", "Idouska"),
    ("أكرض", "Agard"),
    ("تيمولاي", "Timoulay"),
    ("إغرم", "Ighrem"),
    ("تاكاديرت", "Tagadirt"),
    ("أمسكروض", "Amskroud"),
    ("إفران", "Ifrane"),
    ("تيزي", "Tizi"),
    ("أضاض", "Adad"),
    ("تكانت", "Tagant"),
    ("إمي نتاتلت", "Imi N'Tatelt"),
    ("أيت الرخا", "Ait Rkha"),
    ("تامانارت", "Tamanart"),
    ("إداوسملال", "Idaousmlal"),
    ("تيوغزة", "Tioughza"),
    ("أسيف", "Assif"),
    ("تالعينت", "Talaint"),
    ("أكني", "Agni"),
    ("إكيدي", "Iguidi"),
    ("تانالت", "Tanalt"),
    ("أيت عبلا", "Ait Abla"),
    ("إليغ", "Iligh"),
    ("تيزنيت القديمة", "Tiznit Lqdima"),
    ("أبودرار", "Aboudrar"),
    ("إدا ؤكوكمار", "Ida Ougoukmar"),
)

DAYS = ("الإثنين", "الثلاثاء", "الأربعاء", "الخميس", "الجمعة", "السبت")
SLOTS = 8

PRIMARY_LEVELS = ("1APG", "2APG", "3APG", "4APG", "5APG", "6APG")


def school_seed(seed: int, school_code: str, purpose: str = "model") -> str:
    """A per-school seed string: random.Random(str) hashes it with SHA-512 (stable)."""
    return f"{seed}:{school_code}:{purpose}"


def first_year(year: str) -> int:
    return int(year.split("/")[0])


def year_bounds(year: str) -> tuple[date, date]:
    """First and last day of lessons of the school year."""
    y = first_year(year)
    start = date(y, 9, 11)
    start += timedelta(days=(7 - start.weekday()) % 7)  # a Monday
    return start, date(y + 1, 6, 28)


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class SchoolPlan:
    index: int  # 1-based position in the province, drives code blocks
    code: str
    name_ar: str
    name_fr: str
    commune_ar: str
    commune_fr: str
    urban: bool
    cycle: str  # primary | college | lycee
    type: str  # main | satellite
    parent_code: str = ""

    @property
    def submits(self) -> bool:
        """Satellites submit under their main school's code (no folder of their own)."""
        return self.type == "main"


@dataclass(frozen=True)
class ProvincePlan:
    seed: int
    year: str
    schools: tuple[SchoolPlan, ...]

    def by_code(self) -> dict[str, SchoolPlan]:
        return {s.code: s for s in self.schools}

    def satellites_of(self, code: str) -> list[SchoolPlan]:
        return [s for s in self.schools if s.parent_code == code]

    @property
    def folders(self) -> list[SchoolPlan]:
        return [s for s in self.schools if s.submits]


def scaled_counts(schools: int | None) -> dict[str, int]:
    if schools is None:
        return dict(DEFAULT_COUNTS)
    total = sum(DEFAULT_COUNTS.values())
    counts = {k: round(v * schools / total) for k, v in DEFAULT_COUNTS.items()}
    if schools >= 3:
        for kind in ("primary", "college", "lycee"):
            counts[kind] = max(1, counts[kind])
    elif schools >= 1:
        counts = {"primary": 1, "satellite": 0, "college": 1 if schools == 2 else 0, "lycee": 0}
    counts["satellite"] = max(0, schools - counts["primary"] - counts["college"] - counts["lycee"])
    while sum(counts.values()) > schools and counts["primary"] > 1:
        counts["primary"] -= 1
    return counts


def build_plan(seed: int, year: str, schools: int | None) -> ProvincePlan:
    rng = random.Random(f"{seed}:plan")
    counts = scaled_counts(schools)
    total = sum(counts.values())
    numbers = rng.sample(range(10000, 99999), total)
    letters = "ABCDEFGHJKLMNPRSTUVWXYZ"
    codes = [f"{n:05d}{rng.choice(letters)}" for n in numbers]
    out: list[SchoolPlan] = []
    used_names: dict[str, int] = {}

    def commune(urban_bias: float) -> tuple[str, str, bool]:
        weights = [
            w * (urban_bias if c[2] else 1.0)
            for c, w in zip(COMMUNES, _COMMUNE_WEIGHTS, strict=True)
        ]
        return rng.choices(COMMUNES, weights=weights)[0]

    def school_name(prefix_ar: str, prefix_fr: str, comm: tuple[str, str, bool]) -> tuple[str, str]:
        base_ar, base_fr = SCHOOL_NAMES[rng.randrange(len(SCHOOL_NAMES))]
        key = f"{prefix_ar}{base_ar}"
        used_names[key] = used_names.get(key, 0) + 1
        if used_names[key] > 1:  # homonyms across communes carry the commune name
            return f"{prefix_ar} {base_ar} - {comm[0]}", f"{prefix_fr} {base_fr} - {comm[1]}"
        return f"{prefix_ar} {base_ar}", f"{prefix_fr} {base_fr}"

    index = 0
    primaries: list[SchoolPlan] = []
    for kind, prefix_ar, prefix_fr, bias in (
        ("primary", "مدرسة", "Ecole", 1.0),
        ("college", "الثانوية الإعدادية", "Collège", 3.0),
        ("lycee", "الثانوية التأهيلية", "Lycée", 5.0),
    ):
        for _ in range(counts[kind]):
            comm = commune(bias)
            if kind == "primary" and not comm[2]:
                name_ar, name_fr = f"م/م {comm[0]}", f"GS {comm[1]}"
                n = used_names.get(name_ar, 0) + 1
                used_names[name_ar] = n
                if n > 1:
                    name_ar, name_fr = f"{name_ar} {n}", f"{name_fr} {n}"
            else:
                name_ar, name_fr = school_name(prefix_ar, prefix_fr, comm)
            plan = SchoolPlan(
                index=index + 1,
                code=codes[index],
                name_ar=name_ar,
                name_fr=name_fr,
                commune_ar=comm[0],
                commune_fr=comm[1],
                urban=comm[2],
                cycle=kind,
                type="main",
            )
            index += 1
            out.append(plan)
            if kind == "primary":
                primaries.append(plan)
    # Satellites hang off rural main primary schools first.
    rural = [p for p in primaries if not p.urban] or primaries
    for k in range(counts["satellite"]):
        parent = rural[k % len(rural)] if k < len(rural) else rng.choice(rural)
        douar_ar, douar_fr = DOUARS[rng.randrange(len(DOUARS))]
        out.append(
            SchoolPlan(
                index=index + 1,
                code=codes[index],
                name_ar=f"فرعية {douar_ar}",
                name_fr=f"Satellite {douar_fr}",
                commune_ar=parent.commune_ar,
                commune_fr=parent.commune_fr,
                urban=False,
                cycle="primary",
                type="satellite",
                parent_code=parent.code,
            )
        )
        index += 1
    return ProvincePlan(seed=seed, year=year, schools=tuple(out))


# --------------------------------------------------------------------------- school model


@dataclass
class Guardian:
    relation: str  # الأب | الأم | الوصي
    family_ar: str
    first_ar: str
    family_fr: str
    first_fr: str
    cin: str
    cnss: str
    cmr: str
    phone: str
    deceased: bool = False


@dataclass
class Pupil:
    code: str
    internal_id: int
    family: names.Name
    first: names.Name
    sex: str  # ذكر | أنثى
    birth: date
    birthplace: str
    ability: float  # 0..1
    class_code: str = ""
    orphan: bool = False
    guardians: list[Guardian] = field(default_factory=list)

    @property
    def family_ar(self) -> str:
        return self.family[0]

    @property
    def first_ar(self) -> str:
        return self.first[0]


@dataclass
class Room:
    code: str
    name: str
    type: str
    capacity: int


@dataclass
class Teacher:
    code: str  # PPR
    name: str


@dataclass
class SchoolClass:
    code: str
    level: Level
    room: str
    site: str  # school code of the main school or the satellite the class sits in
    pupils: list[Pupil] = field(default_factory=list)
    head_teacher: str = ""
    teachers: dict[str, Teacher] = field(default_factory=dict)  # subject code -> teacher

    @property
    def subjects(self) -> tuple[CurriculumEntry, ...]:
        return curriculum()[self.level.code]


@dataclass
class Lesson:
    class_code: str
    day: int  # 0..5
    slot: int  # 1..8
    subject_code: str
    teacher: Teacher
    room: str


@dataclass
class SchoolModel:
    plan: SchoolPlan
    year: str
    classes: list[SchoolClass]
    rooms: list[Room]
    lessons: list[Lesson]
    rng_seed: str

    @property
    def pupils(self) -> list[Pupil]:
        return [p for c in self.classes for p in c.pupils]

    def class_by_code(self) -> dict[str, SchoolClass]:
        return {c.code: c for c in self.classes}


def _class_layout(
    plan: SchoolPlan, sats: list[SchoolPlan], rng: random.Random
) -> list[tuple[str, str, int]]:
    """(level code, site code, size) for every class of a school, satellites included."""
    out: list[tuple[str, str, int]] = []
    if plan.cycle == "primary":
        for lvl in PRIMARY_LEVELS:
            n = rng.choice((1, 2, 2, 3)) if plan.urban else rng.choice((1, 1, 1, 1, 2))
            out += [(lvl, plan.code, rng.randint(25, 32)) for _ in range(n)]
        for sat in sats:
            start = rng.randint(0, 2)
            for lvl in PRIMARY_LEVELS[start : start + rng.randint(1, 3)]:
                out.append((lvl, sat.code, rng.randint(8, 20)))
    elif plan.cycle == "college":
        for year_n in (1, 2, 3):
            n = rng.randint(3, 6) if plan.urban else rng.randint(2, 4)
            for _ in range(n):
                lvl = f"{year_n}APIC" if rng.random() < 0.6 else f"{year_n}ASCG"
                out.append((lvl, plan.code, rng.randint(30, 40)))
    else:
        big = plan.urban
        streams = {
            "TC": (("TCSF", 0.45), ("TCS", 0.2), ("TCLSH", 0.35)),
            "1BAC": (("1BACSEF", 0.55), ("1BACSMF", 0.1), ("1BACLSH", 0.35)),
            "2BAC": (("2BACSPF", 0.3), ("2BACSVTF", 0.3), ("2BACSMAF", 0.08), ("2BACLSH", 0.32)),
        }
        for group, options in streams.items():
            n = rng.randint(4, 6) if big else rng.randint(3, 4)
            if group == "TC":
                n += 1
            chosen = [options[0][0], options[-1][0]]  # every lycée has the main two streams
            while len(chosen) < n:
                chosen.append(
                    rng.choices([o[0] for o in options], weights=[o[1] for o in options])[0]
                )
            out += [(lvl, plan.code, rng.randint(30, 42)) for lvl in chosen]
    return out


def _cin(rng: random.Random) -> str:
    prefix = rng.choice(names.CIN_PREFIXES)
    digits = 6 if len(prefix) == 1 or rng.random() < 0.7 else 5
    return f"{prefix}{rng.randint(10 ** (digits - 1), 10**digits - 1)}"


def _guardians(rng: random.Random, pupil: Pupil) -> list[Guardian]:
    def person(
        relation: str, family: names.Name, first: names.Name, private: float, civil: float
    ) -> Guardian:
        r = rng.random()
        cnss = f"{rng.randint(100000000, 999999999)}" if r < private else ""
        cmr = f"{rng.randint(1000000, 9999999)}" if private <= r < private + civil else ""
        return Guardian(
            relation=relation,
            family_ar=family[0],
            first_ar=first[0],
            family_fr=family[1][0],
            first_fr=first[1][0],
            cin=_cin(rng),
            cnss=cnss,
            cmr=cmr,
            phone=f"0{rng.choice('67')}{rng.randint(10000000, 99999999)}",
        )

    father = person("الأب", pupil.family, names.pick(rng, names.MALE), 0.35, 0.12)
    mother = person(
        "الأم", names.pick(rng, names.FAMILY), names.pick(rng, names.FEMALE), 0.10, 0.06
    )
    out = [father, mother]
    if pupil.orphan:
        father.deceased = True
        father.phone = ""
        if rng.random() < 0.3:
            out.append(person("الوصي", pupil.family, names.pick(rng, names.MALE), 0.3, 0.1))
    return out


def student_code(rng: random.Random, school_index: int, seq: int) -> str:
    return f"{rng.choice('DEFGHJKMNPRS')}1{school_index:03d}{seq:05d}"


def make_pupil(rng: random.Random, school: SchoolPlan, seq: int, level: Level, year: str) -> Pupil:
    sex = "ذكر" if rng.random() < 0.51 else "أنثى"
    delay = rng.choices((-1, 0, 1, 2, 3), weights=(2, 70, 20, 6, 2))[0]
    age = max(level.min_age, min(level.max_age, level.nominal_age + delay))
    birth_year = first_year(year) - age
    birth = date(birth_year, 1, 1) + timedelta(days=rng.randrange(365))
    pupil = Pupil(
        code=student_code(rng, school.index, seq),
        internal_id=2_000_000 + school.index * 5_000 + seq,
        family=names.pick(rng, names.FAMILY),
        first=names.pick(rng, names.MALE if sex == "ذكر" else names.FEMALE),
        sex=sex,
        birth=birth,
        birthplace=rng.choice(names.BIRTHPLACES) if rng.random() < 0.85 else "",
        ability=min(0.98, max(0.05, rng.gauss(0.6, 0.17))),
        orphan=rng.random() < 0.03 + 0.004 * age,
    )
    pupil.guardians = _guardians(rng, pupil)
    return pupil


def _teacher(rng: random.Random, school: SchoolPlan, k: int) -> Teacher:
    male = rng.random() < 0.55
    first = names.pick(rng, names.MALE if male else names.FEMALE)[0]
    return Teacher(
        code=f"{1_000_000 + school.index * 300 + k}",
        name=f"{names.pick(rng, names.FAMILY)[0]} {first}",
    )


def build_school(plan: SchoolPlan, province: ProvincePlan) -> SchoolModel:
    """The whole model of one submitting school (satellites' classes included)."""
    seed = school_seed(province.seed, plan.code)
    rng = random.Random(seed)
    lv = levels()
    sats = province.satellites_of(plan.code)
    layout = _class_layout(plan, sats, rng)
    sat_index = {s.code: i + 1 for i, s in enumerate(sats)}

    classes: list[SchoolClass] = []
    rooms: list[Room] = []
    counters: dict[str, int] = {}
    seq = 0
    sat_rooms: dict[str, int] = {}
    main_rooms = 0
    # classes in level order, main school first then satellites
    order = {code: i for i, code in enumerate(lv)}
    layout.sort(key=lambda t: (order[t[0]], t[1] != plan.code))
    for level_code, site, size in layout:
        level = lv[level_code]
        counters[level_code] = counters.get(level_code, 0) + 1
        class_code = f"{level_code}-{counters[level_code]}"
        if site == plan.code:
            main_rooms += 1
            room = Room(
                f"S{main_rooms:02d}",
                f"القاعة {main_rooms}",
                "قاعة عادية",
                size + rng.randint(2, 10),
            )
        else:
            sat_rooms[site] = sat_rooms.get(site, 0) + 1
            si = sat_index[site]
            sat_name = next(s.name_ar for s in sats if s.code == site)
            room = Room(
                f"F{si}{sat_rooms[site]:02d}",
                f"القاعة {sat_rooms[site]} - {sat_name}",
                "قاعة عادية",
                size + rng.randint(4, 14),
            )
        rooms.append(room)
        klass = SchoolClass(code=class_code, level=level, room=room.code, site=site)
        for _ in range(size):
            seq += 1
            pupil = make_pupil(rng, plan, seq, level, province.year)
            pupil.class_code = class_code
            klass.pupils.append(pupil)
        klass.pupils.sort(key=lambda p: (p.family_ar, p.first_ar))
        classes.append(klass)

    special: dict[str, Room] = {}
    if plan.cycle != "primary":
        for code, name, rtype, cap in (
            ("L01", "مختبر العلوم 1", "مختبر", 40),
            ("L02", "مختبر العلوم 2", "مختبر", 40),
            ("I01", "قاعة الإعلاميات", "قاعة الإعلاميات", 40),
            ("M01", "القاعة متعددة الوسائط", "قاعة متعددة الوسائط", 60),
            ("T01", "الملعب", "ملعب", 200),
        ):
            special[code] = Room(code, name, rtype, cap)
            rooms.append(special[code])

    lessons = _timetable(rng, plan, classes, special)
    return SchoolModel(
        plan=plan, year=province.year, classes=classes, rooms=rooms, lessons=lessons, rng_seed=seed
    )


def _assign_teachers(rng: random.Random, plan: SchoolPlan, classes: list[SchoolClass]) -> None:
    k = 0

    def new() -> Teacher:
        nonlocal k
        k += 1
        return _teacher(rng, plan, k)

    if plan.cycle == "primary":
        amazigh: Teacher | None = None
        amazigh_load = 0
        french: Teacher | None = None
        french_classes = 0
        for klass in classes:
            main = new()
            if french is None or french_classes >= 2:
                french, french_classes = new(), 0
            french_classes += 1
            for entry in klass.subjects:
                if entry.subject_code == "0502":
                    klass.teachers[entry.subject_code] = french
                elif entry.subject_code == "0503":
                    if amazigh is None or amazigh_load + entry.weekly_hours > 24:
                        amazigh, amazigh_load = new(), 0
                    amazigh_load += entry.weekly_hours
                    klass.teachers[entry.subject_code] = amazigh
                else:
                    klass.teachers[entry.subject_code] = main
            klass.head_teacher = main.name
        return
    budget = 24 if plan.cycle == "college" else 21
    current: dict[str, tuple[Teacher, int]] = {}
    for klass in classes:
        for entry in klass.subjects:
            teacher, load = current.get(entry.subject_code, (None, budget + 1))
            if teacher is None or load + entry.weekly_hours > budget:
                teacher, load = new(), 0
            current[entry.subject_code] = (teacher, load + entry.weekly_hours)
            klass.teachers[entry.subject_code] = teacher
        klass.head_teacher = klass.teachers[klass.subjects[0].subject_code].name


def _timetable(
    rng: random.Random, plan: SchoolPlan, classes: list[SchoolClass], special: dict[str, Room]
) -> list[Lesson]:
    _assign_teachers(rng, plan, classes)
    busy_class: set[tuple[str, int, int]] = set()
    busy_teacher: set[tuple[str, int, int]] = set()
    busy_room: set[tuple[str, int, int]] = set()
    lessons: list[Lesson] = []
    grid = [(d, s) for d in range(len(DAYS)) for s in range(1, SLOTS + 1)]
    for klass in classes:
        per_day: dict[tuple[str, int], int] = {}
        todo: list[CurriculumEntry] = []
        for entry in klass.subjects:
            todo += [entry] * entry.weekly_hours
        rng.shuffle(todo)
        for entry in todo:
            teacher = klass.teachers[entry.subject_code]
            rooms = [klass.room]
            if special:
                if entry.subject_code in ("0070", "0080") and rng.random() < 0.6:
                    rooms = [rng.choice(("L01", "L02")), klass.room]
                elif entry.subject_code == "0100":
                    rooms = ["T01"]
                elif entry.subject_code == "0030":  # informatics (subjects.csv)
                    rooms = ["I01", "M01"]
            cells = grid[:]
            rng.shuffle(cells)
            placed = False
            for d, s in cells:
                if (klass.code, d, s) in busy_class or (teacher.code, d, s) in busy_teacher:
                    continue
                if per_day.get((entry.subject_code, d), 0) >= 2:
                    continue
                for room in rooms:
                    if (room, d, s) not in busy_room:
                        busy_class.add((klass.code, d, s))
                        busy_teacher.add((teacher.code, d, s))
                        busy_room.add((room, d, s))
                        per_day[(entry.subject_code, d)] = (
                            per_day.get((entry.subject_code, d), 0) + 1
                        )
                        lessons.append(Lesson(klass.code, d, s, entry.subject_code, teacher, room))
                        placed = True
                        break
                if placed:
                    break
    lessons.sort(key=lambda x: (x.class_code, x.day, x.slot))
    return lessons


def age_on_reference(birth: date, year: str) -> int:
    """Age on 31 December of the first calendar year of the school year."""
    return first_year(year) - birth.year

"""Coverage of a collection campaign: what each school owes and what it has sent.

What is owed is derived, never typed (docs/coverage.md):

* the school's classes and their levels are read from the rows it stands by — the active
  (accepted or partly accepted) class list and student list of the campaign's school year, as
  staged for tonight's consolidation (staged and quarantined rows: a pupil quarantined for a
  bad birth date still shows that his class exists);
* per class: one student list entry (``students``), and one NotesCC per subject of the level's
  curriculum (``schemas/reference/curriculum.csv``) and per semester of the campaign
  (``marks``);
* per school: one file of every other dataset the campaign names; ``exam_marks`` only when a
  class is at a level whose curriculum has exams.

Each owed item is compared with the submissions of the control database: placed by their scope
key (``dataset|school|year[|class|subject|semester]``, decision 0003), or, for a rejected file
(which has no scope key), by its dataset and Massar's own file name when it tells the class,
subject and semester. An item is ``accepted`` or ``partially_accepted`` (covered) by its latest
active submission, else ``received`` (not processed yet), ``rejected``, or ``missing``.
Satellites submit under their main school: whatever comes under a satellite's code counts for
its main school, whose classes include the satellite's.

Nothing here holds pupil data: items are schools, datasets, classes, subjects and semesters.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
from sqlalchemy import Float, Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column

from ground.utc import as_utc, utcnow
from schemas.campaigns import CAMPAIGNS_FILE, Campaign, load_campaigns
from schemas.level_codes import level_code_expr
from schemas.reference_data import reference_rows
from warehouse.control import Base, ControlDatabase, School, Submission

if TYPE_CHECKING:
    import pyarrow as pa

COVERED = ("accepted", "partially_accepted")
# An item's states, from the best to the worst.
STATES = ("accepted", "partially_accepted", "received", "rejected", "missing")
PER_CLASS = ("students", "marks")


class CoverageSnapshot(Base):
    """The province's coverage of a campaign per cycle at one moment (after each ingest): what
    the coverage page draws "over time". Counts only."""

    __tablename__ = "coverage_snapshots"

    snapshot_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(String(60), index=True)
    taken_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    cycle: Mapped[str] = mapped_column(String(20))  # primary | college | lycee | "" unknown
    schools: Mapped[int] = mapped_column(Integer, default=0)
    owed: Mapped[int] = mapped_column(Integer, default=0)
    covered: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    missing: Mapped[int] = mapped_column(Integer, default=0)
    rate: Mapped[float] = mapped_column(Float, default=0.0)


@dataclass(frozen=True, order=True)
class OwedItem:
    """One file (or one class of the student list) a school owes."""

    school_code: str
    dataset: str
    class_code: str = ""  # "" for a school-level dataset, or when the classes are unknown
    subject_code: str = ""
    semester: str = ""

    def label(self) -> str:
        """``marks 3APIC-2 0010 S1``: what an officer reads."""
        parts = [self.dataset, self.class_code, self.subject_code]
        if self.semester:
            parts.append(f"S{self.semester}")
        return " ".join(part for part in parts if part)


@dataclass(frozen=True)
class ItemCoverage:
    item: OwedItem
    state: str  # one of STATES
    submission_id: int | None = None
    file_name: str = ""
    received_at: datetime | None = None

    @property
    def covered(self) -> bool:
        return self.state in COVERED


@dataclass
class SchoolCoverage:
    """A school's owed items for one campaign, with their states."""

    school_code: str
    name: str = ""
    cycle: str = ""
    items: list[ItemCoverage] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # sentences: what could not be derived
    classes_known: bool = True
    known: bool = True  # in the province's list of schools, or sent a file

    def count(self, *states: str) -> int:
        return sum(1 for i in self.items if i.state in states)

    @property
    def owed(self) -> int:
        return len(self.items)

    @property
    def received(self) -> int:
        return self.owed - self.count("missing")

    @property
    def covered(self) -> int:
        return self.count(*COVERED)

    @property
    def missing(self) -> int:
        """Items still owed: never sent, or sent and rejected, or not processed yet."""
        return self.owed - self.covered

    @property
    def still_owed(self) -> list[ItemCoverage]:
        return [i for i in self.items if not i.covered]

    @property
    def rate(self) -> float:
        return self.covered / self.owed if self.owed else 1.0


@dataclass
class CampaignCoverage:
    campaign: Campaign
    today: date
    schools: list[SchoolCoverage]
    notes: list[str] = field(default_factory=list)

    @property
    def days_left(self) -> int:
        return self.campaign.days_left(self.today)

    @property
    def owed(self) -> int:
        return sum(s.owed for s in self.schools)

    @property
    def covered(self) -> int:
        return sum(s.covered for s in self.schools)

    @property
    def rate(self) -> float:
        return self.covered / self.owed if self.owed else 1.0

    def incomplete(self) -> list[SchoolCoverage]:
        """Schools still owing something, the most missing first."""
        return sorted(
            (s for s in self.schools if s.missing), key=lambda s: (-s.missing, s.school_code)
        )

    def late(self) -> list[SchoolCoverage]:
        """After the deadline: the schools still owing something (else none)."""
        return self.incomplete() if self.days_left < 0 else []

    def by_cycle(self) -> dict[str, dict[str, int]]:
        counts: dict[str, Counter[str]] = {}
        for school in self.schools:
            row = counts.setdefault(school.cycle, Counter())
            row["schools"] += 1
            row["owed"] += school.owed
            row["covered"] += school.covered
            row["rejected"] += school.count("rejected")
            row["missing"] += school.missing
        return {cycle: dict(row) for cycle, row in sorted(counts.items())}


# ---- the reference: levels and curriculum ----------------------------------------------------


@dataclass(frozen=True)
class Curriculum:
    subjects: Mapping[str, tuple[str, ...]]  # level code -> subject codes
    exam_levels: frozenset[str]  # levels with at least one exam
    cycles: Mapping[str, str]  # level code -> cycle

    @classmethod
    def read(cls) -> Curriculum:
        subjects: dict[str, list[str]] = defaultdict(list)
        exams: set[str] = set()
        for row in reference_rows("curriculum.csv"):
            subjects[row["level_code"]].append(row["subject_code"])
            if (row.get("exams") or "").strip():
                exams.add(row["level_code"])
        cycles = {row["level_code"]: row["cycle"] for row in reference_rows("levels.csv")}
        return cls({k: tuple(v) for k, v in subjects.items()}, frozenset(exams), cycles)


# ---- the submissions -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Sent:
    submission_id: int
    school_code: str  # the main school it counts for
    dataset: str
    state: str
    school_year: str
    scope: tuple[str, ...]  # the scope key's values after the dataset
    file_name: str
    received_at: datetime | None


# Massar's NotesCC names: export_notesCC_<class>_<subject code>.xlsx (in a S1/S2 folder), and
# Export_<school>_<class>_<SUBJECT IN FRENCH>_<ddmmyyyyHHMMSS>.xlsx.
OLD_NOTES = re.compile(r"(?:^|/)S([12])/export_notesCC_([0-9A-Z]+-\d{1,2})_(\d{4})\.xlsx?$", re.I)
NEW_NOTES = re.compile(
    r"Export_\d{5}[A-Z]_([0-9A-Z]+-\d{1,2})_(.+)_(\d{2})(\d{2})\d{4}\d{6}\.xlsx?$"
)


def _dataset_of_name(file_name: str) -> str:
    """The dataset a file's name says (a file rejected before it was read has none)."""
    name = file_name.rsplit("/", 1)[-1]
    if name.lower().startswith("listeleve"):
        return "students"
    if OLD_NOTES.search(file_name) or name.lower().startswith("export_"):
        return "marks"
    stem = name.rsplit(".", 1)[0].lower()
    return (
        stem
        if stem
        in (
            "classes",
            "rooms",
            "guardians",
            "exam_marks",
            "absences",
            "discipline",
            "timetable",
            "support",
        )
        else ""
    )


def _french_capitals(text: str) -> str:
    import unicodedata

    bare = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in bare if not unicodedata.combining(ch)).upper()


def _marks_place(sent: _Sent, subjects_fr: Mapping[str, set[str]]) -> tuple[str, str, str] | None:
    """(class, subject, semester) of a NotesCC submission: its scope key, else its name."""
    if len(sent.scope) >= 5 and sent.scope[2]:
        return sent.scope[2], sent.scope[3], sent.scope[4]
    old = OLD_NOTES.search(sent.file_name)
    if old:
        return old[2], old[3], old[1]
    new = NEW_NOTES.search(sent.file_name)
    if new:
        codes = subjects_fr.get(new[2].strip().upper(), set())
        month = int(new[4])
        semester = "1" if month <= 3 or month >= 9 else "2"
        if len(codes) == 1:
            return new[1], next(iter(codes)), semester
        return new[1], "|".join(sorted(codes)), semester  # resolved with the class's level
    return None


def _read_submissions(
    database: ControlDatabase, parents: Mapping[str, str], schools: set[str] | None = None
) -> list[_Sent]:
    """The submissions nothing superseded, each under its main school; only those of the main
    ``schools`` and their satellites when given (a chunk's reports ask for a few schools: the
    province's every submission was read for each chunk, 0.2-0.4 s a call at 31 k)."""
    columns = (
        Submission.submission_id,
        Submission.school_code,
        Submission.dataset,
        Submission.state,
        Submission.school_year,
        Submission.scope_key,
        Submission.file_name,
        Submission.received_at,
    )
    query = select(*columns).where(Submission.state != "superseded")
    if schools is not None:
        senders = schools | {code for code, parent in parents.items() if parent in schools}
        query = query.where(Submission.school_code.in_(sorted(senders)))
    with database.session() as session:
        rows = session.execute(query.order_by(Submission.submission_id)).all()
    sent = []
    for sid, school, dataset, state, year, scope_key, file_name, received_at in rows:
        parts = tuple(scope_key.split("|")) if scope_key else ()
        sent.append(
            _Sent(
                int(sid),
                parents.get(school, school),
                dataset or (parts[0] if parts else "") or _dataset_of_name(file_name),
                state,
                year or "",
                parts[1:] if parts else (),
                file_name,
                as_utc(received_at) if received_at else None,
            )
        )
    return sent


# ---- the schools and their classes -----------------------------------------------------------


@dataclass(frozen=True)
class _SchoolRef:
    code: str
    name: str
    cycle: str


def _schools(database: ControlDatabase) -> tuple[dict[str, _SchoolRef], dict[str, str]]:
    """Main schools of the province's list, and satellite → main school."""
    with database.session() as session:
        rows = session.scalars(select(School)).all()
    mains: dict[str, _SchoolRef] = {}
    parents: dict[str, str] = {}
    for row in rows:
        if row.school_type == "satellite" and row.parent_school_code:
            parents[row.school_code] = row.parent_school_code
        else:
            mains[row.school_code] = _SchoolRef(
                row.school_code, row.name_fr or row.name_ar, row.cycle or ""
            )
    return mains, parents


_STRUCTURE_COLUMNS = ("submission_id", "class_code_key", "level_code_key", "level_label")


def _class_rows(
    roots: Sequence[Path], folder_codes: Iterable[str], dataset: str, ids: set[int]
) -> pl.DataFrame | None:
    """submission_id, class_code_key and level_code of the staged and quarantined rows of
    these submissions (only the class columns are read: never a pupil's name)."""
    parts = []
    for root in roots:
        for code in folder_codes:
            for path in sorted((root / code / dataset).glob("*.parquet")):
                names = pl.read_parquet_schema(path)
                wanted = [c for c in _STRUCTURE_COLUMNS if c in names]
                if "class_code_key" not in wanted:
                    continue
                frame = pl.read_parquet(path, columns=wanted).filter(
                    pl.col("submission_id").is_in(sorted(ids))
                )
                if frame.height:
                    parts.append(frame.unique())
    if not parts:
        return None
    frame = pl.concat(parts, how="diagonal_relaxed")
    return frame.select(
        "submission_id",
        pl.col("class_code_key").alias("class_code"),
        level_code_expr(frame).alias("level_code"),
    ).unique()


@dataclass
class _Structure:
    classes: dict[str, str | None] = field(default_factory=dict)  # class -> level code
    listed: dict[int, set[str]] = field(default_factory=dict)  # student list -> its classes


def _structure(
    staging: Path,
    quarantine: Path,
    school: str,
    folders: Sequence[str],
    active: Mapping[str, list[_Sent]],
) -> _Structure:
    found = _Structure()
    for dataset in ("classes", "students"):
        ids = {s.submission_id for s in active.get(dataset, [])}
        if not ids:
            continue
        frame = _class_rows((staging, quarantine), folders, dataset, ids)
        if frame is None:
            continue
        for sid, class_code, level in frame.iter_rows():
            if not class_code:
                continue
            if dataset == "students":
                found.listed.setdefault(int(sid), set()).add(class_code)
            if found.classes.get(class_code) is None:
                found.classes[class_code] = level
    return found


# ---- coverage --------------------------------------------------------------------------------


def _best(sents: Iterable[_Sent]) -> _Sent | None:
    """The submission that gives an item its state: the latest active one, else the latest
    received (not processed yet), else the latest rejected."""
    ordered = sorted(sents, key=lambda s: s.submission_id, reverse=True)
    for states in (COVERED, ("received",), ("rejected",)):
        for sent in ordered:
            if sent.state in states:
                return sent
    return None


def _item(item: OwedItem, sent: _Sent | None) -> ItemCoverage:
    if sent is None:
        return ItemCoverage(item, "missing")
    return ItemCoverage(item, sent.state, sent.submission_id, sent.file_name, sent.received_at)


def _year_of(campaign: Campaign, sents: Iterable[_Sent]) -> list[_Sent]:
    """Submissions of the campaign's year (a file without a year, e.g. rooms, counts)."""
    return [s for s in sents if s.school_year in ("", campaign.school_year)]


def _school_coverage(
    campaign: Campaign,
    ref: _SchoolRef,
    sents: list[_Sent],
    structure: _Structure,
    curriculum: Curriculum,
    subjects_fr: Mapping[str, set[str]],
) -> SchoolCoverage:
    code = ref.code
    by_dataset: dict[str, list[_Sent]] = defaultdict(list)
    for sent in _year_of(campaign, sents):
        by_dataset[sent.dataset].append(sent)
    cycles = Counter(curriculum.cycles.get(level or "", "") for level in structure.classes.values())
    cycle = ref.cycle or (cycles.most_common(1)[0][0] if cycles else "")
    school = SchoolCoverage(code, ref.name, cycle, classes_known=bool(structure.classes))
    classes = sorted(structure.classes.items())
    if not classes and set(campaign.datasets) & {"students", "marks", "exam_marks"}:
        school.notes.append(
            f"School {code} has no classes yet: neither its class list nor its student list "
            f"of {campaign.school_year} has been accepted, so what it owes per class cannot "
            "be derived until one of them is."
        )
    for dataset in campaign.datasets:
        sents_here = by_dataset.get(dataset, [])
        if dataset == "marks":
            school.items.extend(
                _marks_items(
                    campaign, code, classes, sents_here, curriculum, subjects_fr, school.notes
                )
            )
        elif dataset == "students" and classes:
            rejected_or_new = [s for s in sents_here if s.state not in COVERED]
            for class_code, _ in classes:
                listing = [
                    s for s in sents_here if class_code in structure.listed.get(s.submission_id, ())
                ]
                item = OwedItem(code, dataset, class_code)
                school.items.append(_item(item, _best(listing) or _best(rejected_or_new)))
        elif dataset == "exam_marks" and classes:
            if any(level in curriculum.exam_levels for _, level in classes):
                school.items.append(_item(OwedItem(code, dataset), _best(sents_here)))
        else:
            school.items.append(_item(OwedItem(code, dataset), _best(sents_here)))
    return school


def _marks_items(
    campaign: Campaign,
    code: str,
    classes: list[tuple[str, str | None]],
    sents: list[_Sent],
    curriculum: Curriculum,
    subjects_fr: Mapping[str, set[str]],
    notes: list[str],
) -> list[ItemCoverage]:
    if not classes:
        return [_item(OwedItem(code, "marks"), _best(sents))]
    placed: dict[tuple[str, str, str], list[_Sent]] = defaultdict(list)
    levels = dict(classes)
    for sent in sents:
        where = _marks_place(sent, subjects_fr)
        if where is None:
            continue
        class_code, subject, semester = where
        if "|" in subject:  # a French name several cycles share: the class's level decides
            allowed = set(curriculum.subjects.get(levels.get(class_code) or "", ()))
            choices = set(subject.split("|")) & allowed
            subject = next(iter(choices)) if len(choices) == 1 else subject
        placed[(class_code, subject, semester)].append(sent)
    items = []
    semesters = [str(s) for s in campaign.marks_semesters]
    for class_code, level in classes:
        if level is None:
            notes.append(
                f"Class {class_code} of school {code} is at no level the platform knows "
                "(schemas/reference/levels.csv): its marks cannot be derived until its level "
                "is corrected in the class list."
            )
            continue
        subjects = curriculum.subjects.get(level, ())
        if not subjects:
            notes.append(
                f"Class {class_code} of school {code} is at level {level}, which has no "
                "subject in the curriculum (schemas/reference/curriculum.csv): no marks are "
                "owed for it until the level's subjects are declared there."
            )
            continue
        for subject in subjects:
            for semester in semesters:
                item = OwedItem(code, "marks", class_code, subject, semester)
                items.append(_item(item, _best(placed.get((class_code, subject, semester), []))))
    return items


def _subjects_fr() -> dict[str, set[str]]:
    names: dict[str, set[str]] = defaultdict(set)
    for row in reference_rows("subjects.csv"):
        names[_french_capitals(row["name_fr"])].add(row["subject_code"])
    return dict(names)


def campaign_coverage(
    database: ControlDatabase,
    staging: Path,
    quarantine: Path,
    campaigns: Sequence[Campaign],
    today: date,
    school_codes: Iterable[str] | None = None,
) -> list[CampaignCoverage]:
    """Each campaign's coverage on ``today`` (local date), for every main school of the
    province's list and every school that sent a file (or only ``school_codes``)."""
    mains, parents = _schools(database)
    asked = None if school_codes is None else {parents.get(c, c) for c in school_codes}
    per_school: dict[str, list[_Sent]] = defaultdict(list)
    for sent in _read_submissions(database, parents, asked):
        per_school[sent.school_code].append(sent)
    codes = known = set(mains) | set(per_school)
    if asked is not None:
        codes = asked
    folders: dict[str, list[str]] = defaultdict(list)
    for satellite, parent in parents.items():
        folders[parent].append(satellite)
    curriculum = Curriculum.read()
    subjects_fr = _subjects_fr()
    structures: dict[tuple[str, str], _Structure] = {}
    result = []
    for campaign in campaigns:
        schools = []
        for code in sorted(codes):
            key = (code, campaign.school_year)
            if key not in structures:
                active: dict[str, list[_Sent]] = defaultdict(list)
                for sent in _year_of(campaign, per_school.get(code, [])):
                    if sent.state in COVERED and sent.dataset in ("classes", "students"):
                        active[sent.dataset].append(sent)
                structures[key] = _structure(
                    staging, quarantine, code, [code, *folders.get(code, [])], active
                )
            ref = mains.get(code) or _SchoolRef(code, "", "")
            schools.append(
                _school_coverage(
                    campaign,
                    ref,
                    per_school.get(code, []),
                    structures[key],
                    curriculum,
                    subjects_fr,
                )
            )
        for school in schools:
            school.known = school.school_code in known
        notes = [note for school in schools for note in school.notes]
        result.append(CampaignCoverage(campaign, today, schools, notes))
    return result


# ---- the home's campaigns, and coverage as a table -------------------------------------------


def home_campaigns(home: Path) -> list[Campaign]:
    """The campaigns of ``<home>/campaigns.toml`` (none without the file)."""
    return load_campaigns(home / CAMPAIGNS_FILE)


@cache
def _coverage_columns() -> tuple[tuple[str, pa.DataType, str], ...]:
    import pyarrow as pa

    return (
        ("campaign", pa.string(), "Campaign id of campaigns.toml"),
        ("school_code", pa.string(), "Main school that owes the item (satellites count under it)"),
        ("dataset", pa.string(), "Dataset owed (schemas/datasets.py)"),
        ("class_code", pa.string(), "Class, for students and marks (empty when unknown)"),
        ("subject_code", pa.string(), "Subject of the level's curriculum, for marks"),
        ("semester", pa.string(), "Semester 1 or 2, for marks"),
        ("state", pa.string(), "accepted, partially_accepted, received, rejected or missing"),
        ("last_submission", pa.int64(), "Submission that gives the state (null when missing)"),
        ("received_at", pa.timestamp("us", tz="UTC"), "When that submission was received"),
    )


def __getattr__(name: str) -> Any:
    """``COVERAGE_COLUMNS`` (name, Arrow type, description of each column of the coverage
    table) made when first asked for: pyarrow (and numpy) cost ~0.1 s of CPU to import, and
    the ingest's workers import this module for the reports' coverage without ever building
    the table."""
    if name == "COVERAGE_COLUMNS":
        return _coverage_columns()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


COVERAGE_DOC = (
    "What each school owes per campaign (campaigns.toml) and its state: one row per file or "
    "class owed, derived from the classes, levels and curriculum (docs/coverage.md)."
)


def coverage_rows(coverages: Iterable[CampaignCoverage]) -> pa.Table:
    """One row per owed item of every campaign (COVERAGE_COLUMNS)."""
    import pyarrow as pa

    columns = _coverage_columns()
    data: dict[str, list[Any]] = {name: [] for name, _, _ in columns}
    for coverage in coverages:
        for school in coverage.schools:
            for entry in school.items:
                item = entry.item
                data["campaign"].append(coverage.campaign.id)
                data["school_code"].append(item.school_code)
                data["dataset"].append(item.dataset)
                data["class_code"].append(item.class_code)
                data["subject_code"].append(item.subject_code)
                data["semester"].append(item.semester)
                data["state"].append(entry.state)
                data["last_submission"].append(entry.submission_id)
                data["received_at"].append(entry.received_at)
    schema = pa.schema([pa.field(name, kind) for name, kind, _ in columns])
    return pa.table(data, schema=schema)


def coverage_table(home: Path, database: ControlDatabase, today: date | None = None) -> pa.Table:
    """``massar query``'s ``coverage`` table for the home at ``home`` (its campaigns file, its
    staging and quarantine folders)."""
    campaigns = home_campaigns(home)
    coverages = campaign_coverage(
        database, home / "staging", home / "quarantine", campaigns, today or date.today()
    )
    return coverage_rows(coverages)

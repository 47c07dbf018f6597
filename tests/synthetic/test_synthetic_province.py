"""The synthetic province: Massar's genuine layouts (cell positions: test_genuine_layout_cells.py),
file names, determinism, and a clean province that is clean."""

from __future__ import annotations

import csv
import io
import os
import re
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from python_calamine import CalamineWorkbook

from massar.synthetic import generate_province
from massar.synthetic.massar_layouts import LIST_META_CELLS, cell_index
from massar.synthetic.province import DAYS, year_bounds
from massar.synthetic.reference import curriculum, levels, subjects
from massar.synthetic.school import french_capitals
from schemas.datasets import DATASETS, JUSTIFIED_LABEL, SCHOOL_CODE, STUDENT_CODE

# SYNTHETIC_TEST_SCHOOLS=40 (or more) runs the same checks on a bigger province.
SCHOOLS = int(os.environ.get("SYNTHETIC_TEST_SCHOOLS", "6"))
SEED = int(os.environ.get("SYNTHETIC_TEST_SEED", "11"))
YEAR = "2023/2024"


@pytest.fixture(scope="module")
def province(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synthetic-clean")
    summary = generate_province(out, schools=SCHOOLS, seed=SEED, year=YEAR)
    assert summary.schools == SCHOOLS
    assert summary.pupils > 0
    return out


def school_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and re.match(SCHOOL_CODE, p.name))


def sheet_rows(path: Path, sheet: str) -> list[list]:
    return (
        CalamineWorkbook.from_path(str(path))
        .get_sheet_by_name(sheet)
        .to_python(skip_empty_area=False)
    )


def read_csv(path: Path) -> pl.DataFrame:
    text = path.read_bytes().decode("utf-8-sig")
    return pl.read_csv(io.BytesIO(text.encode()), infer_schema=False)


def read_xlsx_table(path: Path, dataset: str) -> pl.DataFrame:
    spec = DATASETS[dataset]
    rows = sheet_rows(path, spec.title_ar)
    assert tuple(rows[0]) == spec.headers_ar
    data = [
        [
            ""
            if v is None
            else (str(int(v)) if isinstance(v, float) and v.is_integer() else str(v))
            for v in r
        ]
        for r in rows[1:]
    ]
    return pl.DataFrame(data, schema=[c.name for c in spec.columns], orient="row")


def csv_table(path: Path, dataset: str) -> pl.DataFrame:
    df = read_csv(path)
    assert tuple(df.columns) == DATASETS[dataset].headers_ar
    return df.rename(
        dict(zip(df.columns, [c.name for c in DATASETS[dataset].columns], strict=True))
    )


# ListEleve pupil columns (mirrored sheet): AA number, X code, Q family, M first name, L sex,
# F birth date, C birthplace; data from row 16.
LIST_COLUMNS = (26, 23, 16, 12, 11, 5, 2)
# NotesCC: mark columns G, I, K (tests) and M (activities), the absence right after each.
TEST_MARK_COLUMNS, ACTIVITIES_MARK_COLUMN = (6, 8, 10), 12


def list_eleve(folder: Path) -> tuple[Path, list[tuple[str, dict, list[list]]]]:
    """(path, [(sheet, metadata by name, pupil rows in logical column order)])."""
    (path,) = folder.glob("ListEleve_*")
    wb = CalamineWorkbook.from_path(str(path))
    out = []
    for name in wb.sheet_names:
        rows = wb.get_sheet_by_name(name).to_python(skip_empty_area=False)
        meta = {}
        for key, (_, _, value_ref) in LIST_META_CELLS.items():
            r, c = cell_index(value_ref)
            meta[key] = rows[r][c]
        pupils = [[r[c] for c in LIST_COLUMNS] for r in rows[15:] if r[23]]
        out.append((name, meta, pupils))
    return path, out


def notes_files(folder: Path) -> list[Path]:
    return sorted((folder / "NotesCC").rglob("*.xlsx"))


# ----------------------------------------------------------------------------- layouts


def test_school_folders_and_reference_files(province: Path) -> None:
    schools = read_csv(province / "schools.csv")
    assert schools.columns[:7] == [
        "school_code",
        "name_ar",
        "name_fr",
        "commune",
        "commune_fr",
        "cycle",
        "type",
    ]
    assert set(schools["cycle"]) == {"primary", "college", "lycee"}
    assert all(re.match(SCHOOL_CODE, c) for c in schools["school_code"])
    mains = set(schools.filter(pl.col("type") == "main")["school_code"])
    assert {p.name for p in school_dirs(province)} == mains
    sats = schools.filter(pl.col("type") == "satellite")
    assert set(sats["parent_school_code"]) <= mains
    for folder in school_dirs(province):
        for name in (
            "classes.xlsx",
            "rooms.xlsx",
            "timetable.xlsx",
            "guardians.csv",
            "exam_marks.csv",
            "absences.csv",
            "discipline.csv",
            "support.csv",
        ):
            assert (folder / name).is_file(), (folder, name)


def test_list_eleve_files(province: Path) -> None:
    suffixes = set()
    for folder in school_dirs(province):
        path, sheets = list_eleve(folder)
        suffixes.add(path.suffix)
        assert re.fullmatch(r"ListEleve_\d{8}\.xlsx?", path.name)
        assert [s[0] for s in sheets] == [f"Sheet{i}" for i in range(1, len(sheets) + 1)]
        for _, meta, pupils in sheets:
            assert meta["school_year"] == YEAR
            assert meta["directorate"] == "إقليم: تيزنيت"
            assert meta["level_label"] == levels()[meta["class_code"].rsplit("-", 1)[0]].label_ar
            assert pupils[0][0] == 1 and re.match(STUDENT_CODE, pupils[0][1])
            assert isinstance(pupils[0][5], date)
            assert {p[4] for p in pupils} <= {"ذكر", "أنثى"}
    assert suffixes == {".xls", ".xlsx"}


def capitals(name_fr: str) -> str:
    return french_capitals(name_fr)


def test_notes_cc_file_names(province: Path) -> None:
    old = new = 0
    for folder in school_dirs(province):
        files = notes_files(folder)
        assert files
        for path in files:
            rows = sheet_rows(path, "NotesCC")
            class_code, subject_code = rows[8][8], rows[4][10].strip("#")
            if path.name.startswith("export_notesCC_"):
                old += 1
                assert path.parent.name == f"S{int(rows[4][6])}"
                assert path.name == f"export_notesCC_{class_code}_{subject_code}.xlsx"
            else:
                new += 1
                match = re.fullmatch(
                    rf"Export_{folder.name}_{class_code}_([A-Z][A-Z '-]+[A-Z])_(\d{{14}})\.xlsx",
                    path.name,
                )
                assert match, path.name
                assert match.group(1) == capitals(subjects()[subject_code].name_fr)
    assert old > new > 0  # mostly the older names, the newer ones for part of the files


def test_subject_names_in_capitals_as_massar_writes_them() -> None:
    # the two newer names DOMAIN.md quotes from genuine files
    assert capitals("Langue française") == "LANGUE FRANCAISE"
    assert capitals("Langue arabe") == "LANGUE ARABE"


def test_tests_per_subject_follow_curriculum(province: Path) -> None:
    """Marks only in the subject's test columns (at most Massar's three) and, when the subject
    has integrated activities, in the activities column."""
    used_counts = set()
    for folder in school_dirs(province):
        for path in notes_files(folder)[::7]:
            rows = sheet_rows(path, "NotesCC")
            subject = rows[4][10].strip("#")
            level = levels()[rows[8][8].rsplit("-", 1)[0]]
            entry = next(e for e in curriculum()[level.code] if e.subject_code == subject)
            expected = set(TEST_MARK_COLUMNS[: entry.tests])
            if entry.activities:
                expected.add(ACTIVITIES_MARK_COLUMN)
            used = {
                c
                for r in rows[17:]
                for c in (*TEST_MARK_COLUMNS, ACTIVITIES_MARK_COLUMN)
                if r[c] not in ("", None) or r[c + 1]
            }
            # a teacher may not have entered the last slot yet: one column may stay empty
            assert used <= expected and len(expected - used) <= 1, path.name
            used_counts.add(len(expected))
            assert subjects()[subject].name_ar == rows[10][14]
    assert len(used_counts) >= 2


def test_csv_encoding_is_utf8_with_bom(province: Path) -> None:
    for folder in school_dirs(province):
        for name in ("guardians", "exam_marks", "absences", "discipline", "support"):
            raw = (folder / f"{name}.csv").read_bytes()
            assert raw.startswith(b"\xef\xbb\xbf")
            header = next(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
            assert tuple(header) == DATASETS[name].headers_ar


# ----------------------------------------------------------------------------- clean province


@pytest.fixture(scope="module")
def tables(province: Path) -> dict[str, pl.DataFrame]:
    frames: dict[str, list[pl.DataFrame]] = {}
    students = []
    for folder in school_dirs(province):
        _, sheets = list_eleve(folder)
        for name, meta, rows in sheets:
            for r in rows:
                students.append(
                    {
                        "school_code": folder.name,
                        "sheet": name,
                        "class_code": meta["class_code"],
                        "student_code": r[1],
                        "birth": r[5],
                    }
                )
        for name in ("classes", "rooms", "timetable"):
            frames.setdefault(name, []).append(read_xlsx_table(folder / f"{name}.xlsx", name))
        for name in ("guardians", "exam_marks", "absences", "discipline", "support"):
            frames.setdefault(name, []).append(csv_table(folder / f"{name}.csv", name))
    out = {k: pl.concat(v) for k, v in frames.items()}
    out["students"] = pl.DataFrame(students)
    return out


def test_codes_well_formed_and_unique(tables: dict[str, pl.DataFrame]) -> None:
    st = tables["students"]
    assert st["student_code"].str.contains(STUDENT_CODE).all()
    assert st["student_code"].is_unique().all()  # one class, one school per pupil
    assert tables["classes"]["class_code"].str.contains(r"^[0-9A-Z]+-\d{1,2}$").all()
    keys = {
        "guardians": ["student_code", "relation"],
        "absences": ["student_code", "date", "slot"],
        "exam_marks": ["student_code", "exam", "session", "subject_code"],
        "support": ["student_code", "programme"],
        "discipline": ["school_code", "incident_id", "student_code"],
        "timetable": ["school_code", "class_code", "day", "slot"],
    }
    for name, key in keys.items():
        assert not tables[name].select(key).is_duplicated().any(), name
    cin = tables["guardians"]["guardian_cin"]
    assert cin.str.contains(r"^[A-Z]{1,2}\d{5,6}$").all()
    cnss = tables["guardians"].filter(pl.col("cnss_number") != "")["cnss_number"]
    assert len(cnss) and cnss.str.contains(r"^\d{9}$").all()


def test_every_class_used_is_declared(tables: dict[str, pl.DataFrame]) -> None:
    declared = set(
        zip(tables["classes"]["school_code"], tables["classes"]["class_code"], strict=True)
    )
    for name in ("students", "timetable", "absences", "exam_marks"):
        used = set(zip(tables[name]["school_code"], tables[name]["class_code"], strict=True))
        assert used <= declared, name


def test_home_room_capacity(tables: dict[str, pl.DataFrame]) -> None:
    sizes = tables["students"].group_by("school_code", "class_code").len()
    rooms = tables["rooms"].with_columns(pl.col("capacity").cast(pl.Int64))
    joined = (
        tables["classes"]
        .join(sizes, on=["school_code", "class_code"])
        .join(rooms, on=["school_code", "room_code"])
    )
    assert joined.height == tables["classes"].height
    assert (joined["len"] <= joined["capacity"]).all()


def test_ages_within_levels(tables: dict[str, pl.DataFrame]) -> None:
    lv = levels()
    first = int(YEAR[:4])
    for row in tables["students"].iter_rows(named=True):
        level = lv[row["class_code"].rsplit("-", 1)[0]]
        assert level.min_age <= first - row["birth"].year <= level.max_age, row


def test_no_teacher_or_room_in_two_places(tables: dict[str, pl.DataFrame]) -> None:
    tt = tables["timetable"]
    for who in ("teacher_code", "room_code"):
        assert not tt.select("school_code", "day", "slot", who).is_duplicated().any(), who
    assert set(tt["day"]) <= set(DAYS)
    assert tt["slot"].cast(pl.Int64).is_between(1, 8).all()


def test_absences_fall_on_lessons(tables: dict[str, pl.DataFrame]) -> None:
    start, end = year_bounds(YEAR)
    ab = tables["absences"].with_columns(pl.col("date").str.strptime(pl.Date, "%d/%m/%Y"))
    assert ab["date"].is_between(start, end).all()
    ab = ab.with_columns(
        pl.col("date")
        .dt.weekday()
        .map_elements(lambda d: DAYS[d - 1], return_dtype=pl.String)
        .alias("day")
    )
    lessons = tables["timetable"].select(
        "school_code", "class_code", "day", "slot", pl.col("subject_code").alias("lesson_subject")
    )
    joined = ab.join(lessons, on=["school_code", "class_code", "day", "slot"], how="left")
    assert joined["lesson_subject"].null_count() == 0
    assert (joined["lesson_subject"] == joined["subject_code"]).all()


def test_other_datasets_only_for_enrolled_pupils(tables: dict[str, pl.DataFrame]) -> None:
    enrolled = set(
        zip(tables["students"]["school_code"], tables["students"]["student_code"], strict=True)
    )
    for name in ("guardians", "exam_marks", "absences", "discipline", "support"):
        used = set(zip(tables[name]["school_code"], tables[name]["student_code"], strict=True))
        assert used <= enrolled, name
    em = (
        tables["exam_marks"]
        .filter(pl.col("mark") != "")
        .with_columns(pl.col("mark").cast(pl.Float64))
    )
    assert em["mark"].is_between(0, 20).all()
    assert set(tables["exam_marks"]["exam"]) == {"محلي", "إقليمي", "جهوي", "وطني"}
    assert "استدراكية" in set(tables["exam_marks"]["session"])


def test_notes_cc_pupils_are_the_class_pupils(
    province: Path, tables: dict[str, pl.DataFrame]
) -> None:
    by_class: dict[tuple[str, str], set[str]] = {}
    for row in tables["students"].iter_rows(named=True):
        by_class.setdefault((row["school_code"], row["class_code"]), set()).add(row["student_code"])
    seen_justified = False
    for folder in school_dirs(province):
        for path in notes_files(folder):
            rows = sheet_rows(path, "NotesCC")
            class_code = rows[8][8]
            scale = levels()[class_code.rsplit("-", 1)[0]].mark_scale
            pupils = rows[17:]
            assert {r[2] for r in pupils} == by_class[(folder.name, class_code)], path.name
            marks = (*TEST_MARK_COLUMNS, ACTIVITIES_MARK_COLUMN)
            for r in pupils:
                for i in marks:
                    mark, absence = r[i], r[i + 1]
                    if absence:
                        seen_justified = True
                        assert absence == JUSTIFIED_LABEL and mark in ("", None), path.name
                    if mark not in ("", None):
                        assert 0 <= mark <= scale and (mark * 4).is_integer()
    assert seen_justified


def test_partner_requests_and_expected(province: Path) -> None:
    cnss = province / "partners" / "cnss"
    cmr = province / "partners" / "cmr"
    (request,) = cnss.glob("CNSS_SCOL_*.csv")
    rows = list(csv.reader(io.StringIO(request.read_text("utf-8")), delimiter=";"))
    assert rows[0][0] == "REF_CNSS" and len(rows) > 10
    expected = read_csv(cnss / "expected.csv")
    assert set(expected["expected_status"]) == {
        "SCHOOLED",
        "NOT_SCHOOLED",
        "LEFT",
        "NOT_FOUND",
        "REVIEW",
    }
    assert set(expected["fund_reference"]) == {r[0] for r in rows[1:]}
    (request,) = cmr.glob("CMR_SCOL_*.csv")
    rows = list(csv.reader(io.StringIO(request.read_text("utf-8"))))
    assert rows[0][0] == "reference"
    expected = read_csv(cmr / "expected.csv")
    assert {"SCHOOLED", "LEFT", "NOT_FOUND", "REVIEW"} <= set(expected["expected_status"])
    enrolled = {p.name: None for p in school_dirs(province)}
    assert set(expected.filter(pl.col("expected_status") == "SCHOOLED")["school_code"]) <= set(
        enrolled
    )


# ----------------------------------------------------------------------------- determinism


def _contents(root: Path) -> dict[str, object]:
    out: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        rel = str(path.relative_to(root))
        if path.suffix == ".csv":
            out[rel] = path.read_bytes()
        else:
            wb = CalamineWorkbook.from_path(str(path))
            out[rel] = [wb.get_sheet_by_name(n).to_python() for n in wb.sheet_names]
    return out


def test_same_seed_same_output_different_seed_different(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate_province(a, schools=3, seed=5, workers=1)
    generate_province(b, schools=3, seed=5, workers=2)
    generate_province(c, schools=3, seed=6, workers=2)
    ca, cb = _contents(a), _contents(b)
    assert ca.keys() == cb.keys()
    assert ca == cb
    csv_a = {k: v for k, v in ca.items() if k.endswith(".csv")}
    csv_c = {k: v for k, v in _contents(c).items() if k.endswith(".csv")}
    assert csv_a["schools.csv"] != csv_c["schools.csv"]
    assert sorted(v for v in csv_a.values()) != sorted(v for v in csv_c.values())


def test_default_scaling_keeps_every_kind_of_school(tmp_path: Path) -> None:
    from massar.synthetic.province import build_plan

    for n in (3, 6, 40):
        plan = build_plan(1, YEAR, n)
        assert len(plan.schools) == n
        assert {s.cycle for s in plan.schools} == {"primary", "college", "lycee"}
    default = build_plan(1, YEAR, None)
    assert 240 <= len(default.schools) <= 260

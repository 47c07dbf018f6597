"""The synthetic province: real Massar layouts, determinism, and a clean province that is clean."""

from __future__ import annotations

import csv
import io
import os
import re
from datetime import date
from pathlib import Path

import openpyxl
import polars as pl
import pytest
from python_calamine import CalamineWorkbook

from massar.synthetic import generate_province
from massar.synthetic.massar_layouts import NOTES_HIDDEN_COLS, NOTES_HIDDEN_ROWS
from massar.synthetic.province import DAYS, year_bounds
from massar.synthetic.reference import curriculum, levels, subjects
from schemas.datasets import (
    ABSENCE_LABEL,
    DATASETS,
    JUSTIFIED_LABEL,
    LIST_ELEVES_METADATA,
    MARK_LABEL,
    MARK_SLOTS,
    NOTES_CC_METADATA,
    SCHOOL_CODE,
    STUDENT_CODE,
    STUDENTS,
)

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


def list_eleve(folder: Path) -> tuple[Path, list[tuple[str, dict, list[list]]]]:
    (path,) = folder.glob("ListEleve_*")
    wb = CalamineWorkbook.from_path(str(path))
    out = []
    for name in wb.sheet_names:
        rows = wb.get_sheet_by_name(name).to_python(skip_empty_area=False)
        meta = {}
        for r in rows[:14]:
            for c, v in enumerate(r[:-1]):
                if isinstance(v, str) and v:
                    meta.setdefault(v, r[c + 1])
        out.append((name, meta, [r for r in rows[15:] if any(x not in ("", None) for x in r)]))
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


def test_list_eleve_layout(province: Path) -> None:
    suffixes = set()
    for folder in school_dirs(province):
        path, sheets = list_eleve(folder)
        suffixes.add(path.suffix)
        assert re.fullmatch(r"ListEleve_\d{8}\.xlsx?", path.name)
        assert [s[0] for s in sheets] == [f"Sheet{i}" for i in range(1, len(sheets) + 1)]
        rows = sheet_rows(path, "Sheet1")
        assert rows[1][0] == STUDENTS.title_ar
        assert tuple(rows[14][:7]) == STUDENTS.headers_ar  # header row 15
        assert rows[15][0] == 1 and re.match(STUDENT_CODE, rows[15][1])  # data from row 16
        assert isinstance(rows[15][5], date)
        assert rows[15][4] in ("ذكر", "أنثى")
        for _, meta, _ in sheets:
            for column in LIST_ELEVES_METADATA:
                assert column.header_ar in meta, column.header_ar
            assert meta["السنة الدراسية"] == YEAR
            assert meta["المديرية الإقليمية"] == "إقليم: تيزنيت"
    assert suffixes == {".xls", ".xlsx"}


def test_list_eleve_right_to_left_and_merged(province: Path) -> None:
    path = next(p for f in school_dirs(province) for p in f.glob("ListEleve_*.xlsx"))
    ws = openpyxl.load_workbook(path)["Sheet1"]
    assert ws.sheet_view.rightToLeft
    assert ws.merged_cells.ranges
    assert ws["F16"].number_format == "dd/mm/yyyy"


def test_notes_cc_layout(province: Path) -> None:
    old = new = 0
    for folder in school_dirs(province):
        files = notes_files(folder)
        assert files
        for path in files[:: max(1, len(files) // 10)]:
            if path.name.startswith("export_notesCC_"):
                old += 1
                assert path.parent.name in ("S1", "S2")
            else:
                new += 1
                assert re.fullmatch(
                    rf"Export_{folder.name}_[0-9A-Z]+-\d+_.+_\d{{14}}\.xlsx", path.name
                )
            wb = CalamineWorkbook.from_path(str(path))
            assert wb.sheet_names == ["NotesCC", "Data"]
            data = wb.get_sheet_by_name("Data").to_python(skip_empty_area=False)
            assert [r[0] for r in data[:2]] == ["", JUSTIFIED_LABEL]
            rows = wb.get_sheet_by_name("NotesCC").to_python(skip_empty_area=False)
            row5 = rows[4]
            assert row5[2] == folder.name
            assert re.fullmatch(r"[0-9a-f-]{36}", row5[4])
            assert row5[6] in (1, 2)
            assert re.fullmatch(r"#\d{4}#", row5[10])
            assert row5[14] in {lv.internal_code for lv in levels().values()}
            assert rows[2][2] == "نقط المراقبة المستمرة"
            labels = {v for r in rows[:14] for v in r if isinstance(v, str)}
            for column in NOTES_CC_METADATA:
                assert column.header_ar in labels
            r15, r16, r17 = rows[14], rows[15], rows[16]
            assert r16[1:4] == ["ID", "رقم التلميذ", "إسم التلميذ"] and r16[5] == "تاريخ الإزدياد"
            tokens = [v for v in r15 if v]
            slot_labels = {token: label for _, label, token in MARK_SLOTS}
            assert tokens and tokens[0] == "#1#"
            for token in tokens:
                col = r15.index(token)
                assert r16[col] == slot_labels[token]
                assert (r17[col], r17[col + 1]) == (MARK_LABEL, ABSENCE_LABEL)
            assert "ملاحظات الأستاذ" in r16
            assert re.match(STUDENT_CODE, rows[17][2])
            assert re.fullmatch(r"\d{2}-\d{2}-\d{4}", rows[17][5])
    assert old and new


def test_notes_cc_hidden_rows_columns_protection(province: Path) -> None:
    path = notes_files(school_dirs(province)[0])[0]
    ws = openpyxl.load_workbook(path)["NotesCC"]
    hidden_cols = {k for k, d in ws.column_dimensions.items() if d.hidden}
    hidden_rows = {k for k, d in ws.row_dimensions.items() if d.hidden}
    assert hidden_cols == set(NOTES_HIDDEN_COLS)
    assert hidden_rows == set(NOTES_HIDDEN_ROWS)
    assert ws.protection.sheet
    assert ws.sheet_view.rightToLeft
    assert "D16:E17" in {str(r) for r in ws.merged_cells.ranges}
    assert ws["G18"].protection.locked is False


def test_tests_per_subject_follow_curriculum(province: Path) -> None:
    counts = set()
    for folder in school_dirs(province):
        for path in notes_files(folder)[::7]:
            rows = sheet_rows(path, "NotesCC")
            subject = rows[4][10].strip("#")
            level = next(lv for lv in levels().values() if lv.internal_code == rows[4][14])
            entry = next(e for e in curriculum()[level.code] if e.subject_code == subject)
            tokens = [v for v in rows[14] if v]
            assert tokens == [f"#{i}#" for i in range(1, entry.tests + 1)] + (
                ["#100#"] if entry.activities else []
            )
            counts.add(len(tokens))
            assert subjects()[subject].name_ar == rows[8][8]
    assert len(counts) >= 2


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
                        "class_code": meta["القسم"],
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
            class_code = rows[10][3]
            scale = levels()[class_code.rsplit("-", 1)[0]].mark_scale
            pupils = rows[17:]
            assert {r[2] for r in pupils} == by_class[(folder.name, class_code)], path.name
            marks = [i for i, v in enumerate(rows[16]) if v == MARK_LABEL]
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

"""``massar schools import FILE``: the directorate's list of schools read as written (CSV or
XLSX, Arabic or French headers), checked with the rule catalogue row by row, the good rows
recorded and versioned in the warehouse's ``schools`` table, the same file again changing
nothing; statistics and ``massar status`` say when there is no list. Real homes made with
``massar init``, the real command, the warehouse read back through ``massar query``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import polars as pl
import pytest
import xlsxwriter

from connectors.school_files import FileRejected
from connectors.schools_list import read_school_list
from ground.settings import load_settings
from massar.cli import main
from schemas.rules import catalogue, placeholders
from tasks.schools import check_school_list
from tasks.statistics import compute_statistics
from tasks.statistics_report import write_statistics_report
from warehouse.delta import current_version

HEADERS_AR = [
    "رمز المؤسسة",
    "اسم المؤسسة",
    "الاسم بالفرنسية",
    "الجماعة",
    "السلك",
    "الصنف",
    "المؤسسة الأم",
]
GOOD = [
    ["27783Y", "إعدادية المسيرة", "Collège Al Massira", "تيزنيت", "إعدادي", "مركزية", ""],
    ["12345X", "مدرسة أكلو", "École Aglou", "أكلو", "ابتدائي", "مركزية", ""],
    ["12346Z", "فرعية تيكمي", "Satellite Tigmi", "أكلو", "ابتدائي", "فرعية", "12345X"],
    ["31313L", "ثانوية الحسن الثاني", "Lycée Hassan II", "تيزنيت", "تأهيلي", "مركزية", ""],
]
# (row, expected rule, column label) — the row number as the officer sees it in the workbook
BAD = [
    (["1234", "مدرسة خاطئة", "", "أكلو", "ابتدائي", "مركزية", ""], "R008", "رمز المؤسسة"),
    (["55555A", "ثانوية", "Lycée", "تيزنيت", "secondaire", "مركزية", ""], "R006", "السلك"),
    (["66666B", "فرعية", "", "أكلو", "ابتدائي", "فرعية", ""], "R005", "المؤسسة الأم"),
    (["77777C", "فرعية", "", "أكلو", "ابتدائي", "فرعية", "99999Z"], "R006", "المؤسسة الأم"),
    (["27783Y", "إعدادية مكررة", "", "تيزنيت", "إعدادي", "مركزية", ""], "R007", "رمز المؤسسة"),
    (["88888D", "", "", "تيزنيت", "تأهيلي", "مركزية", ""], "R005", "اسم المؤسسة"),
    (["44444E", "مدرسة", "", "أكلو", "ابتدائي", "مركزية", "12345X"], "R006", "المؤسسة الأم"),
]
TITLE_ROWS = 2  # a title and a blank row above the header


def write_xlsx(path: Path, rows: list[list[str]], headers: list[str] = HEADERS_AR) -> Path:
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("المؤسسات")
    sheet.write_row(0, 0, ["لائحة المؤسسات التعليمية - المديرية الإقليمية تيزنيت"])
    sheet.write_row(TITLE_ROWS, 0, headers)
    for index, row in enumerate(rows):
        sheet.write_row(TITLE_ROWS + 1 + index, 0, row)
    book.close()
    return path


def write_csv(path: Path, rows: list[list[str]], headers: list[str], **kwargs) -> Path:
    encoding = kwargs.pop("encoding", "utf-8-sig")
    with path.open("w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle, **kwargs)
        writer.writerow(headers)
        writer.writerows(rows)
    return path


def excel_row(index: int) -> int:
    return TITLE_ROWS + 2 + index  # header at TITLE_ROWS + 1, data below, 1-based


# ---- reading -----------------------------------------------------------------------------------


def test_an_xlsx_with_a_title_row_and_arabic_headers(tmp_path):
    listed = read_school_list(write_xlsx(tmp_path / "list.xlsx", GOOD))
    assert listed.sheet == "المؤسسات" and listed.headers["cycle"] == "السلك"
    assert [r["school_code"] for r in listed.rows] == [r[0] for r in GOOD]
    assert listed.rows[0]["sheet_row"] == excel_row(0)
    assert listed.rows[2]["parent_school_code"] == "12345X"


def test_a_french_csv_with_semicolons_and_extra_columns(tmp_path):
    headers = ["Code de l'établissement", "Nom en arabe", "Nom de l'établissement", "Commune",
               "Cycle", "Type", "Établissement principal", "Téléphone"]  # fmt: skip
    rows = [
        [
            "27783Y",
            "إعدادية المسيرة",
            "Collège Massira",
            "Tiznit",
            "Collège",
            "principale",
            "",
            "05",
        ],
        ["12346Z", "فرعية تيكمي", "Tigmi", "Aglou", "primaire", "satellite", "12345X", ""],
    ]
    listed = read_school_list(write_csv(tmp_path / "l.csv", rows, headers, delimiter=";"))
    accepted, findings = check_school_list(listed, known_main={"12345X"})
    assert findings == []
    assert [(s["cycle"], s["school_type"]) for s in accepted] == [
        ("college", "main"),
        ("primary", "satellite"),
    ]


def test_the_generated_provinces_list_and_windows_1256(tmp_path, province):
    listed = read_school_list(province / "schools.csv")
    accepted, findings = check_school_list(listed)
    assert findings == [] and len(accepted) == len(listed.rows) > 0
    arabic_only = [[*r[:2], "", *r[3:]] for r in GOOD]  # no French name: cp1256 lacks É
    cp1256 = write_csv(tmp_path / "w.csv", arabic_only, HEADERS_AR, encoding="cp1256")
    assert read_school_list(cp1256).rows[0]["name_ar"] == "إعدادية المسيرة"


@pytest.mark.parametrize(
    ("content", "rule", "column"),
    [
        (b"", "F005", None),
        (b"\xd0\xcf\x11\xe0 not really a workbook", "F001", None),
        (b"Code,Nom\n27783Y,x\n", "F008", "رمز المؤسسة"),  # Code is there, not the rest
        (b"a,b\n1,2\n", "F008", "رمز المؤسسة"),
        ("رمز المؤسسة,اسم المؤسسة,الاسم بالفرنسية,الجماعة,السلك,الصنف\n".encode(), "F005", None),
    ],
)
def test_a_file_that_is_not_a_usable_list_is_refused_with_a_file_rule(
    tmp_path, content, rule, column
):
    path = tmp_path / "list.csv"
    path.write_bytes(content)
    with pytest.raises(FileRejected) as refused:
        read_school_list(path)
    assert refused.value.rule_id == rule
    if column:
        assert refused.value.column is not None


# ---- checking ----------------------------------------------------------------------------------


def test_each_bad_row_is_one_finding_at_its_row_and_column_and_the_good_rows_hold(tmp_path):
    listed = read_school_list(write_xlsx(tmp_path / "list.xlsx", GOOD + [b[0] for b in BAD]))
    accepted, findings = check_school_list(listed)
    assert [s["school_code"] for s in accepted] == [r[0] for r in GOOD]
    got = [(f["sheet_row"], f["rule_id"], f["column_name"]) for f in findings]
    assert got == [
        (excel_row(len(GOOD) + i), rule, column) for i, (_, rule, column) in enumerate(BAD)
    ]
    for finding in findings:
        assert finding["sheet"] == "المؤسسات" and finding["severity"] == "error"
        assert finding["message_fr"].endswith(".") and "…" not in finding["message_fr"]
        assert "…" not in finding["message_ar"] and finding["message_ar"].endswith(".")
    duplicate = next(f for f in findings if f["rule_id"] == "R007")
    assert f"ligne {excel_row(0)}" in duplicate["message_fr"]
    unknown_main = findings[3]
    assert (
        "99999Z" in unknown_main["message_fr"]
        and "12345X, 27783Y, 31313L" in unknown_main["message_fr"]
    )


def test_a_satellite_of_a_refused_main_school_is_refused_too(tmp_path):
    rows = [
        ["12345X", "مدرسة أكلو", "", "أكلو", "ابتدائي", "مركزية", "27783Y"],  # main with a parent
        ["12346Z", "فرعية تيكمي", "", "أكلو", "ابتدائي", "فرعية", "12345X"],
    ]
    listed = read_school_list(write_xlsx(tmp_path / "list.xlsx", rows))
    accepted, findings = check_school_list(listed)
    assert accepted == []
    assert [(f["sheet_row"], f["rule_id"]) for f in findings] == [
        (excel_row(0), "R006"),
        (excel_row(1), "R006"),
    ]
    # A main school already recorded may carry satellites of a later file.
    accepted, findings = check_school_list(
        read_school_list(write_xlsx(tmp_path / "more.xlsx", rows[1:])), known_main={"12345X"}
    )
    assert [s["school_code"] for s in accepted] == ["12346Z"] and findings == []


def test_the_findings_fill_exactly_the_placeholders_of_their_rules(tmp_path):
    rules = catalogue()
    listed = read_school_list(write_xlsx(tmp_path / "list.xlsx", GOOD + [b[0] for b in BAD]))
    _, findings = check_school_list(listed)
    for finding in findings:
        for message in (finding["message_fr"], finding["message_ar"]):
            assert "{" not in message and "…" not in message, finding
        assert placeholders(rules[finding["rule_id"]].message_fr)  # every rule used has some


# ---- the command ---------------------------------------------------------------------------------


def _query(capsys, home: Path, sql: str) -> list[dict]:
    capsys.readouterr()
    assert main(["query", sql, "--home", str(home), "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def home(tmp_path, capsys) -> Path:
    path = tmp_path / "home"
    assert main(["init", "--home", str(path)]) == 0
    capsys.readouterr()
    return path


def test_import_records_checks_and_publishes_and_the_same_file_changes_nothing(
    capsys, tmp_path, home
):
    settings = load_settings(home)
    listed = write_xlsx(tmp_path / "etablissements.xlsx", GOOD + [b[0] for b in BAD])
    code = main(["schools", "import", str(listed), "--home", str(home)])
    out = capsys.readouterr().out
    assert code == 0
    assert f"{len(GOOD) + len(BAD)} row(s) read, {len(GOOD)} school(s) imported" in out
    assert f"row {excel_row(len(GOOD))}, column « رمز المؤسسة » [R008]" in out
    schools = _query(capsys, home, "select * from schools order by school_code")
    assert [s["school_code"] for s in schools] == sorted(r[0] for r in GOOD)
    tigmi = next(s for s in schools if s["school_code"] == "12346Z")
    assert (tigmi["name_fr"], tigmi["commune"], tigmi["cycle"], tigmi["school_type"]) == (
        "Satellite Tigmi",
        "أكلو",
        "primary",
        "satellite",
    )
    assert tigmi["parent_school_code"] == "12345X"
    submission = _query(capsys, home, "select * from submissions")
    assert [(s["school_code"], s["dataset"], s["state"]) for s in submission] == [
        ("province", "schools_list", "partially_accepted")
    ]
    findings = _query(capsys, home, "select sheet_row, column_name, rule_id from findings")
    assert len(findings) == len(BAD)
    report = settings.reports / "province" / f"schools_import_{submission[0]['submission_id']}.csv"
    assert report.read_text("utf-8-sig").count("\n") == len(BAD) + 1
    version = current_version(settings.warehouse, "schools")

    # The same file again: no second submission, no new version of the table, no new night.
    nights = _query(capsys, home, "select count(*) as n from submissions")
    assert main(["schools", "import", str(listed), "--home", str(home)]) == 0
    assert "was imported already" in capsys.readouterr().out
    assert _query(capsys, home, "select count(*) as n from submissions") == nights
    assert current_version(settings.warehouse, "schools") == version

    # A corrected file: the schools it names are updated, the others kept; a new version.
    renamed = ["12345X", "مدرسة أكلو الجديدة", "École Aglou", "أكلو", "ابتدائي", "مركزية", ""]
    corrected = [GOOD[0], renamed]
    main(
        ["schools", "import", str(write_xlsx(tmp_path / "v2.xlsx", corrected)), "--home", str(home)]
    )
    capsys.readouterr()
    assert current_version(settings.warehouse, "schools") == version + 1
    schools = {s["school_code"]: s for s in _query(capsys, home, "select * from schools")}
    assert schools["12345X"]["name_ar"] == "مدرسة أكلو الجديدة" and "31313L" in schools
    states = _query(capsys, home, "select state from submissions order by submission_id")
    assert [s["state"] for s in states] == ["superseded", "accepted"]


def test_a_list_without_any_good_row_fails_and_says_why(capsys, tmp_path, home):
    listed = write_xlsx(tmp_path / "bad.xlsx", [b[0] for b in BAD[:2]])
    assert main(["schools", "import", str(listed), "--home", str(home)]) == 1
    captured = capsys.readouterr()
    assert "[R008]" in captured.out and "[R006]" in captured.out
    assert "Error: No school of bad.xlsx could be imported" in captured.err
    pdf = tmp_path / "liste.csv"
    pdf.write_bytes(b"%PDF-1.4\n\x00\x01\x02 binary")
    assert main(["schools", "import", str(pdf), "--home", str(home)]) == 1
    captured = capsys.readouterr()
    assert "the file [F001]" in captured.out and "Traceback" not in captured.err
    assert main(["schools", "import", str(tmp_path / "missing.xlsx"), "--home", str(home)]) == 1
    assert main(["schools", "import", "--home", str(home)]) == 2


def test_status_and_statistics_say_when_no_list_is_imported(capsys, tmp_path, home):
    assert main(["status", "--home", str(home)]) == 0
    assert "No list of schools imported" in capsys.readouterr().out.replace("\n", " ").replace(
        "  ", " "
    )
    annual = pl.DataFrame(
        {
            "school_code": ["27783Y", "99999Z"],
            "school_year": ["2023/2024"] * 2,
            "class_code": ["1APIC-1"] * 2,
            "level_code": ["1APIC"] * 2,
            "student_code": ["K100000001", "K100000002"],
            "average": [12.0, 9.0],
            "decision": ["promoted", "repeats"],
        }
    )
    page = write_statistics_report(
        tmp_path / "a", compute_statistics(annual, None, None, None, None), "2023/2024"
    )
    text = page.read_text("utf-8")
    assert "massar schools import FILE" in text and "n'est pas importée" in text.replace(
        "&#x27;", "'"
    )

    main(["schools", "import", str(write_xlsx(tmp_path / "l.xlsx", GOOD)), "--home", str(home)])
    capsys.readouterr()
    assert main(["status", "--home", str(home)]) == 0
    status = capsys.readouterr().out
    assert "List of schools" in status and "l.xlsx" in status and "No list of schools" not in status
    schools = pl.DataFrame(_query(capsys, home, "select * from schools"))
    stats = compute_statistics(annual, None, None, schools, None)
    assert stats["unlisted_schools"].get_column("school_code").to_list() == ["99999Z"]
    assert stats["school"].filter(pl.col("school_code") == "27783Y").item(0, "name_fr") == (
        "Collège Al Massira"
    )
    text = write_statistics_report(tmp_path / "b", stats, "2023/2024").read_text("utf-8")
    assert "99999Z" in text and "n'est pas importée" not in text.replace("&#x27;", "'")

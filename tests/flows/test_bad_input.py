"""Bad input: every kind of broken file gets a rejection with a clear sentence, the flow
finishes, the other schools' files are processed, and the originals are archived."""

from __future__ import annotations

import hashlib
import io
import shutil
import zipfile

import pytest
import xlsxwriter

from flows.ingest import ingest_submissions
from massar.home import init_home
from warehouse.control import ControlDatabase
from warehouse.query import run_query

BAD_SCHOOL = "99999Z"


def _zip_bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/worksheets/sheet1.xml", b"0" * (300 * 1024 * 1024))
    return buffer.getvalue()


def _wide_workbook(path) -> None:
    workbook = xlsxwriter.Workbook(str(path))
    sheet = workbook.add_worksheet()
    sheet.write_row(0, 0, [f"c{i}" for i in range(10_000)])
    workbook.close()


def _encrypted_ole() -> bytes:
    header = bytes.fromhex("D0CF11E0A1B11AE1") + b"\0" * 504
    return (
        header
        + "EncryptionInfo".encode("utf-16-le")
        + b"\0" * 64
        + "EncryptedPackage".encode("utf-16-le")
        + b"\0" * 1024
    )


BAD_FILES = {
    "empty.csv": ("F005", lambda p: p.write_bytes(b"")),
    "page.csv": (
        "F001",
        lambda p: p.write_text("<!DOCTYPE html><html><body>Erreur 404</body></html>"),
    ),
    "wide.xlsx": ("F006", _wide_workbook),
    "bomb.xlsx": ("F006", lambda p: p.write_bytes(_zip_bomb())),
    "..\\..\\ListEleve.xlsx": ("F007", lambda p: p.write_bytes(b"PK\x03\x04")),
    "protected.xlsx": ("F002", lambda p: p.write_bytes(_encrypted_ole())),
    "truncated.xlsx": ("F001", None),  # the first 2,000 bytes of a real workbook
    "notes.txt": ("F003", lambda p: p.write_text("name,age\nAli,12\n")),
}


@pytest.fixture(scope="module")
def bad_run(prefect_server, province, tmp_path_factory):
    settings = init_home(tmp_path_factory.mktemp("bad-home") / "home")
    good = sorted(p for p in province.iterdir() if p.is_dir() and p.name[:5].isdigit())[0]
    shutil.copytree(good, settings.inbox / good.name)
    folder = settings.inbox / BAD_SCHOOL
    folder.mkdir()
    real_workbook = next(good.rglob("*.xlsx")).read_bytes()
    for name, (_, make) in BAD_FILES.items():
        if make is None:
            (folder / name).write_bytes(real_workbook[:2000])
        else:
            make(folder / name)
    state = ingest_submissions(settings, return_state=True)
    database = ControlDatabase(settings.resolved_database_url)
    try:
        rows = run_query(
            "select s.file_name, s.state, f.rule_id, f.message_fr, f.message_ar "
            "from submissions s left join findings f using (submission_id) "
            f"where s.school_code = '{BAD_SCHOOL}'",
            warehouse=settings.warehouse,
            database=database,
        ).to_pylist()
        good_states = run_query(
            f"select state from submissions where school_code = '{good.name}'",
            warehouse=settings.warehouse,
            database=database,
        ).to_pylist()
    finally:
        database.dispose()
    return settings, state, rows, good_states, folder


def test_the_flow_finishes_and_other_schools_are_processed(bad_run):
    _, state, _, good_states, _ = bad_run
    assert state.is_completed()
    assert good_states and {row["state"] for row in good_states} == {"accepted"}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_each_bad_file_is_rejected_with_a_sentence(bad_run, name):
    _, _, rows, _, _ = bad_run
    expected_rule = BAD_FILES[name][0]
    mine = [row for row in rows if row["file_name"] == name]
    assert mine, f"{name} was not registered"
    assert {row["state"] for row in mine} == {"rejected"}
    assert expected_rule in {row["rule_id"] for row in mine}
    for row in mine:
        assert row["message_fr"].endswith(".") and "Traceback" not in row["message_fr"]
        assert row["message_ar"]


def test_bad_originals_are_archived_as_received(bad_run):
    settings, _, _, _, folder = bad_run
    for path in folder.iterdir():
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert (settings.archive / digest[:2] / digest).read_bytes() == path.read_bytes()


def test_the_bad_school_gets_a_report(bad_run):
    settings, _, _, _, _ = bad_run
    page = (settings.reports / BAD_SCHOOL / f"rapport_{BAD_SCHOOL}.html").read_text("utf-8")
    assert "F006" in page and "F007" in page
    assert "..\\..\\ListEleve.xlsx" in page  # shown as text, escaped, never used as a path

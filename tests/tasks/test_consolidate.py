"""The nightly consolidation on a real ingested province: active submissions → warehouse."""

from __future__ import annotations

import csv
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import openpyxl
import polars as pl
import pytest
from sqlalchemy import select, update

from ground.settings import Settings, load_settings
from massar.home import init_home
from schemas.datasets import DATASETS
from tasks.consolidate import (
    _active,
    changed_schools,
    consolidate_enrollments,
    consolidate_school_reference,
    consolidate_table,
    derivation_groups,
    mark_consolidated,
    pending_submissions,
    resolve_enrollments,
    schools_rows,
    transfers_of,
    write_transfer_report,
)
from tasks.ingest import discover_inbox, ingest_school
from tasks.resends import confirm_resend
from warehouse.control import ControlDatabase, Finding, Submission
from warehouse.delta import WarehouseError, current_version, read_table, table_versions
from warehouse.submissions import active_submissions, upsert_schools
from warehouse.tables import TABLES, SchoolContext, tables_of

SCHOOLS = 4


@pytest.fixture(scope="module")
def ingested(province: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with the first schools of the test province ingested (not consolidated)."""
    settings = init_home(tmp_path_factory.mktemp("consolidate") / "home")
    schools, _ = discover_inbox(province)
    for code in sorted(schools)[:SCHOOLS]:
        ingest_school(settings, code, schools[code], province / code)
    with (province / "schools.csv").open(encoding="utf-8") as handle:
        reference = [
            {"school_code": r["school_code"], "name_fr": r["name_fr"], "cycle": r["cycle"]}
            for r in csv.DictReader(handle)
        ]
    database = ControlDatabase(settings.resolved_database_url)
    upsert_schools(database, reference)
    database.dispose()
    return settings.home


@pytest.fixture
def home(ingested: Path, tmp_path: Path) -> Settings:
    """A private copy of the ingested home for one test."""
    target = tmp_path / "home"
    shutil.copytree(ingested, target)
    return load_settings(target)


@pytest.fixture
def database(home: Settings):
    database = ControlDatabase(home.resolved_database_url)
    yield database
    database.dispose()


def night(settings: Settings, database: ControlDatabase) -> dict[str, int]:
    """What the flow does: every dataset's changed schools into its tables, then mark."""
    pending: list[int] = []
    for dataset in DATASETS:
        schools = changed_schools(database, dataset)
        for table in tables_of(dataset):
            consolidate_table(settings, table, schools)
        pending += [sid for ids in pending_submissions(database, dataset).values() for sid in ids]
    consolidate_school_reference(settings)
    mark_consolidated(database, pending)
    return table_versions(settings.warehouse)


def frame(settings: Settings, table: str, version: int | None = None) -> pl.DataFrame:
    result = pl.from_arrow(read_table(settings.warehouse, table, version).to_table())
    assert isinstance(result, pl.DataFrame)
    return result


def schools_of(settings: Settings) -> list[str]:
    return sorted(p.name for p in settings.staging.iterdir())


def test_warehouse_counts_equal_the_active_submissions_rows_accepted(
    home: Settings, database: ControlDatabase
) -> None:
    versions = night(home, database)
    assert set(versions) == set(TABLES)
    for name, spec in TABLES.items():
        if spec.dataset is None:
            continue
        counts = dict(frame(home, name).group_by("school_code").len().iter_rows())
        for code in schools_of(home):
            expected = sum(
                s.rows_accepted for s in active_submissions(database, code, spec.dataset)
            )
            assert counts.get(code, 0) == expected, (name, code)
    # pupils' names and birth dates only in students (and guardians' names in guardians)
    personal = {"family_name", "first_name", "full_name", "birth_date", "birthplace"}
    for name, spec in TABLES.items():
        if name != "students":
            assert not personal & set(spec.names), name
    marks = frame(home, "marks")
    assert set(marks.get_column("slot").unique()) <= {
        "test1",
        "test2",
        "test3",
        "test4",
        "activities",
    }
    assert set(marks.get_column("semester").unique()) <= {1, 2}
    assert marks.get_column("school_year").unique().to_list() == ["2023/2024"]
    enrollments = frame(home, "enrollments")
    assert enrollments.get_column("level_code").null_count() == 0
    assert enrollments.get_column("enrolled_from").null_count() == 0
    assert frame(home, "schools").height > 0


def test_a_nights_snapshot_is_every_datasets_processed_unheld_submissions_in_one_query(
    home: Settings, database: ControlDatabase
) -> None:
    """What a night consolidates (find_changed_schools): per dataset and school, the processed
    submissions no night took yet, a held resend left out, asked in one query for every
    dataset (eleven tables' datasets: one query each walked the province's pending
    submissions once per dataset)."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from tasks.consolidation_steps import find_changed_schools

    with database.session() as session:
        every = session.execute(
            select(Submission.submission_id, Submission.dataset).order_by(Submission.submission_id)
        ).all()
    by_dataset: dict[str, list[int]] = {}
    for sid, dataset in every:
        by_dataset.setdefault(dataset, []).append(sid)
    changes = {  # one of each kind of submission a night must tell apart
        by_dataset["marks"][0]: {"consolidated_at": datetime(2024, 1, 1, tzinfo=UTC)},
        by_dataset["students"][0]: {"hold": "held"},
        by_dataset["classes"][0]: {"state": "received"},
        by_dataset["rooms"][0]: {"state": "rejected"},
        by_dataset["guardians"][0]: {"state": "superseded"},
    }
    with database.session() as session:
        for sid, values in changes.items():
            session.execute(
                update(Submission).where(Submission.submission_id == sid).values(**values)
            )
        submissions = list(session.scalars(select(Submission)))
        expected: dict[str, dict[str, list[int]]] = {d: {} for d in by_dataset}
        for s in sorted(submissions, key=lambda s: (s.school_code, s.submission_id)):
            if (
                s.consolidated_at is None
                and s.state in ("accepted", "partially_accepted", "superseded", "rejected")
                and s.hold != "held"
            ):
                expected[s.dataset].setdefault(s.school_code, []).append(s.submission_id)
    sent: list[str] = []

    def keep(connection, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if "consolidated_at IS NULL" in statement:
            sent.append(statement)

    event.listen(Engine, "before_cursor_execute", keep)  # the engine the step opens itself
    try:
        found = find_changed_schools(home)
    finally:
        event.remove(Engine, "before_cursor_execute", keep)
    assert found == {d: expected.get(d, {}) for d in found}
    assert set(found) == {spec.dataset for spec in TABLES.values() if spec.dataset}
    assert found["rooms"] and found["guardians"]  # rejected and superseded ones count
    assert pending_submissions(database, "marks") == found["marks"]
    assert len(sent) == 1


def test_a_night_with_nothing_new_writes_no_version(
    home: Settings, database: ControlDatabase
) -> None:
    first = night(home, database)
    assert all(not changed_schools(database, dataset) for dataset in DATASETS)
    every_school = schools_of(home)
    for name in TABLES:
        assert consolidate_table(home, name, every_school) == first[name], name
    assert night(home, database) == first
    # a rebuild (after a derivation changed) rewrites the schools anyway, same rows
    before = frame(home, "rooms")
    assert consolidate_table(home, "rooms", every_school, rebuild=True) == first["rooms"] + 1
    assert frame(home, "rooms").sort(before.columns).equals(before.sort(before.columns))


def resubmit_notes(folder: Path) -> Path:
    """A school sends one NotesCC workbook again with one mark corrected."""
    original = sorted((folder / "NotesCC").rglob("*.xlsx"))[0]
    workbook = openpyxl.load_workbook(original)
    sheet = workbook["NotesCC"]
    cell = sheet.cell(18, 7)  # first pupil, first test's mark
    cell.value = 19.25 if cell.value != 19.25 else 18.5
    target = original.with_name(original.stem + "_corrige.xlsx")
    workbook.save(target)
    return target


def test_a_resubmitted_workbook_replaces_exactly_its_class_subject_and_semester(
    home: Settings, database: ControlDatabase, province: Path, tmp_path: Path
) -> None:
    versions = night(home, database)
    code = schools_of(home)[0]
    before = frame(home, "marks")
    inbox = tmp_path / "inbox" / code
    shutil.copytree(province / code, inbox)
    resubmit_notes(inbox)
    outcome = ingest_school(home, code, discover_inbox(inbox)[0][code], inbox)
    assert len(outcome.new_submissions) == 1 and outcome.accepted == 1
    new_id = outcome.new_submissions[0]
    with database.session() as session:
        new = session.get(Submission, new_id)
        old = session.scalars(select(Submission).where(Submission.superseded_by == new_id)).one()
    assert new is not None and new.dataset == "marks"

    assert changed_schools(database, "marks") == [code]
    assert consolidate_table(home, "marks", [code]) == versions["marks"] + 1
    after = frame(home, "marks")
    scope = ["school_code", "class_code", "subject_code", "semester"]
    replaced = after.filter(pl.col("submission_id") == new_id)
    assert replaced.height == new.rows_accepted
    keys = replaced.select(scope).unique()
    assert keys.height == 1
    # every other row of the province is exactly as before
    untouched = before.filter(pl.col("submission_id") != old.submission_id)
    assert (
        after.filter(pl.col("submission_id") != new_id)
        .sort(after.columns)
        .equals(untouched.sort(after.columns))
    )
    assert before.join(keys, on=scope).get_column("submission_id").unique().to_list() == [
        old.submission_id
    ]
    assert set(after.get_column("mark").to_list()) & {19.25, 18.5}
    # last night can still be read
    assert frame(home, "marks", versions["marks"]).equals(before)
    # the other tables were not touched
    for name in TABLES:
        if name != "marks":
            assert consolidate_table(home, name, [code]) == versions[name], name


def test_a_school_without_an_active_submission_left_loses_its_rows(
    home: Settings, database: ControlDatabase
) -> None:
    versions = night(home, database)
    code, other = schools_of(home)[:2]
    with database.session() as session:
        session.execute(
            update(Submission)
            .where(Submission.school_code == code, Submission.dataset == "rooms")
            .values(state="rejected")
        )
    assert consolidate_table(home, "rooms", [code, other]) == versions["rooms"] + 1
    rooms = frame(home, "rooms")
    assert code not in rooms.get_column("school_code").to_list()
    assert other in rooms.get_column("school_code").to_list()


def two_schools_sharing_classes(settings: Settings) -> tuple[str, str]:
    classes = frame(settings, "classes").group_by("school_code").agg(pl.col("class_code"))
    codes = dict(classes.iter_rows())
    pairs = [(a, b) for a in sorted(codes) for b in sorted(codes) if a < b]
    return max(pairs, key=lambda pair: len(set(codes[pair[0]]) & set(codes[pair[1]])))


def test_a_pupil_in_two_schools_keeps_the_later_enrolment(
    home: Settings, database: ControlDatabase, province: Path, tmp_path: Path
) -> None:
    versions = night(home, database)
    left, kept = two_schools_sharing_classes(home)
    # school `kept` sends a list holding the pupils of school `left`: those in classes that
    # `kept` has too are accepted (they moved there), the others are quarantined (X010)
    inbox = tmp_path / "inbox" / kept
    inbox.mkdir(parents=True)
    shutil.copy(next((province / left).glob("ListEleve*")), inbox / "ListEleve_20240301.xls")
    outcome = ingest_school(home, kept, discover_inbox(inbox)[0][kept], inbox)
    assert outcome.accepted + outcome.partially_accepted == 1
    moved = set(
        pl.read_parquet(
            next((home.staging / kept / "students").glob(f"{outcome.new_submissions[0]}-*"))
        ).get_column("student_code_key")
    )
    assert moved
    # the new list holds fewer lines than the school's own: held until an officer confirms it
    assert outcome.held == 1
    assert changed_schools(database, "students") == []  # a held list changes nothing
    assert consolidate_enrollments(home, [kept])[0] == versions["enrollments"]
    confirm_resend(home, outcome.new_submissions[0], "officer")

    schools = changed_schools(database, "students")
    assert schools == [kept]
    version, transfers = consolidate_enrollments(home, schools)
    assert version == versions["enrollments"] + 1  # both schools in one commit
    enrollments = frame(home, "enrollments")
    status = {
        (row["school_code"], row["student_code"]): row["status"]
        for row in enrollments.iter_rows(named=True)
    }
    assert {status[(left, code)] for code in moved} == {"transferred_out"}
    assert {status[(kept, code)] for code in moved} == {"active"}
    assert {s for (school, _), s in status.items() if school == kept} == {"active"}
    stayed = [c for (school, c), s in status.items() if school == left and c not in moved]
    assert stayed and {status[(left, c)] for c in stayed} == {"active"}
    assert {t.student_code for t in transfers} == moved
    assert {(t.school_kept, t.school_left) for t in transfers} == {(kept, left)}
    assert all(t.enrolled_kept > t.enrolled_left for t in transfers)

    with database.session() as session:
        findings = session.scalars(select(Finding).where(Finding.rule_id == "X012")).all()
    assert len(findings) == 2 * len(transfers)
    assert {f.school_code for f in findings} == {left, kept}
    assert all(kept in f.message_fr and left in f.message_ar for f in findings)
    assert all(f.severity == "query" and f.sheet_row for f in findings)
    # a rerun changes nothing and does not duplicate the findings
    assert consolidate_enrollments(home, schools)[0] == version
    assert consolidate_enrollments(home, []) == (version, transfers)
    with database.session() as session:
        assert len(session.scalars(select(Finding).where(Finding.rule_id == "X012")).all()) == len(
            findings
        )

    files = write_transfer_report(home.reports, transfers, "2024-03-02")
    assert [f.name for f in files] == ["transfers-2024-03-02.csv", "transfers-2024-03-02.html"]
    assert all(f.parent == home.reports / "province" for f in files)
    with files[0].open(encoding="utf-8-sig") as handle:
        assert len(list(csv.DictReader(handle))) == len(transfers)


def _enrolments(rows: list[tuple]) -> pl.DataFrame:
    """Enrolment rows: (school, year, pupil, arrival, listed_on, source, submission)."""
    names = [
        "school_code",
        "school_year",
        "student_code",
        "enrolled_from",
        "listed_on",
        "listed_on_source",
        "submission_id",
    ]
    frame = pl.DataFrame(rows, schema=names, orient="row")
    return frame.with_columns(
        pl.col("enrolled_from").cast(pl.Datetime("us", "UTC")),
        pl.lit("active").alias("status"),
        pl.lit("Sheet1").alias("sheet"),
        pl.int_range(pl.len()).cast(pl.Int64).alias("sheet_row"),
    )


def _statuses(frame: pl.DataFrame) -> dict[tuple[str, str], str]:
    resolved = resolve_enrollments(frame)
    return {
        (r["school_code"], r["school_year"]): r["status"] for r in resolved.iter_rows(named=True)
    }


def test_the_newer_list_by_its_own_date_keeps_the_pupil_whatever_arrived_last() -> None:
    early, late = datetime(2024, 1, 5, 8, tzinfo=UTC), datetime(2024, 3, 1, 8, tzinfo=UTC)
    rows = [
        # A's list is dated 20 January but arrived last, with the higher submission id
        ("11111A", "2023/2024", "K1", late, date(2024, 1, 20), "file name", 9),
        ("22222B", "2023/2024", "K1", early, date(2024, 1, 27), "file name", 3),
        # the year before is another enrolment, resolved on its own
        ("11111A", "2022/2023", "K1", early, date(2023, 6, 1), "file name", 1),
    ]
    for order in (rows, rows[::-1], [rows[1], rows[2], rows[0]]):
        assert _statuses(_enrolments(order)) == {
            ("11111A", "2023/2024"): "transferred_out",
            ("22222B", "2023/2024"): "active",
            ("11111A", "2022/2023"): "active",
        }
    (transfer,) = transfers_of(resolve_enrollments(_enrolments(rows)))
    assert (transfer.school_kept, transfer.school_left, transfer.tie) == ("22222B", "11111A", False)
    assert (transfer.listed_kept, transfer.source_kept) == (date(2024, 1, 27), "file name")
    assert (transfer.listed_left, transfer.source_left) == (date(2024, 1, 20), "file name")


def test_lists_without_a_date_are_ordered_by_their_arrival_to_the_minute() -> None:
    morning = datetime(2024, 1, 5, 8, 0, tzinfo=UTC)
    noon = datetime(2024, 1, 5, 12, 0, tzinfo=UTC)
    rows = [
        ("11111A", "2023/2024", "K1", noon, date(2024, 1, 5), "arrival", 1),
        ("22222B", "2023/2024", "K1", morning, date(2024, 1, 5), "arrival", 2),
    ]
    assert _statuses(_enrolments(rows)) == {
        ("11111A", "2023/2024"): "active",
        ("22222B", "2023/2024"): "transferred_out",
    }
    # an export date ties with an arrival of the same day: its time is not known
    dated = [rows[0], ("22222B", "2023/2024", "K1", morning, date(2024, 1, 5), "file name", 2)]
    assert set(_statuses(_enrolments(dated)).values()) == {"active"}


def test_lists_of_the_same_date_are_a_tie_never_settled() -> None:
    moment = datetime(2024, 2, 1, tzinfo=UTC)
    rows = [
        ("22222B", "2023/2024", "K1", moment, date(2024, 1, 27), "file name", 7),
        ("11111A", "2023/2024", "K1", moment, date(2024, 1, 27), "file metadata", 2),
        ("33333C", "2023/2024", "K1", moment, date(2024, 1, 2), "file name", 9),
    ]
    for order in (rows, rows[::-1]):
        assert _statuses(_enrolments(order)) == {
            ("11111A", "2023/2024"): "active",
            ("22222B", "2023/2024"): "active",
            ("33333C", "2023/2024"): "transferred_out",
        }
    transfers = transfers_of(resolve_enrollments(_enrolments(rows)))
    moved = [t for t in transfers if not t.tie]
    ties = [t for t in transfers if t.tie]
    assert [(t.school_kept, t.school_left) for t in moved] == [("11111A", "33333C")]
    assert [(t.school_kept, t.school_left) for t in ties] == [("11111A", "22222B")]
    assert ties[0].listed_kept == ties[0].listed_left == date(2024, 1, 27)


def test_the_school_reference_table(home: Settings, province: Path) -> None:
    assert current_version(home.warehouse, "schools") == -1
    assert consolidate_school_reference(home) == 0
    with (province / "schools.csv").open(encoding="utf-8") as handle:
        codes = {row["school_code"] for row in csv.DictReader(handle)}
    schools = frame(home, "schools")
    assert set(schools.get_column("school_code")) == codes
    assert schools.height == len(codes)
    assert consolidate_school_reference(home) == 0  # unchanged reference: no new version


def test_a_school_whose_staged_rows_are_lost_is_refused_and_nothing_is_committed(
    home: Settings, database: ControlDatabase
) -> None:
    versions = night(home, database)
    first, second = schools_of(home)[:2]
    # rebuilt (as after a change of the table's derivation), one school's staged file lost
    lost = sorted((home.staging / second / "guardians").glob("*.parquet"))
    assert lost
    for path in lost:
        path.unlink()

    with pytest.raises(WarehouseError, match=f"staging of school {second} does not hold"):
        consolidate_table(home, "guardians", [first, second], rebuild=True)
    assert current_version(home.warehouse, "guardians") == versions["guardians"]
    assert frame(home, "guardians").filter(pl.col("school_code") == second).height > 0


DERIVED = [name for name, spec in TABLES.items() if spec.derive is not None]


@pytest.mark.parametrize("table", DERIVED)
def test_schools_derived_together_are_those_derived_one_at_a_time(
    home: Settings, database: ControlDatabase, table: str
) -> None:
    spec = TABLES[table]
    assert spec.dataset is not None
    active = _active(database, changed_schools(database, spec.dataset), spec.dataset)
    assert len(active) > 1
    together = schools_rows(home, spec, active)
    alone = {
        code: rows
        for code in active
        for rows in schools_rows(home, spec, {code: active[code]}).values()
    }
    assert list(together) == list(alone)
    for code, rows in alone.items():
        assert rows.num_rows
        assert together[code].equals(rows), code


def test_staged_frames_of_different_columns_derive_as_they_would_alone() -> None:
    """A school's staged rows may lack a column another school's have (an optional column
    never sent), or hold only nulls in it: together they give each school its own rows."""
    first = pl.DataFrame(
        {
            "school_year_key": ["2023/2024", "2023/2024"],
            "class_code_key": ["1APIC-1", "2APIC-3"],
            "level_label": ["الأولى إعدادي", None],
            "stream": [" علوم ", "  "],
            "submission_id": [1, 1],
            "sheet": ["s", None],
            "sheet_row": [2, 3],
        }
    )
    second = pl.DataFrame(
        {
            "school_year_key": ["2023/2024"],
            "class_code_key": ["TCSF-2"],
            "level_label": [None],
            "submission_id": [2],
            "sheet_row": [7],
        }
    )
    spec = TABLES["classes"]
    frames = {"11111A": first, "22222B": second}
    together = spec.rows_of_schools(frames, SchoolContext("11111A, 22222B"))
    for code, staged in frames.items():
        assert together[code].equals(spec.rows(staged, SchoolContext(code))), code
    assert together["22222B"].column("school_code").to_pylist() == ["22222B"]


def test_schools_are_derived_in_groups_of_bounded_rows_in_their_order() -> None:
    def accepted(*rows: int) -> list:
        return [ActiveRows(rows_accepted=n) for n in rows]

    active = {
        "A": accepted(10, 5),
        "B": accepted(20),
        "C": accepted(90),
        "D": accepted(0),
        "E": accepted(40),
        "F": accepted(70),
    }
    assert derivation_groups(active, 50) == [["A", "B"], ["C"], ["D", "E"], ["F"]]
    assert derivation_groups(active, 1_000) == [["A", "B", "C", "D", "E", "F"]]
    assert derivation_groups({}, 50) == []


class ActiveRows:
    def __init__(self, rows_accepted: int) -> None:
        self.rows_accepted = rows_accepted


def test_only_a_derivation_that_reads_them_dates_its_submissions(
    home: Settings, database: ControlDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The arrivals and list dates of a group's submissions are worked out when a derivation
    reads them (the enrolments, with the same values as before), not for the marks' many
    submissions, which no derivation of theirs reads."""
    import tasks.consolidate as consolidate

    dated: list[int] = []

    def arrival(submission):  # type: ignore[no-untyped-def]
        dated.append(submission.submission_id)
        return consolidate.as_utc(submission.arrived_at or submission.received_at)

    monkeypatch.setattr(consolidate, "arrival", arrival)
    marks = _active(database, changed_schools(database, "marks"), "marks")
    assert schools_rows(home, TABLES["marks"], marks)
    assert dated == []
    students = _active(database, changed_schools(database, "students"), "students")
    enrolments = schools_rows(home, TABLES["enrollments"], students)
    assert sorted(set(dated)) == sorted(s.submission_id for subs in students.values() for s in subs)
    for code, rows in enrolments.items():
        enrolled = set(rows.column("enrolled_from").to_pylist())
        assert enrolled == {arrival(s) for s in students[code]}, code

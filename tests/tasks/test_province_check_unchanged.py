"""The province check (a pupil on two schools' lists, X002) is not recomputed when the active
student lists and its code are those of its last run: its findings stand and no school's report
changes; a new list, or a change of its code, makes it run again."""

from __future__ import annotations

import pytest
from sqlalchemy import select

import tasks.ingest as ingest
from massar.home import init_home
from tasks.ingest import check_province, ingest_school
from tests.connectors.school_file_builders import pupils, write_list_eleve
from warehouse.control import ControlDatabase, Finding

CLASS = "1APIC-1"


def _send(settings, code: str, name: str, listed: list[dict]) -> None:
    folder = settings.inbox / code
    folder.mkdir(parents=True, exist_ok=True)
    write_list_eleve(folder / name, {CLASS: listed})
    outcome = ingest_school(settings, code, sorted(folder.iterdir()), folder)
    assert outcome.rows_accepted, code


def _province_findings(settings) -> list[tuple]:
    database = ControlDatabase(settings.resolved_database_url)
    try:
        with database.session() as session:
            return sorted(
                session.execute(
                    select(Finding.school_code, Finding.rule_id, Finding.value).where(
                        Finding.rule_id == "X002"
                    )
                ).all()
            )
    finally:
        database.dispose()


def test_an_unchanged_province_is_not_checked_again_and_a_new_list_is(tmp_path, monkeypatch):
    settings = init_home(tmp_path / "home")
    shared = pupils(1, start=1)
    _send(settings, "11111A", "ListEleve_20240110.xls", pupils(5, start=2) + shared)
    _send(settings, "22222B", "ListEleve_20240110.xls", pupils(5, start=11) + shared)
    assert check_province(settings) == {"11111A", "22222B"}
    found = _province_findings(settings)
    assert {school for school, _, _ in found} == {"11111A", "22222B"}

    computed = []
    real = ingest.cross_check_province
    monkeypatch.setattr(
        ingest, "cross_check_province", lambda lists: computed.append(sorted(lists)) or real(lists)
    )
    assert check_province(settings) == set()  # nothing changed: no report to rewrite
    assert computed == [] and _province_findings(settings) == found

    # a third school lists the same pupil: the check runs again and finds it there too
    _send(settings, "33333C", "ListEleve_20240110.xls", pupils(5, start=21) + shared)
    assert check_province(settings) == {"11111A", "22222B", "33333C"}
    assert computed == [["11111A", "22222B", "33333C"]]
    assert {school for school, _, _ in _province_findings(settings)} == {
        "11111A",
        "22222B",
        "33333C",
    }


@pytest.mark.parametrize("changed", ["code", "lists"])
def test_the_fingerprint_follows_the_lists_and_the_code(tmp_path, monkeypatch, changed):
    settings = init_home(tmp_path / "home")
    _send(settings, "11111A", "ListEleve_20240110.xls", pupils(3, start=1))
    database = ControlDatabase(settings.resolved_database_url)
    try:
        lists = ingest.active_rows_by_school(database, "students")
    finally:
        database.dispose()
    before = ingest.province_check_fingerprint(lists)
    if changed == "code":
        rules = tmp_path / "rules.csv"
        rules.write_text("another catalogue", encoding="utf-8")
        code = tuple(str(rules) if n.endswith(".csv") else n for n in ingest._PROVINCE_CHECK_CODE)
        monkeypatch.setattr(ingest, "_PROVINCE_CHECK_CODE", code)
    else:
        lists = {code: active[:0] for code, active in lists.items()}
    assert ingest.province_check_fingerprint(lists) != before

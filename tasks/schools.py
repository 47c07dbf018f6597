"""``massar schools import FILE``: the directorate's list of schools, checked like a school's
submission, recorded in the control database and versioned in the warehouse.

The file is archived by its sha256 and registered as a submission of the directorate
(``school_code = "province"``, dataset ``schools_list``), so its findings sit in the
``findings`` table with the rule, the row, the column label and a sentence in Arabic and
French, and ``massar status`` counts it. Rows without an error are imported, the others are
reported and left out (a school already known keeps what it had): one wrong row must not
keep a province's other few hundred schools out of the statistics. Schools missing from the
file are kept (a closed school's history still needs its name). The ``schools`` Delta table is
then rewritten (a new version only when something changed) and published with a new night,
so statistics, ``massar query`` and the evaluation's reports read it at once. The same file
imported again changes nothing.
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from connectors.school_files import FileRejected
from connectors.schools_list import SchoolList, read_school_list
from ground.settings import Settings
from schemas.rules import catalogue, render
from schemas.schools import COLUMNS, DATASET, DIRECTORATE, EXAMPLE_CODE, ListColumn
from schemas.text import match_key
from warehouse.control import ControlDatabase, School, Submission
from warehouse.nights import finish_night, published_versions, start_night
from warehouse.submissions import (
    known_files,
    record_outcomes,
    register_submission,
    upsert_schools,
)

SCOPE_KEY = f"{DATASET}|{DIRECTORATE}"
SHOWN_MAIN_SCHOOLS = 8  # codes quoted in a finding about a satellite's main school
_VALUE_KEYS = {
    column.name: {
        match_key(label): value for value, labels in column.values.items() for label in labels
    }
    for column in COLUMNS
    if column.values
}


@dataclass
class ImportOutcome:
    """What an import did: counts, findings (as stored), the warehouse version published."""

    file_name: str
    submission_id: int
    state: str  # accepted | partially_accepted | rejected
    rows_read: int = 0
    imported: int = 0
    refused: int = 0
    findings: list[dict[str, Any]] = field(default_factory=list)
    already_imported: bool = False
    schools_version: int = -1
    night_id: int | None = None  # the night that published a changed table, else None
    report: Path | None = None


# ---- checking ------------------------------------------------------------------------------------


def _finding(
    rule_id: str, params: dict[str, Any], row: dict[str, Any] | None, column: str | None, value: Any
) -> dict[str, Any]:
    message_ar, message_fr = render(rule_id, params)
    return {
        "sheet": row["sheet"] if row else None,
        "sheet_row": row["sheet_row"] if row else None,
        "column_name": column,
        "value": None if value is None else str(value),
        "rule_id": rule_id,
        "severity": catalogue()[rule_id].severity,
        "message_ar": message_ar,
        "message_fr": message_fr,
    }


def _allowed(column: ListColumn) -> str:
    return ", ".join(
        f"{value} ({labels[-1]} · {labels[1]})" for value, labels in column.values.items()
    )


def check_school_list(
    listed: SchoolList,
    known_main: set[str] = frozenset(),  # type: ignore[assignment]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows of ``listed`` that hold (as ``schools`` rows: school_code, name_ar, name_fr,
    commune, cycle, school_type, parent_school_code) and the findings on the others.
    ``known_main`` are main schools already recorded, which a satellite may name too."""
    labels = listed.headers
    findings: list[dict[str, Any]] = []
    candidates: list[tuple[dict[str, Any], dict[str, Any]]] = []
    first_row: dict[str, int] = {}
    for row in listed.rows:
        school: dict[str, Any] = {}
        problems: list[dict[str, Any]] = []
        for column in COLUMNS:
            label = labels.get(column.name, column.header_ar)
            value = row.get(column.name)
            if column.pattern and value:
                value = value.upper().replace(" ", "")
            if value is None:
                if column.value_required:
                    problems.append(_finding("R005", {"column": label}, row, label, None))
                school[column.name] = None
            elif column.pattern and not re.fullmatch(column.pattern, value):
                params = {"value": value, "column": label, "expected": EXAMPLE_CODE}
                problems.append(_finding("R008", params, row, label, value))
            elif column.values:
                stored = _VALUE_KEYS[column.name].get(match_key(value))
                if stored is None:
                    params = {"value": value, "column": label, "allowed": _allowed(column)}
                    problems.append(_finding("R006", params, row, label, value))
                school[column.name] = stored
            else:
                school[column.name] = value
        code = school.get("school_code")
        if code and not problems:
            if code in first_row:
                label = labels["school_code"]
                params = {"keys": label, "first_row": first_row[code]}
                problems.append(_finding("R007", params, row, label, code))
            else:
                first_row[code] = row["sheet_row"]
        if school.get("school_type") == "satellite" and not school.get("parent_school_code"):
            label = labels.get("parent_school_code", "المؤسسة الأم")
            problems.append(_finding("R005", {"column": label}, row, label, None))
        if school.get("school_type") == "main" and school.get("parent_school_code"):
            label = labels["parent_school_code"]
            value = school["parent_school_code"]
            problems.append(
                _finding(
                    "R006", {"value": value, "column": label, "allowed": "—"}, row, label, value
                )
            )
        findings.extend(problems)
        if not problems:
            candidates.append((row, school))
    # A satellite hangs on a main school of this list (its row accepted) or already known.
    main = {s["school_code"] for _, s in candidates if s["school_type"] == "main"} | set(known_main)
    shown = ", ".join(sorted(main)[:SHOWN_MAIN_SCHOOLS]) + (
        ", …" if len(main) > SHOWN_MAIN_SCHOOLS else ""
    )
    accepted = []
    for row, school in candidates:
        parent = school.get("parent_school_code")
        if school["school_type"] == "satellite" and parent not in main:
            label = labels["parent_school_code"]
            params = {"value": parent, "column": label, "allowed": shown or "—"}
            findings.append(_finding("R006", params, row, label, parent))
            continue
        accepted.append(school)
    findings.sort(key=lambda f: (f["sheet_row"] or 0, f["column_name"] or ""))
    return accepted, findings


# ---- importing ---------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _main_schools(database: ControlDatabase) -> set[str]:
    with database.session() as session:
        return set(session.scalars(select(School.school_code).where(School.school_type == "main")))


def publish_schools(settings: Settings, database: ControlDatabase) -> tuple[int, int | None]:
    """Rewrite the ``schools`` Delta table from the control database and, when its version
    is not the published one, publish a night with it (the other tables as last published).
    Returns (version, the new night or None)."""
    from tasks.consolidate import consolidate_school_reference

    version = consolidate_school_reference(settings)
    published = published_versions(database)
    if version < 0 or published.get("schools") == version:
        return version, None
    night_id = start_night(database)
    finish_night(database, night_id, {**published, "schools": version}, {"schools_import": version})
    return version, night_id


def _stored_findings(database: ControlDatabase, submission_id: int) -> list[dict[str, Any]]:
    from warehouse.control import Finding

    with database.session() as session:
        rows = session.scalars(
            select(Finding)
            .where(Finding.submission_id == submission_id)
            .order_by(Finding.finding_id)
        ).all()
        return [
            {
                "sheet": f.sheet,
                "sheet_row": f.sheet_row,
                "column_name": f.column_name,
                "value": f.value,
                "rule_id": f.rule_id,
                "severity": f.severity,
                "message_ar": f.message_ar,
                "message_fr": f.message_fr,
            }
            for f in rows
        ]


def write_findings_report(folder: Path, outcome: ImportOutcome) -> Path:
    """``schools_import_<submission>.csv`` (UTF-8 with BOM, opens in Excel): one line per
    finding with its row, column, rule and the sentence in French and Arabic."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"schools_import_{outcome.submission_id}.csv"
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "file",
                "sheet",
                "row",
                "column",
                "value",
                "rule",
                "severity",
                "message_fr",
                "message_ar",
            ]
        )
        for f in outcome.findings:
            writer.writerow(
                [
                    outcome.file_name,
                    f["sheet"] or "",
                    f["sheet_row"] or "",
                    f["column_name"] or "",
                    f["value"] or "",
                    f["rule_id"],
                    f["severity"],
                    f["message_fr"],
                    f["message_ar"],
                ]
            )
    return path


def import_school_list(settings: Settings, path: Path) -> ImportOutcome:
    """Check, record and publish the list of schools in ``path`` (see the module's doc).
    Raises OSError when the file cannot be read at all."""
    from tasks.ingest import archive_original

    sha256 = _sha256(path)
    database = ControlDatabase(settings.resolved_database_url)
    try:
        known = known_files(database, DIRECTORATE)
        if sha256 in known:  # the same bytes again: nothing to check, nothing to change
            submission_id = known[sha256]
            with database.session() as session:
                submission = session.get(Submission, submission_id)
                assert submission is not None
                outcome = ImportOutcome(
                    submission.file_name,
                    submission_id,
                    submission.state,
                    submission.rows_read,
                    submission.rows_accepted,
                    submission.rows_quarantined,
                    already_imported=True,
                )
            outcome.findings = _stored_findings(database, submission_id)
        else:
            archived = archive_original(settings.archive, path, sha256)
            submission_id = register_submission(
                database,
                school_code=DIRECTORATE,
                file_name=path.name,
                sha256=sha256,
                size_bytes=path.stat().st_size,
                archive_path=str(archived),
            )
            outcome = _check_and_record(database, archived, path.name, submission_id)
        outcome.schools_version, outcome.night_id = publish_schools(settings, database)
    finally:
        database.dispose()
    if outcome.findings:
        outcome.report = write_findings_report(settings.reports / "province", outcome)
    return outcome


def _check_and_record(
    database: ControlDatabase, archived: Path, file_name: str, submission_id: int
) -> ImportOutcome:
    try:
        listed = read_school_list(archived)
    except FileRejected as error:
        params = {
            "file": file_name,
            "school": DIRECTORATE,
            "detail": error.detail,
            "column": error.column or "",
            "value": error.value or "",
            "where": "",
        }
        findings = [_finding(error.rule_id, params, None, error.column, error.value)]
        accepted: list[dict[str, Any]] = []
        rows_read = 0
    else:
        accepted, findings = check_school_list(listed, _main_schools(database))
        rows_read = len(listed.rows)
    state = (
        "accepted"
        if accepted and len(accepted) == rows_read
        else ("partially_accepted" if accepted else "rejected")
    )
    record_outcomes(
        database,
        [
            {
                "submission_id": submission_id,
                "dataset": DATASET,
                "state": state,
                "school_year": "",
                "scope_key": SCOPE_KEY,
                "rows_read": rows_read,
                "rows_accepted": len(accepted),
                "rows_quarantined": rows_read - len(accepted),
                "detail": "",
                "findings": findings,
            }
        ],
    )
    if accepted:
        upsert_schools(database, accepted)
    return ImportOutcome(
        file_name,
        submission_id,
        state,
        rows_read,
        len(accepted),
        rows_read - len(accepted),
        findings,
    )


def schools_list_state(settings: Settings) -> dict[str, Any]:
    """For ``massar status``: the schools recorded (main, satellites) and the last import
    (file, when, state), or nothing imported."""
    database = ControlDatabase(settings.resolved_database_url)
    try:
        with database.session() as session:
            counts = dict(
                session.execute(
                    select(School.school_type, func.count()).group_by(School.school_type)
                ).all()
            )
            last = session.scalars(
                select(Submission)
                .where(Submission.school_code == DIRECTORATE, Submission.dataset == DATASET)
                .order_by(Submission.submission_id.desc())
                .limit(1)
            ).first()
            imported = (
                None
                if last is None
                else {
                    "file_name": last.file_name,
                    "received_at": last.received_at,
                    "state": last.state,
                    "rows_accepted": last.rows_accepted,
                    "rows_quarantined": last.rows_quarantined,
                }
            )
    finally:
        database.dispose()
    return {
        "schools": sum(counts.values()),
        "main": counts.get("main", 0),
        "satellites": counts.get("satellite", 0),
        "last_import": imported,
    }

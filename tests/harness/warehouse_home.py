"""A home whose warehouse holds a generated province's pupils, for the matching and exchange
tests: the plain ingest and consolidation functions on the pupil lists and guardians files only,
with the province's leavers.csv where the matcher reads Massar's leaving records."""

from __future__ import annotations

import shutil
from pathlib import Path

from ground.settings import Settings
from massar.home import init_home
from tasks.consolidate import changed_schools, consolidate_enrollments, consolidate_table
from tasks.ingest import discover_inbox, ingest_school
from tasks.leaving_records import leavers_path
from warehouse.control import ControlDatabase


def pupils_warehouse_home(province: Path, home: Path) -> Settings:
    """Initialise ``home`` and fill its warehouse with ``province``'s students, enrollments and
    guardians; returns the home's settings."""
    settings = init_home(home)
    schools, _ = discover_inbox(province)
    for code, files in sorted(schools.items()):
        wanted = [f for f in files if f.name.startswith("ListEleve") or f.name == "guardians.csv"]
        ingest_school(settings, code, wanted, province / code)
    database = ControlDatabase(settings.resolved_database_url)
    try:
        for dataset in ("students", "guardians"):
            changed = changed_schools(database, dataset)
            consolidate_table(settings, dataset, changed)
            if dataset == "students":
                consolidate_enrollments(settings, changed)
    finally:
        database.dispose()
    leavers_path(settings).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(province / "leavers.csv", leavers_path(settings))
    return settings

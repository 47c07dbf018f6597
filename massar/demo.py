"""``massar demo``: a synthetic province in a home, run through every flow that exists."""

from __future__ import annotations

import shutil
from pathlib import Path

from rich.console import Console

from massar.home import init_home


def stage_inbox(province: Path, inbox: Path) -> int:
    """Copy each school's folder of a generated province into ``inbox/<school_code>/``.

    Returns the number of files placed. Files already in the inbox are overwritten with the
    same content, so running the demo twice is safe.
    """
    placed = 0
    for school in sorted(p for p in province.iterdir() if p.is_dir() and p.name[:5].isdigit()):
        for source in sorted(q for q in school.rglob("*") if q.is_file()):
            target = inbox / school.name / source.relative_to(school)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
            placed += 1
    return placed


def load_school_reference(settings, reference: Path) -> int:  # type: ignore[no-untyped-def]
    """Record the province's schools (a generated or official schools.csv) in the control
    database."""
    import csv

    from warehouse.control import ControlDatabase
    from warehouse.submissions import upsert_schools

    with reference.open(encoding="utf-8") as handle:
        rows = [
            {
                "school_code": r["school_code"],
                "name_ar": r.get("name_ar", ""),
                "name_fr": r.get("name_fr", ""),
                "commune": r.get("commune", ""),
                "cycle": r.get("cycle", ""),
                "school_type": r.get("type", "main"),
                "parent_school_code": r.get("parent_school_code") or None,
            }
            for r in csv.DictReader(handle)
        ]
    database = ControlDatabase(settings.resolved_database_url)
    try:
        return upsert_schools(database, rows)
    finally:
        database.dispose()


def run_demo(home: Path | str | None, *, schools: int, seed: int, console: Console) -> str:
    """Initialise the home, generate a province, stage it in the inbox, run the flows."""
    from massar.synthetic import generate_province

    settings = init_home(home)
    province = settings.home / "demo-province"
    if province.exists():
        shutil.rmtree(province)
    console.print(f"Generating a synthetic province of {schools} schools into {province} ...")
    generated = generate_province(province, schools=schools, seed=seed)
    placed = stage_inbox(province, settings.inbox)
    load_school_reference(settings, province / "schools.csv")
    console.print(f"{placed} files placed in the inbox; running the nightly flow ...")
    from massar.runner import run_nightly

    ingest_line = run_nightly(settings)
    lines = [
        f"Demo province: {generated.schools} schools, {generated.pupils} pupils, "
        f"{generated.files} files generated in {generated.seconds:.1f} s.",
        f"{placed} school files placed in {settings.inbox}.",
        ingest_line,
        f"Partner requests: {province / 'partners'}.",
        f"Control database: {settings.resolved_database_url}.",
        "Partner exchanges join this demo when their issue lands.",
        f"Look at: {settings.reports} (one report per school), and run "
        f"'massar status --home {settings.home}' or 'massar query \"select class_code, "
        f"count(*) from enrollments group by 1\" --home {settings.home}'.",
    ]
    return "\n".join(lines)

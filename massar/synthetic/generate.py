"""generate_province: a whole synthetic province, one process per core, one task per school."""

from __future__ import annotations

import csv
import io
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from massar.synthetic.defects import (
    GROUND_TRUTH_COLUMNS,
    DefectPlan,
    GroundTruth,
    inject,
    plan_defects,
)
from massar.synthetic.partners import school_leavers, write_leavers, write_partner_files
from massar.synthetic.province import ProvincePlan, SchoolPlan, build_plan, build_school
from massar.synthetic.school import (
    FileStyle,
    WriteStats,
    build_school_files,
    partner_candidates,
    write_school_files,
)

SCHOOLS_COLUMNS = (
    "school_code",
    "name_ar",
    "name_fr",
    "commune",
    "commune_fr",
    "cycle",
    "type",
    "parent_school_code",
)


@dataclass
class GenerationSummary:
    """What generate_province wrote."""

    outdir: Path
    files: int
    rows: dict[str, int]  # rows written per dataset (marks: pupil rows of NotesCC workbooks)
    schools: int  # schools of the province (satellites included)
    folders: int  # schools that submit (one folder each)
    pupils: int
    seconds: float
    bytes: int = 0
    workers: int = 1
    ground_truth_rows: int = 0
    defect_schools: list[str] = field(default_factory=list)


@dataclass
class _SchoolResult:
    code: str
    stats: WriteStats
    pupils: int
    ground_truth: list[GroundTruth]
    candidates: list[dict]
    leavers: list[dict]


def file_style(position: int) -> FileStyle:
    """Deterministic mix of exports: ListEleve as Massar's BIFF .xls, re-saved as .xlsx by 1
    school in 5; NotesCC named export_notesCC_<CLASS>_<SUBJECT CODE>.xlsx (in S1/S2 folders),
    the newer Export_<SCHOOL>_<CLASS>_<SUBJECT>_<stamp>.xlsx by 1 school in 4."""
    return FileStyle("xlsx" if position % 5 == 1 else "xls", "new" if position % 4 == 2 else "old")


def _school_task(args: tuple) -> _SchoolResult:
    plan, province, style, defect_plan, outdir, partners_ok, defects = args
    model = build_school(plan, province)
    files = build_school_files(model, style, province.seed)
    gt: list[GroundTruth] = []
    if defects and plan.code in defect_plan.schools:
        gt = inject(files, model, province, defect_plan, build_school)
    stats = write_school_files(files, outdir)
    candidates = partner_candidates(model, province.seed) if partners_ok else []
    leavers = school_leavers(model, province.seed) if partners_ok else []
    return _SchoolResult(plan.code, stats, len(model.pupils), gt, candidates, leavers)


def _weight(plan: SchoolPlan) -> int:
    return {"lycee": 3, "college": 2}.get(plan.cycle, 1)


def write_schools_csv(province: ProvincePlan, path: Path) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(SCHOOLS_COLUMNS)
    for s in province.schools:
        w.writerow(
            [
                s.code,
                s.name_ar,
                s.name_fr,
                s.commune_ar,
                s.commune_fr,
                s.cycle,
                s.type,
                s.parent_code,
            ]
        )
    path.write_bytes(buf.getvalue().encode("utf-8"))


def generate_province(
    outdir: Path,
    *,
    schools: int | None = None,
    seed: int = 2024,
    year: str = "2023/2024",
    defects: bool = False,
    workers: int | None = None,
) -> GenerationSummary:
    """Write a synthetic province into ``outdir`` (see docs/data-dictionary.md).

    ``schools=None`` is the default Tiznit-like province (about 250 schools, 45 000 pupils);
    ``schools=N`` scales it down. The same seed gives byte-identical CSV files and identical
    workbook contents whatever ``workers`` is. ListEleve and NotesCC are written cell for cell
    as Massar does (massar_layouts.py).
    """
    started = time.perf_counter()
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    province = build_plan(seed, year, schools)
    defect_plan: DefectPlan = plan_defects(province)
    folders = province.folders
    positions = {s.code: i for i, s in enumerate(folders)}
    tasks = [
        (
            plan,
            province,
            file_style(positions[plan.code]),
            defect_plan,
            outdir,
            plan.code not in defect_plan.schools,
            defects,
        )
        for plan in sorted(folders, key=lambda s: (-_weight(s), s.code))
    ]
    workers = max(1, min(workers or os.cpu_count() or 1, len(tasks) or 1))
    if workers == 1:
        results = [_school_task(t) for t in tasks]
    else:
        ctx = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            results = list(pool.map(_school_task, tasks, chunksize=1))
    results.sort(key=lambda r: r.code)

    rows: dict[str, int] = {}
    files = 0
    size = 0
    for r in results:
        files += r.stats.files
        size += r.stats.bytes
        for name, n in r.stats.rows.items():
            rows[name] = rows.get(name, 0) + n
    pupils = sum(r.pupils for r in results)

    write_schools_csv(province, outdir / "schools.csv")
    leavers = [lv for r in results for lv in r.leavers]
    rows["leavers"] = write_leavers(leavers, outdir / "leavers.csv")
    candidates = [c for r in results for c in r.candidates]
    for fund, n in write_partner_files(outdir, seed, year, candidates, leavers, pupils).items():
        rows[f"partner_{fund}"] = n
    files += 2 + 4

    gt_rows = 0
    if defects:
        truth = sorted(
            (g for r in results for g in r.ground_truth),
            key=lambda g: (g.school_code, g.file_name, g.sheet, g.sheet_row or 0, g.column_name),
        )
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(GROUND_TRUTH_COLUMNS)
        for g in truth:
            w.writerow(g.as_row())
        (outdir / "ground_truth.csv").write_bytes(buf.getvalue().encode("utf-8"))
        files += 1
        gt_rows = len(truth)
    for p in outdir.glob("*.csv"):
        size += p.stat().st_size
    for p in (outdir / "partners").rglob("*.csv"):
        size += p.stat().st_size

    return GenerationSummary(
        outdir=outdir,
        files=files,
        rows=rows,
        schools=len(province.schools),
        folders=len(folders),
        pupils=pupils,
        seconds=time.perf_counter() - started,
        bytes=size,
        workers=workers,
        ground_truth_rows=gt_rows,
        defect_schools=sorted(defect_plan.schools) if defects else [],
    )

"""Results statistics for the directorate: counts and rates only, never a pupil.

``compute_statistics`` turns the year's annual (and semester) results into tables per class,
school, commune and province, by sex and by cycle, with the distribution of averages; given
last year's results it adds the change in pass rate and mean. ``write_statistics_report``
writes them as a static bilingual HTML page (right-to-left, no script, no external resource)
with its charts as PNG files beside it; ``headline_table`` is the short table for a Prefect
artifact.

Conventions (a newcomer would ask):

- a pupil is one row of ``annual_results`` (school, year, pupil); the pass rate is the share of
  them whose decision is ``promoted`` (or ``passed``): a pupil still waiting for the class
  council (``council``) or without a decision counts as not passed;
- every average is put on the /20 scale before it is averaged or binned (a primary /10 average
  is doubled), so schools of every cycle compare; the bins are 0-5, 5-10, 10-12, 12-14, 14-16,
  16-20 on /20, i.e. 0-2.5, 2.5-5, 5-6, 6-7, 7-8, 8-10 for a primary /10 average; a bin holds
  its lower bound, the last one also holds 20;
- the mark scale of a level comes from ``levels`` (``mark_scale``), else its cycle (primary
  /10, others /20);
- a pupil's cycle is its level's, else its school's; a sex or cycle not known is ``unknown``.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

LEVELS_CSV = Path(__file__).resolve().parent.parent / "schemas" / "reference" / "levels.csv"
PASS_DECISIONS = ("promoted", "passed")
DECISIONS = ("promoted", "repeats", "excluded", "oriented", "council")
# (lower, upper, column) on the /20 scale; the last bin includes its upper bound.
BINS = (
    (0.0, 5.0, "bin_0_5"),
    (5.0, 10.0, "bin_5_10"),
    (10.0, 12.0, "bin_10_12"),
    (12.0, 14.0, "bin_12_14"),
    (14.0, 16.0, "bin_14_16"),
    (16.0, 20.0, "bin_16_20"),
)
UNKNOWN = "unknown"
PUPIL_KEY = ("school_code", "school_year", "student_code")

# Group keys of each table (school_year always first).
GROUPS: dict[str, tuple[str, ...]] = {
    "province": ("school_year",),
    "commune": ("school_year", "commune"),
    "school": ("school_year", "school_code"),
    "class": ("school_year", "school_code", "class_code", "level_code"),
    "sex": ("school_year", "sex"),
    "cycle": ("school_year", "cycle"),
    "cycle_sex": ("school_year", "cycle", "sex"),
}
COMPARED = ("province", "commune", "school", "cycle")

CYCLE_LABELS = {
    "primary": ("الابتدائي", "Primaire"),
    "college": ("الثانوي الإعدادي", "Collège"),
    "lycee": ("الثانوي التأهيلي", "Lycée"),
    UNKNOWN: ("غير محدد", "Non précisé"),
}
SEX_LABELS = {"M": ("ذكور", "Garçons"), "F": ("إناث", "Filles"), UNKNOWN: ("غير محدد", "?")}


# ---- computation -------------------------------------------------------------------------------


def _column(frame: pl.DataFrame, name: str, dtype: Any) -> pl.Expr:
    if name in frame.columns:
        return pl.col(name).cast(dtype)
    return pl.lit(None, dtype).alias(name)


def _levels(levels: pl.DataFrame | None) -> pl.DataFrame:
    if levels is None:
        levels = pl.read_csv(LEVELS_CSV, infer_schema=False) if LEVELS_CSV.is_file() else None
    if levels is None or "level_code" not in levels.columns:
        return pl.DataFrame(
            schema={"level_code": pl.Utf8, "level_cycle": pl.Utf8, "level_scale": pl.Float64}
        )
    return levels.select(
        pl.col("level_code").cast(pl.Utf8),
        _column(levels, "cycle", pl.Utf8).alias("level_cycle"),
        _column(levels, "mark_scale", pl.Float64).alias("level_scale"),
    ).unique("level_code", keep="first")


def _schools(schools: pl.DataFrame | None) -> pl.DataFrame:
    if schools is None or "school_code" not in schools.columns:
        schools = pl.DataFrame(schema={"school_code": pl.Utf8})
    return schools.select(
        pl.col("school_code").cast(pl.Utf8),
        _column(schools, "name_ar", pl.Utf8),
        _column(schools, "name_fr", pl.Utf8),
        _column(schools, "commune", pl.Utf8),
        _column(schools, "cycle", pl.Utf8).alias("school_cycle"),
    ).unique("school_code", keep="first")


def _on_20(average: pl.Expr) -> pl.Expr:
    return average * 20.0 / pl.col("scale")


def pupil_outcomes(
    annual_results: pl.DataFrame,
    semester_results: pl.DataFrame | None,
    students: pl.DataFrame | None,
    schools: pl.DataFrame | None,
    levels: pl.DataFrame | None,
) -> pl.DataFrame:
    """One row per pupil: the group columns (year, commune, school, class, level, cycle, sex)
    and the outcomes (averages on /20, passed, decision). Internal: it holds pupil codes."""
    annual = annual_results.select(
        *(pl.col(c).cast(pl.Utf8) for c in PUPIL_KEY),
        _column(annual_results, "class_code", pl.Utf8),
        _column(annual_results, "level_code", pl.Utf8),
        _column(annual_results, "average", pl.Float64).fill_nan(None),
        _column(annual_results, "decision", pl.Utf8),
    ).unique(list(PUPIL_KEY), keep="first", maintain_order=True)

    if students is not None and "sex" in students.columns:
        sexes = students.select(
            *(pl.col(c).cast(pl.Utf8) for c in PUPIL_KEY), pl.col("sex").cast(pl.Utf8)
        ).unique(list(PUPIL_KEY), keep="first")
        annual = annual.join(sexes, on=list(PUPIL_KEY), how="left")
    else:
        annual = annual.with_columns(pl.lit(None, pl.Utf8).alias("sex"))

    semester = pl.DataFrame(schema={**{c: pl.Utf8 for c in PUPIL_KEY}, "s1": pl.Float64})
    semester = semester.with_columns(pl.lit(None, pl.Float64).alias("s2"))
    if semester_results is not None and semester_results.height:
        rows = semester_results.select(
            *(pl.col(c).cast(pl.Utf8) for c in PUPIL_KEY),
            pl.col("semester").cast(pl.Int8),
            pl.col("average").cast(pl.Float64).fill_nan(None),
        )
        semester = rows.group_by(list(PUPIL_KEY)).agg(
            pl.col("average").filter(pl.col("semester") == 1).first().alias("s1"),
            pl.col("average").filter(pl.col("semester") == 2).first().alias("s2"),
        )
    annual = annual.join(semester, on=list(PUPIL_KEY), how="left")

    base = annual.join(_levels(levels), on="level_code", how="left").join(
        _schools(schools), on="school_code", how="left"
    )
    cycle = pl.coalesce(pl.col("level_cycle"), pl.col("school_cycle"))
    return (
        base.with_columns(
            cycle.fill_null(UNKNOWN).alias("cycle"),
            pl.coalesce(
                pl.col("level_scale"),
                pl.when(cycle == "primary").then(pl.lit(10.0)).otherwise(pl.lit(20.0)),
            ).alias("scale"),
            pl.col("sex").fill_null(UNKNOWN),
            pl.col("commune").fill_null(UNKNOWN),
        )
        .with_columns(
            _on_20(pl.col("average")).alias("average_20"),
            _on_20(pl.col("s1")).alias("s1_20"),
            _on_20(pl.col("s2")).alias("s2_20"),
            pl.col("decision").is_in(PASS_DECISIONS).fill_null(False).alias("passed"),
        )
        .drop("level_cycle", "level_scale", "school_cycle")
    )


def _measures() -> list[pl.Expr]:
    average = pl.col("average_20")
    bins = []
    for index, (low, high, name) in enumerate(BINS):
        upper = average <= high if index == len(BINS) - 1 else average < high
        bins.append(((average >= low) & upper).sum().cast(pl.Int64).alias(name))
    return [
        pl.len().cast(pl.Int64).alias("pupils"),
        (pl.col("sex") == "F").sum().cast(pl.Int64).alias("girls"),
        (pl.col("sex") == "M").sum().cast(pl.Int64).alias("boys"),
        pl.col("passed").sum().cast(pl.Int64).alias("passed"),
        (pl.col("passed").sum() / pl.len()).cast(pl.Float64).alias("pass_rate"),
        average.mean().alias("mean_average"),
        pl.col("s1_20").mean().alias("mean_semester_1"),
        pl.col("s2_20").mean().alias("mean_semester_2"),
        *(
            (pl.col("decision") == decision).sum().cast(pl.Int64).alias(decision)
            for decision in DECISIONS
        ),
        pl.col("decision").is_null().sum().cast(pl.Int64).alias("no_decision"),
        *bins,
    ]


def _aggregate(pupils: pl.DataFrame, name: str) -> pl.DataFrame:
    keys = list(GROUPS[name])
    table = pupils.group_by(keys).agg(_measures()).sort(keys, nulls_last=True)
    if name == "school":
        info = pupils.group_by("school_code").agg(
            pl.col("name_ar").first(),
            pl.col("name_fr").first(),
            pl.col("commune").first(),
            pl.col("cycle").mode().sort().first().alias("cycle"),
        )
        table = table.join(info, on="school_code", how="left").select(
            "school_year", "school_code", "name_ar", "name_fr", "commune", "cycle",
            pl.exclude("school_year", "school_code", "name_ar", "name_fr", "commune", "cycle"),
        )  # fmt: skip
    if name == "class":
        info = pupils.group_by("school_code", "class_code").agg(pl.col("cycle").first())
        table = table.join(info, on=["school_code", "class_code"], how="left", nulls_equal=True)
    return table


def _distribution(pupils: pl.DataFrame) -> pl.DataFrame:
    """Long table: per year and cycle (and ``all``), the pupils in each bin and their share."""
    rows: list[dict[str, Any]] = []
    scopes = [("all", pupils)] + [
        (cycle, pupils.filter(pl.col("cycle") == cycle))
        for cycle in sorted(pupils.get_column("cycle").unique().to_list())
    ]
    years = sorted(pupils.get_column("school_year").drop_nulls().unique().to_list())
    for year in years:
        for scope, frame in scopes:
            frame = frame.filter(pl.col("school_year") == year)
            averages = frame.get_column("average_20").drop_nulls()
            total = averages.len()
            for index, (low, high, name) in enumerate(BINS):
                inside = averages >= low
                inside &= averages <= high if index == len(BINS) - 1 else averages < high
                count = int(inside.sum())
                rows.append(
                    {
                        "school_year": year,
                        "cycle": scope,
                        "bin": name,
                        "range_20": f"{low:g}-{high:g}",
                        "range_10": f"{low / 2:g}-{high / 2:g}",
                        "pupils": count,
                        "share": count / total if total else None,
                    }
                )
    schema = {
        "school_year": pl.Utf8,
        "cycle": pl.Utf8,
        "bin": pl.Utf8,
        "range_20": pl.Utf8,
        "range_10": pl.Utf8,
        "pupils": pl.Int64,
        "share": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


def _compare(current: pl.DataFrame, before: pl.DataFrame, name: str) -> pl.DataFrame:
    keys = [k for k in GROUPS[name] if k != "school_year"]
    last = before.select(
        *keys,
        pl.col("pass_rate").alias("pass_rate_previous"),
        pl.col("mean_average").alias("mean_average_previous"),
    )
    if keys:
        joined = current.join(last, on=keys, how="left", nulls_equal=True)
    else:
        joined = current.join(last.head(1), how="cross")
    return joined.with_columns(
        (pl.col("pass_rate") - pl.col("pass_rate_previous")).alias("pass_rate_change"),
        (pl.col("mean_average") - pl.col("mean_average_previous")).alias("mean_average_change"),
    )


def compute_statistics(
    annual_results: pl.DataFrame,
    semester_results: pl.DataFrame | None,
    students: pl.DataFrame | None,
    schools: pl.DataFrame | None,
    levels: pl.DataFrame | None,
    previous: pl.DataFrame | Mapping[str, pl.DataFrame] | None = None,
) -> dict[str, pl.DataFrame]:
    """The year's statistics, one frame per name of ``GROUPS`` (province, commune, school,
    class, sex, cycle, cycle_sex) plus ``distribution`` (long: year, cycle, bin, pupils, share).

    Each grouped frame holds: pupils, girls, boys, passed, pass_rate (0-1), mean_average and
    mean_semester_1/2 (on /20), one count per decision and ``no_decision``, and the six bin
    counts. ``previous`` is last year's ``annual_results`` (or last year's statistics): the
    province, commune, school and cycle frames then gain pass_rate_previous, pass_rate_change,
    mean_average_previous and mean_average_change (matched on commune / school / cycle).
    No frame holds a pupil's code or name."""
    pupils = pupil_outcomes(annual_results, semester_results, students, schools, levels)
    stats = {name: _aggregate(pupils, name) for name in GROUPS}
    stats["distribution"] = _distribution(pupils)
    if previous is not None:
        if isinstance(previous, pl.DataFrame):
            if "school_year" in previous.columns and previous.height:
                latest = previous.get_column("school_year").drop_nulls().max()
                previous = previous.filter(pl.col("school_year") == latest)
            last = pupil_outcomes(previous, None, None, schools, levels)
            before = {name: _aggregate(last, name) for name in COMPARED}
        else:
            before = {name: previous[name] for name in COMPARED if name in previous}
        for name, frame in before.items():
            stats[name] = _compare(stats[name], frame, name)
    return stats


def headline_table(stats: Mapping[str, pl.DataFrame]) -> list[dict[str, Any]]:
    """Rows for a Prefect table artifact: the province, then each school (pupils, pass rate in
    percent, mean /20, change in pass rate in points when last year is known)."""

    def row(scope: str, record: Mapping[str, Any]) -> dict[str, Any]:
        change = record.get("pass_rate_change")
        rate = record.get("pass_rate")
        mean = record.get("mean_average")
        return {
            "scope": scope,
            "school_year": record.get("school_year"),
            "school_code": record.get("school_code", ""),
            "school": record.get("name_fr") or record.get("name_ar") or "",
            "pupils": record.get("pupils"),
            "pass_rate_pct": None if rate is None else round(100 * rate, 1),
            "mean_average_20": None if mean is None else round(mean, 2),
            "pass_rate_change_pts": None if change is None else round(100 * change, 1),
        }

    rows = [row("province", r) for r in stats["province"].iter_rows(named=True)]
    rows += [row("school", r) for r in stats["school"].iter_rows(named=True)]
    return rows


# ---- report ------------------------------------------------------------------------------------


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _save(figure, path: Path) -> None:
    # Agg through the PNG writer; no Software tag, so the same figures give the same bytes.
    figure.savefig(path, format="png", metadata={"Software": None})


def _empty(axes, text: str = "Aucune donnée") -> None:
    axes.text(0.5, 0.5, text, ha="center", va="center", transform=axes.transAxes)
    axes.set_axis_off()


def _school_label(record: Mapping[str, Any]) -> str:
    name = record.get("name_fr") or ""
    label = f"{record['school_code']} {name}".strip()
    return label if len(label) <= 40 else label[:39] + "…"


def _chart_pass_rate_by_school(schools: pl.DataFrame, path: Path) -> None:
    rows = schools.sort("pass_rate", "school_code", nulls_last=True).to_dicts()
    figure = _figure(8, max(2.5, 0.25 * len(rows) + 1.2))
    axes = figure.subplots()
    if not rows:
        _empty(axes)
    else:
        labels = [_school_label(r) for r in rows]
        values = [100 * (r["pass_rate"] or 0) for r in rows]
        axes.barh(range(len(rows)), values, color="#2a7ab0")
        axes.set_yticks(range(len(rows)), labels, fontsize=7)
        axes.set_xlim(0, 100)
        axes.set_xlabel("Taux de réussite (%)")
        axes.set_title("Taux de réussite par établissement")
        axes.grid(axis="x", alpha=0.3)
    _save(figure, path)


def _chart_distribution(distribution: pl.DataFrame, path: Path) -> None:
    figure = _figure(8, 4)
    axes = figure.subplots()
    cycles = [c for c in distribution.get_column("cycle").unique().sort().to_list() if c != "all"]
    if distribution.height == 0 or not cycles:
        _empty(axes)
    else:
        labels = [f"{low:g}-{high:g}" for low, high, _ in BINS]
        bottom = [0] * len(BINS)
        for cycle in cycles:
            part = distribution.filter(pl.col("cycle") == cycle).sort("bin")
            counts = {r["bin"]: r["pupils"] for r in part.iter_rows(named=True)}
            values = [counts.get(name, 0) for _, _, name in BINS]
            label = CYCLE_LABELS.get(cycle, (cycle, cycle))[1]
            axes.bar(labels, values, bottom=bottom, label=label)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        axes.set_xlabel("Moyenne annuelle (sur 20 ; primaire : équivalent de la note sur 10)")
        axes.set_ylabel("Élèves")
        axes.yaxis.get_major_locator().set_params(integer=True)
        axes.set_title("Répartition des moyennes")
        axes.legend()
    _save(figure, path)


def _chart_sex_cycle(cycle_sex: pl.DataFrame, path: Path) -> None:
    figure = _figure(8, 4)
    axes = figure.subplots()
    if cycle_sex.height == 0:
        _empty(axes)
    else:
        cycles = cycle_sex.get_column("cycle").unique().sort().to_list()
        sexes = [s for s in ("F", "M", UNKNOWN) if s in cycle_sex.get_column("sex").to_list()]
        width = 0.8 / max(len(sexes), 1)
        for index, sex in enumerate(sexes):
            rates = {
                r["cycle"]: 100 * (r["pass_rate"] or 0)
                for r in cycle_sex.filter(pl.col("sex") == sex).iter_rows(named=True)
            }
            positions = [i + (index - (len(sexes) - 1) / 2) * width for i in range(len(cycles))]
            axes.bar(
                positions,
                [rates.get(c, 0) for c in cycles],
                width=width,
                label=SEX_LABELS.get(sex, (sex, sex))[1],
            )
        axes.set_xticks(range(len(cycles)), [CYCLE_LABELS.get(c, (c, c))[1] for c in cycles])
        axes.set_ylim(0, 100)
        axes.set_ylabel("Taux de réussite (%)")
        axes.set_title("Taux de réussite par sexe et par cycle")
        figure.legend(loc="outside lower center", ncols=len(sexes))
    _save(figure, path)


def _chart_comparison(schools: pl.DataFrame, province: pl.DataFrame, path: Path) -> None:
    rows = [{"label": "Province", **r} for r in province.iter_rows(named=True)]
    rows += [
        {"label": _school_label(r), **r} for r in schools.sort("school_code").iter_rows(named=True)
    ]
    figure = _figure(8, max(2.5, 0.3 * len(rows) + 1.2))
    axes = figure.subplots()
    if not rows:
        _empty(axes)
    else:
        positions = list(range(len(rows)))
        before = [100 * (r.get("pass_rate_previous") or 0) for r in rows]
        now = [100 * (r.get("pass_rate") or 0) for r in rows]
        axes.barh([p + 0.2 for p in positions], before, height=0.4, label="Année précédente")
        axes.barh([p - 0.2 for p in positions], now, height=0.4, label="Cette année")
        axes.set_yticks(positions, [r["label"] for r in rows], fontsize=7)
        axes.invert_yaxis()
        axes.set_xlim(0, 100)
        axes.set_xlabel("Taux de réussite (%)")
        axes.set_title("Comparaison avec l'année précédente")
        figure.legend(loc="outside lower center", ncols=2)
    _save(figure, path)


def _number(value: Any, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if kind == "rate":
        return f"{100 * value:.1f} %"
    if kind == "change_rate":
        return f"{100 * value:+.1f}"
    if kind == "mean":
        return f"{value:.2f}"
    if kind == "change_mean":
        return f"{value:+.2f}"
    return html.escape(str(value))


# (column, Arabic header, French header, kind)
_MEASURE_COLUMNS = (
    ("pupils", "عدد التلاميذ", "Élèves", "count"),
    ("girls", "الإناث", "Filles", "count"),
    ("passed", "الناجحون", "Admis", "count"),
    ("pass_rate", "نسبة النجاح", "Taux de réussite", "rate"),
    ("mean_average", "متوسط المعدلات /20", "Moyenne /20", "mean"),
    ("pass_rate_change", "تطور نسبة النجاح (نقط)", "Évolution du taux (points)", "change_rate"),
    ("mean_average_change", "تطور المتوسط", "Évolution de la moyenne", "change_mean"),
)
_KEY_COLUMNS = {
    "commune": ("الجماعة", "Commune"),
    "school_code": ("رمز المؤسسة", "Code"),
    "name_ar": ("المؤسسة", "Établissement"),
    "class_code": ("القسم", "Classe"),
    "level_code": ("المستوى", "Niveau"),
    "cycle": ("السلك", "Cycle"),
    "sex": ("النوع", "Sexe"),
}


def _label(column: str, value: Any) -> str:
    if column == "cycle" and value in CYCLE_LABELS:
        return " · ".join(CYCLE_LABELS[value])
    if column == "sex" and value in SEX_LABELS:
        return " · ".join(SEX_LABELS[value])
    return _number(value, "text")


def _table(frame: pl.DataFrame, keys: Sequence[str]) -> str:
    measures = [m for m in _MEASURE_COLUMNS if m[0] in frame.columns]
    bins = [name for _, _, name in BINS if name in frame.columns]
    head = [f"<th>{html.escape(ar)}<br><span lang='fr'>{fr}</span></th>" for ar, fr in
            (_KEY_COLUMNS[k] for k in keys)]  # fmt: skip
    head += [f"<th>{html.escape(ar)}<br><span lang='fr'>{fr}</span></th>" for _, ar, fr, _ in
             measures]  # fmt: skip
    for low, high, _ in BINS[: len(bins)]:
        head.append(f"<th>{low:g}-{high:g}<br><small>(/10: {low / 2:g}-{high / 2:g})</small></th>")
    body = []
    for record in frame.iter_rows(named=True):
        cells = [f"<td>{_label(k, record.get(k))}</td>" for k in keys]
        cells += [
            f"<td class='n'>{_number(record.get(c), kind)}</td>" for c, _, _, kind in measures
        ]
        cells += [f"<td class='n'>{_number(record.get(b), 'count')}</td>" for b in bins]
        body.append("<tr>" + "".join(cells) + "</tr>")
    if not body:
        body.append(f"<tr><td colspan='{len(head)}'>لا معطيات · Aucune donnée</td></tr>")
    return (
        "<table><thead><tr>"
        + "".join(head)
        + "</tr></thead><tbody>"
        + "\n".join(body)
        + "</tbody></table>"
    )


_STYLE = """
body { font-family: 'Noto Naskh Arabic', 'Amiri', Tahoma, Arial, sans-serif; margin: 2em; }
h1, h2 { color: #1d4f73; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.5em; }
th { background: #eef3f7; }
td.n { text-align: left; direction: ltr; unicode-bidi: embed; }
img { max-width: 100%; border: 1px solid #ddd; }
[lang=fr] { direction: ltr; unicode-bidi: embed; }
"""


def write_statistics_report(
    folder: Path | str, stats: Mapping[str, pl.DataFrame], year: str
) -> Path:
    """Write ``statistics_<year>.html`` (``2023/2024`` → ``2023-2024``) and its PNG charts
    ``statistics_<year>_*.png`` into ``folder``; returns the HTML file. The page is static:
    Arabic and French headings, right-to-left, no script, images referenced by file name."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = "statistics_" + year.replace("/", "-")

    def of_year(name: str) -> pl.DataFrame:
        frame = stats.get(name)
        if frame is None:
            return pl.DataFrame()
        return frame.filter(pl.col("school_year") == year) if frame.height else frame

    province, schools = of_year("province"), of_year("school")
    compared = "pass_rate_previous" in schools.columns or "pass_rate_previous" in (province.columns)
    charts = {
        "pass_rate_by_school": ("نسبة النجاح حسب المؤسسة", "Taux de réussite par établissement"),
        "distribution": ("توزيع المعدلات", "Répartition des moyennes"),
        "pass_rate_by_sex_cycle": (
            "نسبة النجاح حسب النوع والسلك",
            "Taux de réussite par sexe et par cycle",
        ),
    }
    _chart_pass_rate_by_school(schools, folder / f"{stem}_pass_rate_by_school.png")
    _chart_distribution(of_year("distribution"), folder / f"{stem}_distribution.png")
    _chart_sex_cycle(of_year("cycle_sex"), folder / f"{stem}_pass_rate_by_sex_cycle.png")
    if compared:
        charts["comparison"] = ("المقارنة مع السنة الماضية", "Comparaison avec l'année précédente")
        _chart_comparison(schools, province, folder / f"{stem}_comparison.png")

    sections = [
        ("الإقليم", "Province", _table(province, [])),
        ("حسب النوع", "Par sexe", _table(of_year("sex"), ["sex"])),
        ("حسب السلك", "Par cycle", _table(of_year("cycle"), ["cycle"])),
        ("حسب السلك والنوع", "Par cycle et sexe", _table(of_year("cycle_sex"), ["cycle", "sex"])),
        ("حسب الجماعة", "Par commune", _table(of_year("commune"), ["commune"])),
        (
            "حسب المؤسسة",
            "Par établissement",
            _table(schools, ["school_code", "name_ar", "commune", "cycle"]),
        ),
        (
            "حسب القسم",
            "Par classe",
            _table(of_year("class"), ["school_code", "class_code", "level_code"]),
        ),
    ]
    figures = "\n".join(
        f"<figure><img src='{html.escape(f'{stem}_{name}.png')}' alt='{html.escape(fr)}'>"
        f"<figcaption>{html.escape(ar)} · <span lang='fr'>{html.escape(fr)}</span>"
        "</figcaption></figure>"
        for name, (ar, fr) in charts.items()
    )
    tables = "\n".join(
        f"<h2>{html.escape(ar)} · <span lang='fr'>{html.escape(fr)}</span></h2>\n{table}"
        for ar, fr, table in sections
    )
    page = f"""<!DOCTYPE html>
<html lang="ar" dir="rtl">
<head>
<meta charset="utf-8">
<title>إحصائيات النتائج {html.escape(year)} · Statistiques des résultats</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>إحصائيات النتائج الدراسية {html.escape(year)}<br>
<span lang="fr">Statistiques des résultats scolaires {html.escape(year)}</span></h1>
<p>نسبة النجاح: حصة التلاميذ المقرر انتقالهم أو نجاحهم. المعدلات على 20 (معدلات الابتدائي
على 10 مضاعفة).<br><span lang="fr">Taux de réussite : part des élèves admis (passage ou
réussite). Moyennes sur 20 (les moyennes du primaire, sur 10, sont doublées).</span></p>
{figures}
{tables}
</body>
</html>
"""
    path = folder / f"{stem}.html"
    path.write_text(page, encoding="utf-8")
    return path

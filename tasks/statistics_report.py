"""The officers' statistics page: ``statistics_<YYYY-YYYY>.html`` with its PNG charts.

The page is static (no script, no external resource), right-to-left, every heading, table
header and chart label in Arabic and French. It shows what ``compute_statistics`` computed:
what counts as a pass (from the rules files), pass rates and averages per province, sex,
cycle, commune, school and class, the exam results (sixth-year primary, collège certificate,
baccalaureate) and the comparison with last year when the warehouse holds it.
"""

from __future__ import annotations

import html
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from ground.collector import collector_paused
from tasks.bidi import isolated
from tasks.statistics import BINS, UNKNOWN

CYCLE_LABELS = {
    "primary": ("الابتدائي", "Primaire"),
    "college": ("الثانوي الإعدادي", "Collège"),
    "lycee": ("الثانوي التأهيلي", "Lycée"),
    UNKNOWN: ("غير محدد", "Non précisé"),
}
SEX_LABELS = {"M": ("ذكور", "Garçons"), "F": ("إناث", "Filles"), UNKNOWN: ("غير محدد", "?")}
DECISION_LABELS = {
    "promoted": ("ينتقل", "passage"),
    "oriented": ("موجه", "orientation"),
    "repeats": ("يكرر", "redoublement"),
    "excluded": ("مفصول", "exclusion"),
    "council": ("في انتظار مجلس القسم", "en attente du conseil de classe"),
}
EXAM_LABELS = {
    "primary_certificate": ("امتحان السنة السادسة ابتدائي", "Examen de 6e année primaire"),
    "college_certificate": ("شهادة السلك الإعدادي", "Certificat du collège (3e année)"),
    "baccalaureate": ("البكالوريا", "Baccalauréat"),
}
NO_DATA = ("لا معطيات", "Aucune donnée")
PASS_RATE_AXIS = ("نسبة النجاح (%)", "Taux de réussite (%)")
# name → (Arabic, French) caption of each chart, in the page's order
CHARTS = {
    "pass_rate_by_school": ("نسبة النجاح حسب المؤسسة", "Taux de réussite par établissement"),
    "distribution": ("توزيع المعدلات", "Répartition des moyennes"),
    "pass_rate_by_sex_cycle": (
        "نسبة النجاح حسب النوع والسلك",
        "Taux de réussite par sexe et par cycle",
    ),
    "comparison": ("المقارنة مع السنة الماضية", "Comparaison avec l'année précédente"),
    "exams": ("نسبة النجاح في الامتحانات", "Taux de réussite aux examens"),
}


def both(labels: tuple[str, str], separator: str = "\n") -> str:
    """A chart label in Arabic and French (two lines unless ``separator`` says otherwise)."""
    return f"{labels[0]}{separator}{labels[1]}"


# ---- charts ------------------------------------------------------------------------------------


def _figure(width: float, height: float):  # type: ignore[no-untyped-def]
    from matplotlib.figure import Figure

    # DejaVu Sans has the Arabic letters; matplotlib shapes them (libraqm).
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _empty(axes) -> None:  # type: ignore[no-untyped-def]
    axes.text(0.5, 0.5, both(NO_DATA), ha="center", va="center", transform=axes.transAxes)
    axes.set_axis_off()


def _school_label(record: Mapping[str, Any]) -> str:
    name = record.get("name_fr") or record.get("name_ar") or ""
    label = f"{record['school_code']} {name}".strip()
    return label if len(label) <= 40 else label[:39] + "…"


def _title(axes, name: str) -> None:  # type: ignore[no-untyped-def]
    axes.set_title(both(CHARTS[name]))


def _chart_pass_rate_by_school(schools: pl.DataFrame):  # type: ignore[no-untyped-def]
    rows = (
        schools.sort("pass_rate", "school_code", nulls_last=True).to_dicts()
        if (schools.height)
        else []
    )
    figure = _figure(8, max(2.5, 0.25 * len(rows) + 1.6))
    axes = figure.subplots()
    if not rows:
        _empty(axes)
        return figure
    labels = [_school_label(r) for r in rows]
    values = [100 * (r["pass_rate"] or 0) for r in rows]
    axes.barh(range(len(rows)), values, color="#2a7ab0")
    axes.set_yticks(range(len(rows)), labels, fontsize=7)
    axes.set_xlim(0, 100)
    axes.set_xlabel(both(PASS_RATE_AXIS))
    _title(axes, "pass_rate_by_school")
    axes.grid(axis="x", alpha=0.3)
    return figure


def _chart_distribution(distribution: pl.DataFrame):  # type: ignore[no-untyped-def]
    figure = _figure(8, 4.2)
    axes = figure.subplots()
    cycles = (
        [c for c in distribution.get_column("cycle").unique().sort().to_list() if c != "all"]
        if distribution.height
        else []
    )
    if not cycles:
        _empty(axes)
        return figure
    labels = [f"{low:g}-{high:g}" for low, high, _ in BINS]
    bottom = [0] * len(BINS)
    for cycle in cycles:
        part = distribution.filter(pl.col("cycle") == cycle).sort("bin")
        counts = {r["bin"]: r["pupils"] for r in part.iter_rows(named=True)}
        values = [counts.get(name, 0) for _, _, name in BINS]
        label = both(CYCLE_LABELS.get(cycle, (cycle, cycle)), " · ")
        axes.bar(labels, values, bottom=bottom, label=label)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    axes.set_xlabel(
        both(
            (
                "المعدل السنوي على 20 (الابتدائي: ما يعادل النقطة على 10)",
                "Moyenne annuelle sur 20 (primaire : équivalent de la note sur 10)",
            )
        )
    )
    axes.set_ylabel(both(("التلاميذ", "Élèves")))
    axes.yaxis.get_major_locator().set_params(integer=True)
    _title(axes, "distribution")
    axes.legend()
    return figure


def _chart_sex_cycle(cycle_sex: pl.DataFrame):  # type: ignore[no-untyped-def]
    figure = _figure(8, 4.2)
    axes = figure.subplots()
    if cycle_sex.height == 0:
        _empty(axes)
        return figure
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
            label=both(SEX_LABELS.get(sex, (sex, sex)), " · "),
        )
    axes.set_xticks(range(len(cycles)), [both(CYCLE_LABELS.get(c, (c, c))) for c in cycles])
    axes.set_ylim(0, 100)
    axes.set_ylabel(both(PASS_RATE_AXIS))
    _title(axes, "pass_rate_by_sex_cycle")
    figure.legend(loc="outside lower center", ncols=len(sexes))
    return figure


def _bars_against_last_year(axes, labels, now, before) -> None:  # type: ignore[no-untyped-def]
    positions = list(range(len(labels)))
    axes.barh([p + 0.2 for p in positions], before, height=0.4, label=both(LAST_YEAR, " · "))
    axes.barh([p - 0.2 for p in positions], now, height=0.4, label=both(THIS_YEAR, " · "))
    axes.set_yticks(positions, labels, fontsize=7)
    axes.invert_yaxis()
    axes.set_xlim(0, 100)
    axes.set_xlabel(both(PASS_RATE_AXIS))


LAST_YEAR = ("السنة الماضية", "Année précédente")
THIS_YEAR = ("هذه السنة", "Cette année")


def _chart_comparison(schools: pl.DataFrame, province: pl.DataFrame):  # type: ignore[no-untyped-def]
    rows = [{"label": both(("الإقليم", "Province"), " · "), **r} for r in province.to_dicts()]
    if schools.height:
        rows += [{"label": _school_label(r), **r} for r in schools.sort("school_code").to_dicts()]
    figure = _figure(8, max(2.5, 0.3 * len(rows) + 1.6))
    axes = figure.subplots()
    if not rows:
        _empty(axes)
        return figure
    _bars_against_last_year(
        axes,
        [r["label"] for r in rows],
        [100 * (r.get("pass_rate") or 0) for r in rows],
        [100 * (r.get("pass_rate_previous") or 0) for r in rows],
    )
    _title(axes, "comparison")
    figure.legend(loc="outside lower center", ncols=2)
    return figure


def _chart_exams(exams: pl.DataFrame):  # type: ignore[no-untyped-def]
    rows = exams.to_dicts() if exams.height else []
    figure = _figure(8, max(2.5, 0.6 * len(rows) + 1.8))
    axes = figure.subplots()
    if not rows:
        _empty(axes)
        return figure
    labels = [both(EXAM_LABELS.get(r["exam"], (r["exam"], r["exam"]))) for r in rows]
    now = [100 * (r.get("pass_rate") or 0) for r in rows]
    if "pass_rate_previous" in exams.columns:
        _bars_against_last_year(
            axes, labels, now, [100 * (r.get("pass_rate_previous") or 0) for r in rows]
        )
        figure.legend(loc="outside lower center", ncols=2)
    else:
        bars = axes.barh(range(len(rows)), now, color="#2a7ab0")
        axes.bar_label(bars, labels=[f"{value:.1f} %" for value in now], padding=3)
        axes.set_yticks(range(len(rows)), labels, fontsize=8)
        axes.invert_yaxis()
        axes.set_xlim(0, 100)
        axes.set_xlabel(both(PASS_RATE_AXIS))
    _title(axes, "exams")
    return figure


def chart_figures(stats: Mapping[str, pl.DataFrame], year: str) -> dict[str, Any]:
    """The page's charts as matplotlib figures by name (see ``CHARTS``): ``comparison`` only
    when last year is known, ``exams`` only when the year has exam results."""
    of_year = _of_year(stats, year)
    province, schools = of_year("province"), of_year("school")
    figures = {
        "pass_rate_by_school": _chart_pass_rate_by_school(schools),
        "distribution": _chart_distribution(of_year("distribution")),
        "pass_rate_by_sex_cycle": _chart_sex_cycle(of_year("cycle_sex")),
    }
    if "pass_rate_previous" in province.columns or "pass_rate_previous" in schools.columns:
        figures["comparison"] = _chart_comparison(schools, province)
    exams = of_year("exam_province")
    if exams.height:
        figures["exams"] = _chart_exams(exams)
    return figures


def _save(figure, path: Path) -> None:  # type: ignore[no-untyped-def]
    # Agg through the PNG writer; no Software tag, so the same figures give the same bytes.
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    _write_if_changed(path, buffer.getvalue())


def _write_charts(stem: Path, stats: Mapping[str, pl.DataFrame], year: str) -> list[str]:
    """Draw the page's charts and save each as ``<stem>_<chart>.png``; returns their names.

    Call it with the cyclic garbage collector paused: the figures (~30,000 matplotlib objects
    held in reference cycles) are garbage once it returns, and the collector's next pass over
    the young objects frees them. Drawn with it running, they outlive its passes into the
    oldest generation and set off a full pass over everything the process holds (0.2-0.4 s
    of CPU in the evaluation flow's process)."""
    figures = chart_figures(stats, year)
    for name, figure in figures.items():
        _save(figure, stem.with_name(f"{stem.name}_{name}.png"))
    return list(figures)


def _write_if_changed(path: Path, data: bytes) -> bool:
    """Write ``data`` unless the file already holds exactly it (the report is a function of
    its inputs: the same results give the same bytes, and the file keeps its date); returns
    whether it was written."""
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    except OSError:
        pass
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    partial.replace(path)
    return True


# ---- tables ------------------------------------------------------------------------------------


def _number(value: Any, kind: str, record: Mapping[str, Any] | None = None) -> str:
    """A figure or a code as escaped HTML isolated in a ``<bdi>``: inside the right-to-left
    page, "72.9 %", "+1.5", "11.97 /20" or a school code keep the order they are written in."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if kind == "text":
        return isolated(value)
    return isolated(_figure_text(value, kind, record), "ltr")


def _figure_text(value: Any, kind: str, record: Mapping[str, Any] | None) -> str:
    if kind == "rate":
        return f"{100 * value:.1f} %"
    if kind == "change_rate":
        return f"{100 * value:+.1f}"
    if kind == "mean":
        return f"{value:.2f}"
    if kind == "mean_scale":
        scale = (record or {}).get("scale")
        return f"{value:.2f}" + (f" /{scale:g}" if scale else "")
    if kind == "change_mean":
        return f"{value:+.2f}"
    return str(value)


# (column, Arabic header, French header, kind)
_MEASURE_COLUMNS = (
    ("pupils", "عدد التلاميذ", "Élèves", "count"),
    ("girls", "الإناث", "Filles", "count"),
    ("passed", "الناجحون", "Admis", "count"),
    ("pass_rate", "نسبة النجاح", "Taux de réussite", "rate"),
    ("mean_average", "متوسط المعدلات /20", "Moyenne /20", "mean"),
    ("pass_rate_previous", "نسبة النجاح في السنة الماضية", "Taux l'an dernier", "rate"),
    ("pass_rate_change", "تطور نسبة النجاح (نقط)", "Évolution du taux (points)", "change_rate"),
    ("mean_average_change", "تطور المتوسط", "Évolution de la moyenne", "change_mean"),
)
_EXAM_COLUMNS = (
    ("candidates", "المترشحون", "Candidats", "count"),
    ("passed", "الناجحون", "Admis", "count"),
    ("pass_rate", "نسبة النجاح", "Taux de réussite", "rate"),
    ("mean_final", "متوسط المعدلات", "Moyenne", "mean_scale"),
    ("passed_after_makeup", "ناجحون بعد الدورة الاستدراكية", "Admis après rattrapage", "count"),
    ("awaiting_makeup", "في انتظار الدورة الاستدراكية", "En attente du rattrapage", "count"),
    ("failed", "غير الناجحين", "Ajournés", "count"),
    ("no_result", "بدون نتيجة (نقط ناقصة)", "Sans résultat (notes manquantes)", "count"),
    ("pass_rate_previous", "نسبة النجاح في السنة الماضية", "Taux l'an dernier", "rate"),
    ("pass_rate_change", "تطور نسبة النجاح (نقط)", "Évolution du taux (points)", "change_rate"),
    ("mean_final_change", "تطور المتوسط", "Évolution de la moyenne", "change_mean"),
)
_KEY_COLUMNS = {
    "exam": ("الامتحان", "Examen"),
    "commune": ("الجماعة", "Commune"),
    "school_code": ("رمز المؤسسة", "Code"),
    "name_ar": ("المؤسسة", "Établissement"),
    "class_code": ("القسم", "Classe"),
    "level_code": ("المستوى", "Niveau"),
    "cycle": ("السلك", "Cycle"),
    "sex": ("النوع", "Sexe"),
}


def _label(column: str, value: Any) -> str:
    labels = {"cycle": CYCLE_LABELS, "sex": SEX_LABELS, "exam": EXAM_LABELS}.get(column, {})
    if value in labels:
        return html.escape(both(labels[value], " · "))
    if value == UNKNOWN:
        return html.escape(both(CYCLE_LABELS[UNKNOWN], " · "))
    return _number(value, "text")


def _header(ar: str, fr: str) -> str:
    return f"<th>{html.escape(ar)}<br><span lang='fr'>{html.escape(fr)}</span></th>"


def _table(
    frame: pl.DataFrame,
    keys: Sequence[str],
    columns: Sequence[tuple[str, str, str, str]] = _MEASURE_COLUMNS,
    bins: bool = True,
) -> str:
    measures = [m for m in columns if m[0] in frame.columns]
    binned = [name for _, _, name in BINS if bins and name in frame.columns]
    head = [_header(*_KEY_COLUMNS[k]) for k in keys]
    head += [_header(ar, fr) for _, ar, fr, _ in measures]
    for low, high, _ in BINS[: len(binned)]:
        head.append(
            f"<th>{isolated(f'{low:g}-{high:g}', 'ltr')}<br>"
            f"<small>(/10: {isolated(f'{low / 2:g}-{high / 2:g}', 'ltr')})</small></th>"
        )
    body = []
    for record in frame.iter_rows(named=True):
        cells = [f"<td>{_label(k, record.get(k))}</td>" for k in keys]
        cells += [
            f"<td class='n'>{_number(record.get(c), kind, record)}</td>"
            for c, _, _, kind in measures
        ]
        cells += [f"<td class='n'>{_number(record.get(b), 'count')}</td>" for b in binned]
        body.append("<tr>" + "".join(cells) + "</tr>")
    if not body:
        body.append(f"<tr><td colspan='{len(head)}'>{both(NO_DATA, ' · ')}</td></tr>")
    return (
        "<table><thead><tr>"
        + "".join(head)
        + "</tr></thead><tbody>"
        + "\n".join(body)
        + "</tbody></table>"
    )


def _of_year(stats: Mapping[str, pl.DataFrame], year: str):  # type: ignore[no-untyped-def]
    def of_year(name: str) -> pl.DataFrame:
        frame = stats.get(name)
        if frame is None:
            return pl.DataFrame()
        if frame.height and "school_year" in frame.columns:
            return frame.filter(pl.col("school_year") == year)
        return frame

    return of_year


def _pass_definition(passes: pl.DataFrame | None) -> str:
    """The sentence that says what a pass is, per cycle, from the rules files."""
    by_cycle: dict[str, list[str]] = {}
    for record in (passes if passes is not None else pl.DataFrame()).iter_rows(named=True):
        by_cycle.setdefault(record["cycle"], []).append(record["decision"])
    ordered = [c for c in CYCLE_LABELS if c in by_cycle]

    def listing(index: int, separator: str) -> str:
        return separator.join(
            f"{CYCLE_LABELS[c][index]}: "
            + ("، " if index == 0 else ", ").join(
                DECISION_LABELS.get(d, (d, d))[index] for d in by_cycle[c]
            )
            for c in ordered
        )

    return (
        "<p>نسبة النجاح: حصة التلاميذ الذين يعد قرارهم نجاحا حسب قواعد سلكهم ("
        + html.escape(listing(0, "؛ "))
        + "). المعدلات على 20 (معدلات الابتدائي على 10 مضاعفة).<br>"
        "<span lang='fr'>Taux de réussite : part des élèves dont la décision compte comme une "
        "réussite selon les règles de leur cycle ("
        + html.escape(listing(1, " ; "))
        + "). Moyennes sur 20 (les moyennes du primaire, sur 10, sont doublées).</span><br>"
        "<small>schemas/evaluation/&lt;cycle&gt;.toml, decisions.pass_decisions</small></p>"
    )


_STYLE = """
body { font-family: 'Noto Naskh Arabic', 'Amiri', Tahoma, Arial, sans-serif; margin: 2em; }
h1, h2, h3 { color: #1d4f73; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.5em; }
th { background: #eef3f7; }
td.n { text-align: left; direction: ltr; unicode-bidi: embed; }
img { max-width: 100%; border: 1px solid #ddd; }
p.note { background: #fff6e0; border: 1px solid #e0c070; padding: 0.5em; }
[lang=fr] { direction: ltr; unicode-bidi: embed; }
"""


def _heading(level: int, ar: str, fr: str) -> str:
    return f"<h{level}>{html.escape(ar)} · <span lang='fr'>{html.escape(fr)}</span></h{level}>"


def _note(ar: str, fr: str) -> str:
    return f"<p class='note'>{html.escape(ar)}<br><span lang='fr'>{html.escape(fr)}</span></p>"


def _school_list_notes(stats: Mapping[str, pl.DataFrame]) -> list[str]:
    """What the page lacks without the directorate's list of schools, and how to get it."""
    listed = stats.get("schools_listed")
    unlisted = stats.get("unlisted_schools")
    if listed is None or unlisted is None:
        return []
    command = "massar schools import FILE"
    if not listed.item(0, "schools"):
        return [
            _note(
                "لم تستورد لائحة المؤسسات بعد: أسماء المؤسسات وجماعاتها وأسلاكها غير معروفة "
                f"(— و«غير محدد»). استوردوها بالأمر {command}.",
                "La liste des établissements de la direction n'est pas importée : noms, "
                "communes et cycles des établissements sont inconnus (« — », « Non précisé »). "
                f"Importez-la avec {command}.",
            )
        ]
    if unlisted.height:
        codes = ", ".join(unlisted.get_column("school_code").to_list())
        return [
            _note(
                f"مؤسسات لها نتائج وليست في لائحة المؤسسات ({unlisted.height}): {codes}. "
                f"أضيفوها إلى اللائحة ثم {command}.",
                f"Établissements avec des résultats absents de la liste des établissements "
                f"({unlisted.height}) : {codes}. Ajoutez-les à la liste, puis {command}.",
            )
        ]
    return []


def _exam_section(of_year) -> str:  # type: ignore[no-untyped-def]
    province = of_year("exam_province")
    parts = [_heading(2, "نتائج الامتحانات", "Résultats des examens")]
    if not province.height:
        parts.append(
            _note(
                "لا توجد نتائج امتحانات لهذه السنة في المستودع (نقط الامتحانات exam_marks).",
                "L'entrepôt ne contient aucun résultat d'examen pour cette année "
                "(notes d'examen exam_marks).",
            )
        )
        return "\n".join(parts)
    parts.append(
        "<p>المترشح: تلميذ مستوى الامتحان، بعد الدورة الاستدراكية إن اجتازها؛ المعدل على سلم "
        "الامتحان.<br><span lang='fr'>Candidat : élève du niveau de l'examen, après la "
        "session de rattrapage s'il l'a passée ; moyenne sur le barème de l'examen.</span></p>"
    )
    sections = [
        ("الإقليم", "Province", province, ["exam"]),
        ("حسب الجماعة", "Par commune", of_year("exam_commune"), ["exam", "commune"]),
        (
            "حسب المؤسسة",
            "Par établissement",
            of_year("exam_school"),
            ["exam", "school_code", "name_ar", "commune"],
        ),
    ]
    for ar, fr, frame, keys in sections:
        parts.append(_heading(3, ar, fr))
        parts.append(_table(frame, keys, _EXAM_COLUMNS, bins=False))
    return "\n".join(parts)


def write_statistics_report(
    folder: Path | str, stats: Mapping[str, pl.DataFrame], year: str
) -> Path:
    """Write ``statistics_<year>.html`` (``2023/2024`` → ``2023-2024``) and its PNG charts
    ``statistics_<year>_<chart>.png`` into ``folder``; returns the HTML file. The page is
    static: Arabic and French headings and chart labels, right-to-left, no script, images
    referenced by file name."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = "statistics_" + year.replace("/", "-")
    of_year = _of_year(stats, year)
    province, schools = of_year("province"), of_year("school")

    with collector_paused():
        charts = _write_charts(folder / stem, stats, year)
    for stale in set(CHARTS) - set(charts):  # a chart of an earlier run that no longer holds
        (folder / f"{stem}_{stale}.png").unlink(missing_ok=True)

    notes = _school_list_notes(stats)
    if province.height and "pass_rate_previous" not in province.columns:
        notes.append(
            _note(
                "نتائج السنة الماضية غير موجودة في المستودع: لا مقارنة.",
                "Les résultats de l'année précédente ne sont pas dans l'entrepôt : "
                "pas de comparaison.",
            )
        )
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
    images = "\n".join(
        f"<figure><img src='{html.escape(f'{stem}_{name}.png')}' "
        f"alt='{html.escape(CHARTS[name][1])}'><figcaption>{html.escape(CHARTS[name][0])} · "
        f"<span lang='fr'>{html.escape(CHARTS[name][1])}</span></figcaption></figure>"
        for name in charts
    )
    tables = "\n".join(f"{_heading(2, ar, fr)}\n{table}" for ar, fr, table in sections)
    page = f"""<!DOCTYPE html>
<html lang="ar" dir="rtl">
<head>
<meta charset="utf-8">
<title>إحصائيات النتائج {html.escape(year)} · Statistiques des résultats</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>إحصائيات النتائج الدراسية {isolated(year, "ltr")}<br>
<span lang="fr">Statistiques des résultats scolaires {isolated(year, "ltr")}</span></h1>
{_pass_definition(stats.get("pass_decisions"))}
{"".join(notes)}
{images}
{tables}
{_exam_section(of_year)}
</body>
</html>
"""
    path = folder / f"{stem}.html"
    _write_if_changed(path, page.encode("utf-8"))
    return path

"""The province's coverage page: ``reports/province/coverage.html``.

Per campaign: the coverage rate over time per cycle (a matplotlib chart drawn from the
snapshots recorded after each ingest, embedded as a PNG: the page loads nothing from outside)
and the schools sorted by what they still owe. Counts and school codes only: no pupil data.
Bilingual, Arabic first, like the schools' reports.
"""

from __future__ import annotations

import base64
import html
import io
from datetime import datetime, tzinfo
from pathlib import Path

from ground.settings import Settings
from ground.utc import as_utc
from tasks.bidi import isolated
from tasks.coverage import snapshots
from warehouse.coverage import CampaignCoverage, CoverageSnapshot

CYCLE_LABELS = {
    "primary": ("الابتدائي", "primaire"),
    "college": ("الثانوي الإعدادي", "collège"),
    "lycee": ("الثانوي التأهيلي", "lycée"),
    "": ("غير معروف", "inconnu"),
}
HEADERS = (
    ("المؤسسة", "Établissement"),
    ("الاسم", "Nom"),
    ("السلك", "Cycle"),
    ("المستحق", "Dû"),
    ("المتوصل به", "Reçu"),
    ("المقبول", "Accepté"),
    ("المرفوض", "Rejeté"),
    ("الناقص", "Manquant"),
    ("النسبة", "Taux"),
)


def page_path(settings: Settings) -> Path:
    return settings.reports / "province" / "coverage.html"


def rate_chart(points: list[CoverageSnapshot], zone: tzinfo) -> bytes:
    """PNG: the coverage rate (%) over time, one line per cycle."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 3.2), dpi=100)
    try:
        by_cycle: dict[str, list[CoverageSnapshot]] = {}
        for point in points:
            by_cycle.setdefault(point.cycle, []).append(point)
        for cycle, series in sorted(by_cycle.items()):
            times = [as_utc(p.taken_at).astimezone(zone) for p in series]
            rates = [100 * p.rate for p in series]
            label = CYCLE_LABELS.get(cycle, (cycle, cycle))[1]
            axes.plot(times, rates, marker="o", label=label)  # type: ignore[arg-type]
        axes.set_ylim(0, 100)
        axes.set_ylabel("% couvert")
        axes.grid(True, alpha=0.3)
        if by_cycle:
            axes.legend(loc="lower right")
        figure.autofmt_xdate()
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        return buffer.getvalue()
    finally:
        plt.close(figure)


def _campaign_section(settings: Settings, coverage: CampaignCoverage) -> str:
    e = html.escape
    campaign = coverage.campaign
    chart = base64.b64encode(rate_chart(snapshots(settings, campaign.id), settings.zone))
    head = "".join(
        f"<th>{e(ar)}<br><span lang='fr' dir='ltr'>{e(fr)}</span></th>" for ar, fr in HEADERS
    )
    rows = []
    for school in sorted(coverage.schools, key=lambda s: (-s.missing, s.school_code)):
        ar, fr = CYCLE_LABELS.get(school.cycle, (school.cycle, school.cycle))
        late = " class='late'" if school.missing and coverage.days_left < 0 else ""
        cells = [
            isolated(school.school_code, "ltr"),
            isolated(school.name),
            f"{e(ar)} / {e(fr)}",
            isolated(school.owed, "ltr"),
            isolated(school.received, "ltr"),
            isolated(school.covered, "ltr"),
            isolated(school.count("rejected"), "ltr"),
            isolated(school.missing, "ltr"),
            isolated(f"{100 * school.rate:.1f} %", "ltr"),
        ]
        rows.append(f"<tr{late}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    left = coverage.days_left
    when_ar = f"بقي {left} يوم" if left >= 0 else f"انتهى الأجل منذ {-left} يوم"
    when_fr = f"{left} jour(s) avant l'échéance" if left >= 0 else f"échéance passée de {-left} j"
    return f"""
<section>
<h2>{isolated(campaign.id, "ltr")} — {e(campaign.label())}</h2>
<p>الأجل / <span lang="fr">Échéance</span> : {isolated(campaign.deadline.isoformat(), "ltr")}
— {e(when_ar)} / <span lang="fr">{e(when_fr)}</span> — التغطية / <span lang="fr">couverture</span>
: {isolated(f"{100 * coverage.rate:.1f} %", "ltr")}
({isolated(f"{coverage.covered}/{coverage.owed}", "ltr")})</p>
<img alt="taux de couverture par cycle" src="data:image/png;base64,{chart.decode("ascii")}">
<table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>
</section>"""


def write_province_page(
    settings: Settings, coverages: list[CampaignCoverage], now: datetime
) -> Path:
    """The province's coverage page, replacing the previous one."""
    sections = "".join(_campaign_section(settings, c) for c in coverages)
    stamp = as_utc(now).astimezone(settings.zone).strftime("%Y-%m-%d %H:%M")
    page = f"""<!DOCTYPE html>
<html lang="ar" dir="rtl">
<head>
<meta charset="utf-8">
<title>تغطية حملات جمع المعطيات — {html.escape(settings.province)}</title>
<style>
body {{ font-family: 'Noto Naskh Arabic', 'DejaVu Sans', sans-serif; margin: 1.5rem; }}
table {{ border-collapse: collapse; width: 100%; margin-bottom: 2rem; font-size: 0.9rem; }}
th, td {{ border: 1px solid #bbb; padding: 0.3rem 0.5rem; vertical-align: top; }}
th {{ background: #ddebf7; }}
tr.late td {{ background: #ffc7ce; }}
img {{ max-width: 100%; }}
</style>
</head>
<body>
<h1>تغطية حملات جمع المعطيات — <span lang="fr">Couverture des campagnes de collecte</span></h1>
<p>{html.escape(settings.province)} — {isolated(stamp, "ltr")}</p>
<p>المؤسسات مرتبة حسب ما تبقى عليها إرساله. /
<span lang="fr">Établissements classés par ce qu'il leur reste à envoyer.</span></p>
{sections}
</body>
</html>
"""
    target = page_path(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp")
    temporary.write_text(page, encoding="utf-8")
    temporary.replace(target)
    return target

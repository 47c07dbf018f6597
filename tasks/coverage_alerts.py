"""The ``watch`` alerts of the collection campaigns (docs/coverage.md).

From ``alerts.coverage_reminder_days`` days before a campaign's deadline to the deadline day,
one e-mail a day sums up the schools still missing items (counts per school); after the
deadline, for ``alerts.coverage_late_days`` days, one e-mail a day lists the late schools and
the items each still owes. Keys ``coverage-reminder:<campaign>:<date>`` and
``coverage-late:<campaign>:<date>`` (local date, Africa/Casablanca) make each one a day at
most, sent again at the next check if the mail server refused it (tasks/alerts.py). Schools,
datasets, classes, subjects and semesters only: no pupil data.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from ground.settings import Settings
from schemas.campaigns import CampaignError
from tasks.alerts import Alert, already_sent
from tasks.coverage import campaigns, compute_coverage, local_today
from warehouse.control import ControlDatabase
from warehouse.coverage import CampaignCoverage, SchoolCoverage

ITEMS_PER_SCHOOL = 40  # in a late e-mail; 'massar coverage --school CODE' lists them all


def _subject(settings: Settings, text: str) -> str:
    return f"[Massar {settings.province}] {text}"


def _items(school: SchoolCoverage) -> str:
    owed = school.still_owed
    shown = ", ".join(
        entry.item.label() + (" (rejeté)" if entry.state == "rejected" else "")
        for entry in owed[:ITEMS_PER_SCHOOL]
    )
    more = len(owed) - ITEMS_PER_SCHOOL
    if more > 0:
        shown += f" … et {more} autre(s) : massar coverage --school {school.school_code}"
    return shown


def _reminder(settings: Settings, coverage: CampaignCoverage, day: date) -> Alert:
    campaign, left = coverage.campaign, coverage.days_left
    owing = coverage.incomplete()
    facts: dict[str, Any] = {
        "campagne": campaign.id,
        "échéance": campaign.deadline.isoformat(),
        "jours restants": left,
        "couverture": f"{100 * coverage.rate:.1f} %",
    }
    facts.update({s.school_code: f"{s.missing} élément(s) manquant(s) sur {s.owed}" for s in owing})
    return Alert(
        key=_key(campaign.id, day, coverage.days_left),
        kind="coverage_reminder",
        subject=_subject(
            settings,
            f"Campagne {campaign.id} : {len(owing)} établissement(s) n'ont pas tout envoyé, "
            f"échéance le {campaign.deadline.isoformat()}",
        ),
        text_fr=(
            f"La campagne « {campaign.label()} » se termine le {campaign.deadline.isoformat()} "
            f"(dans {left} jour(s)). {len(owing)} établissement(s) sur {len(coverage.schools)} "
            f"n'ont pas encore envoyé tout ce qu'ils doivent ; la couverture de la province est "
            f"de {100 * coverage.rate:.1f} %. Le détail par établissement : « massar coverage "
            f"--campaign {campaign.id} --school CODE » et la page reports/province/coverage.html."
        ),
        text_ar=(
            f"تنتهي الحملة {campaign.id} بتاريخ {campaign.deadline.isoformat()}؛ "
            f"{len(owing)} مؤسسة لم ترسل بعد كل ما عليها."
        ),
        facts=facts,
    )


def _late(settings: Settings, coverage: CampaignCoverage, day: date) -> Alert:
    campaign = coverage.campaign
    late = coverage.late()
    facts: dict[str, Any] = {
        "campagne": campaign.id,
        "échéance": campaign.deadline.isoformat(),
        "jours de retard": -coverage.days_left,
        "couverture": f"{100 * coverage.rate:.1f} %",
    }
    facts.update({s.school_code: f"{s.missing} manquant(s) : {_items(s)}" for s in late})
    return Alert(
        key=_key(campaign.id, day, coverage.days_left),
        kind="coverage_late",
        subject=_subject(
            settings,
            f"Campagne {campaign.id} : {len(late)} établissement(s) en retard depuis le "
            f"{campaign.deadline.isoformat()}",
        ),
        text_fr=(
            f"L'échéance de la campagne « {campaign.label()} » était le "
            f"{campaign.deadline.isoformat()}. {len(late)} établissement(s) n'ont pas envoyé "
            "tout ce qu'ils doivent ; ci-dessous, pour chacun, les fichiers manquants (jeu de "
            "données, classe, matière, semestre) ou rejetés. Relancez-les ; leur rapport "
            "(reports/<établissement>/) leur liste ce qu'ils doivent encore."
        ),
        text_ar=(
            f"انتهى أجل الحملة {campaign.id} بتاريخ {campaign.deadline.isoformat()}؛ "
            f"{len(late)} مؤسسة متأخرة."
        ),
        facts=facts,
    )


def _key(campaign_id: str, day: date, days_left: int) -> str:
    kind = "reminder" if days_left >= 0 else "late"
    return f"coverage-{kind}:{campaign_id}:{day.isoformat()}"


def coverage_alerts(settings: Settings, now: datetime) -> list[Alert]:
    """The campaigns' reminder and late alerts due at ``now`` (one per campaign and day)."""
    config = settings.alerts
    day = local_today(settings, now)
    try:
        declared = campaigns(settings)
    except CampaignError as error:
        return [
            Alert(
                key=f"coverage-campaigns-invalid:{day.isoformat()}",
                kind="coverage_campaigns_invalid",
                subject=_subject(settings, "Le fichier des campagnes de collecte est invalide"),
                text_fr=f"{error} Aucun rappel de campagne n'est envoyé tant qu'il l'est.",
                text_ar="ملف حملات جمع المعطيات غير صالح.",
                facts={"date": day.isoformat()},
            )
        ]
    watched = [
        c
        for c in declared
        if c.opens <= day and -config.coverage_late_days <= c.days_left(day)
        and c.days_left(day) <= config.coverage_reminder_days
    ]  # fmt: skip
    database = ControlDatabase(settings.resolved_database_url)
    try:  # today's e-mail sent already: no need to compute the coverage every 15 minutes
        sent = already_sent(database, [_key(c.id, day, c.days_left(day)) for c in watched])
    finally:
        database.dispose()
    alerts = []
    for campaign in watched:
        if _key(campaign.id, day, campaign.days_left(day)) in sent:
            continue
        (coverage,) = compute_coverage(settings, campaign.id, now=now)
        if coverage.days_left >= 0 and coverage.incomplete():
            alerts.append(_reminder(settings, coverage, day))
        elif coverage.days_left < 0 and coverage.late():
            alerts.append(_late(settings, coverage, day))
    return alerts

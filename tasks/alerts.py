"""Alerts: the platform's own checks, and the e-mails that tell the officers.

Four checks, each a plain function over the control database or Prefect's API:

* a flow run failed or crashed (Prefect's API: the top-level runs that ended FAILED or CRASHED
  in the last ``failed_runs_lookback_hours``);
* the nightly run has not published a night by ``nightly_deadline`` (the control database's
  ``nights``: no completed night since ``nightly_start`` today, local time);
* a batch has waited for an approval more than ``approval_wait_hours``;
* a partner's acknowledgement is late
  (:func:`warehouse.acknowledgement_records.overdue_batches`, with each partner's
  ``acknowledgement_delay_hours``);
* a collection campaign's deadline is near or past with schools still missing items
  (tasks/coverage_alerts.py: one summary a day);
* a fund's request or acknowledgement was set aside (tasks/fund_files_set_aside.py: one per
  file, key ``fund-file-set-aside:<partner>:<name>:<note digest>``).

Every alert has a stable key (``run-failed:<flow run id>``, ``nightly-late:<date>``,
``approval-waiting:<batch>``, ``acknowledgement-late:<batch>``); an alert is recorded in the
``sent_alerts`` table once e-mailed, and :func:`due_alerts` never returns a recorded key, so
nothing is sent twice and an alert that could not be sent is sent at the next check.

An alert carries run names, flow names, batch ids, partners, counts and times only: never a
pupil's name, code or birth date, and never a state message or exception text, which may quote
a file's cells. Decision record: ``docs/decisions/0005-alerts.md``.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import select

from ground.errors import OperatorError
from ground.settings import Settings
from ground.utc import as_utc
from warehouse.acknowledgement_records import overdue_batches
from warehouse.control import ControlDatabase, ExchangeBatch, Night, SentAlert

WATCH_FLOW = "watch"  # flows/alerts.py; its own failures are told once a day, not per run


class AlertDeliveryError(OperatorError):
    """Some alerts could not be e-mailed; they stay due and are sent at the next check."""


@dataclass(frozen=True)
class Alert:
    """One thing an officer must know, in French with an Arabic line; ``facts`` are what the
    message shows and what the ``sent_alerts`` row keeps (no pupil data)."""

    key: str
    kind: str  # run_failed | nightly_late | approval_waiting | acknowledgement_late | ...
    subject: str
    text_fr: str
    text_ar: str
    facts: dict[str, Any] = field(default_factory=dict)


# ---- the checks ---------------------------------------------------------------------------------


def _local(settings: Settings, moment: datetime) -> str:
    return as_utc(moment).astimezone(settings.zone).strftime("%Y-%m-%d %H:%M")


def _clock(text: str) -> time:
    hours, _, minutes = text.partition(":")
    return time(int(hours), int(minutes))


def _subject(settings: Settings, text: str) -> str:
    return f"[Massar {settings.province}] {text}"


def _run_link(settings: Settings, flow_run_id: str) -> str:
    """The run's page in Prefect's UI, when there is a server (not in the embedded mode)."""
    if settings.embedded:
        return ""
    base = settings.prefect_api_url.rstrip("/").removesuffix("/api")
    return f"{base}/runs/flow-run/{flow_run_id}"


def failed_run_alerts(settings: Settings, now: datetime) -> list[Alert]:
    """Top-level flow runs that ended FAILED or CRASHED between ``now`` minus the look-back
    and ``now``, read from Prefect's API (the server, or the embedded API of the home). A
    failed sub-flow fails its parent, which is the one told. If the API cannot be read, one
    alert a day says so."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterId,
        FlowRunFilter,
        FlowRunFilterEndTime,
        FlowRunFilterParentTaskRunId,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    now = as_utc(now)
    since = now - timedelta(hours=settings.alerts.failed_runs_lookback_hours)
    try:
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(
                        type=FlowRunFilterStateType(any_=[StateType.FAILED, StateType.CRASHED])
                    ),
                    # Prefect's filter takes a datetime at run time; its stubs name its own type.
                    end_time=FlowRunFilterEndTime(after_=since, before_=now),  # type: ignore[arg-type]
                    parent_task_run_id=FlowRunFilterParentTaskRunId(is_null_=True),
                ),
                sort=FlowRunSort.END_TIME_DESC,
                limit=200,
            )
            flow_ids = sorted({run.flow_id for run in runs}, key=str)
            flows = (
                client.read_flows(flow_filter=FlowFilter(id=FlowFilterId(any_=flow_ids)))
                if flow_ids
                else []
            )
    except Exception as error:  # an unreachable or refusing API: say so, once a day
        return [_prefect_unreachable(settings, now, error)]
    flow_names = {flow.id: flow.name for flow in flows}
    alerts = []
    for run in sorted(runs, key=lambda r: (r.end_time or now, str(r.id))):
        flow_name = flow_names.get(run.flow_id, "?")
        state = run.state.name if run.state else "Failed"
        ended = as_utc(run.end_time or now)
        key = f"run-failed:{run.id}"
        if flow_name == WATCH_FLOW:  # the alerts' own runs: one e-mail a day at most
            key = f"run-failed:{WATCH_FLOW}:{ended.astimezone(settings.zone):%Y-%m-%d}"
        facts = {
            "flux": flow_name,
            "exécution": run.name,
            "état": state,
            "fin": _local(settings, ended),
            "identifiant": str(run.id),
        }
        if link := _run_link(settings, str(run.id)):
            facts["lien"] = link
        alerts.append(
            Alert(
                key=key,
                kind="run_failed",
                subject=_subject(settings, f"Échec de l'exécution {flow_name} / {run.name}"),
                text_fr=(
                    f"L'exécution « {run.name} » du flux {flow_name} s'est terminée à l'état "
                    f"{state} le {facts['fin']}. Ouvrez son journal dans l'interface de Prefect "
                    "pour en connaître la cause, corrigez-la puis relancez le flux."
                ),
                text_ar=(
                    f"فشل تنفيذ {flow_name} ({run.name}) بتاريخ {facts['fin']}؛ "
                    "المرجو مراجعة سجل التنفيذ في واجهة Prefect."
                ),
                facts=facts,
            )
        )
    return alerts


def _prefect_unreachable(settings: Settings, now: datetime, error: Exception) -> Alert:
    where = settings.prefect_api_url or "API embarquée"
    day = f"{now.astimezone(settings.zone):%Y-%m-%d}"
    return Alert(
        key=f"prefect-unreachable:{day}",
        kind="prefect_unreachable",
        subject=_subject(settings, "L'API de Prefect ne répond pas"),
        text_fr=(
            f"La vérification des exécutions échouées n'a pas pu lire l'API de Prefect ({where}) "
            f"le {_local(settings, now)} ({type(error).__name__}). Vérifiez que le serveur "
            "Prefect et son worker fonctionnent."
        ),
        text_ar="تعذر الاتصال بواجهة Prefect للتحقق من عمليات التنفيذ الفاشلة.",
        facts={"api": where, "erreur": type(error).__name__, "date": day},
    )


def nightly_late_alerts(
    settings: Settings, database: ControlDatabase, now: datetime
) -> list[Alert]:
    """One alert when, at or after ``nightly_deadline`` local time, no night was published
    (completed) since ``nightly_start`` of the same day; none when the deadline is empty."""
    deadline_text, start_text = settings.alerts.nightly_deadline, settings.alerts.nightly_start
    if not deadline_text:
        return []
    local_now = as_utc(now).astimezone(settings.zone)
    deadline = datetime.combine(local_now.date(), _clock(deadline_text), settings.zone)
    if local_now < deadline:
        return []
    start = datetime.combine(local_now.date(), _clock(start_text), settings.zone)
    with database.session() as session:
        published = session.scalars(
            select(Night.night_id)
            .where(Night.state == "completed", Night.finished_at >= start.astimezone(UTC))
            .limit(1)
        ).first()
        if published is not None:
            return []
        last = session.scalars(
            select(Night).where(Night.state == "completed").order_by(Night.night_id.desc())
        ).first()
        running = session.scalars(
            select(Night.night_id).where(
                Night.state == "running", Night.started_at >= start.astimezone(UTC)
            )
        ).all()
    day = f"{local_now:%Y-%m-%d}"
    facts: dict[str, Any] = {
        "date": day,
        "échéance": deadline_text,
        "nuits en cours depuis " + start_text: len(running),
        "dernière nuit publiée": (
            f"n° {last.night_id}, terminée le {_local(settings, last.finished_at)}"
            if last is not None and last.finished_at is not None
            else "aucune"
        ),
    }
    still = "une nuit est encore en cours" if running else "aucune nuit n'est en cours"
    return [
        Alert(
            key=f"nightly-late:{day}",
            kind="nightly_late",
            subject=_subject(settings, f"Traitement de nuit non terminé à {deadline_text} ({day})"),
            text_fr=(
                f"Aucune nuit n'a été publiée depuis {start_text} aujourd'hui ({day}) et il est "
                f"{local_now:%H:%M} ; {still}. Les lecteurs de l'entrepôt voient toujours la "
                "dernière nuit publiée. Vérifiez l'exécution nightly dans Prefect, ou lancez "
                "« massar nightly »."
            ),
            text_ar=(
                f"لم تنته المعالجة الليلية قبل الساعة {deadline_text} بتاريخ {day}؛ "
                "المرجو التحقق من تنفيذ nightly."
            ),
            facts=facts,
        )
    ]


def approval_waiting_alerts(
    settings: Settings, database: ControlDatabase, now: datetime
) -> list[Alert]:
    """One alert per batch still waiting for approval ``approval_wait_hours`` after it was
    prepared."""
    now = as_utc(now)
    limit = now - timedelta(hours=settings.alerts.approval_wait_hours)
    with database.session() as session:
        batches = session.scalars(
            select(ExchangeBatch)
            .where(ExchangeBatch.state == "waiting_approval", ExchangeBatch.prepared_at <= limit)
            .order_by(ExchangeBatch.prepared_at, ExchangeBatch.batch_id)
        ).all()
    alerts = []
    for batch in batches:
        prepared = as_utc(batch.prepared_at)
        hours = int((now - prepared).total_seconds() // 3600)
        expires = _local(settings, prepared + timedelta(hours=settings.approval_timeout_hours))
        partner = batch.partner.upper()
        alerts.append(
            Alert(
                key=f"approval-waiting:{batch.batch_id}",
                kind="approval_waiting",
                subject=_subject(
                    settings, f"Lot {batch.batch_id} en attente d'approbation depuis {hours} h"
                ),
                text_fr=(
                    f"Le lot {batch.batch_id} ({partner}, {batch.children} enfants) attend une "
                    f"décision depuis le {_local(settings, prepared)}, soit {hours} h. Sans "
                    f"décision il expire le {expires} et ne sera pas livré. Un approbateur "
                    "décide dans le formulaire de l'exécution dans Prefect, ou avec "
                    f"« massar approve {batch.batch_id} --by NOM »."
                ),
                text_ar=(
                    f"الدفعة {batch.batch_id} ({partner}) في انتظار المصادقة منذ {hours} ساعة."
                ),
                facts={
                    "lot": batch.batch_id,
                    "partenaire": partner,
                    "enfants": batch.children,
                    "préparé le": _local(settings, prepared),
                    "attente (h)": hours,
                    "expire le": expires,
                },
            )
        )
    return alerts


def acknowledgement_late_alerts(
    settings: Settings, database: ControlDatabase, now: datetime
) -> list[Alert]:
    """One alert per delivered batch of an enabled partner whose acknowledgement is late."""
    delays = {
        name: partner.acknowledgement_delay_hours
        for name, partner in settings.partners.items()
        if partner.enabled
    }
    alerts = []
    for batch in overdue_batches(database, now, delays):
        partner = batch.partner.upper()
        delay = delays[batch.partner]
        waited = int(batch.waiting_hours)
        delivered = _local(settings, batch.delivered_at)
        alerts.append(
            Alert(
                key=f"acknowledgement-late:{batch.batch_id}",
                kind="acknowledgement_late",
                subject=_subject(
                    settings, f"Accusé de réception {partner} en retard : lot {batch.batch_id}"
                ),
                text_fr=(
                    f"Le lot {batch.batch_id} a été livré à la {partner} le {delivered} et "
                    f"aucun accusé de réception lié à ses fichiers n'est arrivé après {waited} h "
                    f"(délai convenu : {delay:g} h). Contactez la {partner} ; l'exécution "
                    "d'échange suivante relève les accusés déposés."
                ),
                text_ar=(
                    f"لم يصل إشعار الاستلام من {partner} للدفعة {batch.batch_id} بعد {waited} ساعة."
                ),
                facts={
                    "lot": batch.batch_id,
                    "partenaire": partner,
                    "livré le": delivered,
                    "attente (h)": waited,
                    "délai (h)": f"{delay:g}",
                },
            )
        )
    return alerts


def already_sent(database: ControlDatabase, keys: list[str]) -> set[str]:
    """The keys among ``keys`` recorded as sent."""
    if not keys:
        return set()
    with database.session() as session:
        return set(
            session.scalars(select(SentAlert.alert_key).where(SentAlert.alert_key.in_(keys)))
        )


def _coverage_alerts(settings: Settings, now: datetime) -> list[Alert]:
    from tasks.coverage_alerts import coverage_alerts  # it builds on this module's Alert

    return coverage_alerts(settings, now)


def _set_aside_alerts(settings: Settings) -> list[Alert]:
    from tasks.fund_files_set_aside import set_aside_alerts  # it builds on this module's Alert

    return set_aside_alerts(settings)


def due_alerts(settings: Settings, now: datetime | None = None) -> list[Alert]:
    """Every alert of the four checks at ``now`` (default: this instant) not sent yet, failed
    runs first, then the night, approvals and acknowledgements."""
    now = as_utc(now or datetime.now(UTC))
    alerts = failed_run_alerts(settings, now)
    database = ControlDatabase(settings.resolved_database_url)
    try:
        alerts += nightly_late_alerts(settings, database, now)
        alerts += approval_waiting_alerts(settings, database, now)
        alerts += acknowledgement_late_alerts(settings, database, now)
        alerts += _coverage_alerts(settings, now)  # collection campaigns (tasks/coverage_alerts)
        alerts += _set_aside_alerts(settings)  # fund files set aside (tasks/fund_files_set_aside)
        sent = already_sent(database, [alert.key for alert in alerts])
    finally:
        database.dispose()
    unique: dict[str, Alert] = {}
    for alert in alerts:
        if alert.key not in sent:
            unique.setdefault(alert.key, alert)
    return list(unique.values())


# ---- e-mail -------------------------------------------------------------------------------------


def alert_message(settings: Settings, alert: Alert) -> EmailMessage:
    """The e-mail of one alert: French text, Arabic line, the facts, the key."""
    lines = [alert.text_fr, "", alert.text_ar, ""]
    lines += [f"- {name} : {value}" for name, value in alert.facts.items()]
    lines += [
        "",
        f"-- Plateforme Massar, direction provinciale de {settings.province}. Message "
        f"automatique, envoyé une seule fois (clé {alert.key}).",
    ]
    # Unfolded headers (RFC 5322 allows 998 characters): Python folds a long subject right
    # after "Subject:", which readers then show with a leading space.
    message = EmailMessage(policy=SMTP.clone(max_line_length=998))
    message["Subject"] = alert.subject
    message["From"] = settings.alerts.sender
    message["To"] = ", ".join(settings.alerts.recipients)
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain=settings.alerts.sender.rpartition("@")[2] or None)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies
    message["X-Massar-Alert"] = alert.key
    message.set_content("\n".join(lines), charset="utf-8", cte="quoted-printable")
    return message


def _smtp_password(settings: Settings) -> str:
    path = settings.alerts.smtp_password_file
    if path is None:
        return ""
    try:
        return path.read_text(encoding="utf-8").splitlines()[0].strip()
    except (OSError, IndexError) as error:
        raise AlertDeliveryError(
            f"The SMTP password file {path} cannot be read or is empty; fix "
            "alerts.smtp_password_file in the settings. The alerts will be sent at the next check."
        ) from error


def _record_sent(database: ControlDatabase, settings: Settings, alert: Alert) -> None:
    with database.session() as session:
        if session.get(SentAlert, alert.key) is None:
            session.add(
                SentAlert(
                    alert_key=alert.key,
                    kind=alert.kind,
                    subject=alert.subject[:300],
                    recipients=", ".join(settings.alerts.recipients),
                    facts={name: str(value) for name, value in alert.facts.items()},
                )
            )


def send_alerts(settings: Settings, alerts: list[Alert]) -> list[str]:
    """E-mail each alert to ``alerts.recipients`` over ``alerts.smtp_host`` (STARTTLS and login
    when configured) and record it as sent, one by one; returns the keys sent. Nothing is sent
    without an SMTP host. Raises :class:`AlertDeliveryError` (a sentence) when the server cannot
    be reached or refuses a message: what was sent before stays recorded, the rest stays due."""
    config = settings.alerts
    if not alerts or not config.smtp_host:
        return []
    password = _smtp_password(settings)
    database = ControlDatabase(settings.resolved_database_url)
    sent: list[str] = []
    try:
        with smtplib.SMTP(
            config.smtp_host, config.smtp_port, timeout=config.smtp_timeout_seconds
        ) as smtp:
            if config.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if config.smtp_username:
                smtp.login(config.smtp_username, password)
            for alert in alerts:
                smtp.send_message(alert_message(settings, alert))
                _record_sent(database, settings, alert)
                sent.append(alert.key)
    except (smtplib.SMTPException, OSError) as error:
        raise AlertDeliveryError(
            f"The SMTP server {config.smtp_host}:{config.smtp_port} could not take the alerts "
            f"({type(error).__name__}: {error}); {len(alerts) - len(sent)} of {len(alerts)} "
            "were not sent and will be sent at the next check. Check the [alerts] settings and "
            "the mail server."
        ) from error
    finally:
        database.dispose()
    return sent


due_alerts_task = task(name="due_alerts", cache_policy=NO_CACHE)(due_alerts)
send_alerts_task = task(name="send_alerts", cache_policy=NO_CACHE, retries=0)(send_alerts)

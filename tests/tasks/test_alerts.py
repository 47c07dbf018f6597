"""Alerts against a real SMTP server on 127.0.0.1 (aiosmtpd): a failed run, a night not published
by 06:00, an approval waiting 25 h and a late acknowledgement are each e-mailed once, nothing is
sent when all is well, and no pupil data reaches a message."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword
from pydantic import ValidationError
from sqlalchemy import select

from ground.settings import AlertSettings, Settings
from massar.stack import free_port
from tasks.alerts import AlertDeliveryError, due_alerts, send_alerts
from tests.harness.smtp import OFFICER, Mailbox, loopback_alerts, smtp_server
from warehouse.control import ControlDatabase, Delivery, ExchangeBatch, Night, SentAlert

ZONE = ZoneInfo("Africa/Casablanca")
# A pupil as the generator would write one: none of this may reach an e-mail.
PUPIL_CODE, PUPIL_NAME, PUPIL_BIRTH = "K100000123", "AMRANI Fatima", "2012-03-04"
MASSAR_CODE = re.compile(r"\b[A-Z]\d{9}\b")


class _Logins:
    def __call__(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login,
            auth_data.password,
        ) == (b"massar", b"s3cret")
        return AuthResult(success=ok, handled=False)  # False: the server answers 535


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    """The shared SMTP server, with logins (massar / s3cret) over plain text on loopback."""
    with smtp_server(authenticator=_Logins(), auth_require_tls=False) as server:
        yield server


@pytest.fixture
def settings(massar_home: Settings, smtp, prefect_server) -> Settings:
    _, port = smtp
    return massar_home.model_copy(
        update={"alerts": loopback_alerts(port, [OFFICER, "chef.service@dp-tiznit.men.gov.ma"])}
    )


def _database(settings: Settings) -> ControlDatabase:
    return ControlDatabase(settings.resolved_database_url)


def _local(*args: int) -> datetime:
    return datetime(*args, tzinfo=ZONE).astimezone(UTC)


def _night(settings: Settings, started: datetime, finished: datetime | None) -> None:
    database = _database(settings)
    with database.session() as session:
        session.add(
            Night(
                started_at=started,
                finished_at=finished,
                state="completed" if finished else "running",
            )
        )
    database.dispose()


def _batch(
    settings: Settings,
    batch_id: str,
    prepared: datetime,
    state: str = "waiting_approval",
    partner: str = "cnss",
    delivered: datetime | None = None,
) -> None:
    database = _database(settings)
    with database.session() as session:
        session.add(
            ExchangeBatch(
                batch_id=batch_id,
                partner=partner,
                sequence=int(batch_id.rsplit("-", 1)[1]),
                state=state,
                prepared_at=prepared,
                children=40,
                # Where a careless alert could pick up a pupil: the fund's file name and counts.
                request_file=f"DEMANDE_{PUPIL_CODE}_{PUPIL_NAME}_{PUPIL_BIRTH}.xml",
                counts={"SCHOOLED": 38, "REVIEW": 2, "note": f"{PUPIL_NAME} {PUPIL_CODE}"},
            )
        )
        if delivered is not None:
            session.flush()
            session.add(
                Delivery(
                    batch_id=batch_id,
                    partner=partner,
                    file_name=f"{batch_id}.xml",
                    sha256="0" * 64,
                    state="delivered",
                    delivered_at=delivered,
                )
            )
    database.dispose()


def _fixed(alerts):  # the checks of the control database (fixed moments, long before any run)
    return {a.key: a for a in alerts if not a.key.startswith(("run-failed:", "prefect-"))}


# ---- a failed run ----------------------------------------------------------------------------


def _failing_province_run() -> tuple[str, str]:
    """A parent flow whose sub-flow fails quoting a pupil; returns (parent id, child id)."""
    from prefect import flow

    @flow(name="alerts_test_child")
    def child() -> None:
        raise ValueError(f"Élève {PUPIL_CODE} {PUPIL_NAME} né le {PUPIL_BIRTH}: note invalide")

    @flow(name="alerts_test_parent")
    def parent() -> str:
        state = child(return_state=True)
        raise RuntimeError(f"child {state.state_details.flow_run_id} failed: {state.message}")

    state = parent(return_state=True)
    assert state.is_failed()
    child_id = re.search(r"child ([0-9a-f-]{36})", str(state.result(raise_on_failure=False)))
    assert child_id is not None
    return str(state.state_details.flow_run_id), child_id.group(1)


def test_a_failed_run_is_emailed_once(settings, smtp):
    mailbox, _ = smtp
    parent_id, child_id = _failing_province_run()

    due = due_alerts(settings)
    keys = [a.key for a in due]
    assert f"run-failed:{parent_id}" in keys
    assert f"run-failed:{child_id}" not in keys  # the failed sub-flow is told by its parent
    sent = send_alerts(settings, due)
    assert sent == keys
    ours = [m for m in mailbox.messages if m["X-Massar-Alert"] == f"run-failed:{parent_id}"]
    assert len(ours) == 1
    message = ours[0]
    assert message["Subject"].startswith("[Massar Tiznit] Échec de l'exécution alerts_test_parent")
    assert message["To"] == "officier@dp-tiznit.men.gov.ma, chef.service@dp-tiznit.men.gov.ma"
    body = message.get_body(("plain",)).get_content()
    assert "s'est terminée à l'état Failed" in body and "فشل تنفيذ alerts_test_parent" in body
    assert parent_id in body

    # The next check finds it recorded: no second e-mail, nothing else either.
    received = len(mailbox.messages)
    again = due_alerts(settings)
    assert f"run-failed:{parent_id}" not in [a.key for a in again]
    assert send_alerts(settings, again) == [a.key for a in again]
    assert len(mailbox.messages) == received + len(again)
    assert not [m for m in mailbox.messages[received:] if parent_id in m["X-Massar-Alert"]]


# ---- the night ----------------------------------------------------------------------------------


def test_a_night_not_published_by_six_is_emailed_once(settings, smtp):
    mailbox, _ = smtp
    _night(settings, _local(2024, 2, 4, 2, 0), _local(2024, 2, 4, 3, 10))  # yesterday's night
    _night(settings, _local(2024, 2, 5, 2, 0), None)  # tonight's, still running

    assert _fixed(due_alerts(settings, _local(2024, 2, 5, 5, 59))) == {}
    due = _fixed(due_alerts(settings, _local(2024, 2, 5, 6, 30)))
    assert list(due) == ["nightly-late:2024-02-05"]
    assert send_alerts(settings, list(due.values())) == ["nightly-late:2024-02-05"]
    (message,) = mailbox.messages
    assert "Traitement de nuit non terminé à 06:00 (2024-02-05)" in message["Subject"]
    body = message.get_body(("plain",)).get_content()
    assert (
        "Aucune nuit n'a été publiée depuis 02:00" in body
        and "une nuit est encore en cours" in body
    )
    assert "n° 1, terminée le 2024-02-04 03:10" in body
    assert "لم تنته المعالجة الليلية قبل الساعة 06:00" in body

    assert _fixed(due_alerts(settings, _local(2024, 2, 5, 9, 0))) == {}  # sent: not again
    # The next morning is another day; a night published after 02:00 means all is well.
    assert list(_fixed(due_alerts(settings, _local(2024, 2, 6, 6, 5)))) == [
        "nightly-late:2024-02-06"
    ]
    _night(settings, _local(2024, 2, 6, 2, 0), _local(2024, 2, 6, 4, 45))
    assert _fixed(due_alerts(settings, _local(2024, 2, 6, 6, 5))) == {}


def test_the_nightly_check_can_be_switched_off(settings):
    off = settings.model_copy(
        update={"alerts": settings.alerts.model_copy(update={"nightly_deadline": ""})}
    )
    assert _fixed(due_alerts(off, _local(2024, 2, 5, 7, 0))) == {}


# ---- approvals and acknowledgements -------------------------------------------------------------


def test_an_approval_waiting_25_hours_is_emailed_once(settings, smtp):
    mailbox, _ = smtp
    now = _local(2024, 2, 5, 10, 0)
    _night(settings, _local(2024, 2, 5, 2, 0), _local(2024, 2, 5, 3, 0))
    _batch(settings, "CNSS-2023-000001", now - timedelta(hours=25))
    _batch(settings, "CNSS-2023-000002", now - timedelta(hours=23))
    _batch(settings, "CMR-2023-000003", now - timedelta(hours=30), state="approved", partner="cmr")

    due = _fixed(due_alerts(settings, now))
    assert list(due) == ["approval-waiting:CNSS-2023-000001"]
    send_alerts(settings, list(due.values()))
    (message,) = mailbox.messages
    assert message["Subject"] == (
        "[Massar Tiznit] Lot CNSS-2023-000001 en attente d'approbation depuis 25 h"
    )
    body = message.get_body(("plain",)).get_content()
    assert "(CNSS, 40 enfants) attend une décision depuis le 2024-02-04 09:00" in body
    assert "massar approve CNSS-2023-000001 --by NOM" in body
    assert "في انتظار المصادقة منذ 25 ساعة" in body
    assert _fixed(due_alerts(settings, now + timedelta(minutes=30))) == {}


def test_a_late_acknowledgement_is_emailed_once(settings, smtp):
    mailbox, _ = smtp
    now = _local(2024, 2, 5, 10, 0)
    _night(settings, _local(2024, 2, 5, 2, 0), _local(2024, 2, 5, 3, 0))
    _batch(
        settings,
        "CNSS-2023-000001",
        now - timedelta(hours=60),
        state="delivered",
        delivered=now - timedelta(hours=49),
    )
    _batch(
        settings,
        "CMR-2023-000002",
        now - timedelta(hours=60),
        state="delivered",
        partner="cmr",
        delivered=now - timedelta(hours=47),
    )

    due = _fixed(due_alerts(settings, now))
    assert list(due) == ["acknowledgement-late:CNSS-2023-000001"]
    send_alerts(settings, list(due.values()))
    (message,) = mailbox.messages
    assert "Accusé de réception CNSS en retard : lot CNSS-2023-000001" in message["Subject"]
    body = message.get_body(("plain",)).get_content()
    assert "après 49 h (délai convenu : 48 h)" in body
    assert "لم يصل إشعار الاستلام من CNSS" in body
    later = _fixed(due_alerts(settings, now + timedelta(hours=2)))  # CMR's 48 h are up too
    assert list(later) == ["acknowledgement-late:CMR-2023-000002"]


def test_no_alert_when_all_is_well(settings, smtp):
    mailbox, _ = smtp
    now = _local(2024, 2, 5, 10, 0)  # long before any run of the test server
    _night(settings, _local(2024, 2, 5, 2, 0), _local(2024, 2, 5, 3, 20))
    _batch(settings, "CNSS-2023-000001", now - timedelta(hours=2))
    _batch(
        settings,
        "CMR-2023-000002",
        now - timedelta(hours=30),
        state="delivered",
        partner="cmr",
        delivered=now - timedelta(hours=10),
    )

    assert due_alerts(settings, now) == []
    assert send_alerts(settings, []) == []
    assert mailbox.messages == []


# ---- what a message may say ----------------------------------------------------------------------


def test_no_pupil_data_in_any_message(settings, smtp):
    mailbox, _ = smtp
    _failing_province_run()
    now = datetime.now(UTC)
    _batch(settings, "CNSS-2023-000001", now - timedelta(hours=26))
    _batch(
        settings,
        "CMR-2023-000002",
        now - timedelta(hours=80),
        state="delivered",
        partner="cmr",
        delivered=now - timedelta(hours=50),
    )
    due = due_alerts(settings, now)
    kinds = {a.kind for a in due}
    assert {"run_failed", "approval_waiting", "acknowledgement_late"} <= kinds
    send_alerts(settings, due)
    assert len(mailbox.messages) == len(due)
    for message, body in zip(mailbox.messages, mailbox.bodies(), strict=True):
        text = message["Subject"] + "\n" + body
        for secret in (PUPIL_CODE, PUPIL_NAME, "AMRANI", "Fatima", PUPIL_BIRTH):
            assert secret not in text
        assert not MASSAR_CODE.search(text), text
        assert re.search(r"[\u0600-\u06FF]", body), "an Arabic line"
    database = _database(settings)
    with database.session() as session:
        recorded = session.scalars(select(SentAlert)).all()
    database.dispose()
    assert {row.alert_key for row in recorded} == {a.key for a in due}
    assert not any(PUPIL_CODE in str(row.facts) for row in recorded)


# ---- the mail server --------------------------------------------------------------------------


def test_alerts_the_server_refuses_stay_due(settings, smtp, tmp_path):
    mailbox, _ = smtp
    now = _local(2024, 2, 5, 10, 0)
    _night(settings, _local(2024, 2, 5, 2, 0), _local(2024, 2, 5, 3, 0))
    _batch(settings, "CNSS-2023-000001", now - timedelta(hours=25))
    due = due_alerts(settings, now)
    assert [a.key for a in due] == ["approval-waiting:CNSS-2023-000001"]

    closed = settings.model_copy(
        update={"alerts": settings.alerts.model_copy(update={"smtp_port": free_port()})}
    )
    with pytest.raises(AlertDeliveryError, match="will be sent at the next check"):
        send_alerts(closed, due)
    wrong = tmp_path / "wrong-password"
    wrong.write_text("nope\n")
    login = settings.alerts.model_copy(
        update={"smtp_username": "massar", "smtp_password_file": wrong}
    )
    with pytest.raises(AlertDeliveryError, match="1 of 1 were not sent"):
        send_alerts(settings.model_copy(update={"alerts": login}), due)
    assert [a.key for a in due_alerts(settings, now)] == ["approval-waiting:CNSS-2023-000001"]

    # With the right password (from a file outside the repository) it goes, once.
    secret = tmp_path / "smtp-password"
    secret.write_text("s3cret\n")
    login = login.model_copy(update={"smtp_password_file": secret})
    assert send_alerts(settings.model_copy(update={"alerts": login}), due) == [due[0].key]
    assert len(mailbox.messages) == 1 and due_alerts(settings, now) == []


def test_no_smtp_server_sends_nothing_and_keeps_alerts_due(massar_home, prefect_server):
    now = _local(2024, 2, 5, 7, 0)
    due = due_alerts(massar_home, now)
    assert [a.key for a in due] == ["nightly-late:2024-02-05"]
    assert send_alerts(massar_home, due) == []
    assert [a.key for a in due_alerts(massar_home, now)] == ["nightly-late:2024-02-05"]


def test_an_smtp_server_needs_a_sender_and_recipients():
    with pytest.raises(ValidationError, match="sender and at least one recipient"):
        AlertSettings(smtp_host="127.0.0.1")
    with pytest.raises(ValidationError, match="HH:MM"):
        AlertSettings(nightly_deadline="6h")

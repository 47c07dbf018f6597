"""The ``watch`` flow for real: alerts e-mailed once to an SMTP server on 127.0.0.1, a mail
server that is down fails the run and is told once a day, the embedded mode's command, and the
``alerts`` deployment of prefect.yaml."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flows.alerts import watch
from ground.settings import Settings
from massar.stack import free_port
from tasks.alerts import AlertDeliveryError, due_alerts
from tests.harness.smtp import OFFICER, SENDER, loopback_alerts
from warehouse.control import ControlDatabase, ExchangeBatch, Night

REPO = Path(__file__).resolve().parents[2]


def _with_smtp(settings: Settings, port: int) -> Settings:
    return settings.model_copy(update={"alerts": loopback_alerts(port)})


def _waiting_batch_and_a_night(settings: Settings) -> str:
    now = datetime.now(UTC)
    database = ControlDatabase(settings.resolved_database_url)
    with database.session() as session:
        session.add(Night(state="completed", started_at=now, finished_at=now))
        session.add(
            ExchangeBatch(
                batch_id="CNSS-2023-000001",
                partner="cnss",
                sequence=1,
                state="waiting_approval",
                prepared_at=now - timedelta(hours=25),
                children=12,
            )
        )
    database.dispose()
    return "approval-waiting:CNSS-2023-000001"


def test_watch_emails_each_alert_once(prefect_server, massar_home, smtp):
    mailbox, port = smtp
    settings = _with_smtp(massar_home, port)
    key = _waiting_batch_and_a_night(settings)

    first = watch(settings)
    assert key in first["due"] and first["sent"] == first["due"]
    assert [m["X-Massar-Alert"] for m in mailbox.messages].count(key) == 1
    second = watch(settings)
    assert second == {"due": [], "sent": []}
    assert [m["X-Massar-Alert"] for m in mailbox.messages].count(key) == 1


def test_a_mail_server_down_fails_the_run_and_is_told_once(prefect_server, massar_home, smtp):
    mailbox, port = smtp
    settings = _with_smtp(massar_home, port)
    key = _waiting_batch_and_a_night(settings)
    down = _with_smtp(massar_home, free_port())

    for _ in range(2):
        state = watch(down, return_state=True)
        assert state.is_failed()
        assert isinstance(state.result(raise_on_failure=False), AlertDeliveryError)

    due = [alert.key for alert in due_alerts(settings)]
    assert key in due
    day = f"{datetime.now(settings.zone):%Y-%m-%d}"
    assert due.count(f"run-failed:watch:{day}") == 1  # two failed watch runs, one alert
    watch(settings)
    told = [m["X-Massar-Alert"] for m in mailbox.messages]
    assert told.count(key) == 1 and told.count(f"run-failed:watch:{day}") == 1


def test_the_embedded_command_checks_once(prefect_server, massar_home, smtp):
    mailbox, port = smtp
    (massar_home.home / "massar.toml").write_text(
        f'[alerts]\nsmtp_host = "127.0.0.1"\nsmtp_port = {port}\nsender = "{SENDER}"\n'
        f'recipients = ["{OFFICER}"]\n',
        encoding="utf-8",
    )
    key = _waiting_batch_and_a_night(massar_home)
    # PREFECT_HOME unset: the command restarts itself with the home's Prefect environment.
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_HOME"}
    env["PREFECT_API_URL"] = prefect_server
    result = subprocess.run(
        [sys.executable, "-m", "flows.alerts", "--home", str(massar_home.home)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "e-mailed." in result.stdout
    assert [m["X-Massar-Alert"] for m in mailbox.messages].count(key) == 1


def test_the_alerts_deployment_runs_every_15_minutes():
    import yaml

    deployments = {
        d["name"]: d for d in yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
    }
    alerts = deployments["alerts"]
    assert alerts["entrypoint"] == "flows/alerts.py:watch"
    assert alerts["schedules"][0]["interval"] == 900
    assert alerts["work_pool"]["name"] == "massar" and alerts["concurrency_limit"] == 1

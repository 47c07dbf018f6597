"""Flow ``watch``: the platform's own checks, every 15 minutes, and an e-mail per new alert.

failed runs · night not published by 06:00 · approvals waiting · acknowledgements late ·
schools missing items near or after a campaign's deadline (once a day, docs/coverage.md)
→ e-mail what was not sent yet → record it as sent.

In production the ``watch/alerts`` deployment (prefect.yaml) runs it; in the embedded mode the
machine's scheduler runs ``python -m flows.alerts --home DIR`` every 15 minutes (see
docs/decisions/0005-alerts.md).
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime

from prefect import flow, get_run_logger

from flows.recorded import recorded
from ground.settings import Settings, flow_settings, load_settings, prefect_environment
from tasks.alerts import AlertDeliveryError, due_alerts_task, send_alerts_task


@flow(name="watch")
@recorded
def watch(
    settings: Settings | None = None, home: str | None = None, now: datetime | None = None
) -> dict:
    """Check, e-mail the new alerts, and return their keys (no pupil data). Fails when the
    mail server could not take them all: the rest is sent at the next check."""
    settings = flow_settings(settings, home)  # secrets: from the home, not Prefect
    logger = get_run_logger()
    alerts = due_alerts_task(settings, now or datetime.now(UTC))
    for alert in alerts:
        logger.warning("%s (%s)", alert.subject, alert.key)
    if alerts and not settings.alerts.smtp_host:
        logger.warning("No SMTP server in [alerts]: %d alert(s) not e-mailed.", len(alerts))
    sent = send_alerts_task(settings, alerts)
    return {"due": [alert.key for alert in alerts], "sent": sent}


def main(argv: list[str] | None = None) -> int:
    """``python -m flows.alerts [--home DIR]``: one check, for the embedded mode's scheduler
    (cron, a systemd timer). Prefect reads its home when imported, so the process restarts
    itself once with the installation's Prefect environment (its embedded API's database)."""
    parser = argparse.ArgumentParser(prog="python -m flows.alerts", description=main.__doc__)
    parser.add_argument("--home", default=None, help="the installation's home (MASSAR_HOME)")
    args = parser.parse_args(argv)
    settings = load_settings(args.home)
    # As apply_prefect_environment: variables already set win, except the settings' API URL.
    wanted = prefect_environment(settings)
    environment = {**wanted, **os.environ}
    if "PREFECT_API_URL" in wanted:
        environment["PREFECT_API_URL"] = wanted["PREFECT_API_URL"]
    if environment != dict(os.environ):  # once: the restarted process finds them all set
        command = [sys.executable, "-m", "flows.alerts", "--home", str(settings.home)]
        os.execve(sys.executable, command, environment)
    try:
        result = watch(settings.without_secrets())
    except AlertDeliveryError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"{len(result['due'])} alert(s) due, {len(result['sent'])} e-mailed.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Issue 15, attack 4: the command line passed the whole settings object to the flows, so
Prefect kept ``database_url`` with its password in every flow run's parameters, readable by
anyone holding the shared UI login.

A night, a CNSS exchange (request answered, batch built and signed, left to expire) and the
watch flow run through the real ``main`` (and the watch as a deployment runs it, with the home
only) on the session's Prefect test server, with the control database on PostgreSQL behind a
password, an SMTP password file, an auth string for Prefect's API and a signing key. Then every
flow run, task run, log line and artifact Prefect holds is read back through Prefect's client:
none carries the database password, the SMTP password, the auth string or the key's material.
(The full stack of tests/deployments/test_stack.py is not used here: it takes minutes to start;
the flows and parameters are the same.)"""

from __future__ import annotations

import contextlib
import secrets
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy

from connectors.signing import make_test_certificate
from massar.cli import main

REQUEST = "CNSS_SCOL_2023-2024_0001.csv"


def _database_with_password(postgres_url: str, password: str) -> str:
    """A database of its own on the session's PostgreSQL, and its URL with a password (the
    test server trusts loopback, so any password connects; it is what the URL carries)."""
    name = f"massar_secrets_{secrets.token_hex(4)}"
    engine = sqlalchemy.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text(f'create database "{name}"'))
    finally:
        engine.dispose()
    url = sqlalchemy.make_url(postgres_url).set(password=password, database=name)
    return url.render_as_string(hide_password=False)


def _configure(home: Path, smtp_port: int, smtp_password_file: Path) -> Path:
    """What an officer writes in massar.toml: the signing identity, a short approval wait
    (the batch expires: nobody approves it here), alerts over SMTP with a password file."""
    now = datetime.now(UTC)
    key, certificate = make_test_certificate(
        home / "keys", now - timedelta(days=1), now + timedelta(days=30), "DP Tiznit (test)"
    )
    lines = (home / "massar.toml").read_text(encoding="utf-8").splitlines(keepends=True)
    text = "".join(line for line in lines if not line.startswith("approval_timeout_hours"))
    text += (
        f'signing_key = "{key}"\nsigning_certificate = "{certificate}"\n'
        "approval_poll_seconds = 1\napproval_timeout_hours = 0.001\n\n"
        "[alerts]\n"
        f'smtp_host = "127.0.0.1"\nsmtp_port = {smtp_port}\nsmtp_username = "massar"\n'
        f'smtp_password_file = "{smtp_password_file}"\n'
        'sender = "massar@dp-tiznit.example"\nrecipients = ["officer@dp-tiznit.example"]\n'
    )
    (home / "massar.toml").write_text(text, encoding="utf-8")
    return key


def _key_material(key: Path) -> list[str]:
    """Pieces of the private key that must appear nowhere: its body lines and its marker."""
    lines = [line for line in key.read_text().splitlines() if line and "-----" not in line]
    return ["PRIVATE KEY", *(line for line in lines if len(line) >= 16)]


def _everything_prefect_holds() -> dict[str, list[str]]:
    """Every flow run, task run, log line and artifact on the server, as JSON texts."""
    from prefect.client.orchestration import get_client

    held: dict[str, list[str]] = {}
    with get_client(sync_client=True) as client:
        for kind, read in (
            ("flow runs", client.read_flow_runs),
            ("task runs", client.read_task_runs),
            ("logs", client.read_logs),
            ("artifacts", client.read_artifacts),
        ):
            texts: list[str] = []
            offset = 0
            while True:
                page = read(limit=200, offset=offset)  # type: ignore[operator]
                texts += [item.model_dump_json() for item in page]
                if len(page) < 200:
                    break
                offset += 200
            held[kind] = texts
    return held


def test_no_secret_reaches_prefect(
    tmp_path, province, prefect_server, postgres_url, smtp, monkeypatch, capsys
):
    from prefect.settings import PREFECT_API_AUTH_STRING, temporary_settings

    database_password = "dbpw-" + secrets.token_hex(12)
    smtp_password = "smtppw-" + secrets.token_hex(12)
    auth_string = "officer:" + secrets.token_urlsafe(18)
    url = _database_with_password(postgres_url, database_password)
    password_file = tmp_path / "smtp-password"
    password_file.write_text(smtp_password + "\n")
    home = tmp_path / "home"
    monkeypatch.setenv("PREFECT_API_URL", prefect_server)
    monkeypatch.setenv("MASSAR_DATABASE_URL", url)  # as the stack's massar.env sets it

    with temporary_settings(updates={PREFECT_API_AUTH_STRING: auth_string}):
        assert main(["init", "--home", str(home)]) == 0
        _, smtp_port = smtp
        key = _configure(home, smtp_port, password_file)
        # Two schools: every flow, task, log and artifact kind of a night, fewer of each.
        schools = sorted(p for p in province.iterdir() if p.is_dir() and p.name[:5].isdigit())
        for school in schools[:2]:
            shutil.copytree(school, home / "inbox" / school.name)
        code = main(["nightly", "--home", str(home)])
        assert code == 0, capsys.readouterr().err
        (home / "reference").mkdir(exist_ok=True)
        shutil.copy(province / "leavers.csv", home / "reference" / "leavers.csv")
        outbox = home / "exchange" / "cnss" / "outbox"
        outbox.mkdir(parents=True, exist_ok=True)
        shutil.copy(province / "partners" / "cnss" / REQUEST, outbox / REQUEST)
        main(["exchange", "run", "cnss", "--home", str(home)])  # the batch expires unapproved
        # The watch flow as its deployment runs it: the home only.
        monkeypatch.setenv("MASSAR_HOME", str(home))
        from flows.alerts import watch
        from tasks.alerts import AlertDeliveryError

        with contextlib.suppress(AlertDeliveryError):  # this SMTP server takes no login
            watch(home=str(home))
    capsys.readouterr()

    # The flows did run on PostgreSQL: they read the password inside, from the home's
    # environment, and recorded their runs there.
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            flows_run = connection.execute(sqlalchemy.text("select flow from runs")).all()
            batches = connection.execute(sqlalchemy.text("select count(*) from exchange_batches"))
            assert batches.scalar_one() == 1
    finally:
        engine.dispose()
    assert {"nightly", "ingest_submissions", "nightly_consolidation", "exchange", "watch"} <= {
        row[0] for row in flows_run
    }

    held = _everything_prefect_holds()
    ours = [text for text in held["flow runs"] if str(home) in text]
    assert len(ours) >= 5, "the flow runs of this home are not on the server"
    secrets_wanted = {
        "the database password": database_password,
        "the SMTP password": smtp_password,
        "Prefect's auth string": auth_string,
        **{f"the signing key's material ({piece[:12]}…)": piece for piece in _key_material(key)},
    }
    found = [
        f"{name} in {kind}"
        for kind, texts in held.items()
        for text in texts
        for name, secret in secrets_wanted.items()
        if secret in text
    ]
    assert found == []
    # What Prefect keeps of a settings parameter says there was a password, not what it is.
    stored = [t for t in ours if "postgresql" in t]
    assert stored and all("********@" in t for t in stored)

"""The production stack of deployments/stack, really started: PostgreSQL from the machine's
binaries on a loopback port, Prefect's server on PostgreSQL behind its auth string, the process
worker and the deployments of prefect.yaml. Through it, the nightly deployment and a CNSS
exchange (request fetched over SFTP, approved from the terminal, delivered, acknowledged) run
end to end, with the control database on PostgreSQL."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.exchange.acknowledgement import ChildOutcome, build_acknowledgement
from connectors.exchange.file_names import acknowledgement_file_name
from connectors.exchange.registry import profile_for
from connectors.signing import make_test_certificate
from ground.approvers import code_for, current_os_account
from massar.stack import read_env_file, systemd_units
from tests.harness.stack import REPO, STACK, Stack, clean_env

APPROVER = "Fatima Zahra Idrissi"
YEAR = "2023-2024"

pytestmark = pytest.mark.slow


def test_the_stack_is_up_on_postgresql_behind_its_auth_string(stack):
    assert stack.report["created_cluster"] is True
    # Prefect's API refuses a caller without the auth string, and serves one with it.
    assert stack.api("POST", "/flow_runs/filter", auth=False, json={}).status_code == 401
    assert stack.api("POST", "/flow_runs/filter", json={}).status_code == 200
    # Every deployment of prefect.yaml is applied, on the process pool, with a worker online.
    import yaml

    wanted = {
        f"{d['entrypoint'].split(':')[1]}/{d['name']}"
        for d in yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
    }
    applied = stack.api("POST", "/deployments/filter", json={}).json()
    flows = {f["id"]: f["name"] for f in stack.api("POST", "/flows/filter", json={}).json()}
    names = {f"{flows[d['flow_id']]}/{d['name']}" for d in applied}
    assert len(names) == len(wanted)
    assert {d["work_pool_name"] for d in applied} == {"massar"}
    workers = stack.api("POST", "/work_pools/massar/workers/filter").json()
    assert [w["status"] for w in workers] == ["ONLINE"]
    # Both databases live in the stack's PostgreSQL, not in SQLite files.
    server_env = read_env_file(stack.paths.server_env)
    assert server_env["PREFECT_API_DATABASE_CONNECTION_URL"].startswith("postgresql+asyncpg://")
    # Officers land on the classic UI, as in tests/ui (its Resume form, no analytics host).
    assert server_env["PREFECT_SERVER_UI_V2_ENABLED"] == "false"
    assert stack.env["MASSAR_DATABASE_URL"].startswith("postgresql+psycopg://massar:")
    import sqlalchemy

    engine = sqlalchemy.create_engine(stack.env["MASSAR_DATABASE_URL"])
    prefect_url = server_env["PREFECT_API_DATABASE_CONNECTION_URL"].replace("+asyncpg", "+psycopg")
    prefect_engine = sqlalchemy.create_engine(prefect_url)
    try:
        with engine.connect() as connection:
            tables = set(sqlalchemy.inspect(connection).get_table_names())
        assert {"submissions", "exchange_batches"} <= tables
        with prefect_engine.connect() as connection:
            assert "flow_run" in sqlalchemy.inspect(connection).get_table_names()
    finally:
        engine.dispose()
        prefect_engine.dispose()
    assert not list(stack.paths.home.glob("*.db"))
    # Secrets: generated outside the repository, readable by their owner only.
    assert stat.S_IMODE(stack.paths.secrets.stat().st_mode) == 0o700
    for secret in stack.paths.secrets.iterdir():
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600, secret
    # The services' logs are rotated by the housekeeping deployment.
    from ground.settings import Settings

    housekeeping = Settings.model_validate(
        {"housekeeping": {"log_folders": json.loads(stack.env["MASSAR_HOUSEKEEPING__LOG_FOLDERS"])}}
    ).housekeeping
    assert housekeeping.log_folders == [stack.paths.logs]
    assert {p.name for p in stack.paths.logs.glob("*.log")} == {
        "postgres.log",
        "prefect-server.log",
        "worker.log",
    }
    # Bringing it up again is safe: nothing is set up twice, what runs keeps running.
    again = subprocess.run(
        [str(STACK), "--root", str(stack.root), "up"],
        capture_output=True,
        text=True,
        timeout=300,
        env=clean_env(),
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout.strip().splitlines()[-1])["created_cluster"] is False
    status = subprocess.run(
        [str(STACK), "--root", str(stack.root), "status"],
        capture_output=True,
        text=True,
        env=clean_env(),
    )
    assert status.returncode == 0 and "worker: running" in status.stdout, status.stdout


def test_services_on_boot_are_systemd_units_reading_the_secret_files(stack, tmp_path):
    units = systemd_units(stack.root, user="massar")
    assert set(units) == {
        "massar-postgresql.service",
        "massar-prefect-server.service",
        "massar-worker.service",
    }
    server = units["massar-prefect-server.service"]
    assert f"EnvironmentFile={stack.paths.server_env}" in server
    assert "Requires=massar-postgresql.service" in server
    assert "--host 127.0.0.1" in server and "User=massar" in server
    worker = units["massar-worker.service"]
    assert f"EnvironmentFile={stack.paths.massar_env}" in worker
    assert "After=massar-prefect-server.service" in worker
    for text in units.values():
        assert "WantedBy=multi-user.target" in text
        # No secret is written into a unit: they stay in the 0600 files.
        for secret in ("prefect-auth", "massar-db-password", "prefect-db-password"):
            assert (stack.paths.secrets / secret).read_text().strip() not in text
        executable = next(
            line.split("=", 1)[1].split()[0]
            for line in text.splitlines()
            if line.startswith("ExecStart=")
        )
        assert os.access(executable, os.X_OK), executable
    written = subprocess.run(
        [str(STACK), "--root", str(stack.root), "install-services", "--dest", str(tmp_path)],
        capture_output=True,
        text=True,
        env=clean_env(),
    )
    assert written.returncode == 0, written.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(units)
    if shutil.which("systemd-analyze"):
        verified = subprocess.run(
            ["systemd-analyze", "verify", *(str(p) for p in tmp_path.iterdir())],
            capture_output=True,
            text=True,
        )
        assert "Failed" not in verified.stderr, verified.stderr


def _toml(value) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(str(value))


def _configure_partner(stack: Stack, sftp_server) -> str:
    """What the province's officer writes in massar.toml: keys, the CNSS server; and the
    administrator enrols the approver (this account) with 'massar approvers add'. Returns the
    approver's TOTP secret, as the command shows it once."""
    now = datetime.now(UTC)
    keys = stack.root / "keys"
    key, certificate = make_test_certificate(
        keys, now - timedelta(days=1), now + timedelta(days=30), "Direction provinciale de Tiznit"
    )
    top = {
        "province": "Tiznit",
        "approval_poll_seconds": 3,  # pause slices of 3 min: the officer's page stays paused
        "approval_timeout_hours": 0.1,
        "signing_key": key,
        "signing_certificate": certificate,
    }
    cnss = {
        "host": sftp_server.host,
        "port": sftp_server.port,
        "username": sftp_server.username,
        "private_key": sftp_server.client_key_path,
        "host_key": sftp_server.known_hosts_line,
        "remote_inbox": sftp_server.remote_inbox,
        "remote_outbox": sftp_server.remote_outbox,
        "timeout_seconds": 10,
        "delivery_attempts": 3,
        "delivery_backoff_seconds": 0.05,
        "legal_basis": "Convention MEN-CNSS (test)",
        "age_windows": {"family_allowance": [12, 21], "survivor_pension": [16, 21]},
    }
    text = "".join(f"{k} = {_toml(v)}\n" for k, v in top.items())
    text += "\n[partners.cnss]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in cnss.items())
    (stack.paths.home / "massar.toml").write_text(text, encoding="utf-8")
    enrolled = stack.massar("approvers", "add", APPROVER, "--os-account", current_os_account())
    return enrolled.split("secret: ")[1].split()[0]


def _waiting_batch(settings, timeout: float = 300) -> str:
    from tasks.batch_delivery import undecided_batches

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        waiting = undecided_batches(settings, "cnss")
        if waiting:
            return waiting[0]
        time.sleep(0.5)
    raise AssertionError("no batch came to wait for approval")


def test_the_nightly_and_a_cnss_exchange_run_through_the_stack(stack, province, sftp_server):
    home = stack.paths.home
    schools = sorted(p for p in province.iterdir() if p.is_dir() and p.name[:5].isdigit())
    for school in schools:
        shutil.copytree(school, home / "inbox" / school.name)

    # The nightly deployment, run by the worker, writes the control database on PostgreSQL.
    night = stack.run_deployment("nightly/nightly")
    assert night["state"]["type"] == "COMPLETED", night["state"]
    # Its schools only: the stack is shared with test_stack_race.py (another province).
    ours = ", ".join(f"'{s.name}'" for s in schools)
    counts = json.loads(
        stack.massar(
            "query",
            "select state, count(*) as n from submissions "
            f"where school_code in ({ours}) group by state order by state",
            "--format",
            "json",
        )
    )
    files = sum(1 for s in schools for f in s.rglob("*") if f.is_file())
    assert sum(row["n"] for row in counts) == files
    assert {row["state"] for row in counts} <= {"accepted", "partially_accepted"}
    pupils = json.loads(
        stack.massar("query", "select count(*) as n from enrollments", "--format", "json")
    )
    assert pupils[0]["n"] > 0
    # The night's tables are on Prefect's server, for the officers' UI.
    keys = ["ingest-by-school", "nightly-warehouse", "evaluation-headline"]
    artifacts = stack.api(
        "POST",
        "/artifacts/filter",
        json={"artifacts": {"key": {"any_": keys}}, "sort": "CREATED_DESC"},  # the night's first
    ).json()
    assert sorted({a["key"] for a in artifacts}) == sorted(keys)
    by_school = next(a for a in artifacts if a["key"] == "ingest-by-school")
    rows = by_school["data"]
    rows = json.loads(rows) if isinstance(rows, str) else rows
    assert {row["school"] for row in rows} == {s.name for s in schools}

    # A CNSS request arrives on the fund's SFTP server; the exchange deployment prepares the
    # batch and waits; an approver decides from the terminal; it is delivered.
    secret = _configure_partner(stack, sftp_server)
    (home / "reference").mkdir(exist_ok=True)
    shutil.copy(province / "leavers.csv", home / "reference" / "leavers.csv")
    request = province / "partners" / "cnss" / f"CNSS_SCOL_{YEAR}_0001.csv"
    shutil.copy(request, sftp_server.outbox / request.name)
    deployment = stack.api("GET", "/deployments/name/exchange/cnss").json()
    flow_run = stack.api("POST", f"/deployments/{deployment['id']}/create_flow_run", json={}).json()
    from ground.settings import load_settings

    settings = load_settings(home).model_copy(
        update={"database_url": stack.env["MASSAR_DATABASE_URL"]}
    )
    batch = _waiting_batch(settings)
    stack.wait_paused(flow_run["id"])  # the officer opens the run once it waits on its form
    # An officer logs in to the stack's UI with its generated auth string: the night and the
    # paused exchange with its form are there (submitting the form: tests/ui).
    from tests.harness.prefect_ui import prefect_ui

    shots = Path(tempfile.mkdtemp(prefix="massar-stack-ui-"))
    with prefect_ui(stack.config.ui_url, shots, REPO / "test-output" / "stack") as ui:
        ui.login(stack.auth)
        ui.page.goto(stack.config.ui_url + "/")
        ui.page.wait_for_load_state("networkidle")
        assert "/v2" not in ui.page.url, ui.page.url
        ui.open_flow_run(night["id"], state="Completed")
        assert ui.log_lines(), "the nightly run's page shows no log line"
        ui.screenshot("stack-nightly-run")
        ui.open_flow_run(flow_run["id"], state="Paused")
        assert "use the form of this flow run" in ui.wait_for_log_line(f"Batch {batch} waits")
        form = ui.open_resume_form()
        form.get_by_text(f"Batch {batch} for CNSS").wait_for()
        ui.screenshot("stack-approval-form")
        assert sorted(set(ui.blocked)) == []
    shutil.rmtree(shots, ignore_errors=True)
    # The approver decides from the server's terminal instead, through the same API.
    # As the administrator's account (this one) enrolled her: her account and her code.
    decided = stack.massar(
        "approve", batch, "--code", code_for(secret, datetime.now(UTC)), "--comment", "ok"
    )
    assert "goes on now" in decided
    finished = stack.wait(flow_run["id"])
    assert finished["state"]["type"] == "COMPLETED", finished["state"]

    from tasks.acknowledgements import reconciliation
    from tasks.batch_preparation import batch_summary
    from tasks.exchange_batches import batch_folder

    summary = batch_summary(settings, batch)
    assert summary["state"] == "delivered"
    assert summary["decision"]["approver"] == APPROVER
    # Started through the deployment (Prefect's API): nobody's run, recorded as such.
    assert summary["prepared_by"] == "deployment:exchange/cnss"
    delivered = sorted(os.listdir(sftp_server.inbox))
    assert delivered == sorted(summary["files"])
    folder = batch_folder(settings, "cnss", batch)
    for name in delivered:
        assert (sftp_server.inbox / name).read_bytes() == (folder / name).read_bytes()
    xml = next(folder / n for n in delivered if n.endswith(".xml"))
    checked = subprocess.run(
        ["xmlsec1", "--verify", "--trusted-pem", str(settings.signing_certificate), str(xml)],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stderr
    expected = {
        row.split(",")[0]: row.split(",")[1]
        for row in (request.parent / "expected.csv").read_text().splitlines()[1:]
    }
    answered = {r["fund_reference"]: r["answered"] for r in reconciliation(settings, batch)}
    assert set(answered) == set(expected)
    assert [
        ref
        for ref, status in answered.items()
        if status == "NOT_SCHOOLED" and expected[ref] != "NOT_SCHOOLED"
    ] == []

    # The fund acknowledges; the next scheduled run reconciles, sending nothing again.
    profile = profile_for("cnss")
    ack = build_acknowledgement(
        profile,
        batch,
        summary["sequence"],
        xml.name,
        summary["files"][xml.name],
        [ChildOutcome(ref, True, "") for ref in answered],
        datetime.now(UTC),
    )
    name = acknowledgement_file_name(profile, summary["school_year"], summary["sequence"])
    (sftp_server.outbox / name).write_bytes(ack)
    again = stack.run_deployment("exchange/cnss")
    assert again["state"]["type"] == "COMPLETED", again["state"]
    assert batch_summary(settings, batch)["state"] == "acknowledged"
    assert sorted(os.listdir(sftp_server.inbox)) == delivered

    # Nothing of the stack's secrets reached Prefect (issue 15, item 4): not in any flow run's
    # parameters, any log line or any artifact of the night and the exchange.
    _assert_no_secret_in_prefect(stack, settings)


def _assert_no_secret_in_prefect(stack: Stack, settings) -> None:
    secrets_dir = stack.paths.secrets
    secret_values = {
        "control database password": (secrets_dir / "massar-db-password").read_text().strip(),
        "Prefect database password": (secrets_dir / "prefect-db-password").read_text().strip(),
        "Prefect auth string": stack.auth.split(":", 1)[-1],
    }
    assert settings.signing_key is not None
    key_lines = [
        line
        for line in settings.signing_key.read_text().splitlines()
        if line and not line.startswith("-----")
    ]
    secret_values["signing key material"] = key_lines[len(key_lines) // 2]
    assert all(len(value) >= 12 for value in secret_values.values()), "weak probes"

    def everything(path: str, body: dict) -> str:
        found, offset = [], 0
        while True:
            page = stack.api("POST", path, json={**body, "offset": offset, "limit": 200}).json()
            found.extend(page)
            if len(page) < 200:
                return json.dumps(found)
            offset += len(page)

    stored = {
        "flow runs": everything("/flow_runs/filter", {}),
        "task runs": everything("/task_runs/filter", {}),
        "logs": everything("/logs/filter", {}),
        "artifacts": everything("/artifacts/filter", {}),
    }
    assert len(json.loads(stored["flow runs"])) >= 3 and len(json.loads(stored["logs"])) > 10
    leaks = [
        f"{what} in {where}"
        for what, value in secret_values.items()
        for where, text in stored.items()
        if value in text
    ]
    assert leaks == []

"""The production stack on one server: PostgreSQL, Prefect's server, the process worker.

``deployments/stack up --root /srv/massar-stack`` brings up, from the machine's own binaries:

- a PostgreSQL cluster on a loopback port holding two databases, ``prefect`` (Prefect's own
  database) and ``massar`` (the platform's control database), each with its own role and a
  generated password;
- Prefect's server on 127.0.0.1, its API and UI protected by ``PREFECT_SERVER_API_AUTH_STRING``,
  telemetry off;
- the ``massar`` process work pool, the deployments of ``prefect.yaml`` applied, and a worker.

Secrets (database passwords, the auth string) are generated once into ``<root>/secrets``
(mode 0700, files 0600), never into the repository; the services read them from the two
environment files there (``server.env`` for Prefect's server, ``massar.env`` for the worker and
for an officer's ``massar`` commands). ``install-services`` writes systemd units that start the
same three services on boot. Running ``up`` again is safe: what exists is kept and what runs is
left running.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import glob
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DEFAULT_PG_PORT = 55432
DEFAULT_PREFECT_PORT = 4200
WORK_POOL = "massar"


class StackError(Exception):
    """Something an operator can act on; the message says what and what to do."""


# ---------------------------------------------------------------------------------------------
# Layout


@dataclass(frozen=True)
class StackPaths:
    root: Path

    @property
    def secrets(self) -> Path:
        return self.root / "secrets"

    @property
    def pg_data(self) -> Path:
        return self.root / "postgres" / "data"

    @property
    def pg_socket(self) -> Path:
        return self.root / "postgres" / "run"

    @property
    def prefect_home(self) -> Path:
        return self.root / "prefect"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def config(self) -> Path:
        return self.root / "stack.json"

    @property
    def server_env(self) -> Path:
        return self.secrets / "server.env"

    @property
    def massar_env(self) -> Path:
        return self.secrets / "massar.env"


def postgres_binaries() -> Path:
    """The newest PostgreSQL server bin folder installed on the machine."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parent.parent.name),
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise StackError(
        "PostgreSQL's server programs are not installed; install Debian's 'postgresql' package "
        "(scripts/system-packages.sh does) and run this again."
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


# ---------------------------------------------------------------------------------------------
# Secrets and configuration


def _secret(paths: StackPaths, name: str, make) -> str:  # type: ignore[no-untyped-def]
    path = paths.secrets / name
    if not path.exists():
        path.write_text(make() + "\n", encoding="utf-8")
        path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip()


def _write_private(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)


def _env_file(values: dict[str, str]) -> str:
    lines = [
        "# Written by deployments/stack; secrets: keep this file 0600, outside the repository."
    ]
    lines += [f"{key}={_env_value(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_./:@%+,=-]*")


def _env_value(value: str) -> str:
    """The value as the file holds it: bare when plain, else in single quotes, which both a
    shell's ``set -a; . file`` and systemd's ``EnvironmentFile=`` take off again (bare, a
    shell drops the double quotes inside a JSON list: ``["/x"]`` became ``[/x]``)."""
    if _PLAIN_VALUE.fullmatch(value):
        return value
    if "'" in value or "\n" in value or "\\" in value:
        raise ValueError("an environment value holds a quote, a backslash or a line break")
    return f"'{value}'"


def read_env_file(path: Path) -> dict[str, str]:
    """The file's values as a shell or systemd sees them (surrounding quotes taken off)."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            values[key.strip()] = value
    return values


@dataclass
class StackConfig:
    pg_port: int
    prefect_port: int
    pg_superuser: str
    service_user: str

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.prefect_port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.prefect_port}"


def load_config(paths: StackPaths) -> StackConfig | None:
    if not paths.config.exists():
        return None
    return StackConfig(**json.loads(paths.config.read_text(encoding="utf-8")))


def _choose_config(paths: StackPaths, pg_port: int | None, prefect_port: int | None) -> StackConfig:
    existing = load_config(paths)
    if existing is not None:
        changed = (pg_port and pg_port != existing.pg_port) or (
            prefect_port and prefect_port != existing.prefect_port
        )
        if not changed:
            return existing
        if _alive(paths, "prefect-server") or (paths.pg_data / "postmaster.pid").exists():
            raise StackError(
                f"The stack in {paths.root} runs with PostgreSQL on port {existing.pg_port} "
                f"and Prefect on port {existing.prefect_port}; run 'down' before changing them."
            )
        existing.pg_port = pg_port or existing.pg_port
        existing.prefect_port = prefect_port or existing.prefect_port
        paths.config.write_text(json.dumps(existing.__dict__, indent=2) + "\n", encoding="utf-8")
        return existing
    as_root = os.geteuid() == 0
    config = StackConfig(
        pg_port=pg_port or DEFAULT_PG_PORT,
        prefect_port=prefect_port or DEFAULT_PREFECT_PORT,
        pg_superuser="postgres" if as_root else pwd.getpwuid(os.geteuid()).pw_name,
        service_user=pwd.getpwuid(os.geteuid()).pw_name,
    )
    paths.config.write_text(json.dumps(config.__dict__, indent=2) + "\n", encoding="utf-8")
    return config


def write_environment(paths: StackPaths, config: StackConfig) -> tuple[dict, dict]:
    """The two environment files of the services, with their secrets; kept if present."""
    prefect_pw = _secret(paths, "prefect-db-password", lambda: secrets.token_hex(16))
    massar_pw = _secret(paths, "massar-db-password", lambda: secrets.token_hex(16))
    auth = _secret(paths, "prefect-auth", lambda: f"officer:{secrets.token_urlsafe(18)}")
    quiet = {
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
    }
    server = {
        "PREFECT_HOME": str(paths.prefect_home),
        "PREFECT_API_DATABASE_CONNECTION_URL": (
            f"postgresql+asyncpg://prefect:{prefect_pw}@127.0.0.1:{config.pg_port}/prefect"
        ),
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(config.prefect_port),
        "PREFECT_SERVER_API_AUTH_STRING": auth,
        "PREFECT_UI_ENABLED": "true",
        "PREFECT_UI_API_URL": config.api_url,
        # The classic UI: it has the paused run's Resume form the approvers use (tested), and
        # the new one asks an analytics host on the internet even with analytics off.
        "PREFECT_SERVER_UI_V2_ENABLED": "false",
        # Run history: the platform's housekeeping deployment deletes old finished runs (its
        # retention, docs/housekeeping.md); Prefect's own vacuum keeps to events only, so that
        # its 90-day default does not cut the history shorter behind the settings' back.
        "PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED": "events",
        **quiet,
    }
    massar = {
        "PREFECT_HOME": str(paths.root / "prefect-client"),
        "PREFECT_API_URL": config.api_url,
        "PREFECT_API_AUTH_STRING": auth,
        "MASSAR_HOME": str(paths.home),
        "MASSAR_PREFECT_API_URL": config.api_url,
        "MASSAR_DATABASE_URL": (
            f"postgresql+psycopg://massar:{massar_pw}@127.0.0.1:{config.pg_port}/massar"
        ),
        "MASSAR_CODE_DIR": str(REPO),
        # The housekeeping deployment rotates the services' logs too (copytruncate).
        "MASSAR_HOUSEKEEPING__LOG_FOLDERS": json.dumps([str(paths.logs)]),
        **quiet,
    }
    _write_private(paths.server_env, _env_file(server))
    _write_private(paths.massar_env, _env_file(massar))
    return server, massar


# ---------------------------------------------------------------------------------------------
# PostgreSQL


class Postgres:
    """The stack's cluster, run as the invoking user, or as ``postgres`` when that is root
    (PostgreSQL refuses to run as root)."""

    def __init__(self, paths: StackPaths, config: StackConfig) -> None:
        self.paths = paths
        self.config = config
        self.bin = postgres_binaries()
        self.as_root = os.geteuid() == 0

    def _as_owner(self, *args: str) -> list[str]:
        """``args`` as a command run by the cluster's owner."""
        if self.as_root:
            return ["runuser", "-u", self.config.pg_superuser, "--", *args]
        return list(args)

    def _run(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self._as_owner(*args),
            capture_output=True,
            text=True,
            timeout=180,
            input=input,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(
                f"PostgreSQL: '{Path(args[0]).name}' failed ({result.stderr.strip()[-400:]}); "
                f"see {self.paths.logs / 'postgres.log'}."
            )
        return result

    def _own(self, path: Path) -> None:
        if self.as_root:
            shutil.chown(path, user=self.config.pg_superuser, group=self.config.pg_superuser)

    def running(self) -> bool:
        if not (self.paths.pg_data / "postmaster.pid").exists():
            return False
        command = self._as_owner(str(self.bin / "pg_ctl"), "-D", str(self.paths.pg_data), "status")
        return subprocess.run(command, capture_output=True, check=False).returncode == 0

    def init(self) -> bool:
        """Create the cluster if there is none; True when it was created."""
        if (self.paths.pg_data / "PG_VERSION").exists():
            return False
        self.paths.pg_data.parent.mkdir(parents=True, exist_ok=True)
        self.paths.pg_socket.mkdir(parents=True, exist_ok=True)
        if self.as_root:
            reach = self._as_owner("test", "-x", str(self.paths.root))
            if subprocess.run(reach, check=False).returncode != 0:
                raise StackError(
                    f"The user '{self.config.pg_superuser}' that runs PostgreSQL cannot reach "
                    f"{self.paths.root}; choose a --root whose parent folders it can enter "
                    "(e.g. under /srv), or run the stack as an ordinary user."
                )
        for path in (self.paths.pg_data.parent, self.paths.pg_socket):
            self._own(path)
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.paths.pg_data),
            "-U",
            self.config.pg_superuser,
            "--auth-local=peer",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        )
        conf = self.paths.pg_data / "postgresql.conf"
        settings = (
            "\n# deployments/stack: loopback only, its own port and socket folder\n"
            "listen_addresses = '127.0.0.1'\n"
            f"port = {self.config.pg_port}\n"
            f"unix_socket_directories = '{self.paths.pg_socket}'\n"
            "password_encryption = 'scram-sha-256'\n"
        )
        self._run("sh", "-c", f"cat >> '{conf}'", input=settings)
        return True

    def start(self) -> None:
        if self.running():
            return
        if _port_in_use(self.config.pg_port):
            raise StackError(
                f"Port {self.config.pg_port} on 127.0.0.1 is already taken by another program; "
                "stop it or set up the stack with another --pg-port."
            )
        conf = self.paths.pg_data / "postgresql.conf"
        ports = [
            line.split("=", 1)[1].strip()
            for line in conf.read_text().splitlines()
            if line.startswith("port =")
        ]
        if ports[-1:] != [str(self.config.pg_port)]:  # the port was changed since 'init'
            self._run("sh", "-c", f"cat >> '{conf}'", input=f"port = {self.config.pg_port}\n")
        log = self.paths.logs / "postgres.log"
        log.touch()
        self._own(log)
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.paths.pg_data),
            "-l",
            str(log),
            "-w",
            "-t",
            "90",
            "start",
        )

    def stop(self) -> None:
        if self.running():
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.paths.pg_data), "-m", "fast", "stop")

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run ``sql`` as the cluster's superuser (peer authentication on the socket). The SQL
        goes through psql's standard input, never its command line: it may hold a role's
        password, and every account of the machine can read a process's arguments."""
        return self._run(
            str(self.bin / "psql"),
            "-h",
            str(self.paths.pg_socket),
            "-p",
            str(self.config.pg_port),
            "-U",
            self.config.pg_superuser,
            "-d",
            database,
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-tA",
            "-f",
            "-",
            input=sql + ";\n",
        ).stdout.strip()

    def ensure_database(self, name: str, password: str) -> None:
        """Role ``name`` with ``password``, owning database ``name``; kept if present."""
        if not self.psql(f"select 1 from pg_roles where rolname = '{name}'"):
            self.psql(f"create role {name} login password '{password}'")
        else:
            self.psql(f"alter role {name} password '{password}'")
        if not self.psql(f"select 1 from pg_database where datname = '{name}'"):
            self.psql(f"create database {name} owner {name} encoding 'UTF8' template template0")


# ---------------------------------------------------------------------------------------------
# Long-running processes


def _pid_file(paths: StackPaths, name: str) -> Path:
    return paths.run / f"{name}.pid"


def _alive(paths: StackPaths, name: str) -> int | None:
    pid_file = _pid_file(paths, name)
    if not pid_file.exists():
        return None
    try:
        pid = int(pid_file.read_text())
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError, PermissionError):
        return None
    # A zombie (our own child that exited) is not alive.
    with contextlib.suppress(OSError):
        status = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        if status == "Z":
            return None
    return pid


def _spawn(paths: StackPaths, name: str, command: list[str], env: dict[str, str]) -> int:
    log = (paths.logs / f"{name}.log").open("ab")
    process = subprocess.Popen(
        command,
        cwd=REPO,
        env={**_base_env(), **env},
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: 'down' stops it with its children
        umask=0o077,  # what the services write (reports, backups, logs) is the owner's only
    )
    log.close()
    _pid_file(paths, name).write_text(str(process.pid))
    return process.pid


def _children(pid: int) -> list[int]:
    """The live processes whose parent is ``pid`` (a worker's flow runs: each in its own
    session, out of the worker's process group)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid and fields[0] != "Z":
                    found.append(int(entry.name))
    return found


def _stop(paths: StackPaths, name: str, grace: float = 30.0, idle_grace: float = 5.0) -> bool:
    """SIGTERM to the service's process group; SIGKILL after ``grace`` seconds. A service with
    no child process left (a worker with no flow run going on) that has not ended ``idle_grace``
    seconds after the SIGTERM gets a second SIGTERM, which Prefect's worker turns into its own
    SIGKILL: after a flow run, the worker was seen to ignore the first one and keep the stack's
    'down' waiting the whole grace (30 s) for nothing."""
    pid = _alive(paths, name)
    if pid is None:
        _pid_file(paths, name).unlink(missing_ok=True)
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    idle_after = time.monotonic() + idle_grace
    deadline = time.monotonic() + grace
    signalled_again = False
    while time.monotonic() < deadline and _alive(paths, name):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not signalled_again and time.monotonic() >= idle_after and not _children(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            signalled_again = True
        time.sleep(0.1)
    if _alive(paths, name):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    _pid_file(paths, name).unlink(missing_ok=True)
    return True


def _base_env() -> dict[str, str]:
    """The invoking environment without anything that would point Prefect or the platform
    elsewhere (a developer's profile, a test harness)."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PREFECT_", "MASSAR_"))
    }


def auth_header(auth: str) -> dict[str, str]:
    """The HTTP header of Prefect's basic auth for the ``user:password`` string ``auth``."""
    return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}


def api_request(config: StackConfig, auth: str | None, method: str, path: str, **kwargs):  # type: ignore[no-untyped-def]
    import httpx

    headers = auth_header(auth) if auth else {}
    return httpx.request(method, config.api_url + path, headers=headers, timeout=30, **kwargs)


def _wait_for(what: str, check, timeout: float, log: Path) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.5)
    tail = ""
    with contextlib.suppress(OSError):
        tail = log.read_text(errors="replace")[-1200:]
    raise StackError(f"{what} did not come up within {timeout:.0f} s; the end of {log}:\n{tail}")


def _prefect(env: dict[str, str], *args: str, timeout: int = 600) -> str:
    result = subprocess.run(
        [str(BIN / "prefect"), "--no-prompt", *args],
        cwd=REPO,
        env={**_base_env(), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise StackError(
            f"'prefect {' '.join(args)}' failed: {(result.stdout + result.stderr).strip()[-800:]}"
        )
    return result.stdout


# ---------------------------------------------------------------------------------------------
# Commands


def up(root: Path, pg_port: int | None = None, prefect_port: int | None = None) -> dict:
    """Bring the whole stack up; returns what was done and how long each step took."""
    started = time.monotonic()
    timings: dict[str, float] = {}

    def step(name: str, since: float) -> float:
        now = time.monotonic()
        timings[name] = round(now - since, 2)
        return now

    paths = StackPaths(root.resolve())
    for folder in (paths.root, paths.logs, paths.run, paths.prefect_home):
        folder.mkdir(parents=True, exist_ok=True)
    paths.secrets.mkdir(mode=0o700, exist_ok=True)
    paths.secrets.chmod(0o700)
    config = _choose_config(paths, pg_port, prefect_port)
    server_env, massar_env = write_environment(paths, config)
    mark = step("configuration", started)

    postgres = Postgres(paths, config)
    created = postgres.init()
    postgres.start()
    for role in ("prefect", "massar"):
        password = (paths.secrets / f"{role}-db-password").read_text(encoding="utf-8").strip()
        postgres.ensure_database(role, password)
    mark = step("postgresql", mark)

    # The platform's home and its control database on PostgreSQL (migrated forward).
    result = subprocess.run(
        [str(BIN / "massar"), "init", "--home", str(paths.home)],
        env={**_base_env(), **massar_env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise StackError(f"'massar init' failed: {(result.stdout + result.stderr).strip()}")
    mark = step("control_database", mark)

    auth = server_env["PREFECT_SERVER_API_AUTH_STRING"]
    if _alive(paths, "prefect-server") is None:
        if _port_in_use(config.prefect_port):
            raise StackError(
                f"Port {config.prefect_port} on 127.0.0.1 is already taken by another program; "
                "stop it or set up the stack with another --prefect-port."
            )
        _spawn(
            paths,
            "prefect-server",
            [
                str(BIN / "prefect"),
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(config.prefect_port),
            ],
            server_env,
        )
    _wait_for(
        "Prefect's server",
        lambda: api_request(config, auth, "GET", "/health").status_code == 200,
        180,
        paths.logs / "prefect-server.log",
    )
    mark = step("prefect_server", mark)

    _prefect(massar_env, "work-pool", "create", WORK_POOL, "--type", "process", "--overwrite")
    _prefect(massar_env, "deploy", "--all")
    mark = step("deployments", mark)

    if _alive(paths, "worker") is None:
        _spawn(
            paths,
            "worker",
            [str(BIN / "prefect"), "worker", "start", "--pool", WORK_POOL, "--name", "massar"],
            massar_env,
        )

    def worker_online() -> bool:
        response = api_request(config, auth, "POST", f"/work_pools/{WORK_POOL}/workers/filter")
        return any(w.get("status") == "ONLINE" for w in response.json())

    _wait_for("The worker", worker_online, 120, paths.logs / "worker.log")
    step("worker", mark)
    return {
        "root": str(paths.root),
        "created_cluster": created,
        "ui": config.ui_url,
        "api": config.api_url,
        "postgres_port": config.pg_port,
        "seconds": round(time.monotonic() - started, 2),
        "timings": timings,
    }


def down(root: Path) -> list[str]:
    """Stop the worker, Prefect's server and PostgreSQL; data and secrets stay."""
    paths = StackPaths(root.resolve())
    config = load_config(paths)
    stopped = []
    for name in ("worker", "prefect-server"):
        if _stop(paths, name):
            stopped.append(name)
    if config is not None:
        postgres = Postgres(paths, config)
        if postgres.running():
            postgres.stop()
            stopped.append("postgresql")
    return stopped


def status(root: Path) -> dict[str, bool]:
    paths = StackPaths(root.resolve())
    config = load_config(paths)
    if config is None:
        raise StackError(f"No stack was set up in {paths.root}; run 'deployments/stack up' first.")
    auth = read_env_file(paths.server_env)["PREFECT_SERVER_API_AUTH_STRING"]
    healthy = False
    with contextlib.suppress(Exception):
        healthy = api_request(config, auth, "GET", "/health").status_code == 200
    return {
        "postgresql": Postgres(paths, config).running(),
        "prefect-server": _alive(paths, "prefect-server") is not None and healthy,
        "worker": _alive(paths, "worker") is not None,
    }


def systemd_units(root: Path, user: str | None = None) -> dict[str, str]:
    """systemd units that start the stack's three services on boot, in order."""
    paths = StackPaths(root.resolve())
    config = load_config(paths)
    if config is None:
        raise StackError(f"No stack was set up in {paths.root}; run 'deployments/stack up' first.")
    user = user or config.service_user
    pg_bin = postgres_binaries()
    common = "Restart=on-failure\nRestartSec=5\nUMask=0077\n"
    return {
        "massar-postgresql.service": (
            "[Unit]\nDescription=Massar platform: PostgreSQL (Prefect's and the control "
            "database)\nAfter=network.target\n\n[Service]\nType=forking\n"
            f"User={config.pg_superuser}\n"
            f"ExecStart={pg_bin}/pg_ctl -D {paths.pg_data} -l {paths.logs}/postgres.log "
            "-w -t 90 start\n"
            f"ExecStop={pg_bin}/pg_ctl -D {paths.pg_data} -m fast stop\n"
            f"PIDFile={paths.pg_data}/postmaster.pid\n{common}\n"
            "[Install]\nWantedBy=multi-user.target\n"
        ),
        "massar-prefect-server.service": (
            "[Unit]\nDescription=Massar platform: Prefect server (API and UI on loopback)\n"
            "Requires=massar-postgresql.service\nAfter=massar-postgresql.service\n\n"
            f"[Service]\nType=simple\nUser={user}\nWorkingDirectory={REPO}\n"
            f"EnvironmentFile={paths.server_env}\n"
            f"ExecStart={BIN}/prefect server start --host 127.0.0.1 --port {config.prefect_port}\n"
            f"StandardOutput=append:{paths.logs}/prefect-server.log\nStandardError=inherit\n"
            f"{common}\n[Install]\nWantedBy=multi-user.target\n"
        ),
        "massar-worker.service": (
            "[Unit]\nDescription=Massar platform: Prefect process worker (pool massar)\n"
            "Requires=massar-prefect-server.service\nAfter=massar-prefect-server.service\n\n"
            f"[Service]\nType=simple\nUser={user}\nWorkingDirectory={REPO}\n"
            f"EnvironmentFile={paths.massar_env}\n"
            f"ExecStart={BIN}/prefect worker start --pool {WORK_POOL} --name massar\n"
            f"StandardOutput=append:{paths.logs}/worker.log\nStandardError=inherit\n"
            f"{common}\n[Install]\nWantedBy=multi-user.target\n"
        ),
    }


def install_services(root: Path, dest: Path, user: str | None, enable: bool) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in systemd_units(root, user).items():
        path = dest / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    if enable:
        if not shutil.which("systemctl"):
            raise StackError(
                "systemctl is not on this machine: the units were written, not enabled."
            )
        subprocess.run(["systemctl", "daemon-reload"], check=True)
        subprocess.run(
            ["systemctl", "enable", *(p.name for p in written)], check=True, capture_output=True
        )
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="deployments/stack", description="The Massar platform's production stack."
    )
    parser.add_argument(
        "--root", type=Path, default=Path(os.environ.get("MASSAR_STACK", "/srv/massar-stack"))
    )
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", help="set up (first time) and start everything")
    start.add_argument("--pg-port", type=int)
    start.add_argument("--prefect-port", type=int)
    commands.add_parser("down", help="stop everything; data and secrets stay")
    commands.add_parser("status", help="what runs")
    commands.add_parser("env", help="print the officer's environment (source it for 'massar')")
    services = commands.add_parser("install-services", help="systemd units for boot")
    services.add_argument("--dest", type=Path, default=Path("/etc/systemd/system"))
    services.add_argument("--user", help="the user the Prefect server and worker run as")
    services.add_argument("--enable", action="store_true", help="also systemctl enable them")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            report = up(args.root, args.pg_port, args.prefect_port)
            steps = ", ".join(f"{k} {v} s" for k, v in report["timings"].items())
            print(f"The stack is up in {report['seconds']} s ({steps}).")
            paths = StackPaths(args.root.resolve())
            print(f"Prefect UI: {report['ui']} (log in with {paths.secrets / 'prefect-auth'}).")
            print(f"For 'massar' commands: set -a; . {paths.massar_env}; set +a")
            print(json.dumps(report))
        elif args.command == "down":
            stopped = down(args.root)
            print("Stopped: " + (", ".join(stopped) if stopped else "nothing was running") + ".")
        elif args.command == "status":
            state = status(args.root)
            for name, running in state.items():
                print(f"{name}: {'running' if running else 'stopped'}")
            return 0 if all(state.values()) else 3
        elif args.command == "env":
            print(StackPaths(args.root.resolve()).massar_env.read_text(), end="")
        elif args.command == "install-services":
            for path in install_services(args.root, args.dest, args.user, args.enable):
                print(f"Wrote {path}")
    except StackError as error:
        print(f"stack: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

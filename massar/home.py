"""The operator's home: one folder that holds everything of an installation."""

from __future__ import annotations

from pathlib import Path

from ground.errors import OperatorError
from ground.settings import HOME_FOLDERS, SETTINGS_FILE, Settings, load_settings

DEFAULT_SETTINGS_TOML = """\
# Settings of this Massar platform installation.
# Every value can also be set in the environment: MASSAR_<NAME>, nested with "__",
# e.g. MASSAR_DATABASE_URL or MASSAR_PARTNERS__CNSS__HOST. The environment wins.

province = "Tiznit"
timezone = "Africa/Casablanca"

# Empty: a SQLite file in this home. Production: postgresql+psycopg://user@host/massar
database_url = ""

# Empty: Prefect's embedded API with its home inside this folder (offline, no telemetry).
# Production: the URL of the province's Prefect server, e.g. http://127.0.0.1:4200/api
prefect_api_url = ""

# Where the per-school ingest tasks run: "default" (two processes here) or "dask" (Prefect's
# Dask task runner; empty dask_address: a cluster of dask_workers processes on 127.0.0.1).
# task_runner = "dask"
# dask_address = "tcp://scheduler.internal:8786"
# dask_workers = 2

# A resend that would remove more than this share of the lines a school had for the same data
# (e.g. 4 guardians after 627) is held until an officer runs 'massar confirm SUBMISSION'.
resend_hold_share = 0.30

# People allowed to approve a partner batch are not set here: an administrator enrols each
# with 'massar approvers add NAME --os-account ACCOUNT' (approvers.toml, with a code each).
approval_timeout_hours = 72

# Signing key and X.509 certificate for partner files (PEM); keep them outside the repository.
# signing_key = "/etc/massar/keys/signing-key.pem"
# signing_certificate = "/etc/massar/keys/signing-cert.pem"

# Partner funds. Empty host: files are delivered into exchange/<partner>/ in this home.
# [partners.cnss]
# host = "sftp.cnss.example"
# port = 22
# username = "men-tiznit"
# private_key = "/etc/massar/keys/cnss_ed25519"
# host_key = "[sftp.cnss.example]:22 ssh-ed25519 AAAA..."

# Housekeeping (docs/housekeeping.md): Prefect's run history, disk alert, log rotation.
# [housekeeping]
# flow_run_retention_days = 400
# min_free_disk_gb = 20
# log_folders = ["/srv/massar-stack/logs"]
"""


def init_home(home: Path | str | None = None) -> Settings:
    """Create the home's folders, a commented settings file and the control database.

    Safe to run again: existing files are kept and the database is only migrated forward.
    """
    from ground.settings import resolve_home
    from warehouse.control import upgrade_database

    home_path = resolve_home(home)
    try:
        home_path.mkdir(parents=True, exist_ok=True)
        for folder in HOME_FOLDERS:
            (home_path / folder).mkdir(exist_ok=True)
        settings_file = home_path / SETTINGS_FILE
        if not settings_file.exists():
            settings_file.write_text(DEFAULT_SETTINGS_TOML, encoding="utf-8")
    except OSError as error:
        raise OperatorError(
            f"The home folder {home_path} cannot be created ({error.strerror}); choose a "
            "writable place with --home or MASSAR_HOME."
        ) from error
    settings = load_settings(home_path)
    upgrade_database(settings.resolved_database_url)
    secure_home(settings, every_file=True)
    return settings


def open_home(home: Path | str | None = None) -> Settings:
    """Settings of an existing, initialised home; one clear sentence if it is not one."""
    from warehouse.control import upgrade_database

    settings = load_settings(home)
    if settings.database_url == "" and not (settings.home / "massar.db").exists():
        raise OperatorError(
            f"{settings.home} is not an initialised Massar home (no control database); run "
            f"'massar init --home {settings.home}' first."
        )
    # A newer platform may bring migrations: the control database is moved forward first.
    upgrade_database(settings.resolved_database_url)
    secure_home(settings)
    return settings


# Who may read a home: its owner only (issue 15). Folders 0700, files 0600, whatever the umask.
PRIVATE_FOLDER = 0o700
PRIVATE_FILE = 0o600


def secure_home(settings: Settings, *, every_file: bool = False) -> None:
    """Make the home readable by its owner only: the home, ``keys/`` and ``reports/`` 0700;
    the keys, the SQLite control database (and its journal files) 0600; with ``every_file``
    (``massar init``), every folder and file of the home too. A file the account does not own
    is left as it is (the folder around it is closed all the same)."""
    home = settings.home
    _chmod(home, PRIVATE_FOLDER)
    for name in ("keys", "reports"):
        _chmod(home / name, PRIVATE_FOLDER)
    for key in _files(home / "keys"):
        _chmod(key, PRIVATE_FILE)
    if not settings.database_url:
        for suffix in ("", "-wal", "-shm", "-journal"):
            _chmod(home / f"massar.db{suffix}", PRIVATE_FILE)
    if every_file:
        for path in home.rglob("*"):
            if path.is_symlink():
                continue
            _chmod(path, PRIVATE_FOLDER if path.is_dir() else PRIVATE_FILE)


def _files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()]


def _chmod(path: Path, mode: int) -> None:
    import os
    import stat

    try:
        status = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISLNK(status.st_mode) or status.st_uid != os.geteuid():
        return
    if stat.S_IMODE(status.st_mode) != mode:
        path.chmod(mode)

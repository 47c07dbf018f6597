"""The one settings object of an installation.

Read from ``MASSAR_HOME/massar.toml`` and from the environment (``MASSAR_`` prefix, ``__`` for
nested fields, e.g. ``MASSAR_DATABASE_URL`` or ``MASSAR_PARTNERS__CNSS__HOST``); the environment
wins over the file. With no file and no variable, everything runs embedded on one machine.
Who may approve a partner batch is not a setting: ``<home>/approvers.toml``
(ground/approvers.py), which neither the file nor the environment can override.
This is the only module that reads the environment.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from ground.errors import OperatorError
from ground.funds import FUNDS

DEFAULT_HOME = Path("massar-home")
SETTINGS_FILE = "massar.toml"

# Folders of a home (DESIGN.md, "Operator's home").
HOME_FOLDERS = (
    "inbox",
    "archive",
    "staging",
    "warehouse",
    "quarantine",
    "reports",
    "exchange",
    "prefect",
    "logs",
    "keys",
)


class SftpEndpoint(BaseModel):
    """An SFTP server we talk to, with its host key pinned. Empty host: not used."""

    model_config = {"extra": "forbid"}

    host: str = ""
    port: int = 22
    username: str = ""
    private_key: Path | None = None
    # The server's host key as a known_hosts line; any other key is refused.
    host_key: str = ""
    remote_inbox: str = "inbox"  # partners: where we upload; school inbox: where schools drop
    remote_outbox: str = "outbox"  # partners: where the fund leaves requests and acks
    timeout_seconds: float = 30.0


class PartnerSettings(SftpEndpoint):
    """How to reach one partner fund and what its exchange is allowed to do.

    Empty host: embedded mode, files are delivered to and fetched from local folders."""

    enabled: bool = True
    legal_basis: str = ""  # the convention that allows this exchange (law 09-08)
    age_windows: dict[str, tuple[int, int]] = Field(default_factory=dict)
    acknowledgement_delay_hours: float = 48
    delivery_attempts: int = 5  # tries in a row on connection losses before giving up
    delivery_backoff_seconds: float = 2.0  # first wait; doubled after each failure
    # What the fund sends is capped from its server's listing, before anything is fetched: a
    # larger request or acknowledgement is set aside with a sentence and an alert.
    request_max_megabytes: float = Field(default=50.0, gt=0)
    acknowledgement_max_megabytes: float = Field(default=5.0, gt=0)


class AlertSettings(BaseModel):
    """E-mail alerts (``[alerts]``): who is told, over which SMTP server, and when a check
    fires. Empty ``smtp_host``: alerts are still checked and shown in the watch run's log, but
    not e-mailed."""

    model_config = {"extra": "forbid"}

    smtp_host: str = ""
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_username: str = ""
    smtp_password_file: Path | None = None  # outside the repository; its first line is used
    smtp_timeout_seconds: float = 30.0
    sender: str = ""
    recipients: list[str] = Field(default_factory=list)
    nightly_start: str = "02:00"  # local time the nightly run starts (prefect.yaml)
    nightly_deadline: str = "06:00"  # local time by which a night must be published; "" = off
    approval_wait_hours: float = 24
    failed_runs_lookback_hours: float = 24  # how far back a check looks for failed runs
    # Collection campaigns (docs/coverage.md): a daily summary of the schools still missing items
    # from this many days before a deadline, then the late schools daily for this many days.
    coverage_reminder_days: int = Field(default=7, ge=0)
    coverage_late_days: int = Field(default=30, ge=0)

    @field_validator("nightly_start", "nightly_deadline")
    @classmethod
    def _clock_time(cls, value: str) -> str:
        if value:
            hours, _, minutes = value.partition(":")
            if not (
                hours.isdigit() and minutes.isdigit() and int(hours) < 24 and int(minutes) < 60
            ):
                raise ValueError(f"{value!r} is not a time of day written HH:MM")
        return value

    @model_validator(mode="after")
    def _someone_to_tell(self) -> AlertSettings:
        if self.smtp_host and not (self.sender and self.recipients):
            raise ValueError("an SMTP server needs a sender and at least one recipient")
        return self


class HousekeepingSettings(BaseModel):
    """Housekeeping (``[housekeeping]``, docs/housekeeping.md): how long Prefect keeps its run
    history, when the home's disk is too full, and how log files are rotated. The archive of
    originals is never deleted; the warehouse's old versions are the weekly maintenance's."""

    model_config = {"extra": "forbid"}

    # Runs that ended (completed, failed, crashed, cancelled) longer ago are deleted with their
    # task runs, logs and artifacts; 400 days keeps the whole previous school year in view.
    flow_run_retention_days: int = Field(default=400, ge=1)
    # Shorter (or longer) retention for some flows, by flow name: the 15-minute checks of
    # "watch" carry no history worth a year.
    flow_run_retention_by_flow: dict[str, int] = Field(default_factory=lambda: {"watch": 31})
    min_free_disk_gb: float = Field(default=20.0, ge=0)  # below this on the home's disk: alert
    # Folders whose *.log files are rotated besides the home's logs/ (e.g. the production
    # stack's <stack root>/logs).
    log_folders: list[Path] = Field(default_factory=list)
    log_max_megabytes: float = Field(default=50.0, gt=0)  # rotate a log larger than this
    log_max_age_days: float = Field(default=7.0, gt=0)  # or last rotated longer ago than this
    log_generations: int = Field(default=8, ge=1)  # compressed generations kept per log

    @field_validator("flow_run_retention_by_flow")
    @classmethod
    def _positive_days(cls, value: dict[str, int]) -> dict[str, int]:
        for name, days in value.items():
            if days < 1:
                raise ValueError(f"the retention of flow {name!r} must be at least 1 day")
        return value


class LeaseSettings(BaseModel):
    """Leases on what runs share (``[leases]``, docs/operations.md): a run renews its leases
    every third of ``expiry_seconds``; a lease not renewed for that long (its run died) is
    taken over. A second run waits up to ``wait_seconds`` for the warehouse or a fund's
    exchange, then ends without doing it (Completed, with a sentence saying so)."""

    model_config = {"extra": "forbid"}

    expiry_seconds: float = Field(default=120.0, gt=0)
    wait_seconds: float = Field(default=600.0, ge=0)


# Settings whose values may hold a password (in a URL's user part). The SMTP password and the
# keys are files named by the settings (alerts.smtp_password_file, signing_key, private_key),
# never values; Prefect's auth string is Prefect's own variable, never a setting.
SECRET_FIELDS = ("database_url", "prefect_api_url")
REDACTED = "********"


def without_password(url: str) -> str:
    """``url`` with the password of its user part replaced by ``REDACTED``."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return url
    authority, slash, path = rest.partition("/")
    user, at, host = authority.rpartition("@")
    if not at or ":" not in user:
        return url
    name = user.split(":", 1)[0]
    return f"{scheme}://{name}:{REDACTED}@{host}{slash}{path}"


class Settings(BaseSettings):
    """Everything an installation can configure. Build it with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="MASSAR_", env_nested_delimiter="__", extra="forbid"
    )

    home: Path = DEFAULT_HOME
    province: str = "Tiznit"
    database_url: str = ""  # empty: SQLite file in the home
    prefect_api_url: str = ""  # empty: Prefect's embedded (ephemeral) API, home inside MASSAR_HOME
    timezone: str = "Africa/Casablanca"
    approval_timeout_hours: float = 72  # a batch without decision expires after this
    approval_poll_seconds: int = 10  # how often a paused exchange looks for the decision
    # How long a paused exchange waits on Prefect before it looks in the control database
    # for a decision recorded while it was not paused; 0: 60 x approval_poll_seconds.
    approval_pause_slice_seconds: int = 0
    signing_key: Path | None = None
    signing_certificate: Path | None = None
    # Empty host: the inbox is the home's inbox/ folder. Otherwise schools drop files on this
    # server under <remote_inbox>/<school_code>/ and each ingest fetches the new ones first.
    inbox_sftp: SftpEndpoint = Field(default_factory=SftpEndpoint)
    # Every fund of the registry (ground/funds.py), with its convention and age windows.
    partners: dict[str, PartnerSettings] = Field(
        default_factory=lambda: {
            fund.key: PartnerSettings(
                legal_basis=fund.legal_basis, age_windows=dict(fund.age_windows)
            )
            for fund in FUNDS
        }
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # A resend that would remove more than this share of the lines a school had in the same
    # scope (e.g. 627 guardians → 4) is held until an officer confirms it (massar confirm);
    # 1 never holds.
    resend_hold_share: float = Field(default=0.30, ge=0, le=1)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    housekeeping: HousekeepingSettings = Field(default_factory=HousekeepingSettings)
    leases: LeaseSettings = Field(default_factory=LeaseSettings)
    # Where the per-school ingest tasks run. "default": two worker processes on this machine.
    # "dask": Prefect's Dask task runner (signing, SFTP and the warehouse commits never go there).
    task_runner: Literal["default", "dask"] = "default"
    # The Dask scheduler, e.g. "tcp://scheduler:8786"; every worker needs this platform installed
    # and this home's folders at the same paths. Empty: a cluster of dask_workers processes is
    # started on 127.0.0.1 for the run, without dashboard.
    dask_address: str = ""
    dask_workers: int = Field(default=2, ge=1)
    # With the default runner, an ingest of fewer new files than this runs in the flow's own
    # process: two worker processes cost ~2-3 s of CPU each to start, a file ~2.5 ms (0: always
    # the workers).
    small_night_files: int = Field(default=1000, ge=0)
    # The evaluation reads the marks this many rows at a time (a batch of whole schools): its
    # memory follows this, not the country (about 0.5 GB per million marks; benchmark
    # benchmarks/evaluate_national.py).
    evaluation_batch_rows: int = Field(default=8_000_000, ge=1)
    # DuckDB's memory for the evaluation's averages and ranks (it spills to the home's
    # tmp/evaluation beyond it); 0: DuckDB's default, 80 % of the machine.
    evaluation_memory_mb: int = Field(default=2_048, ge=0)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown time zone {value!r}") from error
        return value

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        if value and not value.startswith(("sqlite", "postgresql")):
            raise ValueError("only sqlite:// and postgresql:// URLs are supported")
        return value

    @field_serializer(*SECRET_FIELDS, when_used="json")
    def _without_password(self, value: str) -> str:
        # What leaves the process as JSON (a Prefect flow run's parameters) never carries a
        # password: flows read it again from the home and the environment (flow_settings).
        return without_password(value)

    def without_secrets(self) -> Settings:
        """A copy whose URLs carry no password: what is handed to a flow as its parameter
        (Prefect keeps parameters, readable by anyone with the UI's login); the flow reads the
        secrets again from its home and the environment (:func:`flow_settings`)."""
        return self.model_copy(
            update={name: without_password(getattr(self, name)) for name in SECRET_FIELDS}
        )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Explicit arguments (the TOML file, read by load_settings) come after the environment.
        return env_settings, init_settings

    # Derived places -------------------------------------------------------------------------

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'massar.db').resolve()}"

    @property
    def embedded(self) -> bool:
        return not self.prefect_api_url

    def folder(self, name: str) -> Path:
        if name not in HOME_FOLDERS:
            raise KeyError(name)
        return self.home / name

    @property
    def inbox(self) -> Path:
        return self.home / "inbox"

    @property
    def archive(self) -> Path:
        return self.home / "archive"

    @property
    def staging(self) -> Path:
        return self.home / "staging"

    @property
    def warehouse(self) -> Path:
        return self.home / "warehouse"

    @property
    def quarantine(self) -> Path:
        return self.home / "quarantine"

    @property
    def reports(self) -> Path:
        return self.home / "reports"

    @property
    def exchange(self) -> Path:
        return self.home / "exchange"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def prefect_home(self) -> Path:
        return self.home / "prefect"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def resolve_home(home: Path | str | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """The home given on the command line, else ``MASSAR_HOME``, else ``./massar-home``."""
    variables = os.environ if environ is None else environ
    if home:
        return Path(home)
    return Path(variables.get("MASSAR_HOME") or DEFAULT_HOME)


def load_settings(home: Path | str | None = None, *, require_home: bool = True) -> Settings:
    """Settings of the installation at ``home`` (file, then environment on top).

    Raises :class:`OperatorError` with one sentence when the home is missing (and required),
    the settings file is not valid TOML, or a value is not acceptable.
    """
    home_path = resolve_home(home)
    file_values: dict[str, Any] = {}
    settings_file = home_path / SETTINGS_FILE
    if require_home and not home_path.is_dir():
        raise OperatorError(
            f"The home folder {home_path} does not exist; create it with "
            f"'massar init --home {home_path}' or point MASSAR_HOME at an existing home."
        )
    if settings_file.is_file():
        try:
            file_values = tomllib.loads(settings_file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise OperatorError(
                f"The settings file {settings_file} is not valid TOML: {error}."
            ) from error
        except OSError as error:
            raise OperatorError(
                f"The settings file {settings_file} cannot be read: {error.strerror}."
            ) from error
    # Who may approve is <home>/approvers.toml's, changed by an administrator only
    # (ground/approvers.py): an 'approvers' line here, left from earlier versions, is not read,
    # and there is no field the environment could set.
    file_values.pop("approvers", None)
    file_values["home"] = home_path
    try:
        settings = Settings(**file_values)
    except ValidationError as error:
        first = error.errors()[0]
        place = ".".join(str(part) for part in first["loc"]) or "settings"
        raise OperatorError(
            f"The setting '{place}' is not acceptable ({first['msg']}); fix it in "
            f"{settings_file} or in the MASSAR_ environment variables."
        ) from error
    # A home given explicitly wins over MASSAR_HOME read by the environment source.
    settings.home = home_path.resolve()
    return settings


def flow_settings(settings: Settings | None, home: str | Path | None = None) -> Settings:
    """The settings a flow runs with. Flows take the home, or settings without secrets
    (:meth:`Settings.without_secrets`), as parameters: the secrets (the database's password)
    are read here, inside the flow, from the home's file and the environment."""
    if settings is None:
        return load_settings(home)
    hidden = [name for name in SECRET_FIELDS if REDACTED in getattr(settings, name)]
    if not hidden:
        return settings
    loaded = load_settings(settings.home)
    return settings.model_copy(update={name: getattr(loaded, name) for name in hidden})


def prefect_environment(settings: Settings) -> dict[str, str]:
    """Environment variables Prefect needs for this installation, quiet and offline."""
    values = {
        "PREFECT_HOME": str(settings.prefect_home.resolve()),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_LOGGING_LEVEL": settings.log_level,
        "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
        "PREFECT_UI_ENABLED": "false" if settings.embedded else "true",
    }
    if settings.prefect_api_url:
        values["PREFECT_API_URL"] = settings.prefect_api_url
    else:
        values["PREFECT_SERVER_ALLOW_EPHEMERAL_MODE"] = "true"
        # The embedded API starts with the flow; on a busy 2-core server the default 20 s wait
        # for it was seen to run out.
        values["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "120"
    return values


def apply_prefect_environment(settings: Settings) -> None:
    """Point Prefect at this installation; call before Prefect is imported."""
    for key, value in prefect_environment(settings).items():
        # A variable the operator (or the test harness) already set wins, except the API URL
        # chosen in the settings file.
        if key == "PREFECT_API_URL":
            os.environ[key] = value
        else:
            os.environ.setdefault(key, value)

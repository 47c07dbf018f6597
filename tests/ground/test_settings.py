"""One settings object: the home's massar.toml, the environment on top, clear refusals."""

from __future__ import annotations

import pytest

from ground.errors import OperatorError
from ground.settings import load_settings, prefect_environment
from massar.home import init_home


def test_embedded_defaults_keep_everything_in_the_home(tmp_path):
    settings = init_home(tmp_path / "home")
    assert settings.embedded
    assert settings.timezone == "Africa/Casablanca"
    assert settings.resolved_database_url == f"sqlite:///{settings.home / 'massar.db'}"
    for folder in ("inbox", "archive", "warehouse", "quarantine", "reports", "exchange"):
        assert (settings.home / folder).is_dir()
    environment = prefect_environment(settings)
    assert environment["PREFECT_HOME"] == str(settings.home / "prefect")
    assert environment["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert environment["DO_NOT_TRACK"] == "1"
    assert "PREFECT_API_URL" not in environment


def test_file_values_and_environment_on_top(tmp_path, monkeypatch):
    home = tmp_path / "home"
    init_home(home)
    (home / "massar.toml").write_text(
        'approvers = ["Fatima Zahra", "Youssef"]\n'
        'prefect_api_url = "http://127.0.0.1:4200/api"\n'
        "[partners.cnss]\n"
        'host = "sftp.cnss.test"\n'
        "port = 2222\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("MASSAR_PARTNERS__CNSS__PORT", "2022")
    monkeypatch.setenv("MASSAR_DATABASE_URL", "postgresql+psycopg://massar@127.0.0.1/massar")
    monkeypatch.setenv("MASSAR_APPROVERS", '["Mallory"]')
    settings = load_settings(home)
    # Who may approve is approvers.toml's (ground/approvers.py): neither the file's old
    # 'approvers' line nor the environment is a setting any more.
    assert "approvers" not in settings.model_dump()
    assert settings.partners["cnss"].host == "sftp.cnss.test"
    assert settings.partners["cnss"].port == 2022  # the environment wins
    assert settings.resolved_database_url.startswith("postgresql+psycopg://")
    assert not settings.embedded
    assert prefect_environment(settings)["PREFECT_API_URL"] == "http://127.0.0.1:4200/api"


def test_home_from_environment(tmp_path, monkeypatch):
    home = tmp_path / "elsewhere"
    init_home(home)
    monkeypatch.setenv("MASSAR_HOME", str(home))
    assert load_settings().home == home.resolve()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("approvers = [", "is not valid TOML"),
        ('timezone = "Africa/Tiznit"', "The setting 'timezone' is not acceptable"),
        ('database_url = "mysql://x"', "The setting 'database_url' is not acceptable"),
        ("colour = 3", "The setting 'colour' is not acceptable"),
    ],
)
def test_bad_settings_are_one_sentence(tmp_path, content, expected):
    home = tmp_path / "home"
    init_home(home)
    (home / "massar.toml").write_text(content, encoding="utf-8")
    with pytest.raises(OperatorError, match=expected) as raised:
        load_settings(home)
    assert "\n" not in str(raised.value)


def test_missing_home_says_how_to_create_it(tmp_path):
    with pytest.raises(OperatorError, match="massar init"):
        load_settings(tmp_path / "nowhere")


def test_housekeeping_settings_from_file_and_environment(tmp_path, monkeypatch):
    home = tmp_path / "home"
    defaults = init_home(home).housekeeping
    assert defaults.flow_run_retention_days == 400
    assert defaults.flow_run_retention_by_flow == {"watch": 31}
    assert defaults.log_folders == []
    (home / "massar.toml").write_text(
        "[housekeeping]\n"
        "flow_run_retention_days = 200\n"
        'log_folders = ["/srv/massar-stack/logs"]\n'
        "[housekeeping.flow_run_retention_by_flow]\n"
        "watch = 7\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("MASSAR_HOUSEKEEPING__MIN_FREE_DISK_GB", "5")
    settings = load_settings(home).housekeeping
    assert settings.flow_run_retention_days == 200
    assert settings.flow_run_retention_by_flow == {"watch": 7}
    assert [str(p) for p in settings.log_folders] == ["/srv/massar-stack/logs"]
    assert settings.min_free_disk_gb == 5


@pytest.mark.parametrize(
    "content",
    [
        "[housekeeping]\nflow_run_retention_days = 0\n",
        "[housekeeping.flow_run_retention_by_flow]\nwatch = 0\n",
        "[housekeeping]\nlog_generations = 0\n",
    ],
)
def test_housekeeping_refuses_retentions_that_would_delete_everything(tmp_path, content):
    home = tmp_path / "home"
    init_home(home)
    (home / "massar.toml").write_text(content, encoding="utf-8")
    with pytest.raises(OperatorError, match="The setting 'housekeeping"):
        load_settings(home)

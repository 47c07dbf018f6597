"""The stack's environment files read the same by a shell (`set -a; . massar.env`, as the
README tells officers), by systemd's EnvironmentFile= and by the stack itself."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from ground.settings import Settings
from massar.stack import StackConfig, StackPaths, read_env_file, write_environment


def _written(tmp_path: Path) -> tuple[StackPaths, dict[str, str]]:
    paths = StackPaths(tmp_path / "stack")
    paths.secrets.mkdir(parents=True)
    config = StackConfig(
        pg_port=5433, prefect_port=4201, pg_superuser="postgres", service_user="massar"
    )
    _server, massar = write_environment(paths, config)
    return paths, massar


def _sourced(path: Path) -> dict[str, str]:
    """The environment a shell gets from ``set -a; . path; set +a``."""
    out = subprocess.run(
        ["bash", "-c", f'set -a; . "{path}"; set +a; env -0'],
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        check=True,
    ).stdout.decode()
    pairs = (item.partition("=") for item in out.split("\0") if item)
    return {key: value for key, _, value in pairs}


def test_a_sourced_massar_env_gives_the_values_the_stack_wrote(tmp_path: Path) -> None:
    paths, massar = _written(tmp_path)
    shell = _sourced(paths.massar_env)
    for key, value in massar.items():
        assert shell[key] == value, key
    assert read_env_file(paths.massar_env) == massar
    # The JSON list survives the shell: settings load from that environment.
    assert json.loads(shell["MASSAR_HOUSEKEEPING__LOG_FOLDERS"]) == [str(paths.logs)]


def test_settings_load_from_a_sourced_massar_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths, _ = _written(tmp_path)
    for key, value in _sourced(paths.massar_env).items():
        if key.startswith("MASSAR_"):
            monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.housekeeping.log_folders == [paths.logs]


def test_a_value_the_file_cannot_hold_is_refused(tmp_path: Path) -> None:
    from massar.stack import _env_file

    with pytest.raises(ValueError):
        _env_file({"X": "it's"})

"""The operations tests' homes."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.signing import make_test_certificate
from flows.nightly import nightly
from ground.settings import load_settings
from massar.home import init_home
from tests.harness.approvers import enrol_test_approvers

YEAR = "2023-2024"


@pytest.fixture
def exchange_home(night_home, province, tmp_path) -> tuple[Path, dict[str, str]]:
    return make_exchange_home(province, tmp_path / "home", night=night_home)


def make_exchange_home(
    province: Path, home: Path, night: Path | None = None, schools: int | None = None
) -> tuple[Path, dict[str, str]]:
    """A home whose warehouse holds the province (one night), with Massar's leaving records,
    a signing identity, the tests' approvers and a CNSS request in the fund's outbox (the
    embedded mode's folder); the environment the ``massar`` processes run with. ``night``: a
    home after that night (its control database in it) to copy; without it the night is run,
    on the control database the environment names (SQLite in the home by default), over the
    first ``schools`` school folders (else every one)."""
    if night is not None:
        shutil.copytree(night, home, symlinks=True)
        settings = load_settings(home)
    else:
        settings = init_home(home)
        folders = sorted(p for p in province.iterdir() if p.is_dir() and p.name[:5].isdigit())
        for school in folders[:schools]:
            shutil.copytree(school, settings.inbox / school.name)
        nightly(settings)
        (settings.home / "reference").mkdir(exist_ok=True)
        shutil.copy(province / "leavers.csv", settings.home / "reference" / "leavers.csv")
    now = datetime.now(UTC)
    key, certificate = make_test_certificate(
        settings.home / "keys", now - timedelta(days=1), now + timedelta(days=30), "Tiznit"
    )
    enrol_test_approvers(settings.home)
    outbox = settings.exchange / "cnss" / settings.partners["cnss"].remote_outbox
    outbox.mkdir(parents=True, exist_ok=True)
    request = province / "partners" / "cnss" / f"CNSS_SCOL_{YEAR}_0001.csv"
    shutil.copy(request, outbox / request.name)
    env = {
        "MASSAR_SIGNING_KEY": str(key),
        "MASSAR_SIGNING_CERTIFICATE": str(certificate),
        "MASSAR_APPROVAL_POLL_SECONDS": "1",
        "MASSAR_APPROVAL_TIMEOUT_HOURS": "0.25",  # a test that fails must not hang
    }
    return settings.home, env

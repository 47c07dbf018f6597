"""The campaigns' watch alerts against a real SMTP server on 127.0.0.1 (aiosmtpd): from N days
before a deadline a daily summary of the schools still missing items, after it the late schools
with their items, each once a day, and no pupil data in a message."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from connectors.school_files import read_submission
from ground.settings import Settings
from massar.demo import load_school_reference
from massar.home import init_home
from tasks.alerts import due_alerts, send_alerts
from tasks.coverage_alerts import coverage_alerts
from tasks.ingest import discover_inbox, ingest_school
from tests.harness.smtp import loopback_alerts

ZONE = ZoneInfo("Africa/Casablanca")
SCHOOL = "59819H"
MASSAR_CODE = re.compile(r"\b[A-Z]\d{9}\b")
CAMPAIGNS = """
[[campaign]]
id = "s1-2023"
school_year = "2023/2024"
period = "semester_1"
datasets = ["marks"]
opens = 2024-01-15
deadline = 2024-02-10
"""


def _local(*args: int) -> datetime:
    return datetime(*args, tzinfo=ZONE).astimezone(UTC)


@pytest.fixture(scope="module")
def campaign_home(province: Path, tmp_path_factory: pytest.TempPathFactory):
    """One college that sent everything but three first-semester NotesCC; the province's
    other schools (in its list) sent nothing. Returns the settings and the held-back items."""
    settings = init_home(tmp_path_factory.mktemp("coverage-alerts") / "home")
    (settings.home / "campaigns.toml").write_text(CAMPAIGNS, encoding="utf-8")
    load_school_reference(settings, province / "schools.csv")
    schools, _ = discover_inbox(province)
    held: list[str] = []
    for path in sorted(schools[SCHOOL]):
        relative = path.relative_to(province / SCHOOL)
        if len(held) < 3 and relative.parts[0] == "NotesCC":
            row = read_submission(path, school_code=SCHOOL).frame.row(0, named=True)
            if str(row["semester"]) == "1":
                held.append(f"marks {row['class_code']} {row['subject_code']} S1")
                continue
        target = settings.inbox / SCHOOL / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    dropped, _ = discover_inbox(settings.inbox)
    ingest_school(settings, SCHOOL, dropped[SCHOOL], settings.inbox / SCHOOL)
    return settings, held


@pytest.fixture
def settings(campaign_home, smtp, tmp_path) -> Settings:
    """The module's home with a fresh control database copy (sent alerts start empty)."""
    base, _ = campaign_home
    _, port = smtp
    home = tmp_path / "home"
    shutil.copytree(base.home, home)
    return base.model_copy(update={"home": home, "alerts": loopback_alerts(port)})


def test_a_daily_summary_starts_n_days_before_the_deadline(settings, smtp):
    mailbox, _ = smtp
    assert coverage_alerts(settings, _local(2024, 2, 2, 9, 0)) == []  # 8 days before: not yet
    alerts = coverage_alerts(settings, _local(2024, 2, 5, 9, 0))
    assert [a.key for a in alerts] == ["coverage-reminder:s1-2023:2024-02-05"]
    assert alerts[0].facts[SCHOOL].startswith("3 élément(s) manquant(s)")
    assert send_alerts(settings, alerts) == ["coverage-reminder:s1-2023:2024-02-05"]
    assert coverage_alerts(settings, _local(2024, 2, 5, 17, 0)) == []  # once a day
    assert [a.key for a in coverage_alerts(settings, _local(2024, 2, 6, 9, 0))] == [
        "coverage-reminder:s1-2023:2024-02-06"
    ]
    (message,) = mailbox.messages
    assert "s1-2023" in message["Subject"] and "2024-02-10" in message["Subject"]
    body = mailbox.bodies()[0]
    assert SCHOOL in body and "dans 5 jour(s)" in body
    assert not MASSAR_CODE.search(body)


def test_after_the_deadline_the_late_schools_are_listed_with_their_items(settings, smtp):
    mailbox, _ = smtp
    alerts = coverage_alerts(settings, _local(2024, 2, 12, 9, 0))
    assert [a.key for a in alerts] == ["coverage-late:s1-2023:2024-02-12"]
    send_alerts(settings, alerts)
    body = mailbox.bodies()[0]
    assert "en retard" in mailbox.messages[0]["Subject"]
    assert not MASSAR_CODE.search(body)
    # the school's line names exactly its three missing NotesCC
    line = next(x for x in body.splitlines() if x.startswith(f"- {SCHOOL} :"))
    assert line.startswith(f"- {SCHOOL} : 3 manquant(s) : ")
    # the schools that sent nothing are late too, said to have no classes yet
    assert "73121E" in body
    # 31 days after the deadline: no more e-mails
    assert coverage_alerts(settings, _local(2024, 3, 12, 9, 0)) == []


def test_the_late_e_mail_names_the_items_held_back(campaign_home, settings, smtp):
    _, held = campaign_home
    (alert,) = coverage_alerts(settings, _local(2024, 2, 11, 9, 0))
    items = alert.facts[SCHOOL].split(" : ", 1)[1].split(", ")
    assert sorted(items) == sorted(held)


def test_a_school_that_sent_everything_is_not_told(settings):
    (settings.home / "campaigns.toml").write_text(
        CAMPAIGNS.replace('["marks"]', '["classes", "students"]'), encoding="utf-8"
    )
    (alert,) = coverage_alerts(settings, _local(2024, 2, 12, 9, 0))
    assert SCHOOL not in alert.facts  # its lists came; the other schools' did not


def test_the_watch_checks_include_the_campaigns(settings, prefect_server):
    keys = [a.key for a in due_alerts(settings, _local(2024, 2, 5, 9, 0))]
    assert "coverage-reminder:s1-2023:2024-02-05" in keys


def test_a_broken_campaigns_file_is_one_sentence_a_day(settings):
    (settings.home / "campaigns.toml").write_text(
        CAMPAIGNS.replace("deadline = 2024-02-10", "deadline = 2024-01-10"), encoding="utf-8"
    )
    (alert,) = coverage_alerts(settings, _local(2024, 2, 5, 9, 0))
    assert alert.key == "coverage-campaigns-invalid:2024-02-05"
    assert "deadline 2024-01-10 is before the opening 2024-01-15" in alert.text_fr

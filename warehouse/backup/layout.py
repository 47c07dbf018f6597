"""What a backup archive holds and how its parts are named; the error every step raises.

A backup is a ``.tar.gz`` whose first member is ``MANIFEST.json`` (sha256 and size of every
other member, the published night and its table versions and row counts, the control
database's migration revision). The home's content sits under ``home/``, as in a home; a
PostgreSQL control database travels as a portable dump under ``control/``; the message log's
evidence export under ``evidence/``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy.engine import make_url

FORMAT = "massar-backup/1"
MANIFEST = "MANIFEST.json"
HOME = "home"
CONTROL = "control"
EVIDENCE = "evidence/message-log-evidence.json"
SETTINGS_FILE = "massar.toml"
SQLITE_FILE = "massar.db"
# Folders of a home always in a backup; staging/ holds the accepted rows the next night
# rebuilds a school from, so a home restored without it could not consolidate.
BACKED_UP = ("archive", "staging", "quarantine", "warehouse", "reports", "exchange")
# Left out: prefect/ and logs/ are operational history; keys/ are secrets and inbox/ files not
# yet ingested, each included on request.
LEFT_OUT = ("prefect", "logs", "keys", "inbox")


class BackupError(Exception):
    """A backup or restore that cannot be done; the message is one sentence saying why."""


def shown_url(url: str) -> str:
    """A database URL as a person may see it: without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: show it as given
        return url


def remove_tree(path: Path) -> None:
    """Remove a staging folder, if any (what is left of a step cut short)."""
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)

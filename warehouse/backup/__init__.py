"""Backing up a home into one archive file, restoring it into a new home, and checking a home.

One module per job:

* :mod:`warehouse.backup.layout`: what a backup archive holds and how its parts are named;
* :mod:`warehouse.backup.make`: how a backup is made (``backup_home``);
* :mod:`warehouse.backup.restore`: how a backup is restored (``restore_home``);
* :mod:`warehouse.backup.portable_dump`: how a control database is written to and read from
  JSON lines (``dump_database``, ``load_database``);
* :mod:`warehouse.backup.home_check`: how a home is checked for consistency (``check_home``).

The names below are re-exported for the command line and other callers
(``from warehouse.backup import backup_home``); docs/backup.md describes the archive.
"""

from warehouse.backup.home_check import check_home
from warehouse.backup.layout import BackupError
from warehouse.backup.make import BackupReport, backup_home
from warehouse.backup.portable_dump import dump_database, load_database
from warehouse.backup.restore import RestoreReport, restore_home
from warehouse.control import head_revision

__all__ = [
    "BackupError",
    "BackupReport",
    "RestoreReport",
    "backup_home",
    "check_home",
    "dump_database",
    "head_revision",
    "load_database",
    "restore_home",
]

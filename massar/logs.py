"""The ``massar`` command's terminal: one line per log record, tracebacks in the error log.

A person at the terminal reads sentences; a developer reads tracebacks. Prefect's console
handler prints a task's or a flow's traceback on the terminal: :class:`TerminalLines` (which
the command puts in its place, in its own process and in the worker processes it starts,
through ``PREFECT_LOGGING_HANDLERS_CONSOLE_CLASS``) prints the first line of each record and
appends the rest — extra lines, the traceback — to ``<home>/logs/massar-errors.log``.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import traceback
from datetime import UTC, datetime
from pathlib import Path

from prefect.logging.handlers import PrefectConsoleHandler

ERROR_LOG = "massar-errors.log"
CONSOLE_CLASS = f"{__name__}.TerminalLines"


def error_log(home: Path | None = None) -> Path:
    """Where tracebacks go: ``<home>/logs/massar-errors.log`` (home: ``MASSAR_HOME`` or
    ./massar-home), or the temporary folder when the home has no ``logs/`` folder."""
    from ground.settings import resolve_home

    folder = resolve_home(home) / "logs"
    if not folder.is_dir():
        folder = Path(tempfile.gettempdir())
    return folder / ERROR_LOG


def append_error(text: str, home: Path | None = None) -> Path:
    """Append ``text`` under a dated header with the command line; returns the file."""
    path = error_log(home)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(f"--- {datetime.now(UTC).isoformat()} {' '.join(sys.argv)}\n")
        handle.write(text if text.endswith("\n") else text + "\n")
    return path


def log_exception(error: BaseException, home: Path | None = None) -> Path:
    """Write ``error``'s traceback to the error log; returns the file."""
    return append_error("".join(traceback.format_exception(error)), home)


class TerminalLines(PrefectConsoleHandler):
    """Prefect's console handler, one line per record: what a record carries beyond its first
    line (its traceback included) goes to the error log, and the line says where."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is Prefect's to report
            super().emit(record)
            return
        first, _, rest = message.partition("\n")
        if not (record.exc_info or rest.strip()):
            super().emit(record)
            return
        details = rest.strip("\n")
        if record.exc_info:
            details += "\n" + "".join(traceback.format_exception(*record.exc_info))
        try:
            where = append_error(f"{record.levelname} {record.name}: {first}\n{details}")
            note = f" (details in {where})"
        except OSError:
            note = ""
        # A copy: the other handlers (Prefect's API log) keep the whole record.
        line = logging.makeLogRecord(record.__dict__)
        line.msg, line.args, line.exc_info, line.exc_text = first + note, None, None, None
        super().emit(line)

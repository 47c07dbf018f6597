"""Kept only for tasks/inspect_file.py (another engineer's area while issue 13 is open): the
reading modules now live in connectors/reading/. Import from there, or the public names from
connectors.school_files; remove this file once tasks/inspect_file.py does."""

from connectors.reading.read_result import SheetLayout

__all__ = ["SheetLayout"]

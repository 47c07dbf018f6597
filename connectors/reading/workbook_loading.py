"""How a workbook's sheets are loaded: python-calamine, every worksheet as rows of cells at their
Excel positions, each sheet's dimensions checked before its cells are built (F006); a workbook
calamine cannot open is F001 (a panic of its Rust code included), one with a password F002."""

from __future__ import annotations

import io
from collections.abc import Callable

from python_calamine import CalamineWorkbook, PasswordError, SheetTypeEnum

from connectors.reading.cells import Rows
from connectors.reading.read_result import FileRejected
from connectors.reading.sniff import OLE_MAGIC
from connectors.reading.workbook_safety import check_biff, check_dimensions

Sheet = tuple[str, Rows]
"""A worksheet's name and its rows."""


def load_sheets(data: bytes, stop: Callable[[Rows], bool] | None = None) -> list[Sheet]:
    """The worksheets of a workbook as (name, rows), rows at their Excel positions (rows[0] is
    Excel row 1, column 0 is A), up to the first sheet for which `stop(rows)` is true.
    Raises F001/F002/F006."""
    if data.startswith(OLE_MAGIC):  # a BIFF .xls: its declared dimensions before calamine
        check_biff(data)
    try:
        book = CalamineWorkbook.from_filelike(io.BytesIO(data))
    except PasswordError as exc:
        raise FileRejected("F002", "password-protected workbook") from exc
    except Exception as exc:
        if "password" in str(exc).lower():
            raise FileRejected("F002", "password-protected workbook") from exc
        raise FileRejected("F001", _calamine_detail(exc)) from exc
    except BaseException as exc:
        if not _calamine_panic(exc):
            raise
        raise FileRejected("F001", _calamine_detail(exc)) from exc
    sheets: list[Sheet] = []
    with book:
        for index, meta in enumerate(book.sheets_metadata):
            if meta.typ != SheetTypeEnum.WorkSheet:
                continue
            try:
                sheet = book.get_sheet_by_index(index)
                end = sheet.end
                if end is not None:
                    check_dimensions(end[0] + 1, end[1] + 1)
                rows = sheet.to_python(skip_empty_area=False) if end is not None else []
            except FileRejected:
                raise
            except PasswordError as exc:
                raise FileRejected("F002", "password-protected workbook") from exc
            except Exception as exc:
                raise FileRejected("F001", _calamine_detail(exc)) from exc
            except BaseException as exc:
                if not _calamine_panic(exc):
                    raise
                raise FileRejected("F001", _calamine_detail(exc)) from exc
            sheets.append((meta.name, rows))
            if stop is not None and stop(rows):
                break
    return sheets


def _calamine_panic(exc: BaseException) -> bool:
    """A panic of python-calamine's Rust code, which reaches Python as pyo3's PanicException: a
    BaseException, so no `except Exception` (the ingest's included) stops it. calamine 0.37
    panics on an .xls cut short in its last sectors (slice bounds in its compound-file reader),
    an upload interrupted near its end; the workbook object is dropped with the panic."""
    cls = type(exc)
    return cls.__name__ == "PanicException" and cls.__module__ == "pyo3_runtime"


def _calamine_detail(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"workbook parse error: {text[:80]}"

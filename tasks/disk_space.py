"""A full disk is a sentence naming the folder and the space needed, never a traceback.

Before writing much, a step checks the free space of the folder it writes into against what it
is about to write (:func:`ensure_space`); a write that still runs out of space (the estimate was
short, another process filled the disk) is caught by :func:`disk_guarded` around the flow and
told the same way. Nothing half-written is kept by the steps themselves: the archive and the
staging write to a temporary name and rename, a Delta table version exists only once its log
entry is committed, a night is published only once every table is written, a submission is
recorded only after its rows are staged (a registered one is done again by the next ingest).
"""

from __future__ import annotations

import errno
import functools
import inspect
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ground.errors import OperatorError
from ground.settings import Settings, flow_settings

F = TypeVar("F", bound=Callable[..., Any])
MARGIN = 4 * 1024 * 1024  # what a step keeps free besides its own estimate
# A batch's files (XML, CSV, signatures, manifest, review list) against the request's bytes:
# about 6 on the generated requests; 20 leaves room for requests of short lines.
BATCH_BYTES_PER_REQUEST_BYTE = 20
FULL_TEXTS = ("no space left on device", "database or disk is full", "os error 28", "disk full")


class DiskFull(OperatorError):
    """The disk holding a folder of the home has not the space a step needs."""


def megabytes(size: float) -> str:
    return f"{size / 1e6:,.1f} MB"


def free_bytes(folder: Path) -> int:
    """Free bytes on the disk holding ``folder`` (or its nearest existing parent)."""
    place = folder
    while not place.exists() and place != place.parent:
        place = place.parent
    return shutil.disk_usage(place).free


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def full_sentence(what: str, folder: Path, needed: int, free: int | None = None) -> str:
    free = free_bytes(folder) if free is None else free
    return (
        f"{what} stopped: the disk holding {folder} is full ({megabytes(free)} free, about "
        f"{megabytes(needed + MARGIN)} needed); free at least "
        f"{megabytes(max(needed + MARGIN - free, MARGIN))} on that disk (old backups, "
        "files outside the home; 'massar housekeeping' rotates the logs), then run it again: "
        "nothing half-written was kept."
    )


def ensure_space(folder: Path, needed: int, what: str) -> None:
    """Raise :class:`DiskFull` when ``folder``'s disk has less than ``needed`` bytes (plus a
    margin) free."""
    free = free_bytes(folder)
    if free < needed + MARGIN:
        raise DiskFull(full_sentence(what, folder, needed, free))


def is_disk_full(error: BaseException) -> bool:
    """An error that means "no space left", whichever library raised it."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(text in str(current).lower() for text in FULL_TEXTS):
            return True
        current = current.__cause__ or current.__context__
    return False


def disk_guarded(
    what: str,
    folders: Callable[[Settings], list[Path]],
    needed: Callable[[Settings], int] = lambda settings: 0,
) -> Callable[[F], F]:
    """Decorate a flow function (under ``@recorded``): before its body, the first of
    ``folders`` must have ``needed`` bytes free; a disk found full during the body becomes
    :class:`DiskFull` naming the folder (the one the failed write was in, else the fullest of
    ``folders``) and the estimate."""

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            arguments = signature.bind(*args, **kwargs).arguments
            # the flow's parameter carries no secrets: read them again (ground.settings)
            settings = flow_settings(arguments.get("settings"), arguments.get("home"))
            places = folders(settings)
            estimate = needed(settings)
            if estimate:
                ensure_space(places[0], estimate, what)
            try:
                return fn(*args, **kwargs)
            except DiskFull:
                raise
            except Exception as error:
                if not is_disk_full(error):
                    raise
                place = _failed_folder(error, places) or min(places, key=free_bytes)
                raise DiskFull(full_sentence(what, place, estimate)) from error

        return run  # type: ignore[return-value]

    return decorate


def _failed_folder(error: BaseException, places: list[Path]) -> Path | None:
    """The folder of ``places`` the failed write was in, when the error says."""
    name = getattr(error, "filename", None)
    if not name:
        return None
    path = Path(str(name)).resolve()
    for place in places:
        if path.is_relative_to(place.resolve()):
            return place
    return None


# The folders each flow writes into, and what it is about to write (estimates).


def ingest_folders(settings: Settings) -> list[Path]:
    return [settings.archive, settings.staging, settings.quarantine, settings.reports]


def warehouse_folders(settings: Settings) -> list[Path]:
    return [settings.warehouse, settings.reports, settings.exchange]


def exchange_folders(settings: Settings) -> list[Path]:
    return [settings.exchange]


def consolidation_estimate(settings: Settings) -> int:
    """A night writes the tables of the schools it brings up to date: at most about the
    staged rows (Parquet in both)."""
    return folder_bytes(settings.staging)


def evaluation_estimate(settings: Settings) -> int:
    """The result tables are rewritten for the years evaluated: about a tenth of the
    warehouse (the marks they are computed from are most of it)."""
    return folder_bytes(settings.warehouse) // 10


# A fund's exchange: a batch prepared whole or not at all, a delivery told in one sentence.


def batch_prepared_whole(fn: F) -> F:
    """Decorate ``prepare_batch(settings, partner, request_path, ...)``: before it, the disk of
    ``exchange/<partner>/batches/`` must have room for the batch (estimated from the request's
    size); when it fails (a disk found full, anything else), the batch folders it created and
    no batch was recorded for are removed, so no half-written file or manifest stays behind;
    a full disk is :class:`DiskFull` naming that folder and the space needed."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        arguments = signature.bind(*args, **kwargs).arguments
        settings, partner = arguments["settings"], arguments["partner"]
        request = Path(arguments["request_path"])
        batches = settings.exchange / partner / "batches"
        what = f"The preparation of the answer to {partner.upper()}'s request {request.name}"
        needed = BATCH_BYTES_PER_REQUEST_BYTE * request.stat().st_size
        ensure_space(batches, needed, what)
        before = set(batches.iterdir()) if batches.is_dir() else set()
        try:
            return fn(*args, **kwargs)
        except BaseException as error:
            new = (set(batches.iterdir()) if batches.is_dir() else set()) - before
            recorded = _recorded_batches(settings, [folder.name for folder in new])
            for folder in new:
                if folder.name not in recorded:
                    shutil.rmtree(folder, ignore_errors=True)
            untold = isinstance(error, Exception) and not isinstance(error, DiskFull)
            if untold and is_disk_full(error):
                raise DiskFull(full_sentence(what, batches, needed)) from error
            raise

    return run  # type: ignore[return-value]


def delivery_told_when_full(fn: F) -> F:
    """Decorate ``deliver_approved(settings, batch_id)``: a disk found full while the batch's
    files are written into the fund's inbox of the home (the embedded mode) is
    :class:`DiskFull` naming that folder and the batch's size; the file being written is not
    left half-written (the files delivered before it are recorded, the next run sends the
    rest, manifest last)."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        arguments = signature.bind(*args, **kwargs).arguments
        settings, batch_id = arguments["settings"], str(arguments["batch_id"])
        try:
            return fn(*args, **kwargs)
        except Exception as error:
            if isinstance(error, DiskFull) or not is_disk_full(error):
                raise
            partner = batch_id.split("-", 1)[0].lower()
            folder = settings.exchange
            if partner in settings.partners:
                folder = settings.exchange / partner / settings.partners[partner].remote_inbox
            batch = settings.exchange / partner / "batches" / batch_id
            names = [p.name for p in batch.iterdir()] if batch.is_dir() else []
            for name in names:  # the half-written copy (transport's temporary name)
                (folder / f".{name}.part").unlink(missing_ok=True)
            raise DiskFull(
                full_sentence(f"The delivery of batch {batch_id}", folder, folder_bytes(batch))
            ) from error

    return run  # type: ignore[return-value]


def _recorded_batches(settings: Settings, batch_ids: list[str]) -> set[str]:
    """Which of ``batch_ids`` the control database records (their folders are kept)."""
    if not batch_ids:
        return set()
    from sqlalchemy import select

    from warehouse.control import ControlDatabase, ExchangeBatch

    database = ControlDatabase(settings.resolved_database_url)
    try:
        with database.session() as session:
            return set(
                session.scalars(
                    select(ExchangeBatch.batch_id).where(ExchangeBatch.batch_id.in_(batch_ids))
                )
            )
    finally:
        database.dispose()

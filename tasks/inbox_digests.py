"""The inbox files' SHA-256, remembered from one ingest to the next by each file's status.

An unchanged night's pre-check must tell, for each of a province's ~31,000 files, whether it is
already a submission: by its SHA-256, as the control database knows files. Reading and hashing
them all is most of that night's ingest (~0.5 s on a quiet machine, more under load). A file
whose status is what it was when it was last hashed (same device, inode, size, modification
and change times, to the nanosecond) still holds the bytes that were hashed: writing to a file,
replacing it (a new inode) or renaming one over it changes its change time (ctime), which no
program can set back. So such a file's digest is taken from the memo, and every other file is
read and hashed again, as ``make``, ``rsync`` and ``git`` do.

One risk remains, the one git calls "racy": a file written again within the file system's
timestamp granularity of the moment it was hashed could keep an equal status. A digest is only
remembered for a file whose change time is older than ``SETTLED_NS`` before the hashing began;
younger files are hashed again next time.

One memo per school folder (``<home>/tmp/inbox-digests/<school code>.json``: ours, never backed
up), written whole and atomically by whoever saw all the school's files: the worker that
ingested the school (from the digests it computed anyway to register the files) or a pre-check
that found them all known. A memo lost, unreadable or of another format is ignored: the files
are hashed. Two runs writing one school's memo leave either's, and both hold true facts."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

FORMAT = 1
MEMO_FOLDER = "inbox-digests"
# A file changed less than this before the hashing began is hashed again next time (the
# racy window: coarse timestamps of some file systems are 1-2 s)
SETTLED_NS = 3_000_000_000

Status = tuple[int, int, int, int, int]  # device, inode, size, mtime_ns, ctime_ns


def sha256_file(path: Path) -> str:
    """The file's SHA-256, read in 64 KB blocks straight from its descriptor: no buffered
    reader and no megabyte buffer a file (each one mapped and unmapped by the allocator),
    which made hashing a province's 31 k small files cost 0.65 s instead of 0.47 s."""
    digest = hashlib.sha256()
    handle = os.open(path, os.O_RDONLY)
    try:
        while block := os.read(handle, 1 << 16):
            digest.update(block)
    finally:
        os.close(handle)
    return digest.hexdigest()


def file_status(found: os.stat_result) -> Status:
    return (found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns)


class SchoolDigests:
    """The digests of one school folder's files, from its memo when a file's status is
    unchanged. ``school_code`` must be a checked school code (it names the memo's file)."""

    def __init__(
        self, home: Path, school_code: str, now_ns: Callable[[], int] | None = None
    ) -> None:
        self.memo = home / "tmp" / MEMO_FOLDER / f"{school_code}.json"
        self.began_ns = (now_ns or time.time_ns)()
        self._known = self._load()
        self._seen: dict[str, tuple[Status, str]] = {}

    def _load(self) -> dict[str, tuple[Status, str]]:
        try:
            kept = json.loads(self.memo.read_text(encoding="utf-8"))
            if kept.get("format") != FORMAT:
                return {}
            return {
                name: (tuple(status), digest)  # type: ignore[misc]
                for name, (status, digest) in kept["files"].items()
            }
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return {}  # no memo yet, or not ours to trust: every file is hashed

    def _keep(self, name: str, status: Status, digest: str) -> None:
        if status[4] <= self.began_ns - SETTLED_NS:  # settled: outside the racy window
            self._seen[name] = (status, digest)

    def digest(self, path: Path) -> str:
        """``path``'s SHA-256: remembered if its status has not changed since it was hashed."""
        name = str(path)
        status = file_status(os.stat(path, follow_symlinks=False))
        kept = self._known.get(name)
        if kept is not None and kept[0] == status:
            self._keep(name, status, kept[1])
            return kept[1]
        digest = sha256_file(path)
        if file_status(os.stat(path, follow_symlinks=False)) == status:  # not written meanwhile
            self._keep(name, status, digest)
        return digest

    def remember(self, path: Path, before: os.stat_result, digest: str) -> None:
        """A digest the caller computed from ``path``'s bytes, read after ``before`` was taken:
        remembered if the file's status is still ``before`` (it did not change since)."""
        status = file_status(before)
        try:
            if file_status(os.stat(path, follow_symlinks=False)) == status:
                self._keep(str(path), status, digest)
        except OSError:  # removed meanwhile: nothing to remember
            pass

    def save(self) -> None:
        """Keep the digests of the files seen this time (the school's files: a removed file's
        are dropped), written whole and atomically: a memo cut short is never read as one.
        Nothing is written when the memo already says the same."""
        if self._seen == self._known:
            return
        self.memo.parent.mkdir(parents=True, exist_ok=True)
        partial = self.memo.with_name(f".{self.memo.name}.{os.getpid()}.tmp")
        partial.write_text(json.dumps({"format": FORMAT, "files": self._seen}), encoding="utf-8")
        os.replace(partial, self.memo)

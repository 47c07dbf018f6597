"""Names that come from outside (an SFTP server's listing, a folder schools or funds fill) before
any of them becomes a local path.

A name from outside is used only if it is a *bare name*: one file name, no folder part, nothing
that a path would read as a way out (``/``, ``\\``, ``..``), no NUL or control character, not
absolute, at most 255 bytes. Callers then match it against the full pattern they expect
(:func:`full_match`: a regular expression, or a glob whose ``*`` cannot cross a ``/`` because a
bare name has none) and place it with :func:`path_inside`, which resolves the target and refuses
anything outside the folder (a link already in the folder, for instance).
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
import unicodedata
from pathlib import Path

MAX_NAME_BYTES = 255
# Bidirectional embeddings, overrides and isolates: they make a name read as another one.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class OutsideName(ValueError):
    """A name from outside that may not become a path; the message is one sentence."""


def bare_name_problem(name: str) -> str | None:
    """Why ``name`` is not a bare file name (a few words), or None when it is one."""
    if not name:
        return "it is empty"
    if "\x00" in name:
        return "it contains a NUL byte"
    if "/" in name or "\\" in name:
        return "it contains a folder separator"
    if name in (".", "..") or ".." in name:
        return "it contains '..'"
    if any(unicodedata.category(c) == "Cc" or c in _BIDI_CONTROLS for c in name):
        return "it contains a control character"
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        return f"it is longer than {MAX_NAME_BYTES} bytes"
    return None


def is_bare_name(name: str) -> bool:
    """Whether ``name`` is one file name that cannot lead out of a folder."""
    return bare_name_problem(name) is None


def full_match(pattern: str | re.Pattern[str], name: str) -> bool:
    """Whether the bare name ``name`` matches ``pattern`` entirely: a compiled regular
    expression (``fullmatch``) or a case-sensitive glob. False for a name that is not bare."""
    if not is_bare_name(name):
        return False
    if isinstance(pattern, re.Pattern):
        return pattern.fullmatch(name) is not None
    return fnmatch.fnmatchcase(name, pattern)


def shown_name(name: str) -> str:
    """``name`` as a sentence may quote it: printable, at most 80 characters."""
    text = name.encode("unicode_escape", "backslashreplace").decode("ascii")
    return repr(text if len(text) <= 80 else text[:77] + "...")


def name_tag(name: str) -> str:
    """A local file name standing for a name that may not be used itself:
    ``unsafe-name-<sha256 of the name, 12 hex digits>``."""
    digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()
    return f"unsafe-name-{digest[:12]}"


def path_inside(folder: Path, name: str) -> Path:
    """``folder / name`` once ``name`` is a bare name and the resolved path stays directly in
    the resolved ``folder``; raises :class:`OutsideName` otherwise."""
    problem = bare_name_problem(name)
    if problem:
        raise OutsideName(f"The name {shown_name(name)} is not a plain file name ({problem}).")
    base = folder.resolve()
    target = (base / name).resolve()
    if target.parent != base:
        raise OutsideName(
            f"{folder / name} leads outside {folder} (a link?); nothing is written there."
        )
    return folder / name

"""A bad fund file is the fund's problem, not the run's: requests and acknowledgements the
platform cannot use are set aside, with a sentence, and the officers are alerted.

A file is set aside when its name is not a plain file name, when it is larger than the
partner's ``request_max_megabytes`` / ``acknowledgement_max_megabytes`` (judged from the
fund's listing: such a file is not fetched at all), or when it cannot be read as its profile
says (a malformed CSV or XML, text that is not UTF-8, a field longer than the CSV module
allows, an acknowledgement that breaks its schema). What is set aside goes to
``exchange/<partner>/rejected/``: the file itself when it was fetched, and always
``<name>.txt`` beside it, the sentence a person acts on with the file's size and sha256. The
names there are not fetched again (delete a file's ``.txt`` to have it fetched again); the other
requests of the run are answered as usual.

The ``watch`` flow's checks (tasks/alerts.py) e-mail one alert per set-aside file, key
``fund-file-set-aside:<partner>:<name>:<sha256 of its note, 12 digits>``: partner, file name,
size and folder only, never the sentence (which names lines and columns of a file with
children's data).
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.exchange.file_error import ExchangeFileError
from connectors.exchange.profile import Profile
from connectors.exchange.request_file import parse_request
from connectors.outside_names import is_bare_name, name_tag, path_inside
from ground.settings import Settings
from tasks.alerts import Alert

log = logging.getLogger(__name__)

NOTE_SUFFIX = ".txt"
KINDS = {"request": "demande", "acknowledgement": "accusé de réception"}


def rejected_folder(settings: Settings, partner: str) -> Path:
    """``exchange/<partner>/rejected/`` of the home."""
    return settings.exchange / partner / "rejected"


def max_bytes(megabytes: float) -> int:
    """A setting in megabytes (10⁶ bytes, as the sentences print them) in bytes."""
    return int(megabytes * 1_000_000)


@dataclass(frozen=True)
class SetAside:
    """One fund file set aside: where it and its note are, and the note's sentence."""

    partner: str
    kind: str  # request | acknowledgement
    name: str  # the local name (the fund's, or unsafe-name-<hash> for a name that is not one)
    sentence: str
    note: Path
    kept: Path | None  # the file itself, when it was fetched


def set_aside_names(settings: Settings, partner: str) -> set[str]:
    """The names already set aside for ``partner`` (not to be fetched again)."""
    folder = rejected_folder(settings, partner)
    if not folder.is_dir():
        return set()
    return {
        entry.name[: -len(NOTE_SUFFIX)]
        for entry in os.scandir(folder)
        if entry.name.endswith(NOTE_SUFFIX) and entry.is_file(follow_symlinks=False)
    }


def set_aside(
    settings: Settings,
    partner: str,
    kind: str,
    name: str,
    sentence: str,
    *,
    data: bytes | None = None,
    size: int | None = None,
    received: Path | None = None,
) -> SetAside:
    """Set a fund's file aside in :func:`rejected_folder`: its bytes ``data`` (when fetched)
    under its name, and the note ``<name>.txt`` with ``sentence``. ``received`` is the copy in
    ``received/``; it is removed when it holds these bytes. The sentence is logged."""
    folder = rejected_folder(settings, partner)
    folder.mkdir(parents=True, exist_ok=True)
    local = name if is_bare_name(name) and not name.startswith(".") else name_tag(name)
    kept = None
    if data is not None:
        kept = path_inside(folder, local)
        temporary = folder / f".{local}.part"
        temporary.write_bytes(data)
        os.replace(temporary, kept)
        if received is not None and received.is_file() and received.read_bytes() == data:
            received.unlink()
    size = len(data) if data is not None else size
    digest = hashlib.sha256(data).hexdigest() if data is not None else "not fetched"
    facts = [
        f"partner: {partner}",
        f"kind: {kind}",
        f"name given by the fund: {name!r}" if local != name else f"file: {name}",
        f"size: {size if size is not None else 'unknown'} bytes",
        f"sha256: {digest}",
        f"set aside at: {datetime.now(UTC).isoformat(timespec='seconds')}",
        "To have it fetched again (the fund corrected it under the same name), delete this note.",
    ]
    note = path_inside(folder, local + NOTE_SUFFIX)
    note.write_text(sentence + "\n\n" + "\n".join(facts) + "\n", encoding="utf-8")
    _warn(f"{sentence} It is set aside in {folder}.")
    return SetAside(partner, kind, local, sentence, note, kept)


def request_problem(profile: Profile, path: Path) -> str | None:
    """Why the request at ``path`` cannot be answered (one sentence), or None when it reads as
    its profile says. A reading failure of any kind is the file's sentence: one bad request
    must not stop the others."""
    try:
        parse_request(profile, path)
    except ExchangeFileError as error:
        return (
            f"The {profile.code} request {path.name} cannot be answered: {error} Ask the fund "
            "for a corrected file."
        )
    except Exception as error:  # the file, whatever it holds, is not the run's problem
        return (
            f"The {profile.code} request {path.name} could not be read ({type(error).__name__}); "
            "ask the fund for a corrected file."
        )
    return None


def set_aside_alerts(settings: Settings) -> list[Alert]:
    """One alert per note of every partner's :func:`rejected_folder` (the watch flow sends
    each once): partner, file, size, folder; never the sentence itself."""
    alerts = []
    for partner in sorted(settings.partners):
        folder = rejected_folder(settings, partner)
        if not folder.is_dir():
            continue
        for note in sorted(folder.glob(f"*{NOTE_SUFFIX}")):
            if note.is_symlink() or not note.is_file():
                continue
            name = note.name[: -len(NOTE_SUFFIX)]
            digest = hashlib.sha256(note.read_bytes()).hexdigest()[:12]
            facts: dict[str, Any] = {"partenaire": partner.upper(), "fichier": name}
            kept = folder / name
            if kept.is_file():
                facts["taille"] = f"{kept.stat().st_size} octets"
            facts["dossier"] = str(folder)
            alerts.append(
                Alert(
                    key=f"fund-file-set-aside:{partner}:{name}:{digest}",
                    kind="fund_file_set_aside",
                    subject=(
                        f"[Massar {settings.province}] Fichier de la {partner.upper()} mis de "
                        f"côté : {name}"
                    ),
                    text_fr=(
                        f"Un fichier envoyé par la {partner.upper()} ne peut pas être traité ; "
                        f"il est mis de côté dans {folder}, avec la raison dans {note.name}. "
                        "Les autres demandes sont traitées. Demandez à la caisse un fichier "
                        "corrigé."
                    ),
                    text_ar=(
                        f"ملف مرسل من {partner.upper()} لا يمكن معالجته؛ وُضع جانباً في {folder} "
                        f"مع السبب في {note.name}."
                    ),
                    facts=facts,
                )
            )
    return alerts


def _warn(sentence: str) -> None:
    try:
        from prefect import get_run_logger

        get_run_logger().warning(sentence)
    except Exception:  # outside a run (tests of the plain functions)
        log.warning(sentence)

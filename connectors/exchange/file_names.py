"""The names of exchange files: a batch's files (sequence numbered per fund and school year),
the fund's acknowledgement, and the school year as file names write it."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from connectors.exchange.profile import Profile
from connectors.exchange.registry import profile_for

_FILE_NAME = re.compile(
    r"^MEN_(?P<fund>[A-Z]+)_SCOL_(?P<first>\d{4})-(?P<second>\d{4})_(?P<sequence>\d{6})"
    r"(?P<kind>\.xml|\.csv|\.csv\.p7s|_manifest\.json)$"
)
_KINDS = {".xml": "xml", ".csv": "csv", ".csv.p7s": "csv_signature", "_manifest.json": "manifest"}


@dataclass(frozen=True)
class BatchFileNames:
    """The names of the files of one batch (sequence numbered per fund and school year)."""

    xml: str
    csv: str
    csv_signature: str
    manifest: str

    def all(self) -> tuple[str, str, str, str]:
        return (self.xml, self.csv, self.csv_signature, self.manifest)


def batch_file_names(profile: Profile, school_year: str, sequence: int) -> BatchFileNames:
    """``MEN_CNSS_SCOL_2024-2025_000001.xml`` and its ``.csv``, ``.csv.p7s``, manifest."""
    if not 1 <= sequence <= 999_999:
        raise ValueError(f"The sequence number {sequence} is not between 1 and 999999.")
    stem = f"MEN_{profile.code}_SCOL_{school_year_tag(school_year)}_{sequence:06d}"
    return BatchFileNames(
        xml=f"{stem}.xml",
        csv=f"{stem}.csv",
        csv_signature=f"{stem}.csv.p7s",
        manifest=f"{stem}_manifest.json",
    )


def parse_batch_file_name(name: str) -> tuple[Profile, str, int, str] | None:
    """``(profile, school_year, sequence, kind)`` of a batch file name, kind being ``xml``,
    ``csv``, ``csv_signature`` or ``manifest``; None for another name."""
    match = _FILE_NAME.match(name)
    if match is None or int(match["second"]) != int(match["first"]) + 1:
        return None
    try:
        profile = profile_for(match["fund"])
    except ValueError:
        return None
    school_year = f"{match['first']}/{match['second']}"
    return profile, school_year, int(match["sequence"]), _KINDS[match["kind"]]


def acknowledgement_file_name(profile: Profile, school_year: str, sequence: int) -> str:
    """The name the fund gives its acknowledgement: ``CNSS_ACK_SCOL_2024-2025_000001.xml``."""
    return f"{profile.code}_ACK_SCOL_{school_year_tag(school_year)}_{sequence:06d}.xml"


def school_year_tag(school_year: str) -> str:
    """``2024-2025`` for ``2024/2025`` (or ``2024-2025``), as in file names."""
    return canonical_school_year(school_year).replace("/", "-")


@functools.lru_cache(maxsize=64)
def canonical_school_year(school_year: str) -> str:
    """``2024/2025`` for ``2024/2025`` or ``2024-2025``; ValueError otherwise."""
    match = re.fullmatch(r"(\d{4})[/-](\d{4})", school_year.strip())
    if match is None or int(match[2]) != int(match[1]) + 1:
        raise ValueError(f"The school year {school_year!r} is not of the form YYYY/YYYY+1.")
    return f"{match[1]}/{match[2]}"


def acknowledgement_name_pattern(profile: Profile) -> re.Pattern[str]:
    """The names the fund's acknowledgements have (:func:`acknowledgement_file_name`), as a
    regular expression a whole name must match."""
    return re.compile(rf"{re.escape(profile.code)}_ACK_SCOL_\d{{4}}-\d{{4}}_\d{{6}}\.xml")

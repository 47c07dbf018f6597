"""What a fund's exchange profile declares: the request file's layout, the response CSV's
layout, namespaces, schemas and version (one ``Profile`` per fund, in ``connectors/<fund>/``).

The fund profiles import this module and nothing else of the exchange machinery.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from schemas.exchange import ChildAnswer


@dataclass(frozen=True)
class RequestLayout:
    """How the fund writes its request file."""

    file_name: str  # regular expression of the fund's request file names
    encoding: str
    delimiter: str
    line_ending: str  # what the fund writes; either is read
    date_format: str  # strptime format of the birth date
    date_label: str  # the same, as people write it
    columns: Mapping[str, str]  # ChildRequest field -> the fund's column header
    benefit_column: str
    benefits: Mapping[str, str]  # the fund's benefit code -> schemas.exchange benefit


@dataclass(frozen=True)
class CsvLayout:
    """How the platform writes the response CSV for this fund."""

    encoding: str
    delimiter: str
    line_ending: str
    date_format: str  # strftime format of the leaving date
    date_label: str
    header: Mapping[str, str]  # ChildAnswer.CONTRACTED field -> column label, in file order


@dataclass(frozen=True)
class Profile:
    """One fund's exchange profile, declared once (``connectors/<fund>/profile.py``)."""

    fund: str  # "cnss", "cmr": the settings' partner key
    fund_name: str
    version: str
    namespace: str  # of the response XML
    acknowledgement_namespace: str
    response_xsd: Path
    acknowledgement_xsd: Path
    request: RequestLayout
    response_csv: CsvLayout
    changes: tuple[str, ...] = ()  # one line per version, newest last

    def __post_init__(self) -> None:
        if not self.namespace.endswith(f":{self.version}"):
            raise ValueError(f"The namespace {self.namespace} does not end in the version.")
        if tuple(self.response_csv.header) != ChildAnswer.CONTRACTED:
            raise ValueError("The response CSV header must list exactly ChildAnswer.CONTRACTED.")

    @property
    def code(self) -> str:
        """The fund in file names and XML headers: ``CNSS``."""
        return self.fund.upper()

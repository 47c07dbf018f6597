"""The partner funds the platform answers: the one list that the settings, the command line,
the demo and the tests iterate.

A fund here is what an installation needs before any file is read: its key (the settings'
``[partners.<key>]`` table, the folder ``exchange/<key>/`` of the home, the package
``connectors/<key>/`` holding its exchange profile), its name, the convention that allows the
exchange and the default age window of each benefit it asks about. How its files are laid out
is the profile's (``connectors/<key>/profile.py``); tests/ground/test_funds.py ties the two.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class Fund:
    key: str  # lower case: "cnss"
    name: str
    legal_basis: str  # law 09-08: the convention under which pupils' data may be sent
    # Benefit (schemas/exchange.py) → the children's ages (inclusive) it concerns, by default;
    # an installation changes them in [partners.<key>] age_windows.
    age_windows: Mapping[str, tuple[int, int]]


FUNDS: tuple[Fund, ...] = (
    Fund(
        key="cnss",
        name="Caisse Nationale de Sécurité Sociale",
        legal_basis="Convention MEN-CNSS sur l'échange électronique des attestations de scolarité",
        age_windows=MappingProxyType({"family_allowance": (12, 21), "survivor_pension": (16, 21)}),
    ),
    Fund(
        key="cmr",
        name="Caisse Marocaine des Retraites",
        legal_basis="Convention MEN-CMR sur l'échange électronique des attestations de scolarité",
        age_windows=MappingProxyType({"orphan_pension": (16, 21), "family_allowance": (12, 21)}),
    ),
)
FUND_KEYS: tuple[str, ...] = tuple(fund.key for fund in FUNDS)


def fund(key: str) -> Fund:
    """The fund ``key`` (any case); ValueError naming the known funds otherwise."""
    for candidate in FUNDS:
        if candidate.key == key.lower():
            return candidate
    raise ValueError(f"No partner fund {key!r}; the funds are {', '.join(FUND_KEYS)}.")

"""Every fund's exchange profile, in the order of the fund registry (ground/funds.py)."""

from __future__ import annotations

from importlib import import_module

from connectors.exchange.profile import Profile
from ground.funds import FUND_KEYS


def all_profiles() -> tuple[Profile, ...]:
    """Every profile the platform knows (each fund's current version), in the order of the fund
    registry (ground/funds.py): the profile of fund ``key`` is ``connectors/<key>/profile.py``."""
    return tuple(import_module(f"connectors.{key}.profile").PROFILE for key in FUND_KEYS)


def profile_for(fund: str) -> Profile:
    """The profile of ``fund`` ("cnss" or "cmr", any case)."""
    for profile in all_profiles():
        if profile.fund == fund.lower():
            return profile
    known = ", ".join(p.fund for p in all_profiles())
    raise ValueError(f"No exchange profile for the fund {fund!r}; the profiles are {known}.")


def profile_for_namespace(namespace: str) -> Profile | None:
    """The profile whose response or acknowledgement namespace is ``namespace``."""
    for profile in all_profiles():
        if namespace in (profile.namespace, profile.acknowledgement_namespace):
            return profile
    return None

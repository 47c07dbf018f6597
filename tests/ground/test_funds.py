"""The fund registry (ground/funds.py) is the one list of partner funds: the settings, the
command line, the demo and every fund's exchange profile agree with it."""

from __future__ import annotations

import pytest

from connectors.exchange.registry import all_profiles, profile_for
from ground.funds import FUND_KEYS, FUNDS, fund
from ground.settings import Settings
from schemas import exchange


def test_every_fund_has_a_profile_and_every_profile_is_a_fund_in_the_same_order():
    assert tuple(profile.fund for profile in all_profiles()) == FUND_KEYS
    for registered in FUNDS:
        assert profile_for(registered.key).fund_name == registered.name


@pytest.mark.parametrize("key", FUND_KEYS)
def test_a_fund_has_an_age_window_for_each_benefit_its_requests_name(key):
    benefits = set(profile_for(key).request.benefits.values())
    known = {exchange.FAMILY_ALLOWANCE, exchange.SURVIVOR_PENSION, exchange.ORPHAN_PENSION}
    assert benefits <= known
    assert set(fund(key).age_windows) == benefits
    for low, high in fund(key).age_windows.values():
        assert 0 < low <= high


def test_the_default_settings_have_one_partner_per_fund_with_its_convention():
    settings = Settings()
    assert tuple(settings.partners) == FUND_KEYS
    for registered in FUNDS:
        partner = settings.partners[registered.key]
        assert partner.legal_basis == registered.legal_basis
        assert partner.age_windows == dict(registered.age_windows)


def test_a_fund_is_found_in_any_case_and_an_unknown_one_is_named_with_the_known_ones():
    assert fund("CNSS").key == "cnss"
    with pytest.raises(ValueError, match="cnss, cmr"):
        fund("amo")

"""The collector pause gives the collector back as it found it, whether the block ends or
raises, and leaves it off when it was off."""

from __future__ import annotations

import gc

import pytest

from ground.collector import collector_paused


def test_the_collector_is_off_inside_and_as_before_after() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(KeyError), collector_paused():
        raise KeyError("the block fails")
    assert gc.isenabled()


def test_a_collector_off_before_stays_off() -> None:
    gc.disable()
    try:
        with collector_paused(), collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()

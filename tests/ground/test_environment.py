"""A variable set for a block is restored after it: its earlier value, or its absence, also
when the block fails."""

from __future__ import annotations

import os

import pytest

from ground.environment import environment_variable

NAME = "MASSAR_TEST_ENVIRONMENT_VARIABLE"


def test_a_variable_absent_before_is_absent_after_even_when_the_block_fails(monkeypatch):
    monkeypatch.delenv(NAME, raising=False)
    with pytest.raises(RuntimeError), environment_variable(NAME, "inside"):
        assert os.environ[NAME] == "inside"
        raise RuntimeError("the block fails")
    assert NAME not in os.environ


def test_a_variable_set_before_gets_its_value_back(monkeypatch):
    monkeypatch.setenv(NAME, "before")
    with environment_variable(NAME, "inside"):
        assert os.environ[NAME] == "inside"
    assert os.environ[NAME] == "before"

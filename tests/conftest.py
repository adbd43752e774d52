"""Fixtures shared by the tests."""

from __future__ import annotations

import pytest

from tests.helpers import PodHarness


@pytest.fixture
def harness():
    """The PodHarness class (a factory: call it with PodConfig fields)."""
    return PodHarness

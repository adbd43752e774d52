"""Fixtures shared by the tests."""

from __future__ import annotations

import pytest

from tests.helpers import PodHarness


@pytest.fixture
def harness():
    """The PodHarness class (a factory: call it with PodConfig fields)."""
    return PodHarness


@pytest.fixture(scope="session")
def ray_executor():
    """A RayExecutor on one local Ray instance with 2 CPUs (the CI machine's), shared by every test that needs Ray:
    starting one costs seconds. Skips when Ray is not installed."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'rlscale[ray]')")
    from rlscale.experiments.executors import make_executor

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield make_executor("ray")
    finally:
        ray.shutdown()

"""Fixtures shared by the tests."""

from __future__ import annotations

import pytest

from tests.helpers import PodHarness

# pytester: tests/test_skips.py runs a small inner session; tests.skips: the skipped tests listed by reason at the end
pytest_plugins = ["pytester", "tests.skips"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test on the shared Ray instance is slow (``-m "not slow"`` leaves them out): starting Ray takes
    seconds and its tasks more."""
    for item in items:
        if "ray_executor" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def harness():
    """The PodHarness class (a factory: call it with PodConfig fields)."""
    return PodHarness


@pytest.fixture(scope="session")
def ray_executor():
    """A RayExecutor on one local Ray instance with 2 CPUs (the CI machine's), shared by every test that needs Ray:
    starting one costs seconds. Skips when Ray is not installed."""
    from tests.skips import NO_RAY  # after pytest_plugins has loaded it (imported earlier, pytest would warn)

    ray = pytest.importorskip("ray", reason=NO_RAY)
    from rlscale.experiments.executors import make_executor

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield make_executor("ray")
    finally:
        ray.shutdown()

"""Every scenario file shipped in envs/ loads (strict parsing: a renamed field or a bad value fails here, not in the
middle of someone's training run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlscale.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", sorted((ROOT / "envs").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_scenario_loads_under_its_file_name(path):
    scenario = load_scenario(path)
    assert scenario.name == path.stem  # runs, models and reports are named after it
    assert scenario.duration_s > 0

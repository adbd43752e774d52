"""A tuning search fans its (setting, seed) runs out on an executor: the trials are the same on one process, a
pool and Ray, and a resumed search reuses every stored run."""

from __future__ import annotations

import pytest
import yaml

from rlscale.experiments.cells import CellStore
from rlscale.experiments.executors import LocalExecutor
from rlscale.scenario import ScenarioConfig
from rlscale.tuning import tune
from tests.helpers import RefusingExecutor, ramp_scenario

pytestmark = pytest.mark.slow  # tuning searches on a pool and on Ray

with open("agents/hpa-prefill-backlog.yaml") as f:
    MANIFEST = yaml.safe_load(f)
SEEDS = [0, 1]


def short_ramp() -> ScenarioConfig:
    """8 to 20 req/s over 10 minutes: short, and the target still decides cost and attainment."""
    return ramp_scenario(to_rate_per_s=20.0, start_s=60, end_s=600)


def search(executor, **kwargs):
    return tune(MANIFEST, short_ramp(), SEEDS, n_trials=4, slo_attainment=0.9, batch=2, executor=executor, **kwargs)


@pytest.fixture(scope="module")
def serial():
    return search(LocalExecutor(1))


def test_a_pool_and_ray_find_the_same_trials_as_one_process(serial, ray_executor):
    assert len(serial.trials) == 4
    assert len({t.cost_usd for t in serial.trials}) > 1  # the target matters on this scenario: a real comparison
    with LocalExecutor(2) as pool:
        assert search(pool).trials == serial.trials
    assert search(ray_executor).trials == serial.trials


def test_a_resumed_search_reuses_every_stored_run(serial, tmp_path):
    cells = CellStore(tmp_path / "cells")
    first = search(LocalExecutor(1), cells=cells)
    assert first.trials == serial.trials
    assert len(list((tmp_path / "cells").glob("*.json"))) == 4 * len(SEEDS)
    again = search(RefusingExecutor(), cells=cells, resume=True)
    assert again.trials == serial.trials and again.skipped == 4 * len(SEEDS)


def test_a_longer_resumed_search_runs_only_the_new_trials(serial, tmp_path):
    cells = CellStore(tmp_path / "cells")
    search(LocalExecutor(1), cells=cells)
    longer = tune(
        MANIFEST, short_ramp(), SEEDS, n_trials=6, slo_attainment=0.9, batch=2, executor=LocalExecutor(1),
        cells=cells, resume=True,
    )  # fmt: skip
    assert longer.trials[:4] == serial.trials and len(longer.trials) == 6
    assert longer.skipped == 4 * len(SEEDS)
    assert len(list((tmp_path / "cells").glob("*.json"))) == 6 * len(SEEDS)


def test_batch_must_be_positive():
    with pytest.raises(ValueError, match="batch"):
        tune(MANIFEST, short_ramp(), SEEDS, n_trials=1, batch=0)

"""Tuning: knobs edit the manifest, and the search returns the cheapest setting that meets the SLO."""

from __future__ import annotations

import optuna
import pytest
import yaml

from rlscale.hpa.spec import HPASpec
from rlscale.scenario import ScenarioConfig
from rlscale.tuning import evaluate, knobs_for, tune, with_values

with open("agents/hpa-prefill-backlog.yaml") as f:
    MANIFEST = yaml.safe_load(f)
TARGETS = [1.0, 3.0, 10.0, 30.0, 100.0]


def ramp() -> ScenarioConfig:
    return ScenarioConfig.model_validate({
        "fleet": {"replicas": 1, "lifecycle": {"node_provisioning": {"kind": "fixed", "seconds": 30.0}}},
        "workload": {"arrival": {"process": "ramp", "from_rate_per_s": 8.0, "to_rate_per_s": 24.0,
                                 "start_s": 120, "end_s": 2400},
                     "lengths": {"kind": "fixed", "prompt_tokens": 300, "output_tokens": 120}},
        "duration_s": 2400,
    })  # fmt: skip


def test_knobs_write_a_valid_manifest():
    knobs = knobs_for(MANIFEST)
    assert [k.name for k in knobs] == [
        "target/jetstream_prefill_backlog_size", "scale_down/stabilization_s", "scale_down/percent_per_min",
    ]  # fmt: skip
    doc = with_values(MANIFEST, knobs, {knobs[0].name: 7.25, knobs[1].name: 120.0, knobs[2].name: 50.0})
    spec = HPASpec.from_manifest(doc)
    assert spec.metrics[0].average_value_milli == 7250
    assert spec.behavior.scale_down.stabilization_window_seconds == 120
    assert spec.behavior.scale_down.policies[0].value == 50
    assert MANIFEST["spec"]["metrics"][0]["pods"]["target"]["averageValue"] == "5"  # the original is untouched


def test_search_returns_the_cheapest_feasible_target():
    sc, seeds = ramp(), [0, 1]
    knobs = knobs_for(MANIFEST, behaviour=False)
    brute = [
        evaluate(with_values(MANIFEST, knobs, {knobs[0].name: t}), sc, seeds, 0.85, {knobs[0].name: t}) for t in TARGETS
    ]
    feasible = [e for e in brute if e.feasible]
    assert feasible and len(feasible) < len(brute)  # the SLO binds somewhere on this grid
    expected = min(feasible, key=lambda e: e.cost_usd)
    grid = optuna.samplers.GridSampler({knobs[0].name: TARGETS}, seed=0)
    result = tune(MANIFEST, sc, seeds, n_trials=len(TARGETS), slo_attainment=0.85, behaviour=False, sampler=grid)
    assert result.best.values == expected.values
    assert result.best.cost_usd == pytest.approx(expected.cost_usd)
    assert HPASpec.from_manifest(result.best_manifest).metrics[0].average_value_milli == round(
        expected.values[knobs[0].name] * 1000
    )


def test_says_none_when_nothing_meets_the_slo():
    sc = ramp()
    result = tune(MANIFEST, sc, [0], n_trials=2, slo_attainment=1.01 - 1e-9, behaviour=False)
    assert result.best is None and result.best_manifest is None and len(result.trials) == 2


def test_tune_cli_writes_trials_and_says_when_nothing_passes(tmp_path):
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "rlscale", "tune", "--agent", "agents/hpa-prefill-backlog.yaml", "--scenario",
         "envs/single-pod.yaml", "--seeds", "0", "--trials", "2", "--duration", "120", "--slo-attainment", "0.5",
         "--no-behaviour", "--out", str(tmp_path)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "cheapest setting meeting 50%" in out.stdout
    assert len((tmp_path / "trials.csv").read_text().splitlines()) == 1 + 2
    tuned = yaml.safe_load((tmp_path / "hpa-prefill-backlog.tuned.yaml").read_text())
    HPASpec.from_manifest(tuned)  # a manifest to paste back

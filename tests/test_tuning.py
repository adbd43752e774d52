"""Tuning: knobs edit the manifest, and the search returns the cheapest setting that meets the SLO."""

from __future__ import annotations

import optuna
import pytest
import yaml

from rlscale.hpa.spec import HPASpec
from rlscale.scenario import ScenarioConfig
from rlscale.tuning import evaluate, knobs_for, tune, with_values, write_outputs
from tests.helpers import ramp_scenario

with open("agents/hpa-prefill-backlog.yaml") as f:
    MANIFEST = yaml.safe_load(f)
TARGETS = [1.0, 3.0, 10.0, 30.0, 100.0]


def ramp() -> ScenarioConfig:
    return ramp_scenario()


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


@pytest.mark.slow
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


def test_says_none_when_nothing_meets_the_slo_and_keeps_the_closest_saying_it_misses(tmp_path):
    sc = ramp()
    result = tune(MANIFEST, sc, [0], n_trials=2, slo_attainment=1.01 - 1e-9, behaviour=False)
    assert result.best is None and result.best_manifest is None and len(result.trials) == 2
    top = max(t.slo_attainment for t in result.trials)
    assert result.closest is not None and result.closest.slo_attainment == top
    files = write_outputs(result, tmp_path, "hpa-prefill-backlog", 0.99, "backlog on ramp")
    assert "tuned" not in files  # nothing to apply as tuned
    text = files["closest"].read_text()
    assert "no setting met 99%" in text and "it misses the objective" in text and f"{top:.2%}" in text
    closest = HPASpec.from_manifest(yaml.safe_load(text))
    target = next(iter(result.closest.values.values()))
    assert closest.metrics[0].average_value_milli == round(float(f"{target:.4g}") * 1000)  # written to 4 digits


@pytest.mark.slow
def test_tune_cli_writes_trials_and_the_manifest_and_logs_the_search_once(tmp_path):
    import subprocess
    import sys

    args = [
        sys.executable, "-m", "rlscale", "tune", "--agent", "agents/hpa-prefill-backlog.yaml", "--scenario",
        "envs/single-pod.yaml", "--seeds", "0", "--trials", "2", "--duration", "120", "--slo-attainment", "0.5",
        "--no-behaviour", "--out", str(tmp_path / "out"), "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
    ]  # fmt: skip
    out = subprocess.run(args, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "cheapest setting meeting 50%" in out.stdout
    folder = tmp_path / "out"
    assert len((folder / "trials.csv").read_text().splitlines()) == 1 + 2
    assert (folder / "trials.png").is_file()
    tuned = yaml.safe_load((folder / "hpa-prefill-backlog.tuned.yaml").read_text())
    HPASpec.from_manifest(tuned)  # a manifest to paste back

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("tune-single-pod").experiment_id])
    assert run.info.status == "FINISHED" and run.data.params["trials"] == "2"
    assert len(client.get_metric_history(run.info.run_id, "trial/cost_usd")) == 2
    target = tuned["spec"]["metrics"][0]["pods"]["target"]["averageValue"]
    assert float(run.data.params["best.target/jetstream_prefill_backlog_size"]) == pytest.approx(float(target), 1e-3)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"trials.csv", "trials.png", "hpa-prefill-backlog.tuned.yaml"} <= artifacts
    again = subprocess.run([*args, "--resume"], capture_output=True, text=True)  # nothing left to run
    assert again.returncode == 0, again.stderr
    assert "reused 2 finished run(s)" in again.stdout and f"MLflow run {run.info.run_id}" in again.stdout
    assert len(client.search_runs([run.info.experiment_id])) == 1  # not logged twice

"""The HPA through the whole loop: pods → scrape → adapter delay → HPA → deployments/scale → new pods."""

from __future__ import annotations

import math

import pytest

from rlscale.agents import load_agent
from rlscale.hpa.spec import HPASpec
from rlscale.policies.hpa import HPAPolicy, sample_name
from rlscale.scenario import ScenarioConfig
from rlscale.simulation import Simulation
from rlscale.specs.catalog import SpecError

STEP_AT_S = 300.0


class Recording(HPAPolicy):
    """The HPA, remembering what it saw and decided at each sync."""

    def __init__(self, spec):
        super().__init__(spec)
        self.log = []

    def recommend(self, state):
        desired = super().recommend(state)
        seen = state.metrics.pods_metric("jetstream_prefill_backlog_size")
        self.log.append((state.now_s, state.spec_replicas, dict(seen), desired))
        return desired


def backlog_hpa(target: str = "5", max_replicas: int = 10) -> HPASpec:
    return HPASpec.from_manifest({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "jetstream"},
                 "minReplicas": 1, "maxReplicas": max_replicas, "metrics": [{"type": "Pods", "pods": {
            "metric": {"name": "prometheus.googleapis.com|jetstream_prefill_backlog_size|gauge"},
            "target": {"type": "AverageValue", "averageValue": target}}}]},
    })  # fmt: skip


def step_scenario() -> ScenarioConfig:
    return ScenarioConfig.model_validate({
        "fleet": {"replicas": 1},
        "workload": {"arrival": {"process": "step", "steps": [[0, 2.0], [STEP_AT_S, 60.0]]},
                     "lengths": {"kind": "fixed", "prompt_tokens": 500, "output_tokens": 200}},
        "duration_s": 600,
    })  # fmt: skip


def test_first_scale_up_waits_for_the_pipeline_and_follows_the_legacy_rules():
    sim = Simulation.build(step_scenario())
    hpa = Recording(backlog_hpa())
    sim.attach(hpa)
    sim.run()
    first = next(entry for entry in hpa.log if entry[3] > entry[1])
    t, current, seen, desired = first
    # the backlog builds from t=300; the adapter shows samples 30 s late, scraped every 15 s, synced every 15 s
    assert STEP_AT_S + 30 < t <= STEP_AT_S + 30 + 15 + 15
    # before that, every sync saw a backlog the tolerance absorbs (0 < 5)
    assert all(d <= c for when, c, _, d in hpa.log if when < t)
    # legacy path (no behavior): ceil(current * usage / target), at most max(2 * current, 4)
    usage = sum(seen.values()) / len(seen)
    assert desired == min(math.ceil(current * usage / 5), max(2 * current, 4), 10)
    assert sim.fleet.scale_events[0].time_s == pytest.approx(t)


def test_no_scale_down_inside_the_stabilization_window():
    sim = Simulation.build(step_scenario().model_copy(update={"duration_s": 299.0}))
    sim.fleet.set_replicas(3)  # more than the light load needs
    hpa = Recording(backlog_hpa())
    sim.attach(hpa)
    sim.run()
    # a fresh HPA records the current size; the 5-minute window holds it (TestScaleDownStabilizeInitialSize)
    assert all(desired is None or desired >= 3 for _, _, _, desired in hpa.log)
    assert sim.fleet.desired == 3


def test_agent_files_load_and_errors_name_the_path(tmp_path):
    for name in ("prefill-backlog", "slots-used", "hbm", "combined"):
        assert isinstance(load_agent(f"agents/hpa-{name}.yaml"), HPAPolicy)
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\n"
        "spec: {scaleTargetRef: {kind: Deployment, name: x}, maxReplicas: 3, metrics: [{type: Pods, pods: "
        "{metric: {name: x}, target: {type: AverageValue, averageValue: nope}}}]}\n"
    )
    with pytest.raises(SpecError, match=r"bad.yaml: .*spec.metrics\[0\].pods.target.averageValue"):
        load_agent(bad)
    other = tmp_path / "other.yaml"
    other.write_text("kind: Deployment\n")
    with pytest.raises(SpecError, match="kind: expected HorizontalPodAutoscaler"):
        load_agent(other)


def test_adapter_metric_names_map_to_samples():
    assert sample_name("prometheus.googleapis.com|jetstream_slots_used_percentage|gauge") == (
        "jetstream_slots_used_percentage"
    )
    assert sample_name("memory_used_percentage") == "memory_used_percentage"

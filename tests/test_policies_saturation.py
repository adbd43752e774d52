"""llm-d's saturation analyzer: saturated replicas, spare-capacity triggers, safe scale-down, the transition guard."""

from __future__ import annotations

import pytest

from rlscale.agents import load_agent
from rlscale.pods import PodInfo, PodPhase
from rlscale.policies.base import ClusterState
from rlscale.policies.saturation import SaturationConfig, SaturationPolicy, analyze
from rlscale.scenario import ScenarioConfig
from rlscale.simulation import Simulation
from rlscale.specs.catalog import SpecError

DEFAULT = SaturationConfig()


class FakeMetrics:
    """A metrics API answering fixed per-pod values."""

    def __init__(self, values: dict[str, dict[str, float]]) -> None:
        self.values = values

    def pods_metric(self, name: str) -> dict[str, float]:
        return dict(self.values.get(name, {}))

    def external_metric(self, name: str) -> float | None:
        values = self.values.get(name)
        return sum(values.values()) / len(values) if values else None


def state(now: float, kv_percent: dict[str, float], queue: dict[str, float] | None = None, pending: int = 0):
    """Ready pods reporting JetStream's ``kv_cache_utilization_perc`` (0-100), plus ``pending`` starting pods."""
    pods = tuple(PodInfo(name) for name in kv_percent) + tuple(
        PodInfo(f"new-{i}", PodPhase.PENDING, ready=False) for i in range(pending)
    )
    queue = queue if queue is not None else dict.fromkeys(kv_percent, 0.0)
    metrics = FakeMetrics({"kv_cache_utilization_perc": kv_percent, "num_requests_waiting": queue})
    return ClusterState(now, len(pods), len(pods), pods, metrics)


def test_a_replica_is_saturated_at_the_kv_or_queue_threshold():
    a = analyze({"a": 0.80, "b": 0.5, "c": 0.3}, {"a": 0, "b": 5, "c": 1}, DEFAULT)
    assert a.saturated == {"a", "b"}  # KV >= 0.80; queue >= 5
    assert a.non_saturated == 1
    assert a.avg_spare_kv == pytest.approx(0.80 - 0.3) and a.avg_spare_queue == pytest.approx(5 - 1)
    assert not a.scale_up and not a.scale_down_safe  # plenty of spare, but one non-saturated replica is too few
    assert analyze({"a": 0.79, "b": 0.1}, {"a": 4, "b": 0}, DEFAULT).saturated == frozenset()
    everything = analyze({"a": 0.9, "b": 0.95}, {}, DEFAULT)
    assert everything.non_saturated == 0 and everything.scale_up  # no spare anywhere


def test_scale_up_triggers_on_kv_spare_or_on_queue_spare():
    by_kv = analyze({"a": 0.75, "b": 0.72}, {"a": 0, "b": 0}, DEFAULT)
    assert by_kv.avg_spare_kv == pytest.approx((0.05 + 0.08) / 2) and by_kv.avg_spare_queue == 5
    assert by_kv.scale_up  # 0.065 < 0.10
    by_queue = analyze({"a": 0.2, "b": 0.2}, {"a": 3, "b": 2}, DEFAULT)
    assert by_queue.avg_spare_queue == pytest.approx(2.5) and by_queue.scale_up  # 2.5 < 3
    calm = analyze({"a": 0.65, "b": 0.2}, {"a": 2, "b": 1}, DEFAULT)
    assert not calm.scale_up  # spare KV 0.375, spare queue 3.5


def test_scale_down_only_when_one_replica_fewer_keeps_the_spare_above_the_triggers():
    # 3 replicas at KV 0.2 and 1 waiting in all: on 2, KV 0.3 (spare 0.5) and queue 0.5 (spare 4.5): safe
    assert analyze({"a": 0.2, "b": 0.2, "c": 0.2}, {"a": 0, "b": 0, "c": 1}, DEFAULT).scale_down_safe
    # 2 at KV 0.3 -> one at 0.6: spare 0.2 >= 0.1, safe; 2 at 0.4 -> one at 0.8: spare 0, not safe
    assert analyze({"a": 0.3, "b": 0.3}, {}, DEFAULT).scale_down_safe
    assert not analyze({"a": 0.4, "b": 0.4}, {}, DEFAULT).scale_down_safe
    # the queue alone can forbid it: 2 waiting each -> 4 on one replica, spare 1 < 3
    assert not analyze({"a": 0.1, "b": 0.1}, {"a": 2, "b": 2}, DEFAULT).scale_down_safe


def test_the_policy_adds_or_removes_one_replica_of_those_reporting():
    assert SaturationPolicy().recommend(state(15, {"a": 75, "b": 72})) == 3  # spare KV 0.065
    waiting = {"a": 3.0, "b": 3.0, "c": 3.0}
    assert SaturationPolicy().recommend(state(15, {"a": 20, "b": 20, "c": 20}, waiting)) == 4  # spare queue 2
    # a busy replica among idle ones: spare KV (0.05 + 0.08 + 0.7) / 3 is enough, but not on one fewer
    assert SaturationPolicy().recommend(state(15, {"a": 75, "b": 72, "c": 10})) == 3
    down = SaturationPolicy()
    assert down.recommend(state(15, {"a": 20, "b": 20, "c": 20})) == 2
    hold = SaturationPolicy()
    assert hold.recommend(state(15, {"a": 40, "b": 40})) == 2  # neither trigger fires; not safe to remove one
    bounded = SaturationPolicy(SaturationConfig(min_replicas=3))
    assert bounded.recommend(state(15, {"a": 20, "b": 20, "c": 20})) == 3


def test_no_decision_while_replicas_are_starting_and_none_between_intervals():
    hot = {"a": 85, "b": 90}
    policy = SaturationPolicy()
    assert policy.recommend(state(15, hot, pending=1)) is None  # 3 replicas, 2 report: a cold start in flight
    assert policy.last_analysis.scale_up  # it would have scaled up
    assert policy.recommend(state(30, hot)) is None  # the next decision is 60 s after the last
    assert policy.recommend(state(75, hot)) == 3


def test_the_peak_over_the_last_minute_decides():
    def run(peak_window_s: float) -> dict[float, int | None]:
        policy = SaturationPolicy(SaturationConfig(peak_window_s=peak_window_s))
        recs = {}
        for t in (0.0, 15.0, 30.0, 45.0, 60.0, 75.0, 90.0, 105.0, 120.0):
            kv = {"a": 75.0, "b": 75.0} if t == 15 else {"a": 10.0, "b": 10.0}
            recs[t] = policy.recommend(state(t, kv))
        return recs

    peak = run(60.0)
    assert peak[0.0] == 1  # both idle: one replica is enough
    assert peak[60.0] == 3  # the 75% peak at t=15 is still in (0, 60]: spare 0.05 < 0.10
    assert peak[120.0] == 1  # it has left the window
    assert run(0.0)[60.0] == 1  # latest samples only: the burst is missed


def test_agent_file_loads_and_bad_fields_are_named(tmp_path):
    policy = load_agent("agents/saturation.yaml")
    assert isinstance(policy, SaturationPolicy) and policy.config == DEFAULT and policy.sync_period_s == 15.0
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: SaturationAutoscaler\nspec: {kv_cache_threshold: 0.05, kv_spare_trigger: 0.1}\n")
    with pytest.raises(SpecError, match=r"bad.yaml: spec: .*kv_cache_threshold \(0.05\) must be >= kv_spare_trigger"):
        load_agent(bad)


def test_cold_starts_hold_the_fleet_at_one_extra_replica():
    """Overload on one pod: one replica is added, and none more while it starts (cold start > 300 s)."""
    scenario = ScenarioConfig.model_validate({
        "fleet": {"replicas": 1},
        "workload": {"arrival": {"process": "poisson", "rate_per_s": 40.0},
                     "lengths": {"kind": "fixed", "prompt_tokens": 500, "output_tokens": 200}},
        "duration_s": 300,
    })  # fmt: skip
    sim = Simulation.build(scenario)
    policy = SaturationPolicy()
    sim.attach(policy)
    sim.run()
    (event,) = sim.fleet.scale_events
    assert (event.from_replicas, event.to_replicas) == (1, 2)
    assert (event.time_s - policy.config.sample_interval_s) % policy.config.interval_s == 0  # at a decision
    assert policy.last_analysis.scale_up  # still saturated, but the new pod is not reporting yet

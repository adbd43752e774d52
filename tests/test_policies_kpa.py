"""The Knative Pod Autoscaler policy: window averages, panic mode, rate limits, and one run through the loop."""

from __future__ import annotations

import math

import pytest

from rlscale.agents import load_agent
from rlscale.pods import PodInfo
from rlscale.policies.base import ClusterState
from rlscale.policies.kpa import KPAConfig, KPAPolicy, TimedBuckets
from rlscale.scenario import ScenarioConfig
from rlscale.simulation import Simulation
from rlscale.specs.catalog import SpecError

METRIC = "jetstream_prefill_backlog_size"


class FakeMetrics:
    """A metrics API answering fixed per-pod values."""

    def __init__(self, values: dict[str, dict[str, float]]) -> None:
        self.values = values

    def pods_metric(self, name: str) -> dict[str, float]:
        return dict(self.values.get(name, {}))

    def external_metric(self, name: str) -> float | None:
        values = self.values.get(name)
        return sum(values.values()) / len(values) if values else None


def state(now: float, ready: int, total: float | None) -> ClusterState:
    """``ready`` Ready pods; ``total`` spread evenly over them (None: no fresh sample)."""
    pods = tuple(PodInfo(f"p{i}") for i in range(ready))
    values = {} if total is None or not ready else {p.name: total / ready for p in pods}
    return ClusterState(now, ready, ready, pods, FakeMetrics({METRIC: values}))


def fresh(config: KPAConfig | None = None) -> KPAPolicy:
    """A decider created before any pod is Ready (a new revision): it does not start in panic."""
    kpa = KPAPolicy(config)
    assert kpa.recommend(state(0.0, 0, None)) is None  # no data yet
    return kpa


def drive(kpa: KPAPolicy, ready: int, totals: dict[float, float]) -> dict[float, int | None]:
    return {t: kpa.recommend(state(t, ready, total)) for t, total in sorted(totals.items())}


def test_buckets_average_a_partial_window_drop_stale_data_and_empty_after_a_window():
    b = TimedBuckets(window_s=60, granularity_s=2)
    b.record(2, 4.0)
    assert b.window_average(2) == 4.0
    b.record(4, 8.0)
    assert b.window_average(4) == 6.0  # only the 2 buckets written so far
    assert b.window_average(10) == 6.0  # no data since t=4: the average is over what was written
    b.record(12, 0.0)  # a gap of zeros between 4 and 12
    assert b.window_average(12) == pytest.approx(12.0 / 6)
    assert not b.is_empty(73) and b.is_empty(74)  # now is truncated to its bucket: 72 - 12 <= 60 < 74 - 12
    assert b.window_average(80) == 0.0


def test_stable_mode_recommends_ceil_of_the_window_average_over_target():
    kpa = fresh()
    totals = {2.0 * k: 6 + 0.25 * k for k in range(1, 61)}  # a slow rise: never 2x in the panic window
    recs = drive(kpa, 4, totals)
    times = sorted(totals)
    for i, t in enumerate(times):
        window = [totals[s] for s in times[max(0, i - 29) : i + 1]]  # 60 s of 2 s buckets
        expected = max(math.ceil(round(sum(window) / len(window), 6) / 5.0), 4 // 2)  # never below ready/2
        assert recs[t] == expected, t
    assert not kpa.panicking
    assert recs[times[-1]] == math.ceil(sum(totals[s] for s in times[-30:]) / 30 / 5.0) > 2


@pytest.fixture
def surge():
    """2 Ready pods; a backlog of 15 (panic-desired 3 = 1.5x), one tick of 30 (4 = 2x) at t=22, then nothing."""
    kpa = fresh()
    totals = {float(t): 15.0 for t in range(2, 21, 2)} | {22.0: 30.0} | {float(t): 0.0 for t in range(24, 101, 2)}
    log = {}
    for t, total in sorted(totals.items()):
        rec = kpa.recommend(state(t, 2, total))
        log[t] = (rec, kpa.panicking, math.ceil(kpa.stable.window_average(t) / 5.0))
    return log


def test_panic_starts_when_the_panic_window_asks_for_twice_the_ready_pods(surge):
    assert not any(panicking for t, (_, panicking, _) in surge.items() if t < 22)  # 1.5x: calm
    assert surge[20.0][0] == 3  # ceil(15 / 5)
    rec, panicking, stable = surge[22.0]
    assert panicking  # panic average (15 + 15 + 30) / 3 = 20 -> 4 pods = 2.0x ready
    assert rec == max(stable, 4) == 4


def test_no_scale_down_while_panicking(surge):
    held = [(t, rec, stable) for t, (rec, panicking, stable) in surge.items() if 22 <= t <= 82]
    assert all(rec == 4 for _, rec, _ in held)
    assert any(stable < 4 for _, _, stable in held)  # the stable window alone would have scaled down
    assert surge[40.0][2] == math.ceil((10 * 15 + 30) / 20 / 5.0) == 2


def test_panic_ends_a_full_stable_window_after_the_last_panic_tick(surge):
    assert surge[82.0][1]  # 22 + 60 is not yet past
    rec, panicking, stable = surge[84.0]
    assert not panicking and stable == 0
    assert rec == 1  # ready / 2 and min_replicas


def test_scale_down_is_limited_to_half_the_ready_pods_and_scale_up_to_the_up_rate():
    assert drive(fresh(), 10, {2.0: 0.0, 4.0: 0.0})[4.0] == 5  # floor(10 / 2), though no load wants 0
    assert drive(fresh(), 3, {2.0: 0.0})[2.0] == 1  # floor(3 / 2)
    limited = fresh(KPAConfig(max_scale_up_rate=1.5, max_replicas=50))
    assert drive(limited, 2, {2.0: 100.0})[2.0] == 3  # wants 20 pods; ceil(1.5 x 2) = 3
    assert drive(fresh(KPAConfig(max_replicas=7)), 2, {2.0: 100.0})[2.0] == 7  # applyBounds


def test_a_decider_created_over_several_pods_starts_in_panic_and_holds_them():
    kpa = KPAPolicy()
    recs = drive(kpa, 3, {float(t): 0.0 for t in range(2, 70, 2)})
    assert all(recs[float(t)] == 3 for t in range(2, 63, 2))  # panicking since t=2: hold 3
    assert recs[64.0] == 1  # panic over: floor(3 / 2)


def test_agent_file_loads_and_bad_fields_are_named(tmp_path):
    kpa = load_agent("agents/kpa-prefill-backlog.yaml")
    assert isinstance(kpa, KPAPolicy) and kpa.config == KPAConfig() and kpa.sync_period_s == 2.0
    assert kpa.config.panic_window_s == 6.0
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: KnativePodAutoscaler\nspec: {target: 0, stable_window_s: 60, typo: 1}\n")
    with pytest.raises(SpecError, match=r"bad.yaml: .*spec.target: .*greater than 0.*spec.typo"):
        load_agent(bad)


def test_the_kpa_scales_up_once_the_pipeline_shows_the_backlog():
    scenario = ScenarioConfig.model_validate({
        "fleet": {"replicas": 1},
        "workload": {"arrival": {"process": "poisson", "rate_per_s": 40.0},
                     "lengths": {"kind": "fixed", "prompt_tokens": 500, "output_tokens": 200}},
        "duration_s": 300,
    })  # fmt: skip
    sim = Simulation.build(scenario)
    kpa = KPAPolicy()
    sim.attach(kpa)
    sim.run()
    first = sim.fleet.scale_events[0]
    assert first.time_s >= scenario.metrics.adapter_delay_s  # nothing is visible before the adapter's delay
    assert first.time_s % kpa.config.tick_interval_s == 0  # decided at a tick
    assert first.to_replicas > 1 and kpa.panicking  # the backlog keeps growing on the one Ready pod
    assert all(e.to_replicas > e.from_replicas for e in sim.fleet.scale_events)  # no scale-down while panicking
    assert sim.fleet.desired <= kpa.config.max_replicas

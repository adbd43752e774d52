"""The metrics pipeline: scrape phase and interval, adapter lag, staleness as missing, aggregation."""

from __future__ import annotations

import numpy as np
import pytest

from rlscale.clock import Clock
from rlscale.metrics.config import MetricsPipelineConfig
from rlscale.metrics.pipeline import SERVER, ScrapedMetrics
from rlscale.serving.pod import PodStatus


class FakeMetrics:
    def __init__(self, env, gauge, device=None) -> None:
        self.env, self.gauge, self.device = env, gauge, device or (lambda t: {})

    def snapshot(self):
        return {"jetstream_prefill_backlog_size": self.gauge(self.env.now), "jetstream_request_success_count_total":
                self.gauge(self.env.now)}  # fmt: skip

    def device_snapshot(self):
        return self.device(self.env.now)


class FakePod:
    """A scrape target whose gauge is a known function of time."""

    def __init__(self, env, name, gauge, device=None) -> None:
        self.name, self.status = name, PodStatus.RUNNING
        self.metrics = FakeMetrics(env, gauge, device)


def pipeline(pods, **config):
    env = Clock()
    built = [FakePod(env, *p) for p in pods(env)]
    cfg = MetricsPipelineConfig(**config)
    return env, built, ScrapedMetrics(env, lambda: built, cfg, np.random.default_rng(0))


def test_a_controller_sees_the_last_scrape_before_now_minus_the_adapter_delay():
    env, _, metrics = pipeline(lambda env: [("p0", lambda t: t)], server_scrape_interval_s=15, adapter_delay_s=30)
    seen = []
    for t in np.arange(1.0, 200.0, 1.0):
        env.run(until=t)
        seen.append((t, metrics.pods_metric("jetstream_prefill_backlog_size").get("p0")))
    scrapes = metrics.series[(SERVER, "p0")].times
    # a pod Ready when the run starts was scraped before it (visible at t = 0, its state at t = 0); then one
    # phase, then every interval
    assert scrapes[0] == -30 and 0 <= scrapes[1] < 15 and np.allclose(np.diff(scrapes[1:]), 15.0)
    for t, value in seen:
        latest = max(s for s in scrapes if s <= t - 30)
        if latest < 0:
            assert value == 0.0  # the pre-run sample: the gauge at t = 0
        else:
            assert value == pytest.approx(latest)  # the gauge equals its scrape time
            assert 30 <= t - value < 45  # lag between the adapter delay and delay + interval


def test_a_pod_that_becomes_ready_later_has_no_sample_until_scraped_and_ingested():
    env, pods, metrics = pipeline(lambda env: [], server_scrape_interval_s=15, adapter_delay_s=30)
    env.run(until=20)
    pods.append(FakePod(env, "late", lambda t: t))
    seen = {}
    for t in np.arange(21.0, 90.0, 1.0):
        env.run(until=t)
        seen[t] = metrics.pods_metric("jetstream_prefill_backlog_size").get("late")
    first = metrics.series[(SERVER, "late")].times[0]
    assert 25 <= first < 40  # discovered within 5 s, then its phase
    assert all(v is None for t, v in seen.items() if t < first + 30)  # missing, never zero
    assert all(v is not None for t, v in seen.items() if t >= first + 30)


def test_a_silent_target_goes_stale_after_the_lookback():
    env, (pod,), metrics = pipeline(lambda env: [("p0", lambda t: 7.0)], adapter_delay_s=30, lookback_s=300)
    env.run(until=100)
    pod.status = PodStatus.RESTARTING  # scrapes fail from now on
    last = metrics.series[(SERVER, "p0")].times[-1]
    env.run(until=last + 30 + 299)
    assert metrics.pods_metric("jetstream_prefill_backlog_size") == {"p0": 7.0}
    env.run(until=last + 30 + 301)
    assert metrics.pods_metric("jetstream_prefill_backlog_size") == {}
    assert metrics.external_metric("jetstream_prefill_backlog_size") is None


def test_memory_used_percentage_is_avg_used_over_avg_total():
    def pods(env):
        return [
            ("p0", lambda t: 0, lambda t: {"memory_used": 10e9, "memory_total": 16e9, "duty_cycle": 50}),
            ("p1", lambda t: 0, lambda t: {"memory_used": 14e9, "memory_total": 16e9, "duty_cycle": 90}),
        ]

    env, _, metrics = pipeline(pods, tpu_scrape_interval_s=60, adapter_delay_s=30)
    env.run(until=60 + 30)  # both scraped once (phase < 60) and ingested
    assert metrics.external_metric("memory_used_percentage") == pytest.approx(12 / 16)
    assert metrics.pods_metric("duty_cycle") == {"p0": 50, "p1": 90}


def test_counter_rate_survives_a_reset():
    # a counter growing 2/s that restarts from zero at t=200 (a new server process)
    env, _, metrics = pipeline(lambda env: [("p0", lambda t: 2 * (t if t < 200 else t - 200))], adapter_delay_s=0)
    env.run(until=300)
    rate = metrics.counter_rate("jetstream_request_success_count_total", window_s=240)["p0"]
    assert rate == pytest.approx(2.0, rel=0.1)


def test_pipeline_over_a_real_fleet_lags_the_ground_truth():
    from rlscale.scenario import ScenarioConfig
    from rlscale.simulation import Simulation

    sc = ScenarioConfig.model_validate({
        "fleet": {"replicas": 2},
        "workload": {"arrival": {"process": "step", "steps": [[0, 4.0], [300, 60.0]]}},
        "duration_s": 420,
    })  # fmt: skip
    sim = Simulation.build(sc)
    sim.env.run(until=310)
    assert sum(len(p.prefill_backlog) for p in sim.fleet.serving_pods()) > 0  # overloaded now...
    assert max(sim.metrics.pods_metric("jetstream_prefill_backlog_size").values()) == 0  # ...not yet visible
    sim.env.run(until=420)
    seen = sim.metrics.pods_metric("jetstream_prefill_backlog_size")
    assert set(seen) == {"jetstream-0", "jetstream-1"} and min(seen.values()) > 0


def test_the_adapters_mean_is_numpys_to_the_bit():
    """External metrics average pods with a lean ``_mean``: it must give ``np.mean``'s value exactly (numpy sums
    pairwise from 8 values on, so a plain running sum would differ in the last bits and could flip an HPA decision)."""
    from rlscale.metrics.pipeline import _mean

    rng = np.random.default_rng(0)
    for n in (1, 3, 7, 8, 9, 17, 33, 64, 130):
        for _ in range(50):
            values = list(rng.lognormal(20, 3, n))
            assert float(_mean(values)) == float(np.mean(values))

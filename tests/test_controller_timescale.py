"""The controller's clock speed (rlscale/deploy/timescale.py, ``spec.clock_speed``): against an emulator at K×,
the controller waits wall = simulated / K, asks Prometheus for windows K times shorter, and reads rates per
simulated second, so at K = 10 it observes what it observes at K = 1 on the same simulated fleet."""

from __future__ import annotations

import re
import time
from itertools import pairwise

import numpy as np
import pytest

from rlscale.deploy.config import load_controller_config
from rlscale.deploy.pods import LivePod
from rlscale.deploy.sources import MetricsUnavailable, PrometheusMetrics, ScrapedPodMetrics, parse_page
from rlscale.deploy.timescale import TimeScale, promql_duration
from rlscale.policies.base import ClusterState
from rlscale.policies.observation import RATE_WINDOW_S, ObservationBuilder
from rlscale.scenario import apply_overrides, load_scenario
from rlscale.simulation import Simulation
from tests.test_controller import feed as feed_fake
from tests.test_controller import make, static_agent
from tests.test_controller_fakes import Clock, FakeKube, FakePrometheus, _Server
from tests.test_controller_sources import PodPages, live_pods

SUCCESS = "jetstream_request_success_count_total"
SCRAPE_S = 15.0  # simulated seconds between scrapes, as in the simulator's pipeline


def test_time_scale_converts_at_its_edges():
    wall = Clock()
    clock = TimeScale(10, wall)
    start = clock()
    assert start == wall.t  # simulated and wall time agree at the origin
    wall.t += 1.5
    assert clock() == pytest.approx(start + 15)
    assert (clock.wall_s(15), clock.sim_s(1.5), clock.per_sim_s(50.0)) == (1.5, 15.0, 5.0)
    assert TimeScale(15).promql_window(60) == "4s" and TimeScale(16).promql_window(60) == "3750ms"
    assert promql_duration(60) == "60s" and promql_duration(0.0001) == "1ms"
    one = TimeScale.of(wall)  # a plain wall clock: speed 1, every conversion the identity
    assert (one(), one.wall_s(15), one.per_sim_s(2.0), one.promql_window(60)) == (wall.t, 15, 2.0, "60s")
    assert TimeScale.of(clock) is clock
    with pytest.raises(ValueError, match="must be > 0"):
        TimeScale(0)


def test_clock_speed_is_a_setting_and_a_flag(tmp_path):
    assert load_controller_config(None, policy="models:/p@champion").spec.clock_speed == 1.0
    assert load_controller_config(None, policy="models:/p@champion", clock_speed=20).spec.clock_speed == 20


# ---- Prometheus: a small TSDB over wall time, fed with the simulator's pages ------------------------------------


class SeriesPrometheus(_Server):
    """Per-pod samples stored at wall timestamps; evaluates the controller's default queries at ``clock()``:
    ``last_over_time`` (newest sample in the window) and ``rate`` (increase over the window's samples divided by
    their span, as the simulator computes it; counters here never reset)."""

    WINDOW = r"\[(\d+)(ms|s)\]"

    def __init__(self, clock: Clock) -> None:
        self.clock, self.samples, self.queries = clock, {}, []
        super().__init__()

    def add(self, pod: str, wall_t: float, values: dict[str, float]) -> None:
        self.samples.setdefault(pod, []).append((wall_t, values))

    def _window(self, pod: str, name: str, promql: str) -> list[tuple[float, float]]:
        amount, unit = re.search(self.WINDOW, promql).groups()
        window = int(amount) / (1000 if unit == "ms" else 1)
        now = self.clock()
        return [(t, v[name]) for t, v in self.samples[pod] if now - window < t <= now and name in v]

    def _vector(self, name: str, promql: str, rate: bool) -> list[tuple[dict, float]]:
        out = []
        for pod in self.samples:
            points = self._window(pod, name, promql)
            if rate and len(points) >= 2:
                out.append(({"pod": pod}, (points[-1][1] - points[0][1]) / (points[-1][0] - points[0][0])))
            elif not rate and points:
                out.append(({"pod": pod}, points[-1][1]))
        return out

    def handle(self, method, path, query, raw, headers):
        from urllib.parse import parse_qs

        promql = parse_qs(raw.decode())["query"][0]
        self.queries.append(promql)
        if promql.startswith("avg(last_over_time(memory_used"):
            used = [v for _, v in self._vector("memory_used", promql, False)]
            total = [v for _, v in self._vector("memory_total", promql, False)]
            vector = [({}, float(np.mean(used) / np.mean(total)))] if used and total else []
        else:
            name = re.match(r"(rate|last_over_time)\((\w+)\{", promql).group(2)
            vector = self._vector(name, promql, promql.startswith("rate("))
        result = [{"metric": labels, "value": [self.clock(), repr(v)]} for labels, v in vector]
        return 200, {"status": "success", "data": {"resultType": "vector", "result": result}}, "application/json"


def scrape(sim: Simulation) -> dict[str, dict[str, float]]:
    return {
        p.name: parse_page(p.metrics.exposition()) | parse_page(p.metrics.device_exposition())
        for p in sim.fleet.scrape_targets()
    }


def observe(state: ClusterState, metrics) -> np.ndarray:
    return ObservationBuilder()(
        ClusterState(state.now_s, state.spec_replicas, state.status_replicas, state.pods, metrics)
    )


@pytest.fixture(scope="module")
def history():
    """Four busy pods, scraped every 15 simulated seconds for 3 minutes: (sim time, pages) pairs, and the state."""
    sim = Simulation.build(apply_overrides(load_scenario("envs/steady.yaml"), duration_s=600))
    pages = []
    for k in range(13):
        sim.env.run(until=120 + k * SCRAPE_S)
        pages.append((sim.env.now, scrape(sim)))
    return pages, sim.state()


@pytest.mark.parametrize("speed", [10.0, 16.0])
def test_prometheus_at_speed_k_reads_what_it_reads_at_speed_1(history, speed):
    pages, state = history
    observed, queries = {}, {}
    for k in (1.0, speed):
        wall = Clock()
        clock = TimeScale(k, wall)
        origin_sim = pages[-1][0]  # the controller's "now" is the last scrape
        with SeriesPrometheus(wall) as prom:
            for sim_t, values in pages:
                for pod, sample in values.items():
                    prom.add(pod, wall.t + (sim_t - origin_sim) / k, sample)  # Prometheus stamps wall time
            source = PrometheusMetrics(prom.url, "default", clock=clock).refresh(live_pods(state))
            observed[k], queries[k] = observe(state, source), prom.queries
            rates = source.counter_rate(SUCCESS, RATE_WINDOW_S)
        assert sum(rates.values()) > 0
    window = promql_duration(RATE_WINDOW_S / speed)
    assert any("[60s]" in q and q.startswith("rate(") for q in queries[1.0])
    assert any(f"[{window}]" in q and q.startswith("rate(") for q in queries[speed])
    assert not any("[60s]" in q for q in queries[speed])
    assert observed[1.0][4] > 0  # the rate feature: requests per simulated second
    np.testing.assert_allclose(observed[speed], observed[1.0], rtol=1e-6)


def test_prometheus_staleness_is_in_simulated_seconds():
    wall = Clock()
    with FakePrometheus(clock=wall) as prom:
        prom.set("slots", [({"pod": "a"}, 0.5)])
        source = PrometheusMetrics(prom.url, "default", stale_after_s=60, clock=TimeScale(10, wall))
        prom.age_s = 5.5  # wall seconds: 55 simulated
        assert source.refresh([LivePod("a")]).pods_metric("jetstream_slots_used_percentage") == {"a": 0.5}
        prom.age_s = 6.5  # 65 simulated: stale
        with pytest.raises(MetricsUnavailable, match="no sample fresher than 60 s"):
            source.refresh([LivePod("a")])


# ---- direct scraping: scrapes stamped with simulated time --------------------------------------------------------


def test_scraping_at_speed_k_reads_what_it_reads_at_speed_1():
    sim = Simulation.build(apply_overrides(load_scenario("envs/steady.yaml"), duration_s=600))
    sim.env.run(until=120)
    pages = PodPages(sim)
    try:
        pods = live_pods(sim.state())
        walls = {1.0: Clock(), 10.0: Clock()}
        sources = {k: ScrapedPodMetrics(pages.port, device_port=pages.port, device_path="/device/metrics",
                                        clock=TimeScale(k, wall)) for k, wall in walls.items()}  # fmt: skip
        for step in range(6):
            if step:
                sim.env.run(until=sim.env.now + SCRAPE_S)
                for k, wall in walls.items():
                    wall.t += SCRAPE_S / k
            for source in sources.values():
                source.refresh(pods)
        state = sim.state()
        slow, fast = (observe(state, sources[k]) for k in (1.0, 10.0))
        assert slow[4] > 0
        np.testing.assert_allclose(fast, slow, rtol=1e-9)
        assert sources[10.0].counter_rate(SUCCESS, 60) == pytest.approx(sources[1.0].counter_rate(SUCCESS, 60))
        walls[10.0].t += 5.5  # 55 simulated seconds without a scrape: still fresh
        pages.refuse = {p.name for p in pods}
        assert sources[10.0].refresh(pods).pods_metric("jetstream_slots_used_percentage")
    finally:
        pages.close()


# ---- the loop: sync period and Lease in simulated seconds -----------------------------------------------------


class Recorder:
    """A policy that keeps the count and remembers when (``ClusterState.now_s``) it was asked."""

    sync_period_s = 15.0

    def __init__(self) -> None:
        self.times: list[float] = []

    def recommend(self, state: ClusterState) -> None:
        self.times.append(state.now_s)


def test_the_loop_syncs_every_period_of_simulated_time(tmp_path):
    with FakeKube() as kube, FakePrometheus() as prom:
        feed_fake(prom, kube)
        leader = {"enabled": True, "lease_duration_s": 15, "renew_period_s": 5}
        controller = make(tmp_path, kube, prom, static_agent(tmp_path, 2), sync_period_s=15, clock_speed=50,
                          leader_election=leader)  # fmt: skip
        assert controller.clock.speed == 50 and controller.elector.clock is controller.clock
        controller.policy = recorder = Recorder()
        started = time.monotonic()
        assert controller.run(max_syncs=4) == 4
        took = time.monotonic() - started
    assert 0.9 * 45 / 50 <= took < 45 / 50 + 1.0  # three periods of 15 simulated s: 0.9 wall s
    assert [b - a for a, b in pairwise(recorder.times)] == pytest.approx([15, 15, 15], abs=4.5)  # 90 ms of wall jitter
    assert controller.healthy()

"""The fleet: lifecycle timing, scale-down order, drain, nodes and cost, routing, the gateway, conservation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlscale.clock import Clock
from rlscale.cluster.config import DelaySpec, FleetConfig, LifecycleConfig
from rlscale.cluster.fleet import Fleet, Phase
from rlscale.serving.config import PodConfig
from rlscale.serving.request import Request, RequestState
from rlscale.specs import load_model

WEIGHT_LOAD_S = load_model("llama2-7b").weight_bytes / 0.4e9  # default 0.4 GB/s
WARMUP_S = 20.0 + 6.0 * 7  # fixed + 7 prefill buckets (16..1024) x 6 s
WARM_START_S = 60.0 + WEIGHT_LOAD_S + WARMUP_S  # image pull + load + warm-up


class FleetHarness:
    def __init__(self, provisioning_s: float = 200.0, **fleet) -> None:
        self.env = Clock()
        life = LifecycleConfig(node_provisioning=DelaySpec(kind="fixed", seconds=provisioning_s),
                               **fleet.pop("lifecycle", {}))  # fmt: skip
        self.done: list[Request] = []
        self.requests: list[Request] = []
        self.fleet = Fleet(self.env, PodConfig(**fleet.pop("pod", {})), FleetConfig(lifecycle=life, **fleet),
                           np.random.default_rng(0), on_done=self.done.append)  # fmt: skip

    def at(self, t: float, action) -> None:
        def go():
            yield self.env.timeout(t - self.env.now)
            action()

        self.env.process(go())

    def submit_at(self, t: float, prompt: int = 200, output: int = 50) -> Request:
        request = Request(len(self.requests), t, prompt, output)
        self.requests.append(request)
        self.at(t, lambda: self.fleet.submit(request))
        return request

    def run(self, until: float) -> None:
        self.env.run(until=until)


def served_by(fleet: Fleet, name: str) -> int:
    return next(r.server for r in fleet.replicas if r.name == name).arrived


def test_a_new_pod_takes_exactly_its_delays_and_gets_no_traffic_before():
    h = FleetHarness(provisioning_s=200.0, replicas=1)
    h.at(10.0, lambda: h.fleet.set_replicas(2))
    for k in range(400):
        h.submit_at(1.0 * k)
    h.run(420.0)
    new = h.fleet.replicas[1]
    assert new.ready_s == pytest.approx(10.0 + 200.0 + WARM_START_S)
    early = sum(r.arrival_s < new.ready_s for r in h.requests)
    assert served_by(h.fleet, "jetstream-0") >= early  # everything before Ready went to the old pod
    assert served_by(h.fleet, "jetstream-1") == pytest.approx((400 - new.ready_s) / 2, abs=1)  # then round-robin


def test_phases_in_order_and_a_warm_node_skips_provisioning():
    h = FleetHarness(provisioning_s=200.0, replicas=0, warm_nodes=1)
    h.fleet.set_replicas(1)
    seen = []
    for t in (1.0, 61.0, 61.0 + WEIGHT_LOAD_S, WARM_START_S + 0.1):
        h.run(t)
        seen.append(h.fleet.replicas[0].phase)
    assert seen == [Phase.STARTING, Phase.LOADING, Phase.WARMING, Phase.READY]


def test_scale_down_removes_not_ready_first_then_newest():
    h = FleetHarness(provisioning_s=200.0, replicas=2)
    h.fleet.set_replicas(3)  # jetstream-2 is pending on a node
    h.run(1.0)
    first, second, pending = h.fleet.replicas
    h.fleet.set_replicas(2)
    assert pending.phase is Phase.GONE and h.fleet.replicas == [first, second]  # gone: out of the fleet's list
    h.fleet.set_replicas(1)
    assert second.phase in (Phase.TERMINATING, Phase.GONE)  # the newer ready pod
    assert first.phase is Phase.READY
    assert [(e.from_replicas, e.to_replicas) for e in h.fleet.scale_events] == [(2, 3), (3, 2), (2, 1)]


def test_a_terminating_pod_drains_then_kills_what_is_left():
    h = FleetHarness(replicas=2, lifecycle={"termination_grace_period_s": 30.0})
    short = [h.submit_at(0.0, 200, 100) for _ in range(4)]  # ~3 s of decode: drain in time
    long = [h.submit_at(0.0, 200, 2000) for _ in range(4)]  # capped at 1848 tokens, ~50 s: killed
    h.at(1.0, lambda: h.fleet.set_replicas(1))
    late = [h.submit_at(2.0 + k, 200, 10) for k in range(6)]
    h.run(0.5)
    gone = h.fleet.replicas[1]
    h.run(200.0)
    assert gone.phase is Phase.GONE and gone not in h.fleet.replicas
    mine = [
        r for r in short + long if r in gone.server.prefill_backlog or r.failure or r.state is RequestState.COMPLETED
    ]
    assert mine  # the doomed pod held some of each
    assert all(r.state is RequestState.COMPLETED for r in short)
    killed = [r for r in long if r.state is RequestState.FAILED]
    assert killed and all(r.failure == "terminated: grace period over" and r.finish_s == pytest.approx(31.0)
                          for r in killed)  # fmt: skip
    assert gone.server.arrived == 4  # nothing new after it left the Service
    assert all(r.state is RequestState.COMPLETED for r in late)


def test_nodes_outlive_pods_and_cost_is_chip_hours_times_price():
    h = FleetHarness(provisioning_s=100.0, replicas=1, lifecycle={"node_scale_down_delay_s": 600.0})
    h.fleet.set_replicas(2)  # a node requested at t=0, ready at 100
    h.at(1000.0, lambda: h.fleet.set_replicas(1))  # idle pod: gone at once; its node idles 600 s
    h.at(1300.0, lambda: h.fleet.set_replicas(2))  # within the delay: lands on the held node, no provisioning
    h.run(1400.0)
    third = h.fleet.replicas[-1]
    h.at(2000.0, lambda: h.fleet.set_replicas(1))
    h.run(3600.0)
    assert third.name == "jetstream-2" and third.ready_s == pytest.approx(1300.0 + WARM_START_S)
    assert len(h.fleet.nodes.nodes) == 2
    # node 0: 0-3600 s; node 1: 0 (requested) to 2000 + 600 s
    assert h.fleet.chip_hours() == pytest.approx(8 * (3600 + 2600) / 3600)
    assert h.fleet.chip_hours() * 1.20 == pytest.approx(16.5333, rel=1e-4)  # v5e on-demand $1.20/chip-hour


def test_round_robin_is_fair_and_least_outstanding_balances():
    rr = FleetHarness(replicas=4, routing="round-robin")
    for k in range(400):
        rr.submit_at(0.05 * k)
    rr.run(60.0)
    assert [served_by(rr.fleet, f"jetstream-{i}") for i in range(4)] == [100] * 4
    lor = FleetHarness(replicas=4, routing="least-outstanding")
    spreads = []
    for k in range(400):
        lor.submit_at(0.01 * k, 200, 500)
        lor.at(0.01 * k + 0.001, lambda: spreads.append(np.ptp([p.in_flight for p in lor.fleet.serving_pods()])))
    lor.run(5.0)
    assert max(spreads) <= 1


def test_random_routing_spreads_like_a_multinomial():
    h = FleetHarness(replicas=4, routing="random")
    for k in range(4000):
        h.submit_at(0.001 * k, 100, 2)
    h.run(10.0)
    counts = np.array([served_by(h.fleet, f"jetstream-{i}") for i in range(4)])
    assert counts.sum() == 4000
    assert np.all(np.abs(counts - 1000) < 4 * np.sqrt(4000 * 0.25 * 0.75))  # 4 sigma


def test_gateway_holds_requests_until_a_pod_is_ready_or_the_timeout():
    h = FleetHarness(replicas=0, warm_nodes=1, gateway_timeout_s=60.0)
    h.fleet.set_replicas(1)  # ready at WARM_START_S (~156 s)
    too_early = h.submit_at(WARM_START_S - 61.0)
    in_time = h.submit_at(WARM_START_S - 59.0)
    h.run(WARM_START_S + 30.0)
    assert too_early.state is RequestState.FAILED and too_early.failure == "no ready pod"
    assert too_early.finish_s == pytest.approx(too_early.arrival_s + 60.0)
    assert in_time.state is RequestState.COMPLETED and in_time.prefill_start_s == pytest.approx(WARM_START_S)


@settings(max_examples=25, deadline=None)
@given(
    steps=st.lists(st.tuples(st.floats(0, 300), st.integers(0, 5)), min_size=1, max_size=8),
    rate=st.floats(1.0, 40.0),
    routing=st.sampled_from(["round-robin", "random", "least-outstanding"]),
)
@pytest.mark.slow
def test_requests_are_conserved_across_scaling(steps, rate, routing):
    h = FleetHarness(provisioning_s=30.0, replicas=2, routing=routing,
                     lifecycle={"termination_grace_period_s": 5.0, "image_pull_s": 5.0})  # fmt: skip
    rng = np.random.default_rng(1)
    t = 0.0
    while t < 400:
        t += rng.exponential(1 / rate)
        h.submit_at(t, int(rng.integers(10, 900)), int(rng.integers(1, 800)))
    for at_s, n in steps:
        h.at(at_s, lambda n=n: h.fleet.set_replicas(n))
    for checkpoint in (50, 120, 250, 400, 2000):
        h.run(checkpoint)
        arrived = h.fleet.arrived
        completed = sum(r.state is RequestState.COMPLETED for r in h.requests)
        failed = sum(r.state is RequestState.FAILED for r in h.requests)
        assert arrived == completed + failed + h.fleet.in_flight()
        assert len(h.done) == completed + failed
        assert len(h.fleet.live_replicas()) == h.fleet.desired


def test_a_pod_created_and_deleted_in_one_instant_on_a_free_node_leaves_nothing_behind():
    """Scale 2 -> 3 -> 2 at one instant while a node idles: the new pod binds at once and must not boot."""
    h = FleetHarness(provisioning_s=200.0, replicas=3)
    h.at(10.0, lambda: h.fleet.set_replicas(2))  # frees a node, held through the scale-down delay

    def up_and_down():
        h.fleet.set_replicas(3)
        h.fleet.set_replicas(2)

    h.at(20.0, up_and_down)
    h.run(20.0 + 2 * WARM_START_S)
    live = [r for r in h.fleet.replicas if r.phase is not Phase.GONE]
    assert len(live) == 2
    assert all(r.phase is Phase.READY for r in live)
    assert sum(n.tenant is not None for n in h.fleet.nodes.held()) == 2


def test_a_churning_fleet_keeps_only_its_present_pods():
    """A policy that scales up and down all day must not make each sync walk every pod it ever had: gone replicas
    leave the fleet's list, and their metric series leave the pipeline once no query can reach them; crash counts
    and cost stay whole."""
    from rlscale.scenario import ScenarioConfig
    from rlscale.simulation import Simulation

    flips = [{"at_s": 600.0 * (k + 1), "replicas": 3 if k % 2 == 0 else 1} for k in range(30)]
    sc = ScenarioConfig.model_validate(
        {"fleet": {"replicas": 1}, "workload": {"arrival": {"process": "poisson", "rate_per_s": 2.0}},
         "duration_s": 600.0 * 31, "schedule": flips}
    )  # fmt: skip
    sim = Simulation.build(sc)
    sim.env.run(until=sc.duration_s)
    fleet, metrics = sim.fleet, sim.metrics
    assert fleet._created == 1 + 15 * 2  # each flip up starts two pods
    assert len(fleet.replicas) == 1  # the last flip was down to one; the rest are gone and out of the list
    assert len(metrics.series) <= 2 * 3  # two jobs per pod, at most the pods still within a query's reach
    assert len(fleet.scale_events) == 30

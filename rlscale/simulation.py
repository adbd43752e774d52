"""Run a scenario: traffic into a fleet, a replica schedule or controller, metrics, timeline, KPIs.

Each subsystem draws from its own random stream spawned from the scenario
seed (workload, fleet, metrics), so adding randomness to one never shifts
another.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import simpy
from tqdm import tqdm

from rlscale.clock import Clock, _Call, schedule
from rlscale.cluster.fleet import Fleet
from rlscale.kpi_stream import KPIAccumulator
from rlscale.kpis import PERCENTILES, SLO, KPIs
from rlscale.metrics.faults import Faults
from rlscale.metrics.pipeline import ScrapedMetrics
from rlscale.policies.base import Autoscaler, ClusterState
from rlscale.policies.control import ControlLoop
from rlscale.request_log import RequestLog
from rlscale.scenario import ScenarioConfig
from rlscale.serving.request import Request
from rlscale.timeline import Timeline
from rlscale.workload.build import clock_origin_s, request_stream

PROGRESS_CHUNKS = 100


@dataclass
class Simulation:
    """Everything a run is made of, wired on one simpy clock."""

    scenario: ScenarioConfig
    env: simpy.Environment
    fleet: Fleet
    metrics: ScrapedMetrics
    timeline: Timeline
    tally: KPIAccumulator  # the KPIs, accumulated as requests end: memory holds what is in flight, not the run
    done_listeners: list[Callable[[Request], None]] = field(default_factory=list)  # told after timeline and KPIs
    request_log: RequestLog | None = None
    loop: ControlLoop | None = None  # the attached policy behind its safety layer
    clock_origin_s: float = 0.0  # where time 0 falls on the traffic's own clock (ClusterState.clock_origin_s)

    @property
    def faults(self) -> Faults:
        return self.metrics.faults

    @classmethod
    def build(cls, scenario: ScenarioConfig, stream: Iterable[tuple[float, int, int]] | None = None) -> Simulation:
        """Wire a run of ``scenario``; ``stream`` replaces its workload's (time, prompt, output) requests, so that a
        planner's probe can replay traffic of its own making on the scenario's pods."""
        workload_seq, fleet_seq, metrics_seq = seed_streams(scenario)
        env = Clock()
        timeline = Timeline(env, scenario.timeline_interval_s)
        slo = scenario.slo
        tally = KPIAccumulator(SLO(slo.ttft_p99_s, slo.tpot_p99_s, slo.e2e_s))
        listeners: list[Callable[[Request], None]] = []
        done = _Ended(timeline, tally, listeners)
        fleet = Fleet(env, scenario.pod, scenario.fleet, np.random.default_rng(fleet_seq), on_done=done)
        timeline.watch(fleet, price_per_chip_hour(scenario, fleet))
        faults = Faults(scenario.faults)
        metrics_rng = np.random.default_rng(metrics_seq)
        metrics = ScrapedMetrics(env, fleet.scrape_targets, scenario.metrics, metrics_rng, faults)
        sim = cls(scenario, env, fleet, metrics, timeline, tally, listeners)
        sim.clock_origin_s = clock_origin_s(scenario.workload)
        if stream is None:
            stream = request_stream(scenario.workload, workload_seq, scenario.duration_s)
        sim._traffic(iter(stream))
        env.process(sim._schedule())
        return sim

    def _traffic(self, stream) -> None:
        _Traffic(self.env, self.fleet, self.tally, self.timeline, stream).next()

    def _schedule(self):
        for step in self.scenario.schedule:
            yield self.env.timeout(step.at_s - self.env.now)
            self.fleet.set_replicas(step.replicas)

    def state(self) -> ClusterState:
        """What a controller reads now: scale subresource, pods, metrics API."""
        fleet = self.fleet
        return ClusterState(
            now_s=self.env.now,
            spec_replicas=fleet.desired,
            status_replicas=len(fleet.live_replicas()),
            pods=fleet.pod_infos(),
            metrics=self.metrics,
            clock_origin_s=self.clock_origin_s,
        )

    def attach(self, autoscaler: Autoscaler | ControlLoop) -> ControlLoop:
        """Run the control loop every sync period: collect → recommend → safety → actuate (a deployments/scale
        PATCH, which a scale-failure fault makes fail). A bare policy gets its default safety layer."""
        loop = autoscaler if isinstance(autoscaler, ControlLoop) else ControlLoop(autoscaler)
        self.loop = loop

        def sync():
            while True:
                yield self.env.timeout(loop.sync_period_s)
                state = self.state()
                decision = loop.sync(state, unavailable=self.metrics.down_reason()).decision
                if decision.applied != self.fleet.desired:
                    loop.actuated(self.actuate(decision.applied))

        self.env.process(sync())
        return loop

    def actuate(self, replicas: int) -> bool:
        """PATCH deployments/scale: False when a scale-failure fault refuses it (the loop tries again next sync)."""
        if self.faults.active("scale-failure", self.env.now) is not None:
            return False
        self.fleet.set_replicas(replicas)
        return True

    def log_requests(self, path: Path) -> None:
        """Stream every request to ``path`` (requests.csv) as it ends; the run closes the file."""
        self.request_log = RequestLog(path)
        self.done_listeners.append(self.request_log.ended)

    def run(self, progress: bool = False, percentiles: Sequence[float] = PERCENTILES) -> RunResult:
        duration = self.scenario.duration_s
        start = time.perf_counter()
        with tqdm(total=round(duration), unit="sim s", disable=not progress, leave=False) as bar:
            for k in range(1, PROGRESS_CHUNKS + 1):
                self.env.run(until=k * duration / PROGRESS_CHUNKS)
                bar.update(round(k * duration / PROGRESS_CHUNKS) - bar.n)
        wall = time.perf_counter() - start
        self.timeline.close()
        if self.request_log is not None:
            self.request_log.close(self.fleet.in_flight_requests())
        kpis = self.kpis(percentiles)
        warnings = truncation_warnings(kpis, self.scenario) + policy_error_warnings(self.loop)
        return RunResult(kpis, self.timeline.rows(), wall, warnings)

    def kpis(self, percentiles: Sequence[float] = PERCENTILES) -> KPIs:
        """The KPIs so far: ended requests as accumulated, the ones in flight judged now."""
        fleet = self.fleet
        price = price_per_chip_hour(self.scenario, fleet)
        return self.tally.kpis(
            self.scenario.duration_s,
            fleet.in_flight_requests(),
            percentiles,
            ooms=fleet.crashes(),
            scale_events=len(fleet.scale_events),
            **(self.loop.counts.as_kpis() if self.loop is not None else {}),
            chip_hours=fleet.chip_hours(),
            cost_usd=fleet.chip_hours() * price,
        )


class _Ended:
    """Where an ended request goes: the timeline, the KPIs (typed calls in the compiled core), then any listeners."""

    def __init__(self, timeline: Timeline, tally: KPIAccumulator, listeners: list[Callable[[Request], None]]) -> None:
        self.timeline, self.tally, self.listeners = timeline, tally, listeners

    def __call__(self, request: Request) -> None:
        self.timeline.ended(request)
        self.tally.ended(request)
        for listener in self.listeners:
            listener(request)


class _Traffic:
    """The arrivals: each one, when it happens, schedules the next (a callback chain: cheaper than a generator
    process), as a typed queue entry the compiled clock fires in C."""

    def __init__(self, env: Clock, fleet: Fleet, tally: KPIAccumulator, timeline: Timeline, stream) -> None:
        self.env, self.fleet, self.tally, self.timeline = env, fleet, tally, timeline
        self.clock = env.core
        self.upcoming = enumerate(stream)

    def next(self) -> None:
        for i, (t, prompt, output) in self.upcoming:
            schedule(self.clock, t - self.clock.now, _Arrival(self, Request(i, t, prompt, output)))
            return

    def arrive(self, request: Request) -> None:
        self.tally.arrived += 1
        self.timeline.arrivals += 1
        self.fleet.submit(request)
        self.next()


class _Arrival(_Call):
    def __init__(self, traffic: _Traffic, request: Request) -> None:
        self.fn = None
        self.traffic, self.request = traffic, request

    def fire(self) -> None:
        self.traffic.arrive(self.request)


@dataclass(frozen=True)
class RunResult:
    kpis: KPIs
    timeline: list[dict[str, float]]
    wall_s: float
    warnings: list[str] = field(default_factory=list)  # what the numbers alone would not say; printed and kept


TRUNCATION_WARN_SHARE = 0.01


def truncation_warnings(kpis: KPIs, scenario: ScenarioConfig) -> list[str]:
    """A warning when more than 1% of requests had their prompt cut: the latencies are then those of shorter
    prompts than the workload's, and the SLO attainment flatters the fleet."""
    if not kpis.arrived or kpis.truncated_requests <= TRUNCATION_WARN_SHARE * kpis.arrived:
        return []
    pod = scenario.pod
    return [
        f"{kpis.truncated_requests} of {kpis.arrived} requests ({kpis.truncated_requests / kpis.arrived:.1%}) had "
        f"prompts over max_prefill_predict_length ({pod.max_prefill_predict_length}) truncated, dropping "
        f"{kpis.truncated_prompt_tokens} prompt tokens: latencies are those of the truncated prompts. Raise "
        "pod.max_prefill_predict_length (and max_target_length), or set pod.long_prompts: reject to count them "
        "as failed"
    ]


def policy_error_warnings(loop: ControlLoop | None) -> list[str]:
    """A warning when the policy raised at some syncs: the loop held the count (or its fallback decided) there, so
    the run measures the safety layer's answer, not the policy's."""
    if loop is None or not loop.counts.policy_errors:
        return []
    c = loop.counts
    return [
        f"the policy raised at {c.policy_errors} of {c.decisions} syncs, which held the count or fell back instead "
        f"(first: {c.first_error})"
    ]


def empty_fleet_warnings(scenario: ScenarioConfig, autoscaler: Autoscaler | None) -> list[str]:
    """A fleet that starts with no pod: a warning when something can scale it up, an error when nothing can (every
    request would fail as 'no ready pod' and the run would look like a result)."""
    if scenario.fleet.replicas > 0:
        return []
    later = [step for step in scenario.schedule if step.replicas > 0]
    if autoscaler is None and not later:
        raise ValueError(
            f"scenario {scenario.name!r}: fleet.replicas is 0 and nothing scales it up (no agent, no schedule step "
            "above 0), so every request would fail as 'no ready pod'; set fleet.replicas, add a schedule, or run "
            "with --replicas or --agent"
        )
    first = "the agent's first scale-up" if autoscaler is not None else f"the schedule's step at {later[0].at_s:g} s"
    return [
        f"fleet.replicas is 0: requests wait at the gateway (up to fleet.gateway_timeout_s = "
        f"{scenario.fleet.gateway_timeout_s:g} s, then fail as 'no ready pod') until the pods of {first} are Ready"
    ]


def seed_streams(scenario: ScenarioConfig) -> list[np.random.SeedSequence]:
    """The independent random streams of a run: workload, fleet, metrics pipeline."""
    return np.random.SeedSequence(scenario.seed).spawn(3)


def arrivals(scenario: ScenarioConfig) -> list[tuple[float, int, int]]:
    """The exact (time, prompt, output) requests a run of ``scenario`` will see (for clairvoyant planning)."""
    return list(request_stream(scenario.workload, seed_streams(scenario)[0], scenario.duration_s))


def price_per_chip_hour(scenario: ScenarioConfig, fleet: Fleet) -> float:
    price = scenario.pricing.price_per_chip_hour_usd
    if price is None:
        price = fleet.hardware.price_per_chip_hour_usd
    if price is None:
        raise ValueError(f"pricing.price_per_chip_hour_usd: no price for {fleet.hardware.name}; set one")
    return price


def run_scenario(
    scenario: ScenarioConfig,
    progress: bool = False,
    autoscaler: Autoscaler | None = None,
    *,
    percentiles: Sequence[float] = PERCENTILES,
    requests_csv: Path | None = None,
    stream: Iterable[tuple[float, int, int]] | None = None,
) -> RunResult:
    """Run a scenario with its replica schedule, or under ``autoscaler`` (which then replaces the schedule);
    ``requests_csv``: also stream every request there; ``stream``: these requests instead of the workload's."""
    if autoscaler is not None:
        scenario = scenario.model_copy(update={"schedule": []})
    warnings = empty_fleet_warnings(scenario, autoscaler)
    sim = Simulation.build(scenario, stream)
    if requests_csv is not None:
        sim.log_requests(requests_csv)
    if autoscaler is not None:
        sim.attach(autoscaler)
    result = sim.run(progress, percentiles)
    result.warnings[:0] = warnings
    return result

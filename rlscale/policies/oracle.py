"""A clairvoyant oracle: the cheapest replica schedule that meets the SLOs, planned with the future known.

It knows every arrival of the run (the scenario's own seeded stream) and the
start-up delays, and plans in three steps:

1. **Capacity.** The highest Poisson rate one pod sustains within the SLOs,
   measured on the pod model with the scenario's length mix (bisection over
   short single-pod simulations).
2. **Plan.** For each control interval, the pods its arrivals need
   (``ceil(rate · headroom / capacity)``), requested one cold start ahead
   (node provisioning at a high quantile, then pull, load, warm-up), and
   released as soon as the need drops.
3. **Check.** The plan is simulated; while the SLO attainment misses the
   target, the headroom grows and the plan is redone. A pod removed and
   needed again before its node would be released saves nothing, so such
   valleys are filled.
4. **Choose.** The cheapest plan that passes, compared with the cheapest
   fixed replica count that passes (also simulated): on short or flat
   traffic a constant count can beat any schedule.

Its cost is not a proof of optimality: it is a strong reference that a
reactive policy, which learns of load only through lagged metrics, cannot be
expected to beat. :attr:`fluid_chip_hours` is the cost of the same plan with
pods that start instantly — a bound no policy can beat under the capacity
model; the ratio of the two says how much the start-up delays cost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from rlscale.cluster.config import DelaySpec
from rlscale.policies.base import ClusterState
from rlscale.scenario import EmpiricalLengthSpec, PoissonSpec, ScenarioConfig
from rlscale.serving.buckets import prefill_buckets
from rlscale.simulation import arrivals, run_scenario
from rlscale.specs import load_hardware, load_model


class OracleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    interval_s: float = Field(60.0, gt=0, description="Planning interval, s.")
    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(32, ge=1)
    slo_attainment: float = Field(0.99, gt=0, le=1, description="Share of requests within both SLOs to reach.")
    headroom: list[float] = Field(
        default_factory=lambda: [1.0, 1.1, 1.2, 1.35, 1.5, 1.75, 2.0], description="Tried in order until one passes."
    )
    provisioning_quantile_sigmas: float = Field(
        2.0, ge=0, description="Lead time plans for node provisioning at median·exp(k·sigma)."
    )
    capacity_probe_s: float = Field(600.0, gt=0, description="Length of each single-pod capacity probe, s.")


def cold_start_s(scenario: ScenarioConfig, quantile_sigmas: float) -> float:
    """Time from a scale-up to Ready on a new node, at a high quantile of provisioning."""
    life = scenario.fleet.lifecycle
    provisioning = life.node_provisioning
    node_s = _quantile(provisioning, quantile_sigmas)
    weight_load_s = load_model(scenario.pod.model).weight_bytes / life.weight_load_bytes_per_s
    warmup_s = life.warmup_fixed_s + life.warmup_s_per_bucket * len(
        prefill_buckets(scenario.pod.max_prefill_predict_length)
    )
    return node_s + life.image_pull_s + weight_load_s + warmup_s


def _quantile(delay: DelaySpec, sigmas: float) -> float:
    if delay.kind == "fixed":
        return delay.seconds
    if delay.kind == "uniform":
        return delay.high_s
    return delay.median_s * math.exp(sigmas * delay.sigma)


def pod_capacity_per_s(scenario: ScenarioConfig, target: float, probe_s: float, seed: int = 0) -> float:
    """The highest Poisson rate one pod serves with ``target`` of requests within the SLOs (bisection)."""
    workload = scenario.workload
    if workload.trace is not None:  # a trace's length mix, resampled
        workload = workload.model_copy(
            update={"trace": None, "lengths": EmpiricalLengthSpec(trace=workload.trace.path)}
        )

    def meets(rate: float) -> bool:
        probe = scenario.model_copy(
            update={
                "fleet": scenario.fleet.model_copy(update={"replicas": 1}),
                "workload": workload.model_copy(update={"arrival": PoissonSpec(rate_per_s=rate)}),
                "schedule": [],
                "duration_s": probe_s,
                "seed": seed,
            }
        )
        return run_scenario(probe).kpis.slo_attainment >= target

    lo, hi = 0.1, 1.0
    while meets(hi):
        lo, hi = hi, hi * 2
        if hi > 1e4:
            break
    for _ in range(10):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if meets(mid) else (lo, mid)
    return lo


@dataclass
class OraclePlan:
    interval_s: float
    lead_s: float
    need: list[int]  # pods needed in each interval
    schedule: list[int]  # replicas to request in each interval (need looked ahead by the lead time)
    headroom: float
    capacity_per_s: float
    fluid_chip_hours: float
    attempts: list[tuple[float, float, float]] = field(
        default_factory=list
    )  # (headroom, attainment, chip-h); 0 = constant


def plan(
    scenario: ScenarioConfig, config: OracleConfig, capacity_per_s: float, headroom: float, lead_s: float
) -> OraclePlan:
    """Pods per interval for the known arrivals, requested ``lead_s`` ahead."""
    times = np.array([t for t, _, _ in arrivals(scenario)])
    n = math.ceil(scenario.duration_s / config.interval_s)
    counts = np.bincount((times // config.interval_s).astype(int), minlength=n)[:n]
    rates = counts / config.interval_s
    need = [
        int(np.clip(math.ceil(r * headroom / capacity_per_s), config.min_replicas, config.max_replicas)) for r in rates
    ]
    ahead = math.ceil(lead_s / config.interval_s)
    schedule = [max(need[k : k + ahead + 1]) for k in range(n)]
    hold = math.ceil(scenario.fleet.lifecycle.node_scale_down_delay_s / config.interval_s)
    schedule = _fill_valleys(schedule, hold)
    chips = _chips(scenario)
    fluid = sum(need) * config.interval_s / 3600 * chips
    return OraclePlan(config.interval_s, lead_s, need, schedule, headroom, capacity_per_s, fluid)


def _fill_valleys(schedule: list[int], hold: int) -> list[int]:
    """Keep replicas through dips shorter than ``hold`` intervals: their nodes would be held anyway."""
    filled = list(schedule)
    for k in range(len(filled)):
        later = filled[k + 1 : k + 1 + hold]
        if later:
            filled[k] = max(filled[k], min(max(later), max(filled[max(0, k - hold) : k] or [0])))
    return filled


def _chips(scenario: ScenarioConfig) -> int:
    return load_hardware(scenario.pod.hardware).chips_per_host


class ClairvoyantOracle:
    """Replays the cheapest checked plan: at each sync, the replicas it asks for in the current interval."""

    def __init__(self, scenario: ScenarioConfig, config: OracleConfig | None = None) -> None:
        self.config = config or OracleConfig()
        self.sync_period_s = 1.0  # a planner acts on its interval boundaries, not on a controller's sync
        self.plan = self._search(scenario)

    def _check(self, scenario: ScenarioConfig, candidate: OraclePlan) -> tuple[float, float]:
        self.plan = candidate
        kpis = run_scenario(scenario, autoscaler=self).kpis
        candidate.attempts.append((candidate.headroom, kpis.slo_attainment, kpis.chip_hours))
        return kpis.slo_attainment, kpis.chip_hours

    def _search(self, scenario: ScenarioConfig) -> OraclePlan:
        cfg = self.config
        capacity = pod_capacity_per_s(scenario, cfg.slo_attainment, cfg.capacity_probe_s)
        lead = cold_start_s(scenario, cfg.provisioning_quantile_sigmas)
        tried: list[tuple[OraclePlan, float, float]] = []
        for headroom in cfg.headroom:
            candidate = plan(scenario, cfg, capacity, headroom, lead)
            attainment, chip_hours = self._check(scenario, candidate)
            tried.append((candidate, attainment, chip_hours))
            if attainment >= cfg.slo_attainment:
                break
        scheduled = tried[-1][0]
        for replicas in range(max(cfg.min_replicas, 1), cfg.max_replicas + 1):  # the cheapest constant count
            if replicas > max(scheduled.schedule):
                break
            constant = replace(scheduled, schedule=[replicas] * len(scheduled.schedule), headroom=0.0, attempts=[])
            attainment, chip_hours = self._check(scenario, constant)
            tried.append((constant, attainment, chip_hours))
            if attainment >= cfg.slo_attainment:
                break
        passing = [t for t in tried if t[1] >= cfg.slo_attainment]
        best = min(passing, key=lambda t: t[2]) if passing else max(tried, key=lambda t: t[1])
        best[0].attempts = [(p.headroom, a, c) for p, a, c in tried]
        return best[0]

    def recommend(self, state: ClusterState) -> int | None:
        k = min(int(state.now_s // self.plan.interval_s), len(self.plan.schedule) - 1)
        return self.plan.schedule[k]

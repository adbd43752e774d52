"""The guide's sizing procedure, automated: per per-device batch size, the highest request rate within the SLOs.

GKE's guide to autoscaling JetStream sizes a pod by load testing it: raise the request rate, watch where the
batch saturates and where latency breaks, pick the per-device batch size, then set the HPA's target to what the
metric reads at that load. This module does the same on the simulator, or on measured load points
(``rlscale loadtest``), so both give one table:

* **points** (:class:`LoadPoint`): one offered rate on one pod: throughput, TTFT/TPOT percentiles, and the three
  guide metrics averaged over the run (``jetstream_prefill_backlog_size``, ``jetstream_slots_used_percentage``
  as a fraction, HBM ``memory_used / memory_total``);
* **the knee** (:func:`knee`): the highest offered rate at which p99 TTFT and p99 TPOT are within the SLOs and
  nothing failed, every lower rate measured passing too (the first break ends the search: a rate past a break
  that passes again is noise, not capacity);
* **targets** (:func:`hpa_manifests`): the metrics' values at the knee as ``autoscaling/v2`` manifests in the
  form of the shipped agents (``agents/hpa-*.yaml``), so an HPA holding its pods at the target holds each at
  the knee's load. A metric that does not move with load (HBM of a preallocated cache: allocated at start-up)
  gets no manifest, and says why.

On the simulator (:func:`sweep`) a rate's traffic is one draw of the scenario's lengths on a unit-rate Poisson
process, compressed to the rate (common random numbers: a higher rate sees the same requests sooner), so
bisection compares like with like.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from rlscale.kpis import SLO
from rlscale.scenario import ScenarioConfig
from rlscale.serving.config import KVMode
from rlscale.serving.hbm import HBMBudget, PodStartupError
from rlscale.simulation import run_scenario
from rlscale.specs import load_hardware, load_model
from rlscale.workload.build import length_sampler

PERCENTILES = (50.0, 90.0, 99.0)
GUIDE_METRICS = ("prefill_backlog", "slots_used", "hbm_used_frac")
"""The guide's three HPA metrics as timeline columns: backlog (requests), slots used and HBM (fractions)."""
SAMPLE_S = 5.0  # gauge sampling interval of a simulated point, s (a scrape's order of magnitude)
LOAD_SENSITIVE = 0.05  # a metric whose knee value is within 5% of its idle value cannot steer an HPA
DEFAULT_DEPLOYMENT = "maxengine-server"  # the guide's Deployment, as in agents/hpa-*.yaml
MANIFEST_METRICS = {
    # metric -> (HPA metric block, agents/ file it mirrors)
    "prefill_backlog": (
        {"type": "Pods", "pods": {"metric": {"name": "prometheus.googleapis.com|jetstream_prefill_backlog_size|gauge"},
                                  "target": {"type": "AverageValue"}}},
        "hpa-prefill-backlog",
    ),
    "slots_used": (
        {"type": "Pods", "pods": {"metric": {"name": "prometheus.googleapis.com|jetstream_slots_used_percentage|gauge"},
                                  "target": {"type": "AverageValue"}}},
        "hpa-slots-used",
    ),
    "hbm_used_frac": (
        {"type": "External", "external": {"metric": {"name": "memory_used_percentage"}, "target": {"type": "Value"}}},
        "hpa-hbm",
    ),
}  # fmt: skip


@dataclass(frozen=True)
class LoadPoint:
    """One offered rate on one pod: what a load test measures, simulated or real.

    Latencies in s, keyed ``p50``/``p90``/``p99``; the guide metrics are means over the run's samples.
    """

    rate_per_s: float
    throughput_req_per_s: float
    output_tokens_per_s: float
    ttft_s: dict[str, float]
    tpot_s: dict[str, float]
    failed: int
    prefill_backlog: float
    slots_used: float
    hbm_used_frac: float

    def within(self, slo: SLO) -> bool:
        """p99 TTFT and p99 TPOT within the SLOs and nothing failed (NaN, nothing measured, is not within)."""
        return self.ttft_s["p99"] <= slo.ttft_s and self.tpot_s["p99"] <= slo.tpot_s and self.failed == 0


def knee(points: Iterable[LoadPoint], slo: SLO) -> LoadPoint | None:
    """The highest-rate point within the SLOs below the first that is not; None if the lowest rate already fails."""
    best = None
    for point in sorted(points, key=lambda p: p.rate_per_s):
        if not point.within(slo):
            break
        best = point
    return best


@dataclass(frozen=True)
class HBMFit:
    """A batch size's HBM: what is allocated at start-up and whether it fits."""

    slots: int
    static_bytes: float
    total_bytes: float
    fits: bool


def hbm_fit(scenario: ScenarioConfig, per_device_batch_size: int) -> HBMFit:
    """Start-up HBM of the scenario's pod at ``per_device_batch_size`` (weights, workspace, a preallocated cache)."""
    pod = scenario.pod.model_copy(update={"per_device_batch_size": per_device_batch_size})
    model, hardware = load_model(pod.model), load_hardware(pod.hardware)
    slots = per_device_batch_size * hardware.chips_per_host
    try:
        budget = HBMBudget.for_pod(pod, model, hardware, slots)
    except PodStartupError:
        kv = slots * pod.max_target_length * model.kv_bytes_per_token if pod.kv_mode is KVMode.PREALLOCATED else 0
        static = model.weight_bytes + pod.hbm_workspace_fraction * hardware.total_hbm_bytes + kv
        return HBMFit(slots, float(static), hardware.total_hbm_bytes, False)
    return HBMFit(slots, budget.static_bytes, budget.total_bytes, True)


def largest_batch(scenario: ScenarioConfig) -> int:
    """The largest per-device batch size whose slots each hold ``max_target_length`` tokens in HBM: the start-up
    limit of a preallocated cache, the full-context limit of a paged one."""
    pod = scenario.pod
    model, hardware = load_model(pod.model), load_hardware(pod.hardware)
    free = hardware.total_hbm_bytes * (1 - pod.hbm_workspace_fraction) - model.weight_bytes
    per_device_slot = hardware.chips_per_host * pod.max_target_length * model.kv_bytes_per_token
    return max(0, math.floor(free / per_device_slot))


@dataclass(frozen=True)
class UnitTraffic:
    """One draw of a scenario's requests at 1 req/s; :meth:`at` compresses it to any rate (common random numbers)."""

    times_s: np.ndarray
    prompts: np.ndarray
    outputs: np.ndarray

    @classmethod
    def draw(cls, scenario: ScenarioConfig, count: int) -> UnitTraffic:
        rng = np.random.default_rng(np.random.SeedSequence(scenario.seed).spawn(2)[1])
        prompts, outputs = length_sampler(scenario.workload.lengths).sample_batch(rng, count)
        return cls(np.cumsum(rng.exponential(1.0, count)), np.asarray(prompts), np.asarray(outputs))

    def at(self, rate_per_s: float, duration_s: float) -> list[tuple[float, int, int]]:
        times = self.times_s / rate_per_s
        n = int(np.searchsorted(times, duration_s))
        if n == len(times):
            raise ValueError(f"{rate_per_s:g} req/s over {duration_s:g} s needs more than the {n} requests drawn")
        return list(zip(times[:n].tolist(), self.prompts[:n].tolist(), self.outputs[:n].tolist(), strict=True))


def simulate_point(scenario: ScenarioConfig, rate_per_s: float, traffic: UnitTraffic, warmup_s: float) -> LoadPoint:
    """One pod of ``scenario`` at ``rate_per_s`` for its ``duration_s``; the gauges averaged after ``warmup_s``."""
    result = run_scenario(scenario, percentiles=PERCENTILES, stream=traffic.at(rate_per_s, scenario.duration_s))
    k = result.kpis
    rows = [r for r in result.timeline if r["t_s"] > warmup_s] or result.timeline
    gauges = {m: float(np.nanmean([r[m] for r in rows])) for m in GUIDE_METRICS}
    return LoadPoint(rate_per_s, k.throughput_req_per_s, k.output_tokens_per_s, k.ttft_s, k.tpot_s, k.failed, **gauges)


@dataclass
class BatchCapacity:
    """One per-device batch size: its HBM, every point measured, the knee and the targets read there."""

    per_device_batch_size: int
    hbm: HBMFit
    points: list[LoadPoint] = field(default_factory=list)
    knee: LoadPoint | None = None
    idle: LoadPoint | None = None  # the lowest rate measured: where a metric reads at (almost) no load

    def record(self) -> dict[str, Any]:
        return {
            "per_device_batch_size": self.per_device_batch_size,
            "hbm": asdict(self.hbm),
            "knee": asdict(self.knee) if self.knee else None,
            "points": [asdict(p) for p in sorted(self.points, key=lambda p: p.rate_per_s)],
        }


def sweep(
    scenario: ScenarioConfig,
    per_device_batch_size: int,
    *,
    duration_s: float = 600.0,
    warmup_s: float = 60.0,
    tolerance: float = 0.02,
    plot_fractions: Sequence[float] = (0.25, 0.5, 0.75, 0.9, 1.1, 1.25, 1.5),
    on_point: Callable[[LoadPoint], None] | None = None,
) -> BatchCapacity:
    """Find one batch size's knee on the simulator: double the rate from 1 req/s until the SLOs break, bisect to
    ``tolerance`` (relative), then measure ``plot_fractions`` of the knee rate for the figure."""
    fit = hbm_fit(scenario, per_device_batch_size)
    result = BatchCapacity(per_device_batch_size, fit)
    if not fit.fits:
        return result
    pod = scenario.pod.model_copy(update={"per_device_batch_size": per_device_batch_size})
    one_pod = scenario.model_copy(
        update={
            "pod": pod,
            "fleet": scenario.fleet.model_copy(update={"replicas": 1}),
            "schedule": [],
            "duration_s": duration_s,
            "timeline_interval_s": SAMPLE_S,
        }
    )
    slo = SLO(scenario.slo.ttft_p99_s, scenario.slo.tpot_p99_s)
    traffic = UnitTraffic.draw(scenario, 1024)

    def measure(rate: float) -> LoadPoint:
        nonlocal traffic
        needed = int(rate * duration_s * 1.2) + 1024
        if len(traffic.times_s) < needed:
            traffic = UnitTraffic.draw(scenario, needed)
        point = simulate_point(one_pod, rate, traffic, warmup_s)
        result.points.append(point)
        if on_point is not None:
            on_point(point)
        return point

    lo, hi = 0.0, 1.0
    while measure(hi).within(slo):
        lo, hi = hi, hi * 2
        if hi > 1e4:
            break
    while lo == 0.0 or (hi - lo) / lo > tolerance:
        mid = (lo + hi) / 2 if lo else hi / 2
        if lo == 0.0 and mid < 1e-3:
            break
        lo, hi = (mid, hi) if measure(mid).within(slo) else (lo, mid)
    result.knee = knee(result.points, slo)
    if result.knee is not None:
        for fraction in plot_fractions:
            measure(result.knee.rate_per_s * fraction)
        result.knee = knee(result.points, slo)
    result.idle = min(result.points, key=lambda p: p.rate_per_s)
    return result


def targets(capacity: BatchCapacity) -> dict[str, float | str]:
    """The guide metrics' values at the knee, or why a metric cannot serve as a target."""
    if capacity.knee is None:
        return {m: "no rate within the SLOs" for m in GUIDE_METRICS}
    out: dict[str, float | str] = {}
    for metric in GUIDE_METRICS:
        at_knee = getattr(capacity.knee, metric)
        idle = getattr(capacity.idle, metric) if capacity.idle is not None else 0.0
        if not math.isfinite(at_knee):
            out[metric] = "not measured"
        elif abs(at_knee - idle) <= LOAD_SENSITIVE * max(abs(at_knee), 1e-12):
            out[metric] = f"does not move with load ({idle:.3g} idle, {at_knee:.3g} at the knee)"
        else:
            out[metric] = at_knee
    return out


def hpa_manifests(
    capacity: BatchCapacity, deployment: str = DEFAULT_DEPLOYMENT, max_replicas: int = 16
) -> dict[str, dict[str, Any]]:
    """``autoscaling/v2`` manifests, one per guide metric with a usable target (agents/hpa-*.yaml's form), keyed by
    file stem."""
    manifests = {}
    for metric, value in targets(capacity).items():
        if isinstance(value, str):
            continue
        block, stem = MANIFEST_METRICS[metric]
        metric_block = {k: (dict(v) if isinstance(v, dict) else v) for k, v in block.items()}
        source = metric_block[block["type"].lower()]
        source["target"] = {**source["target"], _target_key(source["target"]["type"]): quantity(value)}
        manifests[stem] = {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": f"jetstream-{stem}"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
                "minReplicas": 1,
                "maxReplicas": max_replicas,
                "metrics": [metric_block],
            },
        }
    return manifests


def _target_key(target_type: str) -> str:
    return {"AverageValue": "averageValue", "Value": "value", "Utilization": "averageUtilization"}[target_type]


def quantity(value: float) -> str:
    """A Kubernetes quantity string for a target: three significant digits, never zero (a 0 target is invalid)."""
    value = max(value, 0.001)
    return f"{float(f'{value:.3g}'):g}"


def best(capacities: Sequence[BatchCapacity]) -> BatchCapacity | None:
    """The batch size with the highest throughput within the SLOs (the guide's pick); ties: the smaller batch."""
    fitted = [c for c in capacities if c.knee is not None]
    return max(fitted, key=lambda c: (c.knee.throughput_req_per_s, -c.per_device_batch_size), default=None)


TABLE_HEADER = (
    "batch  slots  HBM GB  fits  knee req/s  tput req/s  out tok/s  TTFT p50/p90/p99 s      "
    "TPOT p50/p90/p99 ms   backlog  slots used  HBM used"
)


def table_lines(capacities: Sequence[BatchCapacity]) -> list[str]:
    """One row per batch size, the guide metrics at its knee."""
    lines = [TABLE_HEADER]
    for c in capacities:
        fits = "yes" if c.hbm.fits else "no"
        head = f"{c.per_device_batch_size:>5}  {c.hbm.slots:>5}  {c.hbm.static_bytes / 1e9:>6.1f}  {fits:>4}"
        k = c.knee
        if k is None:
            lines.append(head + ("  does not fit in HBM" if not c.hbm.fits else "  no rate within the SLOs"))
            continue
        ttft = "/".join(f"{k.ttft_s[q]:.2f}" for q in ("p50", "p90", "p99"))
        tpot = "/".join(f"{k.tpot_s[q] * 1e3:.0f}" for q in ("p50", "p90", "p99"))
        lines.append(
            f"{head}  {k.rate_per_s:>10.2f}  {k.throughput_req_per_s:>10.2f}  {k.output_tokens_per_s:>9.0f}  "
            f"{ttft:<22}  {tpot:<19}  {k.prefill_backlog:>7.2f}  {k.slots_used:>10.2f}  {k.hbm_used_frac:>8.2f}"
        )
    return lines

"""llm-d's workload-variant-autoscaler (WVA) saturation analyzer as a policy: one variant, one model.

A port of the V1 ("percentage-based") analyzer of
llm-d-incubation/workload-variant-autoscaler, ``internal/saturation/analyzer.go``
at 36587f8c5d7b140ecb179dadfeb895362e6826bc (``AnalyzeModelSaturation``,
``isScaleDownSafe``, ``CalculateSaturationTargets``), with the thresholds of
``internal/config/saturation_scaling.go`` at 46f514d8c85261d4367d06ef65343cffcd3695c6,
the ``max_over_time(...[1m])`` queries of ``docs/saturation-analyzer.md`` and the
60 s ``GLOBAL_OPT_INTERVAL`` default. The rules:

* a replica is saturated when its KV-cache use ≥ ``kv_cache_threshold`` or its
  queue ≥ ``queue_length_threshold``;
* spare KV = threshold − use and spare queue = threshold − queue, averaged over
  the non-saturated replicas (0 when every replica is saturated);
* scale up by one when the average spare KV < ``kv_spare_trigger`` or the
  average spare queue < ``queue_spare_trigger``;
* otherwise scale down by one when it is safe: at least 2 non-saturated replicas,
  and their average load × N/(N−1) still leaves both spares ≥ their triggers;
* the target counts *replicas reporting metrics* (±1), and nothing changes while
  the deployment is in transition (spec ≠ status replicas, or fewer replicas
  report than exist: pods still starting), which is upstream's guard against
  cascading scale-ups during a cold start.

The metrics API here returns only each pod's latest sample, so the policy reads
it every ``sample_interval_s`` and keeps each pod's peak over ``peak_window_s``
itself (Prometheus' ``max_over_time`` over the same samples). JetStream exports
``kv_cache_utilization_perc`` in percent (vLLM's ``kv_cache_usage_perc`` is a
fraction), hence ``kv_metric_scale``. Terminating pods are left out, as the
deployment's status replicas leave them out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rlscale.metrics.names import MetricKind
from rlscale.policies.base import ClusterState

MIN_NON_SATURATED_FOR_SCALE_DOWN = 2  # upstream MinNonSaturatedReplicasForScaleDown


class SaturationConfig(BaseModel):
    """WVA's V1 saturation thresholds (upstream defaults) plus replica bounds and timing."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_replicas: int = Field(1, ge=1, description="Lower bound (upstream never scales a variant below 1).")
    max_replicas: int = Field(16, ge=1, description="Upper bound.")
    kv_cache_threshold: float = Field(0.80, ge=0, le=1, description="Saturated at KV-cache use ≥ this (fraction).")
    queue_length_threshold: float = Field(5.0, ge=0, description="Saturated at this many waiting requests.")
    kv_spare_trigger: float = Field(0.10, ge=0, le=1, description="Scale up when average spare KV < this.")
    queue_spare_trigger: float = Field(3.0, ge=0, description="Scale up when average spare queue < this.")
    kv_metric: str = Field("kv_cache_utilization_perc", min_length=1, description="Per-pod KV-cache sample.")
    kv_metric_scale: float = Field(0.01, gt=0, description="Multiplier to a fraction (JetStream exports percent).")
    queue_metric: str = Field("num_requests_waiting", min_length=1, description="Per-pod queue-length sample.")
    interval_s: float = Field(60.0, gt=0, description="Between decisions, s (GLOBAL_OPT_INTERVAL).")
    peak_window_s: float = Field(60.0, ge=0, description="Per-pod peak over this window, s (max_over_time[1m]).")
    sample_interval_s: float = Field(15.0, gt=0, description="How often the metrics API is read, s.")

    @model_validator(mode="after")
    def _check(self) -> SaturationConfig:
        if self.max_replicas < self.min_replicas:
            raise ValueError(f"max_replicas ({self.max_replicas}) must be >= min_replicas ({self.min_replicas})")
        if self.kv_cache_threshold < self.kv_spare_trigger:
            raise ValueError(
                f"kv_cache_threshold ({self.kv_cache_threshold}) must be >= kv_spare_trigger ({self.kv_spare_trigger})"
            )
        if self.interval_s < self.sample_interval_s:
            raise ValueError(f"interval_s ({self.interval_s}) must be >= sample_interval_s ({self.sample_interval_s})")
        return self


@dataclass(frozen=True)
class SaturationAnalysis:
    """``ModelSaturationAnalysis`` for one variant."""

    replicas: int  # replicas reporting metrics
    saturated: frozenset[str]
    non_saturated: int
    avg_spare_kv: float
    avg_spare_queue: float
    scale_up: bool
    scale_down_safe: bool


def analyze(kv: Mapping[str, float], queue: Mapping[str, float], config: SaturationConfig) -> SaturationAnalysis:
    """Upstream's analysis of per-replica KV use (fraction) and queue length; a pod without a queue sample has 0."""
    c = config
    saturated, spare_kv, spare_queue = set(), 0.0, 0.0
    for pod, use in kv.items():
        waiting = queue.get(pod, 0.0)
        if use >= c.kv_cache_threshold or waiting >= c.queue_length_threshold:
            saturated.add(pod)
        else:
            spare_kv += c.kv_cache_threshold - use
            spare_queue += c.queue_length_threshold - waiting
    n = len(kv) - len(saturated)
    avg_kv, avg_queue = (spare_kv / n, spare_queue / n) if n else (0.0, 0.0)
    scale_up = avg_kv < c.kv_spare_trigger or avg_queue < c.queue_spare_trigger
    safe = False
    if n >= MIN_NON_SATURATED_FOR_SCALE_DOWN:  # the non-saturated load spread over one replica fewer
        grow = n / (n - 1)
        safe = (
            c.kv_cache_threshold - (c.kv_cache_threshold - avg_kv) * grow >= c.kv_spare_trigger
            and c.queue_length_threshold - (c.queue_length_threshold - avg_queue) * grow >= c.queue_spare_trigger
        )
    return SaturationAnalysis(len(kv), frozenset(saturated), n, avg_kv, avg_queue, scale_up, safe)


class SaturationPolicy:
    """WVA's saturation-based scaling: one replica up or down per decision, from per-pod peaks."""

    def __init__(self, config: SaturationConfig | None = None) -> None:
        self.config = config or SaturationConfig()
        self.sync_period_s = self.config.sample_interval_s
        self.history: dict[str, dict[str, list[tuple[float, float]]]] = {"kv": {}, "queue": {}}
        self.next_decision_s: float | None = None
        self.last_analysis: SaturationAnalysis | None = None

    def _observe(self, state: ClusterState) -> None:
        c, now = self.config, state.now_s
        kv = {pod: v * c.kv_metric_scale for pod, v in state.metrics.pods_metric(c.kv_metric).items()}
        for key, values in (("kv", kv), ("queue", state.metrics.pods_metric(c.queue_metric))):
            series = self.history[key]
            for pod, value in values.items():
                series.setdefault(pod, []).append((now, float(value)))
            for pod in list(series):  # keep only what the window can still see
                kept = [(t, v) for t, v in series[pod] if t > now - c.peak_window_s or t == now]
                if kept:
                    series[pod] = kept
                else:
                    del series[pod]

    def peaks(self, key: str, pods: set[str]) -> dict[str, float]:
        """Per live pod, the peak of its samples in the window (``max by (pod) (max_over_time(...))``)."""
        return {pod: max(v for _, v in s) for pod, s in self.history[key].items() if pod in pods}

    def metric_refs(self) -> list[tuple[str, MetricKind, str]]:
        """(agent field, kind, name) of every metric it reads, for the load-time check of names."""
        return [
            ("spec.kv_metric", "Pods", self.config.kv_metric),
            ("spec.queue_metric", "Pods", self.config.queue_metric),
        ]

    def recommend(self, state: ClusterState) -> int | None:
        c, now = self.config, state.now_s
        self._observe(state)
        if self.next_decision_s is not None and now < self.next_decision_s - 1e-9:
            return None
        self.next_decision_s = now + c.interval_s
        live = {p.name for p in state.pods if not p.deletion}
        analysis = analyze(self.peaks("kv", live), self.peaks("queue", live), c)
        self.last_analysis = analysis
        reporting = analysis.replicas
        if reporting == 0:
            return None  # no metrics: upstream keeps the current count
        if state.spec_replicas != state.status_replicas or reporting != state.status_replicas:
            return None  # in transition: hold until every replica reports
        target = reporting
        if analysis.scale_up:
            target = reporting + 1
        elif analysis.scale_down_safe and reporting > 1:
            target = reporting - 1
        return min(max(target, c.min_replicas), c.max_replicas)

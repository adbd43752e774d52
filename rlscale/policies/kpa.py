"""The Knative Pod Autoscaler (KPA) as a policy: Knative's algorithm on JetStream's per-pod metrics.

A port of knative/serving at 98e5ef90aa7033797aa0a61ef97f3ff7e49a3944:
``pkg/autoscaler/scaling/autoscaler.go`` (``Scale``: stable/panic desired
counts, rate limits, panic mode), ``pkg/autoscaler/aggregation/bucketing.go``
(``TimedFloat64Buckets``: the window averages), ``pkg/autoscaler/scaling/
multiscaler.go`` (the 2 s tick), ``pkg/autoscaler/config/config.go`` (the
defaults) and ``pkg/reconciler/autoscaling/kpa/scaler.go`` (``applyBounds``).

Where Knative averages a revision's request concurrency, this policy averages
the *total* of one JetStream metric (the guide's ``jetstream_prefill_backlog_size``
by default): the sum over pods of the fresh per-pod values the metrics pipeline
returns. Deliberate differences, each because the input differs:

* Knative scrapes pods every 1 s into 1 s buckets and decides every 2 s; here
  the policy samples the metrics API at each 2 s tick into 2 s buckets. The
  pipeline's samples change only at its 15 s scrapes, so the window averages
  are the same.
* Knative's scraper samples a subset of pods and extrapolates ``mean × ready``;
  here every fresh sample is summed, so a pod not yet scraped adds nothing.
* Scale to zero, activation scale, target burst capacity and scale-down delay
  (default 0) are out of scope: ``min_replicas`` is at least 1. ``target`` is
  the per-pod ``TargetValue`` itself (Knative's target × target utilization).
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rlscale.metrics.names import MetricKind
from rlscale.policies.base import ClusterState

PRECISION = 6  # aggregation.precision: averages are rounded to 6 digits


class KPAConfig(BaseModel):
    """A KPA on one per-pod metric; defaults are Knative's ``config-autoscaler`` defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_replicas: int = Field(1, ge=1, description="Lower bound (Knative min-scale; no scale to zero here).")
    max_replicas: int = Field(16, ge=1, description="Upper bound (Knative max-scale).")
    metric: str = Field("jetstream_prefill_backlog_size", min_length=1, description="Per-pod sample name.")
    target: float = Field(5.0, gt=0, description="Desired metric value per pod (Knative's TargetValue).")
    stable_window_s: float = Field(60.0, ge=6.0, le=3600.0, description="Stable window, s (stable-window).")
    panic_window_percentage: float = Field(
        10.0, ge=1.0, le=100.0, description="Panic window as % of the stable window (panic-window-percentage)."
    )
    panic_threshold_percentage: float = Field(
        200.0, ge=110.0, le=1000.0, description="Panic when panic-desired / ready pods reaches this % (200 = 2x)."
    )
    max_scale_up_rate: float = Field(1000.0, gt=1.0, description="At most ceil(rate × ready pods) (max-scale-up-rate).")
    max_scale_down_rate: float = Field(
        2.0, gt=1.0, description="At least floor(ready pods / rate) (max-scale-down-rate)."
    )
    tick_interval_s: float = Field(2.0, gt=0, description="How often the decider runs, s (multiscaler tickInterval).")

    @model_validator(mode="after")
    def _check(self) -> KPAConfig:
        if self.max_replicas < self.min_replicas:
            raise ValueError(f"max_replicas ({self.max_replicas}) must be >= min_replicas ({self.min_replicas})")
        return self

    @property
    def panic_window_s(self) -> float:
        """``resources.MakeMetric``: the percentage of the stable window, rounded to a second, at least 1 s."""
        return max(1.0, float(round(self.stable_window_s * self.panic_window_percentage / 100.0)))


class TimedBuckets:
    """``aggregation.TimedFloat64Buckets``: a ring of time buckets averaged over a window.

    Times are bucket indices (``floor(t / granularity)``). The average covers
    only the buckets since the first write (a partial window at start-up),
    drops buckets written before a recent gap, and is 0 once a whole window
    passes without a write.
    """

    def __init__(self, window_s: float, granularity_s: float) -> None:
        self.window_s, self.granularity_s = window_s, granularity_s
        self.buckets = [0.0] * math.ceil(window_s / granularity_s - 1e-9)
        self.first_write: int | None = None
        self.last_write: int | None = None
        self.total = 0.0

    def index(self, t: float) -> int:
        return math.floor(t / self.granularity_s + 1e-9)

    def _span_s(self, buckets: int) -> float:
        return buckets * self.granularity_s

    def record(self, now: float, value: float) -> None:
        b, n = self.index(now), len(self.buckets)
        if self.last_write != b:
            if self.last_write is not None and self._span_s(self.last_write - b) >= self.window_s:
                return  # older than a window before the last write: ignored
            if self.first_write is None or self.first_write > b:
                self.first_write = b
            if self.last_write is None or b > self.last_write:
                if self.last_write is None or self._span_s(b - self.last_write) >= self.window_s:
                    self.first_write = b  # a window without writes: start over
                    self.buckets = [0.0] * n
                    self.total = 0.0
                else:  # clear the buckets skipped since the last write
                    for i in range(self.last_write + 1, b + 1):
                        self.total -= self.buckets[i % n]
                        self.buckets[i % n] = 0.0
                self.last_write = b
        self.buckets[b % n] += value
        self.total += value

    def is_empty(self, now: float) -> bool:
        return self.last_write is None or self._span_s(self.index(now) - self.last_write) > self.window_s

    def window_average(self, now: float) -> float:
        if self.last_write is None or self.first_write is None:
            return 0.0
        b, n = self.index(now), len(self.buckets)
        since = b - self.last_write
        written = self.last_write - self.first_write + 1  # inclusive
        if since <= 0:
            return round(self.total / min(written, n), PRECISION)
        if self._span_s(since) < self.window_s:  # no data lately: drop the stale tail, average the rest
            total = self.total - sum(self.buckets[i % n] for i in range(self.last_write + 1, b + 1))
            return round(total / min(written, n - since), PRECISION)
        return 0.0


class KPAPolicy:
    """Knative's decider: stable and panic window averages of the total metric, panic mode, rate limits."""

    def __init__(self, config: KPAConfig | None = None) -> None:
        self.config = config or KPAConfig()
        self.sync_period_s = self.config.tick_interval_s
        self.stable = TimedBuckets(self.config.stable_window_s, self.config.tick_interval_s)
        self.panic = TimedBuckets(self.config.panic_window_s, self.config.tick_interval_s)
        self.panic_time: float | None = None  # last tick over the panic threshold; None when not panicking
        self.max_panic_pods = 0
        self._started = False

    @property
    def panicking(self) -> bool:
        return self.panic_time is not None

    def _start(self, state: ClusterState, ready: int) -> None:
        """``newAutoscaler``: a decider created over more than one pod starts in panic, holding that count.

        (Upstream: after a restart its metric history is gone, so it keeps the scale until it has data.)
        """
        self._started = True
        self.max_panic_pods = ready
        if ready > 1:
            self.panic_time = state.now_s

    def observe(self, state: ClusterState) -> None:
        """The collector's scrape: the total over pods with a fresh sample; nothing when none has one."""
        values = state.metrics.pods_metric(self.config.metric)
        if values:
            total = float(sum(values.values()))
            self.stable.record(state.now_s, total)
            self.panic.record(state.now_s, total)

    def metric_refs(self) -> list[tuple[str, MetricKind, str]]:
        """(agent field, kind, name) of every metric it reads, for the load-time check of names."""
        return [("spec.metric", "Pods", self.config.metric)]

    def recommend(self, state: ClusterState) -> int | None:
        cfg, now = self.config, state.now_s
        ready = sum(p.ready and not p.deletion for p in state.pods)
        if not self._started:
            self._start(state, ready)
        self.observe(state)
        if self.stable.is_empty(now):
            return None  # ErrNoData: no valid scale yet
        ready_f = float(max(1, ready))
        observed_stable, observed_panic = self.stable.window_average(now), self.panic.window_average(now)
        max_scale_up = math.ceil(cfg.max_scale_up_rate * ready_f)
        max_scale_down = math.floor(ready_f / cfg.max_scale_down_rate)  # the revision is reachable
        dspc = math.ceil(observed_stable / cfg.target)
        dppc = math.ceil(observed_panic / cfg.target)
        desired_stable = min(max(dspc, max_scale_down), max_scale_up)
        desired_panic = min(max(dppc, max_scale_down), max_scale_up)

        over_threshold = dppc / ready_f >= cfg.panic_threshold_percentage / 100.0
        if over_threshold:
            self.panic_time = now  # begin panicking, or extend the panic
        elif self.panic_time is not None and self.panic_time + cfg.stable_window_s < now:
            self.panic_time, self.max_panic_pods = None, 0  # the surge is in the stable window now

        desired = desired_stable
        if self.panic_time is not None:
            desired = max(desired, desired_panic)
            self.max_panic_pods = max(self.max_panic_pods, desired)  # never scale down while panicking
            desired = self.max_panic_pods
        return min(max(desired, cfg.min_replicas), cfg.max_replicas)  # applyBounds

"""The metrics pipeline of a real cluster, simulated: scrape → store → adapter → controller.

Each pod is scraped on its own phase within the interval (as Prometheus
spreads targets), one job for JetStream's server metrics and one for the TPU
device plugin. A controller querying at time ``t`` sees only samples
ingested by ``t − adapter_delay_s`` and no older than ``lookback_s``; a pod
without such a sample is *missing*, never zero.

The query side (:class:`MetricsView`) works on flat samples keyed by
Prometheus sample name, so a live controller can serve the same view from
real Prometheus data (``rlscale.deploy`` will).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import simpy

from rlscale.metrics.config import MetricsPipelineConfig
from rlscale.metrics.faults import Faults
from rlscale.serving.metrics import DEVICE_SAMPLE_NAMES
from rlscale.serving.pod import JetStreamPod, PodStatus

SERVER, DEVICE = "jetstream", "tpu"


@dataclass(slots=True)
class Series:
    """One target's scrapes: times and the flat samples taken then."""

    times: list[float] = field(default_factory=list)
    values: list[dict[str, float]] = field(default_factory=list)

    def append(self, t: float, values: dict[str, float]) -> None:
        self.times.append(t)
        self.values.append(values)

    def at(self, t: float, lookback_s: float) -> tuple[float, dict[str, float]] | None:
        """The newest scrape at or before ``t`` and within the lookback, if any."""
        i = bisect_right(self.times, t) - 1
        if i < 0 or t - self.times[i] > lookback_s:
            return None
        return self.times[i], self.values[i]

    def trim(self, before: float) -> None:
        """Forget scrapes no query can reach any more."""
        cut = bisect_right(self.times, before) - 1
        if cut > 0:
            del self.times[:cut], self.values[:cut]


class MetricsUnavailable(RuntimeError):
    """The source cannot give fresh metrics this sync (down, timed out, or every sample stale)."""


class MetricsView(Protocol):
    """What a controller can ask, in a simulation or on a cluster."""

    def pods_metric(self, name: str) -> dict[str, float]: ...

    def external_metric(self, name: str) -> float | None: ...

    def counter_rate(self, name: str, window_s: float) -> dict[str, float]: ...


class ScrapedMetrics:
    """The pipeline in simulated time, fed by pods that the fleet reports as scrape-able."""

    def __init__(
        self,
        env: simpy.Environment,
        targets: Callable[[], Iterable[JetStreamPod]],
        config: MetricsPipelineConfig,
        rng: np.random.Generator,
        faults: Faults | None = None,
    ) -> None:
        self.env, self.config, self.rng, self._targets = env, config, rng, targets
        self.faults = faults or Faults()
        self.refused = 0  # scrapes a scrape-outage refused
        self.series: dict[tuple[str, str], Series] = {}
        self._watched: set[str] = set()
        self.scrapes = 0
        self._latest: dict[str, tuple[tuple, dict[str, dict[str, float]]]] = {}  # per job: (instant, its samples)
        self._external_key: tuple | None = None
        self._external: float | None = None
        self._watch_new_targets()
        env.process(self._discover())

    # ---- collection --------------------------------------------------------------
    def _discover(self):
        while True:
            yield self.env.timeout(self.config.discovery_interval_s)
            self._watch_new_targets()

    def _watch_new_targets(self) -> None:
        for pod in self._targets():
            if pod.name not in self._watched:
                self._watched.add(pod.name)
                for job, interval in (
                    (SERVER, self.config.server_scrape_interval_s),
                    (DEVICE, self.config.tpu_scrape_interval_s),
                ):
                    self.series[(job, pod.name)] = series = Series()
                    if self.env.now == 0:  # Ready before the run began: scraped already, idle until now
                        series.append(-self.config.adapter_delay_s, self._snapshot(pod, job))
                    self.env.process(self._scrape(pod, job, interval))

    def _scrape(self, pod: JetStreamPod, job: str, interval: float):
        yield self.env.timeout(float(self.rng.uniform(0, interval)))  # this target's phase
        series = self.series[(job, pod.name)]
        keep = self.config.adapter_delay_s + self.config.lookback_s + 2 * interval
        while pod.status is not PodStatus.TERMINATED:
            if self.faults.specs and self._refused(pod):
                self.refused += 1
            elif pod.status is PodStatus.RUNNING:  # a restarting server refuses the scrape: no sample
                series.append(self.env.now, self._snapshot(pod, job))
                self.scrapes += 1
                series.trim(self.env.now - keep)
            yield self.env.timeout(interval)
        # the server is gone: once its samples are out of every query's reach, forget them (a fleet that churns
        # pods would otherwise walk every pod it ever had at each query)
        yield self.env.timeout(keep)
        del self.series[(job, pod.name)]
        self._watched.discard(pod.name)

    @staticmethod
    def _snapshot(pod: JetStreamPod, job: str) -> dict[str, float]:
        return pod.metrics.snapshot() if job == SERVER else pod.metrics.device_snapshot()

    def _refused(self, pod: JetStreamPod) -> bool:
        now = self.env.now
        if self.faults.active("scrape-outage", now) is None:
            return False
        return self.faults.scrape_refused(pod.name, [p.name for p in self._targets()], now)

    # ---- the adapter's view ----------------------------------------------------------
    def down_reason(self, now: float | None = None) -> str | None:
        """Why the metrics API cannot answer at ``now`` (an adapter-outage fault), or None when it can."""
        now = self.env.now if now is None else now
        fault = self.faults.active("adapter-outage", now)
        if fault is None:
            return None
        return f"metrics API down (adapter outage {fault.start_s:g}-{fault.end_s:g} s)"

    def _visible(self, now: float) -> float:
        """The newest ingestion time the adapter serves at ``now``: its lag behind, or frozen by stale-metrics."""
        visible = now - self.config.adapter_delay_s
        frozen = self.faults.frozen_at(now)
        return visible if frozen is None else min(visible, frozen - self.config.adapter_delay_s)

    def latest(self, job: str, now: float | None = None) -> dict[str, dict[str, float]]:
        """Per pod, the newest sample visible to the adapter at ``now`` (memoised per job and
        instant: a controller asks for several metrics of the same scrapes)."""
        now = self.env.now if now is None else now
        if self.faults.specs and self.down_reason(now) is not None:
            return {}  # the API does not answer: nothing is visible (the loop sees the outage itself)
        key = (now, self.scrapes)
        memo = self._latest.get(job)
        if memo is not None and memo[0] == key:
            return memo[1]
        latest = self._latest_at(job, now)
        self._latest[job] = (key, latest)
        return latest

    def _latest_at(self, job: str, now: float) -> dict[str, dict[str, float]]:
        visible = self._visible(now)
        out = {}
        for (series_job, pod), series in self.series.items():
            if series_job == job and (hit := series.at(visible, self.config.lookback_s)) is not None:
                out[pod] = hit[1]
        return out

    def pods_metric(self, name: str) -> dict[str, float]:
        """A ``Pods`` metric as the custom-metrics API returns it: per pod, only pods with a fresh sample."""
        job = DEVICE if name in DEVICE_METRICS else SERVER
        return {pod: values[name] for pod, values in self.latest(job).items() if name in values}

    def external_metric(self, name: str) -> float | None:
        """An ``External`` metric: an aggregate over pods, or None when no pod has a fresh sample (memoised per
        instant and scrape, as :meth:`latest`: the safety layer and the observation both ask each sync)."""
        key = (name, self.env.now, self.scrapes)  # what it reads is a function of these (faults too: of the time)
        if self._external_key != key:
            self._external_key, self._external = key, self._external_at(name)
        return self._external

    def _external_at(self, name: str) -> float | None:
        if name == "memory_used_percentage":  # avg(memory_used) / avg(memory_total), as the ai-on-gke adapter rule
            device = self.latest(DEVICE)
            if not device:
                return None
            used = _mean([v["memory_used"] for v in device.values()])
            total = _mean([v["memory_total"] for v in device.values()])
            return float(used / total)
        values = self.pods_metric(name)
        return float(_mean(list(values.values()))) if values else None

    def counter_rate(self, name: str, window_s: float) -> dict[str, float]:
        """Per-pod ``rate(name[window])``: increase per second between the edge samples, counter resets handled."""
        if self.faults.specs and self.down_reason() is not None:
            return {}
        visible = self._visible(self.env.now)
        out = {}
        for (job, pod), series in self.series.items():
            if job != SERVER:
                continue
            lo, hi = bisect_right(series.times, visible - window_s), bisect_right(series.times, visible)
            if hi - lo < 2:
                continue
            increase = 0.0
            for a, b in zip(series.values[lo : hi - 1], series.values[lo + 1 : hi], strict=True):
                delta = b[name] - a[name]
                increase += delta if delta >= 0 else b[name]  # a reset: the counter restarted from zero
            out[pod] = increase / (series.times[hi - 1] - series.times[lo])
        return out


DEVICE_METRICS = DEVICE_SAMPLE_NAMES


def _mean(values: list[float]) -> np.float64:
    """``np.mean(values)`` to the bit (numpy's pairwise sum, then one division) without its wrapper's overhead, which
    is most of the cost for a fleet's few values."""
    return np.add.reduce(np.asarray(values, dtype=np.float64)) / len(values)

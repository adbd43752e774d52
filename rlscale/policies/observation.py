"""The observation a learned policy sees: built from a ClusterState only, so it is the same in simulation and live.

Every feature comes from what a controller can read on a real cluster: the
custom-metrics API (through the scrape/adapter pipeline, lagged and possibly
stale), the pod list and the scale subresource. Nothing from the simulator's
internals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rlscale.policies.base import ClusterState


@dataclass(frozen=True)
class Feature:
    name: str  # as JetStream / Kubernetes name it
    unit: str
    high: float  # values are clipped to [0, high]


FEATURES = (
    Feature("jetstream_prefill_backlog_size (mean over pods)", "requests", 1000.0),
    Feature("jetstream_slots_used_percentage (mean over pods)", "fraction", 1.0),
    Feature("num_requests_waiting (mean over pods)", "requests", 1000.0),
    Feature("memory_used_percentage (External)", "fraction", 1.0),
    Feature("rate(jetstream_request_success_count[1m]) (sum over pods)", "requests/s", 1000.0),
    Feature("pods with fresh metrics / pods", "fraction", 1.0),
    Feature("spec.replicas", "pods", 64.0),
    Feature("ready pods", "pods", 64.0),
    Feature("pods starting (not ready, not terminating)", "pods", 64.0),
)
TIME_FEATURES = (Feature("sin(2π t / period)", "1", 1.0), Feature("cos(2π t / period)", "1", 1.0))
"""t: seconds since a midnight (``ClusterState.now_s + clock_origin_s``): with a period of a day, the time of day of
the traffic's own days in simulation, of UTC on a cluster."""
RATE_WINDOW_S = 60.0
OBSERVED_GAUGES = ("jetstream_prefill_backlog_size", "jetstream_slots_used_percentage", "num_requests_waiting")
OBSERVED_EXTERNAL = ("memory_used_percentage",)


def observation_metric_refs() -> list[tuple[str, str, str]]:
    """(what, kind, name) of the metrics the observation reads, for the safety layer's health check."""
    return [("observation", "Pods", name) for name in OBSERVED_GAUGES] + [
        ("observation", "External", name) for name in OBSERVED_EXTERNAL
    ]


def _mean(values: dict[str, float]) -> float:
    """The mean over pods (a plain sum: numpy's call overhead is many times a fleet's few values)."""
    return float(sum(values.values()) / len(values)) if values else 0.0


class ObservationBuilder:
    """Turns a ClusterState into a fixed-length float32 vector (bounds in :attr:`high`)."""

    def __init__(self, time_period_s: float | None = None) -> None:
        self.time_period_s = time_period_s
        features = FEATURES + (TIME_FEATURES if time_period_s else ())
        self.names = [f.name for f in features]
        self.high = np.array([f.high for f in features], dtype=np.float32)
        self.low = np.array([-1.0 if f in TIME_FEATURES else 0.0 for f in features], dtype=np.float32)

    def __call__(self, state: ClusterState) -> np.ndarray:
        m = state.metrics
        backlog = m.pods_metric("jetstream_prefill_backlog_size")
        live = [p for p in state.pods if not p.deletion]
        ready = sum(p.ready for p in live)
        values = [
            _mean(backlog),
            _mean(m.pods_metric("jetstream_slots_used_percentage")),
            _mean(m.pods_metric("num_requests_waiting")),
            m.external_metric("memory_used_percentage") or 0.0,
            sum(m.counter_rate("jetstream_request_success_count_total", RATE_WINDOW_S).values()),
            len(backlog) / len(live) if live else 0.0,
            float(state.spec_replicas),
            float(ready),
            float(len(live) - ready),
        ]
        if self.time_period_s:
            phase = 2 * math.pi * (state.now_s + state.clock_origin_s) / self.time_period_s
            values += [math.sin(phase), math.cos(phase)]
        return np.clip(np.asarray(values, dtype=np.float32), self.low, self.high)

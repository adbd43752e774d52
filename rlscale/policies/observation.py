"""The observation a learned policy sees: built from a ClusterState only, so it is the same in simulation and live.

Every feature comes from what a controller can read on a real cluster: the
custom-metrics API (through the scrape/adapter pipeline, lagged and possibly
stale), the pod list and the scale subresource. Nothing from the simulator's
internals.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Literal, get_args

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
DEMAND_FEATURES = (
    Feature("the baseline agent's recommendation (residual modes; else spec.replicas)", "pods", 64.0),
    Feature("request rate, mean over the last 5 min", "requests/s", 1000.0),
    Feature("request rate, mean over the last 30 min", "requests/s", 1000.0),
    Feature("request rate, highest over the last 30 min", "requests/s", 1000.0),
    Feature("minutes since the rate was last above 5% of its 30-min mean (silence)", "min", 120.0),
)
"""``features: demand``: what the fleet's request rate did lately, as a controller remembers it from one sync to the
next. Production traffic can stop dead (an upstream outage, a client's batch ending, or the record's own gaps) and
come back at full rate: the rate now cannot tell a fleet "demand is gone" from "demand paused", the last half hour
and the length of the silence can. A sync whose metrics hold no rate at all (no pod with two samples) adds nothing:
missing data is not a rate of 0."""
FeatureSet = Literal["fleet", "demand"]
RATE_WINDOW_S = 60.0
SHORT_S, LONG_S = 300.0, 1800.0  # the demand features' windows
SILENT_SHARE = 0.05  # a rate below this share of its 30-min mean is silence
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

    def reset(self) -> None:
        """A new episode: nothing to forget (the fleet's features are of the instant)."""

    def __call__(self, state: ClusterState, baseline: int | None = None) -> np.ndarray:
        """The vector for ``state``; ``baseline`` (a residual policy's baseline's count) is not a feature here."""
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
        n = len(values)  # a subclass's features follow these
        return np.clip(np.asarray(values, dtype=np.float32), self.low[:n], self.high[:n])


class DemandObservation(ObservationBuilder):
    """:class:`ObservationBuilder`'s features, then :data:`DEMAND_FEATURES`, from a memory of the fleet's rate at
    each sync (the last 30 minutes: bounded, whatever the run's length). Stateful: :meth:`reset` at a new episode.
    Called twice at one instant (the controller records what its policy saw) it answers the same, remembering once.
    """

    def __init__(self, time_period_s: float | None = None) -> None:
        super().__init__(time_period_s)
        self.names += [f.name for f in DEMAND_FEATURES]
        self.high = np.concatenate([self.high, [f.high for f in DEMAND_FEATURES]]).astype(np.float32)
        self.low = np.concatenate([self.low, np.zeros(len(DEMAND_FEATURES))]).astype(np.float32)
        self.reset()

    def reset(self) -> None:
        """Forget the rates seen (a new episode, another fleet)."""
        self._rates: deque[tuple[float, float]] = deque()  # (s, req/s) at each sync within LONG_S
        self._last_active_s: float | None = None
        self._first_s: float | None = None
        self._last: tuple[float, np.ndarray] | None = None

    def __call__(self, state: ClusterState, baseline: int | None = None) -> np.ndarray:
        now = state.now_s
        if self._last is not None and self._last[0] == now:
            return self._last[1]
        fleet = ObservationBuilder.__call__(self, state)
        rates = state.metrics.counter_rate("jetstream_request_success_count_total", RATE_WINDOW_S)
        if rates:
            self._remember(now, float(sum(rates.values())))
        while self._rates and self._rates[0][0] <= now - LONG_S:
            self._rates.popleft()
        recent = [r for t, r in self._rates if t > now - SHORT_S]
        long = [r for _, r in self._rates]
        since = self._last_active_s if self._last_active_s is not None else self._first_s
        demand = [
            float(state.spec_replicas if baseline is None else baseline),
            sum(recent) / len(recent) if recent else 0.0,
            sum(long) / len(long) if long else 0.0,
            max(long, default=0.0),
            (now - since) / 60.0 if since is not None else 0.0,
        ]
        values = np.concatenate([fleet, np.clip(np.asarray(demand, dtype=np.float32), 0.0, self.high[len(fleet) :])])
        self._last = (now, values)
        return values

    def _remember(self, now: float, rate: float) -> None:
        if self._first_s is None:
            self._first_s = now
        before = [r for t, r in self._rates if t > now - LONG_S]
        mean = sum(before) / len(before) if before else 0.0
        if rate > 0 and rate >= SILENT_SHARE * mean:
            self._last_active_s = now
        self._rates.append((now, rate))


def observation_builder(time_period_s: float | None = None, features: FeatureSet = "fleet") -> ObservationBuilder:
    """The observation of an environment or a trained policy: the fleet's (``fleet``) or with the demand memory."""
    if features not in get_args(FeatureSet):
        raise ValueError(f"features: want 'fleet' or 'demand', got {features!r}")
    if features == "demand":
        return DemandObservation(time_period_s)
    return ObservationBuilder(time_period_s)

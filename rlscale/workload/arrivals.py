"""Arrival processes: when requests reach the fleet.

Every process draws from the ``numpy.random.Generator`` it is handed, so a
seed fixes the whole stream. Draws are made in batches (numpy is far faster
per draw that way); a batch that runs past ``until_s`` is simply cut.
Time-varying Poisson processes are sampled by Lewis–Shedler thinning: a
homogeneous stream at the peak rate, each candidate kept with probability
rate(t) / peak, which is exact for any rate bounded by the peak.

Each process is built from its spec (:mod:`rlscale.workload.specs`), where its
parameters are declared and checked once: ``PoissonArrivals(PoissonSpec(...))``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from rlscale.workload.specs import DiurnalSpec, FlashCrowdSpec, MMPPSpec, PoissonSpec, RampSpec, StepSpec

FIRST_BATCH = 256
MAX_BATCH = 65_536


class ArrivalProcess(Protocol):
    def times(self, rng: np.random.Generator, until_s: float) -> Iterator[float]: ...


def _homogeneous(rng: np.random.Generator, rate_per_s: float, until_s: float) -> Iterator[np.ndarray]:
    """Batches of Poisson arrival times at ``rate_per_s`` in [0, until_s), batches growing geometrically."""
    t, n = 0.0, FIRST_BATCH
    while t < until_s:
        batch = rng.exponential(1.0 / rate_per_s, size=n)
        batch[0] += t  # cumsum then adds gaps one by one, exactly as a scalar loop would
        batch = np.cumsum(batch)
        t = float(batch[-1])
        yield batch[batch < until_s]
        n = min(2 * n, MAX_BATCH)


def _thinned(
    rng: np.random.Generator, until_s: float, peak_per_s: float, rate: Callable[[np.ndarray], np.ndarray]
) -> Iterator[float]:
    """Lewis–Shedler thinning of a peak-rate Poisson stream down to ``rate(t)``."""
    if peak_per_s <= 0:
        return
    for candidates in _homogeneous(rng, peak_per_s, until_s):
        keep = rng.random(candidates.size) * peak_per_s < rate(candidates)
        yield from candidates[keep].tolist()


@dataclass(frozen=True)
class PoissonArrivals:
    """Exponential inter-arrival times at ``rate_per_s``."""

    spec: PoissonSpec

    def rate_at(self, t: float) -> float:
        return self.spec.rate_per_s

    def times(self, rng: np.random.Generator, until_s: float) -> Iterator[float]:
        for batch in _homogeneous(rng, self.spec.rate_per_s, until_s):
            yield from batch.tolist()


@dataclass(frozen=True)
class DiurnalArrivals:
    """A daily cycle: rate ``mean·(1 + amplitude·sin(2π(t + phase)/period))``."""

    spec: DiurnalSpec

    def _rate(self, t: np.ndarray) -> np.ndarray:
        s = self.spec
        return s.mean_rate_per_s * (1 + s.amplitude * np.sin(2 * np.pi * (t + s.phase_s) / s.period_s))

    def rate_at(self, t: float) -> float:
        return float(self._rate(np.asarray(t, dtype=float)))

    def times(self, rng: np.random.Generator, until_s: float) -> Iterator[float]:
        return _thinned(rng, until_s, self.spec.mean_rate_per_s * (1 + self.spec.amplitude), self._rate)


@dataclass(frozen=True)
class StepArrivals:
    """Piecewise-constant rate: each ``(start_s, rate_per_s)`` holds until the next start; zero before the first."""

    spec: StepSpec

    def _rate(self, t: np.ndarray) -> np.ndarray:
        starts = np.array([s for s, _ in self.spec.steps])
        rates = np.array([0.0] + [r for _, r in self.spec.steps])
        return rates[np.searchsorted(starts, t, side="right")]

    def rate_at(self, t: float) -> float:
        return float(self._rate(np.asarray(t, dtype=float)))

    def times(self, rng: np.random.Generator, until_s: float) -> Iterator[float]:
        return _thinned(rng, until_s, max(r for _, r in self.spec.steps), self._rate)


@dataclass(frozen=True)
class RampArrivals:
    """Rate moves linearly from ``from_rate_per_s`` to ``to_rate_per_s`` over [start_s, end_s], flat outside."""

    spec: RampSpec

    def _rate(self, t: np.ndarray) -> np.ndarray:
        s = self.spec
        frac = np.clip((t - s.start_s) / (s.end_s - s.start_s), 0.0, 1.0)
        return s.from_rate_per_s + (s.to_rate_per_s - s.from_rate_per_s) * frac

    def rate_at(self, t: float) -> float:
        return float(self._rate(np.asarray(t, dtype=float)))

    def times(self, rng: np.random.Generator, until_s: float) -> Iterator[float]:
        return _thinned(rng, until_s, max(self.spec.from_rate_per_s, self.spec.to_rate_per_s), self._rate)


@dataclass(frozen=True)
class FlashCrowdArrivals:
    """A surge: base rate, linear rise to the peak from ``start_s``, hold, linear decay back to base."""

    spec: FlashCrowdSpec

    @staticmethod
    def _edge(t: np.ndarray, at: float, width: float) -> np.ndarray:
        """0 before ``at``, 1 after ``at + width``, linear between (a step when width is 0)."""
        if width == 0:
            return (t >= at).astype(float)
        return np.clip((t - at) / width, 0.0, 1.0)

    def _rate(self, t: np.ndarray) -> np.ndarray:
        s = self.spec
        decay_at = s.start_s + s.rise_s + s.hold_s
        up = self._edge(t, s.start_s, s.rise_s) - self._edge(t, decay_at, s.decay_s)
        return s.base_rate_per_s + (s.peak_rate_per_s - s.base_rate_per_s) * up

    def rate_at(self, t: float) -> float:
        return float(self._rate(np.asarray(t, dtype=float)))

    def times(self, rng: np.random.Generator, until_s: float) -> Iterator[float]:
        return _thinned(rng, until_s, self.spec.peak_rate_per_s, self._rate)


@dataclass(frozen=True)
class MMPPArrivals:
    """Markov-modulated Poisson process: bursty traffic whose rate switches among states.

    State ``i`` emits at ``rates_per_s[i]`` for an exponential sojourn of mean
    ``mean_sojourn_s[i]``, then jumps to one of the other states uniformly.
    The jump chain is then uniform in the long run, so the time-stationary
    distribution is proportional to the mean sojourns; the first state is
    drawn from it, which makes the process stationary from t = 0.
    """

    spec: MMPPSpec

    @property
    def stationary(self) -> np.ndarray:
        """Long-run fraction of time in each state."""
        sojourns = np.array(self.spec.mean_sojourn_s)
        return sojourns / sojourns.sum()

    @property
    def mean_rate_per_s(self) -> float:
        return float(self.stationary @ np.array(self.spec.rates_per_s))

    def rate_at(self, t: float) -> float:
        """Expected rate at ``t``: constant, because the process starts in its stationary distribution."""
        return self.mean_rate_per_s

    def times(self, rng: np.random.Generator, until_s: float) -> Iterator[float]:
        rates, sojourns = self.spec.rates_per_s, self.spec.mean_sojourn_s
        n = len(rates)
        state = int(rng.choice(n, p=self.stationary))
        t = 0.0
        while t < until_s:
            end = t + rng.exponential(sojourns[state])
            # Given their number, Poisson arrivals in a sojourn are uniform over it. The whole sojourn is
            # drawn even past until_s, so a shorter horizon gives a prefix of the same stream.
            arrivals = np.sort(rng.uniform(t, end, size=rng.poisson(rates[state] * (end - t))))
            yield from arrivals[arrivals < until_s].tolist()
            t = end
            state = (state + 1 + int(rng.integers(n - 1))) % n


# The process each spec builds (the client pool, which needs its service's data, is built in rlscale.workload.build).
PROCESSES: dict[type, type[ArrivalProcess]] = {
    PoissonSpec: PoissonArrivals,
    DiurnalSpec: DiurnalArrivals,
    StepSpec: StepArrivals,
    RampSpec: RampArrivals,
    FlashCrowdSpec: FlashCrowdArrivals,
    MMPPSpec: MMPPArrivals,
}

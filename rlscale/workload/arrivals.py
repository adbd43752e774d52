"""Arrival processes: when requests reach the fleet.

Every process draws from the ``numpy.random.Generator`` it is handed, so a
seed fixes the whole stream. Draws are made in batches (numpy is far faster
per draw that way); a batch that runs past ``until_s`` is simply cut.
Time-varying Poisson processes are sampled by Lewis–Shedler thinning: a
homogeneous stream at the peak rate, each candidate kept with probability
rate(t) / peak, which is exact for any rate bounded by the peak.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

FIRST_BATCH = 256
MAX_BATCH = 65_536


class ArrivalProcess(Protocol):
    def times(self, rng: np.random.Generator, until_s: float) -> Iterator[float]: ...


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


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

    rate_per_s: float

    def __post_init__(self) -> None:
        _require(self.rate_per_s > 0, f"rate_per_s must be > 0, got {self.rate_per_s}")

    def rate_at(self, t: float) -> float:
        return self.rate_per_s

    def times(self, rng: np.random.Generator, until_s: float) -> Iterator[float]:
        for batch in _homogeneous(rng, self.rate_per_s, until_s):
            yield from batch.tolist()


@dataclass(frozen=True)
class DiurnalArrivals:
    """A daily cycle: rate ``mean·(1 + amplitude·sin(2π(t + phase)/period))``."""

    mean_rate_per_s: float
    amplitude: float
    period_s: float = 86_400.0
    phase_s: float = 0.0

    def __post_init__(self) -> None:
        _require(self.mean_rate_per_s > 0, f"mean_rate_per_s must be > 0, got {self.mean_rate_per_s}")
        _require(0 <= self.amplitude <= 1, f"amplitude must be in [0, 1], got {self.amplitude}")
        _require(self.period_s > 0, f"period_s must be > 0, got {self.period_s}")
        _require(math.isfinite(self.phase_s), f"phase_s must be finite, got {self.phase_s}")

    def _rate(self, t: np.ndarray) -> np.ndarray:
        return self.mean_rate_per_s * (1 + self.amplitude * np.sin(2 * np.pi * (t + self.phase_s) / self.period_s))

    def rate_at(self, t: float) -> float:
        return float(self._rate(np.asarray(t, dtype=float)))

    def times(self, rng: np.random.Generator, until_s: float) -> Iterator[float]:
        return _thinned(rng, until_s, self.mean_rate_per_s * (1 + self.amplitude), self._rate)


@dataclass(frozen=True)
class StepArrivals:
    """Piecewise-constant rate: each ``(start_s, rate_per_s)`` holds until the next start; zero before the first."""

    steps: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        steps = tuple((float(s), float(r)) for s, r in self.steps)  # lists from YAML become hashable tuples
        object.__setattr__(self, "steps", steps)
        _require(len(steps) > 0, "steps must hold at least one (start_s, rate_per_s) pair, got none")
        for i, (start, rate) in enumerate(steps):
            _require(start >= 0, f"steps[{i}] start_s must be >= 0, got {start}")
            _require(rate >= 0, f"steps[{i}] rate_per_s must be >= 0, got {rate}")
            if i > 0:
                prev = steps[i - 1][0]
                _require(start > prev, f"steps[{i}] start_s must be > steps[{i - 1}] start_s ({prev}), got {start}")
        _require(any(r > 0 for _, r in steps), f"steps must have some rate_per_s > 0, got {steps}")

    def _rate(self, t: np.ndarray) -> np.ndarray:
        starts = np.array([s for s, _ in self.steps])
        rates = np.array([0.0] + [r for _, r in self.steps])
        return rates[np.searchsorted(starts, t, side="right")]

    def rate_at(self, t: float) -> float:
        return float(self._rate(np.asarray(t, dtype=float)))

    def times(self, rng: np.random.Generator, until_s: float) -> Iterator[float]:
        return _thinned(rng, until_s, max(r for _, r in self.steps), self._rate)


@dataclass(frozen=True)
class RampArrivals:
    """Rate moves linearly from ``from_rate_per_s`` to ``to_rate_per_s`` over [start_s, end_s], flat outside."""

    from_rate_per_s: float
    to_rate_per_s: float
    start_s: float
    end_s: float

    def __post_init__(self) -> None:
        _require(self.from_rate_per_s >= 0, f"from_rate_per_s must be >= 0, got {self.from_rate_per_s}")
        _require(self.to_rate_per_s >= 0, f"to_rate_per_s must be >= 0, got {self.to_rate_per_s}")
        _require(
            self.from_rate_per_s > 0 or self.to_rate_per_s > 0,
            f"from_rate_per_s or to_rate_per_s must be > 0, got {self.from_rate_per_s} and {self.to_rate_per_s}",
        )
        _require(self.start_s >= 0, f"start_s must be >= 0, got {self.start_s}")
        _require(self.end_s > self.start_s, f"end_s must be > start_s ({self.start_s}), got {self.end_s}")

    def _rate(self, t: np.ndarray) -> np.ndarray:
        frac = np.clip((t - self.start_s) / (self.end_s - self.start_s), 0.0, 1.0)
        return self.from_rate_per_s + (self.to_rate_per_s - self.from_rate_per_s) * frac

    def rate_at(self, t: float) -> float:
        return float(self._rate(np.asarray(t, dtype=float)))

    def times(self, rng: np.random.Generator, until_s: float) -> Iterator[float]:
        return _thinned(rng, until_s, max(self.from_rate_per_s, self.to_rate_per_s), self._rate)


@dataclass(frozen=True)
class FlashCrowdArrivals:
    """A surge: base rate, linear rise to the peak from ``start_s``, hold, linear decay back to base."""

    base_rate_per_s: float
    peak_rate_per_s: float
    start_s: float
    rise_s: float
    hold_s: float
    decay_s: float

    def __post_init__(self) -> None:
        _require(self.base_rate_per_s >= 0, f"base_rate_per_s must be >= 0, got {self.base_rate_per_s}")
        _require(
            self.peak_rate_per_s > 0 and self.peak_rate_per_s >= self.base_rate_per_s,
            f"peak_rate_per_s must be > 0 and >= base_rate_per_s ({self.base_rate_per_s}), got {self.peak_rate_per_s}",
        )
        for name in ("start_s", "rise_s", "hold_s", "decay_s"):
            value = getattr(self, name)
            _require(value >= 0, f"{name} must be >= 0, got {value}")

    @staticmethod
    def _edge(t: np.ndarray, at: float, width: float) -> np.ndarray:
        """0 before ``at``, 1 after ``at + width``, linear between (a step when width is 0)."""
        if width == 0:
            return (t >= at).astype(float)
        return np.clip((t - at) / width, 0.0, 1.0)

    def _rate(self, t: np.ndarray) -> np.ndarray:
        decay_at = self.start_s + self.rise_s + self.hold_s
        up = self._edge(t, self.start_s, self.rise_s) - self._edge(t, decay_at, self.decay_s)
        return self.base_rate_per_s + (self.peak_rate_per_s - self.base_rate_per_s) * up

    def rate_at(self, t: float) -> float:
        return float(self._rate(np.asarray(t, dtype=float)))

    def times(self, rng: np.random.Generator, until_s: float) -> Iterator[float]:
        return _thinned(rng, until_s, self.peak_rate_per_s, self._rate)


@dataclass(frozen=True)
class MMPPArrivals:
    """Markov-modulated Poisson process: bursty traffic whose rate switches among states.

    State ``i`` emits at ``rates_per_s[i]`` for an exponential sojourn of mean
    ``mean_sojourn_s[i]``, then jumps to one of the other states uniformly.
    The jump chain is then uniform in the long run, so the time-stationary
    distribution is proportional to the mean sojourns; the first state is
    drawn from it, which makes the process stationary from t = 0.
    """

    rates_per_s: tuple[float, ...]
    mean_sojourn_s: tuple[float, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "rates_per_s", tuple(float(r) for r in self.rates_per_s))
        object.__setattr__(self, "mean_sojourn_s", tuple(float(s) for s in self.mean_sojourn_s))
        n = len(self.rates_per_s)
        _require(n >= 2, f"rates_per_s must have at least 2 states, got {self.rates_per_s}")
        _require(
            len(self.mean_sojourn_s) == n,
            f"mean_sojourn_s must have one entry per state ({n}), got {self.mean_sojourn_s}",
        )
        for i, (rate, sojourn) in enumerate(zip(self.rates_per_s, self.mean_sojourn_s, strict=True)):
            _require(rate >= 0, f"rates_per_s[{i}] must be >= 0, got {rate}")
            _require(sojourn > 0, f"mean_sojourn_s[{i}] must be > 0, got {sojourn}")
        _require(any(r > 0 for r in self.rates_per_s), f"rates_per_s must have some rate > 0, got {self.rates_per_s}")

    @property
    def stationary(self) -> np.ndarray:
        """Long-run fraction of time in each state."""
        sojourns = np.array(self.mean_sojourn_s)
        return sojourns / sojourns.sum()

    @property
    def mean_rate_per_s(self) -> float:
        return float(self.stationary @ np.array(self.rates_per_s))

    def rate_at(self, t: float) -> float:
        """Expected rate at ``t``: constant, because the process starts in its stationary distribution."""
        return self.mean_rate_per_s

    def times(self, rng: np.random.Generator, until_s: float) -> Iterator[float]:
        n = len(self.rates_per_s)
        state = int(rng.choice(n, p=self.stationary))
        t = 0.0
        while t < until_s:
            end = t + rng.exponential(self.mean_sojourn_s[state])
            # Given their number, Poisson arrivals in a sojourn are uniform over it. The whole sojourn is
            # drawn even past until_s, so a shorter horizon gives a prefix of the same stream.
            arrivals = np.sort(rng.uniform(t, end, size=rng.poisson(self.rates_per_s[state] * (end - t))))
            yield from arrivals[arrivals < until_s].tolist()
            t = end
            state = (state + 1 + int(rng.integers(n - 1))) % n

"""Arrival processes. Only what the single-pod job needs lives here for now."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PoissonArrivals:
    """Exponential inter-arrival times at ``rate_per_s``."""

    rate_per_s: float

    def __post_init__(self) -> None:
        if self.rate_per_s <= 0:
            raise ValueError(f"rate_per_s must be > 0, got {self.rate_per_s}")

    def times(self, rng: np.random.Generator, until_s: float) -> Iterator[float]:
        t = 0.0
        while True:
            t += rng.exponential(1.0 / self.rate_per_s)
            if t >= until_s:
                return
            yield t

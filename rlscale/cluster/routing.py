"""Load balancing across Ready pods."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from rlscale.cluster.config import Routing
from rlscale.serving.pod import JetStreamPod


class Router(Protocol):
    def choose(self, ready: Sequence[JetStreamPod]) -> JetStreamPod:
        """Pick one of ``ready`` (never empty)."""
        ...


class RoundRobin:
    """kube-proxy/HTTP front end rotating over endpoints."""

    def __init__(self) -> None:
        self._next = 0

    def choose(self, ready: Sequence[JetStreamPod]) -> JetStreamPod:
        pod = ready[self._next % len(ready)]
        self._next += 1
        return pod


class RandomChoice:
    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def choose(self, ready: Sequence[JetStreamPod]) -> JetStreamPod:
        return ready[int(self.rng.integers(len(ready)))]


class LeastOutstanding:
    """The pod with the fewest requests in flight; ties broken at random (inference gateway)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def choose(self, ready: Sequence[JetStreamPod]) -> JetStreamPod:
        loads = [p.in_flight for p in ready]
        least = min(loads)
        ties = [p for p, load in zip(ready, loads, strict=True) if load == least]
        return ties[0] if len(ties) == 1 else ties[int(self.rng.integers(len(ties)))]


def make_router(kind: Routing, rng: np.random.Generator) -> Router:
    if kind is Routing.ROUND_ROBIN:
        return RoundRobin()
    if kind is Routing.RANDOM:
        return RandomChoice(rng)
    return LeastOutstanding(rng)

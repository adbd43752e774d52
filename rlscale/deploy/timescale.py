"""The controller's clock: simulated seconds, which run ``speed``× faster than wall seconds against an emulator.

``rlscale emulate --speed K`` runs the fleet at K simulated seconds per wall second, while Prometheus (and every
HTTP timeout) keeps wall time. A policy trained on the simulator decides every 15 *simulated* seconds and reads
rates per *simulated* second, so the controller thinks in simulated time and converts at its edges, all here:

* :meth:`TimeScale.__call__` is "now" in simulated seconds (epoch-anchored: at speed 1 it is the wall clock), the
  clock of the sync period, the staleness rule, the Lease timings and ``ClusterState.now_s``;
* :meth:`wall_s` turns a simulated span into the wall span to wait (or a PromQL range window: :meth:`promql_window`);
* :meth:`sim_s` turns a wall span (the age of a Prometheus sample) into simulated seconds;
* :meth:`per_sim_s` turns a rate per wall second (PromQL's ``rate()``) into one per simulated second.

On a real cluster the speed is 1 and every conversion is the identity.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class TimeScale:
    """Simulated time at ``speed`` simulated seconds per wall second of the ``wall`` clock (epoch seconds)."""

    def __init__(self, speed: float = 1.0, wall: Callable[[], float] = time.time) -> None:
        if not speed > 0:
            raise ValueError(f"clock speed must be > 0 simulated seconds per wall second, got {speed}")
        self.speed, self.wall = float(speed), wall
        self._origin = wall()  # simulated and wall time agree here

    @classmethod
    def of(cls, clock: TimeScale | Callable[[], float]) -> TimeScale:
        """``clock`` itself, or a plain wall clock (tests inject one) at speed 1."""
        return clock if isinstance(clock, TimeScale) else cls(1.0, clock)

    def __call__(self) -> float:
        """Now, in simulated seconds."""
        wall = self.wall()
        return wall if self.speed == 1.0 else self._origin + (wall - self._origin) * self.speed

    def wall_s(self, sim_s: float) -> float:
        """How many wall seconds a simulated span takes."""
        return sim_s / self.speed

    def sim_s(self, wall_s: float) -> float:
        """How many simulated seconds a wall span holds."""
        return wall_s * self.speed

    def per_sim_s(self, per_wall_s: float) -> float:
        """A rate per wall second as a rate per simulated second."""
        return per_wall_s / self.speed

    def promql_window(self, sim_s: float) -> str:
        """A PromQL range for a simulated window: Prometheus stores wall time (``60s``; ``4000ms`` at speed 15)."""
        return promql_duration(self.wall_s(sim_s))


def promql_duration(seconds: float) -> str:
    """A Prometheus duration: whole seconds as ``60s``, else milliseconds (``2500ms``); at least 1 ms."""
    ms = max(1, round(seconds * 1000))
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"

"""Faults on the control path, as scenario data (``faults:``), so holds and fallbacks happen in simulation too.

* ``scrape-outage``: the pods' ``/metrics`` stop answering (all of them, or the first ``share`` of them by name):
  their series go stale once the lookback passes, and the controller sees partial, then no, metrics.
* ``adapter-outage``: the custom/external metrics API (or Prometheus) stops answering: the controller's query
  fails, so it knows at once that it has no metrics (a live controller's ``MetricsUnavailable``).
* ``stale-metrics``: ingestion stalls: the adapter keeps serving the samples it had when the fault began, which
  look fresh until they are older than the lookback.
* ``scale-failure``: every PATCH of the scale subresource fails (an API-server outage, a webhook refusing).

A window is ``[start_s, start_s + duration_s)`` of simulated time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import Field

from rlscale.config import StrictModel

FaultKind = Literal["scrape-outage", "adapter-outage", "stale-metrics", "scale-failure"]


class FaultSpec(StrictModel):
    kind: FaultKind
    start_s: float = Field(ge=0, description="When the fault begins, simulated s.")
    duration_s: float = Field(gt=0, description="How long it lasts, s.")
    share: float = Field(
        1.0, gt=0, le=1, description="scrape-outage: the fraction of pods that stop answering (the first by name)."
    )

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s

    def covers(self, t: float) -> bool:
        return self.start_s <= t < self.end_s


class Faults:
    """A scenario's faults, asked by time."""

    def __init__(self, specs: Sequence[FaultSpec] = ()) -> None:
        self.specs = tuple(specs)

    def active(self, kind: FaultKind, t: float) -> FaultSpec | None:
        return next((f for f in self.specs if f.kind == kind and f.covers(t)), None)

    def scrape_refused(self, pod: str, pods: Sequence[str], t: float) -> bool:
        """Whether ``pod``'s /metrics refuses a scrape at ``t`` (``pods``: every target, to pick the first share)."""
        fault = self.active("scrape-outage", t)
        if fault is None:
            return False
        ordered = sorted(pods)
        down = max(1, round(fault.share * len(ordered)))
        return pod in ordered[:down]

    def frozen_at(self, t: float) -> float | None:
        """The instant the adapter's view froze at, while a stale-metrics fault covers ``t``."""
        fault = self.active("stale-metrics", t)
        return None if fault is None else fault.start_s

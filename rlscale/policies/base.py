"""What every autoscaling policy sees and answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from rlscale.metrics.pipeline import MetricsView
from rlscale.pods import PodInfo


@dataclass(frozen=True)
class ClusterState:
    """A controller's view at one sync: what the Kubernetes and custom-metrics APIs return."""

    now_s: float
    spec_replicas: int  # deployments/scale .spec.replicas
    status_replicas: int  # deployments/scale .status.replicas (pods not terminating)
    pods: tuple[PodInfo, ...]  # the pods the selector matches, terminating ones included
    metrics: MetricsView
    clock_origin_s: float = 0.0  # now_s + this: s since a midnight (the record's first, or the epoch's on a cluster)

    @property
    def time_of_day_s(self) -> float:
        """Seconds since the last midnight: of the traffic's own days in simulation (a production day played from
        16:00 reads 57600 at its start), of UTC on a cluster (the controller's clock is epoch seconds)."""
        return (self.now_s + self.clock_origin_s) % 86_400.0


class Autoscaler(Protocol):
    """A policy: every ``sync_period_s`` it may recommend a new replica count."""

    sync_period_s: float

    def recommend(self, state: ClusterState) -> int | None:
        """The desired replica count, or None to leave the scale as it is."""
        ...


def plan_record(autoscaler: object) -> dict[str, Any] | None:
    """What a planning autoscaler chose before the run and how long planning took (its optional ``plan_record()``:
    the oracle, the static search), so the run's results say it; None for a policy that does not plan."""
    record = getattr(autoscaler, "plan_record", None)
    return record() if callable(record) else None

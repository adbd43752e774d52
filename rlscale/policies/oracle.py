"""The clairvoyant oracle as a policy: it replays a plan made with the future known.

The plan — the cheapest replica schedule that meets the SLOs, found by simulating the run itself — is made above
the simulator (:func:`rlscale.planning.oracle.plan_oracle`, where the method is described); this policy only
carries it out: at each sync, the replicas the plan asks for in the current interval. :class:`OraclePlan` is what
the planner hands over and what the run records (:meth:`OraclePlan.record`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from rlscale.policies.base import ClusterState


class Attempt(NamedTuple):
    """One checked plan: a schedule at ``headroom``, or the constant count ``replicas`` (headroom 0)."""

    headroom: float
    replicas: int | None
    attainment: float
    chip_hours: float


@dataclass
class OraclePlan:
    """Replicas to request per planning interval, with what the planner measured, tried and checked."""

    interval_s: float
    lead_s: float
    need: list[int]  # pods needed in each interval
    schedule: list[int]  # replicas to request in each interval (need looked ahead by the lead time)
    headroom: float  # 0 for a constant count
    capacity_per_s: float
    fluid_chip_hours: float
    attempts: list[Attempt] = field(default_factory=list)  # every plan checked, in order (on the chosen plan)
    target: float = math.nan  # the SLO attainment it had to reach
    attainment: float = math.nan  # its checked attainment: the run's own
    chip_hours: float = math.nan  # its checked cost
    met_target: bool = False
    planning_s: float = 0.0  # capacity probes, plans and checks, s (the run itself not included)

    def record(self) -> dict[str, Any]:
        """The plan as JSON-able data: what was chosen, everything checked, whether it met the target."""
        constant = self.headroom == 0 and len(set(self.schedule)) == 1
        return {
            "kind": "ClairvoyantOracle",
            "interval_s": self.interval_s,
            "lead_s": self.lead_s,
            "capacity_per_s": self.capacity_per_s if math.isfinite(self.capacity_per_s) else None,
            "headroom": self.headroom,
            "constant_replicas": self.schedule[0] if constant and self.schedule else None,
            "schedule": run_length(self.schedule, self.interval_s),
            "target": self.target,
            "attainment": self.attainment,
            "chip_hours": self.chip_hours,
            "fluid_chip_hours": self.fluid_chip_hours,
            "met_target": self.met_target,
            "attempts": [a._asdict() for a in self.attempts],
            "planning_s": self.planning_s,
        }


def run_length(schedule: Sequence[int], interval_s: float) -> list[list[float | int]]:
    """``[[start_s, replicas], ...]``: a schedule as the times its count changes (a day of minutes stays short)."""
    runs: list[list[float | int]] = []
    for k, replicas in enumerate(schedule):
        if not runs or runs[-1][1] != replicas:
            runs.append([k * interval_s, replicas])
    return runs


class ClairvoyantOracle:
    """Replays ``plan``: at each sync, the replicas it asks for in the current interval (the last one after its
    end). A planner acts on its interval boundaries, not on a controller's sync, so it syncs every second."""

    def __init__(self, plan: OraclePlan) -> None:
        self.plan = plan
        self.sync_period_s = 1.0

    def plan_record(self) -> dict[str, Any]:
        """What was planned and checked, for summary.json and the comparison (see :meth:`OraclePlan.record`)."""
        return self.plan.record()

    def recommend(self, state: ClusterState) -> int | None:
        k = min(int(state.now_s // self.plan.interval_s), len(self.plan.schedule) - 1)
        return self.plan.schedule[k]

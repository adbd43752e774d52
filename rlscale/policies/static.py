"""A fixed replica count: set at the first sync, never changed.

The best static provisioning is the baseline every autoscaler must beat on
cost: a policy that spends more chip-hours than the cheapest fixed count
meeting the same SLO has gained nothing from scaling. The search for that
count simulates the scenario, so it lives above the simulator
(:mod:`rlscale.planning.static`); this policy only carries its answer out.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rlscale.policies.base import ClusterState


class StaticConfig(BaseModel):
    """``replicas``: a count, or ``cheapest``: the smallest count meeting the SLO on ``seeds`` of the scenario."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    replicas: int | Literal["cheapest"] = Field("cheapest", description="Fixed count, or 'cheapest' to search.")
    min_replicas: int = Field(1, ge=1, description="Search from here; a fixed count may not be below it.")
    max_replicas: int = Field(16, ge=1, description="Search up to here; a fixed count may not be above it.")
    seeds: list[int] = Field([0, 1, 2], min_length=1, description="Scenario seeds every searched run must pass.")
    slo_attainment: float = Field(0.99, gt=0, le=1, description="Required fraction of ended requests within SLO.")
    sync_period_s: float = Field(1.0, gt=0, description="When the count is set (the first sync), s.")

    @model_validator(mode="after")
    def _check(self) -> StaticConfig:
        if self.max_replicas < self.min_replicas:
            raise ValueError(f"max_replicas ({self.max_replicas}) must be >= min_replicas ({self.min_replicas})")
        if isinstance(self.replicas, int) and not self.min_replicas <= self.replicas <= self.max_replicas:
            raise ValueError(f"replicas ({self.replicas}) must be within [{self.min_replicas}, {self.max_replicas}]")
        if any(seed < 0 for seed in self.seeds):
            raise ValueError("seeds must be >= 0")
        return self


class StaticPolicy:
    """Sets ``replicas`` at the first sync, then never changes the scale. ``plan``: the search that chose the count
    (``rlscale.planning.static.StaticSearch.record``), kept so that the run says how it was chosen."""

    def __init__(self, replicas: int, sync_period_s: float = 1.0, plan: dict[str, Any] | None = None) -> None:
        if replicas < 1:
            raise ValueError(f"replicas must be >= 1, got {replicas}")
        self.replicas, self.sync_period_s = replicas, sync_period_s
        self.plan = plan
        self._set = False

    def plan_record(self) -> dict[str, Any] | None:
        """The search's record when the count was searched (``replicas: cheapest``); None for a count given."""
        return self.plan

    def recommend(self, state: ClusterState) -> int | None:
        if self._set:
            return None
        self._set = True
        return self.replicas

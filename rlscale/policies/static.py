"""A fixed replica count, and the search for the cheapest fixed count that meets the SLO.

The best static provisioning is the baseline every autoscaler must beat on
cost: a policy that spends more chip-hours than the cheapest fixed count
meeting the same SLO has gained nothing from scaling.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rlscale.policies.base import ClusterState
from rlscale.scenario import ScenarioConfig
from rlscale.simulation import run_scenario


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
    """Sets ``replicas`` at the first sync, then never changes the scale."""

    def __init__(self, replicas: int, sync_period_s: float = 1.0) -> None:
        if replicas < 1:
            raise ValueError(f"replicas must be >= 1, got {replicas}")
        self.replicas, self.sync_period_s = replicas, sync_period_s
        self._set = False

    def recommend(self, state: ClusterState) -> int | None:
        if self._set:
            return None
        self._set = True
        return self.replicas


def with_fixed_replicas(scenario: ScenarioConfig, replicas: int, seed: int | None = None) -> ScenarioConfig:
    """``scenario`` with ``replicas`` Ready from t=0 and no schedule (optionally another seed)."""
    update: dict = {"fleet": scenario.fleet.model_copy(update={"replicas": replicas}), "schedule": []}
    if seed is not None:
        update["seed"] = seed
    return scenario.model_copy(update=update)


def meets_slo(scenario: ScenarioConfig, replicas: int, seeds: Iterable[int], slo_attainment: float = 0.99) -> bool:
    """Whether every seed's run with ``replicas`` fixed reaches the attainment.

    Failed requests (OOM, gateway timeout) already count against
    ``slo_attainment`` (it is over requests that ended); a run where nothing
    ended (NaN) fails.
    """
    for seed in seeds:
        attained = run_scenario(with_fixed_replicas(scenario, replicas, seed)).kpis.slo_attainment
        if math.isnan(attained) or attained < slo_attainment:
            return False
    return True


def cheapest_static_replicas(
    scenario: ScenarioConfig,
    seeds: Iterable[int],
    max_replicas: int,
    slo_attainment: float = 0.99,
    min_replicas: int = 1,
) -> int | None:
    """The smallest fixed count in ``[min_replicas, max_replicas]`` whose runs on all ``seeds`` meet the attainment.

    Searched upward, stopping at the first that passes (attainment is not
    strictly monotone in the count under random routing, so the first pass is
    what is returned, not a bisection's guess); None if none passes.
    """
    seeds = list(seeds)
    for replicas in range(min_replicas, max_replicas + 1):
        if meets_slo(scenario, replicas, seeds, slo_attainment):
            return replicas
    return None

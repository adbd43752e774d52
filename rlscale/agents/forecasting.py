"""``kind: ForecastingAutoscaler``: the forecasting autoscaler (:mod:`rlscale.policies.forecast`) with its floor HPA
loaded, and its capacity measured (the oracle's single-pod probe) or its horizon derived (a cold start) on the
scenario when the file asks for it. The planner, and with it the simulator, is imported only then: a live controller
gives both as numbers and loads the policy without either. Registered in :data:`rlscale.agents.loader.KINDS`.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rlscale.agents.loader import AgentContext, AgentFile, load_hpa_beside
from rlscale.policies.base import Autoscaler
from rlscale.policies.forecast import ForecastConfig, ForecastingAutoscaler
from rlscale.specs.catalog import SpecError, validate

CAPACITY_SEED_OFFSET = 1  # a forecasting agent's capacity probe draws the scenario's traffic with seed + 1


class ForecastFile(AgentFile):
    spec: ForecastConfig = ForecastConfig()


def forecasting(doc: dict[str, Any], ctx: AgentContext) -> Autoscaler:
    path, scenario, progress = ctx.path, ctx.scenario, ctx.progress
    spec = validate(ForecastFile, doc, str(path)).spec
    floor = None if spec.floor_hpa is None else load_hpa_beside(path, "spec.floor_hpa", spec.floor_hpa, scenario)
    if spec.initial_state is not None and not Path(spec.initial_state).is_absolute():
        spec = spec.model_copy(update={"initial_state": str(path.parent / spec.initial_state)})
    capacity, horizon, started = spec.capacity_per_pod_per_s, spec.horizon_s, time.perf_counter()
    if capacity is None or horizon == "cold-start":
        field = "spec.capacity_per_pod_per_s: null" if capacity is None else "spec.horizon_s: cold-start"
        if scenario is None:
            raise SpecError(f"{path}: {field} is measured on a scenario; pass the scenario or give the value")
        # the simulator, only when measuring; the policy module never imports it
        from rlscale.planning.oracle import cold_start_s, pod_capacity_per_s

        if capacity is None:  # on another draw of the scenario's traffic: its mix, not this run's arrivals
            probed = scenario.model_copy(update={"seed": scenario.seed + CAPACITY_SEED_OFFSET})
            with tqdm(desc="forecast: capacity probe", unit="sim", disable=not progress, leave=False) as bar:
                capacity = pod_capacity_per_s(probed, spec.capacity_slo_attainment, spec.capacity_probe_s, bar=bar)
            if not math.isfinite(capacity):
                raise SpecError(f"{path}: {field}: nothing arrives in scenario {scenario.name!r} to measure on")
        if horizon == "cold-start":
            horizon = cold_start_s(scenario, spec.provisioning_quantile_sigmas)
    planning_s = time.perf_counter() - started
    return ForecastingAutoscaler(spec, capacity_per_s=capacity, horizon_s=horizon, floor=floor, planning_s=planning_s)

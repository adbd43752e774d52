"""The cheapest fixed replica count that meets the SLO, found by simulating the scenario on several seeds.

The answer is carried out by :class:`rlscale.policies.static.StaticPolicy`, which records this search
(:meth:`StaticSearch.record`) so that a run says how its count was chosen.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from rlscale.scenario import ScenarioConfig
from rlscale.simulation import run_scenario


def with_fixed_replicas(scenario: ScenarioConfig, replicas: int, seed: int | None = None) -> ScenarioConfig:
    """``scenario`` with ``replicas`` Ready from t=0 and no schedule (optionally another seed)."""
    update: dict = {"fleet": scenario.fleet.model_copy(update={"replicas": replicas}), "schedule": []}
    if seed is not None:
        update["seed"] = seed
    return scenario.model_copy(update=update)


def seed_attainments(
    scenario: ScenarioConfig,
    replicas: int,
    seeds: Iterable[int],
    slo_attainment: float = 0.99,
    on_run: Callable[[], None] | None = None,
) -> list[float]:
    """The attainment of each seed's run with ``replicas`` fixed, stopping at the first that misses (the rest
    cannot make the count pass). ``on_run`` is called after each run (a progress bar's ``update``)."""
    attained: list[float] = []
    for seed in seeds:
        attained.append(run_scenario(with_fixed_replicas(scenario, replicas, seed)).kpis.slo_attainment)
        if on_run is not None:
            on_run()
        if not _passes(attained[-1], slo_attainment):
            break
    return attained


def _passes(attainment: float, target: float) -> bool:
    return not math.isnan(attainment) and attainment >= target


def _all_pass(attained: list[float], seeds: list[int], target: float) -> bool:
    """Every seed ran (the runs stop at the first miss) and passed."""
    return len(attained) == len(seeds) and all(_passes(a, target) for a in attained)


def meets_slo(scenario: ScenarioConfig, replicas: int, seeds: Iterable[int], slo_attainment: float = 0.99) -> bool:
    """Whether every seed's run with ``replicas`` fixed reaches the attainment.

    Failed requests (OOM, gateway timeout) already count against
    ``slo_attainment`` (it is over requests that ended); a run where nothing
    ended (NaN) fails.
    """
    seeds = list(seeds)
    return _all_pass(seed_attainments(scenario, replicas, seeds, slo_attainment), seeds, slo_attainment)


@dataclass
class StaticSearch:
    """What the search for the cheapest fixed count tried and chose (``replicas`` None: nothing in range passed)."""

    replicas: int | None
    seeds: list[int]
    target: float
    min_replicas: int
    max_replicas: int
    tried: list[tuple[int, list[float]]] = field(default_factory=list)  # (count, attainment per seed run)
    planning_s: float = 0.0

    def record(self) -> dict[str, Any]:
        """The search as JSON-able data, for summary.json and the comparison."""
        return {
            "kind": "StaticReplicas",
            "replicas": self.replicas,
            "met_target": self.replicas is not None,
            "target": self.target,
            "seeds": self.seeds,
            "min_replicas": self.min_replicas,
            "max_replicas": self.max_replicas,
            "tried": [{"replicas": n, "attainment": attained} for n, attained in self.tried],
            "planning_s": self.planning_s,
        }


def search_static(
    scenario: ScenarioConfig,
    seeds: Iterable[int],
    max_replicas: int,
    slo_attainment: float = 0.99,
    min_replicas: int = 1,
    progress: bool = False,
) -> StaticSearch:
    """The smallest fixed count in ``[min_replicas, max_replicas]`` whose runs on all ``seeds`` meet the attainment,
    with every count tried and the search's own time; ``progress`` shows the runs on stderr.

    Searched upward, stopping at the first that passes (attainment is not
    strictly monotone in the count under random routing, so the first pass is
    what is returned, not a bisection's guess).
    """
    start = time.perf_counter()
    seeds = list(seeds)
    search = StaticSearch(None, seeds, slo_attainment, min_replicas, max_replicas)
    with tqdm(desc="static: simulations run", unit="run", disable=not progress, leave=False) as bar:
        for replicas in range(min_replicas, max_replicas + 1):
            bar.set_postfix_str(f"{replicas} replicas")
            attained = seed_attainments(scenario, replicas, seeds, slo_attainment, on_run=bar.update)
            search.tried.append((replicas, attained))
            if _all_pass(attained, seeds, slo_attainment):
                search.replicas = replicas
                break
    search.planning_s = time.perf_counter() - start
    return search


def cheapest_static_replicas(
    scenario: ScenarioConfig,
    seeds: Iterable[int],
    max_replicas: int,
    slo_attainment: float = 0.99,
    min_replicas: int = 1,
) -> int | None:
    """The count :func:`search_static` chooses; None if none in range passes."""
    return search_static(scenario, seeds, max_replicas, slo_attainment, min_replicas).replicas

"""Tune an HPA the guide's way, automated: search its targets and behaviour for the cheapest setting within the SLOs.

The guide's recipe: start the prefill-backlog target at 3–5 and raise it until
latency reaches the preference; start the slots-used target just below 1 and
lower it until latency is met. Here Optuna searches each metric's target over
its usable range, and (optionally) the behaviour knobs the guide names
(scale-down stabilization window and rate), over several seeds. A setting is
feasible when every seed reaches the SLO attainment; the answer is the
cheapest feasible setting, or an explicit "none".

The search edits the manifest itself, so the result is a manifest to paste
back into the cluster.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rlscale.policies.hpa import HPAPolicy, sample_name
from rlscale.scenario import ScenarioConfig
from rlscale.simulation import run_scenario

# usable range of each metric's target: (low, high, log scale)
TARGET_RANGES = {
    "jetstream_prefill_backlog_size": (1.0, 100.0, True),
    "jetstream_slots_used_percentage": (0.3, 1.0, False),
    "memory_used_percentage": (0.3, 1.0, False),
    "num_requests_waiting": (1.0, 100.0, True),
    "kv_cache_utilization_perc": (30.0, 100.0, False),
}


@dataclass(frozen=True)
class Knob:
    """One tunable field of the manifest."""

    name: str
    path: tuple[str | int, ...]
    low: float
    high: float
    log: bool = False
    step: float | None = None

    def suggest(self, trial: Any) -> float:
        if self.step is not None:
            return trial.suggest_float(self.name, self.low, self.high, step=self.step)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)


def knobs_for(manifest: dict, behaviour: bool = True) -> list[Knob]:
    """Each metric's target, and the scale-down stabilization window and rate if ``behaviour``."""
    knobs = []
    for i, metric in enumerate(manifest["spec"]["metrics"]):
        kind = metric["type"].lower()
        target = metric[kind]["target"]
        key = "averageValue" if "averageValue" in target else "value"
        name = sample_name(metric[kind]["metric"]["name"])
        current = float(target[key])
        low, high, log = TARGET_RANGES.get(name, (current / 4, current * 4, True))
        knobs.append(Knob(f"target/{name}", ("spec", "metrics", i, kind, "target", key), low, high, log))
    if behaviour:
        down = ("spec", "behavior", "scaleDown")
        knobs.append(Knob("scale_down/stabilization_s", (*down, "stabilizationWindowSeconds"), 0, 600, step=15))
        knobs.append(Knob("scale_down/percent_per_min", (*down, "policies", 0, "value"), 10, 100, step=10))
    return knobs


def with_values(manifest: dict, knobs: Sequence[Knob], values: dict[str, float]) -> dict:
    """A copy of the manifest with the knobs set (quantities written as strings, seconds as integers)."""
    doc = copy.deepcopy(manifest)
    for knob in knobs:
        value = values[knob.name]
        *parents, leaf = knob.path
        node = doc
        for key in parents:
            if isinstance(key, int):
                while len(node) <= key:
                    node.append({"type": "Percent", "periodSeconds": 60})
                node = node[key]
            else:
                node = node.setdefault(key, [] if key == "policies" else {})
        if leaf in ("stabilizationWindowSeconds", "value") and "target" not in parents:
            node[leaf] = int(value)
        else:
            node[leaf] = f"{value:.4g}"
    return doc


@dataclass
class Evaluation:
    values: dict[str, float]
    cost_usd: float  # mean over seeds
    chip_hours: float
    slo_attainment: float  # worst seed
    feasible: bool


@dataclass
class TuneResult:
    best: Evaluation | None  # None: no setting met the SLOs
    best_manifest: dict | None
    trials: list[Evaluation] = field(default_factory=list)


def evaluate(
    manifest: dict, scenario: ScenarioConfig, seeds: Sequence[int], slo_attainment: float, values: dict[str, float]
) -> Evaluation:
    costs, hours, attainments = [], [], []
    for seed in seeds:
        kpis = run_scenario(
            scenario.model_copy(update={"seed": seed}), autoscaler=HPAPolicy.from_manifest(manifest)
        ).kpis
        costs.append(kpis.cost_usd)
        hours.append(kpis.chip_hours)
        attainments.append(0.0 if math.isnan(kpis.slo_attainment) else kpis.slo_attainment)
    worst = min(attainments)
    return Evaluation(values, sum(costs) / len(costs), sum(hours) / len(hours), worst, worst >= slo_attainment)


def tune(
    manifest: dict,
    scenario: ScenarioConfig,
    seeds: Sequence[int],
    n_trials: int,
    slo_attainment: float = 0.99,
    behaviour: bool = True,
    sampler: Any = None,
    seed: int = 0,
    progress: bool = False,
) -> TuneResult:
    """Search the manifest's knobs with Optuna (TPE with the SLO as a constraint unless a sampler is given)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    knobs = knobs_for(manifest, behaviour)
    trials: list[Evaluation] = []

    def objective(trial: optuna.Trial) -> float:
        values = {k.name: k.suggest(trial) for k in knobs}
        result = evaluate(with_values(manifest, knobs, values), scenario, seeds, slo_attainment, values)
        trial.set_constraint("slo_attainment", slo_attainment - result.slo_attainment)  # feasible when <= 0
        trials.append(result)
        return result.cost_usd

    sampler = sampler or optuna.samplers.TPESampler(seed=seed)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    study.optimize(objective, n_trials=n_trials, show_progress_bar=progress)
    feasible = [t for t in trials if t.feasible]
    best = min(feasible, key=lambda t: t.cost_usd) if feasible else None
    return TuneResult(best, with_values(manifest, knobs, best.values) if best else None, trials)

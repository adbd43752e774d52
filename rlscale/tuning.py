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

Past one machine, Optuna stays the search algorithm and drives it by ask and
tell: a batch of settings is proposed, its (setting, seed) runs go out on the
executor (a local pool or Ray tasks), and the batch is told back in proposal
order. Ray Tune's Optuna searcher would tell results in the order trials
finish, so the settings proposed next — and the answer — would depend on the
cluster's timing; here they depend only on the seeds and ``batch``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rlscale.experiments.cells import CellStore, run_cells
from rlscale.experiments.executors import LocalExecutor, RayExecutor
from rlscale.experiments.runner import RunFailed
from rlscale.metrics.names import check_metric_name
from rlscale.policies.hpa import HPAPolicy, sample_name
from rlscale.scenario import ScenarioConfig
from rlscale.simulation import run_scenario

# usable range of each metric's target: (low, high, log scale). Slots and HBM reach low: with 8k prompts a pod is
# prefill-bound and meets the SLOs with 5-30% of its slots in use, and under a paged KV cache the weights alone are
# ~13% of a v5e-8's HBM (envs/production-day.yaml); log scale, so the low end is searched as finely as the high.
TARGET_RANGES = {
    "jetstream_prefill_backlog_size": (1.0, 100.0, True),
    "jetstream_slots_used_percentage": (0.05, 1.0, True),
    "memory_used_percentage": (0.1, 1.0, True),
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
class TrialResult:
    """One setting of the manifest, run on every seed: what it costs and whether it is feasible."""

    values: dict[str, float]
    cost_usd: float  # mean over seeds
    chip_hours: float
    slo_attainment: float  # worst seed
    feasible: bool


@dataclass
class TuneResult:
    best: TrialResult | None  # None: no setting met the SLOs
    best_manifest: dict | None
    trials: list[TrialResult] = field(default_factory=list)
    skipped: int = 0  # (setting, seed) runs a resumed search found stored and did not run again
    closest: TrialResult | None = None  # no setting met the SLOs: the best attainment (then the cheapest)
    closest_manifest: dict | None = None


def trial_records(result: TuneResult) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The search's trials and its best one as plain records, for the MLflow sink (``track_tuning``)."""
    return [asdict(t) for t in result.trials], None if result.best is None else asdict(result.best)


@dataclass(frozen=True)
class SeedRun:
    """One work unit of a search: one setting of the manifest under one seed. Picklable, so any executor runs it."""

    manifest: dict
    scenario: ScenarioConfig
    seed: int

    @property
    def label(self) -> str:
        return f"seed{self.seed}"


@dataclass(frozen=True)
class SeedRunKey:
    """A unit's identity across submissions: the search, a digest of the setting's whole manifest and the scenario,
    and the seed. The same setting asked again (a resumed search re-asks the same settings) finds its result."""

    search: str
    setting: str
    seed: int

    @property
    def label(self) -> str:
        return f"{self.setting[:16]}__seed{self.seed}"


def key_of(search: str, unit: SeedRun) -> SeedRunKey:
    doc = {"manifest": unit.manifest, "scenario": unit.scenario.model_dump(mode="json")}
    digest = hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()
    return SeedRunKey(search, digest, unit.seed)


def run_seed(unit: SeedRun) -> dict[str, float]:
    """Simulate one setting under one seed; a worker's whole job. A failure names the seed."""
    try:
        kpis = run_scenario(
            unit.scenario.model_copy(update={"seed": unit.seed}), autoscaler=HPAPolicy.from_manifest(unit.manifest)
        ).kpis
    except Exception as exc:
        raise RunFailed(f"tuning {unit.scenario.name}, {unit.label}: {type(exc).__name__}: {exc}") from None
    attainment = 0.0 if math.isnan(kpis.slo_attainment) else kpis.slo_attainment
    return {"cost_usd": kpis.cost_usd, "chip_hours": kpis.chip_hours, "slo_attainment": attainment}


def summarize_seeds(values: dict[str, float], runs: Sequence[dict[str, float]], slo_attainment: float) -> TrialResult:
    """Mean cost and chip-hours over the seeds; feasible when the worst seed reaches ``slo_attainment``."""
    worst = min(r["slo_attainment"] for r in runs)
    return TrialResult(
        values,
        sum(r["cost_usd"] for r in runs) / len(runs),
        sum(r["chip_hours"] for r in runs) / len(runs),
        worst,
        worst >= slo_attainment,
    )


def evaluate(
    manifest: dict, scenario: ScenarioConfig, seeds: Sequence[int], slo_attainment: float, values: dict[str, float]
) -> TrialResult:
    """One setting over ``seeds``, here and in order."""
    runs = [run_seed(SeedRun(manifest, scenario, seed)) for seed in seeds]
    return summarize_seeds(values, runs, slo_attainment)


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
    *,
    batch: int = 1,
    executor: LocalExecutor | RayExecutor | None = None,
    cells: CellStore | None = None,
    resume: bool = False,
    search: str = "tune",
) -> TuneResult:
    """Search the manifest's knobs with Optuna (TPE with the SLO as a constraint unless a sampler is given).

    Optuna proposes ``batch`` settings at a time (ask); every (setting, seed) of the batch runs on ``executor``
    (default: here, one at a time); the batch is told back in proposal order. The trials depend on ``batch`` and the
    seeds only, never on the executor or the order runs finish in, so a local and a Ray search with the same
    arguments return the same trials. With ``batch`` > 1, TPE's constant liar keeps a batch's proposals apart.
    With ``cells`` each run is stored under its :class:`SeedRunKey`; with ``resume`` stored runs are reused.
    """
    import optuna
    from tqdm import tqdm

    if batch < 1:
        raise ValueError(f"batch: must be at least 1, got {batch}")
    for where, kind, name in HPAPolicy.from_manifest(manifest).metric_refs():  # a typo would never scale
        check_metric_name(name, kind, where)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    executor = executor or LocalExecutor(1)
    knobs = knobs_for(manifest, behaviour)
    sampler = sampler or optuna.samplers.TPESampler(seed=seed, constant_liar=batch > 1)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    result = TuneResult(None, None)
    with tqdm(total=n_trials * len(seeds), unit="run", desc=f"tune {scenario.name}", disable=not progress) as bar:
        exhausted = False
        while len(result.trials) < n_trials:
            asked = [study.ask() for _ in range(min(batch, n_trials - len(result.trials)))]
            settings = [{k.name: k.suggest(trial) for k in knobs} for trial in asked]
            units = [SeedRun(with_values(manifest, knobs, v), scenario, s) for v in settings for s in seeds]
            keys = [key_of(search, unit) for unit in units]
            if cells is not None and resume:
                result.skipped += cells.count(keys)
            runs = run_cells(executor, run_seed, units, keys, cells, resume, on_done=bar.update)
            for i, (trial, values) in enumerate(zip(asked, settings, strict=True)):
                evaluation = summarize_seeds(values, runs[i * len(seeds) : (i + 1) * len(seeds)], slo_attainment)
                trial.set_constraint("slo_attainment", slo_attainment - evaluation.slo_attainment)  # feasible <= 0
                exhausted |= _tell(study, trial, evaluation.cost_usd)
                result.trials.append(evaluation)
            if exhausted:
                break
    feasible = [t for t in result.trials if t.feasible]
    result.best = min(feasible, key=lambda t: t.cost_usd) if feasible else None
    result.best_manifest = with_values(manifest, knobs, result.best.values) if result.best else None
    if result.best is None and result.trials:  # what a user compares with when nothing passed, said to miss
        result.closest = min(result.trials, key=lambda t: (-t.slo_attainment, t.cost_usd))
        result.closest_manifest = with_values(manifest, knobs, result.closest.values)
    return result


def _tell(study: Any, trial: Any, value: float) -> bool:
    """Tell ``study`` the trial's value; True when the sampler asked to stop (grid and brute-force samplers do when
    their space is exhausted). Optuna only lets ``Study.stop`` run inside ``optimize``, so under ask-and-tell the
    request arrives as a RuntimeError, after the trial is recorded."""
    try:
        study.tell(trial, value)
    except RuntimeError as exc:
        if "Study.stop" not in str(exc):
            raise
        return True
    return False


TRIALS_CSV, TRIALS_PNG = "trials.csv", "trials.png"


def write_outputs(
    result: TuneResult, folder: Path, agent_name: str, slo_attainment: float, title: str
) -> dict[str, Path]:
    """``trials.csv`` (one row per trial: the knobs, mean cost and chip-hours, worst-seed attainment, feasible),
    ``trials.png`` and, when a setting met the SLO, ``<agent>.tuned.yaml``: the manifest to apply; when none did,
    ``<agent>.closest.yaml``: the setting with the best worst-seed attainment, its header saying that it misses."""
    import csv

    import yaml

    from rlscale.plots import tuning_plot

    folder.mkdir(parents=True, exist_ok=True)
    files = {TRIALS_CSV: folder / TRIALS_CSV, TRIALS_PNG: folder / TRIALS_PNG}
    names = list(result.trials[0].values) if result.trials else []
    with files[TRIALS_CSV].open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*names, "cost_usd", "chip_hours", "worst_slo_attainment", "feasible"])
        for t in result.trials:
            writer.writerow([*(t.values[n] for n in names), t.cost_usd, t.chip_hours, t.slo_attainment, t.feasible])
    best = result.trials.index(result.best) if result.best is not None else None
    costs, attainments = [t.cost_usd for t in result.trials], [t.slo_attainment for t in result.trials]
    tuning_plot(costs, attainments, slo_attainment, best, files[TRIALS_PNG], title)
    if result.best_manifest is not None:
        files["tuned"] = folder / f"{agent_name}.tuned.yaml"
        files["tuned"].write_text(yaml.safe_dump(result.best_manifest, sort_keys=False))
    elif result.closest_manifest is not None and result.closest is not None:
        files["closest"] = folder / f"{agent_name}.closest.yaml"
        header = (
            f"# {title}: no setting met {slo_attainment:.0%} SLO attainment on every seed. This is the one closest to\n"
            f"# it, {result.closest.slo_attainment:.2%} worst-seed attainment at ${result.closest.cost_usd:,.2f} mean "
            "cost: it misses the objective.\n"
        )
        files["closest"].write_text(header + yaml.safe_dump(result.closest_manifest, sort_keys=False))
    return files

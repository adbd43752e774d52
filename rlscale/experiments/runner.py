"""Run every (scenario, agent, seed) of an experiment, in parallel processes or Ray tasks (``executors``).

Each run is independent and seeded, and results are put back in experiment
order, so the numbers do not depend on the number of workers or on which run
finishes first. A worker receives paths, not objects: it loads the scenario and
builds the agent itself, so nothing stateful crosses a process boundary, and it
returns plain dicts. Each run is a cell keyed (experiment, scenario, agent, seed): stored as it finishes, so a
resumed sweep runs only the cells it lacks.
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rlscale.experiments.cells import CellStore, run_cells
from rlscale.experiments.config import Experiment
from rlscale.experiments.executors import LocalExecutor, RayExecutor


class RunFailed(RuntimeError):
    """One run of an experiment raised; the message names the run."""


@dataclass(frozen=True)
class RunSpec:
    """What a worker needs to reproduce one run: file paths (as strings, to pickle cheaply) and numbers."""

    scenario_path: str
    agent_path: str
    seed: int
    duration_s: float | None

    @property
    def label(self) -> str:
        return f"{Path(self.scenario_path).stem}__{Path(self.agent_path).stem}__seed{self.seed}"


@dataclass(frozen=True)
class RunRecord:
    """One finished run: who, under what seed, its KPIs (``KPIs.as_dict()``), wall time (the simulation's) and
    timeline rows; for a planning agent (oracle, static search) its plan record and planning time besides."""

    scenario: str
    agent: str
    seed: int
    kpis: dict[str, Any]
    wall_s: float
    timeline: list[dict[str, float]]
    planning_s: float = 0.0
    plan: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        return f"{self.scenario}__{self.agent}__seed{self.seed}"

    @property
    def plan_met_target(self) -> bool | None:
        """Whether the planner's checked plan met its own target; None for an agent that does not plan."""
        return None if self.plan is None else bool(self.plan.get("met_target", True))


def run_specs(experiment: Experiment) -> list[RunSpec]:
    """The experiment's runs in report order: scenario, then agent, then seed."""
    return [
        RunSpec(str(scenario_path), str(agent_path), seed, experiment.config.duration_s)
        for scenario_path in experiment.scenario_paths
        for agent_path in experiment.agent_paths
        for seed in experiment.seeds
    ]


def run_one(spec: RunSpec) -> dict[str, Any]:
    """Load, seed and run one (scenario, agent) pair; a worker's whole job. Returns a plain dict."""
    from rlscale.agents import load_control_loop
    from rlscale.policies.base import plan_record
    from rlscale.scenario import load_scenario
    from rlscale.simulation import run_scenario

    try:
        scenario = load_scenario(spec.scenario_path)
        update: dict[str, Any] = {"seed": spec.seed}
        if spec.duration_s is not None:
            update["duration_s"] = spec.duration_s
        scenario = scenario.model_copy(update=update)
        loop = load_control_loop(spec.agent_path, scenario)  # no planning progress: a bar per worker is noise
        result = run_scenario(scenario, autoscaler=loop)
    except Exception as exc:
        # Re-raised as a plain message that names the run and pickles whatever the original held; the worker's
        # traceback rides along as a note.
        failed = RunFailed(f"{spec.label}: {type(exc).__name__}: {exc}")
        failed.add_note(traceback.format_exc())
        raise failed from None
    plan = plan_record(loop.policy)
    return {
        "scenario": scenario.name,
        "agent": Path(spec.agent_path).stem,
        "seed": spec.seed,
        "kpis": result.kpis.as_dict(),
        "wall_s": result.wall_s,
        "timeline": result.timeline,
        "planning_s": plan.get("planning_s", 0.0) if plan else 0.0,
        "plan": plan,
    }


@dataclass(frozen=True)
class CellKey:
    """What identifies one run across submissions: experiment, scenario and agent names, and the run itself (files,
    seed, duration), so a changed experiment does not reuse a stale cell."""

    experiment: str
    scenario: str
    agent: str
    spec: RunSpec

    @property
    def label(self) -> str:
        return f"{self.scenario}__{self.agent}__seed{self.spec.seed}"


def cell_keys(experiment: Experiment) -> list[CellKey]:
    """The keys of ``run_specs(experiment)``, in the same order. Their files are named relative to the experiment
    file's folder, so a checkout moved or cloned elsewhere still finds its finished cells."""
    names = [(s, a) for s in experiment.scenario_names for a in experiment.agent_names for _ in experiment.seeds]
    base = experiment.path.resolve().parent
    specs = [
        replace(
            spec,
            scenario_path=_relative(spec.scenario_path, base),
            agent_path=_relative(spec.agent_path, base),
        )
        for spec in run_specs(experiment)
    ]
    return [CellKey(experiment.name, s, a, spec) for (s, a), spec in zip(names, specs, strict=True)]


def _relative(path: str, base: Path) -> str:
    """``path`` relative to ``base`` (with ``..`` where needed), in POSIX form; unchanged on another drive."""
    try:
        return Path(os.path.relpath(Path(path).resolve(), base)).as_posix()
    except ValueError:  # Windows: another drive has no relative path
        return path


def run_experiment(
    experiment: Experiment,
    workers: int | None = None,
    progress: bool = True,
    *,
    executor: LocalExecutor | RayExecutor | None = None,
    cells: CellStore | None = None,
    resume: bool = False,
) -> list[RunRecord]:
    """Every run of ``experiment`` on ``executor`` (default: a local pool of ``workers`` processes, default the
    experiment's); records in experiment order. With ``cells``, each finished run is stored there as it completes;
    with ``resume`` too, runs already stored are not run again."""
    specs = run_specs(experiment)
    keys = cell_keys(experiment)
    owned = executor is None
    if executor is None:
        executor = LocalExecutor(min(workers or experiment.workers, len(specs)))
    bar = tqdm(total=len(specs), unit="run", desc=experiment.name, disable=not progress)
    try:
        with bar:
            results = run_cells(executor, run_one, specs, keys, cells, resume, on_done=bar.update)
    finally:
        if owned:
            executor.close()
    return [RunRecord(**result) for result in results]

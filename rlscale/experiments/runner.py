"""Run every (scenario, agent, seed) of an experiment, in parallel processes.

Each run is independent and seeded, and results are put back in experiment
order, so the numbers do not depend on the number of workers or on which run
finishes first. A worker receives paths, not objects: it loads the scenario and
builds the agent itself, so nothing stateful crosses a process boundary, and it
returns plain dicts.
"""

from __future__ import annotations

import multiprocessing
import traceback
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rlscale.experiments.config import Experiment


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
    """One finished run: who, under what seed, its KPIs (``KPIs.as_dict()``), wall time and timeline rows."""

    scenario: str
    agent: str
    seed: int
    kpis: dict[str, Any]
    wall_s: float
    timeline: list[dict[str, float]]

    @property
    def label(self) -> str:
        return f"{self.scenario}__{self.agent}__seed{self.seed}"


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
    from rlscale.policies.loader import load_agent
    from rlscale.scenario import load_scenario
    from rlscale.simulation import run_scenario

    try:
        scenario = load_scenario(spec.scenario_path)
        update: dict[str, Any] = {"seed": spec.seed}
        if spec.duration_s is not None:
            update["duration_s"] = spec.duration_s
        scenario = scenario.model_copy(update=update)
        result = run_scenario(scenario, autoscaler=load_agent(spec.agent_path, scenario))
    except Exception as exc:
        # Re-raised as a plain message that names the run and pickles whatever the original held; the worker's
        # traceback rides along as a note.
        failed = RunFailed(f"{spec.label}: {type(exc).__name__}: {exc}")
        failed.add_note(traceback.format_exc())
        raise failed from None
    return {
        "scenario": scenario.name,
        "agent": Path(spec.agent_path).stem,
        "seed": spec.seed,
        "kpis": result.kpis.as_dict(),
        "wall_s": result.wall_s,
        "timeline": result.timeline,
    }


def run_experiment(experiment: Experiment, workers: int | None = None, progress: bool = True) -> list[RunRecord]:
    """Every run of ``experiment`` on ``workers`` processes (default: the experiment's); records in experiment order."""
    specs = run_specs(experiment)
    workers = min(workers or experiment.workers, len(specs))
    bar = tqdm(total=len(specs), unit="run", desc=experiment.name, disable=not progress)
    results: dict[int, dict[str, Any]] = {}
    with bar:
        if workers == 1:
            for i, spec in enumerate(specs):
                bar.set_postfix_str(spec.label, refresh=False)
                results[i] = run_one(spec)
                bar.update()
        else:
            # spawn, not fork: workers start clean, whatever threads or state the parent holds.
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                futures: dict[Future, int] = {pool.submit(run_one, spec): i for i, spec in enumerate(specs)}
                try:
                    for future in as_completed(futures):
                        results[futures[future]] = future.result()
                        bar.update()
                except BaseException:
                    pool.shutdown(wait=False, cancel_futures=True)  # one failed run fails the experiment: stop now
                    raise
    return [RunRecord(**results[i]) for i in range(len(specs))]

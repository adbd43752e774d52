"""A finished comparison as the plain records the MLflow sink logs (:mod:`rlscale.tracking.mlflow_tracker`).

The parent run carries the experiment's settings, the headline means over seeds per scenario and agent (for
comparing at a glance in the MLflow UI) and the result files; each (scenario, agent, seed) run its KPIs, wall and
planning time, the scenario's headline fields and its timeline.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from rlscale.experiments.stats import flatten_kpis, result_rows, summarize
from rlscale.scenario import scenario_params
from rlscale.tracking.keys import metric_key
from rlscale.tracking.mlflow_tracker import ComparisonLog, RunLog

if TYPE_CHECKING:
    from rlscale.experiments.compare import Comparison

# Means over seeds logged on the parent run, per scenario and agent.
HEADLINE_COLUMNS = ("cost_usd", "chip_hours", "slo_attainment", "ttft_p99_s", "tpot_p99_s", "failed")


def run_metrics(
    kpis: dict[str, Any], wall_s: float, planning_s: float = 0.0, plan_met_target: bool | None = None
) -> dict[str, float]:
    """A run's KPIs (``KPIs.as_dict()``), wall time and planning time as MLflow metrics, and for a planner whether
    its plan met its own target (1/0); NaN stays NaN (MLflow stores it), a KPI that does not apply (None, e.g. no e2e
    objective, or no plan) is not logged."""
    flat = flatten_kpis(kpis) | {"wall_s": wall_s, "planning_s": planning_s, "plan_met_target": plan_met_target}
    return {metric_key(c): float(v) for c, v in flat.items() if v is not None}


def comparison_log(comparison: Comparison) -> ComparisonLog:
    """What MLflow keeps of ``comparison``."""
    experiment = comparison.experiment
    config = experiment.config
    summary = summarize(result_rows(comparison.records)[1], HEADLINE_COLUMNS)
    headline = {
        f"mean/{scenario}/{agent}/{metric_key(c)}": interval.mean
        for (scenario, agent), intervals in summary.items()
        for c, interval in intervals.items()
        if not math.isnan(interval.mean)
    }
    params = {
        "experiment": experiment.name,
        "experiment_file": str(experiment.path),
        "scenarios": ",".join(experiment.scenario_names),
        "agents": ",".join(experiment.agent_names),
        "seeds": ",".join(map(str, experiment.seeds)),
        "duration_s": "scenario's" if config.duration_s is None else f"{config.duration_s:g}",
        "runs": len(comparison.records),
        "workers": comparison.workers,
        "git_commit": comparison.git_commit or "unknown",
    }
    scenarios = dict(zip(experiment.scenario_names, experiment.scenarios, strict=True))
    scenario_files = dict(zip(experiment.scenario_names, experiment.scenario_paths, strict=True))
    agent_files = dict(zip(experiment.agent_names, experiment.agent_paths, strict=True))
    runs = [
        RunLog(
            record.label,
            params={
                "scenario": record.scenario,
                "agent": record.agent,
                "seed": record.seed,
                "scenario_file": str(scenario_files[record.scenario]),
                "agent_file": str(agent_files[record.agent]),
                **scenario_params(scenarios[record.scenario]),
            },
            metrics=run_metrics(record.kpis, record.wall_s, record.planning_s, record.plan_met_target),
            timeline=comparison.timelines.get(record.label),
        )
        for record in comparison.records
    ]
    return ComparisonLog(
        experiment.name,
        comparison.out,
        comparison.git_commit,
        params,
        headline | {"sim/wall_s": comparison.wall_s},
        files=list(comparison.files.values()),
        runs=runs,
    )

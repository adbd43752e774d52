"""``rlscale compare``: run an experiment, write its results and report, and track it.

One manager owns the pipeline: run (parallel, deterministic) → results.csv and
per-run timelines → report.md and figures → MLflow. Each step reads only what
the one before produced, so tracking can be skipped or pointed anywhere.
"""

from __future__ import annotations

import math
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from rlscale.experiments.cells import CellStore
from rlscale.experiments.config import Experiment, load_experiment
from rlscale.experiments.executors import LocalExecutor, RayExecutor, make_executor
from rlscale.experiments.figures import pareto_plot, timelines_plot, worst_hours_plot
from rlscale.experiments.report import (
    REPORT_COLUMNS,
    PooledRow,
    missed_targets,
    report_markdown,
    write_manifest,
    write_results_csv,
    write_timelines,
)
from rlscale.experiments.runner import RunRecord, cell_keys, run_experiment
from rlscale.experiments.silences import SILENT_COLUMNS, outside_silences
from rlscale.experiments.stats import (
    Interval,
    pooled,
    pooled_share,
    result_rows,
    run_metrics,
    saving_shares,
    summarize,
)
from rlscale.plots import ZOOM_AFTER_S
from rlscale.scenario import scenario_params
from rlscale.tracking.keys import metric_key
from rlscale.tracking.mlflow_tracker import ComparisonLog, RunLog

# Means over seeds logged on the parent run, per scenario and agent, for comparing at a glance in the MLflow UI.
HEADLINE_COLUMNS = ("cost_usd", "chip_hours", "slo_attainment", "ttft_p99_s", "tpot_p99_s", "failed")


@dataclass
class Comparison:
    """A finished comparison: its runs, where its files are, and (when tracked) the MLflow parent run."""

    experiment: Experiment
    records: list[RunRecord]
    out: Path
    wall_s: float
    git_commit: str
    workers: int
    files: dict[str, Path] = field(default_factory=dict)  # report.md, results.csv, experiment.json, figures
    timelines: dict[str, Path] = field(default_factory=dict)  # run label -> its timeline CSV
    tracking_uri: str | None = None
    mlflow_run_id: str | None = None
    executor: str = "local"
    skipped: int = 0  # cells a resumed comparison found finished in out/cells and did not run again


def source_commit() -> str:
    """The commit of the rlscale source that ran (wherever the command runs from), with ``-dirty`` when it has
    uncommitted changes to tracked files; empty outside a git checkout."""
    folder = str(Path(__file__).resolve().parent)
    try:
        head = subprocess.run(["git", "-C", folder, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if head.returncode != 0:
            return ""
        status = subprocess.run(
            ["git", "-C", folder, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return head.stdout.strip() + ("-dirty" if status.stdout.strip() else "")


def default_out(experiment: Experiment) -> Path:
    """``runs/compare/<name>__<time>``, never another comparison's folder."""
    folder = Path("runs") / "compare" / f"{experiment.name}__{time.strftime('%Y%m%d-%H%M%S')}"
    while folder.exists():
        folder = folder.with_name(folder.name + f"-{time.monotonic_ns() % 10_000}")
    return folder


def compare(
    experiment: Experiment | str | Path,
    out: Path | None = None,
    *,
    workers: int | None = None,
    tracking_uri: str | None = None,
    progress: bool = True,
    executor: str | LocalExecutor | RayExecutor = "local",
    ray_address: str | None = None,
    resume: bool = False,
) -> Comparison:
    """Run ``experiment`` on ``executor`` (``local``: a process pool; ``ray``: Ray tasks on ``ray_address`` or a
    local instance) and write ``out``; log it to MLflow at ``tracking_uri`` (None: not tracked).

    Every finished run is stored in ``out/cells/`` as it completes; with ``resume`` the runs stored there are not run
    again. Writing and tracking happen here, on the driver, once every run is in, so an interrupted sweep logged
    nothing and its resumption logs one MLflow run; a resumption that had nothing left to run and finds this
    comparison already logged at ``tracking_uri`` does not log it again."""
    if not isinstance(experiment, Experiment):
        experiment = load_experiment(experiment)
    if resume and out is None:
        raise ValueError("--resume needs --out: the folder of the comparison to resume")
    if tracking_uri is not None:
        from rlscale.tracking.store import check_tracking

        check_tracking(tracking_uri)
    workers = workers or experiment.workers
    out = out or default_out(experiment)
    cells = CellStore(out / "cells")
    skipped = cells.count(cell_keys(experiment)) if resume else 0
    owned = isinstance(executor, str)  # made here, so closed here
    if owned:
        executor = make_executor(executor, workers=workers, ray_address=ray_address)
    start = time.perf_counter()
    try:
        records = run_experiment(
            experiment, workers=workers, progress=progress, executor=executor, cells=cells, resume=resume
        )
    finally:
        if owned:
            executor.close()
    wall_s = time.perf_counter() - start
    comparison = Comparison(experiment, records, out, wall_s, source_commit(), workers, executor=executor.name)
    comparison.skipped = skipped
    write_outputs(comparison)
    if tracking_uri is not None:
        from rlscale.tracking.logged import logged_run, record_run

        previous = logged_run(out, tracking_uri) if resume and skipped == len(records) else None
        comparison.tracking_uri = tracking_uri
        if previous is not None:
            comparison.mlflow_run_id = previous
        else:
            from rlscale.tracking.mlflow_tracker import track_comparison

            comparison.mlflow_run_id = track_comparison(comparison_log(comparison), tracking_uri)
            record_run(out, tracking_uri, comparison.mlflow_run_id)
    return comparison


def write_outputs(comparison: Comparison) -> None:
    """results.csv, timelines/, pareto.png, timelines_<scenario>.png (and worst_hours_<scenario>.png for runs over
    three hours), report.md and experiment.json in ``out``."""
    experiment, records, out = comparison.experiment, comparison.records, comparison.out
    out.mkdir(parents=True, exist_ok=True)
    columns, rows = result_rows(records)
    files = {"results.csv": out / "results.csv"}
    write_results_csv(files["results.csv"], columns, rows)
    comparison.timelines = write_timelines(out / "timelines", records)

    files["pareto.png"] = out / "pareto.png"
    summary = summarize(rows, [c.column for c in REPORT_COLUMNS] + list(SILENT_COLUMNS))
    pareto_plot(summary, experiment.scenario_names, experiment.agent_names, files["pareto.png"])
    first_seed = experiment.seeds[0]
    for scenario in experiment.scenarios:
        name = f"timelines_{scenario.name}.png"
        files[name] = out / name
        shown = [r for r in records if r.scenario == scenario.name and r.seed == first_seed]
        timelines_plot(scenario, shown, experiment.agent_names, files[name])
        if scenario.duration_s > ZOOM_AFTER_S:  # a day's timelines show when each policy failed; the zoom shows how
            name = f"worst_hours_{scenario.name}.png"
            files[name] = out / name
            worst_hours_plot(scenario, shown, experiment.agent_names, files[name])

    figures = [p.name for p in files.values() if p.suffix == ".png"]
    files["report.md"] = out / "report.md"
    reference = experiment.config.oracle_saving
    shares = outside = None
    if reference is not None:
        shares = saving_shares(rows, reference.static, reference.oracle)
        outside = saving_shares(outside_silences(rows), reference.static, reference.oracle, require_attainment=False)
    report = report_markdown(
        experiment, summary, runs=len(rows), git_commit=comparison.git_commit, wall_s=comparison.wall_s,
        figures=figures, missed=missed_targets(records), shares=shares, pools=pooled_rows(experiment, summary),
        outside_shares=outside,
    )  # fmt: skip
    files["report.md"].write_text(report)
    files["experiment.json"] = out / "experiment.json"
    write_manifest(
        files["experiment.json"], experiment, comparison.git_commit, comparison.wall_s, comparison.workers,
        comparison.executor, comparison.skipped,
    )  # fmt: skip
    comparison.files = files


def pooled_rows(
    experiment: Experiment, summary: dict[tuple[str, str], dict[str, Interval]]
) -> dict[tuple[str, str], PooledRow]:
    """Per scenario and ``training_seeds`` row, the row pooling the policies of it that ran there (two at least)."""
    reference = experiment.config.oracle_saving
    pools = {}
    for scenario in experiment.scenario_names:
        for row, members in experiment.config.training_seeds.items():
            ran = tuple(m for m in members if (scenario, m) in summary)
            if len(ran) < 2:
                continue
            rows = [summary[scenario, m] for m in ran]
            share = None
            if reference is not None and {(scenario, reference.static), (scenario, reference.oracle)} <= summary.keys():
                static, oracle = summary[scenario, reference.static], summary[scenario, reference.oracle]
                means = [(r["cost_usd"].mean, r["slo_attainment"].mean) for r in rows]
                at_static = (static["cost_usd"].mean, static["slo_attainment"].mean)
                share = pooled_share(means, at_static, oracle["cost_usd"].mean)
            pools[scenario, row] = PooledRow(ran, pooled(rows), share)
    return pools


def comparison_log(comparison: Comparison) -> ComparisonLog:
    """What MLflow keeps of ``comparison``, as the plain records the tracking sink logs: the experiment's settings,
    the headline means, the result files, and per run its KPIs, times, the scenario's fields and its timeline."""
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

"""``rlscale compare``: run an experiment, write its results and report, and track it.

One manager owns the pipeline: run (parallel, deterministic) → results.csv and
per-run timelines → report.md and figures → MLflow. Each step reads only what
the one before produced, so tracking can be skipped or pointed anywhere.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from rlscale.experiments.config import Experiment, load_experiment
from rlscale.experiments.figures import pareto_plot, timelines_plot
from rlscale.experiments.report import (
    REPORT_COLUMNS,
    report_markdown,
    write_manifest,
    write_results_csv,
    write_timelines,
)
from rlscale.experiments.runner import RunRecord, run_experiment
from rlscale.experiments.stats import result_rows, summarize


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
) -> Comparison:
    """Run ``experiment`` and write ``out``; log it to MLflow at ``tracking_uri`` (None: not tracked)."""
    if not isinstance(experiment, Experiment):
        experiment = load_experiment(experiment)
    if tracking_uri is not None:
        from rlscale.tracking.mlflow_tracker import check_tracking

        check_tracking(tracking_uri)
    workers = workers or experiment.workers
    start = time.perf_counter()
    records = run_experiment(experiment, workers=workers, progress=progress)
    wall_s = time.perf_counter() - start
    comparison = Comparison(experiment, records, out or default_out(experiment), wall_s, source_commit(), workers)
    write_outputs(comparison)
    if tracking_uri is not None:
        from rlscale.tracking.mlflow_tracker import track_comparison

        comparison.tracking_uri = tracking_uri
        comparison.mlflow_run_id = track_comparison(comparison, tracking_uri)
    return comparison


def write_outputs(comparison: Comparison) -> None:
    """results.csv, timelines/, pareto.png, timelines_<scenario>.png, report.md and experiment.json in ``out``."""
    experiment, records, out = comparison.experiment, comparison.records, comparison.out
    out.mkdir(parents=True, exist_ok=True)
    columns, rows = result_rows(records)
    files = {"results.csv": out / "results.csv"}
    write_results_csv(files["results.csv"], columns, rows)
    comparison.timelines = write_timelines(out / "timelines", records)

    files["pareto.png"] = out / "pareto.png"
    summary = summarize(rows, [c.column for c in REPORT_COLUMNS])
    pareto_plot(summary, experiment.scenario_names, experiment.agent_names, files["pareto.png"])
    first_seed = experiment.seeds[0]
    for scenario in experiment.scenarios:
        name = f"timelines_{scenario.name}.png"
        files[name] = out / name
        shown = [r for r in records if r.scenario == scenario.name and r.seed == first_seed]
        timelines_plot(scenario, shown, experiment.agent_names, files[name])

    figures = [p.name for p in files.values() if p.suffix == ".png"]
    files["report.md"] = out / "report.md"
    report = report_markdown(
        experiment, summary, runs=len(rows), git_commit=comparison.git_commit, wall_s=comparison.wall_s, figures=figures
    )
    files["report.md"].write_text(report)
    files["experiment.json"] = out / "experiment.json"
    write_manifest(files["experiment.json"], experiment, comparison.git_commit, comparison.wall_s, comparison.workers)
    comparison.files = files

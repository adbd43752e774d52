"""Commands that compare autoscalers over scenarios and seeds: ``compare`` (an experiment file), ``evaluate`` (lists
on the command line) and ``tune`` (an HPA's settings), each on a local pool or Ray."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rlscale.cli.app import (
    ExecutorOption,
    RayAddressOption,
    ResumeOption,
    TrackingURIOption,
    app,
)
from rlscale.cli.app import fail as _fail
from rlscale.cli.app import int_list as _int_list
from rlscale.cli.app import split_list as _split
from rlscale.specs.catalog import SpecError

if TYPE_CHECKING:  # the comparison pulls in matplotlib and MLflow: imported only by the commands that run one
    from rlscale.experiments.compare import Comparison
    from rlscale.experiments.config import Experiment


def _echo_comparison(result: Comparison, resume: bool, uri: str) -> None:
    """What a comparison wrote, where it logged, and what a resume reused."""
    typer.echo(f"{result.experiment.name}: {len(result.records)} runs in {result.wall_s:.1f} s on {result.executor}")
    if resume:
        typer.echo(f"  resumed: skipped {result.skipped} finished run(s) found in {result.out}/cells/")
    typer.echo(f"  wrote  {result.out}/report.md, results.csv, pareto.png, timelines_*.png, timelines/")
    typer.echo(f"  MLflow run {result.mlflow_run_id} at {uri}")


@app.command()
def compare(
    experiment: Annotated[Path, typer.Argument(help="Experiment YAML (see experiments/).")],
    out: Annotated[Path | None, typer.Option(help="Output folder (default: runs/compare/<name>__<time>).")] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Parallel processes (default: the experiment's, else CPU count).")
    ] = None,
    tracking_uri: TrackingURIOption = None,
    executor: ExecutorOption = "local",
    ray_address: RayAddressOption = None,
    resume: ResumeOption = False,
) -> None:
    """Run every agent on every scenario under every seed; write results.csv, report.md and plots; log to MLflow."""
    from rlscale.tracking.store import resolve_tracking_uri

    _run_comparison(lambda: experiment, out, workers, resolve_tracking_uri(tracking_uri), executor, ray_address, resume)


def _run_comparison(
    experiment: Callable[[], Experiment | Path], out: Path | None, workers: int | None, uri: str, executor: str,
    ray_address: str | None, resume: bool,
) -> None:  # fmt: skip
    """The comparison pipeline behind ``compare`` and ``evaluate``: build the experiment (``experiment()``, so its
    errors are reported like the run's), run it, say what it wrote."""
    from rlscale.experiments.compare import compare as run_comparison
    from rlscale.experiments.executors import ExecutorError
    from rlscale.experiments.runner import RunFailed
    from rlscale.tracking.store import TrackingError

    try:
        result = run_comparison(
            experiment(), out, workers=workers, tracking_uri=uri, executor=executor, ray_address=ray_address,
            resume=resume,
        )  # fmt: skip
    except (SpecError, RunFailed, TrackingError, ExecutorError, ValueError, OSError) as exc:
        _fail(exc)
    _echo_comparison(result, resume, uri)


@app.command()
def tune(
    agent: Annotated[Path, typer.Option(help="HPA manifest to tune (agents/hpa-*.yaml, or a shipped one by name).")],
    scenario: Annotated[
        Path, typer.Option("--scenario", "-s", help="Scenario YAML to tune on, or a shipped one by name.")
    ],
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds; a setting must meet the SLO on all.")] = "0,1,2",
    trials: Annotated[int, typer.Option(min=1, help="Optuna trials (each runs every seed).")] = 30,
    slo_attainment: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of requests within the SLOs to reach.")
    ] = 0.99,
    behaviour: Annotated[
        bool, typer.Option(help="Also tune the scale-down stabilization window and rate (adds a behavior block).")
    ] = True,
    duration: Annotated[float | None, typer.Option(help="Override the scenario's simulated time, s.")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Output folder (default: runs/tune/<agent>__<scenario>__<time>).")
    ] = None,
    batch: Annotated[
        int,
        typer.Option(
            min=1,
            help="Settings Optuna proposes at once; their runs go out together. The trials depend on it (not on "
            "the executor): keep it when comparing searches.",
        ),
    ] = 1,
    workers: Annotated[int | None, typer.Option(min=1, help="Parallel processes (default: CPU count).")] = None,
    executor: ExecutorOption = "local",
    ray_address: RayAddressOption = None,
    resume: Annotated[
        bool, typer.Option(help="Reuse the runs already finished in --out (out/cells/); needs --out.")
    ] = False,
    tracking_uri: TrackingURIOption = None,
) -> None:
    """Find the cheapest HPA target (and behaviour) that meets the SLOs, the guide's way, with Optuna.

    Each trial runs every seed; the (setting, seed) runs of a batch go out together on the executor, and each is
    stored in out/cells/ as it finishes, so --resume continues an interrupted search without running them again.
    Writes trials.csv, trials.png and the tuned manifest to --out and logs the search to MLflow (tune-<scenario>)."""
    import os
    import time

    from rlscale.agents import load_agent
    from rlscale.data import agent_file, read_extended
    from rlscale.experiments.cells import CellStore
    from rlscale.experiments.compare import source_commit
    from rlscale.experiments.executors import ExecutorError, make_executor
    from rlscale.experiments.runner import RunFailed
    from rlscale.scenario import apply_overrides, load_scenario
    from rlscale.tracking.store import TrackingError, resolve_tracking_uri
    from rlscale.tracking.tune_tracker import search_params, track_tuning
    from rlscale.tuning import trial_records, write_outputs
    from rlscale.tuning import tune as run_tuning

    if resume and out is None:
        _fail(ValueError("--resume needs --out: the folder of the search to resume"))
    uri = resolve_tracking_uri(tracking_uri)
    try:
        sc = apply_overrides(load_scenario(scenario), duration_s=duration)
        agent = agent_file(agent)  # a path, or a shipped agent by name
        manifest = read_extended(agent)
        load_agent(agent, sc)  # the manifest and its metric names checked up front, errors naming the file
        seed_list = _int_list(seeds, "--seeds")
        folder = out or Path("runs") / "tune" / f"{agent.stem}__{sc.name}__{time.strftime('%Y%m%d-%H%M%S')}"
        start = time.perf_counter()
        with make_executor(executor, workers=workers or os.cpu_count() or 1, ray_address=ray_address) as runner:
            result = run_tuning(
                manifest, sc, seed_list, trials, slo_attainment, behaviour, progress=True, batch=batch,
                executor=runner, cells=CellStore(folder / "cells"), resume=resume, search=f"{agent.stem}__{sc.name}",
            )  # fmt: skip
        wall_s = time.perf_counter() - start
        files = write_outputs(result, folder, agent.stem, slo_attainment, f"{agent.stem} on {sc.name}")
        params = search_params(agent, scenario, seed_list, trials, batch, slo_attainment, behaviour, executor)
        nothing_new = resume and result.skipped == len(result.trials) * len(seed_list)
        tried, best = trial_records(result)
        run_id = track_tuning(
            tried, best, files, folder, uri, scenario=sc.name, params=params, git_commit=source_commit(),
            reuse=nothing_new,
        )  # fmt: skip
    except (SpecError, RunFailed, ExecutorError, TrackingError, ValueError, OSError) as exc:
        _fail(exc)
    typer.echo(f"{len(result.trials)} trials × {len(seed_list)} seeds in {wall_s:.1f} s on {executor}")
    if resume:
        typer.echo(f"  resumed: reused {result.skipped} finished run(s) found in {folder}/cells/")
    if result.best is None:
        typer.echo(
            f"no setting of {agent} met {slo_attainment:.0%} SLO attainment on {sc.name} (seeds {seed_list}) "
            f"in {len(result.trials)} trials; best attainment {max(t.slo_attainment for t in result.trials):.1%}"
        )
        if result.closest is not None:
            settings = ", ".join(f"{k} = {v:.4g}" for k, v in result.closest.values.items())
            typer.echo(f"  closest setting (it misses): {settings}, cost ${result.closest.cost_usd:,.2f}")
    else:
        best = result.best
        settings = ", ".join(f"{k} = {v:.4g}" for k, v in best.values.items())
        typer.echo(f"cheapest setting meeting {slo_attainment:.0%} on {sc.name} (seeds {seed_list}): {settings}")
        typer.echo(
            f"  cost ${best.cost_usd:,.2f} ({best.chip_hours:.2f} chip-hours), worst-seed attainment "
            f"{best.slo_attainment:.2%}; {sum(t.feasible for t in result.trials)}/{len(result.trials)} trials feasible"
        )
    typer.echo(f"  wrote {', '.join(str(p) for p in files.values())}")
    typer.echo(f"  MLflow run {run_id} at {uri}")


@app.command()
def evaluate(
    agents: Annotated[str, typer.Option(help="Comma-separated agent files (baselines and kind: LearnedPolicy).")],
    scenarios: Annotated[str, typer.Option(help="Comma-separated scenario files.")],
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds (≥5 for intervals worth reading).")] = "0,1,2,3,4",
    duration: Annotated[float | None, typer.Option(help="Override every scenario's simulated time, s.")] = None,
    name: Annotated[str, typer.Option(help="Names the output folder and the MLflow experiment.")] = "evaluate",
    out: Annotated[Path | None, typer.Option(help="Output folder (default: runs/compare/<name>__<time>).")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Parallel processes (default: CPU count).")] = None,
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here); LearnedPolicy "
            "files without their own tracking_uri load models:/ and runs:/ models from it too."
        ),
    ] = None,
    executor: ExecutorOption = "local",
    ray_address: RayAddressOption = None,
    resume: ResumeOption = False,
) -> None:
    """Compare agents on scenarios over seeds without an experiment file: the compare pipeline (report, CIs, Pareto)."""
    import os

    from rlscale.experiments.config import experiment_from_lists
    from rlscale.tracking.store import resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    os.environ["MLFLOW_TRACKING_URI"] = uri  # inherited by the run processes, where learned agents load

    def build() -> Experiment:
        return experiment_from_lists(
            _split(scenarios), _split(agents), _int_list(seeds, "--seeds"), name=name, duration_s=duration,
            workers=workers, source="rlscale evaluate",
        )  # fmt: skip

    _run_comparison(build, out, workers, uri, executor, ray_address, resume)

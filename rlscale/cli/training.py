"""Commands that train learned autoscalers: ``train`` (one run, a mix of scenarios, or a sweep from the command
line) and ``sweep`` (a sweep file)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rlscale.cli.app import (
    ExecutorOption,
    RayAddressOption,
    ResumeOption,
    SelectOption,
    SweepSLOOption,
    TrackingURIOption,
    app,
)
from rlscale.cli.app import fail as _fail
from rlscale.cli.app import int_list as _int_list
from rlscale.specs.catalog import SpecError


@app.command()
def train(
    agent: Annotated[Path, typer.Option(help="SB3 agent file (agents/ppo.yaml, ...), or a shipped one by name (ppo).")],
    scenario: Annotated[
        list[Path],
        typer.Option(
            "--scenario",
            "-s",
            metavar="PATH",
            help="Scenario YAML to train on (envs/*.yaml); repeat it to train on a mix (each episode draws one).",
        ),
    ],
    timesteps: Annotated[
        int | None, typer.Option(min=1, help="Env steps (15 s each), overriding the file's total_timesteps.")
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="Seeds Python, NumPy, torch, the environments and the model.")] = 0,
    eval_every: Annotated[
        int | None, typer.Option(min=0, help="Env steps between held-out evaluations (0: only at the end).")
    ] = None,
    tracking_uri: TrackingURIOption = None,
    model_name: Annotated[
        str | None, typer.Option(help="Registered model name (default: rlscale-<agent>-<scenario>).")
    ] = None,
    alias: Annotated[str, typer.Option(help="Registry alias set on the new version.")] = "champion",
    out: Annotated[
        Path | None,
        typer.Option(
            help="Output folder (default: runs/train/<scenario>__<agent>__<seed>__<time>; a sweep's: "
            "runs/sweeps/<scenario>__<agent>__<time>)."
        ),
    ] = None,
    seeds: Annotated[
        str | None, typer.Option(help="Sweep: comma-separated seeds, one training run each (instead of --seed).")
    ] = None,
    settings: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Sweep: a field and its values, <path>=<YAML>, repeatable; every combination trains under every "
            "seed. Paths are the agent file's spec fields, or scenario.<field> for the scenario's. E.g. --set "
            "'hyperparams.learning_rate=[1e-4, 3e-4]' --set 'scenario.reward.slo_violation_weight=[0.002, 0.005]'.",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Sweep: training runs at once on --executor local (default: CPUs / n_envs)."),
    ] = None,
    executor: ExecutorOption = "local",
    ray_address: RayAddressOption = None,
    resume: Annotated[
        bool, typer.Option(help="Sweep: skip the runs already finished in --out (out/cells/); needs --out.")
    ] = False,
    select: SelectOption = None,
    slo_attainment: SweepSLOOption = 0.99,
) -> None:
    """Train an RL autoscaler (Stable-Baselines3) on a scenario; evaluate it on held-out episodes; register it.

    With --seeds or --set (or --executor ray, or --resume) it is a sweep: every (setting, seed) trains as its own
    run on the executor; the runs are logged to MLflow as children of the sweep's run, and the alias goes to the
    best setting's best seed. sweep.csv, sweep.md and sweep.png in --out compare them."""
    from rlscale.tracking.store import TrackingError, resolve_tracking_uri
    from rlscale.training.train import train as run_training

    uri = resolve_tracking_uri(tracking_uri)
    if seeds is not None or settings or executor != "local" or resume:
        try:
            seed_list = _int_list(seeds, "--seeds") if seeds is not None else [seed]
            if len(scenario) > 1:
                raise ValueError("--scenario: a sweep trains on one scenario file (a mix is for a single run)")
        except ValueError as exc:
            _fail(exc)
        _run_sweep(
            agent, scenario[0], seed_list, settings or [],
            timesteps=timesteps, eval_every=eval_every, uri=uri, model_name=model_name, alias=alias, out=out,
            workers=workers, executor=executor, ray_address=ray_address, resume=resume, select=select,
            slo_attainment=slo_attainment,
        )  # fmt: skip
        return
    try:
        result = run_training(
            agent, scenario[0] if len(scenario) == 1 else scenario, timesteps, seed, uri, out, eval_every,
            progress=True, model_name=model_name, alias=alias,
        )  # fmt: skip
    except (SpecError, TrackingError, ValueError, OSError) as exc:
        _fail(exc)
    speed = f"{result.steps_per_s:,.0f} steps/s"
    typer.echo(f"{result.run_name}: {result.timesteps:,} env steps in {result.wall_s:.1f} s ({speed})")
    typer.echo(f"  wrote  {result.out}/model.zip, policy.json, progress.csv, learning_curve.png")
    typer.echo(f"  MLflow run {result.run_id} at {uri}; model {result.registered_uri} (version {result.model_version})")


def _run_sweep(
    agent: Path, scenario: Path, seeds: list[int], grid: list[str] | list[tuple[str, list]], *,
    timesteps: int | None, eval_every: int | None, uri: str, model_name: str | None, alias: str, out: Path | None,
    workers: int | None, executor: str, ray_address: str | None, resume: bool, name: str | None = None,
    select: str | None = None, slo_attainment: float = 0.99,
) -> None:  # fmt: skip
    """A training sweep (``rlscale.training.sweep``) from ``rlscale train --seeds/--set`` (``grid`` as --set
    strings) or ``rlscale sweep`` (parsed); prints where everything went."""
    import os

    from rlscale.experiments.executors import ExecutorError, make_executor
    from rlscale.experiments.runner import RunFailed
    from rlscale.tracking.store import TrackingError
    from rlscale.training.config import load_agent_config
    from rlscale.training.sweep import parse_grid, sweep

    try:
        parsed = parse_grid(grid) if all(isinstance(g, str) for g in grid) else grid
        n_envs = load_agent_config(agent).spec.n_envs
        pool = workers or max(1, (os.cpu_count() or 1) // n_envs)
        with make_executor(executor, workers=pool, ray_address=ray_address) as runner:
            result = sweep(
                agent, scenario, seeds, parsed, timesteps=timesteps, eval_every=eval_every, out=out, name=name,
                tracking_uri=uri, model_name=model_name, alias=alias, executor=runner, resume=resume, select=select,
                slo_attainment=slo_attainment,
            )  # fmt: skip
    except (SpecError, RunFailed, TrackingError, ExecutorError, ValueError, OSError) as exc:
        _fail(exc)
    typer.echo(f"{result.name}: {len(result.cells)} training runs in {result.wall_s:.1f} s on {result.executor}")
    if resume:
        typer.echo(f"  resumed: skipped {result.skipped} finished run(s) found in {result.out}/cells/")
    typer.echo(f"  wrote  {result.out}/sweep.csv, sweep.md, sweep.png, runs/<setting>__seed<k>/")
    if result.champion is not None:
        typer.echo(
            f"  best setting {result.best_setting} ({result.selection}); models:/{result.registered_model}@"
            f"{result.alias} is {result.champion.label} (version {result.champion_version})"
        )
    typer.echo(f"  MLflow run {result.mlflow_run_id} at {uri}")


@app.command("sweep")
def sweep_command(
    sweep_file: Annotated[Path, typer.Argument(help="Sweep file (kind: TrainingSweep; see experiments/sweeps/).")],
    out: Annotated[Path | None, typer.Option(help="Output folder (default: runs/sweeps/<name>__<time>).")] = None,
    timesteps: Annotated[
        int | None, typer.Option(min=1, help="Env steps per run, overriding the file's (a quick look first).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Training runs at once on --executor local (default: CPUs / n_envs).")
    ] = None,
    tracking_uri: TrackingURIOption = None,
    executor: ExecutorOption = "local",
    ray_address: RayAddressOption = None,
    resume: ResumeOption = False,
    select: SelectOption = None,
    slo_attainment: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="--select cost-at-slo: overrides the file's slo_attainment.")
    ] = None,
) -> None:
    """Train every setting of a sweep file's grid under every seed; compare them (sweep.md, sweep.csv, sweep.png),
    log each run to MLflow under the sweep's run, and put the alias on the best setting's best seed."""
    from rlscale.tracking.store import resolve_tracking_uri
    from rlscale.training.sweep_config import load_sweep

    try:
        loaded = load_sweep(sweep_file)
    except (SpecError, OSError) as exc:
        _fail(exc)
    config = loaded.config
    _run_sweep(
        loaded.agent_path, loaded.scenario_path, list(config.seeds), loaded.grid,
        timesteps=timesteps or config.timesteps, eval_every=config.eval_every, uri=resolve_tracking_uri(tracking_uri),
        model_name=config.model_name, alias=config.alias, out=out, workers=workers, executor=executor,
        ray_address=ray_address, resume=resume, name=config.name, select=select or config.select,
        slo_attainment=config.slo_attainment if slo_attainment is None else slo_attainment,
    )  # fmt: skip

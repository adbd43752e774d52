"""The ``rlscale`` command line."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rlscale.specs.catalog import SpecError, hardware_catalog, load_hardware, load_model, model_catalog

if TYPE_CHECKING:  # the comparison pulls in matplotlib and MLflow: imported only by the commands that run one
    from rlscale.experiments.compare import Comparison

app = typer.Typer(
    help="Autoscaling JetStream LLM inference fleets: simulate, tune the HPA, train and compare RL policies, "
    "and run them against a cluster.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ModelOpt = Annotated[
    str, typer.Option("--model", "-m", help="Catalog model (llama2-7b, ...) or a config.json/YAML path.")
]
HardwareOpt = Annotated[
    str, typer.Option("--hardware", "-H", help="Catalog host (v5e-8, h100, ...) or a YAML/JSON path.")
]


class Phase(StrEnum):
    decode = "decode"
    prefill = "prefill"


def _fail(exc: Exception) -> None:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


@app.command()
def perf(
    model: ModelOpt = "llama2-7b",
    hardware: HardwareOpt = "v5e-8",
    phase: Annotated[Phase, typer.Option(help="decode: one step of a batch; prefill: one prompt.")] = Phase.decode,
    batch: Annotated[int, typer.Option(min=1, help="Decode: sequences in the batch (active slots).")] = 1,
    ctx: Annotated[int, typer.Option(min=0, help="Decode: KV tokens each sequence attends over.")] = 1024,
    prompt: Annotated[int, typer.Option(min=1, help="Prefill: prompt tokens (padded to JetStream's bucket).")] = 1024,
    pad: Annotated[bool, typer.Option(help="Pad the prompt to its power-of-two prefill bucket.")] = True,
) -> None:
    """Predict one step's time; prints a JSON object whose `ms` is the prediction."""
    from rlscale.serving.buckets import padded_length
    from rlscale.serving.step_time import RooflineStepModel

    try:
        m, hw = load_model(model), load_hardware(hardware)
    except SpecError as exc:
        _fail(exc)
    sm = RooflineStepModel(m, hw)
    out: dict[str, object] = {"model": m.name, "hardware": hw.name, "phase": phase.value}
    if phase is Phase.decode:
        ms = sm.decode_ms(batch, batch * ctx)
        out |= {
            "batch": batch,
            "ctx": ctx,
            "ms": round(ms, 4),
            "tokens_per_s": round(batch / ms * 1e3, 1),
            "bound": sm.decode_bound(batch, batch * ctx),
        }
    else:
        tokens = padded_length(prompt) if pad else prompt
        ms = sm.prefill_ms(tokens)
        out |= {
            "prompt": prompt,
            "padded_prompt": tokens,
            "ms": round(ms, 4),
            "tokens_per_s": round(prompt / ms * 1e3, 1),
        }
    typer.echo(json.dumps(out))


@app.command()
def calibrate(
    write: Annotated[bool, typer.Option(help="Write the fitted values to the catalog (fitted.yaml).")] = False,
    report: Annotated[Path | None, typer.Option(help="Also save the report (Markdown) here.")] = None,
    plot: Annotated[Path | None, typer.Option(help="Save a predicted-vs-measured plot (PNG) here.")] = None,
) -> None:
    """Fit the step-time model to the measured GPU profile and published TPU figures; report every point."""
    from importlib import resources

    from rlscale.serving import calibration as cal

    results = [cal.fit_set(name) for name in cal.calibration_sets()]
    lines = ["# Step-time calibration", ""]
    for r in results:
        lines += [*cal.report_lines(r), ""]
    v5e = next(r for r in results if r.name == "tpu-v5e")
    lines += [
        "## check (not fitted): jetstream-pytorch ShareGPT throughput on v5e-8",
        "model        batch  published_tok_s  predicted_tok_s  error",
    ]
    for c in cal.throughput_checks(cal.hardware_with(v5e.hardware, v5e.params)):
        lines.append(
            f"{c.model:<12} {c.batch:>5}  {c.published_tokens_per_s:>15.0f}  "
            f"{c.predicted_tokens_per_s:>15.0f}  {c.error:+6.1%}"
        )
    text = "\n".join(lines)
    typer.echo(text)
    if report:
        report.write_text(text + "\n")
    if plot:
        from rlscale.plots import calibration_plot

        calibration_plot(results, plot)
        typer.echo(f"plot: {plot}")
    if write:
        target = resources.files("rlscale.specs").joinpath("catalog", "fitted.yaml")
        Path(str(target)).write_text(cal.fitted_yaml(results))
        typer.echo(f"wrote {target}")


@app.command()
def catalog() -> None:
    """List the models and hardware hosts known by name."""
    for name in model_catalog():
        m = load_model(name)
        typer.echo(f"model     {name:<12} {m.total_params / 1e9:5.2f} B params, KV {m.kv_bytes_per_token} B/token")
    for name in hardware_catalog()["hosts"]:
        hw = load_hardware(name)
        typer.echo(
            f"hardware  {name:<12} {hw.chips_per_host} x {hw.accelerator}, HBM {hw.total_hbm_bytes / 1e9:.0f} GB, "
            f"{hw.total_hbm_bytes_per_s / 1e12:.2f} TB/s, {hw.total_flops_per_s / 1e12:.0f} TFLOP/s"
        )


@app.command()
def simulate(
    scenario: Annotated[Path, typer.Option("--scenario", "-s", help="Scenario YAML (see envs/).")] = Path(
        "envs/single-pod.yaml"
    ),
    trace: Annotated[
        str | None, typer.Option(help="Replay this trace (Azure CSV / Mooncake JSONL, or azure-conv).")
    ] = None,
    replicas: Annotated[int | None, typer.Option(min=0, help="Fixed replica count (replaces the schedule).")] = None,
    agent: Annotated[
        Path | None, typer.Option(help="Autoscale with this agent (agents/*.yaml, e.g. an HPA manifest).")
    ] = None,
    rate: Annotated[float | None, typer.Option(help="Override a Poisson scenario's arrival rate, requests/s.")] = None,
    duration: Annotated[float | None, typer.Option(help="Simulated time, s.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (same seed, same run).")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Override the pod's model.")] = None,
    hardware: Annotated[str | None, typer.Option("--hardware", "-H", help="Override the pod's host.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default: runs/<scenario>__seed<k>__<time>).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the KPI summary as JSON on stdout.")] = False,
) -> None:
    """Simulate a JetStream fleet under a scenario; write summary.json, timeline.csv and timeline.png."""
    from rlscale.policies.loader import load_agent
    from rlscale.reports import write_run
    from rlscale.scenario import apply_overrides, load_scenario
    from rlscale.serving.hbm import PodStartupError
    from rlscale.simulation import run_scenario
    from rlscale.workload.traces import TraceError

    try:
        sc = apply_overrides(
            load_scenario(scenario), model=model, hardware=hardware, rate_per_s=rate, replicas=replicas,
            trace=trace, duration_s=duration, seed=seed,
        )  # fmt: skip
        autoscaler = load_agent(agent, sc) if agent else None
        result = run_scenario(sc, progress=not json_out, autoscaler=autoscaler)
    except (SpecError, PodStartupError, TraceError, ValueError, OSError) as exc:
        _fail(exc)
    folder = write_run(sc, result, out, agent=str(agent) if agent else None)
    summary = json.dumps(result.kpis.as_dict() | {"wall_s": round(result.wall_s, 3), "out": str(folder)})
    if json_out:
        typer.echo(summary)
        return
    k = result.kpis
    typer.echo(
        f"{sc.name}: {sc.pod.model} on {sc.pod.hardware}, {sc.duration_s:g} s simulated in {result.wall_s:.1f} s"
    )
    typer.echo(f"  requests   {k.arrived} arrived, {k.completed} completed, {k.failed} failed {k.failures or ''}")
    typer.echo(f"  throughput {k.throughput_req_per_s:.2f} req/s, {k.output_tokens_per_s:.0f} output tokens/s")
    for label, p in (("TTFT", k.ttft_s), ("TPOT", k.tpot_s), ("latency", k.latency_s)):
        typer.echo(f"  {label:<10} p50 {p['p50']:.3f} s   p95 {p['p95']:.3f} s   p99 {p['p99']:.3f} s")
    typer.echo(
        f"  SLO        {k.slo_attainment:.1%} of requests within TTFT {sc.slo.ttft_p99_s:g} s and TPOT "
        f"{sc.slo.tpot_p99_s:g} s; p99 targets {'met' if k.slo_p99_met else 'missed'}"
    )
    typer.echo(
        f"  fleet      {k.scale_events} scale events, {k.ooms} OOMs, {k.chip_hours:.2f} chip-hours, ${k.cost_usd:,.2f}"
    )
    typer.echo(f"  wrote      {folder}/summary.json, timeline.csv, timeline.png")


# Options shared by the commands that fan runs out (compare, evaluate).
ExecutorOption = Annotated[
    str,
    typer.Option(help="Where the runs execute: local (a process pool) or ray (Ray tasks; pip install rlscale\\[ray])."),
]
RayAddressOption = Annotated[
    str | None,
    typer.Option(help="Ray cluster for --executor ray (auto, ray://host:10001; default: a local Ray instance)."),
]
ResumeOption = Annotated[bool, typer.Option(help="Skip the runs already finished in --out (out/cells/); needs --out.")]
TrackingURIOption = Annotated[
    str | None,
    typer.Option(help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here)."),
]
SelectOption = Annotated[
    str | None,
    typer.Option(
        help="Sweep: how the best setting is chosen: return (highest held-out return) or cost-at-slo (cheapest "
        "held-out cost reaching --slo-attainment). Default: return, or cost-at-slo when the grid changes the reward.",
    ),
]
SweepSLOOption = Annotated[
    float, typer.Option(min=0.0, max=1.0, help="Sweep, --select cost-at-slo: the held-out SLO attainment to reach.")
]


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
    from rlscale.experiments.compare import compare as run_comparison
    from rlscale.experiments.executors import ExecutorError
    from rlscale.experiments.runner import RunFailed
    from rlscale.tracking.mlflow_tracker import TrackingError, resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    try:
        result = run_comparison(
            experiment, out, workers=workers, tracking_uri=uri, executor=executor, ray_address=ray_address,
            resume=resume,
        )  # fmt: skip
    except (SpecError, RunFailed, TrackingError, ExecutorError, ValueError, OSError) as exc:
        _fail(exc)
    _echo_comparison(result, resume, uri)


@app.command()
def tune(
    agent: Annotated[Path, typer.Option(help="HPA manifest to tune (agents/hpa-*.yaml).")],
    scenario: Annotated[Path, typer.Option("--scenario", "-s", help="Scenario YAML to tune on.")],
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

    from rlscale.experiments.cells import CellStore
    from rlscale.experiments.executors import ExecutorError, make_executor
    from rlscale.experiments.runner import RunFailed
    from rlscale.scenario import apply_overrides, load_scenario
    from rlscale.specs.catalog import read_document
    from rlscale.tracking.mlflow_tracker import TrackingError, resolve_tracking_uri
    from rlscale.tracking.tune_tracker import search_params, track_tuning
    from rlscale.tuning import tune as run_tuning
    from rlscale.tuning import write_outputs

    if resume and out is None:
        _fail(ValueError("--resume needs --out: the folder of the search to resume"))
    uri = resolve_tracking_uri(tracking_uri)
    try:
        sc = apply_overrides(load_scenario(scenario), duration_s=duration)
        manifest = read_document(agent)
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
        run_id = track_tuning(result, files, folder, uri, scenario=sc.name, params=params, reuse=nothing_new)
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
def train(
    agent: Annotated[Path, typer.Option(help="SB3 agent file (agents/ppo.yaml, agents/sac.yaml, ...).")],
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
    from rlscale.tracking.mlflow_tracker import TrackingError, resolve_tracking_uri
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
    from rlscale.tracking.mlflow_tracker import TrackingError
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
    from rlscale.tracking.mlflow_tracker import resolve_tracking_uri
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

    from rlscale.experiments.compare import compare as run_comparison
    from rlscale.experiments.config import experiment_from_lists
    from rlscale.experiments.executors import ExecutorError
    from rlscale.experiments.runner import RunFailed
    from rlscale.tracking.mlflow_tracker import TrackingError, resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    os.environ["MLFLOW_TRACKING_URI"] = uri  # inherited by the run processes, where learned agents load
    try:
        experiment = experiment_from_lists(
            _split(scenarios), _split(agents), _int_list(seeds, "--seeds"), name=name, duration_s=duration,
            workers=workers, source="rlscale evaluate",
        )  # fmt: skip
        result = run_comparison(
            experiment, out, workers=workers, tracking_uri=uri, executor=executor, ray_address=ray_address,
            resume=resume,
        )  # fmt: skip
    except (SpecError, RunFailed, TrackingError, ExecutorError, ValueError, OSError) as exc:
        _fail(exc)
    _echo_comparison(result, resume, uri)


def _split(items: str) -> list[str]:
    return [item.strip() for item in items.split(",") if item.strip()]


def _int_list(items: str, option: str) -> list[int]:
    """Comma-separated integers (seeds); an error that names the option otherwise."""
    try:
        values = [int(item) for item in _split(items)]
    except ValueError:
        raise ValueError(f"{option}: expected comma-separated integers, got {items!r}") from None
    if not values:
        raise ValueError(f"{option}: give at least one")
    return values


def main() -> None:
    app()


@app.command()
def controller(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Settings file (kind: ControllerConfig, the ConfigMap's).")
    ] = None,
    policy: Annotated[
        str | None,
        typer.Option(
            help="The policy: models:/<name>@<alias>, models:/<name>/<version>, runs:/<id>/model, a trained policy "
            "folder or .zip, or an agent file (agents/hpa-*.yaml)."
        ),
    ] = None,
    namespace: Annotated[str | None, typer.Option(help="Namespace of the Deployment (default: default).")] = None,
    deployment: Annotated[
        str | None, typer.Option(help="The Deployment whose scale subresource is set (default: jetstream).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Shadow mode: log each decision beside the fallback HPA's; never patch.")
    ] = False,
    prometheus_url: Annotated[
        str | None, typer.Option(help="Read metrics from this Prometheus (or Google Managed Prometheus) URL.")
    ] = None,
    scrape: Annotated[
        bool, typer.Option("--scrape", help="Scrape each pod's /metrics directly instead of querying Prometheus.")
    ] = False,
    kubeconfig: Annotated[
        Path | None, typer.Option(help="kubeconfig file (default: in-cluster service account, else ~/.kube/config).")
    ] = None,
    api_url: Annotated[
        str | None, typer.Option(help="Kubernetes API URL without auth, e.g. the emulator's http://127.0.0.1:P.")
    ] = None,
    sync_period_s: Annotated[float | None, typer.Option(min=0.001, help="s between decisions (default 15).")] = None,
    fallback_hpa: Annotated[
        Path | None, typer.Option(help="HPA manifest used when the policy cannot act, and shown in dry-run.")
    ] = None,
    tracking_uri: Annotated[
        str | None, typer.Option(help="MLflow tracking URI for models:/ and runs:/ (default: $MLFLOW_TRACKING_URI).")
    ] = None,
    listen_port: Annotated[
        int | None, typer.Option(min=0, help="Port of the controller's /metrics and /healthz (default 8080).")
    ] = None,
    syncs: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many syncs (default: until SIGTERM).")
    ] = None,
    clock_speed: Annotated[
        float | None,
        typer.Option(
            min=0.001,
            help="Simulated seconds per wall second (default 1), >1 only against `rlscale emulate --speed K`.",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
) -> None:
    """Autoscale a JetStream Deployment live with a trained policy: every sync read the metrics, build the
    environment's observation, decide, enforce min/max, step caps and holds, and patch deployments/scale.
    Flags override the settings file. Logs one JSON line per decision on stderr."""
    from rlscale.deploy.config import load_controller_config
    from rlscale.deploy.controller import Controller, ControllerError
    from rlscale.deploy.kube import KubeError
    from rlscale.deploy.telemetry import configure_json_logging

    configure_json_logging(log_level.upper())
    try:
        settings = load_controller_config(
            config, policy=policy, namespace=namespace, deployment=deployment, dry_run=True if dry_run else None,
            prometheus_url=prometheus_url, metrics_source="scrape" if scrape else None, sync_period_s=sync_period_s,
            fallback_hpa=str(fallback_hpa) if fallback_hpa else None, tracking_uri=tracking_uri,
            listen_port=listen_port, clock_speed=clock_speed,
        )  # fmt: skip
        loop = Controller.from_config(settings, api_url=api_url, kubeconfig=str(kubeconfig) if kubeconfig else None)
        loop.install_signal_handlers()
        loop.run(max_syncs=syncs)
    except (SpecError, ControllerError, KubeError, OSError) as exc:
        _fail(exc)


@app.command()
def emulate(
    scenario: Annotated[Path, typer.Option("--scenario", "-s", help="Scenario YAML (see envs/).")],
    speed: Annotated[float, typer.Option(min=0.0, help="Simulated seconds per wall second (0: clock stopped).")] = 1.0,
    api_port: Annotated[int, typer.Option(min=0, max=65535, help="Kubernetes API on 127.0.0.1 (0: any).")] = 8001,
    metrics_port: Annotated[
        int, typer.Option(min=0, max=65535, help="Each pod's /metrics and /device/metrics port on 127.0.0.N.")
    ] = 9100,
    device_port: Annotated[
        int, typer.Option(min=0, max=65535, help="Each pod's device-plugin /metrics port (as on GKE).")
    ] = 2112,
    targets_file: Annotated[
        Path, typer.Option(help="Prometheus file_sd targets file, rewritten as pods come and go.")
    ] = Path("runs/emulate/targets.json"),
    kubeconfig: Annotated[
        Path, typer.Option(help="Write a kubeconfig for the emulated API here (for kubectl and the controller).")
    ] = Path("runs/emulate/kubeconfig"),
    namespace: Annotated[str, typer.Option(help="Namespace of the Deployment.")] = "default",
    deployment: Annotated[str, typer.Option(help="Deployment name (pods are labelled app=<name>).")] = "jetstream",
    hpa: Annotated[
        Path | None, typer.Option(help="An HPA manifest that exists in the namespace from the start.")
    ] = None,
    duration: Annotated[float | None, typer.Option(help="Override the scenario's traffic duration, s.")] = None,
    status_every: Annotated[float, typer.Option(min=0.1, help="Wall seconds between status lines.")] = 5.0,
    print_prometheus_config: Annotated[
        bool, typer.Option(help="Print a prometheus.yml scraping the emulated pods (intervals ÷ speed) and exit.")
    ] = False,
) -> None:
    """Run a scenario's fleet in real time behind a Kubernetes API and per-pod metrics endpoints, until Ctrl-C."""
    import signal
    import threading
    import time

    from rlscale.emulator import Emulator, prometheus_config
    from rlscale.scenario import apply_overrides, load_scenario
    from rlscale.serving.hbm import PodStartupError
    from rlscale.specs.catalog import read_document

    try:
        sc = apply_overrides(load_scenario(scenario), duration_s=duration)
        hpas = [read_document(hpa)] if hpa else []
    except (SpecError, ValueError, OSError) as exc:
        _fail(exc)
    if print_prometheus_config:
        per_wall = speed or 1.0  # Prometheus keeps wall time: a simulated interval lasts interval/speed
        config = prometheus_config(
            targets_file,
            scrape_interval_s=sc.metrics.server_scrape_interval_s / per_wall,
            device_scrape_interval_s=sc.metrics.tpu_scrape_interval_s / per_wall,
            refresh_interval_s=1.0,
        )
        typer.echo(config, nl=False)
        return
    try:
        emu = Emulator(
            sc, speed, api_port, metrics_port, targets_file, namespace, deployment, device_port=device_port,
            hpas=hpas,
        )  # fmt: skip
    except (SpecError, PodStartupError, ValueError, OSError) as exc:
        _fail(exc)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    kubeconfig.parent.mkdir(parents=True, exist_ok=True)
    kubeconfig.write_text(emu.kubeconfig())
    with emu:
        typer.echo(
            f"{sc.name}: {sc.pod.model} on {sc.pod.hardware} at {speed:g}x; API {emu.api_url} "
            f"(kubeconfig {kubeconfig}); pods 127.0.0.N:{metrics_port}/metrics and /device/metrics, "
            f"device plugin :{device_port}/metrics; targets {targets_file}; Ctrl-C stops"
        )
        last, last_wall = emu.snapshot(), time.monotonic()
        try:
            while not stop.wait(status_every):
                now, wall = emu.snapshot(), time.monotonic()
                sim_s = now.now_s - last.now_s
                rate = (now.arrived - last.arrived) / sim_s if sim_s > 0 else 0.0
                r = now.replicas
                typer.echo(
                    f"t={now.now_s:8.1f} s  replicas {r.ready} ready / {r.current} current / {r.desired} desired  "
                    f"{rate:6.2f} req/s  {(now.now_s - last.now_s) / (wall - last_wall):5.1f}x  "
                    f"lag {now.lag_s:.1f} s  API requests {now.api_requests}"
                    + ("  (traffic over)" if now.now_s > sc.duration_s else "")
                )
                last, last_wall = now, wall
                if emu.error is not None:
                    _fail(RuntimeError(f"the simulation stopped: {emu.error!r}"))
        except KeyboardInterrupt:
            pass
    typer.echo(f"stopped at t={emu.now_s:.1f} s")

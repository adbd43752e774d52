"""Commands on one pod and one run: ``perf`` (a step's time), ``calibrate``, ``catalog`` and ``simulate``."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

import typer

from rlscale.cli.app import app
from rlscale.cli.app import fail as _fail
from rlscale.specs.catalog import SpecError, hardware_catalog, load_hardware, load_model, model_catalog
from rlscale.specs.hardware import PrefillLaunch

ModelOpt = Annotated[
    str, typer.Option("--model", "-m", help="Catalog model (llama2-7b, ...) or a config.json/YAML path.")
]
HardwareOpt = Annotated[
    str, typer.Option("--hardware", "-H", help="Catalog host (v5e-8, h100, ...) or a YAML/JSON path.")
]


class PerfPhase(StrEnum):
    decode = "decode"
    prefill = "prefill"


@app.command()
def perf(
    model: ModelOpt = "llama2-7b",
    hardware: HardwareOpt = "v5e-8",
    phase: Annotated[
        PerfPhase, typer.Option(help="decode: one step of a batch; prefill: one prompt.")
    ] = PerfPhase.decode,
    batch: Annotated[
        int, typer.Option(min=1, help="Decode: sequences per step (a preallocated pod computes all its slots).")
    ] = 1,
    ctx: Annotated[int, typer.Option(min=0, help="Decode: KV tokens each sequence attends over.")] = 1024,
    prompt: Annotated[int, typer.Option(min=1, help="Prefill: prompt tokens (padded to JetStream's bucket).")] = 1024,
    pad: Annotated[bool, typer.Option(help="Pad the prompt to its power-of-two prefill bucket.")] = True,
    prefill_launch: Annotated[
        PrefillLaunch,
        typer.Option(help="Prefill: how the deployment launches it, as a pod's prefill_launch (JetStream: compiled)."),
    ] = PrefillLaunch.COMPILED,
) -> None:
    """Predict one step's time, priced as a pod prices it; prints a JSON object whose `ms` is the prediction."""
    from rlscale.serving.buckets import padded_length
    from rlscale.serving.config import PodConfig
    from rlscale.serving.step_time import RooflineStepModel

    try:
        m, hw = load_model(model), load_hardware(hardware)
    except SpecError as exc:
        _fail(exc)
    sm = RooflineStepModel.for_deployment(m, hw, PodConfig(prefill_launch=prefill_launch))
    out: dict[str, object] = {"model": m.name, "hardware": hw.name, "phase": phase.value}
    if phase is PerfPhase.decode:
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
            "prefill_launch": prefill_launch.value,
            "calibrated_launch": hw.step_model.prefill_launch.value,
            "ms": round(ms, 4),
            "tokens_per_s": round(prompt / ms * 1e3, 1),
        }
    typer.echo(json.dumps(out))


@app.command()
def calibrate(
    write: Annotated[bool, typer.Option(help="Write the fitted values to the catalog (fitted.yaml).")] = False,
    report: Annotated[Path | None, typer.Option(help="Also save the report (Markdown) here.")] = None,
    plot: Annotated[Path | None, typer.Option(help="Save a predicted-vs-measured plot (PNG) here.")] = None,
    source: Annotated[
        list[Path] | None,
        typer.Option(
            "--from",
            help="Fit a deployment instead: a load test's folder (rlscale loadtest); repeat for the same deployment at "
            "other batch sizes. Writes hardware.yaml, pod.yaml and scenario.yaml to --out.",
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="With --from: where the fitted files go (default: <first folder>/calibration).")
    ] = None,
) -> None:
    """Fit the step-time model to the measured GPU profile and published TPU figures; report every point. With
    --from, fit a deployment's parameters to what load tests measured, and say which the data identified."""
    from importlib import resources

    from rlscale.serving import calibration as cal

    if source:
        _calibrate_deployment(source, out or source[0] / "calibration", report)
        return

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


def _calibrate_deployment(folders: list[Path], out: Path, report: Path | None) -> None:
    from rlscale.loadtest import fit as deployment_fit

    try:
        fitted = deployment_fit.calibrate(folders)
        replays = [deployment_fit.replay_percentiles(fitted, steps) for steps in fitted.steps]
    except (SpecError, ValueError, OSError) as exc:
        _fail(exc)
    text = "\n".join(deployment_fit.report_lines(fitted, replays))
    files = deployment_fit.write_outputs(fitted, out)
    (out / "calibration.md").write_text(text + "\n")
    if report:
        report.write_text(text + "\n")
    typer.echo(text)
    typer.echo(f"wrote {', '.join(str(f) for f in files)} (name them: --hardware {files[0]}, --scenario {files[2]})")


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
    scenario: Annotated[
        Path, typer.Option("--scenario", "-s", help="Scenario YAML, or a shipped one by name (steady; see envs/).")
    ] = Path("envs/single-pod.yaml"),
    trace: Annotated[
        str | None,
        typer.Option(
            help="Replay this trace (Azure CSV / Mooncake JSONL, or azure-conv) at its own rate and time, from its "
            "start: the scenario's trace scales are not inherited."
        ),
    ] = None,
    trace_format: Annotated[
        Literal["azure", "mooncake"] | None,
        typer.Option(help="The trace's format when its extension does not say (Azure CSV or Mooncake JSONL)."),
    ] = None,
    rate_scale: Annotated[
        float | None,
        typer.Option(help="Multiply the replayed trace's rate (> 0; 2: each request twice, 0.5: a random half)."),
    ] = None,
    replicas: Annotated[int | None, typer.Option(min=0, help="Fixed replica count (replaces the schedule).")] = None,
    agent: Annotated[
        Path | None,
        typer.Option(help="Autoscale with this agent (agents/*.yaml, e.g. an HPA manifest, or a shipped one by name)."),
    ] = None,
    rate: Annotated[
        float | None, typer.Option(help="Override a Poisson scenario's arrival rate, requests/s (not for traces).")
    ] = None,
    duration: Annotated[float | None, typer.Option(help="Simulated time, s.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (same seed, same run).")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Override the pod's model.")] = None,
    hardware: Annotated[str | None, typer.Option("--hardware", "-H", help="Override the pod's host.")] = None,
    percentiles: Annotated[
        str, typer.Option(help="Latency percentiles to report for TTFT, TPOT and end-to-end latency.")
    ] = "50,95,99",
    requests: Annotated[
        bool, typer.Option("--requests", help="Also write requests.csv: one row per request (see the README).")
    ] = False,
    out: Annotated[Path | None, typer.Option(help="Output folder (default: runs/<scenario>__seed<k>__<time>).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the KPI summary as JSON on stdout.")] = False,
) -> None:
    """Simulate a JetStream fleet under a scenario; write summary.json, timeline.csv and timeline.png."""
    from rlscale.agents import load_control_loop
    from rlscale.kpis import parse_percentiles
    from rlscale.policies.base import plan_record
    from rlscale.reports import planning_times, prepare_folder, write_run
    from rlscale.scenario import apply_overrides, load_scenario
    from rlscale.serving.hbm import PodStartupError
    from rlscale.simulation import run_scenario
    from rlscale.workload.build import describe_replay
    from rlscale.workload.traces import TraceError

    try:
        qs = parse_percentiles(percentiles)
        sc = apply_overrides(
            load_scenario(scenario), model=model, hardware=hardware, rate_per_s=rate, replicas=replicas,
            trace=trace, trace_format=trace_format, rate_scale=rate_scale, duration_s=duration, seed=seed,
        )  # fmt: skip
        replay = describe_replay(sc.workload, sc.duration_s)
        if not json_out:
            _echo_header(sc, replay)
        loop = load_control_loop(agent, sc, progress=not json_out) if agent else None
        folder = prepare_folder(sc, out)
        result = run_scenario(
            sc, progress=not json_out, autoscaler=loop, percentiles=qs,
            requests_csv=folder / "requests.csv" if requests else None,
        )  # fmt: skip
    except (SpecError, PodStartupError, TraceError, ValueError, OSError) as exc:
        _fail(exc)
    plan = plan_record(loop.policy if loop is not None else None)
    write_run(sc, result, folder, agent=str(agent) if agent else None, replay=replay, plan=plan)
    for warning in result.warnings:
        typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW, err=True)
    if json_out:
        summary = result.kpis.as_dict() | {"wall_s": round(result.wall_s, 3), "out": str(folder)}
        summary |= planning_times(result.wall_s, plan) | {"agent_plan": plan}
        typer.echo(json.dumps(summary | {"replay": replay, "warnings": result.warnings}))
        return
    _echo_summary(sc, result, folder, requests, plan)


def _echo_header(sc, replay: dict | None) -> None:
    """What is about to be simulated, with the effective trace replay spelled out (no scale goes unsaid)."""
    typer.echo(f"{sc.name}: {sc.pod.model} on {sc.pod.hardware}, {sc.duration_s:g} s, seed {sc.seed}")
    if replay is not None:
        typer.echo(
            f"  replay     {replay['path']} ({replay['format']}): rate x{replay['rate_scale']:g}, time "
            f"x{replay['time_scale']:g}, window {replay['window_start_s']:g} s + {replay['window_s']:g} s of a "
            f"{replay['trace_span_s']:g} s trace; {replay['replayed_window_requests']} of its requests within the "
            f"run, ~{replay['expected_arrivals']:.0f} arrivals ({replay['mean_rate_per_s']:.2f} req/s)"
        )


def _echo_summary(sc, result, folder: Path, requests: bool, plan: dict | None = None) -> None:
    k = result.kpis
    typer.echo(f"  simulated  in {result.wall_s:.1f} s")
    if plan is not None:
        _echo_plan(plan, result.wall_s)
    causes = f" ({', '.join(f'{why}: {n}' for why, n in k.failures.items())})" if k.failures else ""
    typer.echo(
        f"  requests   {k.arrived} arrived, {k.completed} completed, {k.failed} failed{causes}, "
        f"{k.in_flight} unfinished at the end"
    )
    if k.truncated_requests or k.capped_output_requests:
        typer.echo(
            f"  truncated  {k.truncated_requests} prompts over {sc.pod.max_prefill_predict_length} tokens "
            f"({k.truncated_prompt_tokens} tokens dropped); {k.capped_output_requests} answers capped by "
            f"max_target_length ({k.capped_output_tokens} tokens)"
        )
    typer.echo(f"  throughput {k.throughput_req_per_s:.2f} req/s, {k.output_tokens_per_s:.0f} output tokens/s")
    for label, p in (("TTFT", k.ttft_s), ("TPOT", k.tpot_s), ("latency", k.latency_s)):
        typer.echo(f"  {label:<10} " + "   ".join(f"{q} {v:.3f} s" for q, v in p.items()))
    typer.echo(
        f"  SLO        {k.slo_attainment:.1%} of requests within TTFT {sc.slo.ttft_p99_s:g} s and TPOT "
        f"{sc.slo.tpot_p99_s:g} s; p99 targets {'met' if k.slo_p99_met else 'missed'}"
    )
    typer.echo(
        f"  fleet      {k.scale_events} scale events, {k.ooms} OOMs, {k.chip_hours:.2f} chip-hours, ${k.cost_usd:,.2f}"
    )
    files = "summary.json, timeline.csv, timeline.png" + (", requests.csv" if requests else "")
    typer.echo(f"  wrote      {folder}/{files}")


def _echo_plan(plan: dict, wall_s: float) -> None:
    """A planner's time beside the simulation's, and a line that cannot be missed when its checked plan missed."""
    planning_s = plan.get("planning_s", 0.0)
    typer.echo(f"  planned    in {planning_s:.1f} s by {plan['kind']} (total {planning_s + wall_s:.1f} s)")
    if plan.get("met_target") is False:
        best = f" ({100 * plan['attainment']:.1f}% at best)" if "attainment" in plan else ""
        typer.secho(
            f"  MISSED     {plan['kind']}'s checked plan missed its {100 * plan['target']:g}% SLO-attainment target"
            f"{best} within its max_replicas: it is no reference for this scenario",
            fg=typer.colors.RED,
        )

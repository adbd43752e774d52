"""From a deployment to a calibrated simulator: ``loadtest`` (drive a JetStream server, record what it does) and
``capacity`` (the guide's sizing: per batch size, the highest rate within the SLOs and the HPA targets there).
``calibrate --from`` (in ``serving``) fits the step-time model to a load test's folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from rlscale.cli.app import app, int_list
from rlscale.cli.app import fail as _fail
from rlscale.specs.catalog import SpecError


@app.command()
def loadtest(
    scenario: Annotated[
        Path,
        typer.Option("--scenario", "-s", help="The traffic to send and the deployment as stated (scenario YAML/name)."),
    ],
    max_rate: Annotated[
        float, typer.Option(help="Required safety limit: the plan's peak rate over any 10 s, req/s (server time).")
    ],
    max_duration: Annotated[float, typer.Option(help="Required safety limit: the plan's duration, s (server time).")],
    url: Annotated[
        str | None, typer.Option(help="JetStream's HTTP server, http://host:port (POST /v1/generate).")
    ] = None,
    grpc: Annotated[str | None, typer.Option(help="JetStream's gRPC server, host:port (Orchestrator/Decode).")] = None,
    metrics_url: Annotated[
        list[str] | None,
        typer.Option(help="A Prometheus page to scrape during the run (the server's, the device plugin's); repeat."),
    ] = None,
    duration: Annotated[float | None, typer.Option(help="Override the scenario's duration, s.")] = None,
    rate: Annotated[float | None, typer.Option(help="Override a Poisson scenario's rate, req/s.")] = None,
    rate_scale: Annotated[float | None, typer.Option(help="Multiply a trace's or client pool's rate.")] = None,
    seed: Annotated[int | None, typer.Option(help="The traffic's seed (same seed, same requests).")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="The deployment's model, as stated.")] = None,
    hardware: Annotated[str | None, typer.Option("--hardware", "-H", help="The deployment's host, as stated.")] = None,
    per_device_batch_size: Annotated[
        int | None, typer.Option(min=1, help="The deployment's per-device batch size, as stated.")
    ] = None,
    scrape_interval: Annotated[float, typer.Option(min=0.1, help="Seconds between scrapes (server time).")] = 5.0,
    time_scale: Annotated[
        float,
        typer.Option(
            min=0.001, help="Server seconds per wall second: 1 for a real server, K for rlscale emulate --speed K."
        ),
    ] = 1.0,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds a request may take in all (server time).")] = 600.0,
    drain: Annotated[
        float, typer.Option(min=0.0, help="Seconds to wait for answers after the last arrival (server time).")
    ] = 120.0,
    max_in_flight: Annotated[
        int, typer.Option(min=1, help="Requests in flight at most; an arrival beyond fails unsent (counted).")
    ] = 1000,
    text: Annotated[bool, typer.Option("--text", help="Send prompts as text (words) instead of token ids.")] = False,
    interval: Annotated[float, typer.Option(min=0.1, help="Width of a timeline.csv row, s.")] = 10.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and the limits; send nothing.")] = False,
    out: Annotated[Path | None, typer.Option(help="Output folder (default: runs/loadtest-<scenario>-<time>).")] = None,
) -> None:
    """Load test a running JetStream server with a scenario's traffic (open-loop, Locust) and record what a
    calibration needs: requests.csv and timeline.csv in the simulator's columns, the scraped metrics.csv,
    summary.json. Ctrl-C stops cleanly and keeps what was measured."""
    import time

    from rlscale.loadtest.engine import EngineConfig
    from rlscale.loadtest.plan import LoadTestPlan, check_limits
    from rlscale.loadtest.runner import Target, finish, prepare, run_engine
    from rlscale.scenario import apply_overrides, load_scenario

    try:
        target = Target.of(url, grpc)
        sc = apply_overrides(
            load_scenario(scenario), model=model, hardware=hardware, duration_s=duration, rate_per_s=rate,
            rate_scale=rate_scale, seed=seed,
        )  # fmt: skip
        if per_device_batch_size is not None:
            sc = sc.model_copy(
                update={"pod": sc.pod.model_copy(update={"per_device_batch_size": per_device_batch_size})}
            )
        plan = LoadTestPlan.of(sc)
        check_limits(plan, max_rate, max_duration)
    except (SpecError, ValueError, OSError) as exc:
        _fail(exc)
    folder = out or Path("runs") / f"loadtest-{sc.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    pod = sc.pod
    typer.echo(f"load test: {target}; stated deployment {pod.model} on {pod.hardware}, per-device batch "
               f"{pod.per_device_batch_size}; traffic {sc.name} seed {sc.seed}")  # fmt: skip
    for line in plan.describe():
        typer.echo(f"  {line}")
    typer.echo(
        f"  limits: {max_rate:g} req/s peak, {max_duration:g} s; time scale {time_scale:g} (wall "
        f"{plan.duration_s / time_scale:.0f} s + up to {drain / time_scale:.0f} s draining); "
        f"scraping {len(metrics_url or [])} page(s) every {scrape_interval:g} s; folder {folder}"
    )
    if dry_run:
        typer.echo("dry run: nothing sent")
        return
    config = EngineConfig(
        protocol=target.protocol, target=target.address, time_scale=time_scale, metrics_urls=tuple(metrics_url or ()),
        scrape_interval_s=scrape_interval, timeout_s=timeout, drain_s=drain, max_in_flight=max_in_flight, text=text,
    )  # fmt: skip
    prepare(folder, plan, config)
    code = run_engine(folder, typer.echo)
    if code != 0:
        typer.secho(f"warning: the load engine exited with {code}", fg=typer.colors.YELLOW, err=True)
    result = finish(folder, plan, interval)
    ttft, tpot = result["ttft_s"], result["tpot_s"]
    typer.echo(
        f"  requests   {result['arrived']} sent, {result['completed']} completed, {result['failed']} failed, "
        f"{result['unfinished']} unfinished"
        + (f" ({', '.join(f'{k}: {v}' for k, v in result['failures'].items())})" if result["failures"] else "")
    )
    typer.echo(f"  throughput {result['throughput_req_per_s']:.2f} req/s, {result['output_tokens_per_s']:.0f} tokens/s")
    typer.echo("  TTFT       " + "   ".join(f"{q} {v:.3f} s" for q, v in ttft.items()))
    typer.echo("  TPOT       " + "   ".join(f"{q} {v * 1e3:.1f} ms" for q, v in tpot.items()))
    typer.echo(f"  wrote      {folder}/requests.csv, timeline.csv, metrics.csv, summary.json")


@app.command()
def capacity(
    scenario: Annotated[
        Path,
        typer.Option(
            "--scenario", "-s", help="The pod (model, hardware, lengths, SLOs): a scenario YAML or a shipped name."
        ),
    ] = Path("single-pod"),
    batch_sizes: Annotated[
        str, typer.Option(help="Per-device batch sizes to size (comma-separated).")
    ] = "4,6,8,10,11,12,14,16",
    source: Annotated[
        Path | None,
        typer.Option(
            "--from", help="Size a load test's folder (rlscale loadtest of a rate ladder) instead of simulating."
        ),
    ] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Override the pod's model.")] = None,
    hardware: Annotated[str | None, typer.Option("--hardware", "-H", help="Override the pod's host.")] = None,
    duration: Annotated[float, typer.Option(min=10.0, help="Simulated seconds per rate point.")] = 600.0,
    warmup: Annotated[float, typer.Option(min=0.0, help="Seconds of each point left out of the gauges' means.")] = 60.0,
    deployment: Annotated[str, typer.Option(help="The Deployment the HPA manifests scale.")] = "maxengine-server",
    max_replicas: Annotated[int, typer.Option(min=1, help="maxReplicas of the HPA manifests.")] = 16,
    out: Annotated[Path | None, typer.Option(help="Output folder (default: runs/capacity-<scenario>).")] = None,
) -> None:
    """The guide's sizing procedure: per batch size, sweep the request rate, find the highest within the SLOs (p99
    TTFT and TPOT), and write the guide metrics' values there as HPA manifests, a table and one plot per batch."""
    from rlscale.planning import capacity as cap
    from rlscale.scenario import apply_overrides, load_scenario

    try:
        sc = apply_overrides(load_scenario(scenario), model=model, hardware=hardware)
        batches = int_list(batch_sizes, "--batch-sizes")
        folder = out or Path("runs") / f"capacity-{sc.name}"
        if source is not None:  # the load test's own deployment, ladder and SLOs
            from rlscale.loadtest.results import loadtest_capacity

            sc, measured = loadtest_capacity(source)
            results = [measured]
            folder = out or source / "capacity"
        else:
            results = []
            for b in batches:
                typer.echo(f"batch {b}: sweeping the rate ...", err=True)
                results.append(cap.sweep(sc, b, duration_s=duration, warmup_s=warmup))
    except (SpecError, ValueError, OSError) as exc:
        _fail(exc)
    _write_capacity(sc, results, folder, deployment, max_replicas, source)


def _write_capacity(sc, results, folder: Path, deployment: str, max_replicas: int, source: Path | None) -> None:
    """The table (printed and capacity.md), capacity.json, a knee plot and HPA manifests per batch size."""
    import yaml

    from rlscale.planning import capacity as cap
    from rlscale.plots import capacity_plot

    folder.mkdir(parents=True, exist_ok=True)
    where = f"load test {source}" if source else "the simulator"
    lines = [
        f"# Capacity of {sc.pod.model} on {sc.pod.hardware} ({where})",
        f"SLOs: p99 TTFT {sc.slo.ttft_p99_s:g} s, p99 TPOT {sc.slo.tpot_p99_s:g} s; the guide metrics are means at "
        "the knee (the highest rate within both).",
        f"largest per-device batch whose slots hold max_target_length = {sc.pod.max_target_length} tokens in HBM: "
        f"{cap.largest_batch(sc)}",
        "",
        *cap.table_lines(results),
        "",
    ]
    for c in results:
        stem = f"b{c.per_device_batch_size}"
        if c.points:
            title = f"{sc.pod.model} on {sc.pod.hardware}, per-device batch {c.per_device_batch_size}"
            capacity_plot(
                f"{title} ({c.hbm.slots} slots)",
                c.record()["points"],
                c.knee.rate_per_s if c.knee else None,
                sc.slo.ttft_p99_s,
                sc.slo.tpot_p99_s,
                folder / f"knee-{stem}.png",
            )
        for name, manifest in cap.hpa_manifests(c, deployment, max_replicas).items():
            (folder / stem).mkdir(exist_ok=True)
            (folder / stem / f"{name}.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
        if c.knee is not None and c.knee.rate_per_s == max(p.rate_per_s for p in c.points):
            lines.append(
                f"batch {c.per_device_batch_size}: within the SLOs at every rate measured; its capacity is at least "
                f"{c.knee.rate_per_s:.2f} req/s (measure higher rates to find the knee)"
            )
        notes = [f"{m}: {v}" for m, v in cap.targets(c).items() if isinstance(v, str)]
        if c.knee is not None and notes:
            lines.append(f"batch {c.per_device_batch_size}: no manifest for " + "; ".join(notes))
    top = cap.best(results)
    if top is not None:
        stem = f"b{top.per_device_batch_size}"
        lines.append(
            f"best: per-device batch {top.per_device_batch_size}, {top.knee.throughput_req_per_s:.2f} req/s per pod "
            f"within the SLOs; its manifests: {folder / stem}/"
        )
    text = "\n".join(lines)
    typer.echo(text)
    (folder / "capacity.md").write_text(text + "\n")
    record = {"scenario": sc.model_dump(mode="json"), "batches": [c.record() for c in results]}
    (folder / "capacity.json").write_text(json.dumps(record, indent=1))
    typer.echo(f"wrote {folder}/capacity.md, capacity.json, knee-b*.png, b*/hpa-*.yaml")

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
        results = []
        for b in batches:
            typer.echo(f"batch {b}: sweeping the rate ...", err=True)
            results.append(cap.sweep(sc, b, duration_s=duration, warmup_s=warmup))
    except (SpecError, ValueError, OSError) as exc:
        _fail(exc)
    _write_capacity(sc, results, folder, deployment, max_replicas, None)


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

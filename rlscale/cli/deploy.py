"""Commands that run policies against a cluster: ``controller`` (the live autoscaler) and ``emulate`` (the
simulated fleet behind a Kubernetes API and metrics endpoints)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from rlscale.cli.app import app
from rlscale.cli.app import fail as _fail
from rlscale.specs.catalog import SpecError


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
    log_level: Annotated[
        Literal["DEBUG", "INFO", "WARNING", "ERROR"], typer.Option(case_sensitive=False, help="Log level.")
    ] = "INFO",
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
    scenario: Annotated[
        Path, typer.Option("--scenario", "-s", help="Scenario YAML, or a shipped one by name (steady; see envs/).")
    ],
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
    hardware: Annotated[
        str | None, typer.Option("--hardware", "-H", help="Override the pod's host (catalog name or YAML path).")
    ] = None,
    http_port: Annotated[
        int | None,
        typer.Option(min=0, max=65535, help="Serve JetStream's HTTP POST /v1/generate on 127.0.0.1 (0: any)."),
    ] = None,
    grpc_port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="Serve JetStream's gRPC Decode on 127.0.0.1 (0: any).")
    ] = None,
    scenario_traffic: Annotated[
        bool, typer.Option(help="Play the scenario's own workload (--no-scenario-traffic: only what clients send).")
    ] = True,
    status_every: Annotated[float, typer.Option(min=0.1, help="Wall seconds between status lines.")] = 5.0,
    print_prometheus_config: Annotated[
        bool,
        typer.Option(
            "--print-prometheus-config",  # an action, no --no- form (which left no room for the help at 120 columns)
            help="Print a prometheus.yml scraping the emulated pods (intervals ÷ speed) and exit.",
        ),
    ] = False,
) -> None:
    """Run a scenario's fleet in real time behind a Kubernetes API and per-pod metrics endpoints, until Ctrl-C."""
    import signal
    import threading
    import time

    from rlscale.data import read_extended
    from rlscale.emulator import Emulator, prometheus_config
    from rlscale.scenario import apply_overrides, load_scenario
    from rlscale.serving.hbm import PodStartupError

    try:
        sc = apply_overrides(load_scenario(scenario), duration_s=duration, hardware=hardware)
        hpas = [read_extended(hpa)] if hpa else []
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
            hpas=hpas, http_port=http_port, grpc_port=grpc_port, scenario_traffic=scenario_traffic,
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
        if emu.http_url or emu.grpc_target:
            served = [f"HTTP {emu.http_url}/v1/generate"] if emu.http_url else []
            served += [f"gRPC {emu.grpc_target} (jetstream_proto.Orchestrator/Decode)"] if emu.grpc_target else []
            pods = ", ".join(f"{pod} http://{target}/metrics" for pod, target in sorted(emu.targets().items()))
            typer.echo(f"JetStream API: {'; '.join(served)}; server metrics: {pods or 'no pod serving yet'}")
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

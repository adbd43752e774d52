"""Log a comparison to MLflow: one parent run per experiment, one nested child run per (scenario, agent, seed).

Metrics go under namespaced keys (``cost/usd``, ``slo/attainment``,
``latency/ttft_p99_s``, ``sim/wall_s`` …), the same names in every run, so MLflow's
charts and searches line runs up. MLflow is imported here only, and this module
only when tracking, so ``import rlscale`` stays fast.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlscale.experiments.stats import flatten_kpis, result_rows, summarize

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from rlscale.experiments.compare import Comparison
    from rlscale.scenario import ScenarioConfig

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"  # embedded: a file in the working directory, nothing to start

# results.csv columns -> MLflow keys; prefixes cover the families (percentiles, failure kinds, extras).
METRIC_KEYS = {
    "duration_s": "sim/duration_s",
    "wall_s": "sim/wall_s",
    "planning_s": "sim/planning_s",
    "plan_met_target": "plan/met_target",
    "arrived": "requests/arrived",
    "completed": "requests/completed",
    "failed": "requests/failed",
    "in_flight": "requests/in_flight",
    "throughput_req_per_s": "throughput/req_per_s",
    "output_tokens_per_s": "throughput/output_tokens_per_s",
    "slo_attainment": "slo/attainment",
    "ttft_attainment": "slo/ttft_attainment",
    "tpot_attainment": "slo/tpot_attainment",
    "e2e_attainment": "slo/e2e_attainment",
    "slo_p99_met": "slo/p99_met",
    "ooms": "fleet/ooms",
    "scale_events": "fleet/scale_events",
    "chip_hours": "cost/chip_hours",
    "cost_usd": "cost/usd",
}
METRIC_PREFIXES = (
    ("ttft_", "latency/ttft_"),
    ("tpot_", "latency/tpot_"),
    ("latency_", "latency/e2e_"),
    ("failures_", "requests/failed_"),
    ("extra_", "extra/"),
)
# Means over seeds logged on the parent run, per scenario and agent, for comparing at a glance in the MLflow UI.
HEADLINE_COLUMNS = ("cost_usd", "chip_hours", "slo_attainment", "ttft_p99_s", "tpot_p99_s", "failed")


class TrackingError(RuntimeError):
    """The tracking store cannot be reached or refused a write; the message names the URI."""


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The URI given, else ``$MLFLOW_TRACKING_URI``, else the embedded SQLite file."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def check_tracking(tracking_uri: str, timeout_s: float = 10.0) -> None:
    """Fail fast, before hours of simulation, when the store is unreachable (MLflow's own client retries for minutes).

    A server must answer ``/health``; any other store must list experiments (an SQLite file is created here).
    """
    if tracking_uri.startswith(("http://", "https://")):
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(tracking_uri.rstrip("/") + "/health", timeout=timeout_s) as response:
                response.read()
        except (urllib.error.URLError, OSError) as exc:
            raise TrackingError(f"MLflow tracking server {tracking_uri} does not answer: {exc}") from exc
        return
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        MlflowClient(tracking_uri=tracking_uri).search_experiments(max_results=1)
    except (MlflowException, OSError, ValueError) as exc:
        raise TrackingError(f"MLflow tracking store {tracking_uri}: {exc}") from exc


def metric_key(column: str) -> str:
    """The MLflow key of a results.csv column (an unknown new KPI goes under ``kpi/``)."""
    if column in METRIC_KEYS:
        return METRIC_KEYS[column]
    for prefix, namespace in METRIC_PREFIXES:
        if column.startswith(prefix):
            return namespace + column[len(prefix) :]
    return f"kpi/{column}"


def run_metrics(
    kpis: dict[str, Any], wall_s: float, planning_s: float = 0.0, plan_met_target: bool | None = None
) -> dict[str, float]:
    """A run's KPIs (``KPIs.as_dict()``), wall time and planning time as MLflow metrics, and for a planner whether
    its plan met its own target (1/0); NaN stays NaN (MLflow stores it), a KPI that does not apply (None, e.g. no e2e
    objective, or no plan) is not logged."""
    flat = flatten_kpis(kpis) | {"wall_s": wall_s, "planning_s": planning_s, "plan_met_target": plan_met_target}
    return {metric_key(c): float(v) for c, v in flat.items() if v is not None}


def scenario_params(scenario: ScenarioConfig) -> dict[str, str]:
    """The scenario fields one filters runs by; the whole scenario is in its file, named by ``scenario_file``."""
    arrival = "trace" if scenario.workload.trace is not None else scenario.workload.arrival.process
    return {
        "model": scenario.pod.model,
        "hardware": scenario.pod.hardware,
        "initial_replicas": str(scenario.fleet.replicas),
        "routing": scenario.fleet.routing.value,
        "arrival": arrival,
        "duration_s": f"{scenario.duration_s:g}",
        "slo_ttft_p99_s": f"{scenario.slo.ttft_p99_s:g}",
        "slo_tpot_p99_s": f"{scenario.slo.tpot_p99_s:g}",
    }


def artifact_location(tracking_uri: str, experiment: str) -> str | None:
    """Where a new experiment keeps its artifacts: beside an SQLite file, in ``mlruns/<experiment>`` (MLflow's own
    default is the working directory's ``mlruns/``, wherever that is); elsewhere the store decides (a server proxies
    them)."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix):
        return None
    database = Path(tracking_uri[len(prefix) :].split("?", 1)[0])
    return (database.resolve().parent / "mlruns" / experiment).as_uri()


def _experiment_id(client: MlflowClient, name: str, tracking_uri: str) -> str:
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location(tracking_uri, name))
    except MlflowException:  # created meanwhile by another comparison
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def run_tags(git_commit: str, out: Path) -> dict[str, str]:
    """The tags every rlscale run carries: the source commit (MLflow's own tag) and the folder its files are in."""
    from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT

    return {MLFLOW_GIT_COMMIT: git_commit.removesuffix("-dirty"), "rlscale.out": str(Path(out).resolve())}


def _log(client: MlflowClient, run_id: str, params: dict[str, Any], metrics: dict[str, float]) -> None:
    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
        params=[Param(k, str(v)) for k, v in params.items()],
    )


def track_comparison(comparison: Comparison, tracking_uri: str) -> str:
    """Log ``comparison`` to ``tracking_uri``; returns the parent run's id. A failure marks the parent FAILED and is
    raised as a TrackingError that says where the results are (they were written before tracking began)."""
    from mlflow.exceptions import MlflowException

    try:
        return _track(comparison, tracking_uri)
    except MlflowException as exc:
        raise TrackingError(f"MLflow at {tracking_uri}: {exc} (the results are in {comparison.out})") from exc


def _track(comparison: Comparison, tracking_uri: str) -> str:
    from mlflow.entities import RunStatus
    from mlflow.tracking import MlflowClient
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    experiment = comparison.experiment
    config = experiment.config
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment_id = _experiment_id(client, experiment.name, tracking_uri)
    parent = client.create_run(
        experiment_id,
        run_name=comparison.out.name,
        tags=run_tags(comparison.git_commit, comparison.out),
    )
    parent_id = parent.info.run_id
    try:
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
        _log(client, parent_id, params, headline | {"sim/wall_s": comparison.wall_s})
        for path in comparison.files.values():
            client.log_artifact(parent_id, str(path))

        scenarios = dict(zip(experiment.scenario_names, experiment.scenarios, strict=True))
        scenario_files = dict(zip(experiment.scenario_names, experiment.scenario_paths, strict=True))
        agent_files = dict(zip(experiment.agent_names, experiment.agent_paths, strict=True))
        for record in comparison.records:
            child = client.create_run(
                experiment_id, run_name=record.label, tags={MLFLOW_PARENT_RUN_ID: parent_id}
            ).info.run_id
            params = {
                "scenario": record.scenario,
                "agent": record.agent,
                "seed": record.seed,
                "scenario_file": str(scenario_files[record.scenario]),
                "agent_file": str(agent_files[record.agent]),
                **scenario_params(scenarios[record.scenario]),
            }
            metrics = run_metrics(record.kpis, record.wall_s, record.planning_s, record.plan_met_target)
            _log(client, child, params, metrics)
            if record.label in comparison.timelines:
                client.log_artifact(child, str(comparison.timelines[record.label]), artifact_path="timeline")
            client.set_terminated(child, RunStatus.to_string(RunStatus.FINISHED))
    except BaseException:
        with contextlib.suppress(Exception):  # the store may be what failed; the original error is the one to see
            client.set_terminated(parent_id, RunStatus.to_string(RunStatus.FAILED))
        raise
    client.set_terminated(parent_id, RunStatus.to_string(RunStatus.FINISHED))
    return parent_id

"""Log a comparison to MLflow: one parent run per experiment, one nested child run per (scenario, agent, seed).

It takes plain records (:class:`ComparisonLog`, :class:`RunLog`: names, params, metrics under the keys of
:mod:`rlscale.tracking.keys`, files); ``rlscale.experiments.compare.comparison_log`` builds them from a comparison.
MLflow is imported here only, and this module only when tracking, so ``import rlscale`` stays fast.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlscale.tracking.store import TrackingError, ensure_experiment, run_tags

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient


@dataclass(frozen=True)
class RunLog:
    """One child run: its name, params, metrics (MLflow keys) and its timeline's file, if any."""

    name: str
    params: dict[str, Any]
    metrics: dict[str, float]
    timeline: Path | None = None


@dataclass(frozen=True)
class ComparisonLog:
    """A comparison as MLflow sees it: the experiment it belongs to, the parent run's params, metrics (headline
    means) and files, and its child runs; ``out`` is the folder its results were written to."""

    experiment: str
    out: Path
    git_commit: str
    params: dict[str, Any]
    metrics: dict[str, float]
    files: list[Path] = field(default_factory=list)
    runs: list[RunLog] = field(default_factory=list)


def _log(client: MlflowClient, run_id: str, params: dict[str, Any], metrics: dict[str, float]) -> None:
    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
        params=[Param(k, str(v)) for k, v in params.items()],
    )


def track_comparison(comparison: ComparisonLog, tracking_uri: str) -> str:
    """Log ``comparison`` to ``tracking_uri``; returns the parent run's id. A failure marks the parent FAILED and is
    raised as a TrackingError that says where the results are (they were written before tracking began)."""
    from mlflow.exceptions import MlflowException

    try:
        return _track(comparison, tracking_uri)
    except MlflowException as exc:
        raise TrackingError(f"MLflow at {tracking_uri}: {exc} (the results are in {comparison.out})") from exc


def _track(comparison: ComparisonLog, tracking_uri: str) -> str:
    from mlflow.entities import RunStatus
    from mlflow.tracking import MlflowClient
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = ensure_experiment(client, comparison.experiment, tracking_uri)
    parent_id = client.create_run(
        experiment, run_name=comparison.out.name, tags=run_tags(comparison.git_commit, comparison.out)
    ).info.run_id
    try:
        _log(client, parent_id, comparison.params, comparison.metrics)
        for path in comparison.files:
            client.log_artifact(parent_id, str(path))
        for run in comparison.runs:
            child = client.create_run(experiment, run_name=run.name, tags={MLFLOW_PARENT_RUN_ID: parent_id})
            child_id = child.info.run_id
            _log(client, child_id, run.params, run.metrics)
            if run.timeline is not None:
                client.log_artifact(child_id, str(run.timeline), artifact_path="timeline")
            client.set_terminated(child_id, RunStatus.to_string(RunStatus.FINISHED))
    except BaseException:
        with contextlib.suppress(Exception):  # the store may be what failed; the original error is the one to see
            client.set_terminated(parent_id, RunStatus.to_string(RunStatus.FAILED))
        raise
    client.set_terminated(parent_id, RunStatus.to_string(RunStatus.FINISHED))
    return parent_id

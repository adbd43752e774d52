"""MLflow for training: SB3's logger writes here too, and the trained policy becomes a registered pyfunc model.

Conventions are those of :mod:`rlscale.tracking.store` (tracking URI resolution, artifacts beside an
SQLite store, namespaced metric keys). This module imports MLflow and SB3, and is imported only when tracking.
"""

from __future__ import annotations

import contextlib
import csv
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import numpy as np
from mlflow.entities import Metric, Param, RunStatus
from mlflow.tracking import MlflowClient
from stable_baselines3.common.logger import KVWriter

from rlscale.policies.learned import MODEL_FILE, POLICY_FILE, VECNORMALIZE_FILE, PolicyFiles, SB3Policy
from rlscale.tracking.store import ensure_experiment, using_tracking_uri
from rlscale.training.run_files import (
    AGENT_YAML,
    CONFIG_JSON,
    CURVE_PNG,
    PROGRESS_CSV,
    SCENARIO_YAML,
    SCENARIOS_DIR,
)

MODEL_ARTIFACT = "model"  # runs:/<run_id>/model
MAX_PARAM_CHARS = 6000  # MLflow's limit on a param value


class MLflowWriter(KVWriter):
    """An SB3 logger output: every ``logger.dump(step)`` becomes one batch of MLflow metrics at that step.

    Keys stay as recorded (``train/loss``, ``rollout/ep_rew_mean``, ``eval/mean_reward``, ``cost/usd`` …);
    strings and keys excluded for ``mlflow`` are skipped.
    """

    def __init__(self, client: MlflowClient, run_id: str) -> None:
        self.client, self.run_id = client, run_id

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0) -> None:
        now = int(time.time() * 1000)
        metrics = [
            Metric(key, float(value), now, int(step))
            for key, value in key_values.items()
            if "mlflow" not in (key_excluded.get(key) or ())
            and isinstance(value, int | float | np.integer | np.floating)
            and not isinstance(value, bool)
        ]
        for start in range(0, len(metrics), 1000):  # MLflow's batch limit
            self.client.log_batch(self.run_id, metrics=metrics[start : start + 1000])

    def close(self) -> None:
        pass


class SB3PyFuncModel(mlflow.pyfunc.PythonModel):
    """A trained policy as an MLflow pyfunc: ``predict(obs)`` takes raw observations (one row each, as
    ``rlscale/JetStream-v0`` or ``ObservationBuilder`` gives them) and returns the environment's discrete
    actions (deterministic; a recurrent policy starts from a fresh state on every call). Needs ``rlscale``
    installed where it is loaded."""

    def load_context(self, context) -> None:
        artifacts = context.artifacts
        vecnormalize = artifacts.get("vecnormalize")
        files = PolicyFiles(Path(artifacts["model"]), Path(artifacts["policy"]), vecnormalize and Path(vecnormalize))
        self.policy = SB3Policy(files)

    def predict(self, context, model_input: np.ndarray, params: dict | None = None) -> np.ndarray:
        if isinstance(model_input, dict):  # a named tensor input
            (model_input,) = model_input.values()
        obs = model_input.to_numpy() if hasattr(model_input, "to_numpy") else np.asarray(model_input)
        obs = np.atleast_2d(obs).astype(np.float32)
        return self.policy.predict(obs, None, np.ones(len(obs), dtype=bool), deterministic=True)[0]


@dataclass
class TrainingRun:
    """One MLflow run of a training: created before training so curves stream in, closed at the end."""

    client: MlflowClient
    tracking_uri: str
    run_id: str
    experiment_id: str

    @classmethod
    def start(cls, tracking_uri: str, experiment: str, run_name: str, tags: dict[str, str]) -> TrainingRun:
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        experiment_id = ensure_experiment(client, experiment, tracking_uri)
        run = client.create_run(experiment_id, run_name=run_name, tags=tags)
        return cls(client, tracking_uri, run.info.run_id, experiment_id)

    def log_params(self, params: dict[str, Any]) -> None:
        items = [Param(k, str(v)[:MAX_PARAM_CHARS]) for k, v in params.items()]
        for start in range(0, len(items), 100):  # MLflow's batch limit for params
            self.client.log_batch(self.run_id, params=items[start : start + 100])

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path=artifact_path)

    def log_policy(self, folder: Path, obs_dim: int, registered_name: str, alias: str | None) -> tuple[str, str]:
        """Log ``folder``'s policy as the run's pyfunc model ``model``, register it under ``registered_name`` and
        point ``alias`` (if any) at the new version; returns (``runs:/`` URI, version)."""
        from mlflow.models import ModelSignature
        from mlflow.types import Schema, TensorSpec

        artifacts = {"model": str(folder / MODEL_FILE), "policy": str(folder / POLICY_FILE)}
        if (folder / VECNORMALIZE_FILE).exists():
            artifacts["vecnormalize"] = str(folder / VECNORMALIZE_FILE)
        signature = ModelSignature(
            inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, obs_dim))]),  # unnamed: predict gets the array
            outputs=Schema([TensorSpec(np.dtype(np.int64), (-1,))]),
        )
        with _fluent(self.tracking_uri, self.run_id):
            info = mlflow.pyfunc.log_model(
                name=MODEL_ARTIFACT,
                python_model=str(Path(__file__).with_name("pyfunc_entry.py")),
                artifacts=artifacts,
                signature=signature,
                input_example=np.zeros((1, obs_dim), dtype=np.float32),  # MLflow predicts on it: a load check
                pip_requirements=_requirements(),
                registered_model_name=registered_name,
            )
        version = str(info.registered_model_version)
        if alias is not None:
            self.client.set_registered_model_alias(registered_name, alias, version)
        return f"runs:/{self.run_id}/{MODEL_ARTIFACT}", version

    def log_files(self, folder: Path) -> None:
        """A run folder's settings (under ``config/``), training curve CSV and plot as artifacts."""
        for name in (CONFIG_JSON, AGENT_YAML, SCENARIO_YAML, POLICY_FILE):
            if (folder / name).exists():
                self.log_artifact(folder / name, "config")
        if (folder / SCENARIOS_DIR).is_dir():  # a mix's members
            self.client.log_artifacts(self.run_id, str(folder / SCENARIOS_DIR), f"config/{SCENARIOS_DIR}")
        for name in (PROGRESS_CSV, CURVE_PNG):
            if (folder / name).exists():
                self.log_artifact(folder / name)

    def replay_progress(self, progress_csv: Path) -> None:
        """The SB3 logger's CSV as metrics, each row at its ``time/total_timesteps``: a run trained elsewhere
        (a sweep's worker) gets the same curves as one that streamed them."""
        writer = self.writer()
        with progress_csv.open(newline="") as f:
            for row in csv.DictReader(f):
                values = {k: float(v) for k, v in row.items() if k and v not in (None, "")}
                writer.write(values, {}, int(values.get("time/total_timesteps", 0)))

    def writer(self) -> MLflowWriter:
        """An SB3 logger output writing to this run."""
        return MLflowWriter(self.client, self.run_id)

    def finish(self, status: str) -> None:
        """``FINISHED``, ``FAILED`` or ``KILLED``."""
        self.client.set_terminated(self.run_id, status)


@contextlib.contextmanager
def _fluent(tracking_uri: str, run_id: str) -> Iterator[None]:
    """MLflow's fluent API (``log_model`` has no client form) on ``run_id`` at ``tracking_uri``, leaving the
    process's URIs and the run's status as they were."""
    with using_tracking_uri(tracking_uri):
        mlflow.start_run(run_id=run_id)
        try:
            yield
        finally:
            mlflow.end_run(RunStatus.to_string(RunStatus.RUNNING))


def _requirements() -> list[str]:
    """What loading the model needs, pinned to what trained it (inferring them would run pip in a subprocess)."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for package in ("stable-baselines3", "sb3-contrib", "torch", "gymnasium", "numpy", "rlscale"):
        with contextlib.suppress(PackageNotFoundError):
            pins.append(f"{package}=={version(package).split('+')[0]}")
    return pins

"""MLflow for training sweeps, on the driver: one parent run per sweep, one child run per cell (logged from the
files its worker sent back, curves replayed at their steps), each policy registered, the alias on the champion.

Idempotent: the parent run's id is kept in ``out/mlflow_run.json`` and reused by a resumed sweep; a cell's run is
tagged ``rlscale.cell`` so a cell logged before its result was stored finds its run instead of logging another,
and a run left half-logged by a driver that died is deleted before the cell is logged again.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflow.entities import Metric, Param, RunStatus
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from rlscale.tracking.logged import logged_run, record_run
from rlscale.tracking.store import check_tracking, ensure_experiment, run_tags
from rlscale.training.run_files import PROGRESS_CSV
from rlscale.training.sweep import CELL_TAG, Grid, TrainCell
from rlscale.training.tracking import TrainingRun

if TYPE_CHECKING:
    from rlscale.training.sweep import SweepResult

VERSION_TAG = "rlscale.model_version"  # set on a cell's run once its policy is registered: the run is complete


@dataclass
class SweepTracker:
    client: MlflowClient
    tracking_uri: str
    experiment: str
    experiment_id: str
    run_id: str
    registered: str
    git_commit: str
    new: bool  # False: a resumed sweep's parent run, whose params are already logged

    @classmethod
    def open(cls, tracking_uri: str, experiment: str, out: Path, resume: bool, registered: str) -> SweepTracker:
        """The sweep's parent run: the one ``out/mlflow_run.json`` names (resuming at the same URI), else new."""
        from rlscale.experiments.compare import source_commit

        check_tracking(tracking_uri)
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        experiment_id = ensure_experiment(client, experiment, tracking_uri)
        commit = source_commit()
        previous = logged_run(out, tracking_uri) if resume else None
        if previous is not None:
            run_id = previous
            client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
            return cls(client, tracking_uri, experiment, experiment_id, run_id, registered, commit, new=False)
        run_id = client.create_run(experiment_id, run_name=out.name, tags=run_tags(commit, out)).info.run_id
        record_run(out, tracking_uri, run_id)
        return cls(client, tracking_uri, experiment, experiment_id, run_id, registered, commit, new=True)

    def log_sweep_params(
        self, name: str, agent: Any, scenario: Any, seeds: Sequence[int], grid: Grid, executor: str, cells: int,
        extra: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        if not self.new:
            return
        params = {
            "sweep": name, "agent_file": str(agent), "scenario_file": str(scenario),
            "seeds": ",".join(map(str, seeds)), "cells": cells, "executor": executor,
            "git_commit": self.git_commit or "unknown", "registered_model": self.registered,
            **{f"grid.{path}": json.dumps(values) for path, values in grid},
            **(extra or {}),
        }  # fmt: skip
        self.client.log_batch(self.run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])

    def log_cell(self, cell: TrainCell, folder: Path, record: dict[str, Any]) -> tuple[str, str]:
        """The cell's run (params, replayed curves, files, registered policy); an earlier complete run of the cell
        is returned instead, an incomplete one deleted. Returns (run id, model version)."""
        tag = f"{cell.sweep}/{cell.label}"
        earlier = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{CELL_TAG}` = '{tag}' and tags.`{MLFLOW_PARENT_RUN_ID}` = '{self.run_id}'",
        )
        for run in earlier:
            version = run.data.tags.get(VERSION_TAG)
            if run.info.status == RunStatus.to_string(RunStatus.FINISHED) and version:
                return run.info.run_id, version
            self.client.delete_run(run.info.run_id)
        tags = {CELL_TAG: tag, MLFLOW_PARENT_RUN_ID: self.run_id, **run_tags(self.git_commit, folder)}
        run = TrainingRun.start(self.tracking_uri, self.experiment, record["run_name"], tags)
        try:
            # MLflow's per-artifact progress bars would interleave with the sweep's own
            with _environ("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false"):
                run.log_params({**record["params"], "sweep": cell.sweep, "setting": cell.setting_label})
                run.replay_progress(folder / PROGRESS_CSV)
                run.log_files(folder)
                _, version = run.log_policy(folder, record["obs_dim"], self.registered, None)
                self.client.set_tag(run.run_id, VERSION_TAG, version)
        except BaseException:
            run.finish("FAILED")
            raise
        run.finish("FINISHED")
        return run.run_id, version

    def finish(self, result: SweepResult, alias: str) -> str | None:
        """The sweep's files and per-setting means on the parent run; ``alias`` on the champion's version."""
        version = None
        metrics: dict[str, float] = {"sweep/wall_s": result.wall_s}
        for cell, record in zip(result.cells, result.records, strict=True):
            reward = record["eval_mean_reward"]
            if math.isfinite(reward):
                metrics[f"eval_mean_reward/{cell.label.replace('=', ':')}"] = reward
        if result.champion is not None:
            index = result.cells.index(result.champion)
            version = str(result.records[index]["model_version"])
            self.client.set_registered_model_alias(self.registered, alias, version)
            self.client.set_tag(self.run_id, "rlscale.champion", f"{result.champion.label} (version {version})")
        from time import time

        now = int(time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()])
        for path in result.files.values():
            self.client.log_artifact(self.run_id, str(path))
        self.client.set_terminated(self.run_id, RunStatus.to_string(RunStatus.FINISHED))
        return version

    def abort(self, status: str) -> None:
        """The parent run marked ``FAILED`` or ``KILLED``; a resumed sweep takes it up again."""
        self.client.set_terminated(self.run_id, status)


@contextlib.contextmanager
def _environ(name: str, value: str) -> Iterator[None]:
    """``os.environ[name]`` set to ``value`` for a while, then as it was."""
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous

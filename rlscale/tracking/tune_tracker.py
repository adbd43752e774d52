"""Log a tuning search to MLflow: one run per search, in experiment ``tune-<scenario>``.

Params: the manifest file, scenario, seeds, trials, batch, target attainment, what was tuned, the executor, the
commit, and the chosen setting (``best.<knob>``). Metrics: every trial's mean cost, chip-hours, worst-seed
attainment and feasibility at its trial number (MLflow's charts show the search converging), and the best's.
Artifacts: ``trials.csv``, ``trials.png`` and the tuned manifest. A resumed search that ran nothing new and finds
itself logged at the same URI (``out/mlflow_run.json``) is not logged again.

It takes plain records: each trial a mapping with ``values`` (the setting), ``cost_usd``, ``chip_hours``,
``slo_attainment`` (worst seed) and ``feasible``, as ``rlscale.tuning.trial_records`` gives them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rlscale.tracking.logged import logged_run, record_run
from rlscale.tracking.store import TrackingError, check_tracking, ensure_experiment, run_tags

Trial = Mapping[str, Any]  # values, cost_usd, chip_hours, slo_attainment, feasible


def track_tuning(
    trials: Sequence[Trial],
    best: Trial | None,
    files: dict[str, Path],
    out: Path,
    tracking_uri: str,
    *,
    scenario: str,
    params: dict[str, Any],
    git_commit: str,
    reuse: bool = False,
) -> str:
    """Log the search (its ``trials`` in order, the ``best`` one or None); returns the run id. ``reuse``: return the
    run ``out/mlflow_run.json`` names at this URI instead of logging again (a resumption that ran nothing)."""
    from mlflow.entities import Metric, Param, RunStatus
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    previous = logged_run(out, tracking_uri) if reuse else None
    if previous is not None:
        return previous
    check_tracking(tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        experiment = ensure_experiment(client, f"tune-{scenario}", tracking_uri)
        run_id = client.create_run(experiment, run_name=out.name, tags=run_tags(git_commit, out)).info.run_id
        now = int(time.time() * 1000)
        feasible = f"{sum(bool(t['feasible']) for t in trials)}/{len(trials)}"
        everything = {**params, "git_commit": git_commit or "unknown", "feasible_trials": feasible}
        if best is not None:
            everything |= {f"best.{k}": f"{v:.6g}" for k, v in best["values"].items()}
        metrics = [
            Metric(key, value, now, i)
            for i, trial in enumerate(trials)
            for key, value in (
                ("trial/cost_usd", trial["cost_usd"]), ("trial/chip_hours", trial["chip_hours"]),
                ("trial/worst_slo_attainment", trial["slo_attainment"]),
                ("trial/feasible", float(trial["feasible"])),
            )
        ]  # fmt: skip
        if best is not None:
            metrics += [
                Metric("best/cost_usd", best["cost_usd"], now, 0),
                Metric("best/chip_hours", best["chip_hours"], now, 0),
                Metric("best/worst_slo_attainment", best["slo_attainment"], now, 0),
            ]
        client.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in everything.items()])
        for start in range(0, len(metrics), 1000):  # MLflow's batch limit
            client.log_batch(run_id, metrics=metrics[start : start + 1000])
        for path in files.values():
            client.log_artifact(run_id, str(path))
        client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))
    except MlflowException as exc:
        raise TrackingError(f"MLflow at {tracking_uri}: {exc} (the trials are in {out})") from exc
    record_run(out, tracking_uri, run_id)
    return run_id


def search_params(
    agent: Path, scenario: Path, seeds: Sequence[int], trials: int, batch: int, slo_attainment: float,
    behaviour: bool, executor: str,
) -> dict[str, Any]:  # fmt: skip
    """The search's settings as MLflow params."""
    return {
        "agent_file": str(agent), "scenario_file": str(scenario), "seeds": ",".join(map(str, seeds)),
        "trials": trials, "batch": batch, "slo_attainment": slo_attainment, "behaviour": behaviour,
        "executor": executor,
    }  # fmt: skip

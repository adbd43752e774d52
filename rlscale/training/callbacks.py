"""Training extras as SB3 callbacks: held-out evaluation with the fleet's KPIs (and a baseline's, for reference),
and the KPIs of training episodes. Everything goes through the model's one logger, under namespaced keys:
``eval/`` (return, episode length), the KPI families of ``rlscale.tracking`` (``cost/usd``, ``slo/attainment``,
``latency/ttft_p99_s``, ``requests/failed`` …), the baseline beside them (``cost/baseline_usd`` …), and
``rollout/cost_usd``, ``rollout/slo_attainment`` for training episodes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from rlscale.experiments.stats import flatten_kpis
from rlscale.tracking.keys import metric_key
from rlscale.training.envs import EpisodeRecorder

# The KPIs logged at each evaluation (all of them are in ``Evaluation.kpis``): the trade-off, then what went wrong.
LOGGED_KPIS = (
    "cost/usd",
    "cost/chip_hours",
    "slo/attainment",
    "slo/ttft_attainment",
    "slo/tpot_attainment",
    "latency/ttft_p99_s",
    "latency/tpot_p99_s",
    "requests/failed",
    "fleet/scale_events",
    "fleet/ooms",
)


def kpi_metrics(episodes: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Episode KPIs (``KPIs.as_dict()``) averaged over episodes, under their MLflow keys (``cost/usd`` …)."""
    columns: dict[str, list[float]] = {}
    for kpis in episodes:
        for column, value in flatten_kpis(kpis).items():
            if value is not None:
                columns.setdefault(metric_key(column), []).append(float(value))
    return {key: float(np.mean(values)) for key, values in columns.items()}


def baseline_key(key: str) -> str:
    """``cost/usd`` → ``cost/baseline_usd``: a baseline's KPI in the same namespace, so charts put them together."""
    namespace, _, rest = key.partition("/")
    return f"{namespace}/baseline_{rest}"


@dataclass(frozen=True)
class Evaluation:
    """One evaluation: after how many env steps, the episodes' return, and their mean KPIs (MLflow keys)."""

    timesteps: int
    mean_reward: float
    std_reward: float
    kpis: dict[str, float] = field(default_factory=dict)


class KPIEvalCallback(BaseCallback):
    """Every ``every_steps`` env steps (and at the end), ``episodes`` deterministic episodes on the evaluation
    environment, re-seeded with ``seed`` each time so every evaluation sees the same held-out episodes.

    On the first evaluation the ``baseline`` agent file (if any) is run with ``run_scenario`` on exactly those
    episodes (as the recorder kept them), once; its KPIs are logged beside the policy's at every evaluation.
    """

    def __init__(
        self,
        eval_env,
        recorder: EpisodeRecorder,
        *,
        every_steps: int,
        episodes: int,
        seed: int,
        baseline: Path | None = None,
        report: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__()
        self.eval_env, self.recorder = eval_env, recorder
        self.every_steps, self.episodes, self.seed = every_steps, episodes, seed
        self.baseline, self.report = baseline, report
        self.baseline_kpis: dict[str, float] | None = None
        self.history: list[Evaluation] = []
        self._next = every_steps if every_steps > 0 else math.inf

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self.evaluate()
            while self._next <= self.num_timesteps:
                self._next += self.every_steps
        return True

    def _on_training_end(self) -> None:
        if not self.history or self.history[-1].timesteps != self.num_timesteps:
            self.evaluate()

    def evaluate(self) -> Evaluation:
        from stable_baselines3.common.evaluation import evaluate_policy
        from stable_baselines3.common.vec_env import VecNormalize, sync_envs_normalization

        if isinstance(self.eval_env, VecNormalize):
            sync_envs_normalization(self.training_env, self.eval_env)
        self.eval_env.seed(self.seed)
        self.recorder.episodes.clear()
        ended: list[dict[str, Any]] = []

        def collect(local: dict[str, Any], _globals: dict[str, Any]) -> None:
            if local["done"] and "episode_kpis" in local["info"]:
                ended.append(local["info"]["episode_kpis"])

        rewards, lengths = evaluate_policy(
            self.model, self.eval_env, n_eval_episodes=self.episodes, deterministic=True,
            return_episode_rewards=True, callback=collect, warn=False,
        )  # fmt: skip
        kpis = kpi_metrics(ended)
        if self.baseline is not None and self.baseline_kpis is None:
            self.baseline_kpis = self._run_baseline(self.recorder.episodes[: self.episodes])
        evaluation = Evaluation(self.num_timesteps, float(np.mean(rewards)), float(np.std(rewards)), kpis)
        self.history.append(evaluation)

        log = self.logger
        log.record("eval/mean_reward", evaluation.mean_reward)
        log.record("eval/std_reward", evaluation.std_reward)
        log.record("eval/mean_ep_length", float(np.mean(lengths)))
        for key in LOGGED_KPIS:
            if key in kpis:
                log.record(key, kpis[key])
            if self.baseline_kpis and key in self.baseline_kpis:
                log.record(baseline_key(key), self.baseline_kpis[key])
        log.record("time/total_timesteps", self.num_timesteps, exclude="stdout")
        log.dump(self.num_timesteps)
        if self.report is not None:
            self.report(self._line(evaluation))
        return evaluation

    def _run_baseline(self, episodes: Sequence) -> dict[str, float]:
        from rlscale.agents import load_control_loop
        from rlscale.simulation import run_scenario

        runs = [run_scenario(e, autoscaler=load_control_loop(self.baseline, e)).kpis.as_dict() for e in episodes]
        return kpi_metrics(runs)

    def _line(self, e: Evaluation) -> str:
        line = (
            f"eval @ {e.timesteps:,} steps: return {e.mean_reward:,.2f} ± {e.std_reward:,.2f}, "
            f"cost ${e.kpis.get('cost/usd', math.nan):,.2f}, SLO {e.kpis.get('slo/attainment', math.nan):.1%}"
        )
        if self.baseline_kpis:
            b = self.baseline_kpis
            line += (
                f" ({self.baseline.stem}: ${b.get('cost/usd', math.nan):,.2f}, "
                f"SLO {b.get('slo/attainment', math.nan):.1%})"
            )
        return line


class EpisodeKPICallback(BaseCallback):
    """The cost and SLO attainment of training episodes, averaged between logger dumps."""

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", ()):
            kpis = info.get("episode_kpis")
            if kpis:
                self.logger.record_mean("rollout/cost_usd", kpis["cost_usd"])
                self.logger.record_mean("rollout/slo_attainment", kpis["slo_attainment"])
        return True

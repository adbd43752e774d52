"""``rlscale train``: one manager owns a training run, from the agent and scenario files to a registered model.

Order: resolve settings (printed) → seed → environments → algorithm → learn with callbacks (held-out evaluation,
training-episode KPIs, checkpoints) → save the policy folder → learning curve → MLflow (params, curves as they
come, config files, the pyfunc model, registered with an alias). The folder ``out`` describes the run by itself:
``config.json`` holds the resolved settings, the command and the commit; ``model.zip``, ``vecnormalize.pkl``
and ``policy.json`` are what :class:`rlscale.policies.learned.LearnedPolicy` loads.
"""

from __future__ import annotations

import contextlib
import json
import random
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from rlscale.data import scenario_file
from rlscale.envs.jetstream import resolve_scenario
from rlscale.policies.learned import MODEL_FILE, VECNORMALIZE_FILE, algo_class, write_policy_meta
from rlscale.scenario import ScenarioConfig
from rlscale.training.config import AgentConfig, SB3Spec, load_agent_config, resolve_file
from rlscale.training.run_files import (
    AGENT_YAML,
    CONFIG_JSON,
    CURVE_PNG,
    PROGRESS_CSV,
    SCENARIO_YAML,
    SCENARIOS_DIR,
)

if TYPE_CHECKING:
    from rlscale.training.callbacks import Evaluation
    from rlscale.training.tracking import TrainingRun

EVAL_SEED_OFFSET = 1_000_003  # held-out episodes come from a seed no training environment starts from


@dataclass(frozen=True)
class Seeds:
    """Every seed of a run, derived from one: training environment ``i`` starts from ``train_env + i``."""

    root: int

    @property
    def train_env(self) -> int:
        return self.root

    @property
    def eval_env(self) -> int:
        return self.root + EVAL_SEED_OFFSET

    @property
    def model(self) -> int:
        return self.root


def seed_everything(seed: int) -> Seeds:
    """Python's, NumPy's and torch's global generators; the environments and the model take theirs from the
    returned :class:`Seeds` (the simulator draws from its own streams, seeded at each reset)."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return Seeds(seed)


@dataclass
class TrainResult:
    """A finished training run: where its files are, how fast it ran, its evaluations and, when tracked, its
    MLflow run and registered model."""

    run_name: str
    out: Path
    model_path: Path
    vecnormalize_path: Path | None
    agent: AgentConfig
    scenario: ScenarioConfig
    seed: int
    timesteps: int
    wall_s: float
    evaluations: list[Evaluation] = field(default_factory=list)
    baseline_kpis: dict[str, float] | None = None
    tracking_uri: str | None = None
    run_id: str | None = None
    model_uri: str | None = None  # runs:/<run_id>/model
    registered_model: str | None = None
    model_version: str | None = None
    alias: str | None = None
    params: dict[str, Any] = field(default_factory=dict)  # what MLflow gets as the run's params

    @property
    def steps_per_s(self) -> float:
        """Env steps per wall second over the whole ``learn`` call (updates and evaluations included)."""
        return self.timesteps / self.wall_s if self.wall_s > 0 else float("nan")

    @property
    def obs_dim(self) -> int:
        """The policy's observation width (what its MLflow signature declares)."""
        return len(self.agent.spec.env_kwargs.observation().names)

    @property
    def registered_uri(self) -> str | None:
        return f"models:/{self.registered_model}@{self.alias}" if self.registered_model else None


def lean_to_prior(model: Any, spec: SB3Spec) -> None:
    """``spec.prior_action``: the untrained categorical policy favours that action, its logit raised by
    ``prior_logit`` (SB3 starts the action head's bias at 0, every action equally likely)."""
    if spec.prior_action is None:
        return
    import torch

    with torch.no_grad():
        model.policy.action_net.bias[spec.prior_action] += spec.prior_logit


def default_run_name(scenario: str, agent: str, seed: int) -> str:
    return f"{scenario}__{agent}__{seed}__{time.strftime('%Y%m%d-%H%M%S')}"


@dataclass(frozen=True)
class RunPlan:
    """Everything decided before a run starts: settings resolved, files found, names chosen."""

    agent: AgentConfig
    scenarios: tuple[ScenarioConfig, ...]  # one, or a mix: each training episode draws one
    scenario_files: tuple[Path | None, ...]  # None: built in code (a sweep's)
    baseline: Path | None
    seed: int
    eval_every: int
    run_name: str
    out: Path
    command: str
    git_commit: str

    @property
    def spec(self) -> SB3Spec:
        return self.agent.spec

    @property
    def scenario(self) -> ScenarioConfig:
        """The scenario, or a mix's first."""
        return self.scenarios[0]

    @property
    def scenario_name(self) -> str:
        """``train-mix``, or a mix's names joined: ``train-mix+diurnal`` (names runs, models, MLflow experiments)."""
        return "+".join(s.name for s in self.scenarios)

    @property
    def env_scenario(self) -> ScenarioConfig | list[ScenarioConfig]:
        """What the environments take: the scenario, or the list they draw each episode from."""
        return self.scenarios[0] if len(self.scenarios) == 1 else list(self.scenarios)

    def config(self) -> dict[str, Any]:
        """``config.json``: the run as it was asked for and resolved."""
        return {
            "run_name": self.run_name,
            "agent_file": str(self.agent.path.resolve()),
            "scenario_file": _file(self.scenario_files[0]),
            "scenario_files": [_file(f) for f in self.scenario_files],
            "seed": self.seed,
            "settings": self.agent.applied,
            "spec": self.spec.model_dump(mode="json"),
            "scenario": self.scenario.model_dump(mode="json"),
            "scenarios": [s.model_dump(mode="json") for s in self.scenarios],
            "command": self.command,
            "git_commit": self.git_commit,
        }

    def policy_meta(self) -> dict[str, Any]:
        """``policy.json``: what turns observations into actions besides the weights (LearnedPolicy reads it)."""
        spec = self.spec
        return {
            "format": 1,
            "algo": spec.algo,
            "policy": spec.policy,
            "continuous": spec.continuous,
            "n_actions": spec.env_kwargs.action_map().n,
            "normalize_obs": spec.normalize.obs,
            "env_kwargs": spec.env_kwargs.model_dump(mode="json"),
            "observation": spec.env_kwargs.observation().names,
            "agent": self.agent.name,
            "scenario": self.scenario_name,
            "seed": self.seed,
        }

    def params(self) -> dict[str, Any]:
        """MLflow params: names, files, seed, commit, command, the scenario's headline fields, the whole spec."""
        from rlscale.scenario import scenario_params

        config = self.config()
        return {
            "agent": self.agent.name,
            "agent_file": config["agent_file"],
            "scenario": self.scenario_name,
            "scenario_file": ",".join(f or "(object)" for f in config["scenario_files"]),
            "seed": self.seed,
            "git_commit": self.git_commit or "unknown",
            "command": self.command,
            "settings": " < ".join(self.agent.applied),
            **(
                scenario_params(self.scenario)
                if len(self.scenarios) == 1
                else {f"{s.name}.{k}": v for s in self.scenarios for k, v in scenario_params(s).items()}
            ),
            **_flat("spec", config["spec"]),
        }


def _file(path: Path | None) -> str | None:
    return None if path is None else str(path.resolve())


def _flat(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out |= _flat(f"{prefix}.{key}", item)
        return out
    return {prefix: value}


ScenarioRef = str | Path | ScenarioConfig


def plan_run(
    agent_path: str | Path,
    scenario_path: ScenarioRef | Sequence[ScenarioRef],
    timesteps: int | None,
    seed: int,
    out: Path | None,
    eval_every: int | None,
    *,
    overrides: Mapping[str, Any] | None = None,
    command: str | None = None,
    run_name: str | None = None,
) -> RunPlan:
    """Resolve and check everything a run needs before anything is written or started. ``scenario_path`` is one
    scenario or several (a mix: each training episode draws one); ``overrides`` are a sweep's settings (dotted spec
    paths); ``command`` and ``run_name`` default to this process's and a timed name."""
    from rlscale.experiments.compare import source_commit

    refs = list(scenario_path) if isinstance(scenario_path, list | tuple) else [scenario_path]
    if not refs:
        raise ValueError("--scenario: give at least one")
    scenarios = tuple(resolve_scenario(ref) for ref in refs)
    names = [s.name for s in scenarios]
    if len(set(names)) < len(names):
        raise ValueError(f"--scenario: a mix needs distinct scenario names, got {', '.join(names)}")
    files = tuple(None if isinstance(ref, ScenarioConfig) else _found(ref) for ref in refs)
    mix_name = "+".join(names)
    agent = load_agent_config(agent_path, mix_name, total_timesteps=timesteps, overrides=overrides)
    spec = agent.spec
    baseline = None
    if spec.eval.baseline is not None:
        baseline = resolve_file(spec.eval.baseline, agent.path.resolve().parent, f"{agent.path}: spec.eval.baseline")
    run_name = run_name or default_run_name(mix_name, agent.name, seed)
    return RunPlan(
        agent, scenarios, files, baseline, seed,
        eval_every=spec.eval.every_steps if eval_every is None else eval_every,
        run_name=run_name,
        out=Path(out) if out is not None else Path("runs") / "train" / run_name,
        command=command or shlex.join(sys.argv),
        git_commit=source_commit(),
    )  # fmt: skip


def _write_scenario(target: Path, scenario: ScenarioConfig, source: Path | None) -> None:
    """The scenario's file, copied; or, built in code (a sweep's, with its fields set), the resolved scenario."""
    if source is not None:
        shutil.copyfile(source, target)
    else:
        target.write_text(yaml.safe_dump(scenario.model_dump(mode="json"), sort_keys=False))


def _found(ref: str | Path) -> Path:
    """A scenario file as ``resolve_scenario`` found it (a path, else a shipped scenario)."""
    return scenario_file(ref)


def write_run_folder(plan: RunPlan) -> None:
    """``config.json``, ``policy.json`` and copies of the agent and scenario files, before training starts
    (checkpoints are loadable as soon as they appear)."""
    out = plan.out
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_JSON).write_text(json.dumps(plan.config(), indent=2) + "\n")
    shutil.copyfile(plan.agent.path, out / AGENT_YAML)
    _write_scenario(out / SCENARIO_YAML, plan.scenarios[0], plan.scenario_files[0])
    if len(plan.scenarios) > 1:  # a mix: every member in scenarios/ (the first is also scenario.yaml)
        (out / SCENARIOS_DIR).mkdir(exist_ok=True)
        for scenario, source in zip(plan.scenarios, plan.scenario_files, strict=True):
            _write_scenario(out / SCENARIOS_DIR / f"{scenario.name}.yaml", scenario, source)
    write_policy_meta(out, plan.policy_meta())


def train(
    agent_path: str | Path,
    scenario_path: ScenarioRef | Sequence[ScenarioRef],
    timesteps: int | None = None,
    seed: int = 0,
    tracking_uri: str | None = None,
    out: Path | None = None,
    eval_every: int | None = None,
    progress: bool = True,
    *,
    model_name: str | None = None,
    alias: str = "champion",
    experiment: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    command: str | None = None,
    run_name: str | None = None,
) -> TrainResult:
    """Train the ``SB3Agent`` file ``agent_path`` on a scenario (or a mix of them: each episode, training and
    held-out, draws one); returns where the policy is and how it did.

    ``timesteps`` overrides the file's ``total_timesteps``, ``eval_every`` its ``eval.every_steps`` (env steps;
    0: evaluate only at the end). ``tracking_uri`` None: not tracked; else the run goes to MLflow experiment
    ``experiment`` (default ``train-<scenario>``) and the policy is registered as ``model_name`` (default
    ``rlscale-<agent>-<scenario>``) with ``alias`` pointing at the new version. ``out`` defaults to
    ``runs/train/<scenario>__<agent>__<seed>__<time>``.
    """
    if alias.lower() == "latest":
        raise ValueError("alias: 'latest' is reserved by MLflow (models:/<name>/latest is the newest version)")
    plan = plan_run(
        agent_path, scenario_path, timesteps, seed, out, eval_every, overrides=overrides, command=command,
        run_name=run_name,
    )  # fmt: skip
    report: Callable[[str], None] = print if progress else (lambda _line: None)
    report(f"{plan.run_name}: settings " + " < ".join(plan.agent.applied))
    write_run_folder(plan)

    run = None
    if tracking_uri is not None:
        from rlscale.tracking.store import check_tracking, run_tags
        from rlscale.training.tracking import TrainingRun

        check_tracking(tracking_uri)
        run = TrainingRun.start(
            tracking_uri,
            experiment or f"train-{plan.scenario_name}",
            plan.run_name,
            run_tags(plan.git_commit, plan.out),
        )
    try:
        if run is not None:
            run.log_params(plan.params())
        result = _learn(plan, run, report, progress)
        if run is not None:
            _log_outcome(run, result, model_name or f"rlscale-{plan.agent.name}-{plan.scenario_name}", alias)
    except BaseException as exc:
        if run is not None:
            run.finish("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    return result


def _learn(plan: RunPlan, run: TrainingRun | None, report: Callable[[str], None], progress: bool) -> TrainResult:
    """Seed, build the environments and the algorithm, learn with the callbacks, save the policy folder."""
    import torch
    from stable_baselines3.common.callbacks import CallbackList, CheckpointCallback
    from stable_baselines3.common.logger import Logger, make_output_format
    from stable_baselines3.common.vec_env import VecNormalize

    from rlscale.training.callbacks import EpisodeKPICallback, KPIEvalCallback
    from rlscale.training.envs import evaluation_env, training_envs
    from rlscale.training.figures import learning_curve_plot

    spec, out = plan.spec, plan.out
    torch.set_num_threads(spec.torch_threads)
    seeds = seed_everything(plan.seed)
    with contextlib.ExitStack() as closing:
        train_env = training_envs(plan.env_scenario, spec, seeds.train_env)
        closing.callback(train_env.close)
        eval_env, recorder = evaluation_env(plan.env_scenario, spec)
        closing.callback(eval_env.close)
        model = algo_class(spec.algo)(
            spec.policy, train_env, seed=seeds.model, verbose=0, device="cpu", **spec.algo_kwargs()
        )
        lean_to_prior(model, spec)
        formats = [make_output_format("csv", str(out))]
        if run is not None:
            formats.append(run.writer())
        model.set_logger(Logger(str(out), formats))
        evaluator = KPIEvalCallback(
            eval_env, recorder, every_steps=plan.eval_every, episodes=spec.eval.episodes, seed=seeds.eval_env,
            baseline=plan.baseline, report=report,
        )  # fmt: skip
        callbacks = [EpisodeKPICallback(), evaluator]
        if spec.checkpoint_every_steps:
            every_call = max(spec.checkpoint_every_steps // spec.n_envs, 1)
            callbacks.append(CheckpointCallback(every_call, str(out / "checkpoints"), "model", save_vecnormalize=True))

        start = time.perf_counter()
        model.learn(spec.total_timesteps, callback=CallbackList(callbacks), progress_bar=progress)
        wall_s = time.perf_counter() - start

        model.save(out / MODEL_FILE)
        vecnormalize_path = None
        if isinstance(train_env, VecNormalize):
            vecnormalize_path = out / VECNORMALIZE_FILE
            train_env.save(str(vecnormalize_path))
        model.logger.record("time/steps_per_s", model.num_timesteps / wall_s)
        model.logger.record("time/wall_s", wall_s)
        model.logger.dump(model.num_timesteps)
        model.logger.close()
    learning_curve_plot(out / PROGRESS_CSV, out / CURVE_PNG, plan.run_name, plan.baseline and plan.baseline.stem)
    return TrainResult(
        plan.run_name, out, out / MODEL_FILE, vecnormalize_path, plan.agent, plan.scenario, plan.seed,
        model.num_timesteps, wall_s, evaluator.history, evaluator.baseline_kpis, params=plan.params(),
    )  # fmt: skip


def _log_outcome(run: TrainingRun, result: TrainResult, registered: str, alias: str) -> None:
    """The run's files as artifacts, the policy as a registered pyfunc model; the run marked finished."""
    out = result.out
    run.log_files(out)
    result.model_uri, result.model_version = run.log_policy(out, result.obs_dim, registered, alias)
    result.tracking_uri, result.run_id = run.tracking_uri, run.run_id
    result.registered_model, result.alias = registered, alias
    run.finish("FINISHED")

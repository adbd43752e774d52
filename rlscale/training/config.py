"""Agent files for training (``agents/<algo>.yaml``, ``kind: SB3Agent``): algorithm, policy, environments,
normalization and hyperparameters, as data (rl-baselines3-zoo's habit).

Parsing is strict: an unknown key, a hyperparameter the algorithm does not take, or a bad value is an error
naming the file and the field. Settings apply in a fixed order, printed before a run: the defaults here, the
file's ``spec``, the file's ``per_scenario.<scenario name>`` block (merged key by key), then the command line.
"""

from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from rlscale.config import StrictModel, merge, nested
from rlscale.data import agent_file, resolve
from rlscale.policies.learned import PolicyEnvKwargs, algo_class
from rlscale.specs.catalog import read_document, validate

CONTINUOUS_ALGOS = frozenset({"sac"})  # act in Box(-1, 1); see rlscale.training.envs.ContinuousActions
SET_BY_TRAIN = frozenset({"policy", "env", "seed", "verbose", "tensorboard_log", "device", "_init_setup_model"})
ACTIVATIONS = {"tanh": "Tanh", "relu": "ReLU", "elu": "ELU", "leaky_relu": "LeakyReLU", "gelu": "GELU"}
LINEAR_SCHEDULE = re.compile(r"^lin_(?P<value>[0-9.eE+-]+)$")  # zoo spelling: lin_3e-4 decays 3e-4 linearly to 0


class EnvKwargs(PolicyEnvKwargs):
    """Arguments of ``rlscale/JetStream-v0`` (see ``JetStreamEnv``): those that shape observations and actions
    (:class:`~rlscale.policies.learned.PolicyEnvKwargs`, which travel with the model), and training's own."""

    episode_s: float | None = Field(None, gt=0, description="Simulated time per episode, s (default: the scenario's).")
    sync_period_s: float = Field(15.0, gt=0, description="s between decisions: the controller's sync period.")

    def env_arguments(self) -> dict[str, Any]:
        """As ``gymnasium.make`` takes them (unset optional ones left to the environment's defaults)."""
        return self.model_dump(exclude_none=True, exclude_defaults=False)


class NormalizeSpec(StrictModel):
    """SB3 ``VecNormalize``: running mean/std of observations and of discounted returns (for the reward scale)."""

    obs: bool = Field(True, description="Normalize observations (they span 0–1 fractions to 1000-request backlogs).")
    reward: bool = Field(True, description="Scale rewards by the std of the discounted return.")
    clip_obs: float = Field(10.0, gt=0, description="Normalized observations clipped to ±this (SB3 default).")
    clip_reward: float = Field(10.0, gt=0, description="Normalized rewards clipped to ±this (SB3 default).")


class EvalSpec(StrictModel):
    """Periodic evaluation on held-out episodes (other seeds than training's), deterministic actions."""

    every_steps: int = Field(10_000, ge=0, description="Env steps between evaluations (0: only at the end).")
    episodes: int = Field(3, ge=1, description="Held-out episodes per evaluation (the same ones every time).")
    baseline: str | None = Field(
        "agents/hpa-slots-used.yaml", description="Agent run on the same episodes once, for reference; null: none."
    )


class SB3Spec(StrictModel):
    """What to train and how: an SB3 algorithm on vectorized ``rlscale/JetStream-v0`` environments."""

    algo: Literal["ppo", "recurrent-ppo", "a2c", "dqn", "sac"]
    policy: str = Field("MlpPolicy", description="SB3 policy name (MlpLstmPolicy for recurrent-ppo).")
    n_envs: int = Field(1, ge=1, description="Parallel environments (subprocesses when more than one).")
    total_timesteps: int = Field(gt=0, description="Env steps (15 s control steps) summed over environments.")
    normalize: NormalizeSpec = NormalizeSpec()
    env_kwargs: EnvKwargs = EnvKwargs()
    hyperparams: dict[str, Any] = Field(default_factory=dict, description="The algorithm's constructor arguments.")
    eval: EvalSpec = EvalSpec()
    checkpoint_every_steps: int = Field(0, ge=0, description="Env steps between checkpoints (0: none).")
    prior_action: int | None = Field(
        None,
        ge=0,
        description="Discrete-action PPO/A2C: the untrained policy favours this action (its logit raised "
        "by prior_logit), e.g. a residual policy's 'follow the baseline', so that training starts from the heuristic "
        "it corrects rather than from uniform noise around it; null: uniform, SB3's start.",
    )
    prior_logit: float = Field(3.0, gt=0, description="How much prior_action is favoured at the start (3: ~3/4).")
    torch_threads: int = Field(
        1, ge=1, description="torch threads in the training process: small MLPs gain nothing from more, and the "
        "environment subprocesses need the cores (measured: 126 vs 112 steps/s, PPO, 2 envs on 2 cores)."
    )  # fmt: skip

    @field_validator("normalize", mode="before")
    @classmethod
    def _normalize_shorthand(cls, value: Any) -> Any:
        return {"obs": value, "reward": value} if isinstance(value, bool) else value

    @field_validator("hyperparams")
    @classmethod
    def _hyperparams(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        algo = info.data.get("algo")
        if algo is None:  # already refused
            return value
        cls_ = algo_class(algo)
        accepted = set(inspect.signature(cls_.__init__).parameters) - {"self"} - SET_BY_TRAIN
        for key, item in value.items():
            if key in SET_BY_TRAIN:
                raise ValueError(f"{key}: set by rlscale train (from the spec, the seed and the command), not here")
            if key not in accepted:
                near = difflib.get_close_matches(key, accepted, n=1)
                hint = f" (did you mean {near[0]}?)" if near else ""
                raise ValueError(f"{key}: not a parameter of {cls_.__name__}{hint}")
            if key == "learning_rate" and isinstance(item, str) and not LINEAR_SCHEDULE.match(item):
                raise ValueError(f"learning_rate: a number or lin_<number> (linear decay to 0), got {item!r}")
        activation = value.get("policy_kwargs", {}).get("activation_fn")
        if activation is not None and activation not in ACTIVATIONS:
            raise ValueError(f"policy_kwargs.activation_fn: one of {sorted(ACTIVATIONS)}, got {activation!r}")
        return value

    @model_validator(mode="after")
    def _check(self) -> SB3Spec:
        if self.algo == "recurrent-ppo" and "Lstm" not in self.policy:
            raise ValueError(f"policy: recurrent-ppo needs an LSTM policy (MlpLstmPolicy), got {self.policy!r}")
        return self

    @model_validator(mode="after")
    def _check_prior(self) -> SB3Spec:
        if self.prior_action is None:
            return self
        if self.algo not in ("ppo", "a2c"):
            raise ValueError(f"prior_action: only ppo and a2c (a categorical policy), not {self.algo}")
        n = self.env_kwargs.action_map().n
        if self.prior_action >= n:
            raise ValueError(f"prior_action: {self.prior_action} is not an action of Discrete({n})")
        return self

    @property
    def continuous(self) -> bool:
        """Whether the algorithm acts in Box(−1, 1), mapped onto the discrete actions."""
        return self.algo in CONTINUOUS_ALGOS

    def algo_kwargs(self) -> dict[str, Any]:
        """The hyperparameters as the algorithm's constructor takes them: schedules and activation classes built."""
        import torch

        kwargs = dict(self.hyperparams)
        lr = kwargs.get("learning_rate")
        if isinstance(lr, str):
            initial = float(LINEAR_SCHEDULE.match(lr)["value"])
            kwargs["learning_rate"] = _LinearSchedule(initial)
        policy_kwargs = dict(kwargs.get("policy_kwargs", {}))
        if "activation_fn" in policy_kwargs:
            policy_kwargs["activation_fn"] = getattr(torch.nn, ACTIVATIONS[policy_kwargs["activation_fn"]])
        if policy_kwargs:
            kwargs["policy_kwargs"] = policy_kwargs
        return kwargs


@dataclass(frozen=True)
class _LinearSchedule:
    """``initial`` at the start of training, 0 at the end (SB3 passes the remaining progress, 1 → 0); picklable."""

    initial: float

    def __call__(self, progress_remaining: float) -> float:
        return progress_remaining * self.initial


class SB3AgentFile(StrictModel):
    """An agent file: ``kind: SB3Agent``, a ``spec`` and optional ``per_scenario`` blocks (partial specs)."""

    apiVersion: str | None = None
    kind: Literal["SB3Agent"]
    metadata: dict[str, Any] | None = None
    spec: SB3Spec
    per_scenario: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Scenario name -> spec fields merged over spec for that scenario."
    )


@dataclass(frozen=True)
class AgentConfig:
    """An agent file resolved for one scenario: the spec to train with and the overrides applied, in order."""

    path: Path
    name: str  # the file's stem: names runs and registered models
    spec: SB3Spec
    applied: list[str] = field(default_factory=list)
    document: dict[str, Any] = field(default_factory=dict)  # the file as read, logged with the run


def resolve_file(ref: str, base: Path, where: str) -> Path:
    """A file an agent file names (its evaluation baseline): the YAML's folder, its project root, the working
    directory, else a shipped file (:func:`rlscale.data.resolve`)."""
    return resolve(ref, base, where)


def load_agent_config(
    path: str | Path,
    scenario: str | None = None,
    *,
    total_timesteps: int | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> AgentConfig:
    """Read and validate an ``SB3Agent`` file, with its ``per_scenario.<scenario>`` block, then ``overrides``
    (dotted spec paths, a sweep's settings: ``hyperparams.learning_rate``), then the command line's
    ``total_timesteps`` applied (in that order); errors name the file and the field."""
    path = agent_file(path)  # a path, or a shipped agent by name (ppo)
    document = read_document(path)
    agent = validate(SB3AgentFile, document, str(path))
    spec, applied = agent.spec, [f"defaults < {path}: spec"]
    if scenario is not None and scenario in agent.per_scenario:
        merged = merge(spec.model_dump(exclude_unset=True), agent.per_scenario[scenario])
        spec = validate(SB3Spec, merged, f"{path}: per_scenario.{scenario}")
        applied.append(f"{path}: per_scenario.{scenario} {agent.per_scenario[scenario]}")
    for key, value in (overrides or {}).items():
        spec = validate(SB3Spec, merge(spec.model_dump(exclude_unset=True), nested(key, value)), f"--set {key}")
        applied.append(f"sweep: {key}={value!r}")
    if total_timesteps is not None:
        spec = validate(SB3Spec, spec.model_dump() | {"total_timesteps": total_timesteps}, "--timesteps")
        applied.append(f"command line: total_timesteps={total_timesteps}")
    return AgentConfig(path, path.stem, spec, applied, document)

"""A trained SB3 policy as an autoscaler: the same observation, normalization and action mapping as in training.

A trained policy is a folder (``rlscale train`` writes it; an MLflow model holds the same files under
``artifacts/``): ``model.zip`` (SB3), ``vecnormalize.pkl`` (observation statistics, when training normalized
them) and ``policy.json`` (the algorithm and the environment arguments that shape observations and actions).
:class:`LearnedPolicy` loads one from a path or an MLflow URI and answers ``recommend(state)`` like every
baseline, so ``rlscale compare`` and ``rlscale evaluate`` mix learned and hand-written policies, and the live
controller runs it without the simulator.

Stable-Baselines3, sb3-contrib and torch are imported only when a model is loaded (:func:`algo_class`); MLflow
only when a ``models:/`` or ``runs:/`` reference is downloaded. An agent file's ``kind: LearnedPolicy`` and a
residual policy's baseline are loaded by ``rlscale.agents``.
"""

from __future__ import annotations

import importlib
import json
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from rlscale.config import StrictModel
from rlscale.policies.actions import ActionMap, discrete_from_unit
from rlscale.policies.base import Autoscaler, ClusterState
from rlscale.policies.observation import FeatureSet, observation_builder, observation_metric_refs
from rlscale.policies.safety import SafetySpec, env_safety
from rlscale.specs.catalog import SpecError, validate
from rlscale.tracking.store import MLFLOW_SCHEMES

MODEL_FILE = "model.zip"
VECNORMALIZE_FILE = "vecnormalize.pkl"
POLICY_FILE = "policy.json"
# What predicting needs of a saved model: schedules are training-only state (the zoo's enjoy.py does the same).
PREDICT_ONLY = {"learning_rate": 0.0, "lr_schedule": lambda _: 0.0, "clip_range": lambda _: 0.0}
# algo name in agent files and policy.json -> the class, imported only when needed (SB3 pulls in torch)
ALGOS = {
    "ppo": "stable_baselines3:PPO",
    "a2c": "stable_baselines3:A2C",
    "dqn": "stable_baselines3:DQN",
    "sac": "stable_baselines3:SAC",
    "recurrent-ppo": "sb3_contrib:RecurrentPPO",
}


@cache
def algo_class(algo: str) -> type:
    """The SB3 class of an algorithm name (``ppo``, ``recurrent-ppo`` …)."""
    module, name = ALGOS[algo].split(":")
    return getattr(importlib.import_module(module), name)


class PolicyEnvKwargs(StrictModel):
    """The arguments of ``rlscale/JetStream-v0`` that shape what a trained policy sees and does: they travel with
    the model (``policy.json``) and every run of it rebuilds them. Training's ``EnvKwargs`` adds the rest."""

    action_mode: Literal["delta", "target", "residual", "residual-hold"] = "delta"
    max_delta: int = Field(2, ge=1, description="Pods per step, delta and residual modes.")
    min_replicas: int = Field(1, ge=0, description="Pods; the floor of every action.")
    max_replicas: int = Field(16, ge=1, le=64, description="Pods; the ceiling (the observation's replica bound is 64).")
    residual_agent: str = Field("agents/hpa-slots-used.yaml", description="Residual mode: the baseline agent file.")
    time_period_s: float | None = Field(None, gt=0, description="Adds sin/cos of the time of day with this period, s.")
    features: FeatureSet = Field(
        "fleet",
        description="fleet: the fleet's metrics now; demand: also the rate's last 30 min, its silence and the "
        "baseline's recommendation (rlscale.policies.observation.DEMAND_FEATURES).",
    )
    safety: SafetySpec | None = Field(
        None,
        description="The safety layer training meets, as the live controller applies it (default: holds on missing "
        "metrics, no scale-down on partial ones, within [min_replicas, max_replicas]); travels with the model.",
    )

    @model_validator(mode="after")
    def _check(self) -> PolicyEnvKwargs:
        self.action_map()  # the same check the environment makes, with its numbers in the message
        return self

    def action_map(self) -> ActionMap:
        return ActionMap(self.action_mode, self.max_delta, self.min_replicas, self.max_replicas)

    def observation(self):
        """A fresh observation builder for these arguments (stateful with ``features: demand``)."""
        return observation_builder(self.time_period_s, self.features)

    def safety_spec(self) -> SafetySpec:
        """The safety layer the policy was trained behind."""
        return env_safety(self.safety, self.min_replicas, self.max_replicas)


def write_policy_meta(folder: Path, meta: dict[str, Any]) -> Path:
    """``policy.json`` beside a trained model (``rlscale train`` writes it; :class:`SB3Policy` reads it)."""
    path = folder / POLICY_FILE
    path.write_text(json.dumps(meta, indent=2) + "\n")
    return path


@dataclass
class PolicyFiles:
    """Where a trained policy's files are on this machine."""

    model: Path
    meta: Path
    vecnormalize: Path | None

    @classmethod
    def find(cls, ref: str | Path, tracking_uri: str | None = None) -> PolicyFiles:
        """From ``models:/<name>@<alias>`` / ``models:/<name>/<version>`` / ``runs:/<run_id>/model`` (downloaded
        from the tracking store, cached locally by MLflow), a folder, or a ``.zip`` with ``policy.json`` beside
        it (or one level up, for checkpoints)."""
        ref = str(ref)
        if ref.startswith(MLFLOW_SCHEMES):
            from rlscale.tracking.store import TrackingError, download

            try:
                folder = download(ref, tracking_uri)
            except TrackingError as exc:
                raise SpecError(f"model: {exc}") from exc
            return cls._in_folder(folder / "artifacts" if (folder / "artifacts").is_dir() else folder, ref)
        path = Path(ref)
        if path.is_dir():
            return cls._in_folder(path / "artifacts" if (path / "artifacts" / MODEL_FILE).exists() else path, ref)
        if not path.is_file():
            raise SpecError(f"model: no such file or MLflow model {ref!r}")
        meta = next((p / POLICY_FILE for p in (path.parent, path.parent.parent) if (p / POLICY_FILE).exists()), None)
        if meta is None:
            raise SpecError(f"model: {POLICY_FILE} (algorithm and environment arguments) not found beside {ref!r}")
        vecnormalize = next(
            (p for p in (path.with_name(path.stem.replace("model", "model_vecnormalize", 1) + ".pkl"),
                         path.parent / VECNORMALIZE_FILE, meta.parent / VECNORMALIZE_FILE) if p.exists()),
            None,
        )  # fmt: skip
        return cls(path, meta, vecnormalize)

    @classmethod
    def _in_folder(cls, folder: Path, ref: str) -> PolicyFiles:
        model, meta = folder / MODEL_FILE, folder / POLICY_FILE
        for needed in (model, meta):
            if not needed.exists():
                raise SpecError(f"model: {ref!r} has no {needed.name} (looked in {folder})")
        vecnormalize = folder / VECNORMALIZE_FILE
        return cls(model, meta, vecnormalize if vecnormalize.exists() else None)


class SB3Policy:
    """A loaded SB3 model with its observation normalization and action space: environment observations in,
    environment actions (``Discrete`` indices) out."""

    def __init__(self, files: PolicyFiles) -> None:
        self.files = files
        self.meta: dict[str, Any] = json.loads(files.meta.read_text())
        self.model = algo_class(self.meta["algo"]).load(files.model, device="cpu", custom_objects=PREDICT_ONLY)
        self.normalizer = None
        if files.vecnormalize is not None and self.meta.get("normalize_obs", True):
            with files.vecnormalize.open("rb") as f:
                self.normalizer = pickle.load(f)  # a VecNormalize without its venv: normalize_obs needs only stats
        self.continuous = bool(self.meta.get("continuous", False))
        self.n_actions = int(self.meta["n_actions"])

    def predict(
        self, obs: np.ndarray, state: Any = None, episode_start: np.ndarray | None = None, deterministic: bool = True
    ) -> tuple[np.ndarray, Any]:
        """Environment actions for a batch of raw observations, and the next recurrent state (None otherwise)."""
        obs = np.asarray(obs, dtype=np.float32)
        if self.normalizer is not None:
            obs = self.normalizer.normalize_obs(obs).astype(np.float32)
        actions, state = self.model.predict(obs, state=state, episode_start=episode_start, deterministic=deterministic)
        if self.continuous:
            actions = np.array([discrete_from_unit(a, self.n_actions) for a in np.asarray(actions).reshape(len(obs))])
        return np.asarray(actions, dtype=np.int64).reshape(len(obs)), state


class LearnedPolicy:
    """An autoscaler driven by a trained SB3 policy, behind the same interface as the baselines.

    Every ``sync_period_s`` (15 s, the environment's step) it builds the observation with
    :class:`ObservationBuilder`, normalizes it with the training statistics, asks the model for a deterministic
    action and turns it into replicas with the environment's :class:`ActionMap`. Recurrent policies carry their
    LSTM state from one sync to the next. Under ``run_scenario`` the first decision comes at the first sync
    (t = 15 s), where the environment also acts at t = 0; after that both act on the same state at the same
    times. ``env_kwargs`` override the trained environment arguments (:class:`PolicyEnvKwargs`, e.g.
    ``max_replicas``); an override that changes the number of actions or observations is refused.

    A residual policy acts on a baseline agent's recommendation: ``load_baseline`` is called with the trained
    ``residual_agent`` (an agent file reference) and returns that agent; ``rlscale.agents.load_learned`` passes its
    own loader, which this layer cannot import (agents may plan by simulating).
    """

    def __init__(
        self,
        model: str | Path,
        *,
        tracking_uri: str | None = None,
        deterministic: bool = True,
        sync_period_s: float = 15.0,
        load_baseline: Callable[[str], Autoscaler] | None = None,
        **env_kwargs: Any,
    ) -> None:
        self.policy = SB3Policy(PolicyFiles.find(model, tracking_uri))
        self.source = str(model)
        fields = PolicyEnvKwargs.model_fields
        unknown = sorted(set(env_kwargs) - set(fields))
        if unknown:
            raise SpecError(f"env_kwargs: unknown {', '.join(unknown)} (have {', '.join(fields)})")
        trained = {k: v for k, v in self.policy.meta["env_kwargs"].items() if k in fields}  # not training's own
        self.env_kwargs = validate(PolicyEnvKwargs, trained | env_kwargs, "env_kwargs")
        self.actions: ActionMap = self.env_kwargs.action_map()
        if self.actions.n != self.policy.n_actions:
            raise SpecError(
                f"env_kwargs: {self.actions.mode} mode with these bounds has {self.actions.n} actions; "
                f"the model {model!r} was trained with {self.policy.n_actions}"
            )
        self.observe = self.env_kwargs.observation()
        expected = self.policy.model.observation_space.shape
        if (len(self.observe.names),) != tuple(expected):
            raise SpecError(
                f"env_kwargs.time_period_s / features: give {len(self.observe.names)} observations; the model "
                f"{model!r} takes {expected[0]}"
            )
        self.deterministic = deterministic
        self.sync_period_s = sync_period_s
        self.baseline: Autoscaler | None = None
        if self.actions.residual:
            if load_baseline is None:
                raise SpecError(
                    f"env_kwargs.action_mode: {model!r} is a residual policy, which acts on its baseline agent "
                    f"({self.env_kwargs.residual_agent}); load it with rlscale.agents.load_learned"
                )
            self.baseline = load_baseline(self.env_kwargs.residual_agent)
        self.reset()

    def default_safety(self) -> SafetySpec:
        """The safety layer it was trained behind (its environment's), which every run of it applies too."""
        return self.env_kwargs.safety_spec()

    def metric_refs(self) -> list[tuple[str, str, str]]:
        """What its observation reads: the safety layer holds it when they are missing, as the controller does."""
        return observation_metric_refs()

    def reset(self) -> None:
        """Forget the recurrent state and the observation's memory (a new episode)."""
        self.observe.reset()
        self._state: Any = None
        self._episode_start = np.ones(1, dtype=bool)

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Environment actions for a batch of raw observations (stateless: a recurrent policy starts afresh)."""
        obs = np.atleast_2d(np.asarray(obs, dtype=np.float32))
        start = np.ones(len(obs), dtype=bool)
        return self.policy.predict(obs, None, start, deterministic)[0]

    def recommend(self, state: ClusterState) -> int:
        baseline = self.baseline.recommend(state) if self.baseline is not None else None  # as the environment: first
        obs = self.observe(state, baseline)[None]
        actions, self._state = self.policy.predict(obs, self._state, self._episode_start, self.deterministic)
        self._episode_start = np.zeros(1, dtype=bool)
        return self.actions.replicas(int(actions[0]), state.spec_replicas, baseline)

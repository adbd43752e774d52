"""A trained SB3 policy as an autoscaler: the same observation, normalization and action mapping as in training.

A trained policy is a folder (``rlscale train`` writes it; an MLflow model holds the same files under
``artifacts/``): ``model.zip`` (SB3), ``vecnormalize.pkl`` (observation statistics, when training normalized
them) and ``policy.json`` (the algorithm and the environment arguments that shape observations and actions).
:class:`LearnedPolicy` loads one from a path or an MLflow URI and answers ``recommend(state)`` like every
baseline, so ``rlscale compare`` and ``rlscale evaluate`` mix learned and hand-written policies.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from rlscale.config import StrictModel
from rlscale.envs.actions import ActionMap, discrete_from_unit
from rlscale.policies.base import Autoscaler, ClusterState
from rlscale.policies.observation import ObservationBuilder, observation_metric_refs
from rlscale.policies.safety import SafetySpec
from rlscale.scenario import ScenarioConfig
from rlscale.specs.catalog import SpecError, validate
from rlscale.training.config import EnvKwargs, algo_class

MODEL_FILE = "model.zip"
VECNORMALIZE_FILE = "vecnormalize.pkl"
POLICY_FILE = "policy.json"
MLFLOW_SCHEMES = ("models:/", "runs:/")
# What predicting needs of a saved model: schedules are training-only state (the zoo's enjoy.py does the same).
PREDICT_ONLY = {"learning_rate": 0.0, "lr_schedule": lambda _: 0.0, "clip_range": lambda _: 0.0}


def write_policy_meta(folder: Path, meta: dict[str, Any]) -> Path:
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


class LearnedPolicyConfig(StrictModel):
    """``kind: LearnedPolicy`` agent files: a trained policy run as an autoscaler."""

    model: str = Field(
        description="models:/<name>@<alias>, models:/<name>/<version>, runs:/<run_id>/model, or a policy folder or "
        ".zip (relative to this file, the project root or the working directory)."
    )
    tracking_uri: str | None = Field(
        None, description="Where models:/ and runs:/ resolve (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)."
    )
    deterministic: bool = Field(True, description="The most likely action, not a sample.")
    sync_period_s: float = Field(15.0, gt=0, description="s between decisions: the environment's step.")
    env_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Overrides of the trained environment arguments (e.g. max_replicas)."
    )

    def build(self, base: Path, scenario: ScenarioConfig | None = None) -> LearnedPolicy:
        model = self.model
        if not model.startswith(MLFLOW_SCHEMES):
            model = str(_find_local(model, base))
        return LearnedPolicy(
            model, tracking_uri=self.tracking_uri, deterministic=self.deterministic,
            sync_period_s=self.sync_period_s, scenario=scenario, **self.env_kwargs,
        )  # fmt: skip


def _find_local(ref: str, base: Path) -> Path:
    """A policy folder or file: absolute, or relative to ``base``, its project root, the working directory or
    rlscale's root (as :func:`rlscale.experiments.config.resolve` looks, folders included)."""
    from rlscale.envs.jetstream import ROOT
    from rlscale.experiments.config import project_root

    path = Path(ref).expanduser()
    if path.is_absolute():
        return path
    roots = [base, project_root(base), Path.cwd(), ROOT]
    for root in roots:
        if root is not None and (root / path).exists():
            return (root / path).resolve()
    return path  # PolicyFiles.find names it in its error


class LearnedPolicy:
    """An autoscaler driven by a trained SB3 policy, behind the same interface as the baselines.

    Every ``sync_period_s`` (15 s, the environment's step) it builds the observation with
    :class:`ObservationBuilder`, normalizes it with the training statistics, asks the model for a deterministic
    action and turns it into replicas with the environment's :class:`ActionMap`. Recurrent policies carry their
    LSTM state from one sync to the next. Under ``run_scenario`` the first decision comes at the first sync
    (t = 15 s), where the environment also acts at t = 0; after that both act on the same state at the same
    times. ``env_kwargs`` override the trained environment arguments (e.g.
    ``max_replicas``); an override that changes the number of actions or observations is refused.
    ``scenario`` is needed only by a residual policy whose baseline plans (an oracle).
    """

    def __init__(
        self,
        model: str | Path,
        *,
        tracking_uri: str | None = None,
        deterministic: bool = True,
        sync_period_s: float = 15.0,
        scenario: ScenarioConfig | None = None,
        **env_kwargs: Any,
    ) -> None:
        self.policy = SB3Policy(PolicyFiles.find(model, tracking_uri))
        self.source = str(model)
        trained = self.policy.meta["env_kwargs"]
        unknown = sorted(set(env_kwargs) - set(EnvKwargs.model_fields))
        if unknown:
            raise SpecError(f"env_kwargs: unknown {', '.join(unknown)} (have {', '.join(EnvKwargs.model_fields)})")
        self.env_kwargs = validate(EnvKwargs, trained | env_kwargs, "env_kwargs")
        self.actions: ActionMap = self.env_kwargs.action_map()
        if self.actions.n != self.policy.n_actions:
            raise SpecError(
                f"env_kwargs: {self.actions.mode} mode with these bounds has {self.actions.n} actions; "
                f"the model {model!r} was trained with {self.policy.n_actions}"
            )
        self.observe = ObservationBuilder(self.env_kwargs.time_period_s)
        expected = self.policy.model.observation_space.shape
        if (len(self.observe.names),) != tuple(expected):
            raise SpecError(
                f"env_kwargs.time_period_s: gives {len(self.observe.names)} observations; the model {model!r} "
                f"takes {expected[0]}"
            )
        self.deterministic = deterministic
        self.sync_period_s = sync_period_s
        self._baseline: Autoscaler | None = None
        if self.actions.mode == "residual":
            from rlscale.envs.jetstream import ROOT
            from rlscale.policies.loader import load_agent

            self._baseline = load_agent(ROOT / self.env_kwargs.residual_agent, scenario)
        self.reset()

    def default_safety(self) -> SafetySpec:
        """The safety layer it was trained behind (its environment's), which every run of it applies too."""
        from rlscale.envs.jetstream import env_safety

        kw = self.env_kwargs
        return env_safety(kw.safety, kw.min_replicas, kw.max_replicas)

    def metric_refs(self) -> list[tuple[str, str, str]]:
        """What its observation reads: the safety layer holds it when they are missing, as the controller does."""
        return observation_metric_refs()

    def reset(self) -> None:
        """Forget the recurrent state (a new episode)."""
        self._state: Any = None
        self._episode_start = np.ones(1, dtype=bool)

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Environment actions for a batch of raw observations (stateless: a recurrent policy starts afresh)."""
        obs = np.atleast_2d(np.asarray(obs, dtype=np.float32))
        start = np.ones(len(obs), dtype=bool)
        return self.policy.predict(obs, None, start, deterministic)[0]

    def recommend(self, state: ClusterState) -> int:
        obs = self.observe(state)[None]
        actions, self._state = self.policy.predict(obs, self._state, self._episode_start, self.deterministic)
        self._episode_start = np.zeros(1, dtype=bool)
        baseline = self._baseline.recommend(state) if self._baseline is not None else None
        return self.actions.replicas(int(actions[0]), state.spec_replicas, baseline)

"""The vectorized environments a run trains and evaluates on, built in one place from the agent's spec.

Wrapping order, inside out: ``gymnasium.make("rlscale/JetStream-v0", …)`` → ``ContinuousActions`` (SAC only) →
``Monitor`` (episode return and length) → ``DummyVecEnv`` / ``SubprocVecEnv`` → ``VecNormalize``. Evaluation
uses one environment in-process, its normalization frozen and synced from training's, rewards left raw.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlscale.policies.actions import discrete_from_unit
from rlscale.scenario import ScenarioConfig
from rlscale.training.config import SB3Spec

ENV_ID = "rlscale/JetStream-v0"


class ContinuousActions(gym.ActionWrapper):
    """A ``Discrete(n)`` environment seen through ``Box(−1, 1, (1,))``: the nearest discrete action is taken
    (:func:`rlscale.policies.actions.discrete_from_unit`). With ``action_mode: target`` the box spans
    0 … max_replicas pods evenly."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        if not isinstance(env.action_space, spaces.Discrete):
            raise TypeError(f"ContinuousActions wraps a Discrete action space, got {env.action_space}")
        self.n = int(env.action_space.n)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)

    def action(self, action: Any) -> int:
        return discrete_from_unit(float(np.asarray(action).reshape(-1)[0]), self.n)


class EpisodeRecorder(gym.Wrapper):
    """Keeps each episode's scenario as the environment drew it at reset (seed, scaled rates, initial fleet), so a
    baseline can be run on exactly the episodes a policy was evaluated on."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.episodes: list[ScenarioConfig] = []

    def reset(self, **kwargs):
        result = self.env.reset(**kwargs)
        self.episodes.append(self.env.unwrapped.episode)
        return result


def episode_steps(scenario: ScenarioConfig | list[ScenarioConfig], env_kwargs: dict[str, Any]) -> int:
    """Syncs in the longest episode the scenarios give: the TimeLimit that never cuts one short."""
    scenarios = scenario if isinstance(scenario, list) else [scenario]
    duration = env_kwargs.get("episode_s") or max(s.duration_s for s in scenarios)
    return math.ceil(duration / env_kwargs.get("sync_period_s", 15.0))


def make_env(scenario: ScenarioConfig | list[ScenarioConfig], env_kwargs: dict[str, Any], continuous: bool) -> gym.Env:
    """One environment, as the spec asks for it (no Monitor: the vector builders add it)."""
    env = gym.make(ENV_ID, scenario=scenario, max_episode_steps=episode_steps(scenario, env_kwargs), **env_kwargs)
    return ContinuousActions(env) if continuous else env


def training_envs(scenario: ScenarioConfig | list[ScenarioConfig], spec: SB3Spec, seed: int):
    """``spec.n_envs`` monitored environments (subprocesses when more than one), environment ``i`` first reset
    with ``seed + i``, under ``VecNormalize`` when the spec asks for it."""
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecNormalize

    factory = partial(make_env, scenario, spec.env_kwargs.env_arguments(), spec.continuous)
    vec_cls = SubprocVecEnv if spec.n_envs > 1 else DummyVecEnv
    venv = make_vec_env(factory, n_envs=spec.n_envs, seed=seed, vec_env_cls=vec_cls)
    norm = spec.normalize
    if not (norm.obs or norm.reward):
        return venv
    gamma = float(spec.hyperparams.get("gamma", 0.99))
    return VecNormalize(
        venv, norm_obs=norm.obs, norm_reward=norm.reward, clip_obs=norm.clip_obs, clip_reward=norm.clip_reward,
        gamma=gamma,
    )  # fmt: skip


def evaluation_env(scenario: ScenarioConfig | list[ScenarioConfig], spec: SB3Spec):
    """One monitored environment in this process, and its recorder; normalization frozen (statistics are synced
    from training before each evaluation), rewards raw. The caller seeds it before each evaluation."""
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    recorder = EpisodeRecorder(make_env(scenario, spec.env_kwargs.env_arguments(), spec.continuous))
    venv = DummyVecEnv([lambda: Monitor(recorder)])
    if spec.normalize.obs or spec.normalize.reward:
        venv = VecNormalize(venv, training=False, norm_obs=spec.normalize.obs, norm_reward=False,
                            clip_obs=spec.normalize.clip_obs)  # fmt: skip
    return venv, recorder

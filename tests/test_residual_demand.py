"""A residual policy over a forecaster: the ``residual-hold`` actions, the ``demand`` observation (the rate's last
half hour and its silence, as a controller remembers it), the environment that shows the agent the baseline it
corrects, and training that starts from that baseline (``prior_action``)."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import rlscale  # noqa: F401  (registers rlscale/JetStream-v0)
from rlscale.agents import load_agent
from rlscale.data import read_extended
from rlscale.pods import PodInfo
from rlscale.policies.actions import ActionMap
from rlscale.policies.base import ClusterState
from rlscale.policies.forecast import ForecastingAutoscaler
from rlscale.policies.hpa import HPAPolicy
from rlscale.policies.learned import LearnedPolicy, PolicyEnvKwargs
from rlscale.policies.observation import (
    DEMAND_FEATURES,
    FEATURES,
    TIME_FEATURES,
    DemandObservation,
    ObservationBuilder,
)
from rlscale.scenario import load_scenario
from rlscale.training.config import SB3Spec
from rlscale.training.train import lean_to_prior
from tests.test_forecast import FakeMetrics


def test_residual_hold_corrects_the_baseline_or_keeps_the_count():
    actions = ActionMap("residual-hold", max_delta=3, min_replicas=1, max_replicas=32)
    assert actions.n == 8 and actions.keep == 7 and actions.hold == 3 and actions.residual
    assert actions.replicas(7, current=20, baseline=2) == 20  # keep: whatever the baseline says
    assert actions.replicas(3, current=20, baseline=2) == 2  # follow it
    assert actions.replicas(0, current=20, baseline=2) == 1  # -3, clipped to min_replicas
    assert actions.replicas(6, current=20, baseline=30) == 32  # +3, clipped to max_replicas
    assert actions.replicas(5, current=20, baseline=None) == 22  # no recommendation: on the current count
    assert ActionMap("residual", 3, 1, 32).n == 7 and ActionMap("residual", 3, 1, 32).keep is None
    with pytest.raises(ValueError, match=r"action 8 outside Discrete\(8\)"):
        actions.replicas(8, 20, 2)


def state(t: float, metrics: FakeMetrics, replicas: int = 2) -> ClusterState:
    return ClusterState(t, replicas, replicas, tuple(PodInfo(p) for p in metrics.pods), metrics)


def test_demand_features_remember_the_last_half_hour_and_how_long_it_has_been_silent():
    observe, metrics = DemandObservation(), FakeMetrics()
    assert observe.names[len(FEATURES) :] == [f.name for f in DEMAND_FEATURES] and len(observe.high) == 14
    metrics.rate = 40.0
    for t in np.arange(0, 1800, 15.0):
        observe(state(t, metrics), baseline=7)
    metrics.rate = 0.0
    for t in np.arange(1800, 2400, 15.0):
        last = observe(state(t, metrics), baseline=3)
    # at 2385 s: the 30-min window (585, 2385] holds 80 syncs at 40 req/s (600-1785 s) and 40 at 0
    assert last[len(FEATURES) :].tolist() == pytest.approx([3, 0.0, 80 * 40 / 120, 40.0, (2385 - 1785) / 60])
    assert observe(state(2385.0, metrics), baseline=9) is last  # the same instant twice: remembered once
    metrics.pods = ()  # no pod with a rate: missing data, neither a rate of 0 nor the end of the silence
    gap = observe(state(2400.0, metrics), baseline=3)
    assert gap[len(FEATURES) + 1] == 0.0 and gap[-1] == pytest.approx((2400 - 1785) / 60)
    assert len(observe._rates) == 119  # bounded by the window: (600, 2400], where 2400 s added none
    metrics.pods, metrics.rate = ("p0", "p1"), 1.0  # 1 req/s after 40: below 5% of the 30-min mean, still silent
    assert observe(state(2415.0, metrics))[-1] == pytest.approx((2415 - 1785) / 60)
    metrics.rate = 30.0
    assert observe(state(2430.0, metrics))[-1] == 0.0  # traffic is back
    observe.reset()
    assert observe(state(2445.0, metrics))[len(FEATURES) :].tolist() == pytest.approx([2, 30.0, 30.0, 30.0, 0.0])


def test_the_fleet_features_are_the_same_with_or_without_the_demand_ones():
    metrics = FakeMetrics()
    metrics.rate = 12.0
    fleet = ObservationBuilder(86_400.0)(state(100.0, metrics))
    demand = DemandObservation(86_400.0)(state(100.0, metrics))
    assert demand[: len(fleet)].tolist() == fleet.tolist() and len(demand) == len(fleet) + len(DEMAND_FEATURES)
    assert (
        PolicyEnvKwargs(features="demand", time_period_s=86_400.0).observation().names
        == DemandObservation(86_400.0).names
    )


def test_the_environment_shows_the_agent_the_baseline_it_corrects_and_keep_keeps_the_count():
    env = gym.make("rlscale/JetStream-v0", scenario="envs/flash-crowd.yaml", episode_s=900, action_mode="residual-hold",
                   max_delta=1, features="demand").unwrapped  # fmt: skip
    obs, _ = env.reset(seed=0)
    assert env.observation_space.shape == (len(FEATURES) + len(DEMAND_FEATURES),) == obs.shape
    assert env.action_space.n == 4
    for step in range(50):  # into the spike, where the HPA wants more pods
        twin = HPAPolicy.from_file("agents/hpa-slots-used.yaml")
        twin.controller = copy.deepcopy(env._baseline.controller)
        before = env.sim.state()
        wanted = twin.recommend(before)  # what the baseline recommends on the next state (already asked)
        if step == 0:
            assert obs[len(FEATURES)] == (before.spec_replicas if wanted is None else wanted)
        action = 3 if step % 2 else 2  # keep, then +1 on the baseline
        obs, *_, info = env.step(action)
        shown = env._baseline_out
        if action == 3:
            assert info["replicas"] == before.spec_replicas
        assert obs[len(FEATURES)] == (env.sim.state().spec_replicas if shown is None else shown)
    with pytest.raises(ValueError, match="features: want 'fleet' or 'demand'"):
        gym.make("rlscale/JetStream-v0", scenario="envs/steady.yaml", features="rates")


def test_training_can_start_from_the_baseline_it_corrects():
    from stable_baselines3 import PPO

    spec = SB3Spec(algo="ppo", total_timesteps=1, prior_action=3, prior_logit=4.0,
                   env_kwargs={"action_mode": "residual-hold", "max_delta": 3})  # fmt: skip

    class Spaces(gym.Env):
        observation_space = gym.spaces.Box(0.0, 1.0, (4,), np.float32)
        action_space = gym.spaces.Discrete(8)

    model = PPO("MlpPolicy", Spaces(), n_steps=64, seed=0, device="cpu")
    lean_to_prior(model, spec)
    obs = model.policy.obs_to_tensor(np.zeros((1, 4), np.float32))[0]
    probs = model.policy.get_distribution(obs).distribution.probs.detach().numpy()[0]
    # SB3's action head starts with tiny weights (gain 0.01), so the logits are the bias: e^4 / (e^4 + 7)
    assert probs[3] == pytest.approx(math.exp(4) / (math.exp(4) + 7), abs=0.01)
    with pytest.raises(ValueError, match=r"prior_action: 8 is not an action of Discrete\(8\)"):
        SB3Spec(algo="ppo", total_timesteps=1, prior_action=8, env_kwargs=spec.env_kwargs)
    with pytest.raises(ValueError, match="prior_action: only ppo and a2c"):
        SB3Spec(algo="dqn", total_timesteps=1, prior_action=0)


# ---- the shipped production policy --------------------------------------------------------------------------------
ROOT = Path(__file__).resolve().parents[1]


def test_the_three_shipped_training_seeds_are_one_recipe_under_three_seeds():
    """learned.yaml, learned-seed1.yaml and learned-seed2.yaml run policy folders trained by the same agent file on
    the same scenario, differing in the seed only (experiments/production.yaml pools them as one row)."""
    folder = ROOT / "agents" / "production"
    metas = [json.loads((folder / f / "policy.json").read_text()) for f in
             ("ppo-residual", "ppo-residual-seed1", "ppo-residual-seed2")]  # fmt: skip
    assert [m["seed"] for m in metas] == [0, 1, 2]
    assert all({k: v for k, v in m.items() if k != "seed"} == {k: v for k, v in metas[0].items() if k != "seed"}
               for m in metas)  # fmt: skip
    for seed in (1, 2):
        doc = read_extended(folder / f"learned-seed{seed}.yaml")
        assert doc["spec"]["model"] == f"ppo-residual-seed{seed}" and doc["kind"] == "LearnedPolicy"


def test_the_shipped_production_policy_was_trained_on_training_days_only_and_corrects_the_held_out_forecaster():
    """agents/production/learned.yaml runs the committed policy folder on a fresh clone (no training first): trained
    on envs/production-train.yaml (a training day), behind the forecaster whose history ends before that day; at
    evaluation it corrects the silence-holding forecaster with the held-out day's history."""
    meta = json.loads((ROOT / "agents" / "production" / "ppo-residual" / "policy.json").read_text())
    assert meta["scenario"] == "production-train" and meta["env_kwargs"]["features"] == "demand"
    trained_on = load_scenario(ROOT / "envs" / "production-train.yaml")
    arrival = trained_on.workload.arrival
    assert arrival.split == "train" and max(arrival.days) <= 10  # days 11-14 are held out
    history = json.loads((ROOT / "agents" / "production" / "predictive-history-train.json").read_text())
    assert (history["first_bucket"] + len(history["values"])) * history["bucket_s"] <= 9 * 86_400  # ends at day 10
    scenario = load_scenario(ROOT / "envs" / "production-day-heldout.yaml").model_copy(update={"duration_s": 600.0})
    policy = load_agent(ROOT / "agents" / "production" / "learned.yaml", scenario)
    assert isinstance(policy, LearnedPolicy) and policy.actions.mode == "residual-hold" and policy.actions.n == 8
    assert isinstance(policy.baseline, ForecastingAutoscaler) and policy.baseline.config.silence_hold_s == 4800
    assert policy.baseline.state_source.endswith("predictive-history.json")  # days 9-10, before held-out day 11
    assert len(policy.observe.names) == len(FEATURES) + len(TIME_FEATURES) + len(DEMAND_FEATURES)

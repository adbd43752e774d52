"""The Gymnasium environment: API conformance, determinism, reward accounting, observations only via the pipeline."""

from __future__ import annotations

import copy
import pickle

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import rlscale  # noqa: F401  (registers rlscale/JetStream-v0)
from rlscale.envs.jetstream import JetStreamEnv
from rlscale.policies.hpa import HPAPolicy

SHORT = {"scenario": "envs/steady.yaml", "episode_s": 180}


def make(**kwargs) -> JetStreamEnv:
    return gymnasium.make("rlscale/JetStream-v0", **{**SHORT, **kwargs}).unwrapped


@pytest.mark.parametrize("env_id", [i for i in gymnasium.registry if i.startswith("rlscale/")])
def test_check_env_and_pickle_for_every_registered_id(env_id):
    env = gymnasium.make(env_id, **SHORT).unwrapped
    check_env(env, skip_render_check=True)
    clone = pickle.loads(pickle.dumps(gymnasium.make(env_id, **SHORT).unwrapped))
    assert clone.observation_space == env.observation_space and clone.action_space == env.action_space


def rollout(env: JetStreamEnv, seed: int, actions: list[int]):
    obs, _ = env.reset(seed=seed)
    trace = [obs]
    for a in actions:
        obs, reward, _, truncated, _ = env.step(a)
        trace.append((obs, reward))
        if truncated:
            break
    return trace


def test_same_seed_same_episode():
    actions = [2, 3, 4, 2, 1, 0, 2, 2, 3, 2, 2, 2]
    a, b = rollout(make(), 7, actions), rollout(make(), 7, actions)
    assert repr(a) == repr(b)
    assert repr(rollout(make(), 8, actions)) != repr(a)


def test_reward_terms_add_up_and_match_the_episode_kpis():
    env = make(episode_s=300)
    env.reset(seed=1)
    totals = {"cost_usd": 0.0, "failed": 0, "completed": 0}
    truncated = False
    while not truncated:
        _, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert not terminated
        assert reward == pytest.approx(sum(v for k, v in info.items() if k.startswith("reward/")))
        w = env.episode.reward
        assert info["reward/cost"] == pytest.approx(-w.cost_weight * info["cost_usd"])
        assert info["reward/slo"] == pytest.approx(-w.slo_violation_weight * info["slo_violations"])
        for key in totals:
            totals[key] += info[key]
    kpis = info["episode_kpis"]
    assert totals["cost_usd"] == pytest.approx(kpis["cost_usd"])
    assert (totals["failed"], totals["completed"]) == (kpis["failed"], kpis["completed"])
    assert env.sim.env.now == pytest.approx(300.0)


def test_observation_comes_through_the_metrics_pipeline():
    env = make(scenario="envs/flash-crowd.yaml", episode_s=900)
    obs, _ = env.reset(seed=0)
    names = env.observe.names
    backlog, coverage = names.index(names[0]), 5
    assert obs[backlog] == 0 and obs[coverage] == 1  # pods Ready before the run were scraped idle before it
    assert obs[6] == obs[7] == 2  # the scale subresource and the pod list are read directly
    lagging = 0
    for _ in range(60):
        obs, *_ = env.step(env.max_delta)  # hold the replica count through the spike (600 s on)
        true_backlog = np.mean([len(p.prefill_backlog) for p in env.sim.fleet.serving_pods()])
        lagging += true_backlog > 50 and obs[backlog] < true_backlog / 2
    assert lagging >= 1  # the controller sees the spike late
    assert obs[backlog] > 0 and obs[coverage] == 1


def test_action_modes_and_bounds():
    env = make(action_mode="target", max_replicas=6)
    env.reset(seed=0)
    *_, info = env.step(6)
    assert info["replicas"] == 6 == env.sim.fleet.desired
    env = make(max_delta=2, max_replicas=5)
    env.reset(seed=0)  # steady starts at 4 replicas
    *_, info = env.step(4)  # +2, clipped to 5
    assert info["replicas"] == 5
    env = make(action_mode="residual", max_delta=1, scenario="envs/flash-crowd.yaml", episode_s=900)
    env.reset(seed=0)
    for _ in range(50):  # into the spike, where the HPA wants more pods
        state = env.sim.state()
        twin = HPAPolicy.from_file("agents/hpa-slots-used.yaml")
        twin.controller = copy.deepcopy(env._baseline.controller)
        wanted = twin.recommend(state)
        *_, info = env.step(2)  # offset +1 on the HPA's own recommendation
        assert info["replicas"] == min((state.spec_replicas if wanted is None else wanted) + 1, 16)


@pytest.mark.slow
def test_runs_in_sb3_subprocess_vector_envs():
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    # "module:id" imports rlscale (and so registers the env) inside each worker process
    vec = make_vec_env("rlscale:rlscale/JetStream-v0", n_envs=2, seed=0, env_kwargs=SHORT, vec_env_cls=SubprocVecEnv)
    try:
        obs = vec.reset()
        assert obs.shape == (2, 9)
        for _ in range(3):
            obs, rewards, _, _ = vec.step(np.array([2, 3]))
        assert rewards.shape == (2,) and np.all(np.isfinite(rewards))
    finally:
        vec.close()


def test_a_steps_counts_are_the_requests_that_ended_in_it():
    """The reward's completed/failed/violation counts come from the run's own KPI counts: they must be exactly the
    requests that ended during the step, judged one by one by ``SLO.met_by`` (failed ones count as violations)."""
    from rlscale.kpis import SLO
    from rlscale.serving.request import COMPLETED

    env = make(scenario="envs/flash-crowd.yaml", episode_s=900)
    env.reset(seed=3)
    ended: list = []
    env.sim.done_listeners.append(ended.append)
    slo = env.episode.slo
    judge = SLO(slo.ttft_p99_s, slo.tpot_p99_s, slo.e2e_s)
    totals = np.zeros(3, dtype=int)
    for action in [0] * 40 + [env.max_delta] * 20:  # scale down hard, then hold: misses and late requests
        ended.clear()
        *_, truncated, info = env.step(action)
        done = [r for r in ended if r.state is COMPLETED]
        assert info["completed"] == len(done)
        assert info["failed"] == len(ended) - len(done)
        assert info["slo_violations"] == sum(not judge.met_by(r) for r in done) + info["failed"]
        totals += (info["completed"], info["failed"], info["slo_violations"])
        if truncated:
            break
    assert totals[0] > 100 and totals[2] > 0  # the check saw both met and missed requests

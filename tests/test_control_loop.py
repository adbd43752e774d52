"""One control loop (collect → recommend → safety → actuate) in the simulator and the environment, with faults as
scenario data: holds, fallbacks and failed scale calls happen in simulation and are counted in the KPIs."""

from __future__ import annotations

import re

import gymnasium
import pytest
import yaml

import rlscale
from rlscale.agents import load_control_loop
from rlscale.envs.jetstream import JetStreamEnv
from rlscale.policies.control import ControlLoop
from rlscale.policies.observation import FEATURES, TIME_FEATURES, observation_metric_refs
from rlscale.policies.safety import SafetySpec
from rlscale.scenario import ScenarioConfig
from rlscale.simulation import Simulation

SYNC_S = 15.0


class Wants:
    """A policy that asks for a fixed count every sync and reads the observation's metrics, as a learned one does;
    it records when it was asked."""

    sync_period_s = SYNC_S

    def __init__(self, replicas: int) -> None:
        self.replicas, self.asked = replicas, []

    def recommend(self, state):
        self.asked.append(state.now_s)
        return self.replicas

    def metric_refs(self):
        return observation_metric_refs()


class WantsFrom(Wants):
    """Leaves the count alone until ``from_s``, then asks for ``replicas``."""

    def __init__(self, replicas: int, from_s: float) -> None:
        super().__init__(replicas)
        self.from_s = from_s

    def recommend(self, state):
        return super().recommend(state) if state.now_s >= self.from_s else None


def scenario(faults=(), replicas: int = 2, duration_s: float = 600.0) -> ScenarioConfig:
    return ScenarioConfig.model_validate({
        "fleet": {"replicas": replicas, "lifecycle": {"node_provisioning": {"kind": "fixed", "seconds": 20.0}}},
        "workload": {"arrival": {"process": "poisson", "rate_per_s": 4.0},
                     "lengths": {"kind": "fixed", "prompt_tokens": 200, "output_tokens": 50}},
        "faults": list(faults),
        "duration_s": duration_s,
    })  # fmt: skip


def run(loop: ControlLoop, sc: ScenarioConfig):
    sim = Simulation.build(sc)
    sim.attach(loop)
    return sim, sim.run()


def test_without_faults_the_loop_passes_the_policy_through():
    loop = ControlLoop(Wants(4))
    sim, result = run(loop, scenario())
    k = result.kpis
    assert sim.fleet.desired == 4 and k.decisions == 600 // SYNC_S - 1  # the clock stops just before t = 600
    assert (k.decisions_held, k.fallback_decisions, k.scale_failures) == (0, 0, 0)


class FailsFrom(Wants):
    """Asks for ``replicas`` until ``from_s``, then raises at every sync (a policy bug, a history of the wrong days)."""

    def __init__(self, replicas: int, from_s: float) -> None:
        super().__init__(replicas)
        self.from_s = from_s

    def recommend(self, state):
        if state.now_s >= self.from_s:
            raise ValueError(f"broken at {state.now_s:g} s")
        return super().recommend(state)


def test_a_policy_that_raises_is_held_counted_and_said_not_silently_measured():
    loop = ControlLoop(FailsFrom(3, from_s=300.0))
    sim, result = run(loop, scenario())
    k = result.kpis
    failing = int((585 - 300) // SYNC_S) + 1  # the syncs at 300, 315, ..., 585 s (the first is at 15 s)
    assert k.policy_errors == failing and k.decisions_held == failing  # no fallback: the loop held
    assert sim.fleet.desired == 3  # what it asked for before it broke
    (warning,) = result.warnings
    assert f"raised at {failing} of {k.decisions} syncs" in warning and "policy: ValueError: broken at 300 s" in warning
    assert not run(ControlLoop(Wants(3)), scenario())[1].warnings  # a healthy policy: nothing said


def test_an_adapter_outage_holds_every_decision_inside_it():
    outage = {"kind": "adapter-outage", "start_s": 100.0, "duration_s": 200.0}
    policy = Wants(4)
    loop = ControlLoop(policy, SafetySpec(max_change_per_step=1))
    sim, result = run(loop, scenario([outage], duration_s=400.0))
    # syncs at 15, 30, ..., 390: 100 <= t < 300 is held (105 ... 285: 13 syncs), and the policy is not even asked
    held = [t for t in range(15, 400, 15) if 100 <= t < 300]
    assert result.kpis.decisions_held == len(held) == 13
    assert not set(policy.asked) & set(map(float, held))
    # capped at +1 per sync: 2 -> 3 at t = 15, 3 -> 4 at t = 30, then the count is already where the policy wants it
    assert sim.fleet.desired == 4 and result.kpis.decisions_limited == 1


def test_a_scrape_outage_goes_partial_then_unavailable_as_samples_go_stale():
    outage = {"kind": "scrape-outage", "start_s": 60.0, "duration_s": 600.0}
    sc = scenario([outage], duration_s=600.0).model_copy(update={"metrics": scenario().metrics.model_copy(
        update={"lookback_s": 120.0})})  # fmt: skip
    loop = ControlLoop(Wants(1))  # wants fewer pods: a hold shows as no scale-down
    sim, result = run(loop, sc)
    # the last scrape before t = 60 is ingested 30 s later and goes stale 120 s after that: from ~t = 210 on,
    # nothing is fresh, the loop holds; before the outage's samples age out, the count follows the policy
    assert sim.fleet.desired == 1  # scaled down to 1 in the first minute
    assert result.kpis.decisions_held >= (600 - 225) // SYNC_S
    assert sim.metrics.refused > 0


def test_partial_metrics_block_scale_down_and_the_fallback_decides(tmp_path):
    half = {"kind": "scrape-outage", "start_s": 0.0, "duration_s": 10_000.0, "share": 0.5}
    hpa = tmp_path / "hpa.yaml"
    hpa.write_text(yaml.safe_dump({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "jetstream"},
                 "minReplicas": 1, "maxReplicas": 8,
                 "metrics": [{"type": "Pods", "pods": {"metric": {"name": "jetstream_prefill_backlog_size"},
                                                        "target": {"type": "AverageValue", "averageValue": "100"}}}]},
    }))  # fmt: skip
    # the pre-run sample keeps the refusing pods fresh while no older than the lookback (300 s): partial from 315 s,
    # so a policy that wants fewer pods only from t = 400 s never gets them
    blocked = ControlLoop(WantsFrom(1, 400.0))
    sim, result = run(blocked, scenario([half], replicas=4, duration_s=900.0))
    assert sim.fleet.desired == 4 and result.kpis.decisions_held == len(range(405, 900, 15))
    agent = tmp_path / "agent.yaml"
    agent.write_text(yaml.safe_dump({"kind": "StaticReplicas", "spec": {"replicas": 1, "sync_period_s": 15},
                                     "safety": {"fallback_hpa": "hpa.yaml", "max_change_per_step": 2}}))  # fmt: skip
    loop = load_control_loop(agent, scenario())
    assert loop.fallback is not None and loop.safety.max_change_per_step == 2
    loop.policy = WantsFrom(1, 400.0)  # the same wish, now with an HPA to fall back on while metrics are partial
    loop.reads = (("jetstream_prefill_backlog_size",), ())
    sim, result = run(loop, scenario([half], replicas=4, duration_s=900.0))
    # the HPA decides (the fallback is built for missing pods), but on partial metrics a scale-down stays blocked
    assert result.kpis.fallback_decisions == len(range(315, 900, 15)) and sim.fleet.desired == 4


def test_failed_scale_calls_are_retried_and_counted():
    failing = {"kind": "scale-failure", "start_s": 0.0, "duration_s": 50.0}
    sim, result = run(ControlLoop(Wants(3)), scenario([failing]))
    assert result.kpis.scale_failures == 3  # t = 15, 30, 45
    assert [e.time_s for e in sim.fleet.scale_events] == [60.0]  # level-based: applied at the next sync


def test_faults_are_validated_as_data():
    with pytest.raises(ValueError, match="kind"):
        scenario([{"kind": "network-partition", "start_s": 0, "duration_s": 1}])
    with pytest.raises(ValueError, match="share"):
        scenario([{"kind": "scrape-outage", "start_s": 0, "duration_s": 1, "share": 0}])


# ---- the environment behind the same loop -------------------------------------------------------------------------
def test_the_environment_meets_the_holds_a_live_controller_applies():
    outage = {"kind": "adapter-outage", "start_s": 30.0, "duration_s": 60.0}
    env = JetStreamEnv(scenario([outage], duration_s=300.0), action_mode="target", max_replicas=6)
    env.reset(seed=0)
    infos = [env.step(5)[-1] for _ in range(8)]
    held = [i["held"] for i in infos]
    # steps start at 0, 15, ..., 105: the outage covers 30 <= t < 90
    assert held == [False, False, True, True, True, True, False, False]
    assert [i["metrics"] for i in infos][2] == "unavailable"
    assert infos[0]["replicas"] == 5 and all(i["asked"] == 5 for i in infos)


def test_environment_arguments_sync_period_options_and_time_limit():
    env = JetStreamEnv(scenario(duration_s=300.0), sync_period_s=30.0)
    env.reset(seed=1)
    steps = 0
    truncated = False
    while not truncated:
        *_, truncated, _ = env.step(env.actions.hold)
        steps += 1
    assert steps == 10 and env.sim.env.now == 300.0
    both = JetStreamEnv([scenario(duration_s=60.0), scenario(duration_s=120.0).model_copy(update={"name": "b"})])
    both.reset(seed=0, options={"scenario": "b"})
    assert both.episode.duration_s == 120.0
    both.reset(seed=0, options={"scenario": 0})
    assert both.episode.duration_s == 60.0
    with pytest.raises(ValueError, match="unknown option"):
        both.reset(seed=0, options={"start_s": 10})
    with pytest.raises(ValueError, match="want an index below 2"):
        both.reset(seed=0, options={"scenario": 7})
    registered = gymnasium.spec("rlscale/JetStream-v0").max_episode_steps
    assert registered == rlscale.MAX_EPISODE_STEPS == 14 * 86_400 // 15  # a fortnight of 15 s syncs
    assert gymnasium.make("rlscale/JetStream-v0", scenario=scenario()).spec.max_episode_steps == registered


def test_the_residual_baseline_is_read_once_and_starts_fresh_each_episode(monkeypatch):
    import rlscale.envs.jetstream as jetstream

    env = JetStreamEnv(scenario(duration_s=120.0), action_mode="residual")
    reads = []
    real = jetstream.read_extended
    monkeypatch.setattr(jetstream, "read_extended", lambda path: reads.append(path) or real(path))
    env.reset(seed=0)
    first = env._baseline
    env.step(env.actions.hold)
    env.reset(seed=1)
    assert len(reads) == 1 and env._baseline is not first  # one read, a fresh HPA (its history empty)
    # its history is this episode's: the one recommendation it made on the first state, for the observation
    assert {r.timestamp_s for r in env._baseline.controller.recommendations} == {0.0}


def test_the_observation_table_in_the_docstring_is_the_features():
    rows = re.findall(r"^\s*\| (\d+) \| (.+?) \| (.+?) \| (.+?) \| (.+?) \|$", JetStreamEnv.__doc__, re.M)
    features = FEATURES + TIME_FEATURES
    assert [int(r[0]) for r in rows] == list(range(len(features)))
    for (index, name, unit, low, high), feature in zip(rows, features, strict=True):
        assert name.split(" (``")[0] == feature.name, index
        assert unit == feature.unit and float(high) == feature.high, index
        assert float(low.replace("−", "-")) == (-1.0 if feature in TIME_FEATURES else 0.0), index

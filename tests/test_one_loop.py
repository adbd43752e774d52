"""The policy that is scored is the policy that is deployed: one policy and one set of faults, run through the
simulator's control loop and through the live controller (``rlscale.deploy.controller``, unmodified, over HTTP)
against the emulated cluster, give the same decisions — the same holds, caps and failed scale calls."""

from __future__ import annotations

from pathlib import Path

import yaml

from rlscale.deploy.config import load_controller_config
from rlscale.deploy.controller import Controller
from rlscale.emulator import Emulator
from rlscale.policies.control import ControlLoop
from rlscale.policies.observation import observation_metric_refs
from rlscale.policies.safety import SafetySpec
from rlscale.scenario import ScenarioConfig
from rlscale.simulation import Simulation

SYNC_S = 15.0
WANTS = ((0.0, 6), (150.0, 3))  # (from t, replicas): up to 6, then back to 3
FAULTS = [
    {"kind": "scale-failure", "start_s": 40.0, "duration_s": 30.0},  # syncs at 45, 60: the PATCH fails
    {"kind": "adapter-outage", "start_s": 100.0, "duration_s": 60.0},  # syncs at 105 ... 150: held
]
LIMITS = {"min_replicas": 1, "max_replicas": 8, "max_change_per_step": 1}


class Schedule:
    """A policy that wants a count set by the clock and reads the observation's metrics (as a learned one does)."""

    sync_period_s = SYNC_S

    def recommend(self, state):
        return next(n for start, n in reversed(WANTS) if state.now_s >= start)

    def metric_refs(self):
        return observation_metric_refs()


def scenario() -> ScenarioConfig:
    return ScenarioConfig.model_validate({
        # pods Ready ~21 s after a scale-up, so every new pod reports (through the simulated scrape and adapter
        # lag) before the policy next wants to scale down: the simulator's Prometheus-like pipeline and the
        # controller's direct scrapes then see the same health
        "fleet": {"replicas": 2, "lifecycle": {"node_provisioning": {"kind": "fixed", "seconds": 5.0},
                                               "image_pull_s": 1.0, "weight_load_bytes_per_s": 1e12,
                                               "warmup_fixed_s": 0.0, "warmup_s_per_bucket": 0.0}},
        "workload": {"arrival": {"process": "poisson", "rate_per_s": 3.0},
                     "lengths": {"kind": "fixed", "prompt_tokens": 200, "output_tokens": 40}},
        "faults": FAULTS,
        "duration_s": 3600.0,
    })  # fmt: skip


def key(decision) -> tuple:
    return decision.current, decision.applied, decision.held, decision.source.value


def simulated(syncs: int) -> tuple[list[tuple], ControlLoop]:
    sim = Simulation.build(scenario())
    loop = ControlLoop(Schedule(), SafetySpec(**LIMITS))
    decisions = []
    for k in range(1, syncs + 1):
        sim.env.run(until=k * SYNC_S)
        decision = loop.sync(sim.state(), unavailable=sim.metrics.down_reason()).decision
        if decision.applied != sim.fleet.desired:
            loop.actuated(sim.actuate(decision.applied))
        decisions.append(key(decision))
    return decisions, loop


class SimClock:
    """The controller's clock, set to the emulator's simulated time (the emulator runs at speed 0)."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu

    def __call__(self) -> float:
        return self.emu.now_s


def live(tmp_path: Path, syncs: int) -> tuple[list[tuple], Controller]:
    with Emulator(scenario(), speed=0) as emu:
        metrics = {"source": "scrape", "scrape_port": emu.metrics_port, "device_port": emu.device_port,
                   "stale_after_s": 10, "timeout_s": 2}  # fmt: skip
        body = {"policy": str(tmp_path / "placeholder.yaml"), "listen_port": None, "sync_period_s": SYNC_S,
                "leader_election": {"enabled": False}, "metrics": metrics, **LIMITS}  # fmt: skip
        (tmp_path / "placeholder.yaml").write_text(yaml.safe_dump({"kind": "StaticReplicas", "spec": {"replicas": 1}}))
        (tmp_path / "controller.yaml").write_text(
            yaml.safe_dump({"apiVersion": "rlscale/v1", "kind": "ControllerConfig", "spec": body})
        )
        config = load_controller_config(tmp_path / "controller.yaml")
        controller = Controller.from_config(config, api_url=emu.api_url, clock=SimClock(emu))
        controller.cluster.sleep = lambda s: None  # a failed PATCH is retried within the sync, without waiting
        controller.policy = Schedule()
        decisions = []
        for _ in range(syncs):
            emu.advance(SYNC_S)
            decisions.append(key(controller.run_once()))
        return decisions, controller


def test_the_simulator_and_the_live_controller_decide_alike(tmp_path):
    syncs = 16  # t = 15 ... 240: the climb, the failed PATCHes, the outage, the way back down
    sim_decisions, loop = simulated(syncs)
    live_decisions, controller = live(tmp_path, syncs)
    assert live_decisions == sim_decisions
    # and what they are, worked out by hand: +1 per sync from 2 towards 6; the PATCHes at 45 and 60 fail (the count
    # stays 4, the loop asks again); the outage holds 105 ... 150 (the policy is not asked); then down to 3 by 1
    climb = [(2, 3), (3, 4), (4, 5), (4, 5), (4, 5), (5, 6)]  # t = 15 ... 90; at 45 and 60 the PATCH fails
    descent = [(6, 5), (5, 4), (4, 3), (3, 3), (3, 3), (3, 3)]  # t = 165 ... 240
    expected = [(*c, False, "policy") for c in climb] + [(6, 6, True, "hold")] * 4
    expected += [(*c, False, "policy") for c in descent]
    assert sim_decisions == expected
    assert loop.counts.scale_failures == controller.loop.counts.scale_failures == 2
    assert loop.counts.held == controller.loop.counts.held == 4

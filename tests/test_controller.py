"""The control loop (rlscale/deploy/controller.py) against the fake API server and the fake Prometheus, through the
real ``kubernetes`` client: it scales and says so; holds on missing metrics; survives API faults; only the leader
acts; bad settings fail before any request; it refuses to fight an HPA; dry-run never patches; and the
``rlscale controller`` command runs, logs JSON decisions and shuts down cleanly on SIGTERM."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import requests
import yaml
from prometheus_client import generate_latest

from rlscale.deploy.config import load_controller_config
from rlscale.deploy.controller import Controller, ControllerError
from rlscale.deploy.kube import RetryPolicy
from rlscale.deploy.telemetry import StatusServer
from rlscale.policies.observation import ObservationBuilder, observation_metric_refs
from rlscale.policies.safety import Source
from rlscale.specs.catalog import SpecError
from tests.test_controller_fakes import Clock, FakeKube, FakePrometheus, hpa_json

ROOT = Path(__file__).resolve().parents[1]
HPA_SLOTS = str(ROOT / "agents" / "hpa-slots-used.yaml")  # 0.9 slots used per pod, 1..16 pods
GAUGES = ("jetstream_prefill_backlog_size", "jetstream_slots_used_percentage", "num_requests_waiting")
SUCCESS = "jetstream_request_success_count_total"


@pytest.fixture
def kube():
    with FakeKube() as fake:
        yield fake


@pytest.fixture
def prom():
    with FakePrometheus() as fake:
        yield fake


def feed(prom: FakePrometheus, kube: FakeKube, slots: float = 0.5, missing: tuple[str, ...] = ()) -> None:
    """Every listed pod reports ``slots`` (and modest other values), except ``missing`` ones."""
    pods = [p["metadata"]["name"] for p in kube.pods if p["metadata"]["name"] not in missing]
    values = {GAUGES[0]: 1.0, GAUGES[1]: slots, GAUGES[2]: 0.0}
    for name, value in values.items():
        prom.set(f"({name}{{", [({"pod": p, "namespace": "default"}, value) for p in pods])
    prom.set(f"rate({SUCCESS}{{", [({"pod": p}, 2.0) for p in pods])
    prom.set("memory_used", [({}, 0.5)])


def static_agent(tmp_path: Path, replicas: int) -> str:
    path = tmp_path / f"static{replicas}.yaml"
    path.write_text(yaml.safe_dump({"kind": "StaticReplicas", "spec": {"replicas": replicas, "sync_period_s": 15}}))
    return str(path)


def make(tmp_path: Path, kube: FakeKube, prom: FakePrometheus, policy: str, clock=None, **spec) -> Controller:
    """A controller on the fakes, leader election off unless asked, fast retries."""
    body = {"policy": policy, "listen_port": None, "leader_election": {"enabled": False},
            "metrics": {"prometheus_url": prom.url}, **spec}  # fmt: skip
    path = tmp_path / "controller.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "rlscale/v1", "kind": "ControllerConfig", "spec": body}))
    controller = Controller.from_config(load_controller_config(path), api_url=kube.url, clock=clock or time.time)
    controller.cluster.retry = RetryPolicy(base_s=0.001, timeout_s=2)
    return controller


def decisions(caplog) -> list[dict]:
    return [r.fields for r in caplog.records if getattr(r, "fields", {}).get("event") == "decision"]


def test_scales_up_with_an_hpa_agent_and_records_it(tmp_path, kube, prom, caplog):
    feed(prom, kube, slots=1.0)  # 2 pods at 100% of slots, target 90%: 3 pods
    controller = make(tmp_path, kube, prom, HPA_SLOTS)
    with caplog.at_level(logging.INFO):
        decision = controller.run_once()
    assert (decision.current, decision.applied, decision.source) == (2, 3, Source.POLICY)
    assert kube.replicas == 3 and kube.patches[0]["spec"] == {"replicas": 3}
    assert kube.events[0]["message"].startswith("New size: 3; reason: scale up 2 -> 3")
    (logged,) = decisions(caplog)
    assert logged["features"] == ObservationBuilder().names and len(logged["observation"]) == len(logged["features"])
    assert logged["observation"][1] == 1.0 and logged["action"] == "scaled"
    text = generate_latest(controller.telemetry.registry).decode()
    assert 'rlscale_controller_decisions_total{outcome="scale_up",source="policy"} 1.0' in text
    assert 'rlscale_controller_observation{feature="jetstream_slots_used_percentage (mean over pods)"} 1.0' in text
    assert "rlscale_controller_action_latency_seconds_count 1.0" in text


@pytest.mark.parametrize("fault", ["down", "stale", "slow"])
def test_missing_metrics_hold_and_never_scale_down(tmp_path, kube, prom, fault):
    kube.set_pods(4)
    kube.replicas = 4
    feed(prom, kube)
    controller = make(tmp_path, kube, prom, static_agent(tmp_path, 1), metrics={"prometheus_url": prom.url,
                                                                               "timeout_s": 0.2})  # fmt: skip
    prom.down, prom.age_s, prom.delay_s = fault == "down", 120.0 * (fault == "stale"), 0.5 * (fault == "slow")
    decision = controller.run_once()
    assert (decision.applied, decision.source, decision.held) == (4, Source.HOLD, True)
    why = {"down": "HTTP 503", "stale": "no sample fresher than 60 s", "slow": "no answer within 0.2 s"}[fault]
    assert decision.reason.startswith("hold at 4; metrics unavailable: prometheus at") and why in decision.reason
    assert kube.patches == [] and kube.events == []
    assert (
        'rlscale_controller_errors_total{kind="metrics_unavailable"} 1.0'
        in generate_latest(controller.telemetry.registry).decode()
    )


class Observing:
    """A fixed count from a policy that reads the observation's metrics (as a learned one does)."""

    sync_period_s = 15.0

    def __init__(self, replicas: int) -> None:
        self.replicas = replicas

    def recommend(self, state):
        return self.replicas

    def metric_refs(self):
        return observation_metric_refs()


def test_partial_metrics_allow_scale_up_only(tmp_path, kube, prom):
    kube.set_pods(4)
    kube.replicas = 4
    feed(prom, kube, missing=("jetstream-3",))
    controller = make(tmp_path, kube, prom, static_agent(tmp_path, 1))
    controller.policy = Observing(1)
    down = controller.run_once()
    assert (down.applied, down.held) == (4, True) and "partial metrics" in down.reason and kube.patches == []
    controller.policy = Observing(9)
    up = controller.run_once()
    assert (up.applied, up.held) == (6, False) and kube.replicas == 6  # capped at +2
    fixed = make(tmp_path, kube, prom, static_agent(tmp_path, 1)).run_once()  # reads no metrics: none are missing
    assert (fixed.applied, fixed.held) == (4, False) and "partial" not in fixed.reason  # 6 -> 4, capped at -2


def test_api_conflict_is_retried_and_succeeds(tmp_path, kube, prom):
    feed(prom, kube, slots=1.0)
    kube.fail("PATCH", "/scale", 409, times=2)
    decision = make(tmp_path, kube, prom, HPA_SLOTS).run_once()
    assert decision.applied == 3 and kube.replicas == 3 and len(kube.patches) == 1


def test_api_errors_and_timeouts_skip_the_sync_without_crashing(tmp_path, kube, prom):
    feed(prom, kube, slots=1.0)
    controller = make(tmp_path, kube, prom, HPA_SLOTS)
    controller.cluster.retry = RetryPolicy(attempts=2, base_s=0.001, timeout_s=0.2)
    kube.fail("GET", "/scale", 503, times=2)
    assert controller.run_once() is None
    kube.fail("GET", "/pods", delay_s=0.5, times=2)
    assert controller.run_once() is None
    kube.fail("PATCH", "/scale", 500, times=2)
    assert controller.run_once().applied == 3 and kube.patches == []  # decided, but the patch failed
    assert controller.run_once().applied == 3 and kube.replicas == 3  # the next sync succeeds
    text = generate_latest(controller.telemetry.registry).decode()
    assert 'rlscale_controller_errors_total{kind="kube_api"} 3.0' in text
    assert 'rlscale_controller_errors_total{kind="kube_timeout"} 2.0' in text


def lease_holder(kube: FakeKube) -> str | None:
    return kube.leases["rlscale-controller"]["spec"].get("holderIdentity")


def test_two_controllers_on_one_lease_only_one_acts(tmp_path, kube, prom):
    feed(prom, kube, slots=1.0)
    clock = Clock()
    a, b = (make(tmp_path, kube, prom, HPA_SLOTS, clock, leader_election={"enabled": True}) for _ in range(2))
    assert a.elector.tick() and not b.elector.tick()
    assert b.run_once() is None and a.run_once().applied == 3
    assert len(kube.patches) == 1 and lease_holder(kube) == a.elector.identity


def test_a_controller_that_lost_the_lease_stops_acting(tmp_path, kube, prom):
    feed(prom, kube, slots=1.0)
    clock = Clock()
    a = make(tmp_path, kube, prom, HPA_SLOTS, clock, leader_election={"enabled": True})
    assert a.elector.tick()
    lease = kube.leases["rlscale-controller"]
    lease["spec"]["holderIdentity"] = "usurper"
    lease["metadata"]["resourceVersion"] = "999"
    assert not a.elector.tick()
    assert a.run_once() is None and kube.patches == []


def test_a_lease_lapsing_mid_sync_blocks_the_patch(tmp_path, kube, prom):
    feed(prom, kube, slots=1.0)
    clock = Clock()
    a = make(tmp_path, kube, prom, HPA_SLOTS, clock, leader_election={"enabled": True})
    assert a.elector.tick()
    real_read = a.cluster.read_scale

    def slow_read():
        clock.t += 11  # past the renew deadline (15 - 5 s) while reading
        return real_read()

    a.cluster.read_scale = slow_read
    assert a.run_once().applied == 3 and kube.patches == []


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"policy": "not-a-policy"}, "policy: 'not-a-policy' is not models:/"),
        ({"policy": "agents/missing.yaml"}, "cannot read"),
        ({"policy": "models:/no-such-model@champion"}, "policy: model: 'models:/no-such-model@champion'"),
        ({"fallback_hpa": "STATIC"}, "fallback_hpa: .* is a StaticPolicy, not a HorizontalPodAutoscaler"),
    ],
)
def test_bad_policy_references_fail_before_any_api_call(tmp_path, kube, prom, spec, message):
    spec = {k: static_agent(tmp_path, 2) if v == "STATIC" else v for k, v in spec.items()}
    policy = spec.pop("policy", HPA_SLOTS)
    with pytest.raises(SpecError, match=message):
        make(tmp_path, kube, prom, policy, tracking_uri=(tmp_path / "mlruns").as_uri(), **spec)  # no DB to migrate
    assert kube.requests == [] and prom.queries == []


def test_an_existing_hpa_is_refused(tmp_path, kube, prom):
    kube.hpas = [hpa_json("jetstream-hpa", "jetstream")]
    controller = make(tmp_path, kube, prom, HPA_SLOTS)
    with pytest.raises(ControllerError, match="HorizontalPodAutoscaler jetstream-hpa already targets"):
        controller.run(max_syncs=1)
    assert kube.patches == [] and not any(p.endswith("/scale") for _, p in kube.requests)


def test_a_dry_run_shadows_an_existing_hpa_without_touching_it(tmp_path, kube, prom):
    kube.hpas = [hpa_json("jetstream-hpa", "jetstream", 1, 8)]
    feed(prom, kube, slots=1.0)
    controller = make(tmp_path, kube, prom, HPA_SLOTS, dry_run=True)
    controller.run(max_syncs=1)  # preflight included: no refusal
    assert kube.writes() == [] and kube.patches == [] and kube.hpa_patches == []


def test_manage_bounds_pins_the_existing_hpa_to_the_count(tmp_path, kube, prom):
    kube.hpas = [hpa_json("jetstream-hpa", "jetstream", 1, 8)]
    feed(prom, kube, slots=1.0)
    controller = make(tmp_path, kube, prom, HPA_SLOTS, existing_hpa="manage-bounds")
    controller.preflight()
    assert controller.run_once().applied == 3
    assert kube.hpa_patches == [("jetstream-hpa", {"spec": {"minReplicas": 3, "maxReplicas": 3}})]
    controller.run_once()  # unchanged count, bounds already pinned: no second patch
    assert len(kube.hpa_patches) == 1


def test_dry_run_never_patches_and_logs_the_hpa_beside_the_policy(tmp_path, kube, prom, caplog):
    feed(prom, kube, slots=1.0)
    controller = make(tmp_path, kube, prom, static_agent(tmp_path, 1), fallback_hpa=HPA_SLOTS, dry_run=True)
    with caplog.at_level(logging.INFO):
        decision = controller.run_once()
    assert decision.applied == 1 and kube.replicas == 2
    assert kube.writes() == [] and kube.patches == [] and kube.events == []
    logged = decisions(caplog)[-1]
    assert (logged["policy"], logged["hpa"], logged["action"], logged["dry_run"]) == (1, 3, "dry-run", True)


def test_a_failing_policy_falls_back_to_the_hpa(tmp_path, kube, prom):
    feed(prom, kube, slots=1.0)
    controller = make(tmp_path, kube, prom, static_agent(tmp_path, 1), fallback_hpa=HPA_SLOTS)

    def broken(state):
        raise RuntimeError("model file corrupt")

    controller.policy.recommend = broken
    decision = controller.run_once()
    assert (decision.applied, decision.source) == (3, Source.FALLBACK) and "model file corrupt" in decision.reason


def tiny_policy(folder: Path) -> Path:
    """An untrained PPO saved as `rlscale train` saves one: enough to exercise LearnedPolicy live."""
    from stable_baselines3 import PPO

    from rlscale.policies.actions import ActionMap

    actions = ActionMap("delta", 2, 1, 16)
    names = ObservationBuilder().names

    class Spaces(gym.Env):
        observation_space = gym.spaces.Box(0.0, 1000.0, (len(names),), np.float32)
        action_space = gym.spaces.Discrete(actions.n)

    PPO("MlpPolicy", Spaces(), n_steps=64, seed=0, device="cpu").save(folder / "model.zip")
    meta = {"format": 1, "algo": "ppo", "continuous": False, "n_actions": actions.n, "normalize_obs": False,
            "env_kwargs": {"action_mode": "delta", "max_delta": 2, "min_replicas": 1, "max_replicas": 16},
            "observation": names}  # fmt: skip
    (folder / "policy.json").write_text(json.dumps(meta))
    return folder


@pytest.mark.slow
def test_a_trained_policy_runs_live_on_the_environments_observation(tmp_path, kube, prom):
    feed(prom, kube, slots=0.8)
    controller = make(tmp_path, kube, prom, str(tiny_policy(tmp_path)))
    assert controller.observe is controller.policy.observe
    decision = controller.run_once()
    assert decision.source is Source.POLICY and 1 <= decision.applied <= 4


def test_status_server_serves_metrics_and_health(tmp_path, kube, prom):
    controller = make(tmp_path, kube, prom, HPA_SLOTS)
    healthy = [True]
    server = StatusServer(controller.telemetry.registry, lambda: healthy[0], 0, "127.0.0.1")
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert requests.get(f"{base}/healthz", timeout=2).status_code == 200
        assert "rlscale_controller_is_leader" in requests.get(f"{base}/metrics", timeout=2).text
        healthy[0] = False
        assert requests.get(f"{base}/healthz", timeout=2).status_code == 503
    finally:
        server.close()


def test_run_loops_renews_and_releases_the_lease(tmp_path, kube, prom):
    feed(prom, kube, slots=1.0)
    controller = make(tmp_path, kube, prom, HPA_SLOTS, sync_period_s=0.05,
                      leader_election={"enabled": True, "lease_duration_s": 2, "renew_period_s": 1})  # fmt: skip
    assert controller.run(max_syncs=3) == 3
    assert kube.replicas == 3 and len(kube.patches) == 1  # 2 -> 3, then the HPA holds (2 pods report at 111%)
    assert lease_holder(kube) is None  # released on the way out


# ---- the command -------------------------------------------------------------------------------------------------


def cli(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rlscale", "controller", *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)  # fmt: skip


def test_cli_help_reads_like_the_domain():
    out = subprocess.run([sys.executable, "-m", "rlscale", "controller", "--help"], cwd=ROOT, capture_output=True,
                         text=True, env={"COLUMNS": "200", "PATH": ""})  # fmt: skip
    assert out.returncode == 0
    for flag in ("--policy", "--namespace", "--deployment", "--dry-run", "--prometheus-url", "--scrape",
                 "--kubeconfig", "--sync-period-s", "--config"):  # fmt: skip
        assert flag in out.stdout
    assert "deployments/scale" in out.stdout


def test_cli_bad_policy_is_a_clear_error_before_any_request(kube, prom):
    proc = cli("--policy", "models/typo", "--api-url", kube.url, "--prometheus-url", prom.url)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "error: policy: 'models/typo' is not models:/" in err
    assert kube.requests == []


def test_cli_runs_logs_json_decisions_and_stops_cleanly_on_sigterm(kube, prom):
    feed(prom, kube, slots=1.0)
    proc = cli("--policy", HPA_SLOTS, "--api-url", kube.url, "--prometheus-url", prom.url, "--sync-period-s", "0.2",
               "--listen-port", "0")  # fmt: skip
    lines: list[dict] = []
    try:
        for line in proc.stderr:
            lines.append(json.loads(line))
            if lines[-1].get("event") == "decision":
                break
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)[1], None
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    decision = lines[-1]
    assert (decision["current"], decision["applied"], decision["action"]) == (2, 3, "scaled")
    assert "controller stopped after" in rest and "released" in rest
    assert lease_holder(kube) is None


def test_the_controller_drives_the_emulated_cluster_by_scraping_its_pods(tmp_path):
    """The emulator (rlscale.emulator) as the cluster: its API server, its pods' pages, its fleet simulator."""
    emulator = pytest.importorskip("rlscale.emulator")
    with emulator.Emulator(ROOT / "envs" / "steady.yaml", speed=1.0) as emu:
        metrics = {"source": "scrape", "scrape_port": emu.metrics_port, "device_port": emu.device_port}
        body = {"policy": static_agent(tmp_path, 2), "listen_port": None, "sync_period_s": 0.2, "metrics": metrics}
        path = tmp_path / "controller.yaml"
        path.write_text(yaml.safe_dump({"kind": "ControllerConfig", "spec": body}))
        controller = Controller.from_config(load_controller_config(path), api_url=emu.api_url)
        assert controller.run(max_syncs=2) == 2
        with emu.lock:
            assert emu.sim.fleet.desired == 2
    text = generate_latest(controller.telemetry.registry).decode()
    assert 'rlscale_controller_decisions_total{outcome="scale_down",source="policy"} 1.0' in text

"""End to end (issue 6, section 3): the unmodified controller on an emulated cluster, reading a real Prometheus.

One run, shared by the tests below: ``envs/load-step.yaml`` in the emulator (``rlscale.emulator.Emulator``) at
``SPEED``× real time; Debian's ``prometheus`` scraping the emulated pods (every 15 simulated seconds, so 15/SPEED
wall seconds); and ``rlscale controller`` in a subprocess, as deployed, with the small trained policy of
``tests/data/policy/`` and ``--clock-speed SPEED``, talking to the emulator's Kubernetes API and to Prometheus.
Prometheus is stopped across the end of the load step, when the policy would scale down, and restarted on the
same port and storage. The fleet's clock starts when the controller first reads fresh metrics, so the run is
compared with the simulator from simulated time 0. The tests then check that the controller scaled up under the
step and back down after it; that each logged decision is what the policy makes of the logged observation, and
that the same policy in the simulator behaves alike; and that it held while Prometheus was down and resumed after.

Prometheus 2.42 picks up discovered targets every 5 wall seconds (fixed), 125 simulated seconds here: a new pod,
and every pod after a restart, goes unscraped that long (the controller sees partial metrics, and holds).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from rlscale.emulator import Emulator, prometheus_config
from rlscale.scenario import load_scenario
from rlscale.simulation import run_scenario
from tests.skips import NO_PROMETHEUS

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "envs" / "load-step.yaml"
POLICY = ROOT / "tests" / "data" / "policy"
SPEED = 25.0  # simulated seconds per wall second: 45 simulated minutes in 108 s
SCRAPE_S = 15.0  # simulated seconds between Prometheus scrapes, as in the simulator's metrics pipeline
STEP_START_S, STEP_END_S = 600.0, 1800.0  # the load step of envs/load-step.yaml
OUTAGE_S = (1740.0, 2040.0)  # Prometheus down across the step's end, when a policy would scale down
TIMEOUT_S = 30.0  # wall seconds for any one process to start or stop
HARD_LIMIT = ["timeout", "--kill-after=10", "300"]  # every subprocess dies within 5 minutes, whatever happens here
DISCOVERY_WALL_S = 5.0  # Prometheus 2.42 applies discovered targets every 5 wall s (fixed): 125 simulated s here

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("prometheus") is None, reason=NO_PROMETHEUS),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prometheus:
    """A real Prometheus scraping the emulator's targets file; stopped and started again on the same port and
    storage."""

    def __init__(self, folder: Path, targets_file: Path, speed: float) -> None:
        interval = SCRAPE_S / speed
        self.config = folder / "prometheus.yml"
        self.config.write_text(prometheus_config(targets_file, interval, None, interval, interval))
        self.storage, self.log = folder / "tsdb", folder / "prometheus.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(
                [*HARD_LIMIT, "prometheus", f"--config.file={self.config}", f"--storage.tsdb.path={self.storage}",
                 f"--web.listen-address=127.0.0.1:{self.port}"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited with {self.proc.returncode}:\n{self.tail()}")
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                if response.status == 200:
                    return
            time.sleep(0.05)
        raise AssertionError(f"prometheus not ready within {TIMEOUT_S:g} s:\n{self.tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            _end(self.proc)

    def tail(self) -> str:
        return "\n".join(self.log.read_text().splitlines()[-20:])


def _end(proc: subprocess.Popen) -> None:
    """SIGTERM the process (its session), then SIGKILL if it has not exited within TIMEOUT_S."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=TIMEOUT_S)


@dataclass
class Run:
    """What the emulated run left: replica counts over simulated time, the controller's decisions (each tagged
    with the emulator's simulated time when it was logged) and when Prometheus was down."""

    timeline: list[tuple[float, int, int]] = field(default_factory=list)  # (sim s, spec.replicas, ready pods)
    decisions: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    other_lines: list[str] = field(default_factory=list)
    outage: tuple[float, float] = (float("nan"), float("nan"))  # sim s: Prometheus gone .. ready again
    max_lag_s: float = 0.0
    wall_s: float = 0.0
    returncode: int | None = None

    def desired(self, start: float = -np.inf, end: float = np.inf) -> list[int]:
        return [d for t, d, _ in self.timeline if start <= t < end]

    def log(self) -> str:
        lines = [json.dumps({"sim_s": round(t, 1), **d}) for t, d in self.decisions[-15:]]
        return "\n".join(lines + self.other_lines[-10:])


def _read_lines(stream, emu: Emulator, run: Run) -> None:
    for line in stream:
        try:
            record = json.loads(line)
        except ValueError:
            run.other_lines.append(line.rstrip())
            continue
        if isinstance(record, dict) and record.get("event") == "decision":
            run.decisions.append((emu.now_s, record))
        else:
            run.other_lines.append(line.rstrip())


def _wait_for_metrics(run: Run, controller: subprocess.Popen) -> None:
    """Until the controller has made a decision on fresh metrics (Prometheus has found and scraped the pods)."""
    deadline = time.monotonic() + 2 * TIMEOUT_S
    while not any(d["metrics"] != "unavailable" for _, d in list(run.decisions)):
        assert controller.poll() is None, f"the controller exited with {controller.returncode}:\n{run.log()}"
        assert time.monotonic() < deadline, f"no decision on fresh metrics within {2 * TIMEOUT_S:g} s:\n{run.log()}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Run:
    """The emulated run (about 2 minutes of wall time): emulator, Prometheus, the controller command."""
    folder = tmp_path_factory.mktemp("e2e")
    scenario = load_scenario(SCENARIO)
    assert [s for s, _ in scenario.workload.arrival.steps][1:] == [STEP_START_S, STEP_END_S]
    out, started = Run(), time.monotonic()
    with contextlib.ExitStack() as stack:
        # the fleet's clock stands still until the controller reads metrics, so both start at simulated time 0,
        # as the policy does in the simulator
        emu = stack.enter_context(Emulator(scenario, speed=0, targets_file=folder / "targets.json"))
        prometheus = Prometheus(folder, emu.targets_file, SPEED)
        stack.callback(prometheus.stop)
        prometheus.start()
        config = folder / "controller.yaml"
        config.write_text(yaml.safe_dump({"apiVersion": "rlscale/v1", "kind": "ControllerConfig", "spec": {
            "policy": str(POLICY), "sync_period_s": SCRAPE_S, "listen_port": 0,
            "metrics": {"source": "prometheus", "prometheus_url": prometheus.url, "timeout_s": 2},
            # simulated seconds: a 10 s renew deadline would be 0.4 wall s, less than a slow sync on a busy CI box
            "leader_election": {"enabled": True, "lease_duration_s": 60, "renew_period_s": 5},
        }}))  # fmt: skip
        controller = subprocess.Popen(
            [*HARD_LIMIT, sys.executable, "-m", "rlscale", "controller", "--config", str(config),
             "--api-url", emu.api_url, "--clock-speed", str(SPEED)],
            cwd=ROOT, text=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        )  # fmt: skip
        stack.callback(_end, controller)
        reader = threading.Thread(target=_read_lines, args=(controller.stderr, emu, out), daemon=True)
        reader.start()
        _wait_for_metrics(out, controller)
        emu.driver.speed = SPEED
        emu.driver.start()
        deadline = time.monotonic() + scenario.duration_s / SPEED + 2 * TIMEOUT_S
        down_at = None
        while (now := emu.now_s) < scenario.duration_s:
            snapshot = emu.snapshot()
            out.timeline.append((now, snapshot.replicas.desired, snapshot.replicas.ready))
            out.max_lag_s = max(out.max_lag_s, snapshot.lag_s)
            assert emu.error is None, f"the emulated fleet failed: {emu.error!r}"
            assert controller.poll() is None, f"the controller exited with {controller.returncode}:\n{out.log()}"
            assert time.monotonic() < deadline, f"the run took too long (at {now:.0f} simulated s)"
            if down_at is None and now >= OUTAGE_S[0]:
                prometheus.stop()
                down_at = emu.now_s
            elif down_at is not None and now >= OUTAGE_S[1] and prometheus.proc.poll() is not None:
                prometheus.start()
                out.outage = (down_at, emu.now_s)
            time.sleep(0.2)
        _end(controller)
        out.returncode = controller.returncode
        reader.join(timeout=TIMEOUT_S)
    out.wall_s = time.monotonic() - started
    return out


# ---- (a) it scales up under the load step and back down after it ---------------------------------------------


def test_the_run_kept_pace(run):
    """Sanity: the controller decided from before the step, the emulator kept up, and it stopped cleanly."""
    assert run.decisions and run.decisions[0][0] < STEP_START_S - 60, run.log()
    assert run.max_lag_s < SCRAPE_S, f"the emulated fleet fell {run.max_lag_s:.0f} simulated s behind"
    assert run.returncode == 0, run.log()
    syncs = (run.timeline[-1][0] - run.decisions[0][0]) / SCRAPE_S
    assert len(run.decisions) >= 0.8 * syncs, f"{len(run.decisions)} decisions in {syncs:.0f} sync periods"


def test_scales_up_under_the_load_step_and_back_down_after_it(run):
    before = max(run.desired(end=STEP_START_S))
    peak = max(run.desired(STEP_START_S, STEP_END_S))
    last = run.desired()[-1]
    summary = f"spec.replicas: before the step {before}, peak in the step {peak}, at the end {last}"
    assert peak > before, f"no scale-up under the load step ({summary})"
    assert last < peak and last <= before + 1, f"no scale-down after the load step ({summary})"


# ---- (b) its decisions are the environment's policy's ---------------------------------------------------------


@pytest.fixture(scope="module")
def policy():
    from rlscale.policies.learned import LearnedPolicy

    return LearnedPolicy(str(POLICY))


def test_every_decision_is_the_policys_answer_to_its_observation(run, policy):
    """Replaying each logged observation through the policy gives exactly the replicas logged before safety."""
    observed = [d for _, d in run.decisions if d.get("observation") is not None]
    assert len(observed) >= 100, run.log()
    assert observed[0]["features"] == policy.observe.names
    obs = np.array([d["observation"] for d in observed], dtype=np.float32)
    actions = policy.predict(obs)
    replayed = [policy.actions.replicas(int(a), d["current"]) for a, d in zip(actions, observed, strict=True)]
    mismatches = [(d["policy"], r) for d, r in zip(observed, replayed, strict=True) if d["policy"] != r]
    assert not mismatches, f"{len(mismatches)} of {len(observed)} decisions differ (logged, replayed): {mismatches[:5]}"


class Recorder:
    """The policy under ``run_scenario``, remembering (simulated time, spec.replicas, recommendation)."""

    def __init__(self, policy) -> None:
        self.policy, self.sync_period_s, self.calls = policy, policy.sync_period_s, []

    def recommend(self, state):
        desired = self.policy.recommend(state)
        self.calls.append((state.now_s, state.spec_replicas, desired))
        return desired


def test_the_simulator_runs_the_same_policy_alike(run, policy):
    """Looser: in the simulator (the environment's loop, same scenario and seed) the policy peaks within one pod
    of the controller and first scales up within two simulated minutes of it."""
    policy.reset()
    recorder = Recorder(policy)
    run_scenario(load_scenario(SCENARIO), autoscaler=recorder)
    sim_peak = max(max(d, n) for _, n, d in recorder.calls)
    sim_up = next(t for t, n, d in recorder.calls if d > n)
    live_peak = max(run.desired())
    live_up = next(t for t, d in run.decisions if d["applied"] > d["current"])
    assert abs(live_peak - sim_peak) <= 1, f"peak: controller {live_peak}, simulator {sim_peak}"
    assert abs(live_up - sim_up) <= 120, f"first scale-up at {live_up:.0f} s live, {sim_up:.0f} s in the simulator"


# ---- (c) it holds while Prometheus is down, and resumes after ------------------------------------------------


def test_holds_while_prometheus_is_down_and_resumes_after(run):
    down, up = run.outage
    assert up - down >= 0.9 * (OUTAGE_S[1] - OUTAGE_S[0]), f"Prometheus was not stopped as planned: {run.outage}"
    margin = SCRAPE_S  # a sync in flight when Prometheus stopped may still have read it
    during = [d for t, d in run.decisions if down + margin <= t <= up]
    assert len(during) >= 10, run.log()
    for d in during:
        assert (d["metrics"], d["source"], d["held"]) == ("unavailable", "hold", True), d
        assert d["reason"].startswith(f"hold at {d['current']}; metrics unavailable: prometheus at "), d["reason"]
        assert d["applied"] == d["current"]
    held = run.desired(down, up)
    assert all(b >= a for a, b in pairwise(held)), f"scaled down while Prometheus was down: {held}"
    after = [(t, d) for t, d in run.decisions if t > up]
    resumed = next((t for t, d in after if d["metrics"] != "unavailable"), None)
    limit = DISCOVERY_WALL_S * SPEED + 3 * SCRAPE_S  # Prometheus finds the pods again, scrapes; the next syncs
    assert resumed is not None and resumed - up <= limit, (
        f"no fresh metrics {limit:g} s after the restart:\n{run.log()}"
    )
    assert any(d["source"] == "policy" for _, d in after)

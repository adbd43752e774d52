"""``rlscale loadtest``: the plan and its limits, a run against ``rlscale emulate`` over HTTP and gRPC (every
planned request sent once, at its time, answered as the simulated pod answers), the folder's layouts, a dry run,
and Ctrl-C keeping what was measured."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from rlscale.loadtest.plan import LoadTestPlan, check_limits
from rlscale.loadtest.results import Gauges, MeasuredRequests, load_points
from rlscale.request_log import REQUEST_COLUMNS
from rlscale.scenario import ScenarioConfig
from rlscale.serving.step_time import RooflineStepModel
from rlscale.specs import load_hardware, load_model
from rlscale.timeline import COLUMNS
from tests.loadtest_helpers import emulate

SPEED = 5.0
PROMPT, OUTPUT = 200, 20  # fixed lengths: every prefill is the 256 bucket


def scenario_file(tmp: Path, steps: list[list[float]], duration_s: float) -> Path:
    path = tmp / "ladder.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "ladder",
                "pod": {"model": "llama2-7b", "hardware": "v5e-8", "per_device_batch_size": 4},
                "workload": {
                    "arrival": {"process": "step", "steps": steps},
                    "lengths": {"kind": "fixed", "prompt_tokens": PROMPT, "output_tokens": OUTPUT},
                },
                "duration_s": duration_s,
                "seed": 3,
            }
        )
    )
    return path


def loadtest(scenario: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "rlscale", "loadtest", "--scenario", str(scenario), "--max-rate", "20",
        "--max-duration", "600", "--time-scale", str(SPEED), "--scrape-interval", "2", "--interval", "5",
        "--out", str(out), *extra,
    ]  # fmt: skip


def test_plan_is_the_simulators_draw_in_segments_within_limits() -> None:
    sc = ScenarioConfig.model_validate(
        {"workload": {"arrival": {"process": "step", "steps": [[0, 2.0], [30, 8.0]]}}, "duration_s": 50, "seed": 1}
    )
    plan = LoadTestPlan.of(sc)
    assert [(s.start_s, s.end_s) for s in plan.segments] == [(0, 30), (30, 50)]
    counts = [np.sum((plan.times_s >= s.start_s) & (plan.times_s < s.end_s)) for s in plan.segments]
    assert [s.rate_per_s for s in plan.segments] == [counts[0] / 30, counts[1] / 20]
    assert plan.peak_rate_per_s() >= 8 * 0.5  # the second step's 10 s windows hold ~80 arrivals
    check_limits(plan, max_rate_per_s=100, max_duration_s=50)
    with pytest.raises(ValueError, match="over --max-rate 3"):
        check_limits(plan, max_rate_per_s=3, max_duration_s=100)
    with pytest.raises(ValueError, match="over --max-duration 40"):
        check_limits(plan, max_rate_per_s=100, max_duration_s=40)
    poisson = ScenarioConfig.model_validate({"duration_s": 150})
    assert [(s.start_s, s.end_s) for s in LoadTestPlan.of(poisson).segments] == [(0, 60), (60, 120), (120, 150)]


def test_dry_run_prints_the_plan_and_sends_nothing(tmp_path: Path) -> None:
    scenario = scenario_file(tmp_path, [[0, 2.0], [10, 4.0]], 20)
    run = subprocess.run(loadtest(scenario, tmp_path / "out", "--url", "http://127.0.0.1:9", "--dry-run"),
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "dry run: nothing sent" in run.stdout and "limits: 20 req/s peak, 600 s" in run.stdout
    assert not (tmp_path / "out").exists()
    refused = subprocess.run(loadtest(scenario, tmp_path / "out", "--url", "http://127.0.0.1:9", "--max-rate", "1"),
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert refused.returncode == 2 and "over --max-rate 1" in refused.stderr


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_loadtest_against_the_emulator(tmp_path: Path, protocol: str) -> None:
    scenario = scenario_file(tmp_path, [[0, 2.0], [10, 4.0]], 20)
    out = tmp_path / "out"
    with emulate(scenario, SPEED, tmp_path) as served:
        target = ["--url", served.http_url] if protocol == "http" else ["--grpc", served.grpc_target]
        metrics = [arg for url in served.metrics_urls for arg in ("--metrics-url", url)]
        run = subprocess.run(loadtest(scenario, out, *target, *metrics), capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    plan = np.loadtxt(out / "plan.csv", delimiter=",", skiprows=1, ndmin=2)
    with (out / "requests.csv").open() as f:
        reader = csv.reader(f)
        assert tuple(next(reader)) == tuple(REQUEST_COLUMNS)  # the simulator's columns
    measured = MeasuredRequests.read(out)
    assert len(measured.arrival_s) == len(plan) and (measured.outcome == "completed").all()
    assert (measured.tokens == OUTPUT).all() and (measured.prompt_tokens == PROMPT).all()
    # open loop: each sent at its planned time (the dispatcher is late by milliseconds at most)
    assert np.abs(np.sort(measured.arrival_s) - plan[:, 0]).max() < 0.05 * SPEED
    pod = yaml.safe_load((out / "scenario.yaml").read_text())["pod"]
    sm = RooflineStepModel.for_deployment(load_model("llama2-7b"), load_hardware("v5e-8"), ScenarioConfig(pod=pod).pod)
    prefill_s = sm.prefill_ms(256) / 1e3
    ttft = measured.ttft_s()
    assert ttft.min() >= prefill_s  # no answer before its prefill could end
    assert np.median(ttft) < prefill_s + sm.decode_ms(32, 32 * 2048) / 1e3 + 0.05  # at most a step's wait, light load
    with (out / "timeline.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == COLUMNS  # 5 s rows over the 20 s and the answers after
    assert len(rows) == np.ceil(measured.done_s.max() / 5)
    assert sum(int(r["arrivals"]) for r in rows) == len(plan) and rows[0]["desired"] == ""
    gauges = Gauges.read(out)
    assert len(gauges.t_s) >= 8  # every 2 s over 20 s and the drain
    assert np.nanmax(gauges.slots_used) > 0 and np.nanmin(gauges.hbm_used_frac) > 0.3  # 32 slots of 2048 tokens
    summary = json.loads((out / "summary.json").read_text())
    assert summary["completed"] == len(plan) and summary["engine"]["locust"]["JetStream E2E"]["requests"] == len(plan)
    first, second = np.sum(plan[:, 0] < 10) / 10, np.sum(plan[:, 0] >= 10) / 10  # planned rates of the two steps
    assert [p.rate_per_s for p in load_points(out)] == pytest.approx([first, second])


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_keeps_what_was_measured(tmp_path: Path) -> None:
    scenario = scenario_file(tmp_path, [[0, 4.0]], 300)  # 60 s of wall time at 5x: stopped after 4
    out = tmp_path / "out"
    with emulate(scenario, SPEED, tmp_path) as served:
        child = subprocess.Popen(loadtest(scenario, out, "--url", served.http_url), stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)  # fmt: skip
        time.sleep(6)
        child.send_signal(signal.SIGINT)
        output, _ = child.communicate(timeout=60)
    assert child.returncode == 0, output
    assert "stopping" in output
    measured = MeasuredRequests.read(out)
    assert 0 < len(measured.arrival_s) < 300 * 4 * 0.5  # sent until the stop, not the whole plan
    assert (measured.outcome == "completed").sum() > 10
    assert set(measured.outcome) <= {"completed", "unfinished"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["engine"]["stopped"] is True and summary["arrived"] == len(measured.arrival_s)

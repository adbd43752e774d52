"""Whole runs: determinism from the seed, and the command line as a user meets it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rlscale.scenario import ScenarioConfig, load_scenario
from rlscale.simulation import run_scenario

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rlscale", *args], capture_output=True, text=True, cwd=ROOT)


def short(seed: int) -> ScenarioConfig:
    return load_scenario(ROOT / "envs" / "single-pod.yaml").model_copy(update={"duration_s": 120.0, "seed": seed})


def test_same_seed_same_run():
    a, b = run_scenario(short(3)), run_scenario(short(3))
    assert a.kpis == b.kpis
    assert a.timeline == b.timeline
    assert run_scenario(short(4)).kpis != a.kpis


def test_single_pod_serves_the_offered_load():
    kpis = run_scenario(short(0)).kpis
    assert kpis.failed == 0
    assert kpis.throughput_req_per_s == pytest.approx(5.0, rel=0.15)  # Poisson(5/s) over 2 min
    assert kpis.slo_attainment > 0.99


def test_perf_prints_json_with_ms():
    out = cli("perf", "--model", "llama2-7b", "--hardware", "v5e-8", "--phase", "prefill", "--prompt", "2048")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["ms"] == pytest.approx(78.2, rel=0.05)
    out = cli(
        "perf", "--model", "llama2-7b", "--hardware", "h200", "--phase", "decode", "--batch", "32", "--ctx", "4096"
    )
    assert json.loads(out.stdout)["ms"] == pytest.approx(20.31, rel=0.03)  # measured on an H200


@pytest.mark.slow
def test_simulate_smoke(tmp_path):
    out = cli("simulate", "--duration", "180", "--rate", "3", "--json", "--out", str(tmp_path / "run"))
    assert out.returncode == 0, out.stderr
    kpis = json.loads(out.stdout)
    assert kpis["arrived"] == kpis["completed"] + kpis["failed"] + kpis["in_flight"]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["scenario"]["workload"]["arrival"]["rate_per_s"] == 3
    assert len((tmp_path / "run" / "timeline.csv").read_text().splitlines()) == 1 + 3  # header + 3 minutes
    assert (tmp_path / "run" / "timeline.png").stat().st_size > 10_000


def test_calibrate_smoke(tmp_path):
    out = cli("calibrate", "--report", str(tmp_path / "cal.md"), "--plot", str(tmp_path / "cal.png"))
    assert out.returncode == 0, out.stderr
    assert "tpu-v5e" in (tmp_path / "cal.md").read_text()
    assert (tmp_path / "cal.png").stat().st_size > 10_000


def test_bad_input_is_refused_with_the_field_named(tmp_path):
    out = cli("perf", "--model", "no-such-model")
    assert out.returncode == 2 and "unknown model 'no-such-model'" in out.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("pod: {per_device_batch_sise: 4}\n")
    out = cli("simulate", "--scenario", str(bad))
    assert out.returncode == 2 and "pod.per_device_batch_sise: Extra inputs are not permitted" in out.stderr
    out = cli("simulate", "--model", "llama2-70b", "--hardware", "v5e-4", "--duration", "1", "--out", str(tmp_path))
    assert out.returncode == 2 and "does not fit in HBM" in out.stderr

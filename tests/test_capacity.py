"""``rlscale capacity``: the knee, the HBM arithmetic, the manifests, a short sweep and the command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from rlscale.hpa.spec import HPASpec
from rlscale.kpis import SLO
from rlscale.planning import capacity as cap
from rlscale.scenario import load_scenario

SLO_2S = SLO(2.0, 0.2)


def point(rate: float, ttft99: float, tpot99: float = 0.05, failed: int = 0, backlog: float = 0.0) -> cap.LoadPoint:
    q = {"p50": ttft99 / 4, "p90": ttft99 / 2, "p99": ttft99}
    t = {"p50": tpot99 / 2, "p90": tpot99 / 1.5, "p99": tpot99}
    return cap.LoadPoint(rate, rate, 200 * rate, q, t, failed, backlog, rate / 10, 0.9)


def test_knee_is_the_last_pass_before_the_first_break() -> None:
    points = [point(8, 0.5), point(2, 0.1), point(10, 2.5), point(9, 1.9), point(12, 1.0)]  # 12 passes after a break
    assert cap.knee(points, SLO_2S).rate_per_s == 9
    assert cap.knee([point(1, 0.1, tpot99=0.3)], SLO_2S) is None  # TPOT breaks too
    assert cap.knee([point(1, 0.1, failed=1)], SLO_2S) is None  # so does a failure
    assert cap.knee([], SLO_2S) is None


def test_hbm_arithmetic_of_llama2_7b_on_v5e_8() -> None:
    sc = load_scenario("single-pod")  # llama2-7b, v5e-8 (8 x 16 GB), max_target_length 2048, 5% workspace
    weights, kv_per_token = 13_476_831_232, 2 * 32 * 4096 * 2  # bytes; K and V, 32 layers x 4096, bf16
    fit = cap.hbm_fit(sc, 4)
    assert fit.slots == 32
    assert fit.static_bytes == pytest.approx(weights + 0.05 * 128e9 + 32 * 2048 * kv_per_token)  # 54.2 GB
    assert fit.fits and not cap.hbm_fit(sc, 16).fits
    # (0.95 x 128 GB - weights) / (8 chips x 2048 tokens x 512 KiB) = 12.6
    assert cap.largest_batch(sc) == 12
    assert cap.hbm_fit(sc, 12).fits and not cap.hbm_fit(sc, 13).fits


def test_manifests_carry_the_knee_values_and_skip_a_flat_metric() -> None:
    c = cap.BatchCapacity(11, cap.HBMFit(88, 1e11, 1.28e11, True))
    c.idle, c.knee = point(1, 0.1, backlog=0.0), point(10, 1.7, backlog=1.62)
    manifests = cap.hpa_manifests(c, deployment="jetstream", max_replicas=8)
    assert set(manifests) == {"hpa-prefill-backlog", "hpa-slots-used"}  # HBM reads 0.9 idle and at the knee
    assert "does not move with load" in cap.targets(c)["hbm_used_frac"]
    backlog = manifests["hpa-prefill-backlog"]
    assert backlog["spec"]["metrics"][0]["pods"]["target"] == {"type": "AverageValue", "averageValue": "1.62"}
    assert manifests["hpa-slots-used"]["spec"]["metrics"][0]["pods"]["target"]["averageValue"] == "1"
    for manifest in manifests.values():
        kubernetes_validate.validate(manifest, "1.35.0", strict=True)
        spec = HPASpec.from_manifest(manifest)  # the simulator's HPA reads it as it reads agents/hpa-*.yaml
        assert spec.max_replicas == 8
    assert cap.quantity(0.0) == "0.001" and cap.quantity(1234.5) == "1230"


def test_sweep_brackets_the_knee() -> None:
    sc = load_scenario("single-pod")
    c = cap.sweep(sc, 4, duration_s=120.0, warmup_s=20.0, tolerance=0.05)
    assert c.knee is not None and c.knee.within(SLO_2S)
    above = [p for p in c.points if p.rate_per_s > c.knee.rate_per_s]
    assert above and not min(above, key=lambda p: p.rate_per_s).within(SLO_2S)
    # the knee is where the queue builds: a pod of 32 slots is nearly full there, and holds work in its backlog
    assert 0.6 < c.knee.slots_used <= 1.0
    assert c.knee.throughput_req_per_s == pytest.approx(c.knee.rate_per_s, rel=0.15)


def test_capacity_command(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "rlscale", "capacity", "--batch-sizes", "4,16", "--duration", "60", "--warmup", "10",
         "--out", str(tmp_path), "--deployment", "jetstream"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "does not fit in HBM" in run.stdout  # batch 16: 157 GB
    assert "best: per-device batch 4" in run.stdout
    record = json.loads((tmp_path / "capacity.json").read_text())
    assert [b["per_device_batch_size"] for b in record["batches"]] == [4, 16]
    assert (tmp_path / "knee-b4.png").stat().st_size > 10_000
    manifest = yaml.safe_load((tmp_path / "b4" / "hpa-slots-used.yaml").read_text())
    assert manifest["spec"]["scaleTargetRef"]["name"] == "jetstream"
    assert not (tmp_path / "b16").exists()

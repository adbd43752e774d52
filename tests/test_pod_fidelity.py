"""The pod's last fidelity knobs, measured against a real interleaved JetStream-like server on an H200: the held
prefill capacity, a modelled insert, the launch mode of prefill, and decode over all preallocated slots.

Expected numbers are derived by hand from the specs: llama2-7b has 32 layers, 524,288 KV bytes per token and
6.607e9 matmul parameters per token; an H200 reads 4.8e12 B/s at the fitted mem_efficiency 0.91739
(4.403e12 B/s achieved) and does 989.4e12 FLOP/s.
"""

from __future__ import annotations

import json
import math

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from rlscale.cli import app
from rlscale.serving import calibration as cal
from rlscale.serving.config import PodConfig
from rlscale.serving.step_time import RooflineStepModel
from rlscale.specs import PrefillLaunch, load_hardware, load_model
from rlscale.specs.catalog import fitted_step_models

MS = 1e-3
H200_BYTES_PER_MS = 4.8e12 * 0.91739 / 1e3  # achieved HBM bandwidth of the h200 host, bytes per ms
KV_BYTES_PER_TOKEN = 524_288  # llama2-7b: 2 x 32 layers x 32 KV heads x 128 x 2 bytes


def value(pod, name, **labels):
    return pod.metrics.registry.get_sample_value(name, {"id": pod.name, **labels})


# ---- held prefill results -------------------------------------------------------
@pytest.mark.parametrize(("limit", "held"), [(2, 2), (None, 3)])
def test_full_slots_hold_at_most_the_configured_prefilled_requests(harness, limit, held):
    h = harness(hardware="v5e-4", per_device_batch_size=1, max_held_prefills=limit)  # 4 slots
    reqs = [h.submit_at(0.0, 200, 1000) for _ in range(10)]
    h.run(1.0)
    pod = h.pod
    assert pod.config.held_prefill_capacity == held
    assert pod.active_slots == 4 and len(pod.held) == held and len(pod.prefill_backlog) == 10 - 4 - held
    assert all(not math.isnan(r.first_token_s) for r in reqs[: 4 + held])
    assert math.isnan(reqs[4 + held].prefill_start_s)  # the next prefill waits for a slot
    assert value(pod, "jetstream_generate_backlog_size", idx="0") == 1
    assert value(pod, "jetstream_transfer_backlog_size", idx="0") == 1
    assert value(pod, "num_requests_waiting") == (10 - 4 - held) + 2


def test_held_capacity_must_be_positive():
    with pytest.raises(ValidationError, match="max_held_prefills"):
        PodConfig(max_held_prefills=0)


# ---- insert -------------------------------------------------------------------
def test_insert_is_priced_as_a_copy_of_the_padded_bucket_plus_a_fixed_overhead(harness):
    h = harness(hardware="h200")
    r = h.submit_at(0.0, 1000, 11)  # pads to the 1024 bucket
    h.run(10.0)
    # read + write of 1024 tokens x 524,288 B = 1,073,741,824 B at 4.403e12 B/s = 0.24384 ms, + 0.8 ms fixed
    insert_ms = 0.8 + 2 * 1024 * KV_BYTES_PER_TOKEN / H200_BYTES_PER_MS
    assert insert_ms == pytest.approx(1.04384, abs=1e-5)
    assert r.insert_s - r.first_token_s == pytest.approx(insert_ms * MS, rel=1e-9)
    sm = h.pod.step_model
    step_ms = sm.decode_ms(h.pod.slots, h.pod.slots * 2048)
    assert r.finish_s == pytest.approx((sm.prefill_ms(1024) + insert_ms + 10 * step_ms) * MS, rel=1e-9)


@pytest.mark.parametrize(("kv_mode", "kv_tokens_after_insert"), [("preallocated", 0), ("paged", 15 * 64)])
def test_gauges_see_a_running_insert_as_held(harness, kv_mode, kv_tokens_after_insert):
    """Inserts take no event of their own, but a scrape during one reads what JetStream would: the result still
    held, no slot taken, the next prompt still in the prefill backlog, HBM holding the prefill result."""
    h = harness(hardware="h200", kv_mode=kv_mode)
    idle_bytes = h.pod.hbm_used_bytes()
    h.submit_at(0.0, 900, 100)  # pads to 1024; paged: 15 pages of 64 tokens once in its slot
    h.submit_at(0.0, 900, 100)
    sm, pod = h.pod.step_model, h.pod
    p, ins = sm.prefill_ms(1024) * MS, sm.insert_ms(1024) * MS
    h.run(p + ins / 2)  # the first result's insert runs
    assert value(pod, "jetstream_prefill_backlog_size") == 1
    assert value(pod, "jetstream_generate_backlog_size", idx="0") == 1
    assert value(pod, "jetstream_slots_used_percentage", idx="0") == 0.0
    assert pod.hbm_used_bytes() == pytest.approx(idle_bytes + 1024 * KV_BYTES_PER_TOKEN)
    h.run(p + ins + p / 2)  # the second prefill runs
    assert value(pod, "jetstream_prefill_backlog_size") == 0
    assert value(pod, "jetstream_generate_backlog_size", idx="0") == 0
    assert value(pod, "jetstream_slots_used_percentage", idx="0") == pytest.approx(1 / pod.slots)
    expected = idle_bytes + (kv_tokens_after_insert + 1024) * KV_BYTES_PER_TOKEN
    assert pod.hbm_used_bytes() == pytest.approx(expected)


def test_an_explicit_insert_ms_overrides_the_model(harness):
    free, fixed = harness(hardware="h200", insert_ms=0.0), harness(hardware="h200", insert_ms=2.5)
    a, b = free.submit_at(0.0, 1000, 11), fixed.submit_at(0.0, 1000, 11)
    free.run(10.0)
    fixed.run(10.0)
    assert a.insert_s == a.first_token_s  # old scenario files with insert_ms: 0 mean the same
    assert b.insert_s - b.first_token_s == pytest.approx(2.5 * MS, rel=1e-9)


def test_an_arrival_during_an_insert_waits_for_it(harness):
    h = harness(hardware="h200")
    first = h.submit_at(0.0, 1000, 100)
    p = h.pod.step_model.prefill_ms(1024) * MS
    late = h.submit_at(p + 0.5 * MS, 100, 10)  # half-way through the ~1.04 ms insert
    h.run(10.0)
    assert late.prefill_start_s == pytest.approx(first.insert_s, rel=1e-12)  # no decode step in between


def test_held_requests_are_inserted_one_after_another(harness):
    h = harness(hardware="v5e-4", per_device_batch_size=1)  # 4 slots
    first = [h.submit_at(0.0, 200, 20) for _ in range(4)]
    waiting = [h.submit_at(0.0, 200, 20) for _ in range(3)]
    h.run(30.0)
    bytes_per_ms = 4 * 819e9 * h.pod.hardware.step_model.mem_efficiency / 1e3  # 4 chips of 819 GB/s, as fitted
    insert_s = (0.8 + 2 * 256 * KV_BYTES_PER_TOKEN / bytes_per_ms) * MS  # the 256 bucket: 0.8 + 0.115 ms
    done_at = max(r.finish_s for r in first)
    assert [r.insert_s for r in waiting] == pytest.approx([done_at + k * insert_s for k in (1, 2, 3)], rel=1e-9)


# ---- prefill launch -----------------------------------------------------------------
def h200_model(**config) -> RooflineStepModel:
    return RooflineStepModel.for_deployment(load_model("llama2-7b"), load_hardware("h200"), PodConfig(**config))


def test_the_fitted_entries_say_how_their_prefill_was_launched():
    fitted = fitted_step_models()
    assert fitted["nvidia-h200"]["prefill_launch"] == fitted["nvidia-h100"]["prefill_launch"] == "eager"
    assert fitted["tpu-v5e"]["prefill_launch"] == "compiled"  # JetStream's published figures
    assert cal.fit_set("nvidia-h200").params.prefill_launch is PrefillLaunch.EAGER


def test_compiled_prefill_on_an_eager_calibration_uses_the_decode_launch_overhead():
    fit = load_hardware("h200").step_model
    compiled, eager = h200_model(hardware="h200"), h200_model(hardware="h200", prefill_launch="eager")
    saved_ms = 32 * (fit.prefill_overhead_ms_per_layer - fit.decode_overhead_ms_per_layer)  # 32 x 0.10045
    assert saved_ms == pytest.approx(3.2144, abs=1e-4)
    for tokens in (16, 32, 64, 128):
        assert eager.prefill_ms(tokens) - compiled.prefill_ms(tokens) == pytest.approx(saved_ms, rel=1e-9)
        assert 4.5 < compiled.prefill_ms(tokens) < 5.5  # ~5 ms measured compiled on the H200, not ~8
    assert eager.prefill_ms(64) == pytest.approx(RooflineStepModel(eager.model, eager.hardware).prefill_ms(64))


def test_an_explicit_prefill_overhead_overrides_the_launch_mode():
    fit = load_hardware("h200").step_model
    tuned = h200_model(hardware="h200", prefill_overhead_ms_per_layer=0.1)
    eager = h200_model(hardware="h200", prefill_launch="eager")
    assert eager.prefill_ms(64) - tuned.prefill_ms(64) == pytest.approx(32 * (fit.prefill_overhead_ms_per_layer - 0.1))


def test_a_compiled_calibration_is_used_as_fitted():
    v5e = RooflineStepModel(load_model("llama2-7b"), load_hardware("v5e-8"))
    deployed = RooflineStepModel.for_deployment(v5e.model, v5e.hardware, PodConfig())
    assert deployed.prefill_ms(64) == v5e.prefill_ms(64)


def test_perf_prices_prefill_as_the_pod_does():
    runner = CliRunner()
    args = ["perf", "--phase", "prefill", "--prompt", "64", "-H", "h200"]
    compiled = json.loads(runner.invoke(app, args).stdout)
    eager = json.loads(runner.invoke(app, [*args, "--prefill-launch", "eager"]).stdout)
    assert compiled["prefill_launch"] == "compiled" and eager["prefill_launch"] == "eager"
    assert compiled["ms"] == pytest.approx(h200_model(hardware="h200").prefill_ms(64), abs=1e-4)
    assert eager["ms"] - compiled["ms"] == pytest.approx(3.2144, abs=2e-4)


def test_the_calibration_report_says_how_prefill_was_launched():
    lines = cal.report_lines(cal.fit_set("nvidia-h200"))
    assert any("prefill points measured under eager launch" in line for line in lines)


# ---- decode over all slots -----------------------------------------------------------
def compute_bound_pod(harness, kv_mode: str):
    """512 slots of llama2-7b on one H200 with a 256-token cache: the batch's matmuls (2 x 6.607e9 x 512 FLOP at
    989.4e12 x 0.74397 FLOP/s = 9.19 ms) outweigh the 13.2 GB weight read (3.00 ms)."""
    h = harness(
        hardware="h200",
        per_device_batch_size=512,
        max_prefill_predict_length=128,
        max_target_length=256,
        kv_mode=kv_mode,
    )
    r = h.submit_at(0.0, 100, 11)  # one active slot for 10 decode steps
    h.run(10.0)
    return h.pod, r


def test_a_preallocated_step_computes_every_slot(harness):
    pod, r = compute_bound_pod(harness, "preallocated")
    fit = pod.hardware.step_model
    weights_ms = 13_214_154_752 / H200_BYTES_PER_MS  # 3.00 ms
    compute_ms = 2 * 6.607e9 * 512 / (989.4e12 * fit.decode_matmul_efficiency) * 1e3  # 9.19 ms
    matmul_ms = (weights_ms**4 + compute_ms**4) ** 0.25  # the smooth max (p = 4): 9.22 ms, where batch 1 pays 3.00
    step_ms = (r.finish_s - r.insert_s) / 10 / MS
    assert step_ms - pod.step_model.decode_ms(1, 512 * 256) == pytest.approx(matmul_ms - weights_ms, rel=1e-3)
    assert step_ms == pytest.approx(pod.step_model.decode_ms(512, 512 * 256), rel=1e-9)  # as with all slots active


def test_a_paged_step_computes_the_active_batch(harness):
    pod, r = compute_bound_pod(harness, "paged")
    a, b = pod.step_model.decode_affine(1)
    steps_ms = sum(a + b * (100 + 1 + j) for j in range(10))
    assert r.finish_s - r.insert_s == pytest.approx(steps_ms * MS, rel=1e-9)
    assert steps_ms / 10 < 6.0  # weight-bound at batch 1: 3.0 ms read + 1.8 ms launch

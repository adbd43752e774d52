"""The step-time model against measured (H100/H200) and published (v5e-8) step times."""

from __future__ import annotations

import numpy as np
import pytest

from rlscale.serving import calibration as cal
from rlscale.serving.buckets import padded_length, prefill_buckets, take_nearest_length
from rlscale.serving.step_time import RooflineStepModel
from rlscale.specs import load_hardware, load_model
from rlscale.specs.catalog import fitted_step_models
from tests.skips import NO_SHARED


def catalog_model(model: str, hardware: str) -> RooflineStepModel:
    return RooflineStepModel(load_model(model), load_hardware(hardware))


@pytest.mark.parametrize(("device", "host"), [("h200", "h200"), ("h100", "h100")])
def test_catalog_fit_reproduces_measured_gpu_steps(device, host):
    sm = catalog_model("llama2-7b", host)
    errors = {"decode": [], "prefill": []}
    for p in cal.gpu_profile_points(device):
        errors[p.phase].append(abs(p.predict(sm) / p.ms - 1))
    assert max(errors["decode"]) < 0.04 and np.mean(errors["decode"]) < 0.02
    # eager prefill below ~512 tokens is launch-noise-bound (data README); 10% holds everywhere
    assert max(errors["prefill"]) < 0.10 and np.mean(errors["prefill"]) < 0.04


def test_v5e_matches_published_jetstream_figures():
    sm = catalog_model("llama2-7b", "v5e-8")
    published = {32: 5.7, 64: 6.2, 128: 7.7, 256: 11.6, 512: 20.2, 1024: 38.4, 2048: 78.2}
    for tokens, ms in published.items():
        assert sm.prefill_ms(tokens) == pytest.approx(ms, rel=0.05)
    # preallocated cache: every step reads 96 slots x 2048 tokens whatever the active batch
    for batch in (60, 96):
        assert 26.0 * 0.96 <= sm.decode_ms(batch, 96 * 2048) <= 28.0 * 1.04
    assert sm.decode_bound(96, 96 * 2048) == "memory"


def test_v5e_decode_runs_at_65_to_75_percent_of_the_hbm_roofline():
    m, hw = load_model("llama2-7b"), load_hardware("v5e-8")
    roofline_ms = (m.decode_weight_read_bytes + 96 * 2048 * m.kv_bytes_per_token) / hw.total_hbm_bytes_per_s * 1e3
    assert 0.60 < roofline_ms / catalog_model("llama2-7b", "v5e-8").decode_ms(96, 96 * 2048) < 0.75


def test_jetstream_pytorch_throughputs_within_forty_percent():
    checks = cal.throughput_checks(load_hardware("v5e-8"))
    assert len(checks) == 4
    for c in checks:
        assert abs(c.error) < 0.40, c


def test_catalog_is_what_calibrate_fits():
    """fitted.yaml must be regenerated when the data or the model change (`rlscale calibrate --write`)."""
    stored = fitted_step_models()
    for name in cal.calibration_sets():
        fitted = cal.fit_set(name).params.model_dump()
        for key, value in stored[name].items():
            if isinstance(value, float):
                assert fitted[key] == pytest.approx(value, rel=0.01, abs=1e-4), (name, key)


def test_decode_is_affine_in_kv_tokens():
    sm = catalog_model("llama3-8b", "h100")
    a, b = sm.decode_affine(16)
    assert sm.decode_ms(16, 0) == pytest.approx(a)
    assert sm.decode_ms(16, 50_000) - sm.decode_ms(16, 10_000) == pytest.approx(40_000 * b)


def test_shape_terms_transfer_to_other_models():
    """Memory-bound KV cost scales with KV bytes per token; weight streaming with weight bytes."""
    h100 = load_hardware("h100")
    mha, gqa = RooflineStepModel(load_model("llama2-7b"), h100), RooflineStepModel(load_model("llama3-8b"), h100)
    assert mha.decode_affine(8)[1] / gqa.decode_affine(8)[1] == pytest.approx(4.0, rel=1e-6)
    m7, m13 = load_model("llama2-7b"), load_model("llama2-13b")
    sm13 = RooflineStepModel(m13, h100)
    overhead = h100.step_model.decode_overhead_ms_per_layer
    weights_7 = mha.decode_affine(1)[0] - 32 * overhead
    weights_13 = sm13.decode_affine(1)[0] - 40 * overhead
    assert weights_13 / weights_7 == pytest.approx(m13.decode_weight_read_bytes / m7.decode_weight_read_bytes, rel=0.02)


def test_prefill_becomes_compute_bound_and_superlinear():
    sm = catalog_model("llama2-7b", "h200")
    t = {n: sm.prefill_ms(n) for n in (64, 2048, 4096, 8192)}
    assert t[64] < 10  # weight streaming + launch overhead
    assert t[8192] / t[4096] > 2.0  # attention's quadratic term


def test_jetstream_prefill_buckets():
    assert prefill_buckets(1024) == (16, 32, 64, 128, 256, 512, 1024)
    assert take_nearest_length(prefill_buckets(1024), 1) == 16
    assert padded_length(17, 1024) == 32 and padded_length(1024, 1024) == 1024
    assert padded_length(5000, 1024) == 1024  # longer prompts are truncated to the largest bucket


def test_calibration_data_are_the_shared_profile():
    """The packaged copy of shared/data/gpu_profile is byte-identical where the shared folder exists."""
    from importlib import resources
    from pathlib import Path

    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "gpu_profile" / "step_times.csv"
    if not shared.exists():
        pytest.skip(NO_SHARED)
    packaged = resources.files("rlscale.specs").joinpath("calibration", "gpu_profile_llama2_7b.csv").read_bytes()
    assert packaged == shared.read_bytes()

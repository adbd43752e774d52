"""Model and hardware specs: derived sizes against published numbers, and loading errors."""

from __future__ import annotations

import json

import pytest

from rlscale.specs import SpecError, load_hardware, load_model

# Published parameter counts (model cards); tolerance covers rounding in the cards.
PUBLISHED_PARAMS = {
    "llama2-7b": 6.74e9,
    "llama2-13b": 13.02e9,
    "llama2-70b": 68.98e9,
    "gemma-7b": 8.54e9,
    "llama3-8b": 8.03e9,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_parameter_count_matches_model_card(name):
    assert load_model(name).total_params == pytest.approx(PUBLISHED_PARAMS[name], rel=0.005)


def test_llama2_7b_matches_gpu_profile_meta():
    m = load_model("llama2-7b")
    assert m.kv_bytes_per_token == 524_288  # 2 x 32 layers x 32 heads x 128 x 2 bytes (meta.json)
    assert m.weight_bytes == pytest.approx(13_476_823_040, rel=1e-5)


def test_gqa_shrinks_kv_by_group_size():
    assert load_model("llama2-70b").kv_bytes_per_token == 2 * 80 * 8 * 128 * 2
    assert load_model("llama3-8b").kv_bytes_per_token * 4 == load_model("llama2-7b").kv_bytes_per_token


def test_real_config_json_with_extra_fields_loads(tmp_path):
    config = {
        "architectures": ["LlamaForCausalLM"],
        "rope_theta": 500000.0,
        "bos_token_id": 128000,
        "num_hidden_layers": 32,
        "hidden_size": 4096,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "intermediate_size": 14336,
        "vocab_size": 128256,
        "torch_dtype": "bfloat16",
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    m = load_model(str(path))
    assert m.name == "config" and m.total_params == load_model("llama3-8b").total_params


def test_model_error_names_the_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "num_hidden_layers: -1\nhidden_size: 4096\nnum_attention_heads: 32\n"
        "intermediate_size: 11008\nvocab_size: 32000\n"
    )
    with pytest.raises(SpecError, match=r"bad.yaml: num_hidden_layers: .*greater than 0"):
        load_model(str(path))


def test_unknown_names_list_the_catalog():
    with pytest.raises(SpecError, match="llama2-7b"):
        load_model("llama9")
    with pytest.raises(SpecError, match="v5e-8"):
        load_hardware("v9z-1")


def test_published_tpu_figures():
    v5e, v5p, v6e = load_hardware("v5e-8"), load_hardware("v5p-8"), load_hardware("v6e-8")
    assert (v5e.peak_bf16_flops_per_s, v5e.hbm_bytes, v5e.hbm_bytes_per_s) == (197e12, 16e9, 819e9)
    assert (v5p.peak_bf16_flops_per_s, v5p.hbm_bytes, v5p.hbm_bytes_per_s) == (459e12, 95e9, 2765e9)
    assert (v6e.peak_bf16_flops_per_s, v6e.hbm_bytes, v6e.hbm_bytes_per_s) == (918e12, 32e9, 1640e9)
    assert v5e.total_hbm_bytes == 8 * 16e9 and load_hardware("v5e-4").chips_per_host == 4


def test_hardware_file_can_extend_a_catalog_chip(tmp_path):
    path = tmp_path / "v5e-16.yaml"
    path.write_text("chip: tpu-v5e\nchips_per_host: 16\n")
    hw = load_hardware(str(path))
    assert hw.name == "v5e-16" and hw.total_flops_per_s == 16 * 197e12
    assert hw.step_model == load_hardware("v5e-8").step_model


def test_hardware_unknown_key_is_named(tmp_path):
    path = tmp_path / "hw.yaml"
    path.write_text("chip: tpu-v5e\nchips_per_host: 4\nhbm_bandwith: 1.0\n")
    with pytest.raises(SpecError, match="hbm_bandwith: Extra inputs are not permitted"):
        load_hardware(str(path))

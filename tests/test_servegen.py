"""ServeGen client-pool data: readers of the original files (errors at file:line), the bundle, the scenario fields
(the train/held-out split) and the wiring into the request stream."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import yaml

from rlscale.scenario import ScenarioConfig, apply_overrides, load_scenario, on_split
from rlscale.specs.catalog import SpecError
from rlscale.workload.build import client_pool, request_stream, scaled_workload
from rlscale.workload.servegen import (
    BUNDLED_SERVICES,
    QUANTILE_GRID,
    load_bundle,
    load_service,
    quantile_table,
    read_dataset_json,
    read_service_folder,
    read_trace_csv,
    save_bundle,
)
from rlscale.workload.specs import ServeGenSpec
from rlscale.workload.traces import TraceError
from tests.servegen_files import IDLE, windows_for, write_dataset, write_trace

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "servegen" / "language"


@pytest.fixture
def pool(tmp_path: Path) -> Path:
    """14 days, three clients: 0 busy every day (Gamma), 1 on days 1-10 only (Weibull), 2 busiest but on the
    held-out days only; client 0 has lengths in its first 6-hour window."""
    write_trace(tmp_path, 0, windows_for(14, lambda i: (0.5, "Gamma", 0.5, 4.0)))
    write_trace(tmp_path, 1, windows_for(14, lambda i: (0.2, "Weibull", 0.7, 3.0) if i < 1440 else IDLE))
    write_trace(tmp_path, 2, windows_for(14, lambda i: (5.0, "Gamma", 2.0, 0.1) if i >= 1440 else IDLE))
    write_dataset(tmp_path, 0, {0: ({7: 0.25, 9: 0.75}, {3: 1.0})})
    return tmp_path


def scenario(service: Path | str, lengths: dict | None = None, **arrival) -> ScenarioConfig:
    workload = {"arrival": {"process": "servegen", "service": str(service), **arrival}}
    return ScenarioConfig.model_validate({"workload": workload | ({"lengths": lengths} if lengths else {})})


# ---- readers ---------------------------------------------------------------------------------------
def test_folder_is_read_sparse_and_sorted_by_window(pool):
    service = read_service_folder(pool)
    assert service.client_ids.tolist() == [0, 1, 2] and service.n_windows == 2016 and service.days == 14
    assert service.client.size == 2016 + 1440 + 576  # idle windows are not stored
    assert np.all(np.diff(service.window) >= 0)
    first = (service.window == 0) & (service.client == 0)
    assert service.rate_per_s[first].tolist() == [0.5] and service.shape[first].tolist() == [0.5]
    assert service.cv[first].tolist() == [pytest.approx(2**0.5)]
    assert service.length_client.tolist() == [0] and service.length_window.tolist() == [0]
    assert set(service.prompt_quantiles[0].tolist()) == {7, 9} and set(service.output_quantiles[0].tolist()) == {3}


def test_quantile_table_is_the_smallest_count_reaching_each_probability():
    table = quantile_table({9: 0.75, 7: 0.25})  # order in the literal does not matter
    assert table[QUANTILE_GRID <= 0.25].tolist() == [7] * 26  # F(7) = 0.25 reaches 0, 0.01, ..., 0.25
    assert table[QUANTILE_GRID > 0.25].tolist() == [9] * (QUANTILE_GRID.size - 26)
    assert quantile_table({1: 0.5, 4: 0.499, 1000: 0.001})[-3:].tolist() == [4, 1000, 1000]  # p .999, .9999, 1


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("600,0.5,1.4,Gamma,0.5", r"row.csv:2: expected 6 fields"),
        ("700,0.5,1.4,Gamma,0.5,4", r"row.csv:2: window start must be 600"),
        ("600,fast,1.4,Gamma,0.5,4", r"row.csv:2: rate must be a number, got 'fast'"),
        ("600,-1,1.4,Gamma,0.5,4", r"row.csv:2: rate must be a finite number >= 0"),
        ("600,0.5,1.4,Lognormal,0.5,4", r"row.csv:2: distribution must be Gamma, Weibull or empty"),
        ("600,0.5,1.4,,0,0", r"row.csv:2: rate 0.5 req/s but no fitted distribution"),
        ("600,0,0,Gamma,0.5,4", r"row.csv:2: a fitted Gamma in an idle window"),
        ("600,0.5,1.4,Weibull,0,4", r"row.csv:2: Weibull shape and scale must be > 0"),
    ],
)
def test_malformed_trace_rows_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "row.csv"
    path.write_text(f"0,0.5,1.4142135623730951,Gamma,0.5,4.0\n{line}\n")
    with pytest.raises(TraceError, match=message):
        read_trace_csv(path)


DATASET = """{{
  "0": {{
    "input_tokens": "{{7: 0.25, 9: 0.75}}",
    "output_tokens": "{{3: 1.0}}"
  }},
  "{key}": {{
    "input_tokens": "{prompt}",
    "output_tokens": "{{3: 1.0}}"
  }}
}}
"""


@pytest.mark.parametrize(
    ("key", "prompt", "message"),
    [
        ("21600", "{7: 0.5, 9: 0.6}", r"d.json:7: input_tokens probabilities sum to 1.1"),
        ("21600", "{7: -0.5, 9: 1.5}", r"d.json:7: input_tokens\[7\] must be a probability >= 0"),
        ("21600", "[7, 9]", r"d.json:7: input_tokens must be a dict"),
        ("21600", "{7: 0.5, 9: 0.5", r"d.json:7: input_tokens is not a Python dict literal"),
        ("21600", "{__import__('os'): 1.0}", r"d.json:7: input_tokens is not a Python dict literal"),
        ("21600", "{7.5: 1.0}", r"d.json:7: input_tokens keys must be token counts"),
        ("100", "{7: 1.0}", r"d.json:6: window start '100' must be a multiple of 21600"),
    ],
)
def test_malformed_datasets_name_file_and_line(tmp_path, key, prompt, message):
    path = tmp_path / "d.json"
    path.write_text(DATASET.format(key=key, prompt=prompt))
    with pytest.raises(TraceError, match=message):
        read_dataset_json(path, n_windows=2016)


def test_invalid_json_names_its_line(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('{\n  "0": {\n    "input_tokens": "{}",\n  }\n}\n')  # a trailing comma
    with pytest.raises(TraceError, match=r"d.json:4: invalid JSON"):
        read_dataset_json(path, n_windows=2016)


def test_an_empty_pdf_means_no_data_for_that_window(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(DATASET.format(key="21600", prompt="{}"))
    assert [w for w, _, _ in read_dataset_json(path, n_windows=2016)] == [0]


def test_folders_must_agree_on_their_windows(tmp_path):
    write_trace(tmp_path, 0, [IDLE] * 3)
    write_trace(tmp_path, 4, [IDLE] * 2)
    with pytest.raises(TraceError, match=r"chunk-4-trace.csv: 2 windows, but chunk-0-trace.csv has 3"):
        read_service_folder(tmp_path)
    with pytest.raises(TraceError, match="no ServeGen chunk"):
        read_service_folder(tmp_path / "nothing")


# ---- the bundle -------------------------------------------------------------------------------------
def test_bundle_round_trip(pool, tmp_path):
    service = read_service_folder(pool)
    save_bundle(service, tmp_path / "b.npz")
    back = load_bundle(tmp_path / "b.npz")
    for key in ("client_ids", "client", "window", "family", "length_client", "prompt_quantiles", "output_quantiles"):
        assert np.array_equal(getattr(back, key), getattr(service, key)), key
    assert np.array_equal(back.rate_per_s, service.rate_per_s.astype(np.float32))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(TraceError, match=r"junk.npz: not a ServeGen bundle"):
        load_bundle(tmp_path / "junk.npz")


def test_bundled_services_need_nothing_outside_the_package():
    data = resources.files("rlscale.workload").joinpath("data")
    sizes = [data.joinpath(f"servegen-{name}.npz").stat().st_size for name in BUNDLED_SERVICES]
    assert sum(sizes) <= 10e6
    assert data.joinpath("LICENSE-ServeGen").read_text().split()[:4] == ["Apache", "License", "Version", "2.0,"]
    clients = {name: load_service(name).client_ids.size for name in BUNDLED_SERVICES}
    assert clients == {"m-large": 162, "m-mid": 109, "m-small": 43}  # ServeGen's README
    small = load_service("m-small")
    assert small.n_windows == 2016 and small.length_client.size == 1125
    # ServeGen's README: m-small's total rate is 1174.4 req/s on average over the 14 days
    assert small.rate_per_s.sum() / small.n_windows == pytest.approx(1174.40, abs=0.01)


@pytest.mark.skipif(not SHARED.is_dir(), reason="the shared copy of ServeGen's files is not here")
def test_bundle_matches_the_original_files():
    original = read_service_folder(SHARED / "m-small")
    bundled = load_service("m-small")
    assert np.array_equal(original.client, bundled.client) and np.array_equal(original.window, bundled.window)
    assert np.allclose(original.rate_per_s, bundled.rate_per_s, rtol=1e-7)
    assert np.array_equal(original.prompt_quantiles, bundled.prompt_quantiles)


# ---- scenario fields ------------------------------------------------------------------------------
def test_split_keeps_held_out_days_out_of_training(pool):
    assert scenario(pool).workload.arrival.day_range == (1, 10)
    assert scenario(pool, split="heldout").workload.arrival.day_range == (11, 14)
    with pytest.raises(ValueError, match=r"days: \[10, 11\] must be an ordered range within split 'train'"):
        scenario(pool, days=[10, 11])
    with pytest.raises(ValueError, match=r"within split 'heldout' \(days 11-14\)"):
        scenario(pool, split="heldout", days=[3, 3])
    with pytest.raises(ValueError, match=r"duration_s: 90000 s runs past the 86400 s of days \(2, 2\)"):
        ScenarioConfig.model_validate(
            {"workload": {"arrival": {"process": "servegen", "service": str(pool), "days": [2, 2]}}, "duration_s": 9e4}
        )


def test_on_split_gives_the_same_scenario_on_the_other_days(pool):
    day = scenario(pool, days=[2, 3], rate_scale=0.5).model_copy(update={"duration_s": 2 * 86400.0})
    held = on_split(day, "heldout")
    assert (held.workload.arrival.split, held.workload.arrival.day_range) == ("heldout", (11, 12))
    assert held.workload.arrival.rate_scale == 0.5 and held.duration_s == 2 * 86400
    assert on_split(held, "train").workload.arrival.day_range == (1, 2)
    assert on_split(day, "train") == day
    week = scenario(pool, days=[1, 7]).model_copy(update={"duration_s": 7 * 86400.0})
    assert on_split(week, "heldout").workload.arrival.day_range == (11, 14)  # all the held-out days there are
    assert on_split(week, "heldout").duration_s == 4 * 86400
    assert on_split(week, "heldout", days=(13, 13)).duration_s == 86400
    with pytest.raises(ValueError, match="no production days"):
        on_split(ScenarioConfig(), "heldout")


def test_clients_by_list_and_top_ranked_on_training_days_only(pool):
    assert client_pool(scenario(pool, clients=[2, 0]).workload.arrival).window_rates()[0] == 0.5  # 2 idle on day 1
    top = scenario(pool, clients={"top": 1}, split="heldout").workload.arrival
    assert client_pool(top).window_rates()[0] == pytest.approx(0.5)  # client 0, not the held-out days' busiest, 2
    with pytest.raises(SpecError, match=r"workload.arrival.servegen: .*no client\(s\) \[7\]"):
        load_scenario_text(pool.parent / "s.yaml", {"process": "servegen", "service": str(pool), "clients": [7]})
    with pytest.raises(ValueError, match=r"clients.top: .* has 3 clients, not 4"):
        scenario(pool, clients={"top": 4})


def load_scenario_text(path: Path, arrival: dict) -> ScenarioConfig:
    path.write_text(yaml.safe_dump({"workload": {"arrival": arrival}, "duration_s": 600}))
    return load_scenario(path)


def test_a_missing_service_is_named(tmp_path):
    with pytest.raises(SpecError, match=r"s.yaml: workload.arrival.servegen: .*nowhere: not a bundled ServeGen"):
        load_scenario_text(tmp_path / "s.yaml", {"process": "servegen", "service": str(tmp_path / "nowhere")})


def test_rate_scale_from_randomisation_and_the_command_line(pool):
    sc = scenario(pool, rate_scale=0.5)
    assert scaled_workload(sc.workload, 3.0).arrival.rate_scale == 1.5
    assert apply_overrides(sc, rate_scale=2.0).workload.arrival.rate_scale == 2.0
    with pytest.raises(ValueError, match="--rate only applies to a Poisson scenario"):
        apply_overrides(sc, rate_per_s=3.0)


def test_request_stream_plays_the_pool_with_lengths_from_the_data_or_the_fallback(pool):
    fixed = {"kind": "fixed", "prompt_tokens": 100, "output_tokens": 50}
    sc = scenario(pool, lengths=fixed, clients=[0, 1], days=[1, 1])
    assert isinstance(sc.workload.arrival, ServeGenSpec)
    requests = list(request_stream(sc.workload, np.random.SeedSequence(3), 7200.0))
    assert requests and all(0 <= t < 7200 for t, _, _ in requests)
    # client 0's first 6 hours come from its own pdf, client 1 (no dataset) from the fallback
    assert {(p, o) for _, p, o in requests} == {(7, 3), (8, 3), (9, 3), (100, 50)}

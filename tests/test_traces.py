"""Trace readers and replay: the bundled Azure trace, Mooncake JSONL, errors that point at a line, reshaping."""

from __future__ import annotations

import csv
import math
from collections import Counter
from importlib import resources

import numpy as np
import pytest

from rlscale.workload.lengths import fit_lognormal
from rlscale.workload.traces import (
    TraceError,
    TraceReplay,
    TraceRequest,
    load_trace,
    read_azure_csv,
    read_mooncake_jsonl,
    trace_lengths,
)

AZURE_HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"


@pytest.fixture(scope="module")
def azure():
    return load_trace("azure-conv")


@pytest.fixture(scope="module")
def azure_rows():
    """The bundled CSV read with the csv module alone, as the reference."""
    path = resources.files("rlscale.workload").joinpath("data", "AzureLLMInferenceTrace_conv.csv")
    return list(csv.DictReader(path.read_text().splitlines()))


def test_bundled_azure_trace(azure, azure_rows):
    assert len(azure) == len(azure_rows) == 19_366
    arrivals = np.array([r.arrival_s for r in azure])
    assert arrivals[0] == 0.0
    assert np.all(np.diff(arrivals) >= 0)
    # 18:15:46.6805900 → 19:14:08.4025270 and → 18:15:50.9951690
    assert arrivals[-1] == pytest.approx(58 * 60 + 21.721937, abs=1e-6)
    assert arrivals[1] == pytest.approx(4.314579, abs=1e-6)
    assert np.mean([r.prompt_tokens for r in azure]) == pytest.approx(
        np.mean([int(r["ContextTokens"]) for r in azure_rows])
    )
    assert np.mean([r.output_tokens for r in azure]) == pytest.approx(
        np.mean([int(r["GeneratedTokens"]) for r in azure_rows])
    )
    assert azure[0] == TraceRequest(0.0, 374, 44)
    lengths = trace_lengths(azure)
    assert np.array_equal(lengths.prompts, [int(r["ContextTokens"]) for r in azure_rows])
    assert np.array_equal(lengths.outputs, [int(r["GeneratedTokens"]) for r in azure_rows])


def test_bundled_name_and_path_agree(azure):
    path = resources.files("rlscale.workload").joinpath("data", "AzureLLMInferenceTrace_conv.csv")
    assert read_azure_csv("azure-conv") == azure
    assert load_trace(str(path)) == azure


def test_azure_csv_variants(tmp_path):
    """Columns in any order, extra columns, 7 fractional digits, a zone suffix, a trailing blank line."""
    path = tmp_path / "trace.csv"
    path.write_text(
        "GeneratedTokens,TIMESTAMP,Extra,ContextTokens\n"
        "5,2024-05-10 23:59:59.9999999+00:00,x,100\n"
        "6,2024-05-11 00:00:01.5000000+00:00,y,200\n"
        "7,2024-05-11T01:00:01Z,z,300\n"
        "\n"
    )
    trace = load_trace(path)
    assert [r[1:] for r in trace] == [(100, 5), (200, 6), (300, 7)]
    assert [r.arrival_s for r in trace] == pytest.approx([0.0, 1.5000001, 3601.0000001], abs=1e-9)


def test_mooncake_jsonl(tmp_path):
    path = tmp_path / "mooncake.jsonl"
    path.write_text(
        '{"timestamp": 27482, "input_length": 6955, "output_length": 52, "hash_ids": [46, 47, 48]}\n'
        "\n"
        '{"timestamp": 30535, "input_length": 6472, "output_length": 26, "hash_ids": [46, 47]}\n'
        '{"timestamp": 30535.5, "input_length": 8.0, "output_length": 1}\n'
    )
    trace = load_trace(path)
    assert trace == read_mooncake_jsonl(path)
    assert trace == (
        TraceRequest(0.0, 6955, 52),
        TraceRequest(pytest.approx(3.053), 6472, 26),
        TraceRequest(pytest.approx(3.0535), 8, 1),
    )


def test_format_from_extension_or_argument(tmp_path):
    line = '{"timestamp": 0, "input_length": 3, "output_length": 4}\n'
    (tmp_path / "t.json").write_text(line)
    (tmp_path / "t.txt").write_text(line)
    (tmp_path / "t.log").write_text(AZURE_HEADER + "2023-11-16 18:15:46.6805900,3,4\n")
    assert load_trace(tmp_path / "t.json") == (TraceRequest(0.0, 3, 4),)
    assert load_trace(tmp_path / "t.txt", format="mooncake") == (TraceRequest(0.0, 3, 4),)
    assert load_trace(tmp_path / "t.log", format="azure") == (TraceRequest(0.0, 3, 4),)
    with pytest.raises(TraceError, match=r"t\.txt: cannot tell the trace format"):
        load_trace(tmp_path / "t.txt")
    with pytest.raises(TraceError, match="format must be"):
        load_trace(tmp_path / "t.txt", format="sharegpt")  # type: ignore[arg-type]
    with pytest.raises(TraceError, match=r"nowhere\.csv: cannot read"):
        load_trace(tmp_path / "nowhere.csv")


ROW = "2023-11-16 18:15:46.6805900,374,44\n"

BAD_CSV = [
    ("missing field", AZURE_HEADER + ROW + "2023-11-16 18:15:47.0,10\n", 3, "expected 3 fields"),
    ("word for tokens", AZURE_HEADER + "2023-11-16 18:15:46.6805900,abc,44\n", 2, "ContextTokens must be an integer"),
    ("fractional tokens", AZURE_HEADER + ROW + "2023-11-16 18:15:47.0,12.5,4\n", 3, "ContextTokens must be an integer"),
    ("zero output", AZURE_HEADER + ROW + ROW + "2023-11-16 18:15:47.0,10,0\n", 4, "GeneratedTokens must be >= 1"),
    ("negative prompt", AZURE_HEADER + "2023-11-16 18:15:46.6805900,-3,44\n", 2, "ContextTokens must be >= 1"),
    ("no timestamp", AZURE_HEADER + "yesterday,374,44\n", 2, "not a timestamp"),
    ("impossible date", AZURE_HEADER + ROW + "2023-13-45 18:15:46.68,374,44\n", 3, "not a timestamp"),
    ("backwards", AZURE_HEADER + ROW + "2023-11-16 18:15:50.0,1,1\n2023-11-16 18:15:49.0,1,1\n", 4, "backwards"),
    ("header", "TIMESTAMP,Prompt,GeneratedTokens\n" + ROW, 1, "header lacks column.* ContextTokens"),
    ("blank lines count", AZURE_HEADER + ROW + "\n\n2023-11-16 18:15:47.0,x,1\n", 5, "ContextTokens"),
]


@pytest.mark.parametrize(("content", "line", "message"), [c[1:] for c in BAD_CSV], ids=[c[0] for c in BAD_CSV])
def test_malformed_csv_names_file_and_line(tmp_path, content, line, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(TraceError, match=message) as err:
        load_trace(path)
    assert str(err.value).startswith(f"{path}:{line}: ")


GOOD = '{"timestamp": 1000, "input_length": 10, "output_length": 5}\n'

BAD_JSONL = [
    ("invalid json", GOOD + '{"timestamp": 1001, "input_length": 10\n', 2, "invalid JSON"),
    ("not an object", GOOD + "[1001, 10, 5]\n", 2, "expected a JSON object, got list"),
    ("missing field", GOOD + '{"timestamp": 1001, "input_length": 10}\n', 2, "missing field.*output_length"),
    ("word for tokens", '{"timestamp": 1, "input_length": "ten", "output_length": 5}\n', 1, "input_length must be an"),
    ("fractional tokens", GOOD + '{"timestamp": 1001, "input_length": 3.5, "output_length": 5}\n', 2, "integer"),
    ("boolean tokens", GOOD + '{"timestamp": 1001, "input_length": 3, "output_length": true}\n', 2, "integer"),
    ("zero output", GOOD + GOOD + '{"timestamp": 1001, "input_length": 3, "output_length": 0}\n', 3, ">= 1"),
    ("negative input", '{"timestamp": 1, "input_length": -4, "output_length": 5}\n', 1, "input_length must be >= 1"),
    ("timestamp text", GOOD + '{"timestamp": "soon", "input_length": 3, "output_length": 5}\n', 2, "timestamp must"),
    ("backwards", GOOD + '{"timestamp": 999, "input_length": 3, "output_length": 5}\n', 2, "backwards"),
    ("blank lines count", GOOD + "\n\n{oops}\n", 4, "invalid JSON"),
]


@pytest.mark.parametrize(("content", "line", "message"), [c[1:] for c in BAD_JSONL], ids=[c[0] for c in BAD_JSONL])
def test_malformed_jsonl_names_file_and_line(tmp_path, content, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(TraceError, match=message) as err:
        load_trace(path)
    assert str(err.value).startswith(f"{path}:{line}: ")


@pytest.mark.parametrize(("name", "content"), [("e.csv", AZURE_HEADER), ("e.csv", ""), ("e.jsonl", "\n \n")])
def test_empty_trace_is_an_error(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(TraceError, match=str(path)):
        load_trace(path)


def test_trace_error_is_a_value_error():
    assert issubclass(TraceError, ValueError)


# Replay -------------------------------------------------------------------------------------------------------------

START, DURATION = 600.0, 1200.0


def replay(trace, seed=0, until_s=math.inf, **kwargs):
    return list(TraceReplay(trace, **kwargs).times_and_lengths(np.random.default_rng(seed), until_s))


@pytest.fixture(scope="module")
def window(azure):
    """The requests of the trace in [START, START + DURATION), as (time from START, prompt, output)."""
    return [(r.arrival_s - START, r.prompt_tokens, r.output_tokens) for r in azure if START <= r.arrival_s < 1800.0]


def test_window_is_shifted_to_zero(azure, window):
    out = replay(azure, start_s=START, duration_s=DURATION)
    assert out == window
    assert len(window) > 5000


def test_time_scale_stretches_time(azure, window):
    out = replay(azure, start_s=START, duration_s=DURATION, time_scale=2.0)
    assert [t for t, _, _ in out] == pytest.approx([2 * t for t, _, _ in window])
    assert [x[1:] for x in out] == [x[1:] for x in window]
    cut = replay(azure, start_s=START, duration_s=DURATION, time_scale=2.0, until_s=DURATION)
    assert cut == out[: sum(2 * t < DURATION for t, _, _ in window)]
    assert len(cut) == pytest.approx(len(window) / 2, rel=0.15)


def assert_sorted(out):
    times = np.array([t for t, _, _ in out])
    assert np.all(np.diff(times) >= 0)


def test_rate_scale_half_thins(azure, window):
    out = replay(azure, start_s=START, duration_s=DURATION, rate_scale=0.5)
    n = len(window)
    assert abs(len(out) - n / 2) < 4 * math.sqrt(n * 0.25)
    assert_sorted(out)
    assert set(out) <= set(window)  # kept requests are unchanged


def test_rate_scale_two_doubles_exactly(azure, window):
    out = replay(azure, start_s=START, duration_s=DURATION, rate_scale=2.0)
    assert len(out) == 2 * len(window)
    assert_sorted(out)
    assert set(window) <= set(out)  # every original, at its own time
    assert Counter(x[1:] for x in out) == Counter(2 * [x[1:] for x in window])  # the length mix is the trace's


@pytest.mark.parametrize("k", [0.3, 1.7, 2.5])
def test_rate_scale_fractional(azure, window, k):
    out = replay(azure, start_s=START, duration_s=DURATION, rate_scale=k)
    n, whole, frac = len(window), math.floor(k), k - math.floor(k)
    assert abs(len(out) - k * n) < 4 * math.sqrt(n * frac * (1 - frac))  # floor(k)·n certain, plus Binomial(n, frac)
    assert_sorted(out)
    assert max(t for t, _, _ in out) < DURATION + DURATION / n
    if whole:
        assert set(window) <= set(out)


def test_copies_are_jittered_within_one_mean_gap():
    trace = [TraceRequest(0.0, 1, 1), TraceRequest(10.0, 2, 1), TraceRequest(20.0, 3, 1)]
    process = TraceReplay(trace, rate_scale=3.0, duration_s=30.0)
    assert process.mean_gap_s == pytest.approx(10.0)
    assert process.mean_rate_per_s == pytest.approx(3 * 3 / 30)
    for seed in range(20):
        out = replay(trace, seed, rate_scale=3.0, duration_s=30.0)
        assert_sorted(out)
        for i, original in enumerate(trace):
            copies = sorted(t for t, p, _ in out if p == original.prompt_tokens)
            assert len(copies) == 3 and copies[0] == original.arrival_s
            assert all(original.arrival_s < t < original.arrival_s + 10.0 for t in copies[1:]), (seed, i, copies)


def test_replay_is_seeded_and_cut_at_until(azure):
    kwargs = dict(start_s=100.0, duration_s=300.0, rate_scale=1.7)
    a, b, c = replay(azure, 1, **kwargs), replay(azure, 1, **kwargs), replay(azure, 2, **kwargs)
    assert a == b and a != c
    cut = replay(azure, 1, until_s=150.0, **kwargs)
    assert cut == [x for x in a if x[0] < 150.0]
    assert [t for t in TraceReplay(azure, **kwargs).times(np.random.default_rng(1), 150.0)] == [x[0] for x in cut]


def test_window_starts_at_start_s_not_at_first_request():
    trace = [TraceRequest(0.0, 1, 1), TraceRequest(5.0, 2, 2), TraceRequest(15.0, 3, 3)]
    assert replay(trace, start_s=4.0) == [(1.0, 2, 2), (11.0, 3, 3)]
    assert replay(trace, start_s=4.0, duration_s=5.0) == [(1.0, 2, 2)]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        (dict(time_scale=0.0), "time_scale"),
        (dict(rate_scale=-1.0), "rate_scale"),
        (dict(start_s=-1.0), "start_s"),
        (dict(duration_s=0.0), "duration_s"),
        (dict(start_s=100.0), "selects no requests"),
    ],
)
def test_replay_rejects_bad_parameters(kwargs, field):
    with pytest.raises(ValueError, match=field):
        TraceReplay([TraceRequest(0.0, 1, 1), TraceRequest(1.0, 1, 1)], **kwargs)


def test_replay_rejects_empty_or_unsorted_requests():
    with pytest.raises(ValueError, match="requests"):
        TraceReplay([])
    with pytest.raises(ValueError, match=r"sorted.*requests\[1\]"):
        TraceReplay([TraceRequest(2.0, 1, 1), TraceRequest(1.0, 1, 1)])


def test_lognormal_fit_of_azure_reproduces_the_median(azure):
    data = trace_lengths(azure)
    fit = fit_lognormal(data)
    rng = np.random.default_rng(0)
    samples = np.array([fit.sample(rng) for _ in range(20_000)])
    assert np.median(samples[:, 0]) == pytest.approx(np.median(data.prompts), rel=0.05)
    assert np.median(samples[:, 1]) == pytest.approx(np.median(data.outputs), rel=0.05)
    assert np.log(samples[:, 0]).std() == pytest.approx(np.log(data.prompts).std(), rel=0.05)
    # Why the default is not the maximum-likelihood centre: this trace is multimodal, far from lognormal.
    mle = fit_lognormal(data, method="mle")
    assert abs(mle.prompt_median / np.median(data.prompts) - 1) > 0.2

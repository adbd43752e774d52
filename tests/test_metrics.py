"""The /metrics pages: names, types, labels and buckets as JetStream and the TPU device plugin export them."""

from __future__ import annotations

import math

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import device_samples

# From jetstream/core/metrics/prometheus.py (AI-Hypercomputer/JetStream acd4f5a).
UPSTREAM_HISTOGRAMS = {
    "jetstream_queue_duration": [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0],
    "jetstream_request_input_length": [16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768],
    "jetstream_request_output_length": [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000,
                                        50000, 100000, 200000, 500000, 1000000, 2000000],
    "jetstream_time_to_first_token": [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
                                      2.5, 5.0, 7.5, 10.0],
    "jetstream_time_per_output_token": [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5],
    "jetstream_time_per_prefill_token": [0.00001, 0.00002, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002,
                                         0.005, 0.01, 0.02, 0.05, 0.1],
    "jetstream_time_per_request": [1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0],
    "jetstream_wait_time_per_request": [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0],
}  # fmt: skip
UPSTREAM_GAUGES = {
    "jetstream_prefill_backlog_size": {"id"},
    "jetstream_transfer_backlog_size": {"id", "idx"},
    "jetstream_generate_backlog_size": {"id", "idx"},
    "jetstream_slots_used_percentage": {"id", "idx"},
    "num_requests_waiting": {"id"},
    "kv_cache_utilization_perc": {"id"},
}


@pytest.fixture
def loaded_pod(harness):
    h = harness(hardware="v5e-4", per_device_batch_size=1)  # 4 slots
    for i in range(12):
        h.submit_at(0.01 * i, 100 + 50 * i, 30 + 10 * i)
    h.run(0.3)
    return h


def families(text):
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_names_types_and_labels(loaded_pod):
    fams = families(loaded_pod.pod.metrics.exposition())
    for name, labels in UPSTREAM_GAUGES.items():
        assert fams[name].type == "gauge"
        assert set(fams[name].samples[0].labels) == labels
        assert fams[name].samples[0].labels["id"] == "pod-0"
    for name in UPSTREAM_HISTOGRAMS:
        assert fams[name].type == "histogram"
    assert fams["jetstream_request_success_count"].type == "counter"
    assert {s.name for s in fams["jetstream_request_success_count"].samples} >= {
        "jetstream_request_success_count_total"
    }


def test_histogram_buckets_are_upstreams(loaded_pod):
    fams = families(loaded_pod.pod.metrics.exposition())
    for name, buckets in UPSTREAM_HISTOGRAMS.items():
        les = [float(s.labels["le"]) for s in fams[name].samples if s.name == name + "_bucket"]
        assert les == [*map(float, buckets), math.inf], name


def test_values_follow_the_pod(loaded_pod):
    h = loaded_pod
    pod, text = h.pod, h.pod.metrics.exposition()
    sample = {(s.name, s.labels.get("idx")): s.value for f in families(text).values() for s in f.samples}
    assert sample[("jetstream_slots_used_percentage", "0")] == pod.active_slots / 4
    assert 0.0 <= sample[("jetstream_slots_used_percentage", "0")] <= 1.0
    assert sample[("kv_cache_utilization_perc", None)] == 100 * pod.active_slots / 4
    assert sample[("jetstream_prefill_backlog_size", None)] == len(pod.prefill_backlog)
    prefilled = sum(not math.isnan(r.first_token_s) for r in h.requests)
    assert sample[("jetstream_time_to_first_token_count", None)] == prefilled
    assert sample[("jetstream_request_success_count_total", None)] == pod.completed
    assert sample[("jetstream_time_per_request_count", None)] == pod.completed


def test_device_plugin_gauges_per_chip(loaded_pod):
    pod = loaded_pod.pod
    fams = families(pod.metrics.device_exposition())
    assert {"memory_used", "memory_total", "duty_cycle"} <= set(fams)
    used = fams["memory_used"].samples
    assert [s.labels["accelerator_id"] for s in used] == ["0", "1", "2", "3"]  # v5e-4
    assert {s.labels["make"] for s in used} == {"cloud-tpu"}
    assert sum(device_samples(pod, "memory_used")) == pytest.approx(pod.hbm_used_bytes())
    assert device_samples(pod, "memory_total") == [16e9] * 4


def test_duty_cycle_is_busy_percent_of_the_last_window(harness):
    h = harness()
    p = (h.pod.step_model.prefill_ms(128) + h.pod.step_model.insert_ms(128)) * 1e-3
    h.submit_at(12.0, 100, 1)  # one prefill and its insert, nothing else, inside the 10-20 s window
    h.run(19.0)
    assert set(device_samples(h.pod, "duty_cycle")) == {0.0}  # the 10-20 s window is not sampled yet
    h.run(21.0)
    assert device_samples(h.pod, "duty_cycle") == pytest.approx([100 * p / 10.0] * 8)


def value(pod, name, **labels):
    return pod.metrics.registry.get_sample_value(name, {"id": pod.name, **labels})


def test_lazy_histogram_pages_like_prometheus_client():
    """Same observations, same bucket/sum/count lines as prometheus_client's own Histogram."""
    import numpy as np
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from rlscale.serving.metrics import TTFT_BUCKETS, LazyHistogram

    values = [*np.random.default_rng(0).exponential(0.3, 500).tolist(), 0.1, 10.0, 50.0]  # edges and overflow
    registry = CollectorRegistry()
    native = Histogram("jetstream_time_to_first_token", "d", ["id"], buckets=TTFT_BUCKETS, registry=registry)
    lazy = LazyHistogram("jetstream_time_to_first_token", "d", TTFT_BUCKETS)
    for i, v in enumerate(values):
        native.labels(id="p").observe(v)
        lazy.observe(v)
        if i == 250:
            lazy.family({"id": "p"})  # a scrape midway must not change the totals

    def lines(text: str) -> list[str]:
        return [
            ln for ln in text.splitlines() if ln.startswith("jetstream_time_to_first_token_") and "created" not in ln
        ]

    ours = CollectorRegistry()
    ours.register(type("C", (), {"collect": lambda self: [lazy.family({"id": "p"})]})())
    ours_lines, native_lines = lines(generate_latest(ours).decode()), lines(generate_latest(registry).decode())
    assert [ln for ln in ours_lines if "_sum" not in ln] == [ln for ln in native_lines if "_sum" not in ln]
    sums = [float(ln.split()[-1]) for ln in ours_lines + native_lines if "_sum" in ln]
    assert sums[0] == pytest.approx(sums[1], rel=1e-12)  # summation order differs

"""HBM: start-up failure, accounting in both KV modes, and OOM crash/restart."""

from __future__ import annotations

import math

import pytest

from rlscale.serving.hbm import PodStartupError
from rlscale.serving.request import RequestState
from rlscale.specs import load_model
from tests.helpers import device_samples

BPT = load_model("llama2-7b").kv_bytes_per_token
WEIGHTS = load_model("llama2-7b").weight_bytes


def device_value(pod, name):
    """A device-plugin gauge summed over the pod's chips."""
    return sum(device_samples(pod, name))


def test_weights_that_do_not_fit_fail_at_start(harness):
    with pytest.raises(PodStartupError, match=r"llama2-70b on v5e-4 does not fit in HBM: weights 13\d\.\d GB"):
        harness(model="llama2-70b", hardware="v5e-4")


def test_preallocated_cache_that_does_not_fit_fails_at_start(harness):
    # 20 x 8 = 160 slots x 2048 tokens x 0.5 MiB = 172 GB of cache on a 128 GB host
    with pytest.raises(PodStartupError, match="160 slots x 2048 tokens"):
        harness(per_device_batch_size=20)
    harness(per_device_batch_size=11)  # the MaxText default fits


def test_preallocated_hbm_is_flat_under_load(harness):
    h = harness()
    idle = WEIGHTS + 88 * 2048 * BPT + 0.05 * 128e9
    assert device_value(h.pod, "memory_used") == pytest.approx(idle)
    assert device_value(h.pod, "memory_total") == 128e9
    for _ in range(200):
        h.submit_at(0.0, 500, 800)
    h.run(2.0)
    assert h.pod.active_slots == 88 and len(h.pod.held) == 3
    # only the three waiting prefill results (512-token buckets) add to HBM
    assert device_value(h.pod, "memory_used") == pytest.approx(idle + 3 * 512 * BPT)


def test_paged_hbm_grows_with_tokens_held(harness):
    h = harness(kv_mode="paged", kv_page_tokens=64)
    idle = WEIGHTS + 0.05 * 128e9
    assert h.pod.hbm_used_bytes() == pytest.approx(idle)
    h.submit_at(0.0, 300, 1000)
    sm = h.pod.step_model
    a, b = sm.decode_affine(1)
    t_100_steps = (sm.prefill_ms(512) + sm.insert_ms(512) + sum(a + b * (301 + j) for j in range(100))) * 1e-3
    h.run(t_100_steps + 1e-9)
    assert h.pod.kv_pages() == math.ceil((300 + 100) / 64)  # prompt + tokens generated so far
    assert h.pod.hbm_used_bytes() == pytest.approx(idle + math.ceil(400 / 64) * 64 * BPT)


def tight_paged(harness, free_pages: int, **extra):
    """A paged v5e-4 pod whose HBM leaves exactly ``free_pages`` 64-token pages."""
    page_bytes = 64 * BPT
    workspace = 64e9 - WEIGHTS - free_pages * page_bytes - page_bytes / 2
    return harness(hardware="v5e-4", kv_mode="paged", hbm_workspace_fraction=workspace / 64e9, **extra)


def test_paged_oom_crashes_fails_in_flight_and_restarts_with_backoff(harness):
    h = tight_paged(harness, free_pages=20, restart_s=30.0)  # room for 1280 tokens of KV
    assert h.pod.hbm.free_pages(0) == 20
    sm = h.pod.step_model
    (a1, b1), (a2, b2) = sm.decode_affine(1), sm.decode_affine(2)
    # Both prefill and are inserted, then decode together for the short one's 9 steps, then the long one alone.
    # Running step j needs ceil((1001 + j) / 64) pages for the long one: step 280 would need a 21st.
    crash_ms = (
        sm.prefill_ms(1024)
        + sm.insert_ms(1024)
        + sm.prefill_ms(128)
        + sm.insert_ms(128)
        + sum(a2 + b2 * ((1001 + j) + (101 + j)) for j in range(9))
        + sum(a1 + b1 * (1001 + j) for j in range(9, 280))
    )
    crash_s = crash_ms * 1e-3
    victim = h.submit_at(0.0, 1000, 1000)
    short = h.submit_at(0.0, 100, 10)
    during = h.submit_at(crash_s + 1.0, 100, 10)  # backing off: refused
    after = h.submit_at(crash_s + 10.0 + 30.0 + 1.0, 100, 10)  # back-off 10 s + restart 30 s later: served
    h.run(400.0)
    assert h.pod.crashes == 1
    assert victim.state is RequestState.FAILED and victim.failure == "OOM: pod crashed"
    assert victim.finish_s == pytest.approx(crash_s, rel=1e-9)
    assert short.state is RequestState.COMPLETED
    assert during.state is RequestState.FAILED and during.failure == "pod restarting"
    assert after.state is RequestState.COMPLETED
    assert h.pod.arrived == h.pod.completed + h.pod.failed == 4
    # the restarted server exports fresh series: only `after` has completed since
    success = h.pod.metrics.registry.get_sample_value("jetstream_request_success_count_total", {"id": "pod-0"})
    assert (success, h.pod.completed) == (1, 2)


def test_crash_backoff_doubles(harness):
    h = tight_paged(harness, free_pages=20, restart_s=0.0)
    sm = h.pod.step_model
    a, b = sm.decode_affine(1)
    to_crash = (sm.prefill_ms(1024) + sm.insert_ms(1024) + sum(a + b * (1001 + j) for j in range(280))) * 1e-3
    h.submit_at(0.0, 1000, 1000)  # crashes at to_crash; back-off 10 s
    h.submit_at(to_crash + 11.0, 1000, 1000)  # served again, crashes again; back-off now 20 s
    second_crash = 2 * to_crash + 11.0
    refused = h.submit_at(second_crash + 15.0, 100, 10)
    served = h.submit_at(second_crash + 21.0, 100, 10)
    h.run(400.0)
    assert h.pod.crashes == 2
    assert refused.failure == "pod restarting"
    assert served.state is RequestState.COMPLETED

"""The orchestrator's pipeline: interleaved priority, held prefills, first token, caps, exact decode times."""

from __future__ import annotations

import math

import pytest

MS = 1e-3


def value(pod, name, **labels):
    return pod.metrics.registry.get_sample_value(name, {"id": pod.name, **labels})


def test_prefills_run_back_to_back_while_slots_are_free(harness):
    h = harness(hardware="v5e-8", per_device_batch_size=1)  # 8 slots
    reqs = [h.submit_at(0.0, 100, 50) for _ in range(4)]
    h.run(1.0)
    sm = h.pod.step_model
    p, ins = sm.prefill_ms(128) * MS, sm.insert_ms(128) * MS  # 100 tokens pad to the 128 bucket
    for i, r in enumerate(reqs):
        assert r.padded_tokens == 128
        assert r.prefill_start_s == pytest.approx(i * (p + ins))
        assert r.first_token_s == pytest.approx(i * (p + ins) + p)  # first token at prefill end
        assert r.insert_s == pytest.approx(r.first_token_s + ins)  # a free slot: inserted before the next prefill


def test_full_slots_hold_three_prefilled_requests_and_stall_prefill(harness):
    h = harness(hardware="v5e-4", per_device_batch_size=1)  # 4 slots
    reqs = [h.submit_at(0.0, 200, 1000) for _ in range(10)]
    h.run(1.0)
    pod = h.pod
    assert pod.active_slots == 4 and len(pod.held) == 3 and len(pod.prefill_backlog) == 3
    held = reqs[4:7]
    assert all(not math.isnan(r.first_token_s) and math.isnan(r.insert_s) for r in held)  # token out, no slot
    assert all(math.isnan(r.prefill_start_s) for r in reqs[7:])
    assert value(pod, "jetstream_generate_backlog_size", idx="0") == 1
    assert value(pod, "jetstream_transfer_backlog_size", idx="0") == 1
    assert value(pod, "jetstream_prefill_backlog_size") == 3
    assert value(pod, "num_requests_waiting") == 5  # the 3rd prefilled request is held by the prefill thread
    assert value(pod, "jetstream_slots_used_percentage", idx="0") == 1.0


def test_a_freed_slot_takes_a_held_request_at_once(harness):
    h = harness(hardware="v5e-4", per_device_batch_size=1)
    first = [h.submit_at(0.0, 200, 20) for _ in range(4)]
    waiting = [h.submit_at(0.0, 200, 20) for _ in range(4)]
    h.run(30.0)
    done_at = max(r.finish_s for r in first)
    assert all(r.finish_s == pytest.approx(done_at) for r in first)  # same lengths, same batch: same step
    ins = h.pod.step_model.insert_ms(256) * MS
    assert [r.insert_s for r in waiting[:3]] == pytest.approx([done_at + k * ins for k in (1, 2, 3)])
    # the 4th prefill starts when the held results have drained into slots, one insert after another
    assert waiting[3].prefill_start_s == pytest.approx(done_at + 3 * ins)


def test_decode_time_is_exact_with_a_preallocated_cache(harness):
    h = harness()  # llama2-7b on v5e-8, 88 slots, 2048-token preallocated cache
    r = h.submit_at(0.0, 300, 101)
    h.run(60.0)
    sm = h.pod.step_model
    step = sm.decode_ms(88, 88 * 2048) * MS  # every slot computed and read, active or not
    assert r.finish_s == pytest.approx((sm.prefill_ms(512) + sm.insert_ms(512)) * MS + 100 * step, rel=1e-9)
    assert r.finish_s - r.insert_s == pytest.approx(100 * step, rel=1e-9)


def test_decode_time_is_exact_with_a_paged_cache(harness):
    h = harness(kv_mode="paged")
    r = h.submit_at(0.0, 300, 101)
    h.run(60.0)
    a, b = h.pod.step_model.decode_affine(1)
    steps_ms = sum(a + b * (300 + 1 + j) for j in range(100))  # KV grows one token per step
    sm = h.pod.step_model
    assert r.finish_s == pytest.approx((sm.prefill_ms(512) + sm.insert_ms(512) + steps_ms) * MS, rel=1e-9)


def test_an_arrival_during_decode_waits_for_the_running_step(harness):
    h = harness()
    h.submit_at(0.0, 300, 1000)
    sm = h.pod.step_model
    inserted = (sm.prefill_ms(512) + sm.insert_ms(512)) * MS
    step = sm.decode_ms(88, 88 * 2048) * MS
    late = h.submit_at(inserted + 2.5 * step, 300, 10)
    h.run(60.0)
    assert late.prefill_start_s == pytest.approx(inserted + 3 * step)


def test_prompt_truncation_and_output_cap(harness):
    h = harness()
    r = h.submit_at(0.0, 3000, 5000)
    h.run(120.0)
    assert (r.prefill_tokens, r.padded_tokens) == (1024, 1024)
    assert r.target_tokens == 2048 - 1024  # max_target_length - prompt
    assert value(h.pod, "jetstream_request_output_length_sum") == 1024


def test_jetstream_ttft_excludes_the_queue_but_client_ttft_does_not(harness):
    h = harness()
    a, b = h.submit_at(0.0, 100, 5), h.submit_at(0.0, 100, 5)
    h.run(10.0)
    p, ins = h.pod.step_model.prefill_ms(128) * MS, h.pod.step_model.insert_ms(128) * MS
    assert value(h.pod, "jetstream_time_to_first_token_sum") == pytest.approx(2 * p)
    assert (a.ttft_s, b.ttft_s) == pytest.approx((p, 2 * p + ins))
    # queue waits, counted at insert: a's insert, b's wait for a's prefill and insert and b's own insert
    assert value(h.pod, "jetstream_queue_duration_sum") == pytest.approx(p + 3 * ins)


def test_one_token_answers_never_take_a_slot(harness):
    h = harness()
    r = h.submit_at(0.0, 100, 1)
    h.run(1.0)
    assert r.finish_s == r.insert_s == pytest.approx(r.first_token_s + h.pod.step_model.insert_ms(128) * MS)
    assert h.pod.completed == 1 and h.pod.active_slots == 0

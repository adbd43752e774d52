"""Named invariants under generated workloads: conservation, causality, a clock that never goes back."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rlscale.serving.request import RequestState
from tests.helpers import PodHarness

workloads = st.lists(
    st.tuples(st.floats(0.0, 2.0), st.integers(1, 3000), st.integers(1, 1500)), min_size=1, max_size=60
)


@settings(max_examples=60, deadline=None)
@given(
    workload=workloads,  # with tight HBM (~1 GB of KV left) paged runs hit OOM
    slots_per_chip=st.integers(1, 3),
    kv_mode=st.sampled_from(["preallocated", "paged"]),
    tight_hbm=st.booleans(),
)
def test_requests_are_conserved_and_causal(workload, slots_per_chip, kv_mode, tight_hbm):
    h = PodHarness(
        hardware="v5e-4",
        per_device_batch_size=slots_per_chip,
        kv_mode=kv_mode,
        hbm_workspace_fraction=0.77 if tight_hbm and kv_mode == "paged" else 0.05,
        restart_s=5.0,
    )
    t = 0.0
    for gap, prompt, output in workload:
        t += gap
        h.submit_at(t, prompt, output)
    pod, last_now = h.pod, 0.0
    for checkpoint in [t / 4, t / 2, t, t + 5, t + 60, t + 600]:
        if checkpoint <= h.env.now:
            continue
        h.run(checkpoint)
        assert h.env.now >= last_now
        last_now = h.env.now
        states = [r.state for r in h.submitted]
        completed, failed = states.count(RequestState.COMPLETED), states.count(RequestState.FAILED)
        assert pod.arrived == len(h.submitted) == completed + failed + pod.in_flight  # conservation
        assert (pod.completed, pod.failed) == (completed, failed)
        assert pod.hbm_used_bytes() <= pod.hbm.total_bytes or pod.crashes > 0
    for r in h.requests:
        if r.state is RequestState.COMPLETED:
            assert r.arrival_s <= r.prefill_start_s < r.first_token_s <= r.insert_s <= r.finish_s
            assert 1 <= r.target_tokens <= r.output_tokens
            assert r.prefill_tokens + r.target_tokens <= 2048
        elif r.state is RequestState.FAILED:
            assert r.failure and r.finish_s >= r.arrival_s
    assert pod.in_flight == 0  # ten idle minutes later everything has ended

"""Safety rules between the policy and the PATCH (rlscale/policies/safety.py): bounds, step caps, holds on missing
metrics, the fallback HPA."""

from __future__ import annotations

import pytest

from rlscale.deploy.pods import LivePod
from rlscale.policies.safety import (
    Health,
    Limits,
    MetricsHealth,
    Source,
    assess,
    cap_change,
    clamp,
    decide,
    expected_to_report,
)

LIMITS = Limits(min_replicas=2, max_replicas=10, max_change_per_step=2)
OK = MetricsHealth.ok()
DOWN = MetricsHealth(Health.UNAVAILABLE, "prometheus at http://p: no answer within 5 s")
PARTIAL = MetricsHealth(Health.PARTIAL, "jetstream_slots_used_percentage missing for 1/3 pods")


def test_clamp_and_cap():
    assert [clamp(n, LIMITS) for n in (0, 2, 7, 10, 99)] == [2, 2, 7, 10, 10]
    assert [cap_change(5, t, 2) for t in (0, 3, 5, 6, 12)] == [3, 3, 5, 6, 7]


@pytest.mark.parametrize(
    ("current", "policy", "applied", "note"),
    [
        (4, 9, 6, "capped"),  # +5 wanted, +2 allowed
        (8, 2, 6, "capped"),  # -6 wanted, -2 allowed
        (9, 30, 10, "clamped"),  # above max
        (3, 0, 2, "clamped"),  # below min
        (1, None, 2, "clamped"),  # None leaves the count, but the count is below min
        (5, 5, 5, "hold at 5"),
    ],
)
def test_limits_apply_after_the_policy(current, policy, applied, note):
    decision = decide(current, OK, LIMITS, policy)
    assert decision.applied == applied and note in decision.reason
    assert decision.source is Source.POLICY and not decision.held


@pytest.mark.parametrize("policy", [1, 3, 8, RuntimeError("boom")])
def test_unavailable_metrics_hold_and_say_why(policy):
    decision = decide(6, DOWN, LIMITS, policy, fallback=2, has_fallback=True)
    assert (decision.applied, decision.source, decision.held) == (6, Source.HOLD, True)
    assert "metrics unavailable: prometheus at http://p: no answer" in decision.reason


def test_a_hold_still_raises_the_count_to_min_but_never_lowers_it_to_max():
    assert decide(1, DOWN, LIMITS).applied == 2
    assert decide(12, DOWN, LIMITS).applied == 12


def test_partial_metrics_block_scale_down_but_allow_scale_up():
    down = decide(6, PARTIAL, LIMITS, policy=3)
    assert (down.applied, down.held) == (6, True) and "scale-down blocked" in down.reason
    assert "partial metrics" in down.reason
    up = decide(6, PARTIAL, LIMITS, policy=9)
    assert (up.applied, up.held, up.source) == (8, False, Source.POLICY)


def test_partial_metrics_go_to_the_fallback_hpa_when_there_is_one():
    decision = decide(4, PARTIAL, LIMITS, policy=4, fallback=6, has_fallback=True)
    assert (decision.applied, decision.source) == (6, Source.FALLBACK)
    assert decide(4, PARTIAL, LIMITS, policy=9, fallback=2, has_fallback=True).applied == 4  # still no scale-down


def test_a_failing_policy_falls_back_or_holds():
    error = ValueError("observation has NaN")
    fallback = decide(4, OK, LIMITS, error, fallback=3, has_fallback=True)
    assert (fallback.applied, fallback.source) == (3, Source.FALLBACK)
    assert "policy failed: ValueError" in fallback.reason
    hold = decide(4, OK, LIMITS, error)
    assert (hold.applied, hold.source, hold.held) == (4, Source.HOLD, True)
    both = decide(4, OK, LIMITS, error, fallback=RuntimeError("no metric"), has_fallback=True)
    assert both.source is Source.HOLD


class _View:
    def __init__(self, pods: dict[str, float], memory: float | None) -> None:
        self.pods, self.memory = pods, memory

    def pods_metric(self, name):
        return self.pods

    def external_metric(self, name):
        return self.memory

    def counter_rate(self, name, window_s):
        return {}


def test_assess_expects_metrics_only_from_scrapeable_pods():
    pods = [LivePod("a", ip="10.0.0.1"), LivePod("b", ip="10.0.0.2"), LivePod("c", ready=False, ip="10.0.0.3")]
    live = {p.name for p in pods if p.scrapeable}
    assert live == expected_to_report(p.info for p in pods) == {"a", "b"}  # the controller's rule is the simulator's
    assert assess(_View({"a": 1, "b": 1}, 0.5), live, ["slots"], ["memory"]).status is Health.OK
    partial = assess(_View({"a": 1}, None), live, ["slots"], ["memory"])
    assert partial.status is Health.PARTIAL and "slots missing for 1/2 pods" in partial.why and "memory" in partial.why
    none = assess(_View({}, None), live, ["slots"], ["memory"])
    assert none.status is Health.UNAVAILABLE and "no fresh sample for any of 2 pods" in none.why
    assert assess(_View({}, None), set(), ["slots"], []).status is Health.OK  # nobody is expected to report yet


def test_limits_refuse_nonsense():
    with pytest.raises(ValueError, match="min_replicas"):
        Limits(5, 2, 1)
    with pytest.raises(ValueError, match="max_change_per_step"):
        Limits(1, 2, 0)

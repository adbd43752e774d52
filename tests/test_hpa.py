"""Upstream's horizontal.go test tables, ported case by case under their upstream names.

Upstream reads ``time.Now()`` when it builds a table and again, a little later, inside
the function under test; ``NOW`` and ``LATER`` keep that order so that events sitting
exactly on a period boundary count as upstream counts them.
"""

from __future__ import annotations

import pytest

from rlscale.hpa import (
    HPABehavior,
    HPAScalingPolicy,
    HPAScalingRules,
    NormalizationArg,
    PolicyType,
    SelectPolicy,
    TimestampedRecommendation,
    TimestampedScaleEvent,
    calculate_scale_down_limit_with_behaviors,
    calculate_scale_up_limit,
    calculate_scale_up_limit_with_scaling_rules,
    compute_replicas_for_metrics,
    convert_desired_replicas_with_behavior_rate,
    convert_desired_replicas_with_rules,
    generate_hpa_scale_down_rules,
    generate_hpa_scale_up_rules,
    get_replicas_change_per_period,
    normalize_desired_replicas,
    stabilize_recommendation,
    stabilize_recommendation_with_behaviors,
    store_scale_event,
    tolerances_for_hpa,
)

NOW = 1_000_000.0
LATER = NOW + 1e-6
MINUTE = 60.0


def generate_scaling_rules(
    pods: int, pods_period: int, percent: int, percent_period: int, stabilization_window: int
) -> HPAScalingRules:
    """``generateScalingRules``: a Max-policy rule with a Pods and/or a Percent policy."""
    policies = []
    if pods:
        policies.append(HPAScalingPolicy(PolicyType.PODS, pods, pods_period))
    if percent:
        policies.append(HPAScalingPolicy(PolicyType.PERCENT, percent, percent_period))
    return HPAScalingRules(
        stabilization_window_seconds=stabilization_window, select_policy=SelectPolicy.MAX, policies=tuple(policies)
    )


def generate_events_uniform_distribution(raw_events: list[int], period_seconds: int) -> list[TimestampedScaleEvent]:
    """``generateEventsUniformDistribution``: events centred in equal segments of the last period.

    Upstream converts each offset with ``time.Duration(float)``, which truncates to whole seconds.
    """
    segment = period_seconds / len(raw_events)
    return [
        TimestampedScaleEvent(change, NOW - int(period_seconds - segment * (i + 1) + segment / 2))
        for i, change in enumerate(raw_events)
    ]


# ---- TestConvertDesiredReplicasWithRules ----------------------------------------------------


@pytest.mark.parametrize(
    "current, desired, hpa_min, hpa_max, expected, condition",
    [
        pytest.param(5, 7, 3, 8, 7, "DesiredWithinRange", id="prenormalized desired replicas within range"),
        pytest.param(3, 1, 2, 8, 2, "TooFewReplicas", id="prenormalized desired replicas < minReplicas"),
        pytest.param(1, 0, 0, 10, 0, "DesiredWithinRange", id="prenormalized desired zeroed replicas within range"),
        pytest.param(
            20, 1000, 1, 10, 10, "TooManyReplicas", id="maxReplicas is the limit because maxReplicas < scaleUpLimit"
        ),
        pytest.param(
            3,
            1000,
            1,
            2000,
            calculate_scale_up_limit(3),
            "ScaleUpLimit",
            id="scaleUpLimit is the limit because scaleUpLimit < maxReplicas",
        ),
    ],
)
def test_convert_desired_replicas_with_rules(current, desired, hpa_min, hpa_max, expected, condition):
    replicas, got_condition, _ = convert_desired_replicas_with_rules(current, desired, hpa_min, hpa_max)
    assert (replicas, got_condition) == (expected, condition)


def test_calculate_scale_up_limit_is_legacy_cap():
    assert calculate_scale_up_limit(3) == 6  # max(2 * 3, 4)
    assert calculate_scale_up_limit(1) == 4
    assert calculate_scale_up_limit(3, scale_up_limit_factor=8) == 24  # upstream's tests run with factor 8


# ---- TestCalculateScaleUpLimitWithScalingRules / TestCalculateScaleDownLimitWithBehaviors ----


def _min_policy_rules() -> HPAScalingRules:
    return HPAScalingRules(
        stabilization_window_seconds=300,
        select_policy=SelectPolicy.MIN,
        policies=(HPAScalingPolicy(PolicyType.PODS, 2, 60), HPAScalingPolicy(PolicyType.PERCENT, 50, 60)),
    )


def test_calculate_scale_up_limit_with_scaling_rules():
    assert calculate_scale_up_limit_with_scaling_rules(1, [], [], _min_policy_rules(), LATER) == 2


def test_calculate_scale_down_limit_with_behaviors():
    assert calculate_scale_down_limit_with_behaviors(5, [], [], _min_policy_rules(), LATER) == 3


def test_disabled_select_policy_keeps_current_replicas():
    rules = HPAScalingRules(select_policy=SelectPolicy.DISABLED, policies=(HPAScalingPolicy(PolicyType.PODS, 4, 15),))
    assert calculate_scale_up_limit_with_scaling_rules(7, [], [], rules, LATER) == 7
    assert calculate_scale_down_limit_with_behaviors(7, [], [], rules, LATER) == 7


# ---- TestNormalizeDesiredReplicas (legacy stabilization) -----------------------------------


@pytest.mark.parametrize(
    "recommendations, prenormalized, expected, expected_log_length",
    [
        pytest.param([], 5, 5, 1, id="empty log"),
        pytest.param([(4, -2 * MINUTE), (5, -1 * MINUTE)], 3, 5, 3, id="stabilize"),
        pytest.param([(1, -2 * MINUTE), (2, -1 * MINUTE)], 3, 3, 3, id="no stabilize"),
        pytest.param([(10, -10 * MINUTE), (9, -9 * MINUTE)], 3, 3, 2, id="no stabilize - old recommendations"),
        pytest.param(
            [(10, -10 * MINUTE), (4, -1 * MINUTE), (5, -2 * MINUTE), (9, -9 * MINUTE)],
            3,
            5,
            4,
            id="stabilize - old recommendations",
        ),
    ],
)
def test_normalize_desired_replicas(recommendations, prenormalized, expected, expected_log_length):
    log = [TimestampedRecommendation(r, NOW + dt) for r, dt in recommendations]
    assert stabilize_recommendation(log, prenormalized, LATER, downscale_stabilization_window_s=5 * MINUTE) == expected
    assert len(log) == expected_log_length


def test_normalize_desired_replicas_legacy_reports_conditions():
    log = [TimestampedRecommendation(5, NOW - MINUTE)]
    result = normalize_desired_replicas(log, LATER, 5, 3, 1, 10)
    assert result == (5, "ScaleDownStabilized", "DesiredWithinRange", False)
    result = normalize_desired_replicas([], LATER, 3, 1000, 1, 10)
    assert result == (6, "ReadyForNewScale", "ScaleUpLimit", True)


# ---- TestScalingWithRules (convertDesiredReplicasWithBehaviorRate) ---------------------------

R = generate_scaling_rules
E = generate_events_uniform_distribution

SCALING_WITH_RULES = [
    # name, scale_up_events, scale_down_events, min, max, up rules, down rules, current, prenormalized, want, condition
    ("prenormalized desired replicas within range", [], [], 3, 8, None, None, 5, 7, 7, "DesiredWithinRange"),
    ("prenormalized desired replicas < minReplicas", [], [], 2, 8, None, None, 3, 1, 2, "TooFewReplicas"),
    (
        "prenormalized desired replicas within range when minReplicas is 0",
        *([], [], 0, 10, None, None, 1, 0, 0, "DesiredWithinRange"),
    ),
    (
        "maxReplicas is the limit because maxReplicas < scaleUpLimit",
        *([], [], 1, 10, None, None, 20, 1000, 10, "TooManyReplicas"),
    ),
    (
        "desired replica count is more than the maximum replica count",
        *([], [], 100, 150, None, None, 100, 1000, 150, "TooManyReplicas"),
    ),
    (
        "scaleUpLimit is the limit because scaleUpLimit < maxReplicas with user policies",
        *([], [], 1, 2000, R(0, 0, 1, 60, 0), None, 3, 1000, 4, "ScaleUpLimit"),
    ),
    ("scaleUp with default behavior", [], [], 1, 1000, None, None, 10, 50, 20, "ScaleUpLimit"),
    (
        "scaleUp with pods policy larger than percent policy",
        *([], [], 1, 1000, R(100, 60, 100, 60, 0), None, 10, 500, 110, "ScaleUpLimit"),
    ),
    (
        "scaleUp with percent policy larger than pods policy",
        *([], [], 1, 1000, R(2, 60, 100, 60, 0), None, 10, 500, 20, "ScaleUpLimit"),
    ),
    (
        "scaleUp with spec MaxReplicas limitation with large pod policy",
        *([], [], 1, 1000, R(100, 60, 0, 0, 0), None, 10, 50, 50, "DesiredWithinRange"),
    ),
    (
        "scaleUp with spec MaxReplicas limitation with large percent policy",
        *([], [], 1, 1000, R(10000, 60, 0, 0, 0), None, 10, 50, 50, "DesiredWithinRange"),
    ),
    ("scaleUp with pod policy limitation", [], [], 1, 1000, R(30, 60, 0, 0, 0), None, 10, 50, 40, "ScaleUpLimit"),
    ("scaleUp with percent policy limitation", [], [], 1, 1000, R(0, 0, 200, 60, 0), None, 10, 50, 30, "ScaleUpLimit"),
    (
        "scaleDown with percent policy larger than pod policy",
        *([], [], 1, 1000, None, R(20, 60, 1, 60, 300), 100, 2, 80, "ScaleDownLimit"),
    ),
    (
        "scaleDown with pod policy larger than percent policy",
        *([], [], 1, 1000, None, R(2, 60, 1, 60, 300), 100, 2, 98, "ScaleDownLimit"),
    ),
    (
        "scaleDown with spec MinReplicas limitation with large pod policy",
        *([], [], 1, 1000, None, R(100, 60, 0, 0, 300), 10, 0, 1, "TooFewReplicas"),
    ),
    (
        "scaleDown with spec MinReplicas limitation with large percent policy",
        *([], [], 5, 1000, None, R(0, 0, 100, 60, 300), 10, 2, 5, "TooFewReplicas"),
    ),
    (
        "scaleDown with pod policy limitation",
        *([], [], 1, 1000, None, R(5, 60, 0, 0, 300), 10, 2, 5, "ScaleDownLimit"),
    ),
    (
        "scaleDown with percent policy limitation",
        *([], [], 1, 1000, None, R(0, 0, 50, 60, 300), 10, 5, 5, "DesiredWithinRange"),
    ),
    (
        "scaleUp with spec MaxReplicas limitation with large pod policy and events",
        *(E([1, 5, 9], 120), [], 1, 200, R(300, 60, 0, 0, 0), None, 100, 500, 200, "TooManyReplicas"),
    ),
    (
        "scaleUp with spec MaxReplicas limitation with large percent policy and events",
        *(E([1, 5, 9], 120), [], 1, 200, R(0, 0, 10000, 60, 0), None, 100, 500, 200, "TooManyReplicas"),
    ),
    (
        "scaleUp with currentReplicas limitation with rate.PeriodSeconds with a lot of recent scale up events",
        *(E([1, 5, 9], 120), [], 1, 1000, R(5, 120, 0, 0, 0), None, 100, 500, 100, "ScaleUpLimit"),
    ),
    (
        "scaleUp with pod policy and previous scale up events",
        *(E([1, 5, 9], 120), [], 1, 1000, R(150, 120, 0, 0, 0), None, 100, 500, 235, "ScaleUpLimit"),
    ),
    (
        "scaleUp with percent policy and previous scale up events",
        *(E([1, 5, 9], 120), [], 1, 1000, R(0, 0, 200, 120, 0), None, 100, 500, 255, "ScaleUpLimit"),
    ),
    (
        "scaleUp with percent policy and previous scale up and down events",
        *(E([4], 120), E([2], 120), 1, 1000, R(0, 0, 300, 300, 0), None, 6, 24, 16, "ScaleUpLimit"),
    ),
    (
        "scaleDown with default policy and previous events",
        *([], E([1, 5, 9], 120), 1, 1000, None, None, 10, 5, 5, "DesiredWithinRange"),
    ),
    (
        "scaleDown with spec MinReplicas=nil limitation with large pod policy and previous events",
        *([], E([1, 5, 9], 120), 1, 1000, None, R(115, 120, 0, 0, 300), 100, 0, 1, "TooFewReplicas"),
    ),
    (
        "scaleDown with spec MinReplicas limitation with large pod policy and previous events",
        *([], E([1, 5, 9], 120), 5, 1000, None, R(130, 120, 0, 0, 300), 100, 0, 5, "TooFewReplicas"),
    ),
    (
        "scaleDown with spec MinReplicas limitation with large percent policy and previous events",
        *([], E([1, 5, 9], 120), 5, 1000, None, R(0, 0, 100, 120, 300), 100, 2, 5, "TooFewReplicas"),
    ),
    (
        "scaleDown with pod policy limitation and previous events",
        *([], E([1, 5, 9], 120), 1, 1000, None, R(5, 120, 0, 0, 300), 100, 2, 100, "ScaleDownLimit"),
    ),
    (
        "scaleDown with percent policy limitation and previous events",
        *([], E([2, 4, 6], 120), 1, 1000, None, R(0, 0, 50, 120, 300), 100, 0, 56, "ScaleDownLimit"),
    ),
    (
        "scaleDown with percent policy and previous scale up and down events",
        *(E([2], 120), E([4], 120), 1, 1000, None, R(0, 0, 50, 180, 0), 10, 1, 6, "ScaleDownLimit"),
    ),
    (
        "scaleDown with previous events preventing further scale down",
        *([], E([10, 10, 10], 120), 1, 1000, None, R(0, 0, 10, 120, 300), 100, 0, 100, "ScaleDownLimit"),
    ),
    (
        "scaleDown with with previous events still allowing more scale down",
        *([], E([10, 10, 10], 120), 1, 1000, None, R(0, 0, 1000, 120, 300), 10, 5, 5, "DesiredWithinRange"),
    ),
    (
        "check 'outdated' flag for events for one behavior for up",
        *(E([8, 12, 9, 11], 120), [], 1, 1000, R(1000, 60, 0, 0, 0), None, 100, 200, 200, "DesiredWithinRange"),
    ),
    (
        "check that events were not marked 'outdated' for two different policies in the behavior for up",
        *(E([8, 12, 9, 11], 120), [], 1, 1000, R(1000, 120, 100, 60, 0), None, 100, 200, 200, "DesiredWithinRange"),
    ),
    (
        "check that events were marked 'outdated' for two different policies in the behavior for up",
        *(E([8, 12, 9, 11], 120), [], 1, 1000, R(1000, 30, 100, 60, 0), None, 100, 200, 200, "DesiredWithinRange"),
    ),
    (
        "check 'outdated' flag for events for one behavior for down",
        *([], E([8, 12, 9, 11], 120), 1, 1000, None, R(1000, 60, 0, 0, 300), 100, 5, 5, "DesiredWithinRange"),
    ),
    (
        "check that events were not marked 'outdated' for two different policies in the behavior for down",
        *([], E([8, 12, 9, 11], 120), 1, 1000, None, R(1000, 120, 100, 60, 300), 100, 5, 5, "DesiredWithinRange"),
    ),
    (
        "check that events were marked 'outdated' for two different policies in the behavior for down",
        *([], E([8, 12, 9, 11], 120), 1, 1000, None, R(1000, 30, 100, 60, 300), 100, 5, 5, "DesiredWithinRange"),
    ),
]


@pytest.mark.parametrize(
    "up_events, down_events, spec_min, spec_max, up_rules, down_rules, current, prenormalized, want, condition",
    [pytest.param(*case[1:], id=case[0]) for case in SCALING_WITH_RULES],
)
def test_scaling_with_rules(
    up_events, down_events, spec_min, spec_max, up_rules, down_rules, current, prenormalized, want, condition
):
    args = NormalizationArg(
        scale_up_behavior=generate_hpa_scale_up_rules(up_rules),
        scale_down_behavior=generate_hpa_scale_down_rules(down_rules),
        min_replicas=spec_min,
        max_replicas=spec_max,
        current_replicas=current,
        desired_replicas=prenormalized,
    )
    replicas, got_condition, _ = convert_desired_replicas_with_behavior_rate(args, up_events, down_events, LATER)
    assert (replicas, got_condition) == (want, condition)


# ---- TestStoreScaleEvents --------------------------------------------------------------------

STORE_SCALE_EVENTS = [
    # name, previous events (change, seconds ago, outdated), new events (change, outdated), rules, expected change
    ("empty entries with default behavior", [], [], None, 0),
    ("empty entries with two-policy-behavior", [], [(5, False)], R(10, 60, 100, 60, 0), 0),
    ("one outdated entry to be kept untouched without behavior", [(7, 61)], [(7, False)], None, 0),
    ("one outdated entry to be replaced with behavior", [(7, 61)], [(5, False)], R(10, 60, 100, 60, 0), 0),
    ("one actual entry to be not touched with behavior", [(7, 58)], [(7, False), (5, False)], R(10, 60, 100, 60, 0), 7),
    ("two entries, one of them to be replaced", [(7, 61), (6, 59)], [(5, False), (6, False)], R(10, 60, 0, 0, 0), 6),
    (
        "replace one entry, use policies with different periods",
        [(8, 29), (6, 59), (7, 61), (9, 61)],
        [(8, False), (6, False), (7, True), (5, False)],
        R(10, 60, 100, 30, 0),
        14,
    ),
    (
        "two entries, both actual",
        [(7, 58), (6, 59)],
        [(7, False), (6, False), (5, False)],
        R(10, 120, 100, 30, 0),
        13,
    ),
]


@pytest.mark.parametrize("direction", ["up", "down"])
@pytest.mark.parametrize(
    "prev, new, rules, expected_change", [pytest.param(*case[1:], id=case[0]) for case in STORE_SCALE_EVENTS]
)
def test_store_scale_events(direction, prev, new, rules, expected_change):
    events = [TimestampedScaleEvent(change, NOW - ago) for change, ago in prev]
    assert get_replicas_change_per_period(60, events, LATER) == expected_change
    if rules is None:
        behavior = None
    elif direction == "up":
        behavior = HPABehavior(scale_up=rules)
    else:
        behavior = HPABehavior(scale_down=rules)
    up, down = (events, []) if direction == "up" else ([], events)
    store_scale_event(behavior, up, down, 10, 10 + 5 if direction == "up" else 10 - 5, LATER)
    assert [(e.replica_change, e.outdated) for e in events] == new


# ---- TestNormalizeDesiredReplicasWithBehavior (stabilizeRecommendationWithBehaviors) ---------

NORMALIZE_WITH_BEHAVIOR = [
    # name, recommendations (value, seconds from now), current, prenormalized, want, stored values, up, down windows
    ("empty recommendations for scaling down", [], 100, 5, 5, [5], 0, 0),
    ("simple scale down stabilization", [(4, -120), (5, -60)], 100, 3, 5, [4, 5, 3], 0, 180),
    ("simple scale up stabilization", [(4, -120), (5, -60)], 1, 7, 4, [4, 5, 7], 300, 0),
    ("no scale down stabilization", [(1, -120), (2, -60)], 100, 3, 3, [1, 2, 3], 300, 0),
    ("no scale up stabilization", [(4, -120), (5, -60)], 1, 3, 3, [4, 5, 3], 0, 300),
    ("no scale down stabilization, reuse recommendation element", [(10, -600), (9, -540)], 100, 3, 3, [10, 3], 0, 0),
    ("no scale up stabilization, reuse recommendation element", [(10, -600), (9, -540)], 1, 100, 100, [10, 100], 0, 0),
    (
        "scale down stabilization, reuse one of obsolete recommendation element",
        [(10, -600), (4, -60), (5, -120), (9, -540)],
        *(100, 3, 5, [10, 4, 5, 3], 0, 180),
    ),
    (
        "scale up stabilization, reuse one of obsolete recommendation element",
        [(10, -6000), (6, -60), (5, -120), (9, -180)],
        *(1, 100, 5, [100, 6, 5, 9], 300, 0),
    ),
    (
        "scale up and down stabilization, do not scale up when prenormalized rec goes down",
        [(2, -6000), (3, -180)],
        *(2, 1, 2, None, 300, 300),
    ),
    (
        "scale up and down stabilization, do not scale down when prenormalized rec goes up",
        [(2, -6000), (1, -180)],
        *(2, 3, 2, None, 300, 300),
    ),
]


@pytest.mark.parametrize(
    "recommendations, current, prenormalized, want, stored, up_window, down_window",
    [pytest.param(*case[1:], id=case[0]) for case in NORMALIZE_WITH_BEHAVIOR],
)
def test_normalize_desired_replicas_with_behavior(
    recommendations, current, prenormalized, want, stored, up_window, down_window
):
    log = [TimestampedRecommendation(r, NOW + dt) for r, dt in recommendations]
    args = NormalizationArg(
        scale_up_behavior=HPAScalingRules(stabilization_window_seconds=up_window),
        scale_down_behavior=HPAScalingRules(stabilization_window_seconds=down_window),
        min_replicas=0,
        max_replicas=0,
        current_replicas=current,
        desired_replicas=prenormalized,
    )
    replicas, _, _ = stabilize_recommendation_with_behaviors(log, args, LATER)
    assert replicas == want
    if stored is not None:
        assert [r.recommendation for r in log] == stored


# ---- computeReplicasForMetrics, tolerancesForHpa (no upstream table: the rules in reconcileAutoscaler) --


@pytest.mark.parametrize(
    "spec_replicas, proposals, want",
    [
        pytest.param(3, [4, 2], 4, id="the highest proposal wins"),
        pytest.param(3, [0, 0], 0, id="all proposals zero"),
        pytest.param(3, [4, None], 4, id="scale up with one metric invalid"),
        pytest.param(5, [3, None], None, id="no scale down with one metric invalid"),
        pytest.param(5, [5, None], 5, id="no change with one metric invalid is a decision"),
        pytest.param(5, [None, None], None, id="all metrics invalid"),
    ],
)
def test_compute_replicas_for_metrics(spec_replicas, proposals, want):
    assert compute_replicas_for_metrics(spec_replicas, proposals) == want


def test_compute_replicas_for_metrics_needs_a_metric():
    with pytest.raises(ValueError, match="proposals"):
        compute_replicas_for_metrics(3, [])


def test_tolerances_for_hpa():
    behavior = HPABehavior(scale_up=HPAScalingRules(tolerance=0.01), scale_down=HPAScalingRules(tolerance=0.9))
    assert tolerances_for_hpa(None, 0.1).scale_up == 0.1
    both = tolerances_for_hpa(behavior, 0.1)
    assert (both.scale_down, both.scale_up) == (0.9, 0.01)
    gated = tolerances_for_hpa(behavior, 0.1, configurable_tolerance=False)
    assert (gated.scale_down, gated.scale_up) == (0.1, 0.1)
    only_up = tolerances_for_hpa(HPABehavior(scale_up=HPAScalingRules(tolerance=0.05)), 0.2)
    assert (only_up.scale_down, only_up.scale_up) == (0.2, 0.05)

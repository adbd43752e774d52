"""The HPA controller's decision steps after the replica calculator: combine, stabilize, rate-limit, clamp.

Port of the pure parts of ``pkg/controller/podautoscaler/horizontal.go`` (see
:mod:`rlscale.hpa` for the commit read). Upstream keeps its per-HPA history in maps
keyed by HPA and reads ``time.Now()``; here the history lists are passed in (and
mutated as upstream mutates them) and the time is ``now_s``, in seconds.
Comparisons keep Go's strictness: ``Before``/``After`` are ``<``/``>``.

Two normalization paths, as upstream:

* ``spec.behavior`` absent: :func:`normalize_desired_replicas`, the legacy path:
  the highest recommendation of the last ``downscale_stabilization_window_s``
  (the controller flag, 5 min), then min/max and a scale-up cap of
  ``max(2 * current, 4)`` per sync.
* ``spec.behavior`` present: :func:`normalize_desired_replicas_with_behaviors`:
  per-direction stabilization windows, then the rate policies against the
  scale events of their periods, then min/max.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from rlscale.hpa.replica_calculator import MAX_INT32, MIN_INT32, Tolerances
from rlscale.hpa.spec import (
    HPABehavior,
    HPAScalingRules,
    PolicyType,
    SelectPolicy,
    generate_hpa_scale_down_rules,
    generate_hpa_scale_up_rules,
)

SCALE_UP_LIMIT_FACTOR = 2.0  # scaleUpLimitFactor (legacy path)
SCALE_UP_LIMIT_MINIMUM = 4.0  # scaleUpLimitMinimum (legacy path)
DEFAULT_DOWNSCALE_STABILIZATION_WINDOW_S = 300.0  # --horizontal-pod-autoscaler-downscale-stabilization


@dataclass(frozen=True, slots=True)
class TimestampedRecommendation:
    """An unstabilized recommendation (the replicas the metrics asked for) and when."""

    recommendation: int
    timestamp_s: float


@dataclass(slots=True)
class TimestampedScaleEvent:
    """A rescale, by its size (always non-negative) and time; ``outdated`` marks a slot for reuse."""

    replica_change: int
    timestamp_s: float
    outdated: bool = False


class Normalization(NamedTuple):
    """A normalized replica count and the conditions upstream would set with it."""

    desired_replicas: int
    able_to_scale_reason: str  # "ReadyForNewScale", "ScaleUpStabilized" or "ScaleDownStabilized"
    scaling_limited_reason: str  # "DesiredWithinRange", "TooManyReplicas", "ScaleUpLimit", ...
    scaling_limited: bool


@dataclass(frozen=True, slots=True)
class NormalizationArg:
    """``NormalizationArg``: the inputs of the behavior path (the HPA key is the caller's history lists)."""

    scale_up_behavior: HPAScalingRules
    scale_down_behavior: HPAScalingRules
    min_replicas: int
    max_replicas: int
    current_replicas: int
    desired_replicas: int


# ---- combining metrics -----------------------------------------------------------------------


def compute_replicas_for_metrics(spec_replicas: int, proposals: Sequence[int | None]) -> int | None:
    """``computeReplicasForMetrics`` over per-metric proposals (``None``: the metric failed this sync).

    The highest valid proposal wins. ``None`` back is upstream's ``-1``: no decision,
    because every metric failed, or because some failed and the rest would scale
    down (a missing metric never lets the HPA remove pods).
    """
    if not proposals:
        raise ValueError("proposals: at least one metric is required")
    replicas, invalid = 0, 0
    for proposal in proposals:
        if proposal is None:
            invalid += 1
        elif replicas == 0 or proposal > replicas:
            replicas = proposal
    if invalid >= len(proposals) or (invalid > 0 and replicas < spec_replicas):
        return None
    return replicas


def tolerances_for_hpa(
    behavior: HPABehavior | None, tolerance: float, configurable_tolerance: bool = True
) -> Tolerances:
    """``tolerancesForHpa``: the controller's tolerance, overridden per direction by ``behavior.*.tolerance``.

    ``configurable_tolerance`` is the ``HPAConfigurableTolerance`` feature gate.
    """
    scale_down = scale_up = tolerance
    if behavior is None or not configurable_tolerance:
        return Tolerances(scale_down, scale_up)
    if behavior.scale_down is not None and behavior.scale_down.tolerance is not None:
        scale_down = behavior.scale_down.tolerance
    if behavior.scale_up is not None and behavior.scale_up.tolerance is not None:
        scale_up = behavior.scale_up.tolerance
    return Tolerances(scale_down, scale_up)


# ---- legacy path (no spec.behavior) ----------------------------------------------------------


def stabilize_recommendation(
    recommendations: list[TimestampedRecommendation],
    prenormalized_desired_replicas: int,
    now_s: float,
    downscale_stabilization_window_s: float = DEFAULT_DOWNSCALE_STABILIZATION_WINDOW_S,
) -> int:
    """``stabilizeRecommendation``: the highest recommendation within the window, this one included.

    Records this recommendation, reusing the slot of the last one older than the window.
    """
    max_recommendation = prenormalized_desired_replicas
    old_index = None
    cutoff = now_s - downscale_stabilization_window_s
    for i, rec in enumerate(recommendations):
        if rec.timestamp_s < cutoff:
            old_index = i
        elif rec.recommendation > max_recommendation:
            max_recommendation = rec.recommendation
    new = TimestampedRecommendation(prenormalized_desired_replicas, now_s)
    if old_index is not None:
        recommendations[old_index] = new
    else:
        recommendations.append(new)
    return max_recommendation


def calculate_scale_up_limit(
    current_replicas: int,
    scale_up_limit_factor: float = SCALE_UP_LIMIT_FACTOR,
    scale_up_limit_minimum: float = SCALE_UP_LIMIT_MINIMUM,
) -> int:
    """``calculateScaleUpLimit``: the legacy cap, ``max(2 * current, 4)``."""
    return int(max(scale_up_limit_factor * float(current_replicas), scale_up_limit_minimum))


def convert_desired_replicas_with_rules(
    current_replicas: int,
    desired_replicas: int,
    hpa_min_replicas: int,
    hpa_max_replicas: int,
    scale_up_limit_factor: float = SCALE_UP_LIMIT_FACTOR,
    scale_up_limit_minimum: float = SCALE_UP_LIMIT_MINIMUM,
) -> tuple[int, str, str]:
    """``convertDesiredReplicasWithRules``: clamp to min and to the lower of max and the legacy cap.

    Returns (replicas, condition reason, message).
    """
    minimum_allowed = hpa_min_replicas
    scale_up_limit = calculate_scale_up_limit(current_replicas, scale_up_limit_factor, scale_up_limit_minimum)
    if hpa_max_replicas > scale_up_limit:
        maximum_allowed = scale_up_limit
        condition, reason = "ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate"
    else:
        maximum_allowed = hpa_max_replicas
        condition, reason = "TooManyReplicas", "the desired replica count is more than the maximum replica count"
    if desired_replicas < minimum_allowed:
        return (
            minimum_allowed,
            "TooFewReplicas",
            "the desired replica count is less than the minimum replica count",
        )
    if desired_replicas > maximum_allowed:
        return maximum_allowed, condition, reason
    return desired_replicas, "DesiredWithinRange", "the desired count is within the acceptable range"


def normalize_desired_replicas(
    recommendations: list[TimestampedRecommendation],
    now_s: float,
    current_replicas: int,
    prenormalized_desired_replicas: int,
    min_replicas: int,
    max_replicas: int,
    downscale_stabilization_window_s: float = DEFAULT_DOWNSCALE_STABILIZATION_WINDOW_S,
) -> Normalization:
    """``normalizeDesiredReplicas``: the legacy path, for an HPA without ``spec.behavior``."""
    stabilized = stabilize_recommendation(
        recommendations, prenormalized_desired_replicas, now_s, downscale_stabilization_window_s
    )
    able = "ScaleDownStabilized" if stabilized != prenormalized_desired_replicas else "ReadyForNewScale"
    desired, reason, _ = convert_desired_replicas_with_rules(current_replicas, stabilized, min_replicas, max_replicas)
    return Normalization(desired, able, reason, desired != stabilized)


# ---- behavior path ---------------------------------------------------------------------------


def get_replicas_change_per_period(
    period_seconds: float, scale_events: Sequence[TimestampedScaleEvent], now_s: float
) -> int:
    """``getReplicasChangePerPeriod``: the replicas changed by events younger than the period."""
    cutoff = now_s - period_seconds
    return sum(event.replica_change for event in scale_events if event.timestamp_s > cutoff)


def get_longest_policy_period(scaling_rules: HPAScalingRules) -> int:
    """``getLongestPolicyPeriod``."""
    return max((policy.period_seconds for policy in scaling_rules.policies or ()), default=0)


def mark_scale_events_outdated(
    scale_events: Sequence[TimestampedScaleEvent], longest_policy_period: float, now_s: float
) -> None:
    """``markScaleEventsOutdated``: events older than every policy's period are no longer needed."""
    cutoff = now_s - longest_policy_period
    for event in scale_events:
        if event.timestamp_s < cutoff:
            event.outdated = True


def store_scale_event(
    behavior: HPABehavior | None,
    scale_up_events: list[TimestampedScaleEvent],
    scale_down_events: list[TimestampedScaleEvent],
    prev_replicas: int,
    new_replicas: int,
    now_s: float,
) -> None:
    """``storeScaleEvent``: record a rescale, reusing the last outdated slot (none kept without ``behavior``).

    The history is pruned only by reuse: an event older than the direction's
    longest policy period is marked outdated and overwritten by the next one.
    """
    if behavior is None:
        return
    if new_replicas > prev_replicas:
        events, rules, change = scale_up_events, behavior.scale_up, new_replicas - prev_replicas
    else:
        events, rules, change = scale_down_events, behavior.scale_down, prev_replicas - new_replicas
    mark_scale_events_outdated(events, get_longest_policy_period(rules) if rules else 0, now_s)
    old_index = None
    for i, event in enumerate(events):
        if event.outdated:
            old_index = i
    new = TimestampedScaleEvent(change, now_s, False)
    if old_index is not None:
        events[old_index] = new
    else:
        events.append(new)


def stabilize_recommendation_with_behaviors(
    recommendations: list[TimestampedRecommendation], args: NormalizationArg, now_s: float
) -> tuple[int, str, str]:
    """``stabilizeRecommendationWithBehaviors``: hold within [min over the up window, max over the down window].

    Both windows must be set (the scale-down one from the controller flag when
    the spec leaves it unset). Records this recommendation, reusing the slot of the
    last one older than both windows. Returns (replicas, reason, message).
    """
    up_window = args.scale_up_behavior.stabilization_window_seconds
    down_window = args.scale_down_behavior.stabilization_window_seconds
    if up_window is None or down_window is None:
        raise ValueError("stabilization_window_seconds: both directions need a window here")
    up_cutoff, down_cutoff = now_s - up_window, now_s - down_window
    up_recommendation = down_recommendation = args.desired_replicas
    old_index = None
    for i, rec in enumerate(recommendations):
        if rec.timestamp_s > up_cutoff:
            up_recommendation = min(rec.recommendation, up_recommendation)
        if rec.timestamp_s > down_cutoff:
            down_recommendation = max(rec.recommendation, down_recommendation)
        if rec.timestamp_s < up_cutoff and rec.timestamp_s < down_cutoff:
            old_index = i

    recommendation = args.current_replicas
    recommendation = max(recommendation, up_recommendation)
    recommendation = min(recommendation, down_recommendation)

    new = TimestampedRecommendation(args.desired_replicas, now_s)
    if old_index is not None:
        recommendations[old_index] = new
    else:
        recommendations.append(new)

    if args.desired_replicas >= args.current_replicas:
        return (
            recommendation,
            "ScaleUpStabilized",
            "recent recommendations were lower than current one, applying the lowest recent recommendation",
        )
    return (
        recommendation,
        "ScaleDownStabilized",
        "recent recommendations were higher than current one, applying the highest recent recommendation",
    )


def _policy_limit(
    current_replicas: int,
    scale_up_events: Sequence[TimestampedScaleEvent],
    scale_down_events: Sequence[TimestampedScaleEvent],
    scaling_rules: HPAScalingRules,
    now_s: float,
    up: bool,
) -> int:
    if scaling_rules.select_policy is SelectPolicy.DISABLED:
        return current_replicas  # scaling in this direction is disabled
    # Scaling up, "Min" picks the lowest result; scaling down, the highest (the smallest change either way).
    pick_min = (scaling_rules.select_policy is SelectPolicy.MIN) == up
    result = MAX_INT32 if pick_min else MIN_INT32
    for policy in scaling_rules.policies or ():
        added = get_replicas_change_per_period(policy.period_seconds, scale_up_events, now_s)
        deleted = get_replicas_change_per_period(policy.period_seconds, scale_down_events, now_s)
        period_start_replicas = current_replicas - added + deleted
        if policy.type is PolicyType.PODS:
            proposed = period_start_replicas + policy.value if up else period_start_replicas - policy.value
        elif up:  # rounded up, or a small percent would never add a pod
            proposed = math.ceil(float(period_start_replicas) * (1 + float(policy.value) / 100))
        else:  # int32() truncates toward zero
            proposed = int(float(period_start_replicas) * (1 - float(policy.value) / 100))
        result = min(result, proposed) if pick_min else max(result, proposed)
    return result


def calculate_scale_up_limit_with_scaling_rules(
    current_replicas: int,
    scale_up_events: Sequence[TimestampedScaleEvent],
    scale_down_events: Sequence[TimestampedScaleEvent],
    scaling_rules: HPAScalingRules,
    now_s: float,
) -> int:
    """``calculateScaleUpLimitWithScalingRules``: the most replicas the scale-up policies allow now.

    Each policy counts from the replicas at the start of its period (current, less
    what was added, plus what was removed within it).
    """
    return _policy_limit(current_replicas, scale_up_events, scale_down_events, scaling_rules, now_s, up=True)


def calculate_scale_down_limit_with_behaviors(
    current_replicas: int,
    scale_up_events: Sequence[TimestampedScaleEvent],
    scale_down_events: Sequence[TimestampedScaleEvent],
    scaling_rules: HPAScalingRules,
    now_s: float,
) -> int:
    """``calculateScaleDownLimitWithBehaviors``: the fewest replicas the scale-down policies allow now."""
    return _policy_limit(current_replicas, scale_up_events, scale_down_events, scaling_rules, now_s, up=False)


def convert_desired_replicas_with_behavior_rate(
    args: NormalizationArg,
    scale_up_events: Sequence[TimestampedScaleEvent],
    scale_down_events: Sequence[TimestampedScaleEvent],
    now_s: float,
) -> tuple[int, str, str]:
    """``convertDesiredReplicasWithBehaviorRate``: apply the policies' rate limits, then min/max.

    A limit past the current count (events of a period that no longer allow any
    change) holds the count where it is. Returns (replicas, reason, message).
    """
    if args.desired_replicas > args.current_replicas:
        limit = calculate_scale_up_limit_with_scaling_rules(
            args.current_replicas, scale_up_events, scale_down_events, args.scale_up_behavior, now_s
        )
        limit = max(limit, args.current_replicas)
        if args.max_replicas > limit:
            maximum_allowed, reason = limit, "ScaleUpLimit"
            message = "the desired replica count is increasing faster than the maximum scale rate"
        else:
            maximum_allowed, reason = args.max_replicas, "TooManyReplicas"
            message = "the desired replica count is more than the maximum replica count"
        if args.desired_replicas > maximum_allowed:
            return maximum_allowed, reason, message
    elif args.desired_replicas < args.current_replicas:
        limit = calculate_scale_down_limit_with_behaviors(
            args.current_replicas, scale_up_events, scale_down_events, args.scale_down_behavior, now_s
        )
        limit = min(limit, args.current_replicas)
        if args.min_replicas < limit:
            minimum_allowed, reason = limit, "ScaleDownLimit"
            message = "the desired replica count is decreasing faster than the maximum scale rate"
        else:
            minimum_allowed, reason = args.min_replicas, "TooFewReplicas"
            message = "the desired replica count is less than the minimum replica count"
        if args.desired_replicas < minimum_allowed:
            return minimum_allowed, reason, message
    return args.desired_replicas, "DesiredWithinRange", "the desired count is within the acceptable range"


def normalize_desired_replicas_with_behaviors(
    recommendations: list[TimestampedRecommendation],
    scale_up_events: Sequence[TimestampedScaleEvent],
    scale_down_events: Sequence[TimestampedScaleEvent],
    now_s: float,
    behavior: HPABehavior,
    current_replicas: int,
    prenormalized_desired_replicas: int,
    min_replicas: int,
    max_replicas: int,
    downscale_stabilization_window_s: float = DEFAULT_DOWNSCALE_STABILIZATION_WINDOW_S,
) -> Normalization:
    """``normalizeDesiredReplicasWithBehaviors``: stabilize, then rate-limit and clamp.

    A scale-down rule without a window takes ``downscale_stabilization_window_s``
    (``maybeInitScaleDownStabilizationWindow``); unset rules take upstream's defaults.
    """
    scale_up = behavior.scale_up or generate_hpa_scale_up_rules(None)
    scale_down = behavior.scale_down or generate_hpa_scale_down_rules(None)
    if scale_down.stabilization_window_seconds is None:
        scale_down = _with_window(scale_down, downscale_stabilization_window_s)
    args = NormalizationArg(
        scale_up_behavior=scale_up,
        scale_down_behavior=scale_down,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        current_replicas=current_replicas,
        desired_replicas=prenormalized_desired_replicas,
    )
    stabilized, stabilized_reason, _ = stabilize_recommendation_with_behaviors(recommendations, args, now_s)
    able = stabilized_reason if stabilized != prenormalized_desired_replicas else "ReadyForNewScale"
    args = NormalizationArg(
        scale_up_behavior=scale_up,
        scale_down_behavior=scale_down,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        current_replicas=current_replicas,
        desired_replicas=stabilized,
    )
    desired, reason, _ = convert_desired_replicas_with_behavior_rate(args, scale_up_events, scale_down_events, now_s)
    return Normalization(desired, able, reason, desired != stabilized)


def _with_window(rules: HPAScalingRules, window_s: float) -> HPAScalingRules:
    """The controller flag as a window: upstream converts the duration to whole seconds (``int32(d.Seconds())``)."""
    return HPAScalingRules(
        stabilization_window_seconds=int(window_s),
        select_policy=rules.select_policy,
        policies=rules.policies,
        tolerance=rules.tolerance,
    )


__all__ = [
    "DEFAULT_DOWNSCALE_STABILIZATION_WINDOW_S",
    "SCALE_UP_LIMIT_FACTOR",
    "SCALE_UP_LIMIT_MINIMUM",
    "Normalization",
    "NormalizationArg",
    "TimestampedRecommendation",
    "TimestampedScaleEvent",
    "calculate_scale_down_limit_with_behaviors",
    "calculate_scale_up_limit",
    "calculate_scale_up_limit_with_scaling_rules",
    "compute_replicas_for_metrics",
    "convert_desired_replicas_with_behavior_rate",
    "convert_desired_replicas_with_rules",
    "get_longest_policy_period",
    "get_replicas_change_per_period",
    "mark_scale_events_outdated",
    "normalize_desired_replicas",
    "normalize_desired_replicas_with_behaviors",
    "stabilize_recommendation",
    "stabilize_recommendation_with_behaviors",
    "store_scale_event",
    "tolerances_for_hpa",
]

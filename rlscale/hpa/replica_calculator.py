"""The HPA's replica calculator for ``Pods`` and ``External`` metrics, with upstream's integer semantics.

Port of ``pkg/controller/podautoscaler/replica_calculator.go`` (and
``metrics/utilization.go``'s ``GetMetricUsageRatio``); see :mod:`rlscale.hpa` for
the commit read. Values are milli-units as the controller reads them
(``Quantity.MilliValue()``). The arithmetic is Go's: the average usage is an
``int64`` quotient truncated toward zero *before* the ratio is taken, replica
counts are ``int32(math.Ceil(...))``, float division by zero gives ``±Inf``/``NaN``
instead of raising, and the ``int64``/``int32`` saturations upstream added are kept.

Only the non-CPU branch of ``groupPods`` is ported: for a ``Pods`` metric, a
Running pod counts whatever its readiness; Pending pods are "unready", deleted
and terminal pods are ignored, and Running pods without a sample are "missing".
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from rlscale.pods import PodInfo, PodPhase

MAX_INT32 = 2**31 - 1
MIN_INT32 = -(2**31)
MAX_INT64 = 2**63 - 1
DEFAULT_TOLERANCE = 0.1  # --horizontal-pod-autoscaler-tolerance


class ReplicaCalculationError(RuntimeError):
    """The metric cannot give a replica count this sync; the controller counts it as an invalid metric."""


@dataclass(frozen=True, slots=True)
class Tolerances:
    """Usage-ratio tolerances: no change while ``1 - scale_down <= ratio <= 1 + scale_up``."""

    scale_down: float = DEFAULT_TOLERANCE
    scale_up: float = DEFAULT_TOLERANCE

    @classmethod
    def of(cls, tolerance: Tolerances | float) -> Tolerances:
        return tolerance if isinstance(tolerance, Tolerances) else cls(float(tolerance), float(tolerance))

    def is_within(self, usage_ratio: float) -> bool:
        return (1.0 - self.scale_down) <= usage_ratio <= (1.0 + self.scale_up)

    def __str__(self) -> str:
        return f"[down:{self.scale_down * 100:.1f}%, up:{self.scale_up * 100:.1f}%]"


# ---- Go arithmetic ----------------------------------------------------------------------


def _fdiv(a: float, b: float) -> float:
    """IEEE float division as Go does it: ``x/0`` is ``±Inf`` and ``0/0`` is ``NaN``."""
    try:
        return a / b
    except ZeroDivisionError:
        if a == 0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)


def _quo(a: int, b: int) -> int:
    """Go's integer ``/``: truncated toward zero."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _wrap_int64(x: int) -> int:
    """Go's ``int64`` addition overflow: wrap around."""
    return (x + 2**63) % 2**64 - 2**63


def _int32(x: float) -> int:
    """``int32(x)`` of an already-rounded float; out of range (undefined in Go) saturates here."""
    if math.isnan(x):
        return MIN_INT32
    if x >= MAX_INT32:
        return MAX_INT32
    if x <= MIN_INT32:
        return MIN_INT32
    return int(x)


# ---- pods -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PodGroups:
    """``groupPods`` for a non-CPU metric."""

    ready_pod_count: int
    unready_pods: frozenset[str]
    missing_pods: frozenset[str]
    ignored_pods: frozenset[str]


def group_pods(pods: Iterable[PodInfo], metrics: Mapping[str, int]) -> PodGroups:
    """Sort pods into counted, unready (Pending), missing (no sample) and ignored (deleted or terminal)."""
    ready, unready, missing, ignored = 0, set(), set(), set()
    for pod in pods:
        if pod.deletion or pod.phase in (PodPhase.FAILED, PodPhase.SUCCEEDED):  # IsPodTerminal
            ignored.add(pod.name)
        elif pod.phase is PodPhase.PENDING:
            unready.add(pod.name)
        elif pod.name not in metrics:
            missing.add(pod.name)
        else:
            ready += 1  # readiness is not checked for non-CPU metrics
    return PodGroups(ready, frozenset(unready), frozenset(missing), frozenset(ignored))


def ready_pods_count(pods: Sequence[PodInfo]) -> int:
    """``getReadyPodsCount``: Running pods whose Ready condition is true."""
    if not pods:
        raise ReplicaCalculationError("no pods returned by selector while calculating replica count")
    return sum(1 for pod in pods if pod.phase is PodPhase.RUNNING and pod.ready)


def get_metric_usage_ratio(metrics: Mapping[str, int], target_usage: int) -> tuple[float, int]:
    """``GetMetricUsageRatio``: (average / target, average), the average truncated toward zero first."""
    current_usage = _quo(sum(metrics.values()), len(metrics))
    return _fdiv(float(current_usage), float(target_usage)), current_usage


# ---- Pods metrics -----------------------------------------------------------------------


def get_metric_replicas(
    current_replicas: int,
    target_usage_milli: int,
    metrics: Mapping[str, int],
    pods: Sequence[PodInfo],
    tolerances: Tolerances | float = DEFAULT_TOLERANCE,
) -> tuple[int, int]:
    """``GetMetricReplicas`` -> ``calcPlainMetricReplicas``: (replicas, average usage in milli).

    ``metrics`` maps pod name to its sample (milli); pods without a sample are
    missing. On a scale-down they are assumed at the target, on a scale-up at zero;
    on a scale-up, Pending pods are assumed at zero. A result that would reverse
    the direction, or fall within tolerance, keeps ``current_replicas``.
    """
    tolerances = Tolerances.of(tolerances)
    if not pods:
        raise ReplicaCalculationError("no pods returned by selector while calculating replica count")
    metrics = dict(metrics)
    groups = group_pods(pods, metrics)
    for name in groups.ignored_pods | groups.unready_pods:  # removeMetricsForPods
        metrics.pop(name, None)
    if not metrics:
        raise ReplicaCalculationError("did not receive metrics for targeted pods (pods might be unready)")

    usage_ratio, usage = get_metric_usage_ratio(metrics, target_usage_milli)
    scale_up_with_unready = bool(groups.unready_pods) and usage_ratio > 1.0
    if not scale_up_with_unready and not groups.missing_pods:
        if tolerances.is_within(usage_ratio):
            return current_replicas, usage
        return _int32(math.ceil(usage_ratio * float(groups.ready_pod_count))), usage

    if groups.missing_pods:
        if usage_ratio < 1.0:  # scale-down: missing pods use exactly the target
            metrics.update(dict.fromkeys(groups.missing_pods, target_usage_milli))
        elif usage_ratio > 1.0:  # scale-up: missing pods use nothing
            metrics.update(dict.fromkeys(groups.missing_pods, 0))
    if scale_up_with_unready:
        metrics.update(dict.fromkeys(groups.unready_pods, 0))

    new_usage_ratio, _ = get_metric_usage_ratio(metrics, target_usage_milli)
    if (
        tolerances.is_within(new_usage_ratio)
        or (usage_ratio < 1.0 and new_usage_ratio > 1.0)
        or (usage_ratio > 1.0 and new_usage_ratio < 1.0)
    ):
        return current_replicas, usage
    new_replicas = _int32(math.ceil(new_usage_ratio * float(len(metrics))))
    if (new_usage_ratio < 1.0 and new_replicas > current_replicas) or (
        new_usage_ratio > 1.0 and new_replicas < current_replicas
    ):
        return current_replicas, usage
    return new_replicas, usage


# ---- External metrics -------------------------------------------------------------------


def get_usage_ratio_replica_count(
    current_replicas: int, usage_ratio: float, ready_pod_count: int, tolerances: Tolerances | float = DEFAULT_TOLERANCE
) -> int:
    """``getUsageRatioReplicaCount``: from zero replicas, ``ceil(ratio)`` with no tolerance (scale from zero)."""
    tolerances = Tolerances.of(tolerances)
    if current_replicas != 0:
        if tolerances.is_within(usage_ratio):
            return current_replicas
        replica_count = usage_ratio * float(ready_pod_count)
        if replica_count > MAX_INT32:
            return MAX_INT32
        return _int32(math.ceil(replica_count))
    return _int32(math.ceil(usage_ratio))


def get_external_metric_replicas(
    current_replicas: int,
    target_usage_milli: int,
    metric_values_milli: Iterable[int],
    ready_pod_count: int,
    tolerances: Tolerances | float = DEFAULT_TOLERANCE,
) -> tuple[int, int]:
    """``GetExternalMetricReplicas`` (``Value`` target): (replicas, summed usage in milli).

    The series returned for the metric are summed; the ratio to the target scales
    the *Ready* pod count (``ready_pod_count``: Running and Ready, as
    :func:`ready_pods_count` gives), not ``current_replicas``.
    """
    usage = 0
    for value in metric_values_milli:
        if value > 0 and usage > MAX_INT64 - value:  # cap positive overflow
            usage = MAX_INT64
            break
        usage = _wrap_int64(usage + value)
    usage_ratio = _fdiv(float(usage), float(target_usage_milli))
    return get_usage_ratio_replica_count(current_replicas, usage_ratio, ready_pod_count, tolerances), usage


def get_per_pod_usage(usage: int, status_replicas: int) -> int:
    """``getPerPodUsage``: the reported average, ``MaxInt64`` on overflow and 0 with no replicas."""
    if float(usage) >= float(MAX_INT64):
        return MAX_INT64
    if status_replicas == 0:
        return 0
    return math.ceil(float(usage) / float(status_replicas))


def get_external_per_pod_metric_replicas(
    status_replicas: int,
    target_usage_per_pod_milli: int,
    metric_values_milli: Iterable[int],
    tolerances: Tolerances | float = DEFAULT_TOLERANCE,
) -> tuple[int, int]:
    """``GetExternalPerPodMetricReplicas`` (``AverageValue`` target): (replicas, per-pod usage in milli).

    Replicas are ``ceil(sum / target)`` whenever ``sum / (target * status_replicas)``
    leaves the tolerance band; ready pods play no part.
    """
    tolerances = Tolerances.of(tolerances)
    usage = 0
    for value in metric_values_milli:
        usage = _wrap_int64(usage + value)
        if usage < 0:  # upstream's int64 overflow guard (it also catches a negative sum)
            usage = MAX_INT64
            break
    replica_count = status_replicas
    usage_ratio = _fdiv(float(usage), float(target_usage_per_pod_milli) * float(replica_count))
    if not tolerances.is_within(usage_ratio):
        result = math.ceil(float(usage) / float(target_usage_per_pod_milli))
        replica_count = MAX_INT32 if result > MAX_INT32 else _int32(result)
    return replica_count, get_per_pod_usage(usage, status_replicas)


__all__ = [
    "DEFAULT_TOLERANCE",
    "MAX_INT32",
    "MAX_INT64",
    "PodGroups",
    "ReplicaCalculationError",
    "Tolerances",
    "get_external_metric_replicas",
    "get_external_per_pod_metric_replicas",
    "get_metric_replicas",
    "get_metric_usage_ratio",
    "get_per_pod_usage",
    "get_usage_ratio_replica_count",
    "group_pods",
    "ready_pods_count",
]

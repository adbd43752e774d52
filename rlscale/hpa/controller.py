"""One HPA's controller loop with the state upstream keeps for it, independent of any simulator.

:class:`HorizontalController` holds what ``HorizontalController`` keeps per HPA key
(unstabilized recommendations, scale-up and scale-down events, the ``ScaledToZero``
condition) and runs ``reconcileAutoscaler``'s decision: disabled at zero
replicas, jump into [min, max], else the highest metric proposal (none when a
missing metric would allow a scale-down), normalized on the legacy or the
behavior path, then the rescale is recorded. Plain values in, replicas out; the
caller runs it every sync period (15 s by default) with the replicas of the scale
target and one proposal per metric, which :meth:`HorizontalController.replicas_for_metric`
computes from samples.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from rlscale.hpa.horizontal import (
    DEFAULT_DOWNSCALE_STABILIZATION_WINDOW_S,
    Normalization,
    TimestampedRecommendation,
    TimestampedScaleEvent,
    compute_replicas_for_metrics,
    normalize_desired_replicas,
    normalize_desired_replicas_with_behaviors,
    store_scale_event,
    tolerances_for_hpa,
)
from rlscale.hpa.replica_calculator import (
    DEFAULT_TOLERANCE,
    ReplicaCalculationError,
    Tolerances,
    get_external_metric_replicas,
    get_external_per_pod_metric_replicas,
    get_metric_replicas,
    ready_pods_count,
)
from rlscale.hpa.spec import ExternalMetric, HPASpec, MetricSpec, PodsMetric
from rlscale.pods import PodInfo


@dataclass(frozen=True, slots=True)
class HPAControllerConfig:
    """kube-controller-manager's HPA flags and feature gates, with their defaults."""

    tolerance: float = DEFAULT_TOLERANCE
    """--horizontal-pod-autoscaler-tolerance."""
    downscale_stabilization_window_s: float = DEFAULT_DOWNSCALE_STABILIZATION_WINDOW_S
    """--horizontal-pod-autoscaler-downscale-stabilization (5 min)."""
    sync_period_s: float = 15.0
    """--horizontal-pod-autoscaler-sync-period: how often the caller should reconcile."""
    configurable_tolerance: bool = True
    """HPAConfigurableTolerance gate (alpha in v1.33, beta and on by default since): per-direction tolerance."""
    scale_to_zero: bool = False
    """HPAScaleToZero gate (alpha, off): scale to and from zero with ``min_replicas: 0`` and External metrics."""

    def __post_init__(self) -> None:
        if not self.tolerance >= 0:
            raise ValueError(f"tolerance: must be >= 0, got {self.tolerance}")
        if not self.downscale_stabilization_window_s >= 0:
            window = self.downscale_stabilization_window_s
            raise ValueError(f"downscale_stabilization_window_s: must be >= 0, got {window}")
        if not self.sync_period_s > 0:
            raise ValueError(f"sync_period_s: must be > 0, got {self.sync_period_s}")


@dataclass(frozen=True, slots=True)
class HPADecision:
    """What one reconcile decided, with the reasons upstream would put in events and conditions."""

    now_s: float
    current_replicas: int
    desired_replicas: int
    rescale: bool
    reason: str
    """The rescale reason ("... above target", "All metrics below target", "Current number of replicas
    above Spec.MaxReplicas", ...), or why nothing was decided ("ScalingDisabled", "InvalidMetrics")."""
    metric_replicas: int | None = None
    """The combined metric proposal, before normalization."""
    normalization: Normalization | None = None


class HorizontalController:
    """The HPA controller for one HorizontalPodAutoscaler, holding its per-HPA state.

    ``recommendations=None`` is a fresh HPA: its first reconcile records the current
    replicas as a recommendation (``recordInitialRecommendation``), which holds off
    a scale-down below them for one stabilization window.
    """

    def __init__(
        self,
        spec: HPASpec,
        config: HPAControllerConfig | None = None,
        *,
        recommendations: Iterable[TimestampedRecommendation] | None = None,
        scale_up_events: Iterable[TimestampedScaleEvent] = (),
        scale_down_events: Iterable[TimestampedScaleEvent] = (),
        scaled_to_zero: bool = False,
    ) -> None:
        self.spec = spec
        self.config = config or HPAControllerConfig()
        self.recommendations: list[TimestampedRecommendation] | None = (
            None if recommendations is None else list(recommendations)
        )
        self.scale_up_events: list[TimestampedScaleEvent] = list(scale_up_events)
        self.scale_down_events: list[TimestampedScaleEvent] = list(scale_down_events)
        self.scaled_to_zero = scaled_to_zero
        """The ``ScaledToZero`` condition: this HPA took the target to zero itself."""
        self.last: HPADecision | None = None

    @property
    def tolerances(self) -> Tolerances:
        """``tolerancesForHpa``: the controller's tolerance, overridden by the spec's per-direction ones."""
        return tolerances_for_hpa(self.spec.behavior, self.config.tolerance, self.config.configurable_tolerance)

    def replicas_for_metric(
        self,
        metric: MetricSpec,
        spec_replicas: int,
        status_replicas: int,
        *,
        pods: Sequence[PodInfo] = (),
        pod_values_milli: Mapping[str, int] | None = None,
        external_values_milli: Sequence[int] | None = None,
    ) -> int | None:
        """``computeReplicasForMetric``: one metric's proposal, or ``None`` when it cannot be computed.

        A ``Pods`` metric takes the per-pod samples and the pods the selector matches;
        an ``External`` one the samples of its series (``Value``: scaled by the Ready
        pods; ``AverageValue``: divided by the target, over ``status_replicas``). No
        samples at all is an error upstream ("no metrics returned"), so ``None`` here.
        """
        try:
            if isinstance(metric, PodsMetric):
                if not pod_values_milli:
                    return None
                return get_metric_replicas(
                    spec_replicas, metric.average_value_milli, pod_values_milli, pods, self.tolerances
                )[0]
            if isinstance(metric, ExternalMetric):
                if not external_values_milli:
                    return None
                if metric.average_value_milli is not None:
                    return get_external_per_pod_metric_replicas(
                        status_replicas, metric.average_value_milli, external_values_milli, self.tolerances
                    )[0]
                assert metric.value_milli is not None
                ready = ready_pods_count(pods) if spec_replicas != 0 else 0  # from zero, pods are not listed
                return get_external_metric_replicas(
                    spec_replicas, metric.value_milli, external_values_milli, ready, self.tolerances
                )[0]
        except ReplicaCalculationError:
            return None
        raise TypeError(f"metric: want a PodsMetric or ExternalMetric, got {type(metric).__name__}")

    def reconcile(self, now_s: float, current_replicas: int, proposals: Sequence[int | None]) -> int:
        """``reconcileAutoscaler``: the replicas to set on the scale target (``current_replicas`` when unchanged).

        ``proposals`` has one entry per ``spec.metrics``: that metric's replicas, or
        ``None`` when it could not be computed this sync.
        """
        spec, config = self.spec, self.config
        if len(proposals) != len(spec.metrics):
            raise ValueError(f"proposals: want one per metric ({len(spec.metrics)}), got {len(proposals)}")
        if current_replicas < 0:
            raise ValueError(f"current_replicas: must be >= 0, got {current_replicas}")
        if self.recommendations is None:  # recordInitialRecommendation
            self.recommendations = [TimestampedRecommendation(current_replicas, now_s)]

        min_replicas = spec.min_replicas
        has_external = spec.has_external_metrics()
        scaled_to_zero = config.scale_to_zero and self.scaled_to_zero
        can_scale_from_zero = scaled_to_zero and has_external

        desired, rescale, reason = 0, True, ""
        metric_replicas: int | None = None
        normalization: Normalization | None = None
        needs_metrics = True
        if current_replicas == 0:
            # A target at zero that this HPA did not put there was scaled down by hand: autoscaling is off.
            if not ((min_replicas != 0 and scaled_to_zero) or can_scale_from_zero):
                needs_metrics, rescale, reason = False, False, "ScalingDisabled"
                if not config.scale_to_zero:
                    self.scaled_to_zero = False
        elif current_replicas > spec.max_replicas:
            desired, needs_metrics = spec.max_replicas, False
            reason = "Current number of replicas above Spec.MaxReplicas"
        elif current_replicas < min_replicas:
            desired, needs_metrics = min_replicas, False
            reason = "Current number of replicas below Spec.MinReplicas"

        if needs_metrics:
            metric_replicas = compute_replicas_for_metrics(current_replicas, proposals)
            if metric_replicas is None:  # all metrics invalid, or some invalid and the rest would scale down
                self.last = HPADecision(now_s, current_replicas, current_replicas, False, "InvalidMetrics")
                return current_replicas
            desired = max(desired, metric_replicas)
            if desired > current_replicas:
                reason = f"{_metric_description(spec.metrics, proposals)} above target"
            elif desired < current_replicas:
                reason = "All metrics below target"
            if spec.behavior is None:
                normalization = normalize_desired_replicas(
                    self.recommendations,
                    now_s,
                    current_replicas,
                    desired,
                    min_replicas,
                    spec.max_replicas,
                    config.downscale_stabilization_window_s,
                )
            else:
                normalization = normalize_desired_replicas_with_behaviors(
                    self.recommendations,
                    self.scale_up_events,
                    self.scale_down_events,
                    now_s,
                    spec.behavior,
                    current_replicas,
                    desired,
                    min_replicas,
                    spec.max_replicas,
                    config.downscale_stabilization_window_s,
                )
            desired = normalization.desired_replicas
            if current_replicas == 0 and min_replicas != 0 and scaled_to_zero and desired < min_replicas:
                desired = min_replicas  # back from zero with a raised minReplicas
                reason = reason or "Current number of replicas below Spec.MinReplicas"
            rescale = desired != current_replicas

        if rescale:
            store_scale_event(
                spec.behavior, self.scale_up_events, self.scale_down_events, current_replicas, desired, now_s
            )
            self.scaled_to_zero = config.scale_to_zero and (
                current_replicas > 0 and desired == 0 and min_replicas == 0 and has_external
            )
        else:
            desired = current_replicas
        self.last = HPADecision(now_s, current_replicas, desired, rescale, reason, metric_replicas, normalization)
        return desired


def _metric_description(metrics: Sequence[MetricSpec], proposals: Sequence[int | None]) -> str:
    """The metric whose proposal won, named as upstream names it in the rescale reason."""
    best, winner = 0, metrics[0]
    for metric, proposal in zip(metrics, proposals, strict=True):
        if proposal is not None and (best == 0 or proposal > best):
            best, winner = proposal, metric
    return f"{'pods' if isinstance(winner, PodsMetric) else 'external'} metric {winner.name}"


__all__ = ["HPAControllerConfig", "HPADecision", "HorizontalController"]

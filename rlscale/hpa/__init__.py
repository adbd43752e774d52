"""A port of the Kubernetes Horizontal Pod Autoscaler's decision algorithm, for ``Pods`` and ``External`` metrics.

The baselines of this project are HPAs; a simulated HPA that decides differently
from the real one would make every comparison wrong. So this is a line-by-line
port of upstream's logic, with Go's integer, float and rounding semantics, and
upstream's test tables as the tests (``tests/test_hpa*.py``, each case under its
upstream name).

Read from (the kubernetes/kubernetes snapshot is too large to fetch here, and the
search index's own copy of ``horizontal.go`` is from 2015, so the controller
sources come from a fork that tracks upstream master, past v1.35):

* ``pkg/controller/podautoscaler/horizontal.go``, ``replica_calculator.go``,
  ``replica_calculator_test.go``: omerap12/kubernetes at
  a769d5884497dc246960b38f3e5aae2cc30dd062 (its branch adds an ``apiGroup``
  argument to the metrics client, not modelled; the algorithm is upstream's);
* ``pkg/controller/podautoscaler/horizontal_test.go``: omerap12/kubernetes at
  060da1681551ba64d82dad3c8d4246ab81760d4d;
* ``pkg/apis/autoscaling/v2/defaults.go``: kubernetes/kubernetes at
  1adaa75345752d96375fae03334fa9ed3bf535a1, ``defaults_test.go`` at
  0a74a85ed8c08e0f0588ecc4a764883698a1b99e;
* ``pkg/controller/podautoscaler/metrics/utilization.go`` (``GetMetricUsageRatio``,
  with its exact big-integer fallback) and ``pkg/apis/autoscaling/validation``
  from upstream master as indexed; ``resource.Quantity`` from apimachinery.

Modules: :mod:`~rlscale.hpa.spec` (the spec, defaulting, manifest parsing),
:mod:`~rlscale.hpa.quantity`, :mod:`~rlscale.hpa.replica_calculator`,
:mod:`~rlscale.hpa.horizontal` (normalization, stabilization, rate limits) and
:mod:`~rlscale.hpa.controller` (one HPA's state and reconcile loop).
"""

from rlscale.hpa.controller import HorizontalController, HPAControllerConfig, HPADecision
from rlscale.hpa.horizontal import (
    Normalization,
    NormalizationArg,
    TimestampedRecommendation,
    TimestampedScaleEvent,
    calculate_scale_down_limit_with_behaviors,
    calculate_scale_up_limit,
    calculate_scale_up_limit_with_scaling_rules,
    compute_replicas_for_metrics,
    convert_desired_replicas_with_behavior_rate,
    convert_desired_replicas_with_rules,
    get_replicas_change_per_period,
    normalize_desired_replicas,
    normalize_desired_replicas_with_behaviors,
    stabilize_recommendation,
    stabilize_recommendation_with_behaviors,
    store_scale_event,
    tolerances_for_hpa,
)
from rlscale.hpa.quantity import Quantity, QuantityError, parse_quantity, parse_quantity_milli
from rlscale.hpa.replica_calculator import (
    ReplicaCalculationError,
    Tolerances,
    get_external_metric_replicas,
    get_external_per_pod_metric_replicas,
    get_metric_replicas,
    ready_pods_count,
)
from rlscale.hpa.spec import (
    ExternalMetric,
    HPABehavior,
    HPAScalingPolicy,
    HPAScalingRules,
    HPASpec,
    HPASpecError,
    PodsMetric,
    PolicyType,
    SelectPolicy,
    generate_hpa_scale_down_rules,
    generate_hpa_scale_up_rules,
)
from rlscale.pods import PodInfo, PodPhase  # the pods the calculator groups: vocabulary below every layer

__all__ = [
    "ExternalMetric",
    "HPABehavior",
    "HPAControllerConfig",
    "HPADecision",
    "HPAScalingPolicy",
    "HPAScalingRules",
    "HPASpec",
    "HPASpecError",
    "HorizontalController",
    "Normalization",
    "NormalizationArg",
    "PodInfo",
    "PodPhase",
    "PodsMetric",
    "PolicyType",
    "Quantity",
    "QuantityError",
    "ReplicaCalculationError",
    "SelectPolicy",
    "TimestampedRecommendation",
    "TimestampedScaleEvent",
    "Tolerances",
    "calculate_scale_down_limit_with_behaviors",
    "calculate_scale_up_limit",
    "calculate_scale_up_limit_with_scaling_rules",
    "compute_replicas_for_metrics",
    "convert_desired_replicas_with_behavior_rate",
    "convert_desired_replicas_with_rules",
    "generate_hpa_scale_down_rules",
    "generate_hpa_scale_up_rules",
    "get_external_metric_replicas",
    "get_external_per_pod_metric_replicas",
    "get_metric_replicas",
    "get_replicas_change_per_period",
    "normalize_desired_replicas",
    "normalize_desired_replicas_with_behaviors",
    "parse_quantity",
    "parse_quantity_milli",
    "ready_pods_count",
    "stabilize_recommendation",
    "stabilize_recommendation_with_behaviors",
    "store_scale_event",
    "tolerances_for_hpa",
]

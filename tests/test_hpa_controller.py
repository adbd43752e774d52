"""Upstream's reconcile-level tests (horizontal_test.go) for the cases a Pods/External HPA can meet.

Each case keeps its upstream name. Pods and External cases run end to end: samples ->
:meth:`HorizontalController.replicas_for_metric` -> :meth:`HorizontalController.reconcile`.
Cases whose upstream fixture is a CPU (or Object) metric are ported with that
metric's proposal given directly, computed by hand from the fixture (noted per
case); what they test is the reconcile logic, not the CPU calculator. Upstream's
tests run with ``scaleUpLimitFactor = 8``; none of these cases reach that cap.
"""

from __future__ import annotations

import pytest

from rlscale.hpa import (
    ExternalMetric,
    HorizontalController,
    HPABehavior,
    HPAControllerConfig,
    HPAScalingPolicy,
    HPAScalingRules,
    HPASpec,
    PodInfo,
    PodsMetric,
    PolicyType,
    SelectPolicy,
    TimestampedRecommendation,
)

NOW = 1_000_000.0
QPS_15 = PodsMetric("qps", 15000)
QPS_20 = PodsMetric("qps", 20000)


def pods(n: int, readiness=None) -> list[PodInfo]:
    return [PodInfo(f"test-pod-{i}", ready=readiness[i] if readiness else True) for i in range(n)]


def levels(*values: int) -> dict[str, int]:
    return {f"test-pod-{i}": v for i, v in enumerate(values)}


def controller(spec: HPASpec, *, fresh: bool = True, **config) -> HorizontalController:
    """``fresh=False`` is upstream's fixture with ``recommendations: []`` (no initial recommendation)."""
    return HorizontalController(spec, HPAControllerConfig(**config), recommendations=None if fresh else [])


def spec(min_replicas, max_replicas, *metrics, behavior=None) -> HPASpec:
    return HPASpec(max_replicas=max_replicas, metrics=metrics, min_replicas=min_replicas, behavior=behavior)


def reconcile_samples(hpa: HorizontalController, current: int, *, pod_list=(), pod_values=None, external=None) -> int:
    proposals = [
        hpa.replicas_for_metric(
            metric, current, current, pods=pod_list, pod_values_milli=pod_values, external_values_milli=external
        )
        for metric in hpa.spec.metrics
    ]
    return hpa.reconcile(NOW, current, proposals)


# ---- TestScaleUpCM -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values, readiness, want, limited",
    [
        pytest.param((20000, 10000, 30000), None, 4, "DesiredWithinRange", id="scale up custom metric"),
        pytest.param(
            (50000, 10000, 30000),
            [True, True, False],
            6,
            "DesiredWithinRange",
            id="unready and hot cpu pods do not reduce scale for custom metric",
        ),
        pytest.param(
            (50000, 15000, 30000),
            [False, True, False],
            6,
            "TooManyReplicas",
            id="unready and hot cpu pods scale to max with scaling limited condition",
        ),
    ],
)
def test_scale_up_cm(values, readiness, want, limited):
    hpa = controller(spec(2, 6, QPS_15))
    assert reconcile_samples(hpa, 3, pod_list=pods(3, readiness), pod_values=levels(*values)) == want
    assert hpa.last.rescale and hpa.last.normalization.scaling_limited_reason == limited


# ---- TestScaleUpCMExternal ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "metric",
    [
        pytest.param(ExternalMetric("qps", value_milli=6666), id="scale up external metric with value target"),
        pytest.param(
            ExternalMetric("qps", average_value_milli=2222),
            id="scale up external metric with per-pod average value target",
        ),
    ],
)
def test_scale_up_cm_external(metric):
    hpa = controller(spec(2, 6, metric))
    assert reconcile_samples(hpa, 3, pod_list=pods(3), external=[8600]) == 4


# ---- TestScaleDownCM (Pods and External cases) -------------------------------------------------


@pytest.mark.parametrize(
    "min_replicas, metric, pod_values, external, scale_to_zero, want, scaled_to_zero",
    [
        pytest.param(2, QPS_20, levels(*[12000] * 5), None, False, 3, False, id="scale down pods metric"),
        pytest.param(
            2, ExternalMetric("qps", value_milli=14400), None, [8600], False, 3, False,
            id="scale down external metric with value target",
        ),
        pytest.param(
            0, ExternalMetric("qps", value_milli=14400), None, [0], True, 0, True,
            id="scale down to zero external metric with feature gate enabled",
        ),
        pytest.param(
            0, ExternalMetric("qps", value_milli=14400), None, [0], False, 0, False,
            id="scale down to zero external metric with feature gate disabled",
        ),
        pytest.param(
            2, ExternalMetric("qps", average_value_milli=3000), None, [8600], False, 3, False,
            id="scale down per-pod external metric with average value target",
        ),
    ],
)  # fmt: skip
def test_scale_down_cm(min_replicas, metric, pod_values, external, scale_to_zero, want, scaled_to_zero):
    hpa = controller(spec(min_replicas, 6, metric), fresh=False, scale_to_zero=scale_to_zero)
    assert reconcile_samples(hpa, 5, pod_list=pods(5), pod_values=pod_values, external=external) == want
    assert hpa.scaled_to_zero is scaled_to_zero


# ---- TestTolerance, TestConfigurableTolerance --------------------------------------------------


@pytest.mark.parametrize(
    "min_replicas, current, metric, pod_values, external",
    [
        pytest.param(1, 3, QPS_20, levels(20000, 20001, 21000), None, id="pods metric within tolerance"),
        pytest.param(
            2,
            4,
            ExternalMetric("qps", value_milli=8666),
            None,
            [8600],
            id="external metric with value target within tolerance",
        ),
        pytest.param(
            2,
            4,
            ExternalMetric("qps", average_value_milli=2200),
            None,
            [8600],
            id="per-pod external metric with average value target within tolerance",
        ),
    ],
)
def test_tolerance(min_replicas, current, metric, pod_values, external):
    hpa = controller(spec(min_replicas, 6, metric))
    assert reconcile_samples(hpa, current, pod_list=pods(current), pod_values=pod_values, external=external) == current
    assert not hpa.last.rescale and hpa.last.normalization.able_to_scale_reason == "ReadyForNewScale"


@pytest.mark.parametrize(
    "gate, up_rules, down_rules, values, want, able",
    [
        pytest.param(
            True, HPAScalingRules(tolerance=0.01), None, (1010, 1030, 1020), 4, "ReadyForNewScale",
            id="Scaling up because of a 1% configurable tolerance",
        ),
        pytest.param(
            True, None, HPAScalingRules(tolerance=0.9), (300, 300, 300), 3, "ReadyForNewScale",
            id="No scale-down because of a 90% configurable tolerance",
        ),
        pytest.param(
            True, None, None, (1010, 1030, 1020), 3, "ReadyForNewScale",
            id="No scaling because of the large default tolerance",
        ),
        pytest.param(
            False, HPAScalingRules(tolerance=0.01), None, (1010, 1030, 1020), 3, "ReadyForNewScale",
            id="No scaling because the configurable tolerance is ignored as the feature gate is disabled",
        ),
    ],
)  # fmt: skip
def test_configurable_tolerance(gate, up_rules, down_rules, values, want, able):
    # Upstream's CPU fixture (utilization 102% or 30% of a 100% target) as a Pods metric with the same ratio.
    behavior = HPABehavior(up_rules, down_rules) if up_rules or down_rules else None
    hpa = controller(spec(1, 5, PodsMetric("qps", 1000), behavior=behavior), configurable_tolerance=gate)
    assert reconcile_samples(hpa, 3, pod_list=pods(3), pod_values=levels(*values)) == want
    assert hpa.last.normalization.able_to_scale_reason == able


# ---- TestReplicaLimits (CPU proposals given directly) ------------------------------------------


@pytest.mark.parametrize(
    "min_replicas, max_replicas, current, proposal, want, reason",
    [
        # CPU 10+95+10 m over 3 000 m requested = 3% of a 90% target -> ceil(0.0333 * 3) = 1.
        pytest.param(2, 5, 3, 1, 2, "All metrics below target", id="scale down clamped to min replicas"),
        pytest.param(0, 5, 3, 0, 0, "All metrics below target", id="scale down to zero when min replicas is zero"),
        pytest.param(2, 5, 3, 0, 2, "All metrics below target", id="scale down clamped to min when desired is zero"),
        pytest.param(3, 5, 0, None, 0, "ScalingDisabled", id="no scaling when spec replicas is zero"),
        pytest.param(
            3,
            5,
            2,
            None,
            3,
            "Current number of replicas below Spec.MinReplicas",
            id="scale up to min when below min replicas",
        ),
        pytest.param(
            3,
            5,
            10,
            None,
            5,
            "Current number of replicas above Spec.MaxReplicas",
            id="scale down to max when above max replicas",
        ),
        # CPU 18 500 m over 3 000 m = 616% of 90% -> ceil(6.84 * 3) = 21.
        pytest.param(
            2, 5, 3, 21, 5, "external metric cpu-as-external above target", id="scale up clamped to max replicas"
        ),
    ],
)
def test_replica_limits(min_replicas, max_replicas, current, proposal, want, reason):
    metric = ExternalMetric("cpu-as-external", value_milli=900)  # min 0 needs an External metric
    hpa = controller(spec(min_replicas, max_replicas, metric), fresh=False)
    assert hpa.reconcile(NOW, current, [proposal]) == want
    assert hpa.last.reason == reason


# ---- TestUpscaleCap (CPU proposal given directly) ----------------------------------------------


@pytest.mark.parametrize(
    "max_replicas, want, limited",
    [
        pytest.param(100, 24, "ScaleUpLimit", id="capped by scale up rules"),
        pytest.param(20, 20, "TooManyReplicas", id="capped by max replicas when scale up limit exceeds max"),
    ],
)
def test_upscale_cap(max_replicas, want, limited):
    # CPU 600 m over 300 m = 200% of a 10% target -> ceil(20 * 3) = 60; the rule allows +700% per 60 s.
    rules = HPAScalingRules(0, SelectPolicy.MAX, (HPAScalingPolicy(PolicyType.PERCENT, 700, 60),))
    hpa = controller(spec(1, max_replicas, QPS_15, behavior=HPABehavior(scale_up=rules)))
    assert hpa.reconcile(NOW, 3, [60]) == want
    assert hpa.last.normalization.scaling_limited_reason == limited


# ---- invalid metrics (CPU proposals given directly) --------------------------------------------


@pytest.mark.parametrize(
    "current, proposals, want",
    [
        # CPU 300+400+500 m over 3 000 m = 40% of 30% -> ceil(1.33 * 3) = 4; the other metric fails.
        pytest.param(3, [4, None], 4, id="TestScaleUpOneMetricInvalid"),
        pytest.param(3, [4, None], 4, id="TestScaleUpOneMetricEmpty"),
        # CPU 100+300+500+250+250 m over 5 000 m = 28% of 50% -> ceil(0.56 * 5) = 3, but a metric is missing.
        pytest.param(5, [3, None], 5, id="TestNoScaleDownOneMetricEmpty"),
        pytest.param(5, [3, None], 5, id="no scale down when one metric has invalid source type"),
        pytest.param(3, [None], 3, id="only invalid metric source type"),
    ],
)
def test_invalid_metrics(current, proposals, want):
    metrics = [QPS_15, ExternalMetric("qps", value_milli=100)][: len(proposals)]
    hpa = controller(spec(2, 6, *metrics), fresh=False)
    assert hpa.reconcile(NOW, current, proposals) == want


def test_external_metric_without_samples_is_invalid():
    hpa = controller(spec(2, 6, QPS_15, ExternalMetric("qps", value_milli=1000)), fresh=False)
    assert hpa.replicas_for_metric(hpa.spec.metrics[1], 5, 5, pods=pods(5), external_values_milli=[]) is None
    assert hpa.replicas_for_metric(hpa.spec.metrics[0], 5, 5, pods=pods(5), pod_values_milli={}) is None


# ---- TestScaleDownStabilizeInitialSize ---------------------------------------------------------


def test_scale_down_stabilize_initial_size():
    # A fresh HPA records the current size first, so the first scale-down waits one window.
    hpa = controller(spec(2, 6, QPS_20))
    assert reconcile_samples(hpa, 5, pod_list=pods(5), pod_values=levels(*[12000] * 5)) == 5
    assert hpa.last.normalization.able_to_scale_reason == "ScaleDownStabilized"
    assert hpa.recommendations == [TimestampedRecommendation(5, NOW), TimestampedRecommendation(3, NOW)]


# ---- scale to zero (TestScaleUpCMObject, TestScaleUpFromZero*, TestManualScaleToZeroDisablesHPA) ----
# Upstream's Object-metric fixtures as an External metric with a Value target: the same calculation.


@pytest.mark.parametrize(
    "gate, target, level, want",
    [
        pytest.param(True, 15000, 20000, 2, id="scale up from zero with feature gate enabled"),
        pytest.param(False, 15000, 20000, 0, id="scale up from zero with feature gate disabled"),
        pytest.param(True, 1000, 1000, 1, id="scale up from zero ignores tolerance with feature gate enabled"),
        pytest.param(False, 1000, 1000, 0, id="scale up from zero ignores tolerance with feature gate disabled"),
    ],
)
def test_scale_up_from_zero(gate, target, level, want):
    hpa = HorizontalController(
        spec(0, 6, ExternalMetric("qps", value_milli=target)),
        HPAControllerConfig(scale_to_zero=gate),
        scaled_to_zero=True,
    )
    assert reconcile_samples(hpa, 0, external=[level]) == want
    assert hpa.scaled_to_zero is False


@pytest.mark.parametrize("gate", [True, False], ids=["HPAScaleToZero=true", "HPAScaleToZero=false"])
def test_scale_up_from_zero_without_condition(gate):
    hpa = controller(spec(0, 6, ExternalMetric("qps", value_milli=15000)), scale_to_zero=gate)
    assert reconcile_samples(hpa, 0, external=[20000]) == 0
    assert hpa.last.reason == "ScalingDisabled"


@pytest.mark.parametrize("gate, want", [(True, 2), (False, 0)], ids=["HPAScaleToZero=true", "HPAScaleToZero=false"])
def test_scale_up_from_zero_when_min_replicas_increased(gate, want):
    hpa = HorizontalController(
        spec(2, 6, ExternalMetric("qps", value_milli=15000)),
        HPAControllerConfig(scale_to_zero=gate),
        scaled_to_zero=True,
    )
    assert reconcile_samples(hpa, 0, external=[10000]) == want


@pytest.mark.parametrize("gate", [True, False], ids=["HPAScaleToZero=true", "HPAScaleToZero=false"])
def test_scaled_to_zero_condition_handled_on_normal_rescale(gate):
    # CPU 1 500 m over 3 000 m = 50% of 30% -> ceil(1.67 * 3) = 5.
    hpa = HorizontalController(spec(1, 6, QPS_15), HPAControllerConfig(scale_to_zero=gate), scaled_to_zero=True)
    assert hpa.reconcile(NOW, 3, [5]) == 5
    assert hpa.scaled_to_zero is False


@pytest.mark.parametrize("gate", [True, False], ids=["HPAScaleToZero=true", "HPAScaleToZero=false"])
def test_manual_scale_to_zero_disables_hpa(gate):
    hpa = controller(spec(1, 6, QPS_15), scale_to_zero=gate)
    assert hpa.reconcile(NOW, 0, [None]) == 0
    assert hpa.last.reason == "ScalingDisabled" and not hpa.last.rescale


# ---- sequences over time (not upstream tables: the state the controller keeps) ----------------


def test_default_behavior_limits_scale_up_per_period_and_records_events():
    hpa = controller(spec(1, 100, QPS_15, behavior=HPABehavior()))
    # Default scale-up: max(+4 pods, +100%) per 15 s, counted from the period's start.
    assert hpa.reconcile(NOW, 2, [50]) == 6
    assert hpa.last.reason == "pods metric qps above target"
    assert [e.replica_change for e in hpa.scale_up_events] == [4]
    assert hpa.reconcile(NOW + 5, 6, [50]) == 6  # still inside the period: 2 -> 6 already used it up
    assert hpa.reconcile(NOW + 16, 6, [50]) == 12


def test_legacy_stabilization_window_over_time():
    hpa = controller(spec(1, 10, QPS_15))
    assert hpa.reconcile(NOW, 6, [6]) == 6
    assert hpa.reconcile(NOW + 60, 6, [2]) == 6  # 6 was recommended within 5 min
    assert hpa.reconcile(NOW + 301, 6, [2]) == 2  # both 6s now older than the window
    assert hpa.last.reason == "All metrics below target"


def test_behavior_scale_down_window_defaults_to_controller_flag():
    hpa = controller(spec(1, 10, QPS_15, behavior=HPABehavior()), downscale_stabilization_window_s=60)
    assert hpa.reconcile(NOW, 6, [2]) == 6
    assert hpa.reconcile(NOW + 61, 6, [2]) == 2


def test_reconcile_checks_its_inputs():
    hpa = controller(spec(1, 10, QPS_15))
    with pytest.raises(ValueError, match="proposals"):
        hpa.reconcile(NOW, 3, [1, 2])
    with pytest.raises(ValueError, match="tolerance"):
        HPAControllerConfig(tolerance=-1)

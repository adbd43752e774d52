"""Upstream's replica_calculator_test.go tables for Pods and External metrics, under their upstream names.

Upstream's fixture makes ``currentReplicas`` pods named ``test-pod-<i>`` (more when
``podPhase`` is longer), Running and Ready unless the case says otherwise, and
returns the metric levels for the first pods in order.
"""

from __future__ import annotations

import pytest

from rlscale.hpa import (
    PodInfo,
    PodPhase,
    ReplicaCalculationError,
    Tolerances,
    get_external_metric_replicas,
    get_external_per_pod_metric_replicas,
    get_metric_replicas,
    ready_pods_count,
)
from rlscale.hpa.replica_calculator import MAX_INT32, MAX_INT64, get_usage_ratio_replica_count, group_pods

DEFAULT = Tolerances(0.1, 0.1)
UP_1_PERCENT = Tolerances(0.1, 0.01)  # Tolerances{defaultTestingTolerance, .01}
T, F = True, False
RUNNING, PENDING, FAILED, SUCCEEDED = PodPhase.RUNNING, PodPhase.PENDING, PodPhase.FAILED, PodPhase.SUCCEEDED


def make_pods(current_replicas: int, readiness=None, phases=None, deletion=None) -> list[PodInfo]:
    """The fixture's pods: ``newFakePodClient`` / ``buildFakePod``."""
    count = max(current_replicas, len(phases or ()))
    return [
        PodInfo(
            name=f"test-pod-{i}",
            phase=phases[i] if phases else RUNNING,
            ready=readiness[i] if readiness and i < len(readiness) else True,
            deletion=bool(deletion and deletion[i]),
        )
        for i in range(count)
    ]


def pod_levels(*levels: int) -> dict[str, int]:
    return {f"test-pod-{i}": level for i, level in enumerate(levels)}


# ---- TestReplicaCalcPodMetric ------------------------------------------------------------------


@pytest.mark.parametrize(
    "current, readiness, phases, levels, target, tolerances, want_replicas, want_usage",
    [
        pytest.param(3, None, None, (20000, 10000, 30000), 15000, DEFAULT, 4, 20000, id="scale up"),
        pytest.param(
            3,
            [T, T, F],
            None,
            (50000, 10000, 30000),
            15000,
            DEFAULT,
            6,
            30000,
            id="scale up: unready hot-CPU pod scales less",
        ),
        pytest.param(
            *(3, [F, T, F], None, (50000, 15000, 30000), 15000, DEFAULT, 7, 31666),
            id="scale up: unready hot-CPU pods avoid scale-down",
        ),
        pytest.param(5, None, None, (12000,) * 5, 20000, DEFAULT, 3, 12000, id="scale down"),
        pytest.param(3, None, None, (20000, 21000, 21000), 20000, DEFAULT, 3, 20666, id="within default tolerance"),
        pytest.param(
            3, None, None, (20000, 21000, 21000), 20000, UP_1_PERCENT, 4, 20666, id="outside configurable 1% tolerance"
        ),
        pytest.param(5, None, None, (20000, 19000, 21000), 20000, DEFAULT, 5, 20000, id="no change: missing metrics"),
        pytest.param(
            *(2, None, [RUNNING] * 3, (10000, 10000), 17000, DEFAULT, 2, 10000),
            id="rolling update with maxSurge: extra pod missing metric",
        ),
    ],
)
def test_replica_calc_pod_metric(current, readiness, phases, levels, target, tolerances, want_replicas, want_usage):
    pods = make_pods(current, readiness, phases)
    assert get_metric_replicas(current, target, pod_levels(*levels), pods, tolerances) == (want_replicas, want_usage)


# ---- TestReplicaCalcExternalMetric -------------------------------------------------------------


@pytest.mark.parametrize(
    "current, readiness, levels, target, tolerances, want_replicas, want_usage",
    [
        pytest.param(
            3,
            [F, T, F],
            [8600],
            4400,
            DEFAULT,
            2,
            8600,
            id="scale down: ignores unready pods (would otherwise scale up)",
        ),
        pytest.param(5, None, [8600], 14334, DEFAULT, 3, 8600, id="scale down"),
        pytest.param(3, None, [8600], 8888, DEFAULT, 3, 8600, id="within default tolerance"),
        pytest.param(3, None, [8900], 8800, UP_1_PERCENT, 4, 8900, id="outside configurable 1% tolerance"),
        pytest.param(
            *(3, None, [MAX_INT64 // 2 + 1] * 2, MAX_INT64, DEFAULT, 3, MAX_INT64), id="usage overflow caps at MaxInt64"
        ),
    ],
)
def test_replica_calc_external_metric(current, readiness, levels, target, tolerances, want_replicas, want_usage):
    ready = ready_pods_count(make_pods(current, readiness))
    assert get_external_metric_replicas(current, target, levels, ready, tolerances) == (want_replicas, want_usage)


# ---- TestReplicaCalcExternalPerPodMetric -------------------------------------------------------


@pytest.mark.parametrize(
    "status_replicas, levels, target, tolerances, want_replicas, want_usage",
    [
        pytest.param(
            1, [MAX_INT64], 1, DEFAULT, MAX_INT32, MAX_INT64, id="replica count overflow saturates to MaxInt32"
        ),
        pytest.param(
            1,
            [MAX_INT64],
            MAX_INT64,
            DEFAULT,
            1,
            MAX_INT64,
            id="usage overflow with huge target leaves replicas unchanged",
        ),
        pytest.param(0, [20000], 5000, DEFAULT, 4, 0, id="statusReplicas zero does not overflow usage"),
        pytest.param(0, [0], 5000, DEFAULT, 0, 0, id="statusReplicas zero and metric zero does not underflow"),
        pytest.param(3, [8600], 2150, DEFAULT, 4, 2867, id="scale up"),
        pytest.param(5, [8600], 2867, DEFAULT, 3, 1720, id="scale down"),
        pytest.param(3, [8600], 2900, DEFAULT, 3, 2867, id="within default tolerance"),
        pytest.param(3, [8600], 2800, UP_1_PERCENT, 4, 2867, id="outside configurable 1% tolerance"),
    ],
)
def test_replica_calc_external_per_pod_metric(status_replicas, levels, target, tolerances, want_replicas, want_usage):
    result = get_external_per_pod_metric_replicas(status_replicas, target, levels, tolerances)
    assert result == (want_replicas, want_usage)


# ---- the non-CPU branch of groupPods and its errors (not an upstream table) ---------------------


def test_group_pods_non_cpu():
    pods = [
        PodInfo("running-unready", ready=False),
        PodInfo("pending", PENDING, ready=False),
        PodInfo("failed", FAILED),
        PodInfo("succeeded", SUCCEEDED),
        PodInfo("deleting", deletion=True),
        PodInfo("no-sample"),
    ]
    metrics = dict.fromkeys(["running-unready", "pending", "failed", "succeeded", "deleting"], 1)
    groups = group_pods(pods, metrics)
    assert groups.ready_pod_count == 1  # readiness does not matter for a Pods metric
    assert groups.unready_pods == {"pending"}
    assert groups.ignored_pods == {"failed", "succeeded", "deleting"}
    assert groups.missing_pods == {"no-sample"}


def test_pending_pods_count_as_zero_on_scale_up():
    # 2 running pods at 2x the target and 2 pending: ratio 2 -> pending at 0 -> ratio 1.0: within tolerance.
    pods = make_pods(4, phases=[RUNNING, RUNNING, PENDING, PENDING])
    assert get_metric_replicas(4, 1000, pod_levels(2000, 2000), pods) == (4, 2000)
    # 3 running at 3x, 1 pending: (9000 + 0) / 4 = 2250 -> ceil(2.25 * 4) = 9 (as ceil(3 * 3) without it).
    pods = make_pods(4, phases=[RUNNING, RUNNING, RUNNING, PENDING])
    assert get_metric_replicas(4, 1000, pod_levels(3000, 3000, 3000), pods) == (9, 3000)


def test_missing_pods_on_scale_up_count_as_zero():
    # 2 of 4 pods report 4x: missing at 0 -> average 2x over 4 pods -> 8 (not 16).
    assert get_metric_replicas(4, 1000, pod_levels(4000, 4000), make_pods(4)) == (8, 4000)


def test_terminal_and_deleted_pods_are_ignored():
    pods = make_pods(2, phases=[RUNNING, RUNNING, FAILED, SUCCEEDED], deletion=[F, F, F, F])
    pods.append(PodInfo("test-pod-4", deletion=True))
    levels = pod_levels(1500, 1500, 0, 0, 0)
    assert get_metric_replicas(2, 1000, levels, pods) == (3, 1500)


def test_superfluous_samples_are_counted():
    # Upstream keeps samples of pods the selector no longer matches in the average.
    levels = {"test-pod-0": 1000, "gone": 3000}
    assert get_metric_replicas(1, 1000, levels, make_pods(1)) == (2, 2000)


def test_average_is_truncated_before_the_ratio():
    # (1000 + 1000 + 1001) / 3 = 1000 (int64 division), so the ratio is exactly 1.0 even with 0 tolerance.
    assert get_metric_replicas(3, 1000, pod_levels(1000, 1000, 1001), make_pods(3), 0.0) == (3, 1000)


def test_errors():
    with pytest.raises(ReplicaCalculationError, match="no pods returned by selector"):
        get_metric_replicas(1, 1000, pod_levels(1), [])
    with pytest.raises(ReplicaCalculationError, match="did not receive metrics for targeted pods"):
        get_metric_replicas(1, 1000, pod_levels(1), [PodInfo("test-pod-0", PENDING)])
    with pytest.raises(ReplicaCalculationError, match="no pods returned by selector"):
        ready_pods_count([])


def test_scale_from_zero_ignores_tolerance_and_ready_pods():
    assert get_usage_ratio_replica_count(0, 1.0, 0) == 1
    assert get_usage_ratio_replica_count(0, 0.0, 0) == 0
    assert get_external_metric_replicas(0, 15000, [20000], ready_pod_count=0) == (2, 20000)


def test_tolerances_band():
    band = Tolerances(scale_down=0.2, scale_up=0.05)
    assert band.is_within(0.8) and band.is_within(1.05)
    assert not band.is_within(0.79) and not band.is_within(1.06)
    assert not band.is_within(float("nan"))
    assert str(band) == "[down:20.0%, up:5.0%]"
    assert Tolerances.of(0.3) == Tolerances(0.3, 0.3)

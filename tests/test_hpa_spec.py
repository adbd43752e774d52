"""The HPA spec: upstream's defaulting tables (pkg/apis/autoscaling/v2/defaults_test.go), quantities, manifests."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rlscale.hpa import (
    ExternalMetric,
    HPABehavior,
    HPAScalingPolicy,
    HPAScalingRules,
    HPASpec,
    HPASpecError,
    PodsMetric,
    PolicyType,
    QuantityError,
    SelectPolicy,
    generate_hpa_scale_down_rules,
    generate_hpa_scale_up_rules,
    parse_quantity,
    parse_quantity_milli,
)

PODS, PERCENT = PolicyType.PODS, PolicyType.PERCENT
MAX, MIN = SelectPolicy.MAX, SelectPolicy.MIN
AGENTS = Path(__file__).resolve().parents[1] / "agents"


def _rules(pods, pods_period, percent, percent_period, window, select) -> HPAScalingRules:
    """The table's input: a policy is added when its value or period is set."""
    policies = []
    if pods or pods_period:
        policies.append(HPAScalingPolicy(PODS, pods, pods_period))
    if percent or percent_period:
        policies.append(HPAScalingPolicy(PERCENT, percent, percent_period))
    return HPAScalingRules(
        stabilization_window_seconds=window, select_policy=select, policies=tuple(policies) if policies else None
    )


# ---- TestGenerateScaleDownRules / TestGenerateScaleUpRules -------------------------------------


@pytest.mark.parametrize(
    "pods, pods_period, percent, percent_period, window, select, want_policies, want_window, want_select",
    [
        pytest.param(0, 0, 0, 0, None, None, [(PERCENT, 100, 15)], None, MAX, id="Default values"),
        pytest.param(1, 2, 3, 4, 25, MAX, [(PODS, 1, 2), (PERCENT, 3, 4)], 25, MAX, id="All parameters are specified"),
        pytest.param(0, 0, 1, 2, None, MIN, [(PERCENT, 1, 2)], None, MIN, id="Percent policy is specified"),
        pytest.param(3, 4, 0, 0, None, None, [(PODS, 3, 4)], None, MAX, id="Pods policy is specified"),
    ],
)
def test_generate_scale_down_rules(
    pods, pods_period, percent, percent_period, window, select, want_policies, want_window, want_select
):
    down = generate_hpa_scale_down_rules(_rules(pods, pods_period, percent, percent_period, window, select))
    assert [(p.type, p.value, p.period_seconds) for p in down.policies] == want_policies
    assert down.stabilization_window_seconds == want_window
    assert down.select_policy is want_select


@pytest.mark.parametrize(
    "pods, pods_period, percent, percent_period, window, select, want_policies, want_window, want_select",
    [
        pytest.param(0, 0, 0, 0, None, None, [(PODS, 4, 15), (PERCENT, 100, 15)], 0, MAX, id="Default values"),
        pytest.param(1, 2, 3, 4, 25, MAX, [(PODS, 1, 2), (PERCENT, 3, 4)], 25, MAX, id="All parameters are specified"),
        pytest.param(1, 2, 0, 0, None, MIN, [(PODS, 1, 2)], 0, MIN, id="Pod policy is specified"),
        pytest.param(0, 0, 7, 10, None, None, [(PERCENT, 7, 10)], 0, MAX, id="Percent policy is specified"),
        pytest.param(
            4, 2, 0, 0, 25, None, [(PODS, 4, 2)], 25, MAX, id="Pod policy and stabilization window are specified"
        ),
        pytest.param(
            0,
            0,
            7,
            60,
            25,
            None,
            [(PERCENT, 7, 60)],
            25,
            MAX,
            id="Percent policy and stabilization window are specified",
        ),
    ],
)
def test_generate_scale_up_rules(
    pods, pods_period, percent, percent_period, window, select, want_policies, want_window, want_select
):
    up = generate_hpa_scale_up_rules(_rules(pods, pods_period, percent, percent_period, window, select))
    assert [(p.type, p.value, p.period_seconds) for p in up.policies] == want_policies
    assert up.stabilization_window_seconds == want_window
    assert up.select_policy is want_select


def test_generated_rules_keep_tolerance_and_unset_rules_get_defaults():
    assert generate_hpa_scale_up_rules(HPAScalingRules(tolerance=0.05)).tolerance == 0.05
    assert generate_hpa_scale_up_rules(None).policies == (
        HPAScalingPolicy(PODS, 4, 15),
        HPAScalingPolicy(PERCENT, 100, 15),
    )
    assert generate_hpa_scale_down_rules(None).stabilization_window_seconds is None  # the controller's flag


def test_absent_behavior_is_distinct_from_default_behavior():
    metric = PodsMetric("qps", 1000)
    assert HPASpec(max_replicas=5, metrics=[metric]).behavior is None  # legacy path
    spec = HPASpec(max_replicas=5, metrics=[metric], behavior=HPABehavior())
    assert spec.behavior == HPABehavior(generate_hpa_scale_up_rules(None), generate_hpa_scale_down_rules(None))


# ---- quantities ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, milli",
    [
        ("500m", 500),
        ("3", 3000),
        ("1.5", 1500),
        ("0.95", 950),
        ("2k", 2_000_000),
        ("1Gi", 1_073_741_824_000),
        ("1Ki", 1_024_000),
        ("1.5Mi", 1_572_864_000),
        ("1e3", 1_000_000),
        ("1E-2", 10),
        (".5", 500),
        ("+2", 2000),
        (5, 5000),
        (0.95, 950),
        ("0.0001", 1),  # MilliValue rounds up: a tiny positive target is never zero
        ("0.1m", 1),
        ("1n", 1),
        ("1500u", 2),
        ("-1.5m", -2),  # away from zero
        ("12345678901234567890", 12345678901234567890000),
    ],
)
def test_parse_quantity_milli(raw, milli):
    assert parse_quantity_milli(raw) == milli


@pytest.mark.parametrize("raw", ["", "abc", "1K", "5 ", "1e", "1.2.3", "--1", True, None, float("inf"), [1]])
def test_parse_quantity_refuses(raw):
    with pytest.raises(QuantityError):
        parse_quantity(raw)


def test_quantity_approximate_float_is_upstreams():
    # AsApproximateFloat64: unscaled * 10**scale, as Go computes it (95 * 0.01, not the nearest double to 0.95).
    assert parse_quantity("0.05").as_approximate_float64() == 0.05
    assert parse_quantity("0.95").as_approximate_float64() == 95 * 0.01
    assert parse_quantity("2k").as_approximate_float64() == 2000.0


# ---- manifests ----------------------------------------------------------------------------------

MANIFEST = """
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: jetstream-hpa
  namespace: default
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: maxengine-server
  minReplicas: 1
  maxReplicas: 8
  metrics:
    - type: Pods
      pods:
        metric:
          name: prometheus.googleapis.com|jetstream_prefill_backlog_size|gauge
        target:
          type: AverageValue
          averageValue: "5"
    - type: External
      external:
        metric:
          name: memory_used_percentage
          selector:
            matchLabels:
              cluster: jetstream
        target:
          type: Value
          value: 0.95
  behavior:
    scaleUp:
      tolerance: "0.05"
      policies:
        - type: Pods
          value: 2
          periodSeconds: 60
    scaleDown:
      stabilizationWindowSeconds: 600
      selectPolicy: Min
      policies:
        - {type: Percent, value: 10, periodSeconds: 60}
        - {type: Pods, value: 1, periodSeconds: 120}
"""


def _doc() -> dict:
    return yaml.safe_load(MANIFEST)


def test_manifest_realistic():
    spec = HPASpec.from_manifest(_doc())
    assert spec.name == "jetstream-hpa"
    assert (spec.min_replicas, spec.max_replicas) == (1, 8)
    assert spec.scale_target_ref.kind == "Deployment" and spec.scale_target_ref.name == "maxengine-server"
    backlog, memory = spec.metrics
    assert backlog == PodsMetric("prometheus.googleapis.com|jetstream_prefill_backlog_size|gauge", 5000)
    assert isinstance(memory, ExternalMetric) and memory.name == "memory_used_percentage"
    assert (memory.value_milli, memory.average_value_milli) == (950, None)
    assert memory.selector.match_labels == (("cluster", "jetstream"),)
    up, down = spec.behavior.scale_up, spec.behavior.scale_down
    assert up == HPAScalingRules(0, MAX, (HPAScalingPolicy(PODS, 2, 60),), 0.05)  # window and policy defaulted
    assert down == HPAScalingRules(600, MIN, (HPAScalingPolicy(PERCENT, 10, 60), HPAScalingPolicy(PODS, 1, 120)), None)


def test_manifest_minimal_defaults():
    doc = _doc()
    del doc["spec"]["minReplicas"], doc["spec"]["behavior"]
    spec = HPASpec.from_manifest(doc)
    assert spec.min_replicas == 1 and spec.behavior is None


@pytest.mark.parametrize("path", sorted(AGENTS.glob("hpa-*.yaml")), ids=lambda p: p.name)
def test_manifest_project_agents_parse(path):
    spec = HPASpec.from_manifest(yaml.safe_load(path.read_text()))
    assert spec.metrics and spec.max_replicas >= spec.min_replicas


def _set(doc: dict, dotted: str, value) -> dict:
    node = doc
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    if value is _DELETE:
        del node[int(leaf) if leaf.isdigit() else leaf]
    else:
        node[int(leaf) if leaf.isdigit() else leaf] = value
    return doc


_DELETE = object()


@pytest.mark.parametrize(
    "edit, value, path, message",
    [
        (
            "spec.metrics.0.pods.target.averageValue",
            "five",
            "spec.metrics[0].pods.target.averageValue",
            "not a quantity",
        ),
        (
            "spec.metrics.0.pods.target.averageValue",
            "0",
            "spec.metrics[0].pods.target.averageValue",
            "must be positive",
        ),
        (
            "spec.metrics.0.pods.target.averageValue",
            _DELETE,
            "spec.metrics[0].pods.target.averageValue",
            "averageValue",
        ),
        ("spec.metrics.0.pods.metric.name", "a/b", "spec.metrics[0].pods.metric.name", "may not contain"),
        ("spec.metrics.0.pods.metric.name", _DELETE, "spec.metrics[0].pods.metric.name", "metric name"),
        ("spec.metrics.0.type", "Resource", "spec.metrics[0].type", "not modelled"),
        ("spec.metrics.0.pods.target.type", "Bogus", "spec.metrics[0].pods.target.type", "AverageValue"),
        ("spec.metrics.0.pods.target.averagevalue", "5", "spec.metrics[0].pods.target.averagevalue", "unknown field"),
        (
            "spec.metrics.1.external.target.averageValue",
            "1",
            "spec.metrics[1].external.target.value",
            "may not set both",
        ),
        ("spec.metrics.1.external.target.value", -1, "spec.metrics[1].external.target.value", "must be positive"),
        ("spec.maxReplicas", 0, "spec.maxReplicas", "greater than 0"),
        ("spec.maxReplicas", "8", "spec.maxReplicas", "integer"),
        ("spec.minReplicas", 9, "spec.maxReplicas", "min_replicas (9)"),
        ("spec.scaleTargetRef", _DELETE, "spec.scaleTargetRef", "required"),
        ("spec.behavior.scaleUp.tolerance", "-0.1", "spec.behavior.scaleUp.tolerance", ">= 0"),
        ("spec.behavior.scaleUp.policies", [], "spec.behavior.scaleUp.policies", "at least one Policy"),
        ("spec.behavior.scaleDown.selectPolicy", "Fastest", "spec.behavior.scaleDown.selectPolicy", "unsupported"),
        (
            "spec.behavior.scaleDown.stabilizationWindowSeconds",
            3601,
            "spec.behavior.scaleDown.stabilizationWindowSeconds",
            "3600",
        ),
        ("spec.behavior.scaleDown.policies.0.type", "Nodes", "spec.behavior.scaleDown.policies[0].type", "unsupported"),
        (
            "spec.behavior.scaleDown.policies.0.value",
            0,
            "spec.behavior.scaleDown.policies[0].value",
            "greater than zero",
        ),
        (
            "spec.behavior.scaleDown.policies.1.periodSeconds",
            1801,
            "spec.behavior.scaleDown.policies[1].periodSeconds",
            "1800",
        ),
        ("apiVersion", "autoscaling/v1", "apiVersion", "autoscaling/v2"),
        ("spec.replicas", 3, "spec.replicas", "unknown field"),
    ],
)
def test_manifest_errors_name_the_path(edit, value, path, message):
    with pytest.raises(HPASpecError) as info:
        HPASpec.from_manifest(_set(_doc(), edit, value))
    assert info.value.field == path
    assert message in str(info.value)


def test_min_replicas_zero_needs_an_external_metric():
    doc = _set(_doc(), "spec.minReplicas", 0)
    assert HPASpec.from_manifest(doc).min_replicas == 0  # HPAScaleToZero with an External metric
    doc["spec"]["metrics"].pop()
    with pytest.raises(HPASpecError, match=r"spec\.minReplicas: 0 needs at least one External metric"):
        HPASpec.from_manifest(doc)


def test_python_constructors_name_the_field():
    with pytest.raises(HPASpecError, match=r"^max_replicas: "):
        HPASpec(max_replicas=0, metrics=[PodsMetric("qps", 1000)])
    with pytest.raises(HPASpecError, match=r"^metrics: "):
        HPASpec(max_replicas=3, metrics=[])
    with pytest.raises(HPASpecError, match=r"^average_value_milli: "):
        PodsMetric("qps", 0)
    with pytest.raises(HPASpecError, match=r"^period_seconds: "):
        HPAScalingPolicy(PODS, 1, 0)
    with pytest.raises(HPASpecError, match=r"^tolerance: "):
        HPAScalingRules(tolerance=-0.5)


# ---- metric types rlscale does not model: refused with the field, the reason and what to write instead ----
OBJECT_METRIC = {
    "type": "Object",
    "object": {
        "describedObject": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "main-route"},
        "metric": {"name": "requests-per-second"},
        "target": {"type": "Value", "value": "10k"},
    },
}
CPU_METRIC = {
    "type": "Resource",
    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}},
}
CONTAINER_METRIC = {
    "type": "ContainerResource",
    "containerResource": {
        "name": "memory",
        "container": "jetstream",
        "target": {"type": "AverageValue", "averageValue": "20Gi"},
    },
}


def _with_metric(metric: dict) -> dict:
    doc = _doc()
    doc["spec"]["metrics"][1] = metric
    return doc


def _refusal(metric: dict) -> HPASpecError:
    with pytest.raises(HPASpecError) as info:
        HPASpec.from_manifest(_with_metric(metric))
    assert info.value.field == "spec.metrics[1].type"
    return info.value


def test_an_object_metric_is_refused_with_the_equivalent_to_write():
    message = _refusal(OBJECT_METRIC).message
    assert "no per-object series" in message
    assert "per-pod series (Pods metrics) and aggregates (External metrics)" in message
    assert "type: External with the same value or averageValue target" in message
    assert "the same calculation" in message  # upstream's Object and External replica counts agree
    assert "type: Pods with an averageValue target" in message


@pytest.mark.parametrize("metric", [CPU_METRIC, CONTAINER_METRIC], ids=["Resource", "ContainerResource"])
def test_cpu_and_memory_metrics_are_refused_with_what_to_scale_on_instead(metric):
    message = _refusal(metric).message
    assert f"{metric['type']!r} metrics (CPU, memory) are not modelled" in message
    assert "agents/hpa-prefill-backlog.yaml" in message and "agents/hpa-hbm.yaml" in message


def test_an_unknown_metric_type_lists_the_types():
    message = _refusal({"type": "Custom"}).message
    assert "unsupported value 'Custom'" in message
    assert "Pods, External, Object, Resource or ContainerResource" in message


def test_simulate_names_the_file_and_the_field_and_exits_2(tmp_path):
    from typer.testing import CliRunner

    from rlscale.cli import app

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(_with_metric(OBJECT_METRIC)))
    result = CliRunner().invoke(app, ["simulate", "--agent", str(bad), "--duration", "30"])
    assert result.exit_code == 2, result.output
    assert f"error: {bad}: spec.metrics[1].type: 'Object' metrics are not modelled" in result.output
    assert "no per-object series" in result.output

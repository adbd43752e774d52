"""The ``autoscaling/v2`` HorizontalPodAutoscaler spec as data, with upstream's defaulting and validation.

Only what a JetStream fleet needs is modelled: ``Pods`` metrics with an
``AverageValue`` target and ``External`` metrics with a ``Value`` or
``AverageValue`` target. ``behavior`` keeps upstream's distinction: an HPA without
``spec.behavior`` takes the controller's legacy path (``normalizeDesiredReplicas``),
which is *not* the same as default behaviors; with ``behavior`` present, unset
rules are filled from upstream's defaults (``GenerateHPAScaleUpRules`` /
``GenerateHPAScaleDownRules``), and a scale-down rule without a stabilization
window keeps ``None``: the controller fills it from its flag (5 min by default).

Field errors name the field: ``max_replicas: ...`` for Python constructors, the
Kubernetes path (``spec.metrics[0].pods.target.averageValue: ...``) for manifests.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from rlscale.hpa.quantity import QuantityError, parse_quantity

MAX_STABILIZATION_WINDOW_SECONDS = 3600  # validation.MaxStabilizationWindowSeconds
MAX_PERIOD_SECONDS = 1800  # validation.MaxPeriodSeconds
MAX_INT32 = 2**31 - 1


class HPASpecError(ValueError):
    """An invalid HPA spec; ``field`` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


# ---- validation helpers ----------------------------------------------------------------


def _check_int32(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise HPASpecError(name, f"want an integer, got {value!r}")
    if not -(2**31) <= value <= MAX_INT32:
        raise HPASpecError(name, f"{value} does not fit an int32")


def _check_metric_name(name: object) -> None:
    """``validateMetricIdentifier``: a non-empty path segment name."""
    if not isinstance(name, str) or not name:
        raise HPASpecError("name", "must specify a metric name")
    if name in (".", ".."):
        raise HPASpecError("name", f"may not be {name!r}")
    for bad in ("/", "%"):
        if bad in name:
            raise HPASpecError("name", f"may not contain {bad!r}")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


class PolicyType(StrEnum):
    PODS = "Pods"
    PERCENT = "Percent"


class SelectPolicy(StrEnum):
    MAX = "Max"
    MIN = "Min"
    DISABLED = "Disabled"


@dataclass(frozen=True, slots=True)
class HPAScalingPolicy:
    """One rate limit: at most ``value`` pods (or percent) of change per ``period_seconds``."""

    type: PolicyType
    value: int
    period_seconds: int

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "type", PolicyType(self.type))
        except ValueError:
            raise HPASpecError("type", f"unsupported value {self.type!r}: want 'Pods' or 'Percent'") from None
        _check_int32("value", self.value)
        _check_int32("period_seconds", self.period_seconds)
        if self.value <= 0:
            raise HPASpecError("value", f"must be greater than zero, got {self.value}")
        if self.period_seconds <= 0:
            raise HPASpecError("period_seconds", f"must be greater than zero, got {self.period_seconds}")
        if self.period_seconds > MAX_PERIOD_SECONDS:
            raise HPASpecError("period_seconds", f"must be less than or equal to {MAX_PERIOD_SECONDS}")


@dataclass(frozen=True, slots=True)
class HPAScalingRules:
    """One direction's behavior; ``None`` fields are unset (filled by upstream's defaulting)."""

    stabilization_window_seconds: int | None = None
    select_policy: SelectPolicy | None = None
    policies: tuple[HPAScalingPolicy, ...] | None = None
    tolerance: float | None = None
    """Per-direction tolerance (``HPAConfigurableTolerance``): the quantity read with ``AsApproximateFloat64``."""

    def __post_init__(self) -> None:
        window = self.stabilization_window_seconds
        if window is not None:
            _check_int32("stabilization_window_seconds", window)
            if window < 0:
                raise HPASpecError(
                    "stabilization_window_seconds", f"must be greater than or equal to zero, got {window}"
                )
            if window > MAX_STABILIZATION_WINDOW_SECONDS:
                raise HPASpecError(
                    "stabilization_window_seconds", f"must be less than or equal to {MAX_STABILIZATION_WINDOW_SECONDS}"
                )
        if self.select_policy is not None:
            try:
                object.__setattr__(self, "select_policy", SelectPolicy(self.select_policy))
            except ValueError:
                raise HPASpecError(
                    "select_policy", f"unsupported value {self.select_policy!r}: want 'Max', 'Min' or 'Disabled'"
                ) from None
        if self.policies is not None:
            object.__setattr__(self, "policies", tuple(self.policies))
            if not self.policies:
                raise HPASpecError("policies", "must specify at least one Policy")
        if self.tolerance is not None and not self.tolerance >= 0:
            raise HPASpecError("tolerance", f"must be greater than or equal to zero, got {self.tolerance}")


@dataclass(frozen=True, slots=True)
class HPABehavior:
    """``spec.behavior``; once in an :class:`HPASpec` both directions are filled by upstream's defaulting."""

    scale_up: HPAScalingRules | None = None
    scale_down: HPAScalingRules | None = None


# Upstream's defaults (pkg/apis/autoscaling/v2/defaults.go): they repeat the legacy controller's limits.
DEFAULT_SCALE_UP_RULES = HPAScalingRules(
    stabilization_window_seconds=0,
    select_policy=SelectPolicy.MAX,
    policies=(HPAScalingPolicy(PolicyType.PODS, 4, 15), HPAScalingPolicy(PolicyType.PERCENT, 100, 15)),
)
DEFAULT_SCALE_DOWN_RULES = HPAScalingRules(
    stabilization_window_seconds=None,  # the controller's --horizontal-pod-autoscaler-downscale-stabilization
    select_policy=SelectPolicy.MAX,
    policies=(HPAScalingPolicy(PolicyType.PERCENT, 100, 15),),
)


def _copy_hpa_scaling_rules(source: HPAScalingRules | None, defaults: HPAScalingRules) -> HPAScalingRules:
    """``copyHPAScalingRules``: every field set in ``source`` wins over the default."""
    if source is None:
        return defaults
    return replace(
        defaults,
        **{
            name: getattr(source, name)
            for name in ("select_policy", "stabilization_window_seconds", "policies", "tolerance")
            if getattr(source, name) is not None
        },
    )


def generate_hpa_scale_up_rules(rules: HPAScalingRules | None) -> HPAScalingRules:
    """``GenerateHPAScaleUpRules``: scale-up rules with no field left unset."""
    return _copy_hpa_scaling_rules(rules, DEFAULT_SCALE_UP_RULES)


def generate_hpa_scale_down_rules(rules: HPAScalingRules | None) -> HPAScalingRules:
    """``GenerateHPAScaleDownRules``: as scale-up, except the window may stay ``None`` (the controller's flag)."""
    return _copy_hpa_scaling_rules(rules, DEFAULT_SCALE_DOWN_RULES)


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A metric's label selector, kept as written (the controller passes it to the metrics API)."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[tuple[str, str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True, slots=True)
class PodsMetric:
    """``type: Pods``: a per-pod metric averaged over pods, against ``target.averageValue`` (milli-units)."""

    name: str
    average_value_milli: int
    selector: LabelSelector | None = None

    def __post_init__(self) -> None:
        _check_metric_name(self.name)
        if self.average_value_milli <= 0:
            raise HPASpecError("average_value_milli", f"must be positive, got {self.average_value_milli}")


@dataclass(frozen=True, slots=True)
class ExternalMetric:
    """``type: External``: a metric from outside the cluster's objects, with exactly one target (milli-units).

    ``value_milli`` compares the metric's sum with the target; ``average_value_milli``
    divides the sum by the target to get replicas directly.
    """

    name: str
    value_milli: int | None = None
    average_value_milli: int | None = None
    selector: LabelSelector | None = None

    def __post_init__(self) -> None:
        _check_metric_name(self.name)
        if self.value_milli is None and self.average_value_milli is None:
            raise HPASpecError("average_value_milli", "must set either a target value for metric or a per-pod target")
        if self.value_milli is not None and self.average_value_milli is not None:
            raise HPASpecError("value_milli", "may not set both a target value for metric and a per-pod target")
        for name in ("value_milli", "average_value_milli"):
            target = getattr(self, name)
            if target is not None and target <= 0:
                raise HPASpecError(name, f"must be positive, got {target}")


MetricSpec = PodsMetric | ExternalMetric


@dataclass(frozen=True, slots=True)
class ScaleTargetRef:
    kind: str
    name: str
    api_version: str = ""


@dataclass(frozen=True, slots=True)
class HPASpec:
    """``HorizontalPodAutoscalerSpec``, defaulted as the API server stores it.

    ``behavior=None`` is the legacy controller path; any ``behavior`` (even empty)
    selects the behavior path with upstream's defaults filled in.
    """

    max_replicas: int
    metrics: tuple[MetricSpec, ...]
    min_replicas: int = 1
    behavior: HPABehavior | None = None
    scale_target_ref: ScaleTargetRef | None = None
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "metrics", tuple(self.metrics))
        _check_int32("min_replicas", self.min_replicas)
        _check_int32("max_replicas", self.max_replicas)
        if not self.metrics:
            raise HPASpecError(
                "metrics", "at least one Pods or External metric is required (the CPU default is not modelled)"
            )
        for i, metric in enumerate(self.metrics):
            if not isinstance(metric, PodsMetric | ExternalMetric):
                raise HPASpecError(f"metrics[{i}]", f"want a PodsMetric or ExternalMetric, got {type(metric).__name__}")
        if self.min_replicas < 0:
            raise HPASpecError("min_replicas", f"must be greater than or equal to 0, got {self.min_replicas}")
        if self.min_replicas == 0 and not self.has_external_metrics():
            # HPAScaleToZero (alpha): zero is accepted only with an Object or External metric.
            raise HPASpecError(
                "min_replicas", "0 needs at least one External metric (HPAScaleToZero); otherwise it must be > 0"
            )
        if self.max_replicas < 1:
            raise HPASpecError("max_replicas", f"must be greater than 0, got {self.max_replicas}")
        if self.max_replicas < self.min_replicas:
            raise HPASpecError(
                "max_replicas",
                f"must be greater than or equal to min_replicas ({self.min_replicas}), got {self.max_replicas}",
            )
        if self.behavior is not None:  # SetDefaults_HorizontalPodAutoscalerBehavior
            object.__setattr__(
                self,
                "behavior",
                HPABehavior(
                    scale_up=generate_hpa_scale_up_rules(self.behavior.scale_up),
                    scale_down=generate_hpa_scale_down_rules(self.behavior.scale_down),
                ),
            )

    def has_external_metrics(self) -> bool:
        """``hasObjectOrExternalMetrics`` (Object metrics are not modelled)."""
        return any(isinstance(m, ExternalMetric) for m in self.metrics)

    @classmethod
    def from_manifest(cls, doc: Mapping[str, Any]) -> HPASpec:
        """Parse an ``autoscaling/v2`` HorizontalPodAutoscaler document (camelCase, as ``kubectl`` takes it)."""
        return _ManifestReader().read(doc)


# ---- manifest reader ---------------------------------------------------------------------


_SOURCES = {"Pods": "pods", "External": "external"}  # metric source type -> its field
_OBJECT = (
    "'Object' metrics are not modelled: an Object metric describes another Kubernetes object (an Ingress, a "
    "Service), and rlscale has no per-object series: its metric sources (the simulated cluster's adapter, the "
    "controller's Prometheus reads) serve per-pod series (Pods metrics) and aggregates (External metrics). For the "
    "same intent write type: External with the same value or averageValue target (the same calculation upstream "
    "makes for an Object metric), or, for a per-pod average, type: Pods with an averageValue target"
)
_CPU_MEMORY = (
    "{kind!r} metrics (CPU, memory) are not modelled: the simulated pods report JetStream's and the TPU device "
    "plugin's metrics, no CPU or memory usage. Scale on those instead: type: Pods with an averageValue target (e.g. "
    "jetstream_prefill_backlog_size, as agents/hpa-prefill-backlog.yaml does), or type: External for the TPU's HBM "
    "(memory_used_percentage, as agents/hpa-hbm.yaml does)"
)


def _unmodelled_type(kind: object) -> str:
    """Why a metric source type other than Pods or External is refused, and how to say the same with those: an
    upstream manifest that scales on an Object or CPU metric must not look like a typo."""
    if kind == "Object":
        return _OBJECT
    if kind in ("Resource", "ContainerResource"):
        return _CPU_MEMORY.format(kind=kind)
    return (
        f"unsupported value {kind!r}: want Pods or External (of upstream's Pods, External, Object, Resource or "
        "ContainerResource, rlscale models the first two)"
    )


class _ManifestReader:
    """Walks the document with the Kubernetes field path, so every error names where it is."""

    def read(self, doc: Mapping[str, Any]) -> HPASpec:
        self._mapping(doc, "", {"apiVersion", "kind", "metadata", "spec", "status"})
        api_version = doc.get("apiVersion")
        if api_version != "autoscaling/v2":
            raise HPASpecError("apiVersion", f"want 'autoscaling/v2', got {api_version!r}")
        if doc.get("kind") != "HorizontalPodAutoscaler":
            raise HPASpecError("kind", f"want 'HorizontalPodAutoscaler', got {doc.get('kind')!r}")
        metadata = doc.get("metadata") or {}
        if not isinstance(metadata, Mapping):
            raise HPASpecError("metadata", "want a mapping")
        spec = self._required(doc, "spec", "")
        self._mapping(spec, "spec", {"scaleTargetRef", "minReplicas", "maxReplicas", "metrics", "behavior"})
        metrics = self._list(self._required(spec, "metrics", "spec"), "spec.metrics")
        parsed_metrics = tuple(self._metric(m, f"spec.metrics[{i}]") for i, m in enumerate(metrics))
        behavior = self._behavior(spec["behavior"], "spec.behavior") if spec.get("behavior") is not None else None
        min_replicas = self._int(spec["minReplicas"], "spec.minReplicas") if "minReplicas" in spec else 1
        return self._build(
            "spec",
            HPASpec,
            max_replicas=self._int(self._required(spec, "maxReplicas", "spec"), "spec.maxReplicas"),
            min_replicas=min_replicas,
            metrics=parsed_metrics,
            behavior=behavior,
            scale_target_ref=self._scale_target_ref(self._required(spec, "scaleTargetRef", "spec")),
            name=str(metadata.get("name", "")),
        )

    # -- pieces
    def _scale_target_ref(self, ref: Any) -> ScaleTargetRef:
        path = "spec.scaleTargetRef"
        self._mapping(ref, path, {"apiVersion", "kind", "name"})
        for key in ("kind", "name"):
            if not isinstance(ref.get(key), str) or not ref[key]:
                raise HPASpecError(f"{path}.{key}", "required")
        return ScaleTargetRef(kind=ref["kind"], name=ref["name"], api_version=str(ref.get("apiVersion", "")))

    def _metric(self, metric: Any, path: str) -> MetricSpec:
        self._mapping(metric, path, {"type", "pods", "external", "object", "resource", "containerResource"})
        kind = metric.get("type")
        if not kind:
            raise HPASpecError(f"{path}.type", "must specify a metric source type")
        if kind not in _SOURCES:
            raise HPASpecError(f"{path}.type", _unmodelled_type(kind))
        key = _SOURCES[kind]
        for other in set(metric) - {"type", key}:
            raise HPASpecError(f"{path}.{other}", "must populate the given metric source only")
        source = self._required(metric, key, path)
        path = f"{path}.{key}"
        self._mapping(source, path, {"metric", "target"})
        ident = self._required(source, "metric", path)
        self._mapping(ident, f"{path}.metric", {"name", "selector"})
        name = ident.get("name")
        selector = self._selector(ident["selector"], f"{path}.metric.selector") if ident.get("selector") else None
        target = self._required(source, "target", path)
        self._mapping(target, f"{path}.target", {"type", "value", "averageValue", "averageUtilization"})
        target_type = target.get("type")
        if not target_type:
            raise HPASpecError(f"{path}.target.type", "must specify a metric target type")
        if target_type not in ("Utilization", "Value", "AverageValue"):
            raise HPASpecError(f"{path}.target.type", "must be either Utilization, Value, or AverageValue")
        if "averageUtilization" in target:
            raise HPASpecError(f"{path}.target.averageUtilization", "only Resource metrics take a utilization target")
        value = self._target(target, "value", f"{path}.target")
        average = self._target(target, "averageValue", f"{path}.target")
        if kind == "Pods":
            if average is None:
                raise HPASpecError(f"{path}.target.averageValue", "must specify a positive target averageValue")
            if value is not None:
                raise HPASpecError(f"{path}.target.value", "a Pods metric takes an averageValue target only")
            where = {"name": "metric.name"}
            return self._build(path, PodsMetric, name=name, average_value_milli=average, selector=selector, where=where)
        return self._build(
            path,
            ExternalMetric,
            name=name,
            value_milli=value,
            average_value_milli=average,
            selector=selector,
            where={"name": "metric.name", "value_milli": "target.value", "average_value_milli": "target.averageValue"},
        )

    def _target(self, target: Mapping[str, Any], key: str, path: str) -> int | None:
        """A target quantity in milli-units; validation wants it positive (``Sign() == 1``)."""
        if target.get(key) is None:
            return None
        try:
            quantity = parse_quantity(target[key])
        except QuantityError as e:
            raise HPASpecError(f"{path}.{key}", str(e)) from None
        if quantity.sign() != 1:
            raise HPASpecError(f"{path}.{key}", f"must be positive, got {target[key]!r}")
        return quantity.milli_value()

    def _selector(self, selector: Any, path: str) -> LabelSelector:
        self._mapping(selector, path, {"matchLabels", "matchExpressions"})
        labels = selector.get("matchLabels") or {}
        self._mapping(labels, f"{path}.matchLabels", None)
        expressions = []
        for i, expr in enumerate(self._list(selector.get("matchExpressions") or [], f"{path}.matchExpressions")):
            expr_path = f"{path}.matchExpressions[{i}]"
            self._mapping(expr, expr_path, {"key", "operator", "values"})
            values = self._list(expr.get("values") or [], f"{expr_path}.values")
            expressions.append((str(expr.get("key", "")), str(expr.get("operator", "")), tuple(map(str, values))))
        return LabelSelector(
            match_labels=tuple((str(k), str(v)) for k, v in labels.items()), match_expressions=tuple(expressions)
        )

    def _behavior(self, behavior: Any, path: str) -> HPABehavior:
        self._mapping(behavior, path, {"scaleUp", "scaleDown"})
        up, down = behavior.get("scaleUp"), behavior.get("scaleDown")
        return HPABehavior(
            scale_up=None if up is None else self._rules(up, f"{path}.scaleUp"),
            scale_down=None if down is None else self._rules(down, f"{path}.scaleDown"),
        )

    def _rules(self, rules: Any, path: str) -> HPAScalingRules:
        self._mapping(rules, path, {"stabilizationWindowSeconds", "selectPolicy", "policies", "tolerance"})
        policies = None
        if rules.get("policies") is not None:
            items = self._list(rules["policies"], f"{path}.policies")
            policies = tuple(self._policy(p, f"{path}.policies[{i}]") for i, p in enumerate(items))
        tolerance = None
        if rules.get("tolerance") is not None:
            try:
                quantity = parse_quantity(rules["tolerance"])
            except QuantityError as e:
                raise HPASpecError(f"{path}.tolerance", str(e)) from None
            if quantity.sign() < 0:
                raise HPASpecError(f"{path}.tolerance", f"must be >= 0, got {rules['tolerance']!r}")
            tolerance = quantity.as_approximate_float64()
        window = rules.get("stabilizationWindowSeconds")
        if window is not None:
            window = self._int(window, f"{path}.stabilizationWindowSeconds")
        return self._build(
            path,
            HPAScalingRules,
            stabilization_window_seconds=window,
            select_policy=rules.get("selectPolicy"),
            policies=policies,
            tolerance=tolerance,
        )

    def _policy(self, policy: Any, path: str) -> HPAScalingPolicy:
        self._mapping(policy, path, {"type", "value", "periodSeconds"})
        for key in ("type", "value", "periodSeconds"):
            self._required(policy, key, path)
        return self._build(
            path,
            HPAScalingPolicy,
            type=policy["type"],
            value=self._int(policy["value"], f"{path}.value"),
            period_seconds=self._int(policy["periodSeconds"], f"{path}.periodSeconds"),
        )

    # -- generic
    @staticmethod
    def _build(path: str, cls: type, where: Mapping[str, str] | None = None, **kwargs: Any) -> Any:
        """Construct ``cls``; a field error is re-raised with the manifest path of that field."""
        try:
            return cls(**kwargs)
        except HPASpecError as e:
            sub = (where or {}).get(e.field) or _camel(e.field)
            raise HPASpecError(f"{path}.{sub}" if path else sub, e.message) from None

    @staticmethod
    def _mapping(value: Any, path: str, allowed: set[str] | None) -> None:
        if not isinstance(value, Mapping):
            raise HPASpecError(path or "<document>", f"want a mapping, got {type(value).__name__}")
        if allowed is not None:
            for key in _unknown(value, allowed):
                raise HPASpecError(f"{path}.{key}" if path else str(key), "unknown field")

    @staticmethod
    def _list(value: Any, path: str) -> list[Any]:
        if not isinstance(value, list):
            raise HPASpecError(path, f"want a list, got {type(value).__name__}")
        return value

    @staticmethod
    def _required(mapping: Mapping[str, Any], key: str, path: str) -> Any:
        if mapping.get(key) is None:
            raise HPASpecError(f"{path}.{key}" if path else key, "required")
        return mapping[key]

    @staticmethod
    def _int(value: Any, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise HPASpecError(path, f"want an integer, got {value!r}")
        return value


def _unknown(mapping: Mapping[str, Any], allowed: set[str]) -> Iterator[str]:
    return (key for key in mapping if key not in allowed)


__all__ = [
    "DEFAULT_SCALE_DOWN_RULES",
    "DEFAULT_SCALE_UP_RULES",
    "ExternalMetric",
    "HPABehavior",
    "HPAScalingPolicy",
    "HPAScalingRules",
    "HPASpec",
    "HPASpecError",
    "LabelSelector",
    "MetricSpec",
    "PodsMetric",
    "PolicyType",
    "ScaleTargetRef",
    "SelectPolicy",
    "generate_hpa_scale_down_rules",
    "generate_hpa_scale_up_rules",
]

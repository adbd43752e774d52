"""The Horizontal Pod Autoscaler as a policy: upstream's algorithm (rlscale.hpa) on the metrics pipeline."""

from __future__ import annotations

from pathlib import Path

from rlscale.data import read_extended
from rlscale.hpa import HorizontalController, HPAControllerConfig
from rlscale.hpa.spec import ExternalMetric, HPASpec, PodsMetric
from rlscale.metrics.names import MetricKind, sample_name
from rlscale.policies.base import ClusterState
from rlscale.policies.safety import SafetySpec


def to_milli(value: float) -> int:
    """A metric value as the adapter hands it over: a quantity in milli-units."""
    return round(value * 1000)


class HPAPolicy:
    """One HorizontalPodAutoscaler reading Pods/External metrics through the pipeline."""

    def __init__(self, spec: HPASpec, config: HPAControllerConfig | None = None) -> None:
        self.spec = spec
        self.controller = HorizontalController(spec, config)
        self.sync_period_s = self.controller.config.sync_period_s

    @classmethod
    def from_manifest(cls, doc: dict, config: HPAControllerConfig | None = None) -> HPAPolicy:
        return cls(HPASpec.from_manifest(doc), config)

    @classmethod
    def from_file(cls, path: str | Path, config: HPAControllerConfig | None = None) -> HPAPolicy:
        return cls.from_manifest(read_extended(Path(path)), config)

    def default_safety(self) -> SafetySpec:
        """A Kubernetes HPA's own: it handles missing pods in its algorithm, so partial metrics pass through; with
        none at all it does not scale (the hold). Its min/max are already in its recommendations."""
        return SafetySpec(partial_metrics="pass")

    def metric_refs(self) -> list[tuple[str, MetricKind, str]]:
        """(manifest field, kind, name) of every metric it reads, for the load-time check of names."""
        refs: list[tuple[str, MetricKind, str]] = []
        for i, metric in enumerate(self.spec.metrics):
            kind: MetricKind = "Pods" if isinstance(metric, PodsMetric) else "External"
            refs.append((f"spec.metrics[{i}].{kind.lower()}.metric.name", kind, metric.name))
        return refs

    def recommend(self, state: ClusterState) -> int | None:
        proposals = []
        for metric in self.spec.metrics:
            name = sample_name(metric.name)
            if isinstance(metric, PodsMetric):
                values = {pod: to_milli(v) for pod, v in state.metrics.pods_metric(name).items()}
                proposals.append(
                    self.controller.replicas_for_metric(
                        metric, state.spec_replicas, state.status_replicas, pods=state.pods, pod_values_milli=values
                    )
                )
            elif isinstance(metric, ExternalMetric):
                value = state.metrics.external_metric(name)
                proposals.append(
                    self.controller.replicas_for_metric(
                        metric,
                        state.spec_replicas,
                        state.status_replicas,
                        pods=state.pods,
                        external_values_milli=None if value is None else [to_milli(value)],
                    )
                )
        return self.controller.reconcile(state.now_s, state.spec_replicas, proposals)

"""The controller's settings file (``kind: ControllerConfig``, the content of its ConfigMap), and CLI overrides.

Parsing is strict, as for every rlscale YAML file: an unknown key or a bad value is an error naming the file and
the field. Overrides apply in a fixed order: the defaults here, the file's ``spec``, then the command line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from rlscale.config import StrictModel
from rlscale.policies.safety import SafetySpec
from rlscale.specs.catalog import SpecError, read_document, validate

API_VERSION = "rlscale/v1"
KIND = "ControllerConfig"


class MetricsSettings(StrictModel):
    """Where the controller reads the metrics its policy observes."""

    source: Literal["prometheus", "scrape"] = Field(
        "prometheus", description="prometheus: the Prometheus HTTP API (PromQL); scrape: each pod's /metrics page."
    )
    prometheus_url: str = Field(
        "http://prometheus.monitoring:9090",
        description="Prometheus base URL; Google Managed Prometheus: "
        "https://monitoring.googleapis.com/v1/projects/<project>/location/global/prometheus.",
    )
    stale_after_s: float = Field(60.0, gt=0, description="s; older samples count as missing (never as zero).")
    timeout_s: float = Field(5.0, gt=0, description="s per HTTP request to Prometheus or a pod.")
    queries: dict[str, str] = Field(
        default_factory=dict,
        description="Metric name -> PromQL template overriding the default; placeholders {namespace}, {selector} "
        '(namespace="…",pod=~"…" for the Deployment\'s pods), {pods} (that regex), {window} (e.g. 60s).',
    )
    scrape_port: int = Field(9100, ge=1, le=65535, description="Direct scraping: JetStream's metrics port per pod.")
    scrape_path: str = Field("/metrics", description="Direct scraping: JetStream's metrics path.")
    device_port: int | None = Field(
        2112, ge=1, le=65535, description="Direct scraping: the TPU device plugin's metrics port (null: skip)."
    )
    device_path: str = Field("/metrics", description="Direct scraping: the device plugin's metrics path.")


class LeaderElectionSettings(StrictModel):
    """A ``coordination.k8s.io/v1`` Lease, so two replicas of the controller never both act."""

    enabled: bool = True
    lease_name: str = Field("rlscale-controller", min_length=1)
    lease_duration_s: float = Field(15.0, gt=0, description="s a leader holds the Lease without renewing it.")
    renew_period_s: float = Field(5.0, gt=0, description="s between renewals (and between tries of a follower).")

    @model_validator(mode="after")
    def _renew_within_lease(self) -> LeaderElectionSettings:
        if self.renew_period_s >= self.lease_duration_s:
            raise ValueError(
                f"renew_period_s ({self.renew_period_s:g}) must be shorter than lease_duration_s "
                f"({self.lease_duration_s:g}), or the Lease lapses between renewals"
            )
        return self


class ControllerSpec(StrictModel):
    """What the controller scales, with which policy, and within which limits."""

    policy: str = Field(
        min_length=1,
        description="models:/<name>@<alias>, models:/<name>/<version>, runs:/<run_id>/model, a policy folder or "
        ".zip, or an agent YAML file (agents/*.yaml, e.g. an HPA manifest).",
    )
    tracking_uri: str | None = Field(
        None, description="Where models:/ and runs:/ resolve (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)."
    )
    namespace: str = Field("default", min_length=1)
    deployment: str = Field("jetstream", min_length=1, description="The Deployment whose scale subresource is set.")
    sync_period_s: float = Field(15.0, gt=0, description="s between decisions (the environment's step).")
    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(16, ge=1)
    max_change_per_step: int = Field(2, ge=1, description="Pods up or down per sync, after the policy.")
    metrics: MetricsSettings = MetricsSettings()
    fallback_hpa: str | None = Field(
        None,
        description="An HPA manifest (agents/hpa-*.yaml) used when the policy cannot act or metrics are partial; "
        "also shown beside each decision in dry-run.",
    )
    existing_hpa: Literal["refuse", "manage-bounds"] = Field(
        "refuse",
        description="refuse: do not start while an HPA targets the Deployment; manage-bounds: pin that HPA's "
        "min/max to the count this controller sets, every sync.",
    )
    leader_election: LeaderElectionSettings = LeaderElectionSettings()
    dry_run: bool = Field(False, description="Shadow mode: decide and log, never patch the scale or the HPA.")
    listen_port: int | None = Field(
        8080, ge=0, le=65535, description="The controller's own /metrics and /healthz (0: any free port; null: off)."
    )
    clock_speed: float = Field(
        1.0,
        gt=0,
        description="Simulated seconds per wall second, >1 only against `rlscale emulate --speed K`: the sync "
        "period, staleness and Lease timings run in simulated seconds, PromQL windows shrink and rates are per "
        "simulated second.",
    )

    @model_validator(mode="after")
    def _bounds(self) -> ControllerSpec:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) exceeds max_replicas ({self.max_replicas})")
        return self

    def safety(self) -> SafetySpec:
        """Its limits and fallback as the safety layer the simulator and the environment apply too."""
        return SafetySpec(
            min_replicas=self.min_replicas, max_replicas=self.max_replicas,
            max_change_per_step=self.max_change_per_step, fallback_hpa=self.fallback_hpa,
        )  # fmt: skip


class ControllerConfig(StrictModel):
    apiVersion: Literal["rlscale/v1"] = API_VERSION
    kind: Literal["ControllerConfig"] = KIND
    metadata: dict[str, Any] | None = None
    spec: ControllerSpec


# CLI flag -> path in ``spec`` (None values are not overrides)
OVERRIDE_PATHS = {
    "policy": ("policy",),
    "tracking_uri": ("tracking_uri",),
    "namespace": ("namespace",),
    "deployment": ("deployment",),
    "sync_period_s": ("sync_period_s",),
    "dry_run": ("dry_run",),
    "listen_port": ("listen_port",),
    "prometheus_url": ("metrics", "prometheus_url"),
    "metrics_source": ("metrics", "source"),
    "fallback_hpa": ("fallback_hpa",),
    "clock_speed": ("clock_speed",),
}


def load_controller_config(path: str | Path | None = None, **overrides: Any) -> ControllerConfig:
    """The settings file (or none: defaults only) with command-line ``overrides`` applied, validated.

    Overrides are keyword arguments named as in :data:`OVERRIDE_PATHS`; a None value leaves the field as it is.
    A relative ``fallback_hpa`` in the file is resolved against the file's folder.
    """
    unknown = sorted(set(overrides) - set(OVERRIDE_PATHS))
    if unknown:
        raise TypeError(f"unknown overrides: {', '.join(unknown)}")
    if path is None:
        where, doc = "controller settings (command line)", {"apiVersion": API_VERSION, "kind": KIND, "spec": {}}
    else:
        path = Path(path)
        where, doc = str(path), read_document(path)
        spec = doc.get("spec")
        if isinstance(spec, dict) and isinstance(spec.get("fallback_hpa"), str):
            fallback = Path(spec["fallback_hpa"])
            if not fallback.is_absolute() and (path.parent / fallback).exists():
                spec["fallback_hpa"] = str(path.parent / fallback)
    spec = doc.setdefault("spec", {})
    if not isinstance(spec, dict):
        raise SpecError(f"{where}: spec: expected a mapping of fields, got {type(spec).__name__}")
    for name, value in overrides.items():
        if value is None:
            continue
        *parents, leaf = OVERRIDE_PATHS[name]
        node = spec
        for key in parents:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise SpecError(f"{where}: spec.{key}: expected a mapping of fields, got {type(node).__name__}")
        node[leaf] = value
    return validate(ControllerConfig, doc, where)

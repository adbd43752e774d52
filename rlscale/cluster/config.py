"""Fleet, lifecycle and routing settings. Every delay is a parameter, with where its default comes from."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from rlscale.config import StrictModel


class DelaySpec(StrictModel):
    """A random delay: fixed, uniform(low, high) or lognormal(median, sigma), in seconds."""

    kind: Literal["fixed", "uniform", "lognormal"] = "fixed"
    seconds: float = Field(0.0, ge=0, description="fixed: the delay, s.")
    low_s: float = Field(0.0, ge=0, description="uniform: lower bound, s.")
    high_s: float = Field(0.0, ge=0, description="uniform: upper bound, s.")
    median_s: float = Field(0.0, ge=0, description="lognormal: median, s.")
    sigma: float = Field(0.0, ge=0, description="lognormal: sigma of log(delay).")

    @model_validator(mode="after")
    def _check(self) -> DelaySpec:
        if self.kind == "uniform" and self.high_s < self.low_s:
            raise ValueError(f"high_s ({self.high_s}) must be >= low_s ({self.low_s})")
        return self

    def sample(self, rng: np.random.Generator) -> float:
        if self.kind == "fixed":
            return self.seconds
        if self.kind == "uniform":
            return float(rng.uniform(self.low_s, self.high_s))
        return float(self.median_s * np.exp(self.sigma * rng.standard_normal()))

    def mean(self) -> float:
        if self.kind == "fixed":
            return self.seconds
        if self.kind == "uniform":
            return (self.low_s + self.high_s) / 2
        return self.median_s * float(np.exp(self.sigma**2 / 2))


class LifecycleConfig(StrictModel):
    """How long a pod takes to become Ready, and how pods and nodes go away.

    Defaults give a cold start of about 7 minutes on a new TPU node and about
    2.5 minutes on a held one for Llama-2-7B on v5e-8, inside the 2–8+ minutes
    published for LLM server pods.
    """

    node_provisioning: DelaySpec = DelaySpec(kind="lognormal", median_s=240.0, sigma=0.25)
    """New TPU node (cluster autoscaler / node auto-provisioning): minutes; GKE TPU node pools take ~3–6."""
    image_pull_s: float = Field(60.0, ge=0, description="Image pull + container start, s (multi-GB JetStream image).")
    weight_load_bytes_per_s: float = Field(
        0.4e9, gt=0, description="Checkpoint load rate into HBM (GCS via gcsfuse), bytes/s."
    )
    warmup_s_per_bucket: float = Field(6.0, ge=0, description="JetStream AOT warm-up per prefill bucket, s.")
    warmup_fixed_s: float = Field(20.0, ge=0, description="Warm-up of insert + generate, s.")
    termination_grace_period_s: float = Field(30.0, ge=0, description="Kubernetes default, s.")
    node_scale_down_delay_s: float = Field(
        600.0, ge=0, description="Cluster autoscaler scale-down-unneeded-time (default 10 min), s."
    )


class Routing(StrEnum):
    ROUND_ROBIN = "round-robin"  # a Service in front of JetStream's HTTP server
    RANDOM = "random"
    LEAST_OUTSTANDING = "least-outstanding"  # Gateway API inference extension


class FleetConfig(StrictModel):
    replicas: int = Field(1, ge=0, description="Replicas at t=0, already Ready on held nodes.")
    routing: Routing = Routing.ROUND_ROBIN
    gateway_timeout_s: float = Field(60.0, ge=0, description="How long a request waits for a Ready pod, s.")
    warm_nodes: int = Field(0, ge=0, description="Extra idle nodes held at t=0 (released after the idle delay).")
    lifecycle: LifecycleConfig = LifecycleConfig()

"""How long a pod takes from its node to Ready: one formula for the fleet that runs it and the planners that plan
ahead of it (the clairvoyant oracle requests pods one cold start early), so the two cannot drift apart."""

from __future__ import annotations

from dataclasses import dataclass

from rlscale.cluster.config import LifecycleConfig
from rlscale.serving.buckets import prefill_buckets
from rlscale.serving.config import PodConfig
from rlscale.specs import ModelSpec


@dataclass(frozen=True)
class StartupDelays:
    """The fixed part of a pod's start once its node is there, s: derived from the lifecycle and the model."""

    image_pull_s: float
    weight_load_s: float
    warmup_s: float  # JetStream's AOT warm-up: a fixed part and one compile per prefill bucket

    @property
    def restart_s(self) -> float:
        """A crashed container restarting on its node: the image is cached, but weights load and warm up again."""
        return self.weight_load_s + self.warmup_s

    @property
    def total_s(self) -> float:
        """From a Ready node to a Ready pod."""
        return self.image_pull_s + self.weight_load_s + self.warmup_s


def startup_delays(pod_config: PodConfig, lifecycle: LifecycleConfig, model: ModelSpec) -> StartupDelays:
    """The start-up delays of ``model``'s pods under ``lifecycle``: the checkpoint read at the load rate, and one
    warm-up compile per prefill bucket of ``pod_config``."""
    return StartupDelays(
        image_pull_s=lifecycle.image_pull_s,
        weight_load_s=model.weight_bytes / lifecycle.weight_load_bytes_per_s,
        warmup_s=lifecycle.warmup_fixed_s
        + lifecycle.warmup_s_per_bucket * len(prefill_buckets(pod_config.max_prefill_predict_length)),
    )

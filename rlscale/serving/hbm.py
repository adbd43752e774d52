"""HBM accounting of one pod: weights + decode state + waiting prefill results + workspace."""

from __future__ import annotations

from dataclasses import dataclass

from rlscale.serving.config import KVMode, PodConfig
from rlscale.specs.hardware import HardwareSpec
from rlscale.specs.model import ModelSpec

GB = 1e9


class PodStartupError(RuntimeError):
    """The configuration cannot start: weights and preallocated state do not fit in HBM, or a slot holds more
    tokens than the model's context."""


def check_context_length(config: PodConfig, model: ModelSpec) -> None:
    """A slot's ``max_target_length`` within the model's ``max_position_embeddings`` (when the spec gives it):
    beyond it the model has no positions, so such a server would serve nonsense, not longer requests."""
    context = model.max_position_embeddings
    if context is not None and config.max_target_length > context:
        raise PodStartupError(
            f"max_target_length ({config.max_target_length}) exceeds {model.name}'s context length "
            f"(max_position_embeddings {context}); lower max_target_length to at most {context} or use a "
            "longer-context model (e.g. llama3.1-8b, 131072)"
        )


@dataclass(frozen=True)
class HBMBudget:
    """Fixed HBM terms of a pod; the variable ones are passed in by the pod."""

    total_bytes: float
    weight_bytes: float
    workspace_bytes: float
    kv_bytes_per_token: int
    kv_mode: KVMode
    page_tokens: int
    preallocated_kv_bytes: float  # 0 in paged mode

    @classmethod
    def for_pod(cls, config: PodConfig, model: ModelSpec, hardware: HardwareSpec, slots: int) -> HBMBudget:
        check_context_length(config, model)
        total = hardware.total_hbm_bytes
        prealloc = (
            slots * config.max_target_length * model.kv_bytes_per_token
            if config.kv_mode is KVMode.PREALLOCATED
            else 0.0
        )
        budget = cls(
            total_bytes=total,
            weight_bytes=float(model.weight_bytes),
            workspace_bytes=config.hbm_workspace_fraction * total,
            kv_bytes_per_token=model.kv_bytes_per_token,
            kv_mode=config.kv_mode,
            page_tokens=config.kv_page_tokens,
            preallocated_kv_bytes=float(prealloc),
        )
        budget.check_startup(model.name, hardware.name, slots, config.max_target_length)
        return budget

    @property
    def static_bytes(self) -> float:
        """What is allocated from start-up: weights, workspace and any preallocated cache."""
        return self.weight_bytes + self.workspace_bytes + self.preallocated_kv_bytes

    def check_startup(self, model: str, hardware: str, slots: int, max_target_length: int) -> None:
        if self.static_bytes <= self.total_bytes:
            return
        raise PodStartupError(
            f"{model} on {hardware} does not fit in HBM: weights {self.weight_bytes / GB:.1f} GB + "
            f"preallocated KV {self.preallocated_kv_bytes / GB:.1f} GB ({slots} slots x {max_target_length} tokens) + "
            f"workspace {self.workspace_bytes / GB:.1f} GB = {self.static_bytes / GB:.1f} GB > "
            f"{self.total_bytes / GB:.1f} GB; lower per_device_batch_size or max_target_length, "
            "or use a larger host"
        )

    def page_bytes(self) -> int:
        return self.page_tokens * self.kv_bytes_per_token

    def used_bytes(self, kv_pages: int, held_prefill_tokens: int) -> float:
        """HBM in use given the paged-KV pages held and the prefill results waiting for slots."""
        return self.static_bytes + kv_pages * self.page_bytes() + held_prefill_tokens * self.kv_bytes_per_token

    def free_pages(self, held_prefill_tokens: int) -> int:
        """Pages the paged cache may still take before an OOM."""
        free = self.total_bytes - self.used_bytes(0, held_prefill_tokens)
        return int(free // self.page_bytes())

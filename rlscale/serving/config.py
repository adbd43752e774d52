"""Configuration of one JetStream pod (MaxText engine, interleaved mode)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rlscale.serving.buckets import DEFAULT_PREFILL_BUCKETS


class KVMode(StrEnum):
    """How the decode state holds the KV cache."""

    PREALLOCATED = "preallocated"  # MaxText default: every slot owns max_target_length tokens from start-up
    PAGED = "paged"  # pages allocated as tokens are held


class LongPrompts(StrEnum):
    """What the server does with a prompt longer than ``max_prefill_predict_length``."""

    TRUNCATE = "truncate"  # JetStream's own behaviour: the prompt is cut to the longest prefill (counted)
    REJECT = "reject"  # the request fails at once with its cause, as a server with an input-length check would


class PodConfig(BaseModel):
    """One JetStream server. Defaults: Llama-2-7B on v5e-8 as in the JetStream/MaxText docs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field("llama2-7b", description="Catalog name or path to a config.json/YAML.")
    hardware: str = Field("v5e-8", description="Catalog host name or path to a YAML/JSON spec.")
    per_device_batch_size: int = Field(11, gt=0, description="Decode slots per chip (MaxText docs: 11 on v5e-8).")
    max_prefill_predict_length: int = Field(
        1024, gt=0, description="Longest prefill, tokens; longer prompts are truncated or rejected (long_prompts)."
    )
    max_target_length: int = Field(
        2048, gt=0, description="Prompt + output cap per slot, tokens; at most the model's context length."
    )
    long_prompts: LongPrompts = Field(
        LongPrompts.TRUNCATE,
        description="Prompts over max_prefill_predict_length: truncate (JetStream; counted in the KPIs) or reject "
        "(failed, cause 'prompt over max_prefill_predict_length').",
    )
    kv_mode: KVMode = KVMode.PREALLOCATED
    kv_page_tokens: int = Field(64, gt=0, description="Tokens per KV page in paged mode.")
    hbm_workspace_fraction: float = Field(
        0.05, ge=0, lt=1, description="HBM kept for activations and XLA buffers, fraction of total."
    )
    insert_ms: float = Field(0.0, ge=0, description="Device time to insert a prefill result into a slot, ms.")
    transfer_backlog_capacity: int = Field(1, gt=0, description="Interleaved mode: 1 (orchestrator.py).")
    generate_backlog_capacity: int = Field(1, gt=0, description="Interleaved mode: 1 (orchestrator.py).")
    restart_s: float = Field(
        60.0, ge=0, description="After an OOM crash: container start + weight load + warm-up, s (after back-off)."
    )
    crash_backoff_initial_s: float = Field(10.0, ge=0, description="kubelet CrashLoopBackOff: first delay, s.")
    crash_backoff_max_s: float = Field(300.0, ge=0, description="kubelet CrashLoopBackOff cap, s.")
    duty_cycle_sample_s: float = Field(10.0, gt=0, description="TPU device plugin's duty_cycle window, s.")

    @model_validator(mode="after")
    def _check(self) -> PodConfig:
        if self.max_prefill_predict_length not in DEFAULT_PREFILL_BUCKETS:
            raise ValueError(
                f"max_prefill_predict_length: {self.max_prefill_predict_length} is not a JetStream prefill "
                f"bucket {DEFAULT_PREFILL_BUCKETS} (token_utils.pad_tokens requires one)"
            )
        if self.max_target_length <= self.max_prefill_predict_length:
            raise ValueError(
                f"max_target_length ({self.max_target_length}) must exceed "
                f"max_prefill_predict_length ({self.max_prefill_predict_length})"
            )
        return self

    @property
    def held_prefill_capacity(self) -> int:
        """Prefilled requests waiting for a slot: both backlogs plus the one the prefill thread holds."""
        return self.transfer_backlog_capacity + self.generate_backlog_capacity + 1

"""Configuration of one JetStream pod (MaxText engine, interleaved mode)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rlscale.serving.buckets import DEFAULT_PREFILL_BUCKETS
from rlscale.specs.hardware import PrefillLaunch


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
    insert_ms: float | None = Field(
        None,
        ge=0,
        description="Device time to insert a prefill result into its slot, ms, as a fixed override; None (default): "
        "priced per bucket by the step-time model (the padded bucket's KV bytes read and written at the achieved HBM "
        "bandwidth, plus insert_overhead_ms). 0 is a free insert, the default before the insert was modelled.",
    )
    insert_overhead_ms: float = Field(
        0.8,
        ge=0,
        description="Fixed cost of one modelled insert (dispatching the compiled insert, the generate thread's "
        "bookkeeping), ms. 0.8: a real interleaved JetStream-like server on an H200 (Llama-2-7B, 1024-token prefill) "
        "spent ~1 ms per insert; its KV copy adds 0.24 ms at the 1024 bucket and 0.19 ms on average over azure-conv "
        "prompts (60% pad to 1024), so inserts average 0.99 ms.",
    )
    transfer_backlog_capacity: int = Field(1, gt=0, description="Interleaved mode: 1 (orchestrator.py).")
    generate_backlog_capacity: int = Field(1, gt=0, description="Interleaved mode: 1 (orchestrator.py).")
    max_held_prefills: int | None = Field(
        None,
        ge=1,
        description="Prefilled requests held while every slot is busy before the prefill thread stalls; None "
        "(default): transfer_backlog_capacity + generate_backlog_capacity + 1 (the one the prefill thread holds in "
        "its blocked put), 3 with the defaults. A real interleaved server on an H200 held at most 2: set it directly, "
        "as JetStream's queue sizes are configuration.",
    )
    prefill_launch: PrefillLaunch = Field(
        PrefillLaunch.COMPILED,
        description="How this deployment launches prefill: compiled (default; JetStream AOT-compiles every prefill "
        "bucket at start-up) or eager. Where the hardware's fit was calibrated otherwise (StepModelParams."
        "prefill_launch), a compiled deployment on an eager fit (the shipped H100/H200) pays the fitted decode "
        "per-layer overhead, measured under CUDA graphs (a short Llama-2-7B prefill on an H200: ~5 ms, not ~8 ms); "
        "an eager deployment on a compiled fit has no eager measurement to use and keeps the fitted value.",
    )
    prefill_overhead_ms_per_layer: float | None = Field(
        None,
        ge=0,
        description="Fixed per-layer overhead of one prefill, ms, as an explicit override (e.g. measured on your own "
        "deployment); None (default): from the hardware's fitted step model and prefill_launch.",
    )
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
        """Prefilled requests that can wait for a slot: ``max_held_prefills`` if set, else both backlogs plus the one
        the prefill thread holds."""
        if self.max_held_prefills is not None:
            return self.max_held_prefills
        return self.transfer_backlog_capacity + self.generate_backlog_capacity + 1

"""Accelerator host specs: published chip ceilings plus the fitted step-time terms.

Published figures (FLOP/s, HBM bytes and bandwidth) are per chip; a host is a
chip type times ``chips_per_host``, sharded tensor-parallel, so a pod's
ceilings are the per-chip ones multiplied by the chip count. The
``step_model`` block holds what calibration fitted (``rlscale calibrate``),
including how the prefills it was fitted on were launched: a per-layer fixed
overhead measured on eager prefill (the shipped GPU profile) is not what a
compiled prefill (JetStream's AOT-compiled buckets) pays.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class PrefillLaunch(StrEnum):
    """How a prefill reaches the device, which sets its fixed per-layer overhead."""

    EAGER = "eager"  # kernel by kernel from the host (e.g. PyTorch without a CUDA graph)
    COMPILED = "compiled"  # one compiled program or captured graph per bucket (JetStream AOT-compiles every bucket)


class StepModelParams(BaseModel):
    """Fitted terms of the roofline step-time model (see rlscale.serving.step_time)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mem_efficiency: float = Field(
        gt=0, le=1.5, description="Achieved / spec HBM bandwidth when streaming weights and KV."
    )
    decode_matmul_efficiency: float = Field(gt=0, le=1.5, description="Achieved / peak FLOP/s of decode matmuls.")
    prefill_matmul_efficiency: float = Field(gt=0, le=1.5, description="Achieved / peak FLOP/s of prefill matmuls.")
    attention_efficiency: float = Field(gt=0, le=1.5, description="Achieved / peak FLOP/s of prefill attention.")
    decode_overhead_ms_per_layer: float = Field(ge=0, description="Launch/sync cost per layer of a decode step, ms.")
    prefill_overhead_ms_per_layer: float = Field(
        ge=0, description="Launch/sync cost per layer of a prefill launched as prefill_launch says, ms."
    )
    prefill_launch: PrefillLaunch = Field(
        PrefillLaunch.COMPILED,
        description="How the prefills of the calibration data were launched (rlscale calibrate writes it from "
        "sets.yaml); a deployment launching otherwise adjusts the prefill overhead (PodConfig.prefill_launch). "
        "Default compiled: an entry that does not say is taken as fitted, as before this field existed.",
    )
    roofline_sharpness: float = Field(
        4.0, ge=1, description="p of the smooth max (a^p+b^p)^(1/p) of memory and compute time."
    )
    calibrated_on: str = Field("", description="Where the fitted values come from.")


class HardwareSpec(BaseModel):
    """One single-host accelerator slice (a TPU VM or a GPU server)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    accelerator: str = Field(description="Chip type, e.g. tpu-v5e, nvidia-h100.")
    chips_per_host: int = Field(gt=0, description="Chips the pod shards over (tensor parallel).")
    peak_bf16_flops_per_s: float = Field(gt=0, description="Dense bf16 peak per chip, FLOP/s.")
    hbm_bytes: float = Field(gt=0, description="HBM capacity per chip, bytes.")
    hbm_bytes_per_s: float = Field(gt=0, description="HBM bandwidth per chip, bytes/s.")
    step_model: StepModelParams
    price_per_chip_hour_usd: float | None = Field(None, ge=0, description="On-demand price per chip-hour, USD.")
    source: str = Field("", description="Where the published figures come from.")

    @property
    def total_flops_per_s(self) -> float:
        return self.peak_bf16_flops_per_s * self.chips_per_host

    @property
    def total_hbm_bytes(self) -> float:
        return self.hbm_bytes * self.chips_per_host

    @property
    def total_hbm_bytes_per_s(self) -> float:
        return self.hbm_bytes_per_s * self.chips_per_host

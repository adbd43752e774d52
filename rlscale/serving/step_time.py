"""Step-time model of one JetStream engine: a roofline with fitted efficiencies.

Each step is priced from first principles — bytes moved over HBM bandwidth
against FLOPs over peak — per part of the step, then summed:

* decode step, batch ``B`` reading ``K`` KV tokens in total::

    t = L·o_d + smax(W / (β·e_m), 2·P·B / (Φ·e_dm)) + K · smax(κ / (β·e_m), a / (Φ·e_a))

* prefill of ``n`` (padded) tokens, causal attention::

    t = L·o_p + smax(W / (β·e_m), 2·P·n / (Φ·e_pm)) + a·n(n+1)/2 / (Φ·e_a)

* insert of a prefill result of ``n`` (padded) tokens into its decode slot,
  a copy of its KV cache (read once, written once) plus a fixed cost::

    t = o_i + 2·n·κ / (β·e_m)

with ``W`` weight bytes read per step, ``P`` matmul parameters per token, ``κ``
KV bytes per token, ``a`` attention FLOPs per (query, key) pair, ``L`` layers,
``β``/``Φ`` the host's HBM bandwidth and peak FLOP/s, and ``smax`` the smooth
maximum ``(x^p + y^p)^(1/p)``. Only the efficiencies ``e`` and per-layer
overheads ``o`` are fitted (``rlscale calibrate``); every shape-dependent term
comes from the model spec, which is what lets one calibration predict other
models. Decode time is affine in ``K`` for a fixed batch, which is what makes
the pod simulator's closed-form decode possible (:meth:`decode_affine`); which
batch a step is priced at is the pod's business (a preallocated MaxText step
computes every slot, active or not).

Two terms belong to a deployment rather than to the chip
(:meth:`RooflineStepModel.for_deployment`): the insert's fixed cost ``o_i``,
and ``o_p``, which depends on how prefill is launched. The fitted ``o_p`` is
the one of the calibration data's launch (``StepModelParams.prefill_launch``):
eager on the shipped H100/H200 profile, compiled on JetStream's v5e figures.
A compiled deployment (JetStream AOT-compiles every bucket) on an eager fit
pays the fitted decode overhead ``o_d`` instead, decode having been measured
compiled (CUDA graphs): on an H200 a 64-token Llama-2-7B prefill then costs
~4.9 ms rather than ~8.1 ms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from rlscale.specs.hardware import HardwareSpec, PrefillLaunch, StepModelParams
from rlscale.specs.model import ModelSpec

if TYPE_CHECKING:
    from rlscale.serving.config import PodConfig

MS_PER_S = 1e3


class StepTimeModel(Protocol):
    """What the pod simulator needs from a step-time model (times in ms)."""

    def decode_affine(self, batch: int) -> tuple[float, float]:
        """(intercept_ms, ms_per_kv_token): decode step time = a + b·kv_tokens."""
        ...

    def decode_ms(self, batch: int, kv_tokens: int) -> float: ...

    def prefill_ms(self, tokens: int) -> float: ...

    def insert_ms(self, tokens: int) -> float:
        """Device time to insert a prefill result of ``tokens`` (padded) tokens into its decode slot."""
        ...


def prefill_overhead_ms_per_layer(fit: StepModelParams, launch: PrefillLaunch) -> float:
    """The per-layer fixed cost of a prefill launched ``launch`` on a chip fitted as ``fit``.

    A compiled prefill on an eager fit pays what a compiled decode step pays per layer (the fitted decode
    overhead, measured under CUDA graphs): the eager figure is mostly kernel launches that compilation removes.
    Otherwise the fitted value: measured so when the launches match, and the only figure there is for an eager
    deployment on a compiled fit.
    """
    if launch is PrefillLaunch.COMPILED and fit.prefill_launch is PrefillLaunch.EAGER:
        return fit.decode_overhead_ms_per_layer
    return fit.prefill_overhead_ms_per_layer


def smooth_max(x: float, y: float, p: float) -> float:
    """A differentiable max: within 2^(1/p) of max(x, y), exact when one term is 0."""
    hi = max(x, y)
    if hi <= 0.0:
        return 0.0
    return hi * ((x / hi) ** p + (y / hi) ** p) ** (1.0 / p)


@dataclass(frozen=True)
class RooflineStepModel:
    """The roofline model above for one (model, hardware) pair.

    Built directly it prices steps as the hardware was calibrated (what calibration needs); a pod builds it
    with :meth:`for_deployment`, which sets the deployment's prefill overhead and insert cost.
    """

    model: ModelSpec
    hardware: HardwareSpec
    prefill_overhead_ms_per_layer: float | None = None  # o_p, ms; None: the fitted value as calibrated
    insert_overhead_ms: float = 0.0  # o_i, ms

    @classmethod
    def for_deployment(cls, model: ModelSpec, hardware: HardwareSpec, config: PodConfig) -> RooflineStepModel:
        """The step model of a pod with ``config``: its prefill launch (or explicit overhead) and insert cost."""
        overhead = config.prefill_overhead_ms_per_layer
        if overhead is None:
            overhead = prefill_overhead_ms_per_layer(hardware.step_model, config.prefill_launch)
        return cls(model, hardware, overhead, config.insert_overhead_ms)

    def _terms(self) -> tuple[float, float, float]:
        hw, fit = self.hardware, self.hardware.step_model
        byte_ms = MS_PER_S / (hw.total_hbm_bytes_per_s * fit.mem_efficiency)
        return byte_ms, MS_PER_S / hw.total_flops_per_s, fit.roofline_sharpness

    def decode_affine(self, batch: int) -> tuple[float, float]:
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        m, fit = self.model, self.hardware.step_model
        byte_ms, flop_ms, p = self._terms()
        weights_ms = smooth_max(
            m.decode_weight_read_bytes * byte_ms,
            2.0 * m.matmul_params_per_token * batch * flop_ms / fit.decode_matmul_efficiency,
            p,
        )
        per_kv_token_ms = smooth_max(
            m.kv_bytes_per_token * byte_ms,
            m.attention_flops_per_token_pair * flop_ms / fit.attention_efficiency,
            p,
        )
        intercept = m.num_hidden_layers * fit.decode_overhead_ms_per_layer + weights_ms
        return intercept, per_kv_token_ms

    def decode_ms(self, batch: int, kv_tokens: int) -> float:
        """One decode step: ``batch`` sequences, ``kv_tokens`` cached tokens read in total."""
        if kv_tokens < 0:
            raise ValueError(f"kv_tokens must be >= 0, got {kv_tokens}")
        intercept, slope = self.decode_affine(batch)
        return intercept + slope * kv_tokens

    def prefill_ms(self, tokens: int) -> float:
        """One batch-1 prefill of ``tokens`` tokens (already padded to its bucket)."""
        if tokens < 1:
            raise ValueError(f"tokens must be >= 1, got {tokens}")
        m, fit = self.model, self.hardware.step_model
        byte_ms, flop_ms, p = self._terms()
        bytes_moved = m.decode_weight_read_bytes + tokens * m.kv_bytes_per_token
        matmul_ms = smooth_max(
            bytes_moved * byte_ms,
            2.0 * m.matmul_params_per_token * tokens * flop_ms / fit.prefill_matmul_efficiency,
            p,
        )
        pairs = tokens * (tokens + 1) / 2
        attention_ms = m.attention_flops_per_token_pair * pairs * flop_ms / fit.attention_efficiency
        overhead = self.prefill_overhead_ms_per_layer
        if overhead is None:
            overhead = fit.prefill_overhead_ms_per_layer
        return m.num_hidden_layers * overhead + matmul_ms + attention_ms

    def insert_ms(self, tokens: int) -> float:
        """Copy one prefill result's KV (its padded bucket) into a decode slot: read and written once over HBM."""
        if tokens < 1:
            raise ValueError(f"tokens must be >= 1, got {tokens}")
        byte_ms, _, _ = self._terms()
        return self.insert_overhead_ms + 2.0 * tokens * self.model.kv_bytes_per_token * byte_ms

    def decode_bound(self, batch: int, kv_tokens: int) -> str:
        """Which ceiling dominates a decode step: 'memory' or 'compute'."""
        m = self.model
        byte_ms, flop_ms, _ = self._terms()
        mem = (m.decode_weight_read_bytes + kv_tokens * m.kv_bytes_per_token) * byte_ms
        fit = self.hardware.step_model
        compute = (
            2.0 * m.matmul_params_per_token * batch / fit.decode_matmul_efficiency
            + m.attention_flops_per_token_pair * kv_tokens / fit.attention_efficiency
        ) * flop_ms
        return "memory" if mem >= compute else "compute"

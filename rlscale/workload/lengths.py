"""Request-length distributions: (prompt tokens, output tokens) pairs."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

BUNDLED_TRACES = {"azure-conv": "AzureLLMInferenceTrace_conv.csv"}


class LengthSampler(Protocol):
    def sample(self, rng: np.random.Generator) -> tuple[int, int]: ...

    def sample_batch(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` (prompt, output) draws at once: the simulator's hot path draws in blocks."""
        ...


@dataclass(frozen=True)
class FixedLengths:
    prompt_tokens: int
    output_tokens: int

    def sample(self, rng: np.random.Generator) -> tuple[int, int]:
        return self.prompt_tokens, self.output_tokens

    def sample_batch(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        return np.full(n, self.prompt_tokens), np.full(n, self.output_tokens)


@dataclass(frozen=True)
class EmpiricalLengths:
    """Resample (prompt, output) pairs jointly from a trace, keeping their correlation."""

    prompts: np.ndarray
    outputs: np.ndarray

    def sample(self, rng: np.random.Generator) -> tuple[int, int]:
        i = int(rng.integers(len(self.prompts)))
        return int(self.prompts[i]), int(self.outputs[i])

    def sample_batch(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        i = rng.integers(len(self.prompts), size=n)
        return self.prompts[i], self.outputs[i]


def trace_text(trace: str | Path) -> tuple[str, str]:
    """The text of a trace file and the name to quote in errors: a bundled name (``azure-conv``) or a path."""
    if str(trace) in BUNDLED_TRACES:
        return resources.files("rlscale.workload").joinpath("data", BUNDLED_TRACES[str(trace)]).read_text(), str(trace)
    return Path(trace).read_text(), str(trace)


@dataclass(frozen=True)
class LognormalLengths:
    """Independent lognormal prompt and output lengths, rounded to whole tokens >= 1 and optionally capped.

    A smooth, two-parameter stand-in for a trace: easy to sweep (shift the
    median, widen sigma) where resampling a trace is not.
    """

    prompt_median: float
    prompt_sigma: float
    output_median: float
    output_sigma: float
    max_prompt: int | None = None
    max_output: int | None = None

    def __post_init__(self) -> None:
        for name in ("prompt_median", "output_median"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("prompt_sigma", "output_sigma"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("max_prompt", "max_output"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be an integer >= 1 or None, got {value!r}")

    @staticmethod
    def _draw(rng: np.random.Generator, median: float, sigma: float, cap: int | None) -> int:
        tokens = max(1, round(float(rng.lognormal(np.log(median), sigma))))
        return tokens if cap is None else min(tokens, cap)

    def sample(self, rng: np.random.Generator) -> tuple[int, int]:
        prompt = self._draw(rng, self.prompt_median, self.prompt_sigma, self.max_prompt)
        return prompt, self._draw(rng, self.output_median, self.output_sigma, self.max_output)

    def sample_batch(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        def draw(median: float, sigma: float, cap: int | None) -> np.ndarray:
            tokens = np.maximum(1, np.rint(rng.lognormal(np.log(median), sigma, size=n))).astype(np.int64)
            return tokens if cap is None else np.minimum(tokens, cap)

        return draw(self.prompt_median, self.prompt_sigma, self.max_prompt), draw(
            self.output_median, self.output_sigma, self.max_output
        )


def fit_lognormal(
    trace_lengths: EmpiricalLengths, method: Literal["median", "mle"] = "median", cap: bool = False
) -> LognormalLengths:
    """Lognormal prompt and output lengths fitted to a trace; sigma is the std of log lengths.

    ``mle`` puts the median at exp(mean(log)), the maximum-likelihood fit.
    Real traces are multimodal, not lognormal (the bundled Azure trace's
    geometric-mean prompt is 25% below its median), so the default,
    ``median``, puts it at the sample median: typical requests keep their
    size. ``cap`` limits draws to the longest lengths in the trace.
    """
    if method not in ("median", "mle"):
        raise ValueError(f"method must be 'median' or 'mle', got {method!r}")
    params = []
    for lengths in (np.asarray(trace_lengths.prompts), np.asarray(trace_lengths.outputs)):
        if lengths.size == 0:
            raise ValueError("trace_lengths must hold at least one request, got none")
        if lengths.min() < 1:
            raise ValueError(f"trace_lengths must hold lengths >= 1, got {lengths.min()}")
        logs = np.log(lengths)
        center = float(np.median(lengths)) if method == "median" else float(np.exp(logs.mean()))
        params.append((center, float(logs.std()), int(lengths.max()) if cap else None))
    (pm, ps, pcap), (om, os_, ocap) = params
    return LognormalLengths(pm, ps, om, os_, max_prompt=pcap, max_output=ocap)

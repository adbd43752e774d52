"""Request-length distributions: (prompt tokens, output tokens) pairs."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Protocol

import numpy as np

BUNDLED_TRACES = {"azure-conv": "AzureLLMInferenceTrace_conv.csv"}


class LengthSampler(Protocol):
    def sample(self, rng: np.random.Generator) -> tuple[int, int]: ...


@dataclass(frozen=True)
class FixedLengths:
    prompt_tokens: int
    output_tokens: int

    def sample(self, rng: np.random.Generator) -> tuple[int, int]:
        return self.prompt_tokens, self.output_tokens


@dataclass(frozen=True)
class EmpiricalLengths:
    """Resample (prompt, output) pairs jointly from a trace, keeping their correlation."""

    prompts: np.ndarray
    outputs: np.ndarray

    def sample(self, rng: np.random.Generator) -> tuple[int, int]:
        i = int(rng.integers(len(self.prompts)))
        return int(self.prompts[i]), int(self.outputs[i])


@cache
def azure_lengths(trace: str | Path = "azure-conv") -> EmpiricalLengths:
    """Lengths of an Azure LLM inference trace CSV (bundled name or path)."""
    if str(trace) in BUNDLED_TRACES:
        text = resources.files("rlscale.workload").joinpath("data", BUNDLED_TRACES[str(trace)]).read_text()
        where = str(trace)
    else:
        text, where = Path(trace).read_text(), str(trace)
    prompts, outputs = [], []
    for line, row in enumerate(csv.DictReader(text.splitlines()), start=2):
        try:
            p, o = int(row["ContextTokens"]), int(row["GeneratedTokens"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{where}:{line}: expected integer ContextTokens and GeneratedTokens ({exc})") from exc
        if p < 1 or o < 1:
            raise ValueError(f"{where}:{line}: token counts must be >= 1, got {p}, {o}")
        prompts.append(p)
        outputs.append(o)
    return EmpiricalLengths(np.array(prompts), np.array(outputs))

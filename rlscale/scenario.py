"""Scenario files (``envs/*.yaml``): the pod, the traffic, the SLO, the seed.

Parsing is strict: an unknown key or a bad value is an error naming the file
and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from rlscale.serving.config import PodConfig
from rlscale.specs.catalog import read_document, validate


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PoissonSpec(_Strict):
    process: Literal["poisson"] = "poisson"
    rate_per_s: float = Field(5.0, gt=0, description="Mean arrival rate, requests/s.")


class FixedLengthSpec(_Strict):
    kind: Literal["fixed"] = "fixed"
    prompt_tokens: int = Field(gt=0)
    output_tokens: int = Field(gt=0)


class EmpiricalLengthSpec(_Strict):
    kind: Literal["empirical"] = "empirical"
    trace: str = Field("azure-conv", description="Bundled trace name or path to an Azure-format CSV.")


LengthSpec = Annotated[FixedLengthSpec | EmpiricalLengthSpec, Field(discriminator="kind")]


class WorkloadSpec(_Strict):
    arrival: PoissonSpec = PoissonSpec()
    lengths: LengthSpec = EmpiricalLengthSpec()


class SLOSpec(_Strict):
    """Latency objectives a request must meet to count as served well."""

    ttft_s: float = Field(2.0, gt=0, description="Time to first token from arrival, s.")
    tpot_s: float = Field(0.1, gt=0, description="Mean time per output token, s.")


class ScenarioConfig(_Strict):
    name: str = "single-pod"
    pod: PodConfig = PodConfig()
    workload: WorkloadSpec = WorkloadSpec()
    slo: SLOSpec = SLOSpec()
    duration_s: float = Field(3600.0, gt=0, description="Simulated time, s.")
    seed: int = Field(0, ge=0)


def load_scenario(path: str | Path) -> ScenarioConfig:
    path = Path(path)
    data = read_document(path)
    data.setdefault("name", path.stem)
    return validate(ScenarioConfig, data, str(path))


def apply_overrides(
    scenario: ScenarioConfig,
    *,
    model: str | None = None,
    hardware: str | None = None,
    rate_per_s: float | None = None,
    duration_s: float | None = None,
    seed: int | None = None,
) -> ScenarioConfig:
    """The scenario with command-line overrides applied (None leaves a field as it is), re-validated."""
    data = scenario.model_dump(mode="json")
    for section, key, value in [("pod", "model", model), ("pod", "hardware", hardware)]:
        if value is not None:
            data[section][key] = value
    if rate_per_s is not None:
        data["workload"]["arrival"]["rate_per_s"] = rate_per_s
    for key, value in [("duration_s", duration_s), ("seed", seed)]:
        if value is not None:
            data[key] = value
    return validate(ScenarioConfig, data, f"scenario {scenario.name!r} with overrides")

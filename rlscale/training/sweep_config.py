"""Sweep files (``experiments/sweeps/*.yaml``, ``kind: TrainingSweep``): a training sweep as data, to keep in git
beside the experiments it feeds.

The fields are ``rlscale train``'s sweep options: the agent file, the scenario, the seeds and the grid (dotted
paths into the agent's ``spec``, or ``scenario.<field>``, each with its list of values). Parsing is strict, and
paths resolve as in experiment files (the YAML's folder, the project root, the working directory).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from rlscale.config import StrictModel
from rlscale.data import resolve
from rlscale.specs.catalog import read_document, validate
from rlscale.training.sweep import GRID_PATH, Grid, as_number


class SweepConfig(StrictModel):
    """One training sweep: every combination of the grid's values trains under every seed."""

    apiVersion: str | None = None
    kind: Literal["TrainingSweep"]
    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="Names the output folder and the runs (default: stem)."
    )
    description: str = ""
    agent: str = Field(description="The SB3Agent file (agents/ppo.yaml).")
    scenario: str = Field(description="The scenario file to train on (envs/train-mix.yaml).")
    seeds: list[Annotated[int, Field(ge=0)]] = Field(min_length=1, description="Each setting trains under each.")
    grid: dict[str, list[Any]] = Field(
        default_factory=dict, description="Dotted path -> values: a spec field, or scenario.<field>."
    )
    timesteps: int | None = Field(None, gt=0, description="Env steps per run (default: the agent file's).")
    eval_every: int | None = Field(None, ge=0, description="Env steps between held-out evaluations.")
    model_name: str | None = Field(None, description="Registered model (default: rlscale-<agent>-<scenario>).")
    alias: str = Field("champion", description="Registry alias set on the best setting's best seed.")
    select: Literal["return", "cost-at-slo"] | None = Field(
        None, description="How the best setting is chosen (default: return, or cost-at-slo when the grid changes "
        "the reward)."
    )  # fmt: skip
    slo_attainment: float = Field(0.99, ge=0, le=1, description="cost-at-slo: the held-out attainment to reach.")

    @field_validator("seeds")
    @classmethod
    def _unique(cls, seeds: list[int]) -> list[int]:
        repeated = sorted({s for s in seeds if seeds.count(s) > 1})
        if repeated:
            raise ValueError(f"listed more than once: {', '.join(map(str, repeated))}")
        return seeds

    @field_validator("grid", mode="before")
    @classmethod
    def _grid(cls, grid: Any) -> Any:
        if not isinstance(grid, dict):
            return grid
        checked = {}
        for path, values in grid.items():
            if not isinstance(path, str) or not GRID_PATH.fullmatch(path):
                raise ValueError(f"{path!r}: a dotted field path, e.g. hyperparams.gamma or scenario.reward.x")
            values = values if isinstance(values, list) else [values]
            if not values:
                raise ValueError(f"{path}: an empty list sweeps nothing")
            checked[path] = [as_number(v) for v in values]
        return checked


@dataclass(frozen=True)
class SweepFile:
    """A sweep file, validated, with its agent and scenario files found."""

    path: Path
    config: SweepConfig
    agent_path: Path
    scenario_path: Path

    @property
    def grid(self) -> Grid:
        return list(self.config.grid.items())


def load_sweep(path: str | Path) -> SweepFile:
    """Read, validate and resolve a sweep file; errors name the file and the field."""
    path = Path(path)
    data = read_document(path)
    if isinstance(data, dict):
        data.setdefault("name", path.stem)
    config = validate(SweepConfig, data, str(path))
    base = path.resolve().parent
    return SweepFile(
        path, config, resolve(config.agent, base, f"{path}: agent"), resolve(config.scenario, base, f"{path}: scenario")
    )

"""Experiment files (``experiments/*.yaml``): which scenarios, agents and seeds to compare.

Parsing is strict: an unknown key, a bad value or a path that does not exist is
an error naming the file and the field. Paths are resolved against the YAML's
folder first, then the project root (the nearest folder above the YAML that holds
``pyproject.toml`` or ``.git``), then the working directory, so that
``envs/steady.yaml`` means the same file wherever the command runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rlscale.data import read_extended, resolve
from rlscale.scenario import ScenarioConfig, load_scenario
from rlscale.specs.catalog import SpecError, read_document, validate

MIN_SEEDS_FOR_CI = 5  # fewer seeds still run, but the report says the intervals are not worth reading


class SavingReference(BaseModel):
    """The two agents the report measures savings between: the best static count and the clairvoyant oracle."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    static: str = Field(description="The static count's agent, by name (its file's stem).")
    oracle: str = Field(description="The oracle's agent, by name.")


class ExperimentConfig(BaseModel):
    """One experiment: every agent runs every scenario under every seed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="Names the output folder and the MLflow experiment (default: the file's stem).",
    )
    description: str = ""
    scenarios: list[str] = Field(min_length=1, description="Scenario files (envs/*.yaml).")
    agents: list[str] = Field(min_length=1, description="Agent files (agents/*.yaml); an agent is named by its stem.")
    seeds: list[Annotated[int, Field(ge=0)]] = Field(
        min_length=1, description=f"Seeds each (scenario, agent) pair runs under; ≥{MIN_SEEDS_FOR_CI} for real results."
    )
    duration_s: float | None = Field(None, gt=0, description="Overrides every scenario's simulated time, s.")
    workers: int | None = Field(None, ge=1, description="Parallel processes (default: the machine's CPU count).")
    oracle_saving: SavingReference | None = Field(
        None,
        description="Adds each agent's share of the oracle's saving over the static count to the report: "
        "(static - agent) / (static - oracle) on cost, where the agent's SLO attainment is at least the static's.",
    )

    training_seeds: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Rows pooling one training recipe's policies, each trained under another seed: a row's name -> "
        "its agents (>= 2, by name). The row's interval is over the policies (each the mean over the evaluation "
        "seeds), so it holds the spread across training seeds as well as across evaluation seeds.",
    )

    @field_validator("scenarios", "agents", "seeds")
    @classmethod
    def _unique(cls, values: list) -> list:
        repeated = sorted({str(v) for v in values if values.count(v) > 1})
        if repeated:
            raise ValueError(f"listed more than once: {', '.join(repeated)}")
        return values


@dataclass(frozen=True)
class Experiment:
    """An experiment file, validated, with its paths resolved and its scenarios loaded."""

    path: Path
    config: ExperimentConfig
    scenario_paths: tuple[Path, ...]
    agent_paths: tuple[Path, ...]
    scenarios: tuple[ScenarioConfig, ...]  # as loaded, duration override applied; seeds are set per run

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def agent_names(self) -> tuple[str, ...]:
        return tuple(p.stem for p in self.agent_paths)

    @property
    def scenario_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.scenarios)

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(self.config.seeds)

    @property
    def workers(self) -> int:
        return self.config.workers or os.cpu_count() or 1


def load_experiment(path: str | Path) -> Experiment:
    """Read, validate and resolve an experiment file; scenarios are loaded now so mistakes surface before any run."""
    path = Path(path)
    data = read_document(path)
    data.setdefault("name", path.stem)
    return _resolved(path, validate(ExperimentConfig, data, str(path)), path.resolve().parent)


def experiment_from_lists(
    scenarios: list[str],
    agents: list[str],
    seeds: list[int],
    *,
    name: str = "evaluate",
    description: str = "",
    duration_s: float | None = None,
    workers: int | None = None,
    source: str = "command line",
) -> Experiment:
    """An experiment built in memory (``rlscale evaluate``), validated and resolved as a file would be, paths
    relative to the working directory; ``source`` stands in for the file in messages and reports."""
    fields = {"name": name, "description": description, "scenarios": scenarios, "agents": agents, "seeds": seeds}
    fields |= {"duration_s": duration_s, "workers": workers}
    config = validate(ExperimentConfig, fields, source)
    return _resolved(Path(f"<{source}>"), config, Path.cwd())


def _resolved(path: Path, config: ExperimentConfig, base: Path) -> Experiment:
    scenario_paths = tuple(resolve(ref, base, f"{path}: scenarios[{i}]") for i, ref in enumerate(config.scenarios))
    agent_paths = tuple(resolve(ref, base, f"{path}: agents[{i}]") for i, ref in enumerate(config.agents))
    scenarios = []
    for i, scenario_path in enumerate(scenario_paths):
        try:
            scenario = load_scenario(scenario_path)
        except SpecError as exc:
            raise SpecError(f"{path}: scenarios[{i}]: {exc}") from exc
        if config.duration_s is not None:
            scenario = scenario.model_copy(update={"duration_s": config.duration_s})
        scenarios.append(scenario)
    for i, agent_path in enumerate(agent_paths):
        try:
            read_extended(agent_path)  # the agent itself is built in each run: some (an oracle) plan when built
        except SpecError as exc:
            raise SpecError(f"{path}: agents[{i}]: {exc}") from exc
    _refuse_name_clashes(path, "scenarios", [s.name for s in scenarios])
    _refuse_name_clashes(path, "agents", [p.stem for p in agent_paths])
    _refuse_unknown_references(path, config, [p.stem for p in agent_paths])
    return Experiment(path, config, scenario_paths, agent_paths, tuple(scenarios))


def _refuse_name_clashes(path: Path, field: str, names: list[str]) -> None:
    """Reports and tracking key runs by name, so two entries may not share one."""
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise SpecError(f"{path}: {field}: two entries share the name {', '.join(map(repr, clashes))}")


def _refuse_unknown_references(path: Path, config: ExperimentConfig, agents: list[str]) -> None:
    """``oracle_saving`` names two of the experiment's own agents; a ``training_seeds`` row at least two of them,
    under a name that is not an agent's."""
    for field, name in config.oracle_saving or ():
        if name not in agents:
            raise SpecError(f"{path}: oracle_saving.{field}: {name!r} is not one of the agents ({', '.join(agents)})")
    for row, members in config.training_seeds.items():
        where = f"{path}: training_seeds.{row}"
        if row in agents:
            raise SpecError(f"{where}: the row's name is an agent's; name the recipe (e.g. {row}-pooled)")
        if len(set(members)) < 2 or len(set(members)) < len(members):
            raise SpecError(f"{where}: needs two or more different agents, got {members}")
        for name in members:
            if name not in agents:
                raise SpecError(f"{where}: {name!r} is not one of the agents ({', '.join(agents)})")

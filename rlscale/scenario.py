"""Scenario files (``envs/*.yaml``): pod, fleet, traffic, SLOs, prices, metrics pipeline, seed.

A scenario composes the settings each layer below declares: the pod (``rlscale.serving.config``), the fleet
(``rlscale.cluster.config``), the traffic (``rlscale.workload.specs``), the metrics pipeline and its faults
(``rlscale.metrics``); what is declared here is what belongs to a run as a whole (SLOs, prices, reward, seed).

Parsing is strict: an unknown key or a bad value is an error naming the file
and the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from rlscale.cluster.config import FleetConfig
from rlscale.config import StrictModel, merge, nested
from rlscale.data import read_extended, scenario_file
from rlscale.metrics.config import MetricsPipelineConfig
from rlscale.metrics.faults import FaultSpec
from rlscale.serving.config import PodConfig
from rlscale.specs.catalog import validate
from rlscale.workload.servegen import DAY_S
from rlscale.workload.specs import SPLIT_DAYS, ServeGenSpec, Split, WorkloadSpec


# ---- the run as a whole ------------------------------------------------------------
class SLOSpec(StrictModel):
    """Defaults: MLPerf Inference Llama-2-70B server scenario (TTFT p99 2 s, TPOT p99 200 ms)."""

    ttft_p99_s: float = Field(2.0, gt=0, description="Time to first token from arrival, queueing included, s.")
    tpot_p99_s: float = Field(0.2, gt=0, description="Time per output token, s.")
    e2e_s: float | None = Field(None, gt=0, description="Optional end-to-end latency objective, s.")


class RewardSpec(StrictModel):
    """Weights of the learning reward: −(cost + λ·violations + μ·failures + churn), per control step."""

    cost_weight: float = Field(1.0, ge=0, description="Per dollar of chip-time.")
    slo_violation_weight: float = Field(0.01, ge=0, description="λ: per request that ended outside its SLOs.")
    failure_weight: float = Field(0.05, ge=0, description="μ: per failed request (on top of its SLO violation).")
    churn_weight: float = Field(0.01, ge=0, description="Per replica added or removed.")


class RandomizationSpec(StrictModel):
    """What an RL episode draws anew at each reset (the seed always changes)."""

    rate_scale: tuple[float, float] = Field((1.0, 1.0), description="Arrival rates multiplied by U(low, high).")
    initial_replicas: tuple[int, int] | None = Field(None, description="Replicas at t=0 drawn from [low, high].")
    random_start: bool = Field(
        False,
        description="Production traffic only: each episode plays duration_s from a start drawn uniformly (whole "
        "600 s windows) over the days the arrival plays, so that training sees every hour of every day.",
    )


class PricingSpec(StrictModel):
    price_per_chip_hour_usd: float | None = Field(None, ge=0, description="Default: the hardware catalog's price.")


class ScheduleStep(StrictModel):
    at_s: float = Field(ge=0)
    replicas: int = Field(ge=0)


class ScenarioConfig(StrictModel):
    name: str = "scenario"
    description: str = ""
    pod: PodConfig = PodConfig()
    fleet: FleetConfig = FleetConfig()
    workload: WorkloadSpec = WorkloadSpec()
    slo: SLOSpec = SLOSpec()
    pricing: PricingSpec = PricingSpec()
    metrics: MetricsPipelineConfig = MetricsPipelineConfig()
    reward: RewardSpec = RewardSpec()
    randomization: RandomizationSpec = RandomizationSpec()
    schedule: list[ScheduleStep] = Field(default_factory=list, description="Replica changes at given times.")
    faults: list[FaultSpec] = Field(
        default_factory=list, description="Metrics outages, stale samples, failed scale calls (rlscale.metrics.faults)."
    )
    duration_s: float = Field(3600.0, gt=0, description="Simulated time, s.")
    timeline_interval_s: float = Field(60.0, gt=0, description="Width of a timeline row, s.")
    seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _check(self) -> ScenarioConfig:
        times = [s.at_s for s in self.schedule]
        if times != sorted(times):
            raise ValueError(f"schedule: steps must be in time order, got at_s {times}")
        arrival = self.workload.arrival
        production = self.workload.trace is None and isinstance(arrival, ServeGenSpec)
        if self.randomization.random_start and not production:
            raise ValueError("randomization.random_start needs production traffic (workload.arrival.process: servegen)")
        if isinstance(arrival, ServeGenSpec) and self.duration_s > arrival.played_s:
            raise ValueError(
                f"duration_s: {self.duration_s:g} s runs past the {arrival.played_s:g} s of days {arrival.day_range} "
                f"(from {arrival.start_s} s into the first) that workload.arrival plays"
            )
        return self


def scenario_params(scenario: ScenarioConfig) -> dict[str, str]:
    """The fields one filters tracked runs by (MLflow params); the whole scenario is in its file."""
    arrival = "trace" if scenario.workload.trace is not None else scenario.workload.arrival.process
    return {
        "model": scenario.pod.model,
        "hardware": scenario.pod.hardware,
        "initial_replicas": str(scenario.fleet.replicas),
        "routing": scenario.fleet.routing.value,
        "arrival": arrival,
        "duration_s": f"{scenario.duration_s:g}",
        "slo_ttft_p99_s": f"{scenario.slo.ttft_p99_s:g}",
        "slo_tpot_p99_s": f"{scenario.slo.tpot_p99_s:g}",
    }


def load_scenario(path: str | Path) -> ScenarioConfig:
    """A scenario file, or a shipped scenario by name (``steady``, ``envs/steady.yaml``: :mod:`rlscale.data`);
    its name defaults to the file's, also when it ``extends:`` another scenario (whose name it does not inherit)."""
    path = scenario_file(path)
    data = read_extended(path, own=("name",))
    data.setdefault("name", path.stem)
    return validate(ScenarioConfig, data, str(path))


def apply_overrides(
    scenario: ScenarioConfig,
    *,
    model: str | None = None,
    hardware: str | None = None,
    rate_per_s: float | None = None,
    replicas: int | None = None,
    trace: str | None = None,
    trace_format: str | None = None,
    rate_scale: float | None = None,
    duration_s: float | None = None,
    seed: int | None = None,
) -> ScenarioConfig:
    """The scenario with command-line overrides applied (None leaves a field as it is), re-validated.

    ``trace`` replays that file *at its own rate and time, from its start*: the scenario's rate and time scales and
    window were chosen for its own trace, so inheriting them would silently replay another trace at, say, 3x.
    ``rate_scale`` then scales whichever trace is replayed, or a servegen client pool. A flag that cannot apply is an
    error, never ignored.
    """
    data = scenario.model_dump(mode="json")
    for section, key, value in [
        ("pod", "model", model),
        ("pod", "hardware", hardware),
        ("fleet", "replicas", replicas),
    ]:
        if value is not None:
            data[section][key] = value
    workload = data["workload"]
    if trace is not None:
        workload["trace"] = {"path": trace}
    replaying = workload["trace"] is not None
    if rate_per_s is not None:
        if replaying:
            raise ValueError(
                "--rate does not apply to a trace replay (the trace gives the arrivals); "
                "use --rate-scale to multiply the trace's rate"
            )
        if workload["arrival"]["process"] != "poisson":
            raise ValueError(f"--rate only applies to a Poisson scenario, not {workload['arrival']['process']!r}")
        workload["arrival"]["rate_per_s"] = rate_per_s
    if rate_scale is not None and not replaying and workload["arrival"]["process"] == "servegen":
        workload["arrival"]["rate_scale"], rate_scale = rate_scale, None
    for flag, key, value in (("--trace-format", "format", trace_format), ("--rate-scale", "rate_scale", rate_scale)):
        if value is None:
            continue
        if not replaying:
            raise ValueError(f"{flag} applies to a trace replay; scenario {scenario.name!r} has none (give --trace)")
        workload["trace"][key] = value
    if replicas is not None:
        data["schedule"] = []  # a fixed count replaces the scenario's schedule
    for key, value in [("duration_s", duration_s), ("seed", seed)]:
        if value is not None:
            data[key] = value
    return validate(ScenarioConfig, data, f"scenario {scenario.name!r} with overrides")


def on_split(scenario: ScenarioConfig, split: Split, days: tuple[int, int] | None = None) -> ScenarioConfig:
    """The same production scenario on ``split``'s days: tuning and training ask for ``"train"``, evaluation for
    ``"heldout"``. Unless ``days`` says which, it plays as many days as before (at most the split's) from the split's
    first day, or keeps its days if already on ``split``, from the same time of day (``start_s``); ``duration_s`` is
    cut to what is played."""
    arrival = scenario.workload.arrival
    if not isinstance(arrival, ServeGenSpec):
        raise ValueError(
            f"scenario {scenario.name!r} has no production days to split (its arrivals are {arrival.process!r})"
        )
    if days is None and split != arrival.split:
        low, high = SPLIT_DAYS[split]
        first, last = arrival.day_range
        days = (low, min(high, low + last - first))
    fields: dict[str, Any] = {"workload.arrival.split": split, "workload.arrival.days": days or arrival.days}
    played = fields["workload.arrival.days"] or SPLIT_DAYS[split]
    fields["duration_s"] = min(scenario.duration_s, (played[1] - played[0] + 1) * DAY_S - arrival.start_s)
    return with_fields(scenario, fields, where=f"on_split({split!r})")


def with_fields(scenario: ScenarioConfig, fields: Mapping[str, Any], where: str = "--set scenario") -> ScenarioConfig:
    """The scenario with dotted fields set (``reward.slo_violation_weight``: a sweep's settings), re-validated;
    an error names the field."""
    data = scenario.model_dump(mode="json")
    for path, value in fields.items():
        data = merge(data, nested(path, value))
    return validate(ScenarioConfig, data, ", ".join(f"{where}.{p}" for p in fields) or where)

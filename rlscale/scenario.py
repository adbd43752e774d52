"""Scenario files (``envs/*.yaml``): pod, fleet, traffic, SLOs, prices, metrics pipeline, seed.

Parsing is strict: an unknown key or a bad value is an error naming the file
and the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from rlscale.cluster.config import FleetConfig
from rlscale.config import StrictModel, merge, nested
from rlscale.metrics.config import MetricsPipelineConfig
from rlscale.metrics.faults import FaultSpec
from rlscale.serving.config import PodConfig
from rlscale.specs.catalog import read_document, validate
from rlscale.workload.servegen import DAY_S, load_service


# ---- arrivals -------------------------------------------------------------------
class PoissonSpec(StrictModel):
    process: Literal["poisson"] = "poisson"
    rate_per_s: float = Field(5.0, gt=0, description="Mean arrival rate, requests/s.")


class DiurnalSpec(StrictModel):
    process: Literal["diurnal"]
    mean_rate_per_s: float = Field(gt=0)
    amplitude: float = Field(0.5, ge=0, le=1, description="Peak-to-mean swing as a fraction of the mean.")
    period_s: float = Field(86400.0, gt=0)
    phase_s: float = 0.0


class StepSpec(StrictModel):
    process: Literal["step"]
    steps: list[tuple[float, float]] = Field(min_length=1, description="(start_s, rate_per_s) pairs, in time order.")


class RampSpec(StrictModel):
    process: Literal["ramp"]
    from_rate_per_s: float = Field(ge=0)
    to_rate_per_s: float = Field(ge=0)
    start_s: float = Field(ge=0)
    end_s: float = Field(gt=0)


class FlashCrowdSpec(StrictModel):
    process: Literal["flash-crowd"]
    base_rate_per_s: float = Field(gt=0)
    peak_rate_per_s: float = Field(gt=0)
    start_s: float = Field(ge=0)
    rise_s: float = Field(60.0, ge=0)
    hold_s: float = Field(300.0, ge=0)
    decay_s: float = Field(300.0, ge=0)


class MMPPSpec(StrictModel):
    process: Literal["mmpp"]
    rates_per_s: list[float] = Field(min_length=2, description="Arrival rate in each hidden state.")
    mean_sojourn_s: list[float] = Field(min_length=2, description="Mean time spent in each state.")


# Days of a production record (ServeGen's 14) kept apart: tuning and training see only "train"; "heldout" is for
# evaluation, so a policy is judged on days it never saw.
Split = Literal["train", "heldout"]
SPLIT_DAYS: dict[str, tuple[int, int]] = {"train": (1, 10), "heldout": (11, 14)}


class TopClients(StrictModel):
    top: int = Field(ge=1, description="The k clients with the most requests over the training days (1-10).")


class ServeGenSpec(StrictModel):
    """A pool of production clients (ServeGen, Alibaba Cloud Model Studio): each client a renewal process per 600 s
    window at that window's rate and fitted gap distribution; lengths per client and 6-hour window, else
    ``workload.lengths``. See ``rlscale/workload/clientpool.py``."""

    process: Literal["servegen"]
    service: str = Field(
        "m-small",
        description="Bundled service (m-large, m-mid, m-small: language models of Alibaba Cloud Model Studio), a "
        "folder of ServeGen chunk-<id>-trace.csv (and chunk-<id>-dataset.json) files, or a bundle .npz.",
    )
    clients: Literal["all"] | TopClients | list[int] = Field(
        "all",
        description="all; {top: k}, the k busiest over the training days (the same clients on either split); or a "
        "list of ServeGen client ids.",
    )
    split: Split = Field(
        "train", description="Days the scenario may play: train = days 1-10 (tuning, training), heldout = days 11-14."
    )
    days: tuple[int, int] | None = Field(
        None, description="First and last day played (1-based, inclusive), within the split; default: all of it."
    )
    rate_scale: float = Field(
        1.0,
        gt=0,
        description="Factor on every client's rate (shape and CV kept), dimensionless: production rates "
        "are hundreds of req/s; a fleet here serves ~1-10 req/s per pod.",
    )

    @property
    def day_range(self) -> tuple[int, int]:
        """(first, last) day played, 1-based and inclusive."""
        return self.days if self.days is not None else SPLIT_DAYS[self.split]

    @property
    def played_s(self) -> float:
        """Length of the days played, s."""
        first, last = self.day_range
        return (last - first + 1) * DAY_S

    @model_validator(mode="after")
    def _check(self) -> ServeGenSpec:
        first, last = self.day_range
        low, high = SPLIT_DAYS[self.split]
        if not low <= first <= last <= high:
            raise ValueError(
                f"days: [{first}, {last}] must be an ordered range within split {self.split!r} (days {low}-{high}); "
                "held-out days 11-14 are for evaluation only"
            )
        service = load_service(self.service)
        if last > service.days:
            raise ValueError(f"days: {service.name} spans {service.days} days, not day {last}")
        if isinstance(self.clients, list):
            service.client_index(self.clients)
        elif isinstance(self.clients, TopClients) and self.clients.top > service.client_ids.size:
            raise ValueError(
                f"clients.top: {service.name} has {service.client_ids.size} clients, not {self.clients.top}"
            )
        return self


ArrivalSpec = Annotated[
    PoissonSpec | DiurnalSpec | StepSpec | RampSpec | FlashCrowdSpec | MMPPSpec | ServeGenSpec,
    Field(discriminator="process"),
]


# ---- lengths and traces -----------------------------------------------------------
class FixedLengthSpec(StrictModel):
    kind: Literal["fixed"] = "fixed"
    prompt_tokens: int = Field(gt=0)
    output_tokens: int = Field(gt=0)


class EmpiricalLengthSpec(StrictModel):
    kind: Literal["empirical"] = "empirical"
    trace: str = Field("azure-conv", description="Bundled trace name or path to an Azure CSV / Mooncake JSONL.")


class LognormalLengthSpec(StrictModel):
    kind: Literal["lognormal"]
    prompt_median: float = Field(gt=0)
    prompt_sigma: float = Field(ge=0)
    output_median: float = Field(gt=0)
    output_sigma: float = Field(ge=0)


class FittedLengthSpec(StrictModel):
    kind: Literal["fitted"]
    trace: str = Field("azure-conv", description="Trace whose lengths a lognormal is fitted to.")


LengthSpec = Annotated[
    FixedLengthSpec | EmpiricalLengthSpec | LognormalLengthSpec | FittedLengthSpec, Field(discriminator="kind")
]


class TraceSpec(StrictModel):
    """Replay a trace's arrivals and lengths."""

    path: str = Field("azure-conv", description="Bundled trace name, or path to an Azure CSV / Mooncake JSONL.")
    format: Literal["azure", "mooncake"] | None = Field(None, description="Default: from the file extension.")
    time_scale: float = Field(1.0, gt=0, description=">1 stretches time (slower arrivals).")
    rate_scale: float = Field(1.0, gt=0, description="Each request replayed this many times on average.")
    start_s: float = Field(0.0, ge=0, description="Window start within the trace, s.")
    duration_s: float | None = Field(None, gt=0, description="Window length within the trace, s.")


class WorkloadSpec(StrictModel):
    arrival: ArrivalSpec = PoissonSpec()
    lengths: LengthSpec = Field(
        EmpiricalLengthSpec(),
        description="Request lengths; for a servegen pool, the fallback where the data has no lengths for a client "
        "and window (m-large, m-mid, some m-small clients).",
    )
    trace: TraceSpec | None = Field(None, description="When set, arrivals and lengths come from the trace.")


# ---- the rest ------------------------------------------------------------------------
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
        if isinstance(arrival, ServeGenSpec) and self.duration_s > arrival.played_s:
            raise ValueError(
                f"duration_s: {self.duration_s:g} s runs past the {arrival.played_s:g} s of days {arrival.day_range} "
                "that workload.arrival plays"
            )
        return self


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
    first day, or keeps its days if already on ``split``; ``duration_s`` is cut to the days played."""
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
    fields["duration_s"] = min(scenario.duration_s, (played[1] - played[0] + 1) * DAY_S)
    return with_fields(scenario, fields, where=f"on_split({split!r})")


def with_fields(scenario: ScenarioConfig, fields: Mapping[str, Any], where: str = "--set scenario") -> ScenarioConfig:
    """The scenario with dotted fields set (``reward.slo_violation_weight``: a sweep's settings), re-validated;
    an error names the field."""
    data = scenario.model_dump(mode="json")
    for path, value in fields.items():
        data = merge(data, nested(path, value))
    return validate(ScenarioConfig, data, ", ".join(f"{where}.{p}" for p in fields) or where)

"""The traffic a scenario declares (``workload:`` in ``envs/*.yaml``): arrival processes, request lengths, trace
replays and production client pools, as validated data.

Each process is declared here once, with every check on its parameters (an error names the field); the
behaviour that draws from it (:mod:`rlscale.workload.arrivals`, :mod:`rlscale.workload.clientpool`) is built from
these objects and trusts them. :class:`rlscale.scenario.ScenarioConfig` composes a :class:`WorkloadSpec` with the
pod, the fleet and the rest.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from rlscale.config import StrictModel
from rlscale.workload.servegen import DAY_S, WINDOW_S, load_service


# ---- arrivals -------------------------------------------------------------------
class PoissonSpec(StrictModel):
    """Exponential inter-arrival times at a constant rate."""

    process: Literal["poisson"] = "poisson"
    rate_per_s: float = Field(5.0, gt=0, description="Mean arrival rate, requests/s.")


class DiurnalSpec(StrictModel):
    """A daily cycle: rate ``mean·(1 + amplitude·sin(2π(t + phase)/period))``."""

    process: Literal["diurnal"]
    mean_rate_per_s: float = Field(gt=0)
    amplitude: float = Field(0.5, ge=0, le=1, description="Peak-to-mean swing as a fraction of the mean.")
    period_s: float = Field(86400.0, gt=0)
    phase_s: float = Field(0.0, allow_inf_nan=False)


class StepSpec(StrictModel):
    """Piecewise-constant rate: each ``(start_s, rate_per_s)`` holds until the next start; zero before the first."""

    process: Literal["step"]
    steps: tuple[tuple[float, float], ...] = Field(
        min_length=1, description="(start_s, rate_per_s) pairs, in time order."
    )

    @model_validator(mode="after")
    def _check(self) -> StepSpec:
        for i, (start, rate) in enumerate(self.steps):
            if start < 0:
                raise ValueError(f"steps[{i}] start_s must be >= 0, got {start}")
            if rate < 0:
                raise ValueError(f"steps[{i}] rate_per_s must be >= 0, got {rate}")
            if i > 0 and start <= self.steps[i - 1][0]:
                prev = self.steps[i - 1][0]
                raise ValueError(f"steps[{i}] start_s must be > steps[{i - 1}] start_s ({prev}), got {start}")
        if not any(rate > 0 for _, rate in self.steps):
            raise ValueError(f"steps must have some rate_per_s > 0, got {self.steps}")
        return self


class RampSpec(StrictModel):
    """The rate moves linearly from ``from_rate_per_s`` to ``to_rate_per_s`` over [start_s, end_s], flat outside."""

    process: Literal["ramp"]
    from_rate_per_s: float = Field(ge=0)
    to_rate_per_s: float = Field(ge=0)
    start_s: float = Field(ge=0)
    end_s: float = Field(gt=0)

    @model_validator(mode="after")
    def _check(self) -> RampSpec:
        if not (self.from_rate_per_s > 0 or self.to_rate_per_s > 0):
            raise ValueError(
                f"from_rate_per_s or to_rate_per_s must be > 0, got {self.from_rate_per_s} and {self.to_rate_per_s}"
            )
        if self.end_s <= self.start_s:
            raise ValueError(f"end_s must be > start_s ({self.start_s}), got {self.end_s}")
        return self


class FlashCrowdSpec(StrictModel):
    """A surge: base rate, linear rise to the peak from ``start_s``, hold, linear decay back to the base."""

    process: Literal["flash-crowd"]
    base_rate_per_s: float = Field(gt=0)
    peak_rate_per_s: float = Field(gt=0)
    start_s: float = Field(ge=0)
    rise_s: float = Field(60.0, ge=0)
    hold_s: float = Field(300.0, ge=0)
    decay_s: float = Field(300.0, ge=0)

    @model_validator(mode="after")
    def _check(self) -> FlashCrowdSpec:
        if self.peak_rate_per_s < self.base_rate_per_s:
            raise ValueError(
                f"peak_rate_per_s must be >= base_rate_per_s ({self.base_rate_per_s}), got {self.peak_rate_per_s}"
            )
        return self


class MMPPSpec(StrictModel):
    """A Markov-modulated Poisson process: the rate switches among hidden states (bursty traffic)."""

    process: Literal["mmpp"]
    rates_per_s: tuple[float, ...] = Field(min_length=2, description="Arrival rate in each hidden state.")
    mean_sojourn_s: tuple[float, ...] = Field(min_length=2, description="Mean time spent in each state.")

    @model_validator(mode="after")
    def _check(self) -> MMPPSpec:
        n = len(self.rates_per_s)
        if len(self.mean_sojourn_s) != n:
            raise ValueError(f"mean_sojourn_s must have one entry per state ({n}), got {self.mean_sojourn_s}")
        for i, (rate, sojourn) in enumerate(zip(self.rates_per_s, self.mean_sojourn_s, strict=True)):
            if rate < 0:
                raise ValueError(f"rates_per_s[{i}] must be >= 0, got {rate}")
            if not sojourn > 0:
                raise ValueError(f"mean_sojourn_s[{i}] must be > 0, got {sojourn}")
        if not any(rate > 0 for rate in self.rates_per_s):
            raise ValueError(f"rates_per_s must have some rate > 0, got {self.rates_per_s}")
        return self


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
    start_s: int = Field(
        0,
        ge=0,
        multiple_of=WINDOW_S,
        description="Time of day on the first day played at which the run starts, s, a whole number of the data's "
        "600 s windows (57600: 16:00); time 0 of the run is then. A window of a day (tuning on its evening ramp) "
        "without replaying its morning.",
    )

    @property
    def day_range(self) -> tuple[int, int]:
        """(first, last) day played, 1-based and inclusive."""
        return self.days if self.days is not None else SPLIT_DAYS[self.split]

    @property
    def played_s(self) -> float:
        """Length of what is played, s: the days from ``start_s`` on the first."""
        first, last = self.day_range
        return (last - first + 1) * DAY_S - self.start_s

    @model_validator(mode="after")
    def _check(self) -> ServeGenSpec:
        first, last = self.day_range
        low, high = SPLIT_DAYS[self.split]
        if self.start_s >= DAY_S:
            raise ValueError(f"start_s: {self.start_s} s is not within the first day played (< {DAY_S} s)")
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

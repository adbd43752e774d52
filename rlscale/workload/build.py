"""Turn a scenario's workload section into a stream of (arrival_s, prompt_tokens, output_tokens)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from rlscale.workload.arrivals import PROCESSES, ArrivalProcess
from rlscale.workload.clientpool import ClientPoolArrivals, select_clients
from rlscale.workload.lengths import FixedLengths, LengthSampler, LognormalLengths, fit_lognormal
from rlscale.workload.servegen import DAY_S, WINDOW_S, load_service
from rlscale.workload.specs import (
    SPLIT_DAYS,
    ArrivalSpec,
    EmpiricalLengthSpec,
    FittedLengthSpec,
    FixedLengthSpec,
    LengthSpec,
    MMPPSpec,
    ServeGenSpec,
    StepSpec,
    TopClients,
    TraceSpec,
    WorkloadSpec,
)
from rlscale.workload.traces import TraceReplay, load_trace, trace_format, trace_lengths

LENGTH_BLOCK = 4096


def arrival_process(spec: ArrivalSpec) -> ArrivalProcess:
    """The process a spec declares, ready to draw."""
    if isinstance(spec, ServeGenSpec):
        return client_pool(spec)
    return PROCESSES[type(spec)](spec)


def client_pool(spec: ServeGenSpec) -> ClientPoolArrivals:
    """The pool's arrival process over the spec's days, from ``start_s`` into the first; ``top`` ranks clients over
    the training days only, so the held-out days never steer what a scenario plays."""
    service = load_service(spec.service)
    ids = spec.clients if isinstance(spec.clients, list) else None
    top = spec.clients.top if isinstance(spec.clients, TopClients) else None
    clients = select_clients(service, ids, top, rank_days=min(SPLIT_DAYS["train"][1], service.days))
    first, last = spec.day_range
    per_day, skipped = DAY_S // WINDOW_S, spec.start_s // WINDOW_S
    first_window, n_windows = (first - 1) * per_day + skipped, (last - first + 1) * per_day - skipped
    return ClientPoolArrivals(service, clients, first_window, n_windows, spec.rate_scale)


def length_sampler(spec: LengthSpec) -> LengthSampler:
    if isinstance(spec, FixedLengthSpec):
        return FixedLengths(spec.prompt_tokens, spec.output_tokens)
    if isinstance(spec, EmpiricalLengthSpec):
        return trace_lengths(load_trace(spec.trace))
    if isinstance(spec, FittedLengthSpec):
        return fit_lognormal(trace_lengths(load_trace(spec.trace)))
    return LognormalLengths(spec.prompt_median, spec.prompt_sigma, spec.output_median, spec.output_sigma)


def trace_replay(spec: TraceSpec) -> TraceReplay:
    return TraceReplay(
        load_trace(spec.path, spec.format), spec.time_scale, spec.rate_scale, spec.start_s, spec.duration_s
    )


def describe_replay(spec: WorkloadSpec, until_s: float) -> dict | None:
    """What a trace replay will play (path, format, scales, window, requests; see ``TraceReplay.describe``), or None
    for synthetic traffic: printed before a run and kept in its summary so that no scale goes unsaid."""
    if spec.trace is None:
        return None
    t = spec.trace
    return {"path": t.path, "format": trace_format(t.path, t.format), **trace_replay(t).describe(until_s)}


def request_stream(
    spec: WorkloadSpec, seed_seq: np.random.SeedSequence, until_s: float
) -> Iterator[tuple[float, int, int]]:
    """Arrivals with their lengths; arrivals and lengths draw from separate streams."""
    arrival_rng, length_rng = (np.random.default_rng(s) for s in seed_seq.spawn(2))
    if spec.trace is not None:
        yield from trace_replay(spec.trace).times_and_lengths(arrival_rng, until_s)
        return
    lengths = length_sampler(spec.lengths)
    if isinstance(spec.arrival, ServeGenSpec):  # lengths belong to each request's client and window
        yield from client_pool(spec.arrival).requests(arrival_rng, length_rng, until_s, fallback=lengths)
        return
    prompts: list[int] = []
    outputs: list[int] = []
    for time_s in arrival_process(spec.arrival).times(arrival_rng, until_s):
        if not prompts:  # draw lengths in blocks: one numpy call per LENGTH_BLOCK requests
            p, o = lengths.sample_batch(length_rng, LENGTH_BLOCK)
            prompts, outputs = p.tolist()[::-1], o.tolist()[::-1]
        yield time_s, prompts.pop(), outputs.pop()


RATE_FIELDS = {
    "poisson": ("rate_per_s",),
    "diurnal": ("mean_rate_per_s",),
    "ramp": ("from_rate_per_s", "to_rate_per_s"),
    "flash-crowd": ("base_rate_per_s", "peak_rate_per_s"),
    "servegen": ("rate_scale",),
}


def scaled_workload(spec: WorkloadSpec, factor: float) -> WorkloadSpec:
    """The same traffic shape with every arrival rate multiplied by ``factor``."""
    if spec.trace is not None:
        return spec.model_copy(
            update={"trace": spec.trace.model_copy(update={"rate_scale": spec.trace.rate_scale * factor})}
        )
    arrival = spec.arrival
    if isinstance(arrival, StepSpec):
        update = {"steps": tuple((start, rate * factor) for start, rate in arrival.steps)}
    elif isinstance(arrival, MMPPSpec):
        update = {"rates_per_s": tuple(rate * factor for rate in arrival.rates_per_s)}
    else:
        update = {name: getattr(arrival, name) * factor for name in RATE_FIELDS[arrival.process]}
    return spec.model_copy(update={"arrival": arrival.model_copy(update=update)})


def clock_origin_s(spec: WorkloadSpec) -> float:
    """Where the run's time 0 falls, s after midnight of the record's first day: production traffic played from day
    ``d`` at ``start_s`` starts at ``(d - 1)·86400 + start_s`` (so that consecutive days' runs share one clock and
    the time of day is its remainder); synthetic traffic and traces start at a midnight (0)."""
    arrival = spec.arrival
    if spec.trace is not None or not isinstance(arrival, ServeGenSpec):
        return 0.0
    return float((arrival.day_range[0] - 1) * DAY_S + arrival.start_s)


def random_window(spec: WorkloadSpec, duration_s: float, rng: np.random.Generator) -> WorkloadSpec:
    """The same production traffic played for ``duration_s`` from a start drawn uniformly, in whole 600 s windows,
    over the days its arrival plays (from midnight of the first), so that episodes see every hour of every day."""
    arrival = spec.arrival
    if spec.trace is not None or not isinstance(arrival, ServeGenSpec):
        raise ValueError("randomization.random_start needs production traffic (workload.arrival.process: servegen)")
    first, last = arrival.day_range
    span_s = (last - first + 1) * DAY_S
    starts = int((span_s - duration_s) // WINDOW_S) + 1
    if starts < 1:
        raise ValueError(f"randomization.random_start: {duration_s:g} s do not fit in days {first}-{last}")
    offset = int(rng.integers(starts)) * WINDOW_S
    day, start = first + offset // DAY_S, offset % DAY_S
    end_day = day + math.ceil((start + duration_s) / DAY_S) - 1
    window = arrival.model_copy(update={"days": (day, end_day), "start_s": start})
    return spec.model_copy(update={"arrival": window})

"""What a load test will send: a scenario's traffic drawn in advance, its rate segments, and the safety limits.

The requests are the scenario's own (``workload``: a Poisson rate, a step or ramp ladder, a trace replay, the
production client pools), drawn exactly as the simulator draws them (:func:`rlscale.simulation.arrivals`), so a
load test and a simulation of the same scenario and seed see the same (time, prompt, output) requests: the
arrivals are open-loop, each sent at its time whatever the server is doing.

A real cluster is protected by two limits the user must state (:func:`check_limits`): the plan's peak rate over
any ``PEAK_WINDOW_S`` and its duration. Both are in the server's time; an emulator running ``K``× real time
(``rlscale emulate --speed K``) is driven ``K``× faster on the wall clock (``time_scale``), and every time
recorded is the server's.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from rlscale.scenario import ScenarioConfig
from rlscale.simulation import arrivals
from rlscale.workload.specs import StepSpec

PEAK_WINDOW_S = 10.0  # the peak rate is the busiest 10 s (a load balancer's, an autoscaler's order of magnitude)
SEGMENT_S = 60.0  # a plan without steps is judged per minute (rlscale capacity --from)


@dataclass(frozen=True)
class Segment:
    """A stretch of the plan at one offered rate (a step of a ladder, or a minute)."""

    start_s: float
    end_s: float
    rate_per_s: float  # planned arrivals / length


@dataclass(frozen=True)
class LoadTestPlan:
    scenario: ScenarioConfig
    times_s: np.ndarray
    prompts: np.ndarray
    outputs: np.ndarray
    segments: tuple[Segment, ...]

    @classmethod
    def of(cls, scenario: ScenarioConfig) -> LoadTestPlan:
        """The scenario's requests over its ``duration_s`` and the segments they are judged in."""
        rows = np.array(arrivals(scenario), dtype=float).reshape(-1, 3)
        times = rows[:, 0]
        return cls(scenario, times, rows[:, 1].astype(int), rows[:, 2].astype(int), _segments(scenario, times))

    @property
    def duration_s(self) -> float:
        return self.scenario.duration_s

    def peak_rate_per_s(self) -> float:
        """Arrivals in the busiest ``PEAK_WINDOW_S`` (sliding over arrivals), per second."""
        if len(self.times_s) == 0:
            return 0.0
        ends = np.searchsorted(self.times_s, self.times_s + PEAK_WINDOW_S, side="left")
        return float((ends - np.arange(len(self.times_s))).max()) / PEAK_WINDOW_S

    def describe(self) -> list[str]:
        """The plan in a few lines: what a dry run prints."""
        n = len(self.times_s)
        lines = [
            f"{n} requests over {self.duration_s:g} s: mean {n / self.duration_s:.2f} req/s, peak "
            f"{self.peak_rate_per_s():.2f} req/s over {PEAK_WINDOW_S:g} s",
        ]
        if n:
            for name, values in (("prompt", self.prompts), ("output", self.outputs)):
                q = np.percentile(values, [50, 90, 99])
                lines.append(
                    f"{name} tokens: mean {values.mean():.0f}, p50 {q[0]:.0f}, p90 {q[1]:.0f}, p99 {q[2]:.0f}, "
                    f"max {values.max()}"
                )
        shown = self.segments if len(self.segments) <= 12 else (*self.segments[:6], None, *self.segments[-5:])
        for seg in shown:
            if seg is None:
                lines.append("  ...")
                continue
            count = int(np.sum((self.times_s >= seg.start_s) & (self.times_s < seg.end_s)))
            lines.append(f"  {seg.start_s:8.1f}-{seg.end_s:8.1f} s  {seg.rate_per_s:7.2f} req/s  {count} requests")
        return lines


def _segments(scenario: ScenarioConfig, times: np.ndarray) -> tuple[Segment, ...]:
    """A step ladder's steps (clipped to the run), else one segment per ``SEGMENT_S``."""
    end = scenario.duration_s
    arrival = scenario.workload.arrival
    if scenario.workload.trace is None and isinstance(arrival, StepSpec):
        starts = [s for s, _ in arrival.steps if s < end]
        bounds = [*starts, end]
    else:
        count = max(1, math.ceil(end / SEGMENT_S))
        bounds = [min(k * SEGMENT_S, end) for k in range(count)] + [end]
    segments = []
    for start, stop in itertools.pairwise(bounds):
        if stop <= start:
            continue
        n = int(np.sum((times >= start) & (times < stop)))
        segments.append(Segment(start, stop, n / (stop - start)))
    return tuple(segments)


def check_limits(plan: LoadTestPlan, max_rate_per_s: float, max_duration_s: float) -> None:
    """Refuse a plan beyond the stated limits, with the numbers."""
    if not max_rate_per_s > 0 or not max_duration_s > 0:
        raise ValueError("--max-rate and --max-duration must be > 0")
    peak = plan.peak_rate_per_s()
    if peak > max_rate_per_s:
        raise ValueError(
            f"the plan peaks at {peak:.2f} req/s over {PEAK_WINDOW_S:g} s, over --max-rate {max_rate_per_s:g}: "
            "lower the scenario's rate or state a higher limit"
        )
    if plan.duration_s > max_duration_s:
        raise ValueError(
            f"the plan lasts {plan.duration_s:g} s, over --max-duration {max_duration_s:g}: "
            "shorten it (--duration) or state a longer limit"
        )

"""What a run spent while nothing arrived: in a replayed production trace, mostly recording gaps.

A day of ServeGen traffic has whole windows in which no client is recorded (day 11 of m-small: 110 minutes in
three gaps). A planner that knows the day can scale to one pod through them and back up just before traffic
returns; a causal policy cannot tell a recording gap from a real lull until traffic is back, so it either keeps its
pods (and pays) or lets them go (and misses the return). Splitting each run's cost at the silences shows how much of
the oracle's saving lies there, and which share of the rest a policy gets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SILENT_COLUMNS = ("silent_s", "silent_cost_usd", "traffic_cost_usd")  # results.csv columns, one value per run


@dataclass(frozen=True)
class SilentSplit:
    """A run's time without an arrival (timeline intervals that counted none) and the cost accrued in it, $."""

    silent_s: float
    cost_usd: float


def silent_split(timeline: Sequence[dict[str, Any]]) -> SilentSplit:
    """Sum the intervals of ``timeline`` (rows as ``rlscale.timeline`` writes them: each for the interval that ends
    at its ``t_s``, ``cost_usd`` accumulated since the start) in which ``arrivals`` is 0. Only whole intervals count:
    a gap that begins or ends inside an interval is silent only where it covers one, so the split is as fine as the
    scenario's ``timeline_interval_s``."""
    silent_s = cost = 0.0
    start_s = spent = 0.0
    for row in timeline:
        if row["arrivals"] == 0:
            silent_s += row["t_s"] - start_s
            cost += row["cost_usd"] - spent
        start_s, spent = row["t_s"], row["cost_usd"]
    return SilentSplit(silent_s, cost)


def silent_columns(timeline: Sequence[dict[str, Any]], cost_usd: float) -> dict[str, float]:
    """A run's :data:`SILENT_COLUMNS` from its timeline and its whole cost: the time without an arrival, the cost in
    it and the rest of ``cost_usd`` (all of it for a run without a timeline)."""
    split = silent_split(timeline)
    traffic = cost_usd - split.cost_usd
    return {"silent_s": split.silent_s, "silent_cost_usd": split.cost_usd, "traffic_cost_usd": traffic}


def outside_silences(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """results.csv's rows with each run's cost replaced by what it spent while traffic arrived."""
    return [row | {"cost_usd": row["traffic_cost_usd"]} for row in rows]

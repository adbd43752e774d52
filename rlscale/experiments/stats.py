"""From runs to numbers: KPIs flattened to columns, and means with Student-t confidence intervals over seeds."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from rlscale.experiments.runner import RunRecord
from rlscale.experiments.silences import silent_columns
from rlscale.tracking.keys import metric_key

ID_COLUMNS = ("scenario", "agent", "seed")
CONFIDENCE = 0.95


def _slug(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", key).strip("_").lower()


def flatten_kpis(kpis: dict[str, Any]) -> dict[str, float | int | bool]:
    """One column per number: ``ttft_s: {p99: …}`` becomes ``ttft_p99_s`` (the unit stays last),
    ``failures: {"no ready pod": 3}`` becomes ``failures_no_ready_pod``."""
    flat: dict[str, float | int | bool] = {}
    for key, value in kpis.items():
        if isinstance(value, dict):
            stem, unit = (key[:-2], "_s") if key.endswith("_s") else (key, "")
            for sub in sorted(value):
                flat[f"{stem}_{_slug(sub)}{unit}"] = value[sub]
        else:
            flat[key] = value
    return flat


def run_metrics(
    kpis: dict[str, Any], wall_s: float, planning_s: float = 0.0, plan_met_target: bool | None = None
) -> dict[str, float]:
    """A run's KPIs (``KPIs.as_dict()``), wall time and planning time as MLflow metrics, and for a planner whether
    its plan met its own target (1/0); NaN stays NaN (MLflow stores it), a KPI that does not apply (None, e.g. no e2e
    objective, or no plan) is not logged."""
    flat = flatten_kpis(kpis) | {"wall_s": wall_s, "planning_s": planning_s, "plan_met_target": plan_met_target}
    return {metric_key(c): float(v) for c, v in flat.items() if v is not None}


def result_rows(records: Sequence[RunRecord]) -> tuple[list[str], list[dict[str, Any]]]:
    """``results.csv``: the columns (KPI order, then any failure kinds seen) and one row per run.

    A failure kind that a run did not see counts 0 there; other columns a run lacks are left empty.
    ``planning_s`` is a planner's search before the run (0 for the others), apart from the simulation's
    ``wall_s``; ``plan_met_target`` whether its checked plan met its own target (empty for an agent that does not
    plan); ``silent_s``, ``silent_cost_usd`` and ``traffic_cost_usd`` the time without an arrival, what the run spent
    in it and what it spent in the rest (``rlscale.experiments.silences``).
    """
    flats = [
        flatten_kpis(r.kpis)
        | {"wall_s": r.wall_s, "planning_s": r.planning_s, "plan_met_target": r.plan_met_target}
        | silent_columns(r.timeline, float(r.kpis.get("cost_usd", math.nan)))
        for r in records
    ]
    columns = list(ID_COLUMNS)
    for flat in flats:
        columns += [c for c in flat if c not in columns]
    rows = []
    for record, flat in zip(records, flats, strict=True):
        row = {"scenario": record.scenario, "agent": record.agent, "seed": record.seed}
        for column in columns[len(ID_COLUMNS) :]:
            row[column] = flat.get(column, 0 if column.startswith("failures_") else "")
        rows.append(row)
    return columns, rows


@dataclass(frozen=True)
class Interval:
    """A mean over seeds and the half-width of its confidence interval (NaN with fewer than two values)."""

    mean: float
    half_width: float
    n: int

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width


def mean_ci(values: Iterable[float], confidence: float = CONFIDENCE) -> Interval:
    """Mean ± t_{(1+c)/2, n-1} · s/√n over the finite values (a run that measured nothing gives NaN and is left out)."""
    arr = np.asarray([float(v) for v in values], dtype=float)
    arr = arr[np.isfinite(arr)]
    n = int(arr.size)
    if n == 0:
        return Interval(math.nan, math.nan, 0)
    mean = float(arr.mean())
    if n == 1:
        return Interval(mean, math.nan, 1)
    sem = float(arr.std(ddof=1)) / math.sqrt(n)
    return Interval(mean, float(stats.t.ppf((1 + confidence) / 2, n - 1)) * sem, n)


def summarize(
    rows: Sequence[dict[str, Any]], columns: Sequence[str], confidence: float = CONFIDENCE
) -> dict[tuple[str, str], dict[str, Interval]]:
    """Per (scenario, agent), in first-seen order: an interval over seeds for each of ``columns``."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["scenario"], row["agent"]), []).append(row)
    return {
        key: {c: mean_ci((_number(r.get(c, "")) for r in group), confidence) for c in columns}
        for key, group in groups.items()
    }


def _number(value: Any) -> float:
    return math.nan if value == "" or value is None else float(value)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats: cost (first) no higher and attainment (second) no lower,
    with one of them strictly better. Sorted by cost."""
    front = [
        i
        for i, (cost, good) in enumerate(points)
        if math.isfinite(cost)
        and math.isfinite(good)
        and not any(c <= cost and g >= good and (c < cost or g > good) for c, g in points)
    ]
    return sorted(front, key=lambda i: points[i][0])


@dataclass(frozen=True)
class SavingShare:
    """A policy's share of the oracle's saving over the best static count, ``(static − policy) / (static − oracle)``
    on cost: 0 is the static count's cost, 1 the oracle's, below 0 dearer than static. ``mean`` is the share of the
    mean costs; ``per_seed`` the interval over seeds of each seed's share (every agent ran the same arrivals under a
    seed, so the three costs of a seed are paired). ``missing`` says why there is no share: the policy misses where
    the static count does not (its SLO attainment is lower), or the oracle saved nothing."""

    mean: float
    per_seed: Interval
    missing: str | None = None


def saving_share(
    policy: Sequence[tuple[float, float]],
    static: Sequence[tuple[float, float]],
    oracle: Sequence[tuple[float, float]],
    confidence: float = CONFIDENCE,
    *,
    require_attainment: bool = True,
) -> SavingShare:
    """The policy's :class:`SavingShare` from (cost, SLO attainment) per seed of the policy, the static count and the
    oracle, in the same seed order. Only at equal-or-better SLO attainment (mean over seeds) than the static count: a
    policy that saves by missing more is not sharing the oracle's saving (``require_attainment=False`` gives the share
    of cost alone, for a reader who says beside it that the attainment is lower)."""
    costs = [np.array([c for c, _ in runs], dtype=float) for runs in (policy, static, oracle)]
    attained = [float(np.nanmean([a for _, a in runs])) for runs in (policy, static)]
    cost, static_cost, oracle_cost = costs
    nothing = Interval(math.nan, math.nan, 0)
    if require_attainment and not attained[0] >= attained[1]:
        return SavingShare(math.nan, nothing, "misses")
    saved = static_cost.mean() - oracle_cost.mean()
    if not saved > 0:
        return SavingShare(math.nan, nothing, "no saving")
    mean = float((static_cost.mean() - cost.mean()) / saved)
    if not len(cost) == len(static_cost) == len(oracle_cost):
        return SavingShare(mean, nothing)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_seed = (static_cost - cost) / (static_cost - oracle_cost)
    return SavingShare(mean, mean_ci(per_seed[static_cost > oracle_cost], confidence))


def saving_shares(
    rows: Sequence[dict[str, Any]], static: str, oracle: str, confidence: float = CONFIDENCE,
    *, require_attainment: bool = True,
) -> dict[tuple[str, str], SavingShare]:  # fmt: skip
    """Per (scenario, agent) of ``rows`` (results.csv's): its :class:`SavingShare` against the agents named ``static``
    and ``oracle`` on the seeds all three ran; none for a scenario that lacks either."""
    runs: dict[tuple[str, str], dict[int, tuple[float, float]]] = {}
    for row in rows:
        key = (row["scenario"], row["agent"])
        runs.setdefault(key, {})[int(row["seed"])] = (_number(row["cost_usd"]), _number(row["slo_attainment"]))
    shares = {}
    for (scenario, agent), by_seed in runs.items():
        references = [runs.get((scenario, static)), runs.get((scenario, oracle))]
        if None in references:
            continue
        seeds = sorted(set(by_seed).intersection(*references))
        paired = [[runs_of[seed] for seed in seeds] for runs_of in (by_seed, *references)]
        shares[scenario, agent] = saving_share(*paired, confidence=confidence, require_attainment=require_attainment)
    return shares


def pooled(intervals: Sequence[dict[str, Interval]], confidence: float = CONFIDENCE) -> dict[str, Interval]:
    """A training recipe's row from its policies' rows (one per training seed, each over the evaluation seeds): per
    column, the interval over the policies' means, n = the training seeds that measured it."""
    columns = [c for c in intervals[0] if all(c in row for row in intervals)] if intervals else []
    return {c: mean_ci((row[c].mean for row in intervals), confidence) for c in columns}


def pooled_share(
    members: Sequence[tuple[float, float]], static: tuple[float, float], oracle_cost: float,
    confidence: float = CONFIDENCE,
) -> SavingShare:  # fmt: skip
    """A training recipe's :class:`SavingShare` from (mean cost, mean SLO attainment) per policy (one per training
    seed) and the static count's and the oracle's means: the pooled mean cost's share, its interval over the policies'
    shares; *misses* when the policies' mean attainment is below the static count's. :func:`saving_share` with each
    policy in a seed's place and the references' means repeated beside it."""
    k = len(members)
    return saving_share(members, [static] * k, [(oracle_cost, math.nan)] * k, confidence)

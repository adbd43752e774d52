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
    plan).
    """
    flats = [
        flatten_kpis(r.kpis) | {"wall_s": r.wall_s, "planning_s": r.planning_s, "plan_met_target": r.plan_met_target}
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

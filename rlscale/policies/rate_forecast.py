"""Forecasts of a fleet's request rate, bucketed, with statsmodels' exponential smoothing (Holt, Holt-Winters).

The model is chosen by how much history there is (``values``: one rate per bucket, oldest first):

* none: no forecast (the caller relies on its reactive floor);
* fewer than :data:`HOLT_MIN_BUCKETS`: the last bucket, flat (``last``); statsmodels' heuristic start needs ten;
* fewer than two seasons: Holt's linear trend, damped (``holt``), which follows a ramp without a season to know it
  by; the damping keeps it from extending a morning's ramp for hours;
* two seasons or more: Holt-Winters with an additive season and no trend (``holt-winters``): the daily profile
  carries the ramps. A damped trend on top cost ten times the fit time and changed nothing on a daily sine.

Initial states are statsmodels' heuristic ones (from the window's first ten buckets, or its first two seasons), not
estimated: estimating 288 initial seasonals makes every fit a 290-parameter optimisation (0.5-2 s, and L-BFGS
stops at its evaluation limit), where the heuristic leaves two smoothing parameters to fit (12-50 ms for one to
seven days of five-minute buckets). On a noisy sine (50 +- 30 req/s) the estimated start forecast three hours
ahead with a mean absolute error of 1.0-1.3 req/s, the heuristic one 1.5-2.2 req/s: noise beside a pod's ~10 req/s.

:func:`fit` optimises the smoothing parameters (a refit); :func:`forecast` runs the smoothing again over the same
window with those parameters and forecasts ahead, which is what a caller does at every bucket between refits:
with the window's start unchanged, the heuristic start and so the fitted states are the same (the forecast equals
the fitted model's, to the bit), and one pass costs 5-15 ms.

The level's smoothing is kept at :data:`MIN_SMOOTHING_LEVEL` or more. Left free, the fit sets it to ~0 on a short or
very regular history (ten buckets of a falling load, or two identical days), and the model then forecasts its first
buckets' level for ever: a damped Holt fitted on ten buckets of a sine forecast 2 req/s where the load was 30, and a
Holt-Winters fitted on two quiet days would never follow a third busier one. The bound cost nothing measurable on a
noisy sine (three hours ahead: 1.45 req/s mean absolute error either way with a week of history).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Tier = Literal["none", "last", "holt", "holt-winters"]
HOLT_MIN_BUCKETS = 10  # statsmodels' heuristic initialisation needs 10 observations
MIN_SMOOTHING_LEVEL = 0.1  # the level follows the data: at most ~20 buckets' memory
FITTED_PARAMS: dict[str, tuple[str, ...]] = {
    "holt": ("smoothing_level", "smoothing_trend", "damping_trend"),
    "holt-winters": ("smoothing_level", "smoothing_seasonal"),
}


def tier_for(buckets: int, season: int) -> Tier:
    """The model that ``buckets`` of history support, with a season of ``season`` buckets."""
    if buckets == 0:
        return "none"
    if buckets < HOLT_MIN_BUCKETS:
        return "last"
    return "holt" if buckets < 2 * season else "holt-winters"


@dataclass(frozen=True)
class RateModel:
    """A fitted model: its tier, its season in buckets and its smoothing parameters (empty for none/last)."""

    tier: Tier
    season: int
    params: dict[str, float] = field(default_factory=dict)


def _smoother(values: np.ndarray, tier: Tier, season: int):
    from statsmodels.tsa.holtwinters import ExponentialSmoothing  # ~1-2 s to import: only once a model is fitted

    start = {"initialization_method": "heuristic", "bounds": {"smoothing_level": (MIN_SMOOTHING_LEVEL, 1.0)}}
    if tier == "holt":
        return ExponentialSmoothing(values, trend="add", damped_trend=True, **start)
    return ExponentialSmoothing(values, seasonal="add", seasonal_periods=season, **start)


def fit(values: Sequence[float], season: int) -> RateModel:
    """Fit the smoothing parameters of the model ``values`` support. A fit statsmodels cannot make (a flat series
    can make its likelihood singular) falls back to the last value rather than stopping the policy."""
    y = np.asarray(values, dtype=float)
    tier = tier_for(len(y), season)
    if tier in ("none", "last"):
        return RateModel(tier, season)
    try:
        with warnings.catch_warnings():  # convergence and overflow warnings: the filter is valid all the same
            warnings.simplefilter("ignore")
            result = _smoother(y, tier, season).fit()
    except (ValueError, np.linalg.LinAlgError):
        return RateModel("last", season)
    params = {name: float(result.params[name]) for name in FITTED_PARAMS[tier]}
    if not all(math.isfinite(v) for v in params.values()):
        return RateModel("last", season)
    return RateModel(tier, season, params)


def forecast(model: RateModel, values: Sequence[float], steps: int) -> np.ndarray:
    """The rate in each of the ``steps`` buckets after the last of ``values`` (clipped at 0), smoothing ``values``
    with ``model``'s parameters; the last value repeated when the model is ``last`` or its forecast is not finite,
    empty when there is no history."""
    y = np.asarray(values, dtype=float)
    if len(y) == 0 or model.tier == "none":
        return np.zeros(0)
    flat = np.full(steps, max(0.0, float(y[-1])))
    if model.tier == "last":
        return flat
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ahead = _smoother(y, model.tier, model.season).fit(optimized=False, **model.params).forecast(steps)
    except (ValueError, np.linalg.LinAlgError):
        return flat
    ahead = np.asarray(ahead, dtype=float)
    return np.clip(ahead, 0.0, None) if np.all(np.isfinite(ahead)) else flat

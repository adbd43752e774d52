"""A forecasting autoscaler: the request rate forecast over a cold start, in pods, above a reactive floor.

Why: a pod takes ~7 minutes from a scale-up to Ready (node, image, weights, warm-up), so a policy that reacts to
load is that late on every ramp; daily traffic repeats, so its ramps can be seen coming. None of the guide's three
HPAs looks ahead. Every sync it:

1. **Observes** what a controller can read, never the trace: the fleet's completion rate (the sum over pods of
   ``rate(jetstream_request_success_count_total[1m])``) plus the growth of the fleet's waiting requests
   (``num_requests_waiting``) over the bucket, since arrivals = completions + what queued up: completions alone are
   capped at what the fleet serves, so an overload would be remembered as the demand. The samples are averaged in
   fixed buckets (5 min). A bucket without any (metrics down, controller stopped) is filled by interpolation when
   the next one closes; a gap of a whole season or more starts the history again.
2. **Forecasts** (:mod:`rlscale.policies.rate_forecast`): Holt-Winters with a daily season once two seasons are
   there, damped Holt before, the last bucket before ten. The smoothing parameters are refit every
   ``refit_every_s`` (and when the history grows into the next model); each bucket in between runs the smoothing
   again with them, which is cheap.
3. **Counts pods**: the forecast's peak from now to ``horizon_s`` ahead (a cold start: pods asked for now are Ready
   then) × ``headroom`` / the pod's capacity at the SLO, rounded up.
4. **Keeps a floor**: the larger of that and a reactive HPA's count (``floor_hpa``: the guide's slots-used HPA, run
   inside the policy), so what the forecast misses (a burst, a new peak) is still met; within min/max, scale-down
   damped as the HPA's (the highest count recommended in the last ``scale_down_stabilization_s``).

5. **Holds a silence** (``silence_hold_s``, off by default): production traffic can stop dead and come back at full
   rate (an upstream outage; the ServeGen record's own gaps). A fleet rate below ``silence_share`` of the last
   bucket's demand is then taken for missing data for up to ``silence_hold_s``: the count stays at least what it was
   when the silence began, and the silent samples stay out of the history (filled in when traffic returns, as any
   gap). A silence longer than that is demand again. When traffic returns from a held silence the count stays at
   least the held one for ``silence_release_s`` more: the returning traffic is first seen through a rate window and
   a damping window that still hold the silence, and what the fleet needs for it takes a cold start to come up.

What it has learnt (buckets, the fitted model, the damping window) can be kept in a JSON file (``state_path``),
written atomically after every sync and read at start, so a restarted controller goes on where it stopped.
Nothing here imports the simulator: the capacity can be measured on a scenario before the run by the agent loader.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from rlscale.config import StrictModel
from rlscale.hpa.horizontal import TimestampedRecommendation, stabilize_recommendation
from rlscale.metrics.names import MetricKind
from rlscale.policies.base import ClusterState
from rlscale.policies.hpa import HPAPolicy
from rlscale.policies.rate_forecast import RateModel, Tier, fit, forecast, tier_for
from rlscale.specs.catalog import SpecError, validate

STATE_KIND = "ForecastingAutoscalerState"
log = logging.getLogger(__name__)


class ForecastConfig(StrictModel):
    """A forecasting autoscaler's settings (an agent file's ``spec``)."""

    min_replicas: int = Field(1, ge=0, description="Pods; never fewer.")
    max_replicas: int = Field(16, ge=1, description="Pods; never more.")
    capacity_per_pod_per_s: float | None = Field(
        None,
        gt=0,
        description="Requests/s one pod serves within the SLOs; null: measured before the run on the scenario (the "
        "oracle's single-pod capacity probe), which needs the scenario: a live controller must give a number.",
    )
    capacity_slo_attainment: float = Field(
        0.99, gt=0, le=1, description="Share of requests within the SLOs at the measured capacity."
    )
    capacity_probe_s: float = Field(600.0, gt=0, description="s of the scenario's busiest traffic each probe replays.")
    headroom: float = Field(
        1.0, gt=0, description="Pods = ceil(forecast peak × headroom / capacity); >1 buys room for forecast error."
    )
    bucket_s: float = Field(300.0, gt=0, description="s per bucket of the observed rate (the model's time step).")
    season_s: float = Field(86_400.0, gt=0, description="s per season (a day); a whole number of buckets.")
    history_s: float = Field(
        7 * 86_400.0, gt=0, description="s of buckets a refit sees at most (older ones are dropped at the refit)."
    )
    refit_every_s: float = Field(1800.0, gt=0, description="s between refits of the smoothing parameters.")
    horizon_s: float | Literal["cold-start"] = Field(
        480.0,
        description="s ahead whose peak the count covers: at least a cold start (node, image pull, weights, "
        "warm-up: ~7 min on v5e-8); 'cold-start' derives it from the scenario.",
    )
    provisioning_quantile_sigmas: float = Field(
        1.0, ge=0, description="horizon_s: cold-start takes node provisioning at median·exp(k·sigma)."
    )
    rate_metric: str = Field(
        "jetstream_request_success_count_total", min_length=1, description="Per-pod counter of requests served."
    )
    rate_window_s: float = Field(60.0, gt=0, description="s; the counter's rate window (rate(...[1m])).")
    queue_metric: str | None = Field(
        "num_requests_waiting",
        min_length=1,
        description="Per-pod gauge of waiting requests whose growth adds to the demand (null: completions only).",
    )
    floor_hpa: str | None = Field(
        None, description="An HPA manifest (relative to the agent file) whose count is the floor; null: no floor."
    )
    scale_down_stabilization_s: float = Field(
        300.0, ge=0, description="s; the count is the highest recommended within this window (the HPA's default)."
    )
    silence_hold_s: float | None = Field(
        None,
        gt=0,
        description="s a silence may last and still be taken for missing data (null: a silence is zero demand). A "
        "silence: the fleet's rate below silence_share of the last bucket's demand. While it lasts up to this long its "
        "samples are not history (the buckets are filled in when traffic returns) and the count stays at least what it "
        "was when the silence began; longer, it is demand again.",
    )
    silence_share: float = Field(
        0.05, gt=0, lt=1, description="A rate below this share of the last bucket's demand is a silence."
    )
    silence_release_s: float = Field(
        0.0,
        ge=0,
        description="s after traffic returns from a held silence during which the count stays at least the held one "
        "(0: released at once). Why: the returning traffic is first seen through the rate window and the damping "
        "window, both still holding the silence, so the forecaster would scale in just as the traffic comes back.",
    )
    sync_period_s: float = Field(15.0, gt=0, description="s between decisions (the HPA's sync period).")
    state_path: str | None = Field(
        None, description="JSON file of what it has learnt, written after every sync and read at start (null: none)."
    )
    initial_state: str | None = Field(
        None,
        description="A state file read at start when state_path has none yet, never written: what it learnt before "
        "the run (the days before a held-out day; relative to the agent file). Its history must end before the run.",
    )

    @model_validator(mode="after")
    def _check(self) -> ForecastConfig:
        if self.max_replicas < self.min_replicas:
            raise ValueError(f"max_replicas ({self.max_replicas}) must be >= min_replicas ({self.min_replicas})")
        season = self.season_s / self.bucket_s
        if abs(season - round(season)) > 1e-9 or round(season) < 2:
            raise ValueError(
                f"season_s ({self.season_s:g}) must be a whole number (>= 2) of bucket_s ({self.bucket_s:g})"
            )
        if self.history_s < 2 * self.season_s:
            raise ValueError(
                f"history_s ({self.history_s:g}) must hold two seasons (>= {2 * self.season_s:g}), or the seasonal "
                "model is never fitted"
            )
        if self.refit_every_s < self.bucket_s:
            raise ValueError(f"refit_every_s ({self.refit_every_s:g}) must be >= bucket_s ({self.bucket_s:g})")
        if isinstance(self.horizon_s, float | int) and not self.horizon_s > 0:
            raise ValueError(f"horizon_s must be > 0 or 'cold-start', got {self.horizon_s}")
        return self


def clock_s(state: ClusterState) -> float:
    """The policy's clock: continuous across runs of consecutive days (a held-out day goes on from the history of
    the days before it), epoch seconds on a cluster."""
    return state.now_s + state.clock_origin_s


class ForecastState(BaseModel):
    """What the policy has learnt, as its state file holds it."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["ForecastingAutoscalerState"] = STATE_KIND
    bucket_s: float
    season_s: float
    first_bucket: int | None = None  # floor(t / bucket_s) of values[0]
    values: list[float] = Field(default_factory=list)  # demand per closed bucket, req/s
    open_bucket: int | None = None  # the bucket samples are going into
    open_rate_sum: float = 0.0
    open_rate_samples: int = 0
    waiting_ref: float | None = None  # the fleet's waiting requests when the open bucket began
    waiting_last: float | None = None  # ... at its latest sample
    tier: Tier = "none"
    params: dict[str, float] = Field(default_factory=dict)
    fitted_at: int | None = None  # the last closed bucket at the last refit
    recent: list[tuple[int, float]] = Field(default_factory=list)  # (count, time s) within the damping window
    silent_since: float | None = None  # s (the policy's clock) the current silence began; None: not silent
    silence_count: int | None = None  # the count when it began, held while it is taken for missing data
    release_until: float | None = None  # s (the policy's clock) the held count is kept until after traffic returned
    release_count: int | None = None  # ... that count
    last_count: int | None = None  # the last recommendation

    @property
    def last_bucket(self) -> int | None:
        return None if self.first_bucket is None else self.first_bucket + len(self.values) - 1


class ForecastingAutoscaler:
    """The policy (see the module's docstring). ``capacity_per_s`` and ``horizon_s`` override the config's (the
    loader measures or derives them); ``floor`` is the reactive HPA; ``planning_s`` the time measuring took."""

    def __init__(
        self,
        config: ForecastConfig,
        *,
        capacity_per_s: float | None = None,
        horizon_s: float | None = None,
        floor: HPAPolicy | None = None,
        planning_s: float = 0.0,
    ) -> None:
        capacity = config.capacity_per_pod_per_s if capacity_per_s is None else capacity_per_s
        if capacity is None or not capacity > 0:
            raise ValueError(f"capacity_per_pod_per_s: need a pod's capacity > 0 (req/s), got {capacity}")
        horizon = config.horizon_s if horizon_s is None else horizon_s
        if not isinstance(horizon, float | int):
            raise ValueError(f"horizon_s: {horizon!r} must be derived from a scenario before the policy is built")
        self.config, self.capacity_per_s, self.horizon_s, self.floor = config, float(capacity), float(horizon), floor
        self.planning_s = planning_s
        self.sync_period_s = config.sync_period_s
        self.season = round(config.season_s / config.bucket_s)
        self.refit_buckets = math.ceil(config.refit_every_s / config.bucket_s - 1e-9)
        self.history_buckets = math.ceil(config.history_s / config.bucket_s - 1e-9)
        self.state_path = Path(config.state_path) if config.state_path is not None else None
        initial = Path(config.initial_state) if config.initial_state is not None else None
        self.state = (
            self._load(self.state_path, "state_path")
            or self._load(initial, "initial_state")
            or ForecastState(bucket_s=config.bucket_s, season_s=config.season_s)
        )
        self.state_source = next(
            (str(p) for p in (self.state_path, initial) if p is not None and p.exists()), None
        )  # where the history came from, for the time check at the first sync
        self.refits, self.model_s = 0, 0.0  # refits made and seconds spent in statsmodels, for the run's record
        self._path: tuple[tuple[int, int], np.ndarray] | None = None  # (history's first bucket and length, forecast)

    # ---- what it reads ----------------------------------------------------------------------------------
    def metric_refs(self) -> list[tuple[str, MetricKind, str]]:
        """(agent field, kind, name) of every metric it reads, its floor HPA's included."""
        c = self.config
        refs: list[tuple[str, MetricKind, str]] = [("spec.rate_metric", "Pods", c.rate_metric)]
        if c.queue_metric is not None:
            refs.append(("spec.queue_metric", "Pods", c.queue_metric))
        if self.floor is not None:
            refs += [(f"spec.floor_hpa ({c.floor_hpa}): {f}", kind, name) for f, kind, name in self.floor.metric_refs()]
        return refs

    def observe(self, state: ClusterState) -> None:
        """One sample of the fleet's completion rate and waiting requests into the open bucket; the buckets before
        it close."""
        c, s = self.config, self.state
        bucket = math.floor(clock_s(state) / c.bucket_s + 1e-9)
        if s.open_bucket is not None and bucket < s.open_bucket:
            raise ValueError(
                f"{self.state_source or 'forecast state'}: its history reaches bucket {s.open_bucket} "
                f"(t = {s.open_bucket * c.bucket_s:g} s) but this sync is at t = {clock_s(state):g} s: the state "
                "file is from after this run's start (another day, another clock); give the days before it"
            )
        if s.open_bucket is not None and bucket > s.open_bucket:
            self._close()
        s.open_bucket = bucket
        rates = state.metrics.counter_rate(c.rate_metric, c.rate_window_s)
        if rates:  # no pod with two samples in the window: nothing known, which is not a rate of 0
            rate = float(sum(rates.values()))
            if self._silent(clock_s(state), rate):
                return  # missing data, not demand: neither the rate nor the queue's fall
            s.open_rate_sum += rate
            s.open_rate_samples += 1
        if c.queue_metric is not None:
            waiting = state.metrics.pods_metric(c.queue_metric)
            if waiting:
                s.waiting_last = float(sum(waiting.values()))
                if s.waiting_ref is None:
                    s.waiting_ref = s.waiting_last

    def _silent(self, now: float, rate: float) -> bool:
        """Whether this sample falls in a silence still taken for missing data (``silence_hold_s``), keeping track of
        when the silence began and the count then."""
        c, s = self.config, self.state
        if c.silence_hold_s is None:
            return False
        reference = s.values[-1] if s.values else 0.0
        if not (reference > 0 and rate < c.silence_share * reference):
            if s.silent_since is not None and self.holding(now) and c.silence_release_s > 0:
                s.release_until, s.release_count = now + c.silence_release_s, s.silence_count
            s.silent_since = s.silence_count = None
            return False
        if s.silent_since is None:
            s.silent_since, s.silence_count = now, s.last_count
        return self.holding(now)

    def holding(self, now_s: float) -> bool:
        """Whether a silence is being held through now (its count kept, its samples not history)."""
        s, hold = self.state, self.config.silence_hold_s
        return hold is not None and s.silent_since is not None and now_s - s.silent_since < hold

    def held_count(self, now_s: float) -> int | None:
        """The count a held silence keeps the fleet at, now: the one when it began, while it is held and for
        ``silence_release_s`` after traffic returned; None otherwise."""
        s = self.state
        if self.holding(now_s):
            return s.silence_count
        if s.release_until is not None and now_s < s.release_until:
            return s.release_count
        return None

    def _close(self) -> None:
        """The open bucket's demand joins the history (gaps before it filled), and the model is refit when due."""
        s = self.state
        closed, samples = s.open_bucket, s.open_rate_samples
        if closed is None or samples == 0:
            self._start_bucket()
            return
        demand = s.open_rate_sum / samples
        if s.waiting_ref is not None and s.waiting_last is not None:
            demand += (s.waiting_last - s.waiting_ref) / self.config.bucket_s
        demand = max(0.0, demand)
        last = s.last_bucket
        if last is None or closed - last - 1 >= self.season:  # nothing yet, or a season missing: start again
            s.first_bucket, s.values = closed, [demand]
            s.tier, s.params, s.fitted_at = "none", {}, None
        else:
            gap = closed - last - 1
            if gap > 0:  # no samples then: a straight line between the buckets either side
                s.values += np.linspace(s.values[-1], demand, gap + 2)[1:-1].tolist()
            s.values.append(demand)
        self._start_bucket()
        self._refit_if_due()

    def _start_bucket(self) -> None:
        s = self.state
        s.open_rate_sum, s.open_rate_samples = 0.0, 0
        s.waiting_ref = s.waiting_last

    def _refit_if_due(self) -> None:
        s = self.state
        last = s.last_bucket
        due = s.fitted_at is None or last - s.fitted_at >= self.refit_buckets
        if not due and tier_for(len(s.values), self.season) == s.tier:
            return
        if len(s.values) > self.history_buckets:
            s.first_bucket += len(s.values) - self.history_buckets
            s.values = s.values[-self.history_buckets :]
        started = time.perf_counter()
        model = fit(s.values, self.season)
        self.model_s += time.perf_counter() - started
        self.refits += model.tier not in ("none", "last")
        s.tier, s.params, s.fitted_at = model.tier, model.params, last

    # ---- the forecast in pods -------------------------------------------------------------------------
    def forecast_peak(self, now_s: float) -> float | None:
        """The forecast's highest rate from ``now_s``'s bucket to ``horizon_s`` ahead, req/s; None without history."""
        s, bucket_s = self.state, self.config.bucket_s
        last = s.last_bucket
        if last is None:
            return None
        first = max(math.floor(now_s / bucket_s + 1e-9), last + 1)
        target = max(math.floor((now_s + self.horizon_s) / bucket_s + 1e-9), first)
        key = (s.first_bucket, len(s.values))
        if self._path is None or self._path[0] != key or len(self._path[1]) < target - last:
            # once per bucket: from the bucket after the last closed one, every bucket a sync in the next can need
            steps = max(target - last, 1 + math.ceil(self.horizon_s / bucket_s - 1e-9))
            started = time.perf_counter()
            self._path = (key, forecast(RateModel(s.tier, self.season, s.params), s.values, steps))
            self.model_s += time.perf_counter() - started
        path = self._path[1][first - last - 1 : target - last]
        return float(path.max()) if len(path) else None

    def forecast_replicas(self, now_s: float) -> int | None:
        """Pods for the forecast's peak over the horizon at the pod's capacity, with headroom; None without one."""
        peak = self.forecast_peak(now_s)
        if peak is None:
            return None
        return math.ceil(peak * self.config.headroom / self.capacity_per_s - 1e-9)

    def recommend(self, state: ClusterState) -> int | None:
        c = self.config
        self.observe(state)
        now = clock_s(state)
        proposals = [self.forecast_replicas(now)]
        if self.floor is not None:
            proposals.append(self.floor.recommend(state))
        known = [p for p in proposals if p is not None]
        out = None
        if known:
            desired = min(max(max(known), c.min_replicas), c.max_replicas)
            window = [TimestampedRecommendation(n, t) for n, t in self.state.recent]
            out = stabilize_recommendation(window, desired, now, c.scale_down_stabilization_s)
            cutoff = now - c.scale_down_stabilization_s
            self.state.recent = [(r.recommendation, r.timestamp_s) for r in window if r.timestamp_s >= cutoff]
        held = self.held_count(now)
        if held is not None:
            out = max(out or 0, min(held, c.max_replicas))
        self.state.last_count = out if out is not None else self.state.last_count
        if self.state_path is not None:
            try:
                self.save()
            except OSError as exc:  # costs the history across a restart, not this decision
                log.warning("forecast state not saved to %s: %s", self.state_path, exc)
        return out

    # ---- its record and its state file --------------------------------------------------------------------
    def plan_record(self) -> dict[str, Any]:
        """Its capacity and horizon (measured or given), and what forecasting cost, for the run's summary."""
        return {
            "kind": "ForecastingAutoscaler",
            "capacity_per_s": self.capacity_per_s,
            "capacity_measured": self.config.capacity_per_pod_per_s is None,
            "horizon_s": self.horizon_s,
            "model": self.state.tier,
            "buckets": len(self.state.values),
            "refits": self.refits,
            "model_s": self.model_s,  # s spent fitting and forecasting during the run
            "planning_s": self.planning_s,
        }

    def save(self) -> None:
        """Write the state file atomically (a reader never sees half a file, a crash leaves the previous one)."""
        path = self.state_path
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as out:
            json.dump(self.state.model_dump(mode="json"), out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(out.name, path)

    def _load(self, path: Path | None, field: str) -> ForecastState | None:
        if path is None or not path.exists():
            if field == "initial_state" and path is not None:
                raise SpecError(f"{path}: initial_state: no such file")
            return None
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise SpecError(f"{path}: {field}: not a readable JSON file ({exc})") from exc
        state = validate(ForecastState, doc, str(path))
        c = self.config
        for name in ("bucket_s", "season_s"):
            if not math.isclose(getattr(state, name), getattr(c, name)):
                raise SpecError(
                    f"{path}: {name}: the state file's {getattr(state, name):g} s differs from the agent's "
                    f"{getattr(c, name):g} s; move the file away to start a new history"
                )
        return state

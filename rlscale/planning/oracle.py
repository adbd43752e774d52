"""The clairvoyant oracle's plan: the cheapest replica schedule that meets the SLOs, planned with the future known.

It knows every arrival of the run (the scenario's own seeded stream) and the
start-up delays, and plans in four steps:

1. **Capacity.** The highest rate one pod sustains within every SLO (TTFT,
   TPOT — a prefill stalls the decode batch, so prefill-heavy bursts cost TPOT
   — and e2e when the scenario sets one), measured on the traffic's own shape:
   a single-pod probe replays the scenario's busiest planning intervals
   (``capacity_probe_s`` of them, end to end), each one's own arrivals thinned
   (or copied) to the probe rate, so the bursts within an interval and the
   lengths they bring are priced, not a Poisson stream's. Bisection over such
   probes.
2. **Plan.** For each control interval, the pods its arrivals need
   (``ceil(rate · headroom / capacity)``), requested one cold start ahead
   (node provisioning at a high quantile, then pull, load, warm-up), and
   released as soon as the need drops. A pod removed and needed again before
   its node would be released saves nothing, so such valleys are filled.
3. **Check.** The plan is simulated on the run itself (same seed, same
   arrivals: the check's attainment is the run's). While it misses the target,
   the headroom grows: through the configured ``headroom`` list, then by
   ×1.25 past its end until the busiest interval needs ``max_replicas``. A
   plan already checked is not simulated again.
4. **Choose.** The cheapest plan that passes, compared with constant counts
   (also simulated); on short or flat traffic a constant count can beat any
   schedule. With a passing schedule, only the counts that would cost less
   than it are tried, downward from the dearest until one misses (a count
   that costs as much cannot be chosen, and fewer pods do no better: on a
   day-long run each count is a day's simulation); when no schedule passed,
   upward until one passes, up to ``max_replicas``. When nothing within ``max_replicas``
   meets the target, the plan with the best attainment is replayed but flagged
   (``met_target`` false on the plan and in its record,
   and an :class:`OracleMissedTarget` warning): a reference that misses its own
   target cannot anchor a comparison.

Planning shows its progress on stderr when asked (capacity probes, plans
tried) and records its own time (``planning_s``), apart from the run's.

The plan is carried out by :class:`rlscale.policies.oracle.ClairvoyantOracle` (:func:`plan_oracle` returns one).

Its cost is not a proof of optimality: it is a strong reference that a
reactive policy, which learns of load only through lagged metrics, cannot be
expected to beat. :attr:`OraclePlan.fluid_chip_hours` is the cost of the same
plan with pods that start instantly — a bound no policy can beat under the
capacity model; the ratio of the two says how much the start-up delays cost.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from tqdm import tqdm

from rlscale.cluster.config import DelaySpec
from rlscale.cluster.lifecycle import startup_delays
from rlscale.policies.oracle import Attempt, ClairvoyantOracle, OraclePlan
from rlscale.scenario import ScenarioConfig
from rlscale.simulation import arrivals, run_scenario
from rlscale.specs import load_hardware, load_model

HEADROOM_GROWTH = 1.25  # past the configured list, each headroom tried is the last one times this
PROBE_STREAM = 3  # the probe's thinning draws: the scenario seed's 4th spawned stream (a run uses the first three)


class OracleMissedTarget(UserWarning):
    """No plan within ``max_replicas`` met the oracle's SLO-attainment target; it replays its best failure."""


class OracleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    interval_s: float = Field(60.0, gt=0, description="Planning interval, s.")
    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(32, ge=1, description="The search goes on until a plan passes or needs this many.")
    slo_attainment: float = Field(0.99, gt=0, le=1, description="Share of requests within every SLO to reach.")
    headroom: list[float] = Field(
        default_factory=lambda: [1.0, 1.1, 1.2, 1.35, 1.5, 1.75, 2.0],
        min_length=1,
        description="Tried in order until a plan passes; past the last, grown ×1.25 until the peak is max_replicas.",
    )
    provisioning_quantile_sigmas: float = Field(
        2.0, ge=0, description="Lead time plans for node provisioning at median·exp(k·sigma)."
    )
    capacity_probe_s: float = Field(
        600.0, gt=0, description="Busiest traffic replayed by each single-pod capacity probe, s."
    )

    @model_validator(mode="after")
    def _check(self) -> OracleConfig:
        if self.max_replicas < self.min_replicas:
            raise ValueError(f"max_replicas ({self.max_replicas}) must be >= min_replicas ({self.min_replicas})")
        if any(not h > 0 for h in self.headroom):
            raise ValueError(f"headroom: every entry must be > 0, got {self.headroom}")
        return self


def cold_start_s(scenario: ScenarioConfig, quantile_sigmas: float) -> float:
    """Time from a scale-up to Ready on a new node, at a high quantile of provisioning."""
    life = scenario.fleet.lifecycle
    node_s = _quantile(life.node_provisioning, quantile_sigmas)
    return node_s + startup_delays(scenario.pod, life, load_model(scenario.pod.model)).total_s


def _quantile(delay: DelaySpec, sigmas: float) -> float:
    if delay.kind == "fixed":
        return delay.seconds
    if delay.kind == "uniform":
        return delay.high_s
    return delay.median_s * math.exp(sigmas * delay.sigma)


def known_requests(scenario: ScenarioConfig) -> np.ndarray:
    """The run's requests as rows (arrival s, prompt, output): drawn once per search, a day-long replay holds
    millions."""
    return np.array(arrivals(scenario), dtype=float).reshape(-1, 3)


def interval_counts(times: np.ndarray, duration_s: float, interval_s: float) -> np.ndarray:
    """Arrivals per planning interval over the run."""
    n = math.ceil(duration_s / interval_s)
    return np.bincount((times // interval_s).astype(int), minlength=n)[:n]


@dataclass(frozen=True)
class CapacityProbe:
    """One pod's share of the scenario's busiest traffic, at any rate: the busiest intervals' own arrivals, each
    interval thinned (or its requests copied) to ``rate · interval_s`` expected, laid end to end in time order.

    The draws are fixed once (common random numbers), so a higher rate keeps every request a lower one kept and
    bisection compares like with like."""

    offsets: np.ndarray  # arrival within its interval, s
    slots: np.ndarray  # position of its interval in the probe (0, 1, ...)
    prompts: np.ndarray
    outputs: np.ndarray
    interval_rates: np.ndarray  # its interval's own arrival rate, per s
    keep_draws: np.ndarray  # uniform(0, 1) per request: kept when below the rate's fraction
    seed: np.random.SeedSequence  # the copies' jitter
    interval_s: float

    @classmethod
    def of(
        cls, scenario: ScenarioConfig, interval_s: float, probe_s: float, requests: np.ndarray | None = None
    ) -> CapacityProbe | None:
        """The probe over the busiest ``probe_s`` of the scenario's intervals (its ``requests``, drawn here when not
        given); None when nothing arrives."""
        if requests is None:
            requests = known_requests(scenario)
        counts = interval_counts(requests[:, 0], scenario.duration_s, interval_s)
        k = max(1, min(len(counts), round(probe_s / interval_s)))
        chosen = sorted(int(i) for i in np.argsort(-counts, kind="stable")[:k] if counts[i] > 0)
        if not chosen:
            return None
        index = np.minimum((requests[:, 0] // interval_s).astype(int), len(counts) - 1)
        slot_of = np.full(len(counts), -1)
        slot_of[chosen] = np.arange(len(chosen))
        mask = slot_of[index] >= 0
        picked, where = requests[mask], index[mask]
        keep_seq, jitter_seq = np.random.SeedSequence(scenario.seed).spawn(PROBE_STREAM + 1)[PROBE_STREAM].spawn(2)
        return cls(
            offsets=picked[:, 0] - where * interval_s,
            slots=slot_of[where],
            prompts=picked[:, 1].astype(int),
            outputs=picked[:, 2].astype(int),
            interval_rates=counts[where] / interval_s,
            keep_draws=np.random.default_rng(keep_seq).random(len(picked)),
            seed=jitter_seq,
            interval_s=interval_s,
        )

    @property
    def duration_s(self) -> float:
        return (int(self.slots.max()) + 1) * self.interval_s

    def stream(self, rate: float) -> list[tuple[float, int, int]]:
        """The probe's (time, prompt, output) requests at ``rate`` per s in every interval, in time order."""
        share = rate / self.interval_rates
        copies = np.floor(share).astype(int) + (self.keep_draws < share - np.floor(share))
        i = np.repeat(np.arange(len(copies)), copies)
        first = np.r_[0, np.cumsum(copies)[:-1]]
        copy = np.arange(len(i)) - np.repeat(first, copies)
        gap = 1.0 / self.interval_rates[i]  # copies after the first land within the interval's mean gap
        jitter = np.where(copy > 0, np.random.default_rng(self.seed).random(len(i)) * gap, 0.0)
        times = self.slots[i] * self.interval_s + self.offsets[i] + jitter
        order = np.argsort(times, kind="stable")
        return [(float(times[j]), int(self.prompts[i[j]]), int(self.outputs[i[j]])) for j in order]


def pod_capacity_per_s(
    scenario: ScenarioConfig,
    target: float,
    probe_s: float,
    interval_s: float = 60.0,
    bar: tqdm | None = None,
    requests: np.ndarray | None = None,
) -> float:
    """The highest rate per interval at which one pod serves ``target`` of the scenario's own traffic within every
    SLO (bisection over :class:`CapacityProbe` runs; ``bar`` counts them). Infinite when nothing arrives."""
    probe = CapacityProbe.of(scenario, interval_s, probe_s, requests)
    if probe is None:
        return math.inf
    one_pod = scenario.model_copy(
        update={
            "fleet": scenario.fleet.model_copy(update={"replicas": 1}),
            "schedule": [],
            "duration_s": probe.duration_s,
        }
    )

    def meets(rate: float) -> bool:
        attained = run_scenario(one_pod, stream=probe.stream(rate)).kpis.slo_attainment
        if bar is not None:
            bar.update()
            bar.set_postfix_str(f"{rate:.3g}/s: {attained:.1%}")
        return attained >= target  # NaN (nothing ended) fails

    lo, hi = 0.1, 1.0
    while meets(hi):
        lo, hi = hi, hi * 2
        if hi > 1e4:
            break
    for _ in range(10):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if meets(mid) else (lo, mid)
    return lo


def plan(
    scenario: ScenarioConfig,
    config: OracleConfig,
    capacity_per_s: float,
    headroom: float,
    lead_s: float,
    times: np.ndarray | None = None,
) -> OraclePlan:
    """Pods per interval for the known arrivals (their ``times``, drawn here when not given), requested ``lead_s``
    ahead."""
    if times is None:
        times = known_requests(scenario)[:, 0]
    n = math.ceil(scenario.duration_s / config.interval_s)
    rates = interval_counts(times, scenario.duration_s, config.interval_s) / config.interval_s
    need = [
        int(np.clip(math.ceil(r * headroom / capacity_per_s), config.min_replicas, config.max_replicas)) for r in rates
    ]
    ahead = math.ceil(lead_s / config.interval_s)
    schedule = [max(need[k : k + ahead + 1]) for k in range(n)]
    hold = math.ceil(scenario.fleet.lifecycle.node_scale_down_delay_s / config.interval_s)
    schedule = _fill_valleys(schedule, hold)
    chips = _chips(scenario)
    fluid = sum(need) * config.interval_s / 3600 * chips
    return OraclePlan(config.interval_s, lead_s, need, schedule, headroom, capacity_per_s, fluid)


def _fill_valleys(schedule: list[int], hold: int) -> list[int]:
    """Keep replicas through dips shorter than ``hold`` intervals: their nodes would be held anyway."""
    filled = list(schedule)
    for k in range(len(filled)):
        later = filled[k + 1 : k + 1 + hold]
        if later:
            filled[k] = max(filled[k], min(max(later), max(filled[max(0, k - hold) : k] or [0])))
    return filled


def _chips(scenario: ScenarioConfig) -> int:
    return load_hardware(scenario.pod.hardware).chips_per_host


def headrooms(config: OracleConfig, peak_rate_per_s: float, capacity_per_s: float) -> Iterator[float]:
    """The configured headrooms, then ×``HEADROOM_GROWTH`` until the busiest interval needs ``max_replicas``."""
    yield from config.headroom
    if not (peak_rate_per_s > 0 and math.isfinite(capacity_per_s)):
        return
    saturating = config.max_replicas * capacity_per_s / peak_rate_per_s
    headroom = config.headroom[-1]
    while headroom < saturating:
        headroom *= HEADROOM_GROWTH
        yield headroom


def plan_oracle(
    scenario: ScenarioConfig, config: OracleConfig | None = None, progress: bool = False
) -> ClairvoyantOracle:
    """The oracle for ``scenario``: its plan searched (progress on stderr when asked), timed and, when it misses its
    target, flagged with an :class:`OracleMissedTarget` warning."""
    start = time.perf_counter()
    search = OracleSearch(config or OracleConfig(), progress)
    best = search.run(scenario)
    best.planning_s = time.perf_counter() - start
    if not best.met_target:
        warnings.warn(OracleMissedTarget(search.missed(scenario, best)), stacklevel=2)
    return ClairvoyantOracle(best)


class OracleSearch:
    """The search: capacity, schedules at growing headroom, constant counts, the cheapest plan that passes."""

    def __init__(self, config: OracleConfig, progress: bool = False) -> None:
        self.config, self.progress = config, progress

    def missed(self, scenario: ScenarioConfig, best: OraclePlan) -> str:
        cfg = self.config
        return (
            f"{scenario.name} (seed {scenario.seed}): the clairvoyant oracle missed its {100 * cfg.slo_attainment:g}% "
            f"SLO-attainment target: {best.attainment:.1%} at best over {len(best.attempts)} checked plan(s) within "
            f"max_replicas={cfg.max_replicas}; it replays that plan, which is no reference for this scenario"
        )

    def _check(self, scenario: ScenarioConfig, candidate: OraclePlan) -> Attempt:
        kpis = run_scenario(scenario, autoscaler=ClairvoyantOracle(candidate)).kpis
        replicas = candidate.schedule[0] if candidate.headroom == 0 else None
        return Attempt(candidate.headroom, replicas, kpis.slo_attainment, kpis.chip_hours)

    def run(self, scenario: ScenarioConfig) -> OraclePlan:
        """The chosen plan, with every plan checked on the way."""
        cfg = self.config
        requests = known_requests(scenario)
        with tqdm(desc="oracle: capacity probe", unit="sim", disable=not self.progress, leave=False) as bar:
            capacity = pod_capacity_per_s(
                scenario, cfg.slo_attainment, cfg.capacity_probe_s, cfg.interval_s, bar, requests
            )
        checked: dict[tuple[int, ...], tuple[OraclePlan, Attempt]] = {}
        with tqdm(desc="oracle: plans tried", unit="plan", disable=not self.progress, leave=False) as bar:

            def check(candidate: OraclePlan) -> bool:
                """Whether ``candidate`` passes; simulated once per distinct schedule."""
                key = tuple(candidate.schedule)
                if key not in checked:
                    checked[key] = (candidate, self._check(scenario, candidate))
                    bar.update()
                    bar.set_postfix_str(f"{checked[key][1].attainment:.1%}")
                return checked[key][1].attainment >= cfg.slo_attainment

            scheduled, passed = self._schedules(scenario, requests[:, 0], capacity, check)
            budget = checked[tuple(scheduled.schedule)][1].chip_hours if passed else None
            self._constants(scheduled, budget, _chips(scenario) * scenario.duration_s / 3600, check)
        return self._choose(list(checked.values()))

    def _schedules(
        self, scenario: ScenarioConfig, times: np.ndarray, capacity: float, check: Callable[[OraclePlan], bool]
    ) -> tuple[OraclePlan, bool]:
        """Schedules at growing headroom until one passes or the busiest interval needs max_replicas: the last
        one checked, and whether it passed."""
        cfg = self.config
        lead = cold_start_s(scenario, cfg.provisioning_quantile_sigmas)
        peak = float(interval_counts(times, scenario.duration_s, cfg.interval_s).max(initial=0)) / cfg.interval_s
        for headroom in headrooms(cfg, peak, capacity):
            scheduled = plan(scenario, cfg, capacity, headroom, lead, times)
            if check(scheduled):
                return scheduled, True
        return scheduled, False

    def _constants(
        self,
        scheduled: OraclePlan,
        budget_chip_hours: float | None,
        chip_hours_per_pod: float,
        check: Callable[[OraclePlan], bool],
    ) -> None:
        """Constant counts. Under a passing schedule's ``budget_chip_hours``: only the counts that cost less (a pod
        held all run costs ``chip_hours_per_pod``), downward until one misses. With no passing schedule (None):
        upward until one passes, up to max_replicas."""
        cfg = self.config
        lowest = max(cfg.min_replicas, 1)

        def passes(replicas: int) -> bool:
            return check(replace(scheduled, schedule=[replicas] * len(scheduled.schedule), headroom=0.0, attempts=[]))

        if budget_chip_hours is None:
            for replicas in range(lowest, cfg.max_replicas + 1):
                if passes(replicas):
                    return
            return
        cheaper = math.ceil(budget_chip_hours / chip_hours_per_pod) - 1  # the most pods that still cost less
        for replicas in range(min(cheaper, cfg.max_replicas), lowest - 1, -1):
            if not passes(replicas):
                return

    def _choose(self, tried: list[tuple[OraclePlan, Attempt]]) -> OraclePlan:
        """The cheapest plan that passed; else the best attainment (then the cheapest), flagged as missing."""
        target = self.config.slo_attainment
        passing = [t for t in tried if t[1].attainment >= target]
        if passing:
            best, attempt = min(passing, key=lambda t: t[1].chip_hours)
        else:
            best, attempt = max(tried, key=lambda t: (_finite(t[1].attainment), -t[1].chip_hours))
        best.attempts = [a for _, a in tried]
        best.target, best.attainment, best.chip_hours = target, attempt.attainment, attempt.chip_hours
        best.met_target = bool(passing)
        return best


def _finite(x: float) -> float:
    return x if math.isfinite(x) else -math.inf

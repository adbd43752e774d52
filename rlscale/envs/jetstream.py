"""``rlscale/JetStream-v0``: autoscale a simulated JetStream fleet, one decision per HPA sync period."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlscale.agents import load_agent
from rlscale.data import agent_file, read_extended, scenario_file
from rlscale.kpi_stream import KPIAccumulator
from rlscale.policies.actions import ActionMap
from rlscale.policies.base import Autoscaler
from rlscale.policies.control import ControlLoop
from rlscale.policies.hpa import HPAPolicy
from rlscale.policies.observation import OBSERVED_EXTERNAL, OBSERVED_GAUGES, observation_builder
from rlscale.policies.safety import SafetySpec, env_safety
from rlscale.scenario import ScenarioConfig, load_scenario
from rlscale.simulation import Simulation, price_per_chip_hour
from rlscale.workload.build import random_window, scaled_workload


def resolve_scenario(scenario: str | Path | ScenarioConfig) -> ScenarioConfig:
    """A scenario object, or a scenario file: a path, or a shipped scenario by name (``steady``,
    ``envs/steady.yaml``; :func:`rlscale.data.scenario_file`)."""
    if isinstance(scenario, ScenarioConfig):
        return scenario
    return load_scenario(scenario_file(scenario))


class _StepTally:
    """What ended during the current control step: the differences of the run's own KPI counts (the simulator judges
    each request against the SLO as it ends), so the environment adds nothing per request."""

    def __init__(self, kpis: KPIAccumulator) -> None:
        self.kpis = kpis
        self.reset()

    def reset(self) -> None:
        """A step begins: count from here."""
        k = self.kpis
        self._completed, self._failed, self._violations = k.completed, k.failed, k.violations

    @property
    def completed(self) -> int:
        return self.kpis.completed - self._completed

    @property
    def failed(self) -> int:
        return self.kpis.failed - self._failed

    @property
    def violations(self) -> int:
        """Ended requests that missed an SLO, or failed."""
        return self.kpis.violations - self._violations


class JetStreamEnv(gym.Env):
    """Autoscale a fleet of JetStream pods (Llama-2-7B on TPU v5e-8 by default) under realistic traffic.

    ## Description
    Each step is one controller sync (15 s by default): the agent sets the
    Deployment's replica count; the simulator then runs the fleet — pods that
    take minutes to become Ready, nodes that cost money until released, metrics
    that reach the controller through a scrape/adapter pipeline with lag and
    staleness — until the next sync.

    ## Safety
    The action is a recommendation: it goes through the control loop the live
    controller runs (:class:`rlscale.policies.control.ControlLoop`): held while
    the metrics are unavailable, no scale-down while they are partial, the
    fallback HPA when configured, bounds and the per-step cap of ``safety``
    (:class:`rlscale.policies.safety.SafetySpec`), and scale calls that a
    scenario's ``scale-failure`` fault makes fail. ``info`` says what happened
    (``asked``, ``replicas``, ``held``, ``source``, ``metrics``).

    ## Action Space
    ``action_mode="delta"`` (default): ``Discrete(2k+1)``, replicas change by
    ``action − k`` (k = ``max_delta``). ``"target"``: ``Discrete(max+1)``, the
    replica count itself. ``"residual"``: ``Discrete(2k+1)`` added to the
    recommendation of a baseline agent (``residual_agent``, an HPA manifest by
    default). ``"residual-hold"``: the same plus one action, ``2k+1``, that keeps
    the current count whatever the baseline says. The count is always clipped
    to ``[min_replicas, max_replicas]``.

    ## Observation Space
    ``Box(low, high, float32)``; values clipped to the bounds:

    | index | metric (as JetStream / Kubernetes name it) | unit | min | max |
    |---|---|---|---|---|
    | 0 | jetstream_prefill_backlog_size (mean over pods) | requests | 0 | 1000 |
    | 1 | jetstream_slots_used_percentage (mean over pods) | fraction | 0 | 1 |
    | 2 | num_requests_waiting (mean over pods) | requests | 0 | 1000 |
    | 3 | memory_used_percentage (External) | fraction | 0 | 1 |
    | 4 | rate(jetstream_request_success_count[1m]) (sum over pods) | requests/s | 0 | 1000 |
    | 5 | pods with fresh metrics / pods | fraction | 0 | 1 |
    | 6 | spec.replicas | pods | 0 | 64 |
    | 7 | ready pods | pods | 0 | 64 |
    | 8 | pods starting (not ready, not terminating) | pods | 0 | 64 |
    | 9 | sin(2π t / period) (``time_period_s`` set) | 1 | −1 | 1 |
    | 10 | cos(2π t / period) (``time_period_s`` set) | 1 | −1 | 1 |

    With ``features="demand"`` five more follow
    (:class:`rlscale.policies.observation.DemandObservation`): the baseline's
    recommendation (pods, 0–64), the rate's mean over 5 and 30 minutes and its
    30-minute high (requests/s, 0–1000), and the minutes since the rate was
    last above 5% of its 30-minute mean (0–120).

    Built by :class:`rlscale.policies.observation.ObservationBuilder` from a
    ``ClusterState`` — the code a live controller uses.

    ## Rewards
    ``r = −(w_c·cost$ + λ·violations + μ·failed + w_ch·|Δreplicas|)`` per step,
    weights from the scenario's ``reward:`` section (defaults 1 per $, 0.01 per
    request outside its SLOs, 0.05 per failed request, 0.01 per replica
    changed). Every term is in ``info``.

    ## Starting State
    A scenario drawn from the list, its fleet at t = 0 (replicas from ``fleet.replicas`` or drawn
    from ``randomization.initial_replicas``), arrival rates scaled by a draw
    from ``randomization.rate_scale``, with ``randomization.random_start`` a
    window of ``duration_s`` drawn from the production days the scenario
    plays (its time of day in the time features), a fresh simulator seed per
    episode.

    ## Episode End
    Truncation when the scenario's ``duration_s`` (or ``episode_s``) has been
    simulated (or at ``max_episode_steps``). There is no termination.

    ## Arguments
    ``scenario`` (path or ScenarioConfig, or a list of them: each episode draws
    one; default ``envs/steady.yaml``),
    ``action_mode``, ``max_delta`` (2), ``min_replicas`` (1), ``max_replicas``
    (16), ``residual_agent``, ``time_period_s`` (None), ``features``
    (``fleet``; ``demand``), ``episode_s`` (None),
    ``sync_period_s`` (15 s), ``safety`` (a ``SafetySpec`` or its fields).
    ``reset(options={"scenario": i})`` plays member ``i`` (or a name) of the
    list; other options are refused. Registered with ``max_episode_steps`` =
    14 days of 15 s syncs (``rlscale.MAX_EPISODE_STEPS``), so the TimeLimit
    never cuts an episode of the bundled data short; shorter syncs over
    weeks need ``gymnasium.make(..., max_episode_steps=N)``.

    ## Example
    >>> import gymnasium, rlscale
    >>> env = gymnasium.make("rlscale/JetStream-v0", scenario="envs/steady.yaml")
    >>> obs, info = env.reset(seed=0)
    >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(
        self,
        scenario: str | Path | ScenarioConfig | list[str | Path | ScenarioConfig] = "envs/steady.yaml",
        action_mode: str = "delta",
        max_delta: int = 2,
        min_replicas: int = 1,
        max_replicas: int = 16,
        residual_agent: str | Path = "agents/hpa-slots-used.yaml",
        time_period_s: float | None = None,
        features: str = "fleet",
        episode_s: float | None = None,
        sync_period_s: float = 15.0,
        safety: SafetySpec | dict[str, Any] | None = None,
    ) -> None:
        self.actions = ActionMap(action_mode, max_delta, min_replicas, max_replicas)  # validates the four
        chosen = scenario if isinstance(scenario, list | tuple) else [scenario]
        if not chosen:
            raise ValueError("scenario: give at least one scenario")
        self.scenarios = [resolve_scenario(s) for s in chosen]
        if episode_s is not None:
            self.scenarios = [s.model_copy(update={"duration_s": episode_s}) for s in self.scenarios]
        self.scenario = self.scenarios[0]
        self.action_mode, self.max_delta = action_mode, max_delta
        self.min_replicas, self.max_replicas = min_replicas, max_replicas
        self.residual_agent = residual_agent
        self.observe = observation_builder(time_period_s, features)
        self.observation_space = spaces.Box(self.observe.low, self.observe.high, dtype=np.float32)
        self.action_space = spaces.Discrete(self.actions.n)
        if not sync_period_s > 0:
            raise ValueError(f"sync_period_s must be > 0, got {sync_period_s}")
        self.sync_period_s = float(sync_period_s)
        self.safety = env_safety(safety, min_replicas, max_replicas)
        self.sim: Simulation | None = None
        self._baseline: Autoscaler | None = None
        self._baseline_out: int | None = None  # its recommendation on the state the agent observed
        self._baseline_doc: dict | None = None
        self._fallback_doc: dict | None = None

    # ---- episode -------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """A new episode. ``options``: ``{"scenario": i}`` (an index into the scenario list, or a scenario's name)
        plays that member instead of drawing one; any other key is an error, not ignored."""
        super().reset(seed=seed)
        rng = self.np_random
        drawn = int(rng.integers(len(self.scenarios)))  # drawn even when chosen: the same seed, the same draws after
        sc = self.scenario = self.scenarios[self._member(options, drawn)]
        low, high = sc.randomization.rate_scale
        updates: dict[str, Any] = {"seed": int(rng.integers(2**31)), "schedule": []}
        workload = sc.workload
        if sc.randomization.random_start:
            workload = updates["workload"] = random_window(workload, sc.duration_s, rng)
        if (low, high) != (1.0, 1.0):
            updates["workload"] = scaled_workload(workload, float(rng.uniform(low, high)))
        if sc.randomization.initial_replicas is not None:
            lo, hi = sc.randomization.initial_replicas
            updates["fleet"] = sc.fleet.model_copy(update={"replicas": int(rng.integers(lo, hi + 1))})
        self.episode = sc.model_copy(update=updates)
        self.sim = Simulation.build(self.episode)
        self.tally = _StepTally(self.sim.tally)
        self.price = price_per_chip_hour(self.episode, self.sim.fleet)
        self._chip_hours = 0.0
        if self.actions.residual:
            self._baseline = self._agent(self.residual_agent, "_baseline_doc")
        fallback = self._agent(self.safety.fallback_hpa, "_fallback_doc") if self.safety.fallback_hpa else None
        self.loop = ControlLoop(_Actions(self.sync_period_s), self.safety, fallback,
                                reads=(OBSERVED_GAUGES, OBSERVED_EXTERNAL))  # fmt: skip
        self.sim.loop = self.loop
        self._state = self.sim.state()  # what the agent observed: the next step decides on it (no time passes between)
        self.observe.reset()
        return self._observation(), {"replicas": self.sim.fleet.desired}

    def _observation(self) -> np.ndarray:
        """The agent's view of ``self._state``. A residual policy's baseline recommends on that state first (once per
        step, as :class:`~rlscale.policies.learned.LearnedPolicy` asks it), so the observation can show it."""
        baseline = self._baseline.recommend(self._state) if self._baseline is not None else None
        self._baseline_out = baseline
        return self.observe(self._state, baseline)

    def _member(self, options: dict[str, Any] | None, drawn: int) -> int:
        if not options:
            return drawn
        unknown = sorted(set(options) - {"scenario"})
        if unknown:
            raise ValueError(f"reset(options=...): unknown option(s) {unknown}; this environment takes 'scenario'")
        chosen = options["scenario"]
        names = [s.name for s in self.scenarios]
        if isinstance(chosen, str) and chosen in names:
            return names.index(chosen)
        if isinstance(chosen, int) and 0 <= chosen < len(self.scenarios):
            return chosen
        raise ValueError(
            f"reset(options={{'scenario': {chosen!r}}}): want an index below {len(names)} or one of {names}"
        )

    def _agent(self, ref: str | Path, cache: str) -> Autoscaler:
        """An agent for this episode: an HPA manifest is read once and rebuilt fresh (its history starts empty);
        an agent that plans (an oracle) is loaded for the episode's own scenario."""
        path = agent_file(ref)
        if getattr(self, cache) is None:
            setattr(self, cache, read_extended(path))
        doc = getattr(self, cache)
        if doc.get("kind") == "HorizontalPodAutoscaler":
            return HPAPolicy.from_manifest(doc)
        return load_agent(path, self.episode)

    def step(self, action):
        if self.sim is None:
            raise RuntimeError("call reset() before step()")
        sim, fleet = self.sim, self.sim.fleet
        state = self._state
        before = fleet.desired
        desired = self.actions.replicas(int(action), state.spec_replicas, self._baseline_out)
        sync = self.loop.sync(state, unavailable=sim.metrics.down_reason(), recommend=desired)  # the controller's rules
        applied = sync.decision.applied
        if applied != before:
            self.loop.actuated(sim.actuate(applied))
        self.tally.reset()
        end = min(sim.env.now + self.sync_period_s, self.episode.duration_s)
        sim.env.run(until=end)
        chip_hours = fleet.chip_hours()
        cost = (chip_hours - self._chip_hours) * self.price
        self._chip_hours = chip_hours
        w = self.episode.reward
        t = self.tally
        terms = {
            "reward/cost": -w.cost_weight * cost,
            "reward/slo": -w.slo_violation_weight * t.violations,
            "reward/failures": -w.failure_weight * t.failed,
            "reward/churn": -w.churn_weight * abs(fleet.desired - before),
        }
        info = {
            **terms,
            "cost_usd": cost,
            "chip_hours": chip_hours,
            "completed": t.completed,
            "failed": t.failed,
            "slo_violations": t.violations,
            "replicas": fleet.desired,
            "asked": desired,
            "held": sync.decision.held,
            "source": sync.decision.source.value,
            "metrics": sync.health.status.value,
        }
        truncated = end >= self.episode.duration_s
        if truncated:
            info["episode_kpis"] = sim.kpis().as_dict()
        after = self._state = sim.state()
        info["ready"] = sum(p.ready for p in after.pods)
        return self._observation(), float(sum(terms.values())), False, truncated, info


class _Actions:
    """The agent's side of the control loop: its action arrives as the recommendation (``ControlLoop.sync``)."""

    def __init__(self, sync_period_s: float) -> None:
        self.sync_period_s = sync_period_s

    def recommend(self, state: Any) -> None:  # never asked: the environment passes the action's count
        return None

"""The control loop every policy runs in: collect → recommend → safety → actuate.

The simulator (:meth:`rlscale.simulation.Simulation.attach`), the Gymnasium environment and the live controller
(:mod:`rlscale.deploy.controller`) differ only in how they collect a :class:`ClusterState` and how they actuate a
count; between the two they call :meth:`ControlLoop.sync`, so the policy that is scored and trained is the policy
that acts on a cluster: the same holds on missing metrics, the same fallback HPA, the same bounds and step caps
(:mod:`rlscale.policies.safety`). The loop counts what safety did, for the KPIs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from rlscale.metrics.names import sample_name
from rlscale.policies.base import Autoscaler, ClusterState
from rlscale.policies.safety import (
    Decision,
    Health,
    MetricsHealth,
    SafetySpec,
    Source,
    assess,
    decide,
    expected_to_report,
)


def metric_reads(policy: object) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The per-pod gauges and External metrics a policy reads (its ``metric_refs()``), as sample names; a policy
    that reads none (a fixed count, a plan) is never held for want of metrics."""
    refs = getattr(policy, "metric_refs", None)
    if not callable(refs):
        return (), ()
    gauges, external = [], []
    for _, kind, name in refs():
        (gauges if kind == "Pods" else external).append(sample_name(name))
    return tuple(dict.fromkeys(gauges)), tuple(dict.fromkeys(external))


@dataclass
class LoopCounts:
    """What the safety layer did over a run (KPIs ``decisions``, ``decisions_held``, ...)."""

    decisions: int = 0
    held: int = 0  # a hold: unavailable metrics, a failed policy without fallback, a blocked scale-down
    fallbacks: int = 0  # the fallback HPA decided
    limited: int = 0  # the count asked for was clamped or capped
    scale_failures: int = 0  # the PATCH failed; the loop is level-based, so the next sync tries again
    policy_errors: int = 0  # syncs where the policy (or its fallback) raised instead of answering
    first_error: str | None = None  # the first of them, as "policy: ValueError: ..."

    def as_kpis(self) -> dict[str, int]:
        return {
            "policy_errors": self.policy_errors,
            "decisions": self.decisions,
            "decisions_held": self.held,
            "fallback_decisions": self.fallbacks,
            "decisions_limited": self.limited,
            "scale_failures": self.scale_failures,
        }


@dataclass(frozen=True)
class Sync:
    """One pass of the loop: the metrics' health, what each source recommended, and the decision."""

    decision: Decision
    health: MetricsHealth
    policy_out: int | Exception | None
    fallback_out: int | Exception | None


@dataclass
class ControlLoop:
    """A policy behind the safety layer. ``reads`` overrides the metrics the policy is judged to need (gauges,
    External names); by default they come from :func:`metric_reads`."""

    policy: Autoscaler
    safety: SafetySpec | None = None  # None: the policy's own default_safety(), else SafetySpec()
    fallback: Autoscaler | None = None
    reads: tuple[tuple[str, ...], tuple[str, ...]] | None = None
    on_error: Callable[[str, Exception], None] | None = None  # told when the policy or fallback raised
    counts: LoopCounts = field(default_factory=LoopCounts)

    def __post_init__(self) -> None:
        if self.safety is None:
            default = getattr(self.policy, "default_safety", None)
            self.safety = default() if callable(default) else SafetySpec()
        self.limits = self.safety.limits
        if self.reads is None:
            self.reads = metric_reads(self.policy)

    @property
    def sync_period_s(self) -> float:
        return self.policy.sync_period_s

    def health(self, state: ClusterState, expected: Iterable[str] | None = None) -> MetricsHealth:
        """What the metrics the policy reads look like now (``expected``: pods that should report; by default the
        Running pods that are Ready or draining)."""
        gauges, external = self.reads
        if not gauges and not external:
            return MetricsHealth.ok()
        pods = expected_to_report(state.pods) if expected is None else expected
        return assess(state.metrics, pods, gauges, external)

    def sync(
        self,
        state: ClusterState,
        *,
        unavailable: str | None = None,
        expected: Iterable[str] | None = None,
        recommend: Any = None,
    ) -> Sync:
        """Decide the count for ``state``. ``unavailable``: the metrics source failed (why); ``recommend``: the
        policy's answer when the caller already has it (the environment's action), instead of asking the policy."""
        health = MetricsHealth(Health.UNAVAILABLE, unavailable) if unavailable else self.health(state, expected)
        judged = health
        if health.status is Health.PARTIAL and self.safety.partial_metrics == "pass":
            judged = MetricsHealth.ok()
        policy_out = fallback_out = None
        if health.status is not Health.UNAVAILABLE:
            policy_out = self._ask(self.policy, state, "policy") if recommend is None else recommend
            if self.fallback is not None:
                fallback_out = self._ask(self.fallback, state, "fallback")
        decision = decide(state.spec_replicas, judged, self.limits, policy_out, fallback_out, self.fallback is not None)
        self._count(decision, policy_out, fallback_out)
        return Sync(decision, health, policy_out, fallback_out)

    def actuated(self, ok: bool) -> None:
        """The caller's PATCH of the decided count failed (False) or went through."""
        self.counts.scale_failures += not ok

    def _ask(self, policy: Autoscaler, state: ClusterState, kind: str) -> int | Exception | None:
        """A policy's recommendation, or the exception it raised (a policy bug must not stop the loop: the fallback
        or a hold takes over)."""
        try:
            out = policy.recommend(state)
        except Exception as exc:
            self.counts.policy_errors += 1
            if self.counts.first_error is None:
                self.counts.first_error = f"{kind}: {type(exc).__name__}: {exc}"
            if self.on_error is not None:
                self.on_error(kind, exc)
            return exc
        return None if out is None else int(out)

    def _count(self, decision: Decision, policy_out: Any, fallback_out: Any) -> None:
        c = self.counts
        c.decisions += 1
        c.held += decision.held
        c.fallbacks += decision.source is Source.FALLBACK
        asked = fallback_out if decision.source is Source.FALLBACK else policy_out
        c.limited += isinstance(asked, int) and not decision.held and decision.applied != asked

"""Safety between a policy's recommendation and the PATCH: pure functions, one :class:`Decision` per sync.

The same rules run in the simulator, the Gymnasium environment and the live controller (through
:class:`rlscale.policies.control.ControlLoop`), configured as data (:class:`SafetySpec`), in order:

1. **Metrics unavailable** (the source is down, timed out, or every sample is stale): the policy is not asked;
   hold the current count (raised to ``min_replicas`` if below it; scaling up is always safe).
2. **The policy cannot act** (it raised): the fallback HPA decides if there is one, else hold.
3. **Partial metrics** (some Ready pod has no fresh sample, or the External metric is missing): the fallback HPA
   decides if there is one (the HPA algorithm is built for missing pods: it assumes them idle when scaling up and
   busy when scaling down), else the policy. Either way **scale-down is blocked** and scale-up is allowed: the
   pods we do see need the capacity, and the missing ones can only add load, so adding pods cannot be wrong for
   lack of data, while removing them could be.
4. Clamp to ``[min_replicas, max_replicas]``, then cap the change per step at ``max_change_per_step``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field, model_validator

from rlscale.config import StrictModel
from rlscale.metrics.pipeline import MetricsView
from rlscale.pods import PodInfo, PodPhase


class SafetySpec(StrictModel):
    """The safety layer as data: an agent file's ``safety:`` block, or the controller file's limits.

    The defaults change nothing a policy asks for (no bounds of its own, no cap) but keep the holds a live
    controller applies: no decision on unavailable metrics, no scale-down on partial ones.
    """

    min_replicas: int = Field(0, ge=0, description="Pods; the count is never set below (a hold raises it).")
    max_replicas: int | None = Field(None, ge=1, description="Pods; the count is never set above (null: no bound).")
    max_change_per_step: int | None = Field(
        None, ge=1, description="Pods up or down per sync, after the policy (null: no cap)."
    )
    fallback_hpa: str | None = Field(
        None, description="An HPA manifest that decides when the policy cannot act or metrics are partial."
    )
    partial_metrics: Literal["block-scale-down", "pass"] = Field(
        "block-scale-down",
        description="Partial metrics: block scale-down (the controller's rule), or pass the policy's count through "
        "(the Kubernetes HPA, whose algorithm handles missing pods itself).",
    )

    @model_validator(mode="after")
    def _bounds(self) -> SafetySpec:
        if self.max_replicas is not None and self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) exceeds max_replicas ({self.max_replicas})")
        return self

    @property
    def limits(self) -> Limits:
        return Limits(self.min_replicas, self.max_replicas, self.max_change_per_step)


def env_safety(safety: SafetySpec | dict[str, Any] | None, min_replicas: int, max_replicas: int) -> SafetySpec:
    """The safety layer a policy trained in ``rlscale/JetStream-v0`` meets, and so every run of it: the live
    controller's rules, within the action bounds unless ``safety`` says otherwise (its fields: ``SafetySpec``)."""
    if isinstance(safety, SafetySpec):
        return safety
    return SafetySpec.model_validate({"min_replicas": min_replicas, "max_replicas": max_replicas, **(safety or {})})


class Source(StrEnum):
    POLICY = "policy"
    FALLBACK = "fallback"
    HOLD = "hold"


class Health(StrEnum):
    OK = "ok"
    PARTIAL = "partial"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class MetricsHealth:
    status: Health
    why: str = ""

    @classmethod
    def ok(cls) -> MetricsHealth:
        return cls(Health.OK)


@dataclass(frozen=True)
class Limits:
    """Bounds and the per-step cap; None: no upper bound, no cap."""

    min_replicas: int
    max_replicas: int | None
    max_change_per_step: int | None

    def __post_init__(self) -> None:
        top = self.max_replicas if self.max_replicas is not None else self.min_replicas
        if not 0 <= self.min_replicas <= top:
            raise ValueError(f"need 0 <= min_replicas ({self.min_replicas}) <= max_replicas ({self.max_replicas})")
        if self.max_change_per_step is not None and self.max_change_per_step < 1:
            raise ValueError(f"max_change_per_step must be >= 1, got {self.max_change_per_step}")


@dataclass(frozen=True)
class Decision:
    """One sync's outcome: what the chosen source wanted (``desired``) and what safety lets through (``applied``)."""

    current: int  # spec.replicas when the sync started
    desired: int  # the source's recommendation (the current count when holding)
    applied: int  # after the limits
    reason: str
    held: bool  # missing/failed metrics or a failed policy kept the count from following a recommendation
    source: Source

    @property
    def changes(self) -> bool:
        return self.applied != self.current


def clamp(replicas: int, limits: Limits) -> int:
    top = limits.max_replicas if limits.max_replicas is not None else replicas
    return max(limits.min_replicas, min(top, replicas))


def cap_change(current: int, target: int, max_change: int | None) -> int:
    if max_change is None:
        return target
    return max(current - max_change, min(current + max_change, target))


def expected_to_report(pods: Iterable[PodInfo]) -> set[str]:
    """The pods whose server answers scrapes: Running and Ready, or draining (pods still starting, or Ready but
    restarting after a crash, are not expected to have metrics)."""
    return {p.name for p in pods if p.phase is PodPhase.RUNNING and (p.ready or p.deletion)}


def assess(
    metrics: MetricsView, expected: Iterable[str], gauges: Iterable[str], external: Iterable[str]
) -> MetricsHealth:
    """Unavailable when none of the ``expected`` pods has a fresh sample of any per-pod gauge the policy reads;
    partial when some lacks one, or an External metric it reads is missing."""
    expected = set(expected)
    reporting = {name: metrics.pods_metric(name).keys() for name in gauges}  # each asked once per sync
    if expected and reporting and not any(expected & pods for pods in reporting.values()):
        return MetricsHealth(Health.UNAVAILABLE, f"no fresh sample for any of {len(expected)} pods")
    gaps = []
    for name, pods in reporting.items():
        missing = expected - pods
        if missing:
            gaps.append(f"{name} missing for {len(missing)}/{len(expected)} pods")
    for name in external:
        if expected and metrics.external_metric(name) is None:
            gaps.append(f"{name} missing")
    return MetricsHealth(Health.PARTIAL, "; ".join(gaps)) if gaps else MetricsHealth.ok()


def decide(
    current: int,
    health: MetricsHealth,
    limits: Limits,
    policy: int | Exception | None = None,
    fallback: int | Exception | None = None,
    has_fallback: bool = False,
) -> Decision:
    """The replicas to set. ``policy`` and ``fallback`` are their recommendations (None: leave the count), or the
    exception the call raised; ``has_fallback`` says whether a fallback HPA is configured at all."""
    if health.status is Health.UNAVAILABLE:
        return _limit(current, current, limits, Source.HOLD, f"metrics unavailable: {health.why}", held=True)
    fallback_usable = has_fallback and not isinstance(fallback, Exception)
    if isinstance(policy, Exception):
        why = f"policy failed: {type(policy).__name__}: {policy}"
        if fallback_usable:
            return _limit(current, _or(fallback, current), limits, Source.FALLBACK, why, held=False,
                          allow_down=health.status is Health.OK)  # fmt: skip
        return _limit(current, current, limits, Source.HOLD, why, held=True)
    if health.status is Health.PARTIAL:
        why = f"partial metrics ({health.why})"
        if fallback_usable:
            return _limit(current, _or(fallback, current), limits, Source.FALLBACK, why, held=False, allow_down=False)
        return _limit(current, _or(policy, current), limits, Source.POLICY, why, held=False, allow_down=False)
    return _limit(current, _or(policy, current), limits, Source.POLICY, "", held=False)


def _or(value: int | Exception | None, default: int) -> int:
    return default if value is None or isinstance(value, Exception) else int(value)


def _limit(
    current: int, desired: int, limits: Limits, source: Source, why: str, *, held: bool, allow_down: bool = True
) -> Decision:
    notes = [why] if why else []
    target = clamp(desired, limits)
    if target != desired:
        top = limits.max_replicas if limits.max_replicas is not None else "inf"
        notes.append(f"clamped to [{limits.min_replicas}, {top}]")
    if target < current and (not allow_down or source is Source.HOLD):
        notes.append("scale-down blocked")
        target, held = current, True
    capped = cap_change(current, target, limits.max_change_per_step)
    if capped != target:
        notes.append(f"capped at +{limits.max_change_per_step}/-{limits.max_change_per_step} per step")
    verb = "hold" if capped == current else ("scale up" if capped > current else "scale down")
    notes.insert(0, f"{verb} {current} -> {capped}" if capped != current else f"{verb} at {current}")
    return Decision(current, desired, capped, "; ".join(notes), held, source)

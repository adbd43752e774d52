"""From an agent's action to a replica count: the one mapping the environment and a deployed policy share.

``rlscale/JetStream-v0`` (``JetStreamEnv.step``) and
:class:`rlscale.policies.learned.LearnedPolicy` must turn an action into the same
``spec.replicas``, or a policy trained in one acts differently in the other.
:class:`ActionMap` is that mapping, with the size of the action space it implies; it lives with the policies,
below the environment, so that a deployed policy needs nothing of the simulator to act.
"""

from __future__ import annotations

from dataclasses import dataclass

ACTION_MODES = ("delta", "target", "residual", "residual-hold")


@dataclass(frozen=True)
class ActionMap:
    """How a ``Discrete(n)`` action sets the Deployment's replica count.

    * ``delta``: ``action − max_delta`` pods added to the current ``spec.replicas``;
    * ``target``: the count itself (``n = max_replicas + 1``);
    * ``residual``: ``action − max_delta`` added to a baseline agent's recommendation
      (the current count when the baseline has none);
    * ``residual-hold``: as ``residual``, and one more action (the last, ``2·max_delta + 1``) that keeps the current
      count whatever the baseline says: a learned correction can refuse a baseline's scale-down (traffic that went
      silent and will be back before a new pod is Ready) without needing a delta as large as the fleet.

    The result is always clipped to ``[min_replicas, max_replicas]`` pods.
    """

    mode: str = "delta"
    max_delta: int = 2  # pods per step, delta and residual modes
    min_replicas: int = 1  # pods
    max_replicas: int = 16  # pods

    def __post_init__(self) -> None:
        if self.mode not in ACTION_MODES:
            raise ValueError(f"action_mode: want one of {ACTION_MODES}, got {self.mode!r}")
        if self.max_delta < 1:
            raise ValueError(f"max_delta ({self.max_delta}): need at least 1")
        if not 0 <= self.min_replicas <= self.max_replicas:
            raise ValueError(
                f"min_replicas ({self.min_replicas}) / max_replicas ({self.max_replicas}): need 0 <= min <= max"
            )

    @property
    def n(self) -> int:
        """The number of discrete actions."""
        if self.mode == "target":
            return self.max_replicas + 1
        return 2 * self.max_delta + 1 + (self.mode == "residual-hold")

    @property
    def residual(self) -> bool:
        """Whether actions correct a baseline agent's recommendation (which must then be computed every step)."""
        return self.mode in ("residual", "residual-hold")

    @property
    def keep(self) -> int | None:
        """``residual-hold``'s action that keeps the current count (None in the other modes)."""
        return 2 * self.max_delta + 1 if self.mode == "residual-hold" else None

    @property
    def hold(self) -> int:
        """The action that leaves the count as it is (delta) or follows the baseline (residual); target has none."""
        return self.max_delta

    def replicas(self, action: int, current: int, baseline: int | None = None) -> int:
        """The replica count ``action`` asks for, given the current ``spec.replicas`` and, in residual mode, the
        baseline's recommendation (None: the baseline leaves the scale as it is)."""
        action = int(action)
        if not 0 <= action < self.n:
            raise ValueError(f"action {action} outside Discrete({self.n}) ({self.mode} mode)")
        if self.mode == "target":
            desired = action
        elif action == self.keep:
            desired = current
        else:
            base = baseline if self.residual and baseline is not None else current
            desired = base + action - self.max_delta
        return min(max(desired, self.min_replicas), self.max_replicas)

    def from_unit(self, value: float) -> int:
        """:func:`discrete_from_unit` over this map's actions."""
        return discrete_from_unit(value, self.n)


def discrete_from_unit(value: float, n: int) -> int:
    """The action of ``Discrete(n)`` nearest to a continuous one in [−1, 1] (−1: action 0, +1: action n − 1), for
    continuous-action algorithms (SAC); values outside are clipped."""
    value = min(max(float(value), -1.0), 1.0)
    return round((value + 1.0) / 2.0 * (n - 1))

"""What a controller knows of a pod: its phase and conditions as the Kubernetes API reports them.

The vocabulary every layer shares, so it sits below all of them: the HPA's replica calculator groups pods by it
(``rlscale.hpa``), the simulated fleet reports its replicas in it (``rlscale.cluster``), the policies and their
safety layer read it (``rlscale.policies``) and the live controller builds it from the API's pod list
(``rlscale.deploy``). It imports nothing of rlscale.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class PodPhase(StrEnum):
    """``status.phase`` of a pod."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    UNKNOWN = "Unknown"


@dataclass(frozen=True, slots=True)
class PodInfo:
    """What the HPA's calculator (and every policy) reads from a pod the selector matches.

    ``ready`` is the PodReady condition; ``deletion`` is a set deletionTimestamp.
    Start and readiness-transition times matter only for CPU metrics, which are not
    modelled, so they are not carried.
    """

    name: str
    phase: PodPhase = PodPhase.RUNNING
    ready: bool = True
    deletion: bool = False

    def __post_init__(self) -> None:
        if type(self.phase) is not PodPhase:  # a string from the API; the simulator passes members (every sync)
            object.__setattr__(self, "phase", PodPhase(self.phase))

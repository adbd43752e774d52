"""A pod as the live controller reads it from the Kubernetes API: what the policy sees and where to scrape it."""

from __future__ import annotations

from dataclasses import dataclass

from rlscale.pods import PodInfo, PodPhase


@dataclass(frozen=True, slots=True)
class LivePod:
    name: str
    phase: PodPhase = PodPhase.RUNNING
    ready: bool = True
    deletion: bool = False  # metadata.deletionTimestamp is set: draining
    ip: str | None = None  # status.podIP

    @property
    def info(self) -> PodInfo:
        """The pod as the policies and the HPA's replica calculator take it."""
        return PodInfo(self.name, self.phase, self.ready, self.deletion)

    @property
    def scrapeable(self) -> bool:
        """Its server answers scrapes: Running with an IP, Ready or draining (as the simulator's scrape targets)."""
        return self.ip is not None and self.phase is PodPhase.RUNNING and (self.ready or self.deletion)

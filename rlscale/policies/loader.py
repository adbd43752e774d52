"""Load a policy from an ``agents/*.yaml`` file."""

from __future__ import annotations

from pathlib import Path

from rlscale.hpa.spec import SpecError as HPASpecError
from rlscale.policies.base import Autoscaler
from rlscale.policies.hpa import HPAPolicy
from rlscale.scenario import ScenarioConfig
from rlscale.specs.catalog import SpecError, read_document


def load_agent(path: str | Path, scenario: ScenarioConfig | None = None) -> Autoscaler:
    """An agent file: a Kubernetes ``autoscaling/v2`` HorizontalPodAutoscaler manifest, or an rlscale agent.

    ``scenario`` is the scenario the agent will run in; agents that plan ahead
    (the clairvoyant oracle) or search (the best static count) need it.
    """
    path = Path(path)
    doc = read_document(path)
    kind = doc.get("kind")
    if kind == "HorizontalPodAutoscaler":
        try:
            return HPAPolicy.from_manifest(doc)
        except HPASpecError as exc:
            raise SpecError(f"{path}: {exc}") from exc
    raise SpecError(f"{path}: kind: expected HorizontalPodAutoscaler, got {kind!r}")

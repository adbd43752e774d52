"""Load a policy from an ``agents/*.yaml`` file."""

from __future__ import annotations

from pathlib import Path

from rlscale.hpa.spec import SpecError as HPASpecError
from rlscale.policies.base import Autoscaler
from rlscale.policies.hpa import HPAPolicy
from rlscale.specs.catalog import SpecError, read_document


def load_agent(path: str | Path) -> Autoscaler:
    """An agent file: for now, a Kubernetes ``autoscaling/v2`` HorizontalPodAutoscaler manifest."""
    path = Path(path)
    doc = read_document(path)
    kind = doc.get("kind")
    if kind == "HorizontalPodAutoscaler":
        try:
            return HPAPolicy.from_manifest(doc)
        except HPASpecError as exc:
            raise SpecError(f"{path}: {exc}") from exc
    raise SpecError(f"{path}: kind: expected HorizontalPodAutoscaler, got {kind!r}")

"""Load a policy from an agent file, through a registry of kinds resolved lazily.

:data:`KINDS` is the registry as data: each kind names the function that builds it, ``"module:function"``, and the
module is imported the first time a file of that kind is loaded. A builder takes the file's document and an
:class:`AgentContext` (where the file is, the scenario the agent will run in, whether to show planning progress).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from rlscale.data import agent_file, read_extended
from rlscale.metrics.names import UnknownMetricError, check_metric_name
from rlscale.policies.base import Autoscaler
from rlscale.policies.control import ControlLoop
from rlscale.policies.hpa import HPAPolicy
from rlscale.policies.safety import SafetySpec
from rlscale.specs.catalog import SpecError, validate

# The scenario an agent will run in (a rlscale.scenario.ScenarioConfig), passed through to the kinds that plan by
# simulating it. It is not imported here: the live controller loads agents, and the scenario composes the
# simulated fleet's configuration.
Scenario = Any

# kind -> the function that builds it, imported when a file of that kind is loaded (in this order in messages)
KINDS: dict[str, str] = {
    "HorizontalPodAutoscaler": "rlscale.agents.baselines:hpa",
    "KnativePodAutoscaler": "rlscale.agents.baselines:kpa",
    "SaturationAutoscaler": "rlscale.agents.baselines:saturation",
    "StaticReplicas": "rlscale.agents.baselines:static",
    "ClairvoyantOracle": "rlscale.agents.planned:oracle",
    "ForecastingAutoscaler": "rlscale.agents.forecasting:forecasting",
    "LearnedPolicy": "rlscale.agents.learned:learned",
}
# Kinds that plan a given scenario whatever their spec: refused without one before their builder (and with it the
# simulator) is imported.
PLANNED_KINDS = {"ClairvoyantOracle": "a ClairvoyantOracle plans a given scenario's future; pass the scenario"}


@dataclass(frozen=True)
class AgentContext:
    """What a builder knows besides the document: the file (``where`` in messages, the folder its references are
    relative to), the scenario the agent will run in (None on a live cluster) and whether to show planning."""

    path: Path
    scenario: Scenario | None = None
    progress: bool = False

    @property
    def where(self) -> str:
        return str(self.path)


Builder = Callable[[dict[str, Any], AgentContext], Autoscaler]


def resolve(target: str) -> Any:
    """``"module:attribute"``, imported now."""
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


class AgentFile(BaseModel):
    """An rlscale agent file: ``kind`` plus a ``spec`` of the policy's config (Kubernetes-like layout); each kind
    narrows ``spec`` to its config."""

    model_config = ConfigDict(extra="forbid")

    apiVersion: str | None = None  # the manifest's own spelling
    kind: str
    metadata: dict[str, Any] | None = None
    safety: SafetySpec | None = None  # read by load_control_loop


def load_agent(path: str | Path, scenario: Scenario | None = None, *, progress: bool = False) -> Autoscaler:
    """An agent file (a path, or the name of a shipped agent: ``hpa-slots-used``): a Kubernetes ``autoscaling/v2``
    HorizontalPodAutoscaler manifest, or an rlscale agent of a kind in :data:`KINDS` with a ``spec:`` of the
    policy's config.

    ``scenario`` is the scenario the agent will run in; agents that plan ahead (the clairvoyant oracle) or search
    (the best static count) need it; ``progress`` shows their planning on stderr (off by default: inside a
    comparison's workers it would be noise). A planner's choice is in its ``plan_record()``.
    """
    path = agent_file(path)
    doc = read_extended(path)
    kind = doc.get("kind")
    if kind not in KINDS:
        raise SpecError(f"{path}: kind: expected {', '.join(KINDS)}; got {kind!r}")
    if scenario is None and kind in PLANNED_KINDS:
        raise SpecError(f"{path}: kind: {PLANNED_KINDS[kind]}")
    build: Builder = resolve(KINDS[kind])
    agent = build(doc, AgentContext(path, scenario, progress))
    if scenario is not None:  # it will run in the simulator, whose metric names are known in full
        check_metric_refs(agent, str(path))
    return agent


def check_metric_refs(agent: Autoscaler, where: str) -> None:
    """Every metric the agent reads is one the simulated cluster exports (a SpecError naming the field otherwise).

    Only in simulation: a live cluster's adapter may serve names of its own."""
    for field, kind, name in getattr(agent, "metric_refs", list)():
        try:
            check_metric_name(name, kind, field)
        except UnknownMetricError as exc:
            raise SpecError(f"{where}: {exc}") from None


def load_hpa_beside(agent: Path, field: str, ref: str, scenario: Scenario | None) -> HPAPolicy:
    """An HPA manifest an agent file names in ``field`` (relative to the agent file when it is there, else as
    :func:`load_agent` finds it)."""
    where = Path(ref)
    if not where.is_absolute() and (agent.parent / where).exists():
        where = agent.parent / where
    hpa = load_agent(where, scenario)
    if not isinstance(hpa, HPAPolicy):
        raise SpecError(f"{agent}: {field}: {where} is not a HorizontalPodAutoscaler manifest")
    return hpa


def load_control_loop(path: str | Path, scenario: Scenario | None = None, *, progress: bool = False) -> ControlLoop:
    """The agent behind its safety layer, as the simulator, the environment and the live controller run it: the
    file's ``safety:`` block (an HPA manifest, which cannot carry one, gets the Kubernetes HPA's own: holds on
    unavailable metrics only), and its ``fallback_hpa`` (relative to the agent file) loaded."""
    path = agent_file(path)
    policy = load_agent(path, scenario, progress=progress)
    doc = read_extended(path)
    if doc.get("kind") == "HorizontalPodAutoscaler" or doc.get("safety") is None:
        return ControlLoop(policy)
    safety = validate(SafetySpec, doc["safety"], f"{path}: safety")
    fallback = None
    if safety.fallback_hpa is not None:
        fallback = load_hpa_beside(path, "safety.fallback_hpa", safety.fallback_hpa, scenario)
    return ControlLoop(policy, safety, fallback)

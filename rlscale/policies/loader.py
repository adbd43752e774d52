"""Load a policy from an ``agents/*.yaml`` file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from rlscale.hpa.spec import HPASpecError
from rlscale.metrics.names import UnknownMetricError, check_metric_name
from rlscale.policies.base import Autoscaler
from rlscale.policies.control import ControlLoop
from rlscale.policies.hpa import HPAPolicy
from rlscale.policies.kpa import KPAConfig, KPAPolicy
from rlscale.policies.oracle import ClairvoyantOracle, OracleConfig
from rlscale.policies.safety import SafetySpec
from rlscale.policies.saturation import SaturationConfig, SaturationPolicy
from rlscale.policies.static import StaticConfig, StaticPolicy, search_static
from rlscale.scenario import ScenarioConfig
from rlscale.specs.catalog import SpecError, read_document, validate


class _AgentFile(BaseModel):
    """An rlscale agent file: ``kind`` plus a ``spec`` of the policy's config (Kubernetes-like layout)."""

    model_config = ConfigDict(extra="forbid")

    apiVersion: str | None = None  # the manifest's own spelling
    kind: str
    metadata: dict[str, Any] | None = None
    safety: SafetySpec | None = None  # read by load_control_loop


class _KPAFile(_AgentFile):
    spec: KPAConfig = KPAConfig()


class _SaturationFile(_AgentFile):
    spec: SaturationConfig = SaturationConfig()


class _StaticFile(_AgentFile):
    spec: StaticConfig = StaticConfig()


class _OracleFile(_AgentFile):
    spec: OracleConfig = OracleConfig()


class _LearnedFile(_AgentFile):
    spec: dict[str, Any]  # validated by rlscale.training.policy.LearnedPolicyConfig, imported when needed


def _kpa(doc: dict, path: Path, scenario: ScenarioConfig | None, progress: bool = False) -> Autoscaler:
    return KPAPolicy(validate(_KPAFile, doc, str(path)).spec)


def _saturation(doc: dict, path: Path, scenario: ScenarioConfig | None, progress: bool = False) -> Autoscaler:
    return SaturationPolicy(validate(_SaturationFile, doc, str(path)).spec)


def _static(doc: dict, path: Path, scenario: ScenarioConfig | None, progress: bool = False) -> Autoscaler:
    spec = validate(_StaticFile, doc, str(path)).spec
    if spec.replicas != "cheapest":
        return StaticPolicy(spec.replicas, spec.sync_period_s)
    if scenario is None:
        raise SpecError(f"{path}: spec.replicas: 'cheapest' searches the scenario's runs; pass the scenario")
    search = search_static(
        scenario, spec.seeds, spec.max_replicas, spec.slo_attainment, min_replicas=spec.min_replicas, progress=progress
    )
    if search.replicas is None:
        raise SpecError(
            f"{path}: spec.replicas: no fixed count in [{spec.min_replicas}, {spec.max_replicas}] reaches "
            f"{spec.slo_attainment} SLO attainment on seeds {spec.seeds} of scenario {scenario.name!r}"
        )
    return StaticPolicy(search.replicas, spec.sync_period_s, plan=search.record())


def _oracle(doc: dict, path: Path, scenario: ScenarioConfig | None, progress: bool = False) -> Autoscaler:
    spec = validate(_OracleFile, doc, str(path)).spec
    if scenario is None:
        raise SpecError(f"{path}: kind: a ClairvoyantOracle plans a given scenario's future; pass the scenario")
    return ClairvoyantOracle(scenario, spec, progress=progress)


def _learned(doc: dict, path: Path, scenario: ScenarioConfig | None, progress: bool = False) -> Autoscaler:
    from rlscale.training.policy import LearnedPolicyConfig  # SB3 and torch load only for learned agents

    spec = validate(LearnedPolicyConfig, validate(_LearnedFile, doc, str(path)).spec, f"{path}: spec")
    try:
        return spec.build(path.resolve().parent, scenario)
    except SpecError as exc:
        raise SpecError(f"{path}: spec.{exc}") from exc


LOADERS = {
    "KnativePodAutoscaler": _kpa,
    "SaturationAutoscaler": _saturation,
    "StaticReplicas": _static,
    "ClairvoyantOracle": _oracle,
    "LearnedPolicy": _learned,
}


def load_agent(path: str | Path, scenario: ScenarioConfig | None = None, *, progress: bool = False) -> Autoscaler:
    """An agent file: a Kubernetes ``autoscaling/v2`` HorizontalPodAutoscaler manifest, or an rlscale agent.

    rlscale agents are ``kind: KnativePodAutoscaler``, ``SaturationAutoscaler``,
    ``StaticReplicas``, ``ClairvoyantOracle`` or ``LearnedPolicy`` (a trained SB3 policy, by MLflow URI or
    path) with a ``spec:`` of the policy's config. ``scenario`` is
    the scenario the agent will run in; agents that plan ahead (the clairvoyant
    oracle) or search (the best static count) need it; ``progress`` shows their
    planning on stderr (off by default: inside a comparison's workers it would
    be noise). A planner's choice is in its ``plan_record()``.
    """
    path = Path(path)
    doc = read_document(path)
    kind = doc.get("kind")
    if kind == "HorizontalPodAutoscaler":
        try:
            agent: Autoscaler = HPAPolicy.from_manifest(doc)
        except HPASpecError as exc:
            raise SpecError(f"{path}: {exc}") from exc
    elif kind in LOADERS:
        agent = LOADERS[kind](doc, path, scenario, progress)
    else:
        kinds = ", ".join(["HorizontalPodAutoscaler", *LOADERS])
        raise SpecError(f"{path}: kind: expected {kinds}; got {kind!r}")
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


def load_control_loop(
    path: str | Path, scenario: ScenarioConfig | None = None, *, progress: bool = False
) -> ControlLoop:
    """The agent behind its safety layer, as the simulator, the environment and the live controller run it: the
    file's ``safety:`` block (an HPA manifest, which cannot carry one, gets the Kubernetes HPA's own: holds on
    unavailable metrics only), and its ``fallback_hpa`` (relative to the agent file) loaded."""
    path = Path(path)
    policy = load_agent(path, scenario, progress=progress)
    doc = read_document(path)
    if doc.get("kind") == "HorizontalPodAutoscaler" or doc.get("safety") is None:
        return ControlLoop(policy)
    safety = validate(SafetySpec, doc["safety"], f"{path}: safety")
    fallback = None
    if safety.fallback_hpa is not None:
        where = Path(safety.fallback_hpa)
        if not where.is_absolute() and (path.parent / where).exists():
            where = path.parent / where
        fallback = load_agent(where, scenario)
        if not isinstance(fallback, HPAPolicy):
            raise SpecError(f"{path}: safety.fallback_hpa: {where} is not a HorizontalPodAutoscaler manifest")
    return ControlLoop(policy, safety, fallback)

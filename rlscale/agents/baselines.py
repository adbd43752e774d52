"""The kinds that need nothing but their file: the Kubernetes HPA, Knative's KPA, llm-d's saturation scaler and a
fixed static count (``replicas: cheapest`` is a search: :mod:`rlscale.agents.planned`)."""

from __future__ import annotations

from typing import Any

from rlscale.agents.loader import AgentContext, AgentFile, resolve
from rlscale.hpa.spec import HPASpecError
from rlscale.policies.base import Autoscaler
from rlscale.policies.hpa import HPAPolicy
from rlscale.policies.kpa import KPAConfig, KPAPolicy
from rlscale.policies.saturation import SaturationConfig, SaturationPolicy
from rlscale.policies.static import StaticConfig, StaticPolicy
from rlscale.specs.catalog import SpecError, validate

CHEAPEST_STATIC = "rlscale.agents.planned:cheapest_static"  # imported only to search: it runs the simulator


class KPAFile(AgentFile):
    spec: KPAConfig = KPAConfig()


class SaturationFile(AgentFile):
    spec: SaturationConfig = SaturationConfig()


class StaticFile(AgentFile):
    spec: StaticConfig = StaticConfig()


def hpa(doc: dict[str, Any], ctx: AgentContext) -> Autoscaler:
    try:
        return HPAPolicy.from_manifest(doc)
    except HPASpecError as exc:
        raise SpecError(f"{ctx.where}: {exc}") from exc


def kpa(doc: dict[str, Any], ctx: AgentContext) -> Autoscaler:
    return KPAPolicy(validate(KPAFile, doc, ctx.where).spec)


def saturation(doc: dict[str, Any], ctx: AgentContext) -> Autoscaler:
    return SaturationPolicy(validate(SaturationFile, doc, ctx.where).spec)


def static(doc: dict[str, Any], ctx: AgentContext) -> Autoscaler:
    spec = validate(StaticFile, doc, ctx.where).spec
    if spec.replicas != "cheapest":
        return StaticPolicy(spec.replicas, spec.sync_period_s)
    if ctx.scenario is None:
        raise SpecError(f"{ctx.where}: spec.replicas: 'cheapest' searches the scenario's runs; pass the scenario")
    return resolve(CHEAPEST_STATIC)(spec, ctx)

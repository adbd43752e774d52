"""The kinds that plan by simulating the scenario they will run in: the cheapest static count and the clairvoyant
oracle. Imported only when such a file is loaded with a scenario (:data:`rlscale.agents.loader.KINDS`)."""

from __future__ import annotations

from typing import Any

from rlscale.agents.loader import AgentContext, AgentFile
from rlscale.planning.oracle import OracleConfig, plan_oracle
from rlscale.planning.static import search_static
from rlscale.policies.base import Autoscaler
from rlscale.policies.static import StaticConfig, StaticPolicy
from rlscale.specs.catalog import SpecError, validate


class OracleFile(AgentFile):
    spec: OracleConfig = OracleConfig()


def cheapest_static(spec: StaticConfig, ctx: AgentContext) -> Autoscaler:
    """``StaticReplicas`` with ``replicas: cheapest``: the smallest count meeting the SLO on the spec's seeds."""
    scenario = ctx.scenario
    search = search_static(
        scenario, spec.seeds, spec.max_replicas, spec.slo_attainment, min_replicas=spec.min_replicas,
        progress=ctx.progress,
    )  # fmt: skip
    if search.replicas is None:
        raise SpecError(
            f"{ctx.where}: spec.replicas: no fixed count in [{spec.min_replicas}, {spec.max_replicas}] reaches "
            f"{spec.slo_attainment} SLO attainment on seeds {spec.seeds} of scenario {scenario.name!r}"
        )
    return StaticPolicy(search.replicas, spec.sync_period_s, plan=search.record())


def oracle(doc: dict[str, Any], ctx: AgentContext) -> Autoscaler:
    spec = validate(OracleFile, doc, ctx.where).spec
    return plan_oracle(ctx.scenario, spec, progress=ctx.progress)

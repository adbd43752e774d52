"""The clairvoyant oracle: plans from the known future, meets the SLO, and no SLO-meeting baseline is cheaper."""

from __future__ import annotations

import math

import pytest

from rlscale.policies.hpa import HPAPolicy
from rlscale.policies.oracle import ClairvoyantOracle, OracleConfig, cold_start_s, plan, pod_capacity_per_s
from rlscale.scenario import ScenarioConfig
from rlscale.simulation import run_scenario
from rlscale.specs import load_model

LENGTHS = {"kind": "fixed", "prompt_tokens": 400, "output_tokens": 150}
SPIKE = {"process": "flash-crowd", "base_rate_per_s": 5.0, "peak_rate_per_s": 40.0, "start_s": 600, "rise_s": 60,
         "hold_s": 300, "decay_s": 120}  # fmt: skip


def spike(arrival: dict = SPIKE, replicas: int = 2, duration_s: float = 1500) -> ScenarioConfig:
    return ScenarioConfig.model_validate({
        "fleet": {"replicas": replicas, "routing": "least-outstanding",
                  "lifecycle": {"node_provisioning": {"kind": "fixed", "seconds": 120.0}}},
        "workload": {"arrival": arrival, "lengths": LENGTHS},
        "duration_s": duration_s,
    })  # fmt: skip


@pytest.fixture(scope="module")
def oracle_run():
    scenario = spike()
    oracle = ClairvoyantOracle(scenario, OracleConfig(capacity_probe_s=300, max_replicas=10))
    return scenario, oracle, run_scenario(scenario, autoscaler=oracle).kpis


def test_lead_time_is_a_cold_start():
    sc = spike()
    load_s = load_model("llama2-7b").weight_bytes / 0.4e9
    assert cold_start_s(sc, 2.0) == pytest.approx(120.0 + 60.0 + load_s + 20.0 + 6.0 * 7)


def test_capacity_is_where_one_pod_stops_meeting_the_slo():
    sc = spike()
    capacity = pod_capacity_per_s(sc, 0.99, probe_s=300)
    for rate, meets in ((capacity * 0.9, True), (capacity * 1.3, False)):
        probe = spike({"process": "poisson", "rate_per_s": rate}, replicas=1, duration_s=300)
        assert (run_scenario(probe).kpis.slo_attainment >= 0.99) is meets


def test_plan_requests_pods_one_cold_start_ahead_and_keeps_short_valleys():
    sc = spike()
    lead = cold_start_s(sc, 2.0)  # ~336 s: 6 intervals of 60 s
    p = plan(sc, OracleConfig(), capacity_per_s=10.0, headroom=1.0, lead_s=lead)
    ahead = math.ceil(lead / 60)
    assert p.need[0] == 1 and p.need[12] == 4  # 5/s -> 1 pod; 40/s at the peak -> 4
    first_up = next(k for k, n in enumerate(p.schedule) if n > 1)
    first_need = next(k for k, n in enumerate(p.need) if n > 1)
    assert first_up == first_need - ahead
    assert p.fluid_chip_hours == pytest.approx(sum(p.need) * 60 / 3600 * 8)


def test_oracle_meets_the_slo_and_records_its_candidates(oracle_run):
    _, oracle, kpis = oracle_run
    assert kpis.slo_attainment >= 0.99
    assert any(headroom > 0 for headroom, _, _ in oracle.plan.attempts)  # schedules were tried
    assert any(headroom == 0 for headroom, _, _ in oracle.plan.attempts)  # and constant counts
    assert oracle.plan.fluid_chip_hours <= kpis.chip_hours  # instant pods would cost less


def test_no_slo_meeting_baseline_is_cheaper(oracle_run):
    scenario, _, oracle_kpis = oracle_run
    baselines = [
        run_scenario(scenario.model_copy(update={"fleet": scenario.fleet.model_copy(update={"replicas": n})}))
        for n in range(1, 6)
    ]
    hpa = HPAPolicy.from_file("agents/hpa-prefill-backlog.yaml")
    baselines.append(run_scenario(scenario, autoscaler=hpa))
    for result in baselines:
        if result.kpis.slo_attainment >= 0.99:
            assert oracle_kpis.chip_hours <= result.kpis.chip_hours * 1.0001

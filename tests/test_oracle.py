"""The clairvoyant oracle: plans from the known future, meets the SLO, and no SLO-meeting baseline is cheaper."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from rlscale.planning import oracle as oracle_module
from rlscale.planning.oracle import (
    OracleConfig,
    OracleMissedTarget,
    cold_start_s,
    plan,
    plan_oracle,
    pod_capacity_per_s,
)
from rlscale.planning.static import with_fixed_replicas
from rlscale.policies.hpa import HPAPolicy
from rlscale.policies.oracle import run_length
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
    oracle = plan_oracle(scenario, OracleConfig(capacity_probe_s=300, max_replicas=10))
    return scenario, oracle, run_scenario(scenario, autoscaler=oracle).kpis


def test_lead_time_is_a_cold_start():
    sc = spike()
    load_s = load_model("llama2-7b").weight_bytes / 0.4e9
    assert cold_start_s(sc, 2.0) == pytest.approx(120.0 + 60.0 + load_s + 20.0 + 6.0 * 7)


@pytest.mark.slow
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


@pytest.mark.slow
def test_oracle_meets_the_slo_and_records_its_candidates(oracle_run):
    _, oracle, kpis = oracle_run
    assert kpis.slo_attainment >= 0.99
    assert any(a.replicas is None and a.headroom > 0 for a in oracle.plan.attempts)  # schedules were tried
    assert any(a.replicas is not None for a in oracle.plan.attempts)  # and constant counts
    assert oracle.plan.fluid_chip_hours <= kpis.chip_hours  # instant pods would cost less
    assert oracle.plan.met_target and oracle.plan.attainment == kpis.slo_attainment  # the check is the run


@pytest.mark.slow
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


# ---- prefill-heavy bursts: capacity under the traffic's own shape, and a search that does not give up -------------
BURST_S, BURST_RATE, BASE_RATE = 10.0, 10.0, 0.75  # every minute: 10 s at 10/s, then 50 s at 0.75/s
MEAN_RATE = (BURST_S * BURST_RATE + (60 - BURST_S) * BASE_RATE) / 60  # 2.29/s


def code_trace(path: Path, duration_s: float = 600, bursty: bool = True, seed: int = 7) -> Path:
    """An Azure-format code-completion trace: prompts of 1-4k tokens (the pod prefills 1024), outputs of 5-40 tokens;
    bursts of 40/s for 10 s of every minute over 3/s, or Poisson at the same mean (9.17/s) when not ``bursty``."""
    rng = np.random.default_rng(seed)
    pieces = (
        [(start + offset, length, rate) for start in np.arange(0, duration_s, 60)
         for offset, length, rate in ((0.0, BURST_S, BURST_RATE), (BURST_S, 60 - BURST_S, BASE_RATE))]
        if bursty else [(0.0, duration_s, MEAN_RATE)]
    )  # fmt: skip
    times = np.sort(np.concatenate([s + rng.random(rng.poisson(r * n)) * n for s, n, r in pieces]))
    prompts, outputs = rng.integers(1000, 4001, size=times.size), rng.integers(5, 41, size=times.size)
    start = datetime(2024, 5, 1)
    rows = [
        f"{(start + timedelta(seconds=float(t))).isoformat(sep=' ', timespec='microseconds')},{p},{o}"
        for t, p, o in zip(times, prompts, outputs, strict=True)
    ]
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n" + "\n".join(rows) + "\n")
    return path


def code_scenario(trace: Path, replicas: int = 3, duration_s: float = 600, slo: dict | None = None) -> ScenarioConfig:
    return ScenarioConfig.model_validate({
        "name": "code-completion", "slo": slo or {},
        "pod": {"model": "llama3-8b", "max_prefill_predict_length": 4096, "max_target_length": 4160},
        "fleet": {"replicas": replicas, "routing": "least-outstanding",
                  "lifecycle": {"node_provisioning": {"kind": "fixed", "seconds": 120.0}}},
        "workload": {"trace": {"path": str(trace)}},
        "duration_s": duration_s,
    })  # fmt: skip


@pytest.fixture(scope="module")
def bursty_run(tmp_path_factory):
    scenario = code_scenario(code_trace(tmp_path_factory.mktemp("trace") / "code.csv"))
    oracle = plan_oracle(scenario, OracleConfig(max_replicas=8))
    return scenario, oracle, run_scenario(scenario, autoscaler=oracle).kpis


@pytest.mark.slow
def test_capacity_is_priced_under_the_traffics_own_bursts_and_every_slo(tmp_path):
    flat = pod_capacity_per_s(code_scenario(code_trace(tmp_path / "flat.csv", bursty=False)), 0.99, probe_s=300)
    trace = code_trace(tmp_path / "bursty.csv")
    bursty = pod_capacity_per_s(code_scenario(trace), 0.99, probe_s=300)
    # a pod must carry the bursts' rate, 10/2.29 = 4.4x the mean: its capacity is the flat one over 4.4, give or take
    # the short queue a 10 s burst may leave within the SLOs (a Poisson probe would say 4.4x more: 3.2/s, 2 pods)
    assert bursty == pytest.approx(flat * MEAN_RATE / BURST_RATE, rel=0.3)
    # TPOT binds (prefills stall decoding): with a loose TPOT the same pod carries more
    loose = pod_capacity_per_s(code_scenario(trace, slo={"tpot_p99_s": 10.0}), 0.99, probe_s=300)
    assert loose > bursty * 1.1


@pytest.mark.slow
def test_oracle_meets_its_target_on_prefill_heavy_bursts(bursty_run):
    """It used to size pods by a Poisson probe (16.8/s per pod), planned 2 pods for bursts of 40/s at every headroom
    up to 2.0, tried constant counts only up to that 2, and replayed its best failure: 97.6%, TPOT misses."""
    scenario, oracle, kpis = bursty_run
    assert kpis.slo_attainment >= 0.99
    assert oracle.plan.met_target and oracle.plan.attainment == kpis.slo_attainment  # the check is the run
    assert oracle.plan.capacity_per_s < MEAN_RATE / 2  # a burst interval needs at least 3 pods
    assert min(oracle.plan.schedule) >= 3
    static = run_scenario(with_fixed_replicas(scenario, 3)).kpis  # the static count that passes
    assert static.slo_attainment >= 0.99
    assert kpis.chip_hours <= static.chip_hours * 1.0001
    record = json.loads(json.dumps(oracle.plan_record()))
    assert record["met_target"] is True and record["target"] == 0.99
    assert record["schedule"] == run_length(oracle.plan.schedule, 60.0)
    assert record["planning_s"] > 0


# ---- the search's rules, with the runs replaced: attainment from the replayed schedule ----------------------------
def fake_search(
    monkeypatch, attainment, rate_per_s: float = 20.0, capacity: float = 10.0, times: list[float] | None = None,
    duration_s: float = 600.0,
) -> ScenarioConfig:  # fmt: skip
    """Arrivals at ``times`` (default: flat at ``rate_per_s``) over ``duration_s``, a pod capacity of ``capacity``,
    and runs whose attainment is ``attainment(schedule)`` and chip-hours what the schedule's pods cost, each held
    for its whole interval (a constant count costs exactly that)."""
    scenario = spike({"process": "poisson", "rate_per_s": rate_per_s}, replicas=2, duration_s=duration_s)
    times = times if times is not None else [i / rate_per_s for i in range(int(rate_per_s * duration_s))]
    monkeypatch.setattr(oracle_module, "arrivals", lambda sc: [(t, 400, 150) for t in times])
    monkeypatch.setattr(oracle_module, "pod_capacity_per_s", lambda *args, **kwargs: capacity)
    chips = oracle_module._chips(scenario)

    def run(sc, progress=False, autoscaler=None):
        plan = autoscaler.plan
        chip_hours = sum(plan.schedule) * plan.interval_s / 3600 * chips
        return SimpleNamespace(kpis=SimpleNamespace(slo_attainment=attainment(plan.schedule), chip_hours=chip_hours))

    monkeypatch.setattr(oracle_module, "run_scenario", run)
    return scenario


def test_the_search_grows_headroom_past_its_list_until_a_plan_passes(monkeypatch):
    scenario = fake_search(monkeypatch, lambda s: 1.0 if min(s) >= 5 else 0.9)
    oracle = plan_oracle(scenario, OracleConfig(max_replicas=8))
    # 20/s over 10/s per pod: ceil(2·h) pods; 1.2-1.5 and 2.0 repeat a plan already checked; 2.5 = 2.0 · 1.25
    schedules = [(a.headroom, a.attainment) for a in oracle.plan.attempts if a.replicas is None]
    assert schedules == [(1.0, 0.9), (1.1, 0.9), (1.75, 0.9), (2.5, 1.0)]
    # the only constant cheaper than 5 pods throughout, 4, is the 1.75 schedule already checked: nothing more to run
    assert [a for a in oracle.plan.attempts if a.replicas is not None] == []
    assert oracle.plan.schedule == [5] * 10 and oracle.plan.headroom == 2.5 and oracle.plan.met_target


def test_constant_counts_are_tried_only_below_a_passing_schedules_cost_and_downward(monkeypatch):
    """On a day-long run each constant count is a day's simulation: under a passing schedule only the counts that
    would cost less are tried, from the dearest down until one misses."""
    times = [i / 10 for i in range(18_000)] + [1800 + i / 50 for i in range(90_000)]  # 30 min at 10/s, 30 at 50/s
    scenario = fake_search(monkeypatch, lambda s: 1.0 if sum(s) >= 150 else 0.9, times=times, duration_s=3600)
    oracle = plan_oracle(scenario, OracleConfig(max_replicas=8))
    [schedule] = [a for a in oracle.plan.attempts if a.replicas is None]  # 1 pod, then 5 a cold start ahead: passes
    per_pod = oracle_module._chips(scenario) * 1.0  # chip-hours of a pod held for the run's hour
    assert schedule.attainment == 1.0 and 3 * per_pod < schedule.chip_hours < 4 * per_pod
    constants = [(a.replicas, a.attainment) for a in oracle.plan.attempts if a.replicas is not None]
    assert constants == [(3, 1.0), (2, 0.9)]  # 4 pods would cost more than the schedule; below 2, no better
    assert oracle.plan.schedule == [3] * 60 and oracle.plan.met_target  # the cheapest that passed


def test_an_oracle_that_cannot_meet_its_target_says_so(monkeypatch):
    scenario = fake_search(monkeypatch, lambda s: {1: 0.6, 2: 0.7, 3: 0.8}[min(s)])  # never 0.99 within 3 pods
    with pytest.warns(OracleMissedTarget, match=r"missed its 99% SLO-attainment target: 80.0% at best"):
        oracle = plan_oracle(scenario, OracleConfig(max_replicas=3))
    tried = [(a.headroom, a.replicas, a.attainment) for a in oracle.plan.attempts]
    # schedules until their peak is max_replicas, then every constant count up to it not already checked
    assert tried == [(1.0, None, 0.7), (1.1, None, 0.8), (0.0, 1, 0.6)]
    assert not oracle.plan.met_target and oracle.plan.schedule == [3] * 10 and oracle.plan.attainment == 0.8
    record = oracle.plan_record()
    assert record["met_target"] is False and record["attainment"] == 0.8
    assert [a["replicas"] for a in record["attempts"]] == [None, None, 1]


def test_planning_shows_progress_only_when_asked(capsys):
    scenario = spike({"process": "poisson", "rate_per_s": 5.0}, replicas=1, duration_s=120)
    config = OracleConfig(capacity_probe_s=60, max_replicas=2)
    plan_oracle(scenario, config)
    assert capsys.readouterr().err == ""
    plan_oracle(scenario, config, progress=True)
    err = capsys.readouterr().err
    assert "oracle: capacity probe" in err and "oracle: plans tried" in err


def test_run_length_encodes_a_schedule_by_start_time():
    assert run_length([1, 1, 3, 3, 3, 2], 60.0) == [[0.0, 1], [120.0, 3], [300.0, 2]]
    assert run_length([], 60.0) == []

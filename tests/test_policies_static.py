"""A fixed replica count, and the search for the cheapest one that meets the SLO."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from rlscale.agents import load_agent
from rlscale.planning import static
from rlscale.planning.static import cheapest_static_replicas, meets_slo, search_static
from rlscale.pods import PodInfo
from rlscale.policies.base import ClusterState
from rlscale.policies.static import StaticPolicy
from rlscale.scenario import ScenarioConfig, ScheduleStep
from rlscale.simulation import Simulation
from rlscale.specs.catalog import SpecError

LENGTHS = {"kind": "fixed", "prompt_tokens": 400, "output_tokens": 150}


def poisson(rate_per_s: float, replicas: int = 1, duration_s: float = 300) -> ScenarioConfig:
    return ScenarioConfig.model_validate({
        "name": "poisson", "fleet": {"replicas": replicas},
        "workload": {"arrival": {"process": "poisson", "rate_per_s": rate_per_s}, "lengths": LENGTHS},
        "duration_s": duration_s,
    })  # fmt: skip


@pytest.fixture(scope="module")
def capacity() -> float:
    """One pod's SLO capacity: the highest Poisson rate (to 1/4 req/s) at which it meets 99% attainment."""
    lo, hi = 1.0, 64.0
    assert meets_slo(poisson(lo), 1, [0]) and not meets_slo(poisson(hi), 1, [0])
    while hi - lo > 0.25:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if meets_slo(poisson(mid), 1, [0]) else (lo, mid)
    return lo


def test_static_sets_its_count_once_and_then_holds_it():
    policy = StaticPolicy(3)
    pods = tuple(PodInfo(f"p{i}") for i in range(5))
    states = [ClusterState(t, n, n, pods[:n], metrics=None) for t, n in ((1.0, 1), (2.0, 3), (3.0, 5), (4.0, 2))]
    assert [policy.recommend(s) for s in states] == [3, None, None, None]
    with pytest.raises(ValueError, match="replicas must be >= 1"):
        StaticPolicy(0)


def test_static_through_the_loop_makes_one_scale_event():
    sim = Simulation.build(poisson(5.0, replicas=1, duration_s=120))
    sim.attach(StaticPolicy(2, sync_period_s=1.0))
    sim.run()
    assert [(e.time_s, e.from_replicas, e.to_replicas) for e in sim.fleet.scale_events] == [(1.0, 1, 2)]
    assert sim.fleet.desired == 2


@pytest.mark.slow
def test_cheapest_static_count_is_the_load_over_one_pods_capacity(capacity):
    rate = 2.5 * capacity  # two pods would each carry 1.25x their capacity, three 0.83x
    expected = math.ceil(rate / capacity)
    assert expected == 3
    assert cheapest_static_replicas(poisson(rate), seeds=[0, 1], max_replicas=6) == expected
    assert cheapest_static_replicas(poisson(rate), seeds=[0], max_replicas=expected - 1) is None


def test_the_search_needs_every_seed_and_stops_at_the_first_pass(monkeypatch):
    """With attainment given per (count, seed), the search's rule is plain to check."""
    attainment = {(1, 0): 0.2, (2, 0): 0.995, (2, 1): 0.98, (3, 0): 0.999, (3, 1): 0.99, (4, 0): 1.0, (4, 1): 1.0}
    runs = []

    def fake_run(scenario):
        runs.append((scenario.fleet.replicas, scenario.seed, scenario.schedule))
        kpis = SimpleNamespace(slo_attainment=attainment[(scenario.fleet.replicas, scenario.seed)], failed=0)
        return SimpleNamespace(kpis=kpis)

    monkeypatch.setattr(static, "run_scenario", fake_run)
    scheduled = poisson(1.0).model_copy(update={"schedule": [ScheduleStep(at_s=10, replicas=9)]})
    assert cheapest_static_replicas(scheduled, seeds=[0, 1], max_replicas=8) == 3  # 2 fails seed 1 (0.98)
    assert runs == [(1, 0, []), (2, 0, []), (2, 1, []), (3, 0, []), (3, 1, [])]  # no schedule; stops at 3
    assert cheapest_static_replicas(scheduled, seeds=[0, 1], max_replicas=8, slo_attainment=0.995) == 4
    assert cheapest_static_replicas(scheduled, seeds=[0], max_replicas=8, slo_attainment=0.995) == 2
    assert cheapest_static_replicas(scheduled, seeds=[0, 1], max_replicas=2) is None


def test_the_search_records_every_count_it_tried(monkeypatch, capsys):
    attainment = {(1, 0): 0.2, (2, 0): 0.995, (2, 1): 0.98, (3, 0): 0.999, (3, 1): 0.99}
    fake = SimpleNamespace(kpis=None)

    def fake_run(scenario):
        fake.kpis = SimpleNamespace(slo_attainment=attainment[(scenario.fleet.replicas, scenario.seed)])
        return fake

    monkeypatch.setattr(static, "run_scenario", fake_run)
    search = search_static(poisson(1.0), seeds=[0, 1], max_replicas=8, progress=True)
    assert search.replicas == 3
    assert search.tried == [(1, [0.2]), (2, [0.995, 0.98]), (3, [0.999, 0.99])]  # a count stops at its first miss
    assert "static: simulations run" in capsys.readouterr().err  # 5 runs
    record = search.record()
    assert record["met_target"] is True and record["seeds"] == [0, 1] and record["target"] == 0.99
    assert record["tried"][1] == {"replicas": 2, "attainment": [0.995, 0.98]}
    assert record["planning_s"] > 0
    search_static(poisson(1.0), seeds=[0, 1], max_replicas=8)
    assert capsys.readouterr().err == ""


@pytest.mark.slow
def test_agent_file_searches_the_scenario_or_takes_a_count(tmp_path, capacity):
    scenario = poisson(2.5 * capacity)
    searched = load_agent("agents/static.yaml", scenario)
    assert searched.replicas == 3  # seeds 0..2
    record = searched.plan_record()
    assert record["replicas"] == 3 and record["seeds"] == [0, 1, 2] and record["planning_s"] > 0
    assert [t["replicas"] for t in record["tried"]] == [1, 2, 3] and len(record["tried"][2]["attainment"]) == 3
    with pytest.raises(SpecError, match=r"static.yaml: spec.replicas: 'cheapest' .*pass the scenario"):
        load_agent("agents/static.yaml")
    fixed = tmp_path / "fixed.yaml"
    fixed.write_text("kind: StaticReplicas\nspec: {replicas: 4, max_replicas: 8}\n")
    assert load_agent(fixed).replicas == 4
    assert load_agent(fixed).plan_record() is None  # a count given was not planned
    hopeless = tmp_path / "hopeless.yaml"
    hopeless.write_text("kind: StaticReplicas\nspec: {replicas: cheapest, max_replicas: 2, seeds: [0]}\n")
    with pytest.raises(SpecError, match=r"hopeless.yaml: spec.replicas: no fixed count in \[1, 2\]"):
        load_agent(hopeless, scenario)
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: StaticReplicas\nspec: {replicas: 20, max_replicas: 8}\n")
    with pytest.raises(SpecError, match=r"bad.yaml: spec: .*replicas \(20\) must be within \[1, 8\]"):
        load_agent(bad)
    other = tmp_path / "other.yaml"
    other.write_text("kind: Deployment\n")
    with pytest.raises(SpecError, match="kind: expected HorizontalPodAutoscaler, KnativePodAutoscaler"):
        load_agent(other)

"""The production benchmark's pieces: the production-day scenarios (their starting fleets, the held-out and tuning
variants), a window of a day (``start_s``), files that ``extends:`` another, the share of the oracle's saving, and
day-long timelines that stay readable."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import yaml

from rlscale.agents import load_agent
from rlscale.data import read_extended
from rlscale.experiments.compare import compare
from rlscale.experiments.config import load_experiment
from rlscale.experiments.stats import Interval, mean_ci, pooled, pooled_share, saving_share, saving_shares
from rlscale.plots import scale_times, time_unit, timeline_plot, worst_hour
from rlscale.policies.hpa import HPAPolicy
from rlscale.scenario import load_scenario, on_split
from rlscale.specs.catalog import SpecError
from rlscale.workload.build import client_pool, request_stream
from rlscale.workload.specs import ServeGenSpec

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parents[1]
# One pod's capacity on the production day's busiest traffic, 99% within the SLOs (envs/production-day.yaml says how
# it was measured): what the starting fleets are sized by.
POD_CAPACITY_PER_S = 8.79
PRODUCTION = ("production-day", "production-day-heldout", "production-day-tune")


# ---- the scenarios -------------------------------------------------------------------------------------------------
def first_window_need(spec: ServeGenSpec) -> int:
    """Pods the first 10-minute window of a pool's traffic needs."""
    return math.ceil(client_pool(spec).window_rates()[0] / POD_CAPACITY_PER_S)


@pytest.mark.parametrize("name", PRODUCTION)
def test_a_production_run_starts_with_the_pods_its_first_window_needs(name):
    """A fleet short at the start misses the SLOs for a cold start (~7 min) whatever the policy (noise in a
    comparison); one too large hands every policy pods it did not ask for."""
    scenario = load_scenario(ROOT / "envs" / f"{name}.yaml")
    assert scenario.fleet.replicas == first_window_need(scenario.workload.arrival)


def test_the_held_out_scenario_is_the_production_day_on_split_heldout():
    day = load_scenario(ROOT / "envs" / "production-day.yaml")
    heldout = load_scenario(ROOT / "envs" / "production-day-heldout.yaml")
    assert heldout.name == "production-day-heldout"  # its own file's name, not the one it extends
    assert heldout.workload.arrival.day_range == (11, 11)
    same = on_split(day, "heldout").model_dump(exclude={"name", "description", "timeline_interval_s"})
    assert heldout.model_dump(exclude={"name", "description", "timeline_interval_s"}) == same


def test_the_tuning_window_is_the_training_days_evening():
    day = load_scenario(ROOT / "envs" / "production-day.yaml")
    tune = load_scenario(ROOT / "envs" / "production-day-tune.yaml")
    assert tune.workload.arrival.split == "train" and tune.workload.arrival.day_range == (2, 2)
    rates, evening = client_pool(day.workload.arrival).window_rates(), client_pool(tune.workload.arrival).window_rates()
    first = tune.workload.arrival.start_s // 600
    assert np.array_equal(evening, rates[first:])  # the same windows, from 16:00
    assert rates[first : first + int(tune.duration_s // 600)].max() == rates.max()  # the day's peak is in it


# ---- a window of a day -----------------------------------------------------------------------------------------------
def pool(**fields) -> ServeGenSpec:
    base = {"process": "servegen", "service": "m-small", "clients": {"top": 2}, "days": [2, 2], "rate_scale": 0.01}
    return ServeGenSpec.model_validate(base | fields)


def test_start_s_plays_the_day_from_that_time_with_the_same_clients_and_lengths():
    whole, evening = pool(), pool(start_s=57_600)
    assert evening.played_s == 86_400 - 57_600
    rates = client_pool(whole).window_rates()
    assert np.array_equal(client_pool(evening).window_rates(), rates[96:])
    from rlscale.workload.specs import WorkloadSpec

    requests = list(request_stream(WorkloadSpec(arrival=evening), np.random.SeedSequence(0), until_s=1200))
    times = np.array([r[0] for r in requests])
    assert times.min() >= 0 and len(times) == pytest.approx(rates[96:98].sum() * 600, rel=0.1)


@pytest.mark.parametrize(
    ("fields", "message"),
    [({"start_s": 100}, "multiple of 600"), ({"start_s": 86_400}, "not within the first day played")],
)
def test_start_s_is_a_whole_window_within_the_first_day(fields, message):
    with pytest.raises(ValueError, match=message):
        pool(**fields)


def test_a_run_may_not_outlast_a_window_of_a_day_and_on_split_keeps_the_time_of_day():
    tune = load_scenario(ROOT / "envs" / "production-day-tune.yaml")
    with pytest.raises(ValueError, match=r"runs past the 28800 s of days \(2, 2\) \(from 57600 s into the first\)"):
        tune.model_validate(tune.model_dump() | {"duration_s": 30_000})
    heldout = on_split(tune, "heldout")
    assert heldout.workload.arrival.start_s == 57_600 and heldout.duration_s == tune.duration_s


# ---- files that extend another -------------------------------------------------------------------------------------
def test_an_extending_file_is_its_base_with_its_own_fields_over_it(tmp_path):
    (tmp_path / "base.yaml").write_text("name: base\nfleet: {replicas: 2, routing: random}\nduration_s: 60\n")
    (tmp_path / "mid.yaml").write_text("extends: base.yaml\nfleet: {replicas: 3}\n")
    (tmp_path / "top.yaml").write_text("extends: mid.yaml\nduration_s: 120\n")
    assert read_extended(tmp_path / "top.yaml", own=("name",)) == {
        "fleet": {"replicas": 3, "routing": "random"}, "duration_s": 120,
    }  # fmt: skip
    scenario = load_scenario(tmp_path / "top.yaml")
    assert (scenario.name, scenario.fleet.replicas, scenario.duration_s) == ("top", 3, 120)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("extends: a.yaml\n", r"a.yaml: extends: a.yaml extends back to .*a.yaml \(a cycle\)"),
        ("extends: [base.yaml]\n", "extends: expected the name of a file"),
        ("extends: nowhere.yaml\n", "extends: no such file 'nowhere.yaml'"),
    ],
)
def test_a_bad_extends_is_refused_naming_the_file(tmp_path, text, message):
    (tmp_path / "a.yaml").write_text(text)
    with pytest.raises(SpecError, match=message):
        read_extended(tmp_path / "a.yaml")


def test_the_production_agents_are_the_shipped_ones_with_room_for_the_held_out_peak():
    scenario = load_scenario(ROOT / "envs" / "production-day-heldout.yaml").model_copy(update={"duration_s": 600.0})
    folder = ROOT / "agents" / "production"
    for path in sorted(folder.glob("hpa-*.yaml")):
        production = HPAPolicy.from_file(path)
        shipped = HPAPolicy.from_file(ROOT / "agents" / path.name)
        assert production.controller.spec.max_replicas == 32 and shipped.controller.spec.max_replicas == 16
        assert production.controller.spec.metrics == shipped.controller.spec.metrics
    for name in ("kpa-prefill-backlog", "saturation", "predictive"):
        assert load_agent(folder / f"{name}.yaml", scenario).config.max_replicas == 32
    assert load_agent(folder / "predictive.yaml", scenario).config.capacity_per_pod_per_s == POD_CAPACITY_PER_S


# ---- the share of the oracle's saving ------------------------------------------------------------------------------
def test_the_share_of_the_oracles_saving_on_hand_made_numbers():
    static = [(100.0, 0.990), (110.0, 0.992)]
    oracle = [(60.0, 0.995), (70.0, 0.996)]  # saves 40 on either seed
    policy = [(80.0, 0.991), (80.0, 0.995)]  # saves 20 and 30
    share = saving_share(policy, static, oracle)
    assert share.mean == pytest.approx((105 - 80) / (105 - 65))  # 62.5%: the mean costs' share
    assert share.missing is None and share.per_seed == mean_ci([0.5, 0.75])
    assert saving_share(static, static, oracle).mean == 0.0 and saving_share(oracle, static, oracle).mean == 1.0
    dearer = saving_share([(125.0, 0.999), (125.0, 0.999)], static, oracle)
    assert dearer.mean == pytest.approx(-0.5)  # costs more than the static count: a negative share
    misses = saving_share([(50.0, 0.95), (50.0, 0.99)], static, oracle)
    assert misses.missing == "misses" and math.isnan(misses.mean)  # cheaper than the oracle by missing more
    nothing = saving_share(policy, static, [(100.0, 1.0), (110.0, 1.0)])
    assert nothing.missing == "no saving"


def test_shares_pair_the_runs_of_each_scenario_by_seed():
    rows = [
        {"scenario": s, "agent": a, "seed": seed, "cost_usd": cost, "slo_attainment": 0.99}
        for s in ("day", "week")
        for a, costs in (("static", (100, 110)), ("oracle", (60, 70)), ("hpa", (90, 70)))
        for seed, cost in zip((1, 0), costs, strict=True)  # seed order differs from the rows' order
    ]
    rows = [r for r in rows if not (r["scenario"] == "week" and r["agent"] == "oracle")]
    shares = saving_shares(rows, "static", "oracle")
    assert set(shares) == {("day", "static"), ("day", "oracle"), ("day", "hpa")}  # no oracle in week: no share
    assert shares["day", "hpa"].per_seed == mean_ci([(100 - 90) / 40, (110 - 70) / 40])


def test_a_training_recipe_pools_its_seeds_policies_with_an_interval_over_them():
    """Three policies of one recipe (training seeds), each already a mean over evaluation seeds: the pooled row is the
    mean of their means ± t(0.975, 2)·s/√3 over them; its share of the oracle's saving the pooled mean cost's, its
    interval over the three shares; *misses* when their mean attainment is below the static count's."""
    rows = [{"cost_usd": Interval(c, 5.0, 5), "slo_attainment": Interval(a, 0.001, 5)} for c, a in
            ((80.0, 0.995), (90.0, 0.993), (85.0, 0.991))]  # fmt: skip
    row = pooled(rows)
    assert row["cost_usd"].mean == pytest.approx(85.0) and row["cost_usd"].n == 3
    assert row["cost_usd"].half_width == pytest.approx(4.302653 * 5.0 / math.sqrt(3), rel=1e-6)  # s = 5
    means = [(r["cost_usd"].mean, r["slo_attainment"].mean) for r in rows]
    share = pooled_share(means, static=(100.0, 0.992), oracle_cost=60.0)  # shares 0.5, 0.25, 0.375
    assert share.mean == pytest.approx(0.375) and share.per_seed == mean_ci([0.5, 0.25, 0.375])
    assert pooled_share(means, static=(100.0, 0.994), oracle_cost=60.0).missing == "misses"  # 99.3% < 99.4%


@pytest.mark.parametrize(
    ("pools", "message"),
    [
        ({"recipe": ["learned", "static"]}, "training_seeds.recipe: 'static' is not one of the agents"),
        ({"static.production": ["predictive", "learned"]}, "training_seeds.static.production: the row's name is"),
        ({"pooled": ["learned"]}, "training_seeds.pooled: needs two or more different agents"),
        ({"pooled": ["learned", "learned"]}, "training_seeds.pooled: needs two or more different agents"),
    ],
)
def test_a_training_seeds_row_names_two_or_more_of_the_experiments_agents(tmp_path, pools, message):
    data = yaml.safe_load((ROOT / "experiments" / "production.yaml").read_text()) | {"training_seeds": pools}
    data["scenarios"] = [str(ROOT / p) for p in data["scenarios"]]
    data["agents"] = [str(ROOT / p) for p in data["agents"]]
    path = tmp_path / "pools.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError) as err:
        load_experiment(path)
    assert str(path) in str(err.value) and message in str(err.value)


# ---- readable day-long timelines -----------------------------------------------------------------------------------
def synthetic_day(hours: float = 24.0, interval_s: float = 300.0) -> list[dict[str, float]]:
    """A timeline of ``hours``: 10 pods at 80 req/s, the count stepping up in hour 20, SLOs broken in hour 17."""
    rows = []
    for k in range(1, int(hours * 3600 / interval_s) + 1):
        t = k * interval_s
        bad = 17 * 3600 < t <= 18 * 3600
        rows.append({
            "t_s": t, "desired": 10 + (t > 20 * 3600), "pending": 0, "starting": 0, "ready": 10, "restarting": 0,
            "terminating": 0, "nodes": 10, "arrivals": 80 * interval_s, "completed": 80 * interval_s, "failed": 0,
            "truncated": 0, "ooms": int(k == 30), "gateway_queue": 0, "prefill_backlog": 0, "slots_used": 0.2,
            "hbm_used_frac": 0.18, "ttft_p50_s": 0.2, "ttft_p99_s": 9.0 if bad else 0.4, "tpot_p99_s": 0.05,
            "cost_usd": 0.1 * k,
        })  # fmt: skip
    return rows


def test_a_time_axis_reads_minutes_hours_or_days_as_the_run_is_long():
    assert time_unit(3600) == (60.0, "min") and time_unit(86_400) == (3600.0, "h")
    assert time_unit(7 * 86_400) == (86_400.0, "days")


def test_the_worst_hour_is_where_requests_missed_the_ttft_slo():
    rows = synthetic_day()
    assert worst_hour(rows, slo_ttft_s=2.0) == (17 * 3600, 18 * 3600)
    assert scale_times(rows) == [20 * 3600 + 300]
    assert worst_hour(synthetic_day(hours=1.0), slo_ttft_s=2.0) is None  # nothing to zoom on in an hour


def test_a_day_long_timeline_reads_in_hours_with_a_zoom_on_its_worst_hour(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    figures = {}
    monkeypatch.setattr(plt.Figure, "savefig", lambda fig, path, **kw: figures.__setitem__(Path(path).name, fig))
    written = timeline_plot(synthetic_day(), tmp_path / "timeline.png", "day", 2.0, 0.2)
    assert [p.name for p in written] == ["timeline.png", "timeline_worst_hour.png"]
    day = figures["timeline.png"].axes
    assert day[-1].get_xlabel() == "time (h)"
    ticks = [t for t in day[-1].get_xticks() if 0 <= t <= 24]
    assert ticks[0] == 0 and ticks[-1] == 24 and all(float(t).is_integer() for t in ticks)  # whole hours
    assert any(h in (3, 6) for h in np.diff(ticks))  # every 3 or 6 hours, not every 200 minutes
    labels = [t.get_text() for t in day[0].get_legend().get_texts()]
    assert "scale events (1)" in labels and "OOM crashes (1)" in labels
    zoom = figures["timeline_worst_hour.png"].axes[-1]
    assert zoom.get_xlabel() == "simulated time (hh:mm)"
    assert zoom.get_xlim() == (17 * 60, 18 * 60)  # the hour, in minutes
    week = tmp_path / "week.png"
    timeline_plot(synthetic_day(hours=24 * 5, interval_s=3600), week, "week", 2.0, 0.2)
    assert figures["week.png"].axes[-1].get_xlabel() == "time (days)"


# ---- the experiment, on a production-shaped fixture ------------------------------------------------------------------
TUNING_SEEDS = {0, 1, 2}  # the HPAs were tuned on seeds 0-1 of the training day, the static count searched on 0-2


def test_the_production_experiment_evaluates_only_on_held_out_days_and_seeds():
    experiment = load_experiment(ROOT / "experiments" / "production.yaml")
    assert all(s.workload.arrival.split == "heldout" for s in experiment.scenarios)
    assert len(experiment.seeds) >= 5 and TUNING_SEEDS.isdisjoint(experiment.seeds)
    names = set(experiment.agent_names)
    guide = {f"{hpa}.production" for hpa in ("hpa-prefill-backlog", "hpa-slots-used", "hpa-hbm", "hpa-combined")}
    assert guide | {"kpa-prefill-backlog", "saturation", "predictive", "static.production", "oracle"} <= names
    # the share of the oracle's saving is over the best static count of the day judged, which only hindsight finds
    assert experiment.config.oracle_saving.static == "static-hindsight"
    hindsight = ROOT / "agents" / "production" / "static-hindsight.yaml"
    assert "production-day-heldout" in hindsight.read_text().split("\napiVersion")[0]  # says where it was found
    assert isinstance(read_extended(hindsight)["spec"]["replicas"], int)
    for path in experiment.agent_paths:
        text, doc = path.read_text(), read_extended(path)
        if path.parent.name == "tuned":  # tuned or searched on the training day, and says how
            assert "envs/production-day" in text and "heldout" not in text.split("\napiVersion")[0]
        spec = doc.get("spec", {})
        assert spec.get("maxReplicas", spec.get("max_replicas", 32)) == 32
    static = read_extended(ROOT / "agents" / "tuned" / "static.production.yaml")["spec"]["replicas"]
    assert isinstance(static, int)  # a count found before, not a search on the held-out day


@pytest.fixture(scope="module")
def tiny_production(tmp_path_factory):
    """experiments/production.yaml's agents on a production-shaped fixture: held-out day 11 from 14:00 for 3.5 hours
    (its peak at 17:30 included), its two busiest clients at 0.4% of their rate (about 2-9 req/s), two seeds."""
    folder = tmp_path_factory.mktemp("production")
    shipped = load_experiment(ROOT / "experiments" / "production.yaml")
    scenario = folder / "tiny-day.yaml"
    scenario.write_text(yaml.safe_dump({
        "extends": str(ROOT / "envs" / "production-day-heldout.yaml"),
        "fleet": {"replicas": 1},
        "workload": {"arrival": {"clients": {"top": 2}, "rate_scale": 0.004, "start_s": 50_400}},
        "duration_s": 12_600,
    }))  # fmt: skip
    fields = shipped.config.model_dump(mode="json") | {
        "name": "tiny-production", "scenarios": [str(scenario)], "agents": [str(p) for p in shipped.agent_paths],
        "seeds": [0, 1],
    }  # fmt: skip
    path = folder / "tiny-production.yaml"
    path.write_text(yaml.safe_dump(fields))
    return shipped, compare(path, folder / "out", progress=False)


@pytest.mark.slow
def test_the_production_experiment_runs_and_reports_each_policys_share_of_the_oracles_saving(tiny_production):
    shipped, comparison = tiny_production
    assert len(comparison.records) == len(shipped.agent_names) * 2
    report = (comparison.out / "report.md").read_text()
    header = next(line for line in report.splitlines() if line.startswith("| agent |"))
    assert header.split(" | ")[4] == "oracle's saving %"  # after cost, chip-hours and SLO attainment
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in report.splitlines() if line.startswith("| ")}
    assert rows["static-hindsight"][4] == "0 [0, 0]"
    results = list(csv.DictReader((comparison.out / "results.csv").open()))

    def attained(agent: str) -> float:
        return np.mean([float(r["slo_attainment"]) for r in results if r["agent"] == agent])

    oracle_share = "100 [100, 100]" if attained("oracle") >= attained("static-hindsight") else "n/a: misses"
    assert rows["oracle"][4] == oracle_share  # the oracle too saves only at equal-or-better attainment
    assert all(rows[a][4] != "n/a" for a in shipped.agent_names)  # a share, or why there is none
    assert "(static-hindsight − agent) / (static-hindsight − oracle)" in report
    pools = shipped.config.training_seeds
    assert list(pools) == ["learned-seeds"]  # one row over the learned policy's training seeds

    def cost(row: list[str]) -> float:
        return float(row[1].split(" ± ")[0].replace(",", ""))

    members = pools["learned-seeds"]
    pooled_row = rows[f"**learned-seeds** ({len(members)} training seeds: {', '.join(members)})"]
    assert cost(pooled_row) == pytest.approx(np.mean([cost(rows[a]) for a in members]), abs=0.01)
    assert "interval over the policies (Student t, training seeds − 1 degrees of freedom)" in report
    for figure in ("timelines_tiny-day.png", "worst_hours_tiny-day.png"):
        assert (comparison.out / figure).stat().st_size > 20_000 and f"]({figure})" in report

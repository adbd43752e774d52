"""``rlscale compare``: experiment files refused with the field named, a tiny experiment end to end, the
intervals against a hand computation, and the same numbers whatever the worker count."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rlscale.experiments.compare import compare
from rlscale.experiments.config import load_experiment
from rlscale.experiments.report import REPORT_COLUMNS, cell
from rlscale.experiments.runner import RunFailed
from rlscale.experiments.stats import flatten_kpis, mean_ci, pareto_front
from rlscale.specs.catalog import SpecError

ROOT = Path(__file__).resolve().parents[1]
AGENTS = ("agents/hpa-prefill-backlog.yaml", "agents/hpa-slots-used.yaml")


def write_experiment(folder: Path, name: str = "tiny", **fields) -> Path:
    """A tiny experiment (1 scenario of 120 s, 2 agents, 2 seeds, 2 workers) with absolute paths; ``fields``
    replace its entries."""
    data = {
        "name": name,
        "scenarios": [str(ROOT / "envs" / "steady.yaml")],
        "agents": [str(ROOT / a) for a in AGENTS],
        "seeds": [0, 1],
        "duration_s": 120,
        "workers": 2,
    } | fields
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny experiment, run once on two processes, untracked."""
    folder = tmp_path_factory.mktemp("compare")
    return compare(write_experiment(folder), folder / "out", progress=False)


# ---- experiment files ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"seed": [1]}, "seed: Extra inputs are not permitted"),
        ({"seeds": []}, "seeds: List should have at least 1 item"),
        ({"seeds": [0, -1]}, "seeds.1: Input should be greater than or equal to 0"),
        ({"seeds": [0, 1, 1]}, "seeds: Value error, listed more than once: 1"),
        ({"workers": 0}, "workers: Input should be greater than or equal to 1"),
        ({"duration_s": -5}, "duration_s: Input should be greater than 0"),
        ({"name": "has space"}, "name: String should match pattern"),
        ({"scenarios": ["envs/no-such.yaml"]}, "scenarios[0]: no such file 'envs/no-such.yaml'"),
        ({"agents": [str(ROOT / AGENTS[0]), "agents/nope.yaml"]}, "agents[1]: no such file 'agents/nope.yaml'"),
        ({"agents": [str(ROOT / AGENTS[0])] * 2}, "agents: Value error, listed more than once"),
    ],
)
def test_bad_experiment_is_refused_naming_file_and_field(tmp_path, fields, message):
    path = write_experiment(tmp_path, **fields)
    with pytest.raises(SpecError) as err:
        load_experiment(path)
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_a_bad_scenario_is_refused_naming_the_entry_and_its_field(tmp_path):
    bad = tmp_path / "bad-scenario.yaml"
    bad.write_text("pod: {per_device_batch_sise: 4}\n")
    with pytest.raises(SpecError, match=r"scenarios\[0\]: .*pod.per_device_batch_sise: Extra inputs"):
        load_experiment(write_experiment(tmp_path, scenarios=[str(bad)]))


def test_agents_sharing_a_name_are_refused(tmp_path):
    (tmp_path / "agents").mkdir()
    twin = tmp_path / "agents" / "hpa-slots-used.yaml"
    twin.write_text((ROOT / AGENTS[1]).read_text())
    with pytest.raises(SpecError, match="agents: two entries share the name 'hpa-slots-used'"):
        load_experiment(write_experiment(tmp_path, agents=[str(ROOT / AGENTS[1]), "agents/hpa-slots-used.yaml"]))


def test_paths_resolve_from_the_yaml_folder_then_the_project_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the project: the shipped experiments resolve from the project root
    smoke = load_experiment(ROOT / "experiments" / "smoke.yaml")
    assert smoke.scenario_paths[0] == ROOT / "envs" / "steady.yaml"
    assert smoke.agent_names[:2] == ("hpa-prefill-backlog", "hpa-slots-used")
    assert all(s.duration_s == 1200 for s in smoke.scenarios)
    local = tmp_path / "mine.yaml"
    local.write_text((ROOT / "envs" / "steady.yaml").read_text().replace("name: steady", "name: mine"))
    experiment = load_experiment(write_experiment(tmp_path, scenarios=["mine.yaml"]))
    assert experiment.scenario_paths == (local,) and experiment.scenario_names == ("mine",)
    guide = load_experiment(ROOT / "experiments" / "guide-baselines.yaml")
    assert guide.scenario_names == ("steady", "diurnal", "flash-crowd", "azure-trace")
    assert len(guide.seeds) >= 5


# ---- statistics ---------------------------------------------------------------------------------------------------
def test_interval_matches_a_hand_computed_student_t():
    # 1, 2, 3, 4: mean 2.5, s = sqrt(5/3) = 1.29099, s/sqrt(4) = 0.645497; t(0.975, 3 dof) = 3.182446 (tables)
    interval = mean_ci([1.0, 2.0, 3.0, 4.0])
    assert interval.mean == pytest.approx(2.5)
    assert interval.half_width == pytest.approx(3.182446 * 0.645497, rel=1e-5)
    assert (interval.low, interval.high, interval.n) == (pytest.approx(0.44574, rel=1e-5), pytest.approx(4.55426), 4)
    # 5 seeds: t(0.975, 4) = 2.776445; values 10, 12, 11, 13, 9: s = sqrt(2.5)
    assert mean_ci([10, 12, 11, 13, 9]).half_width == pytest.approx(2.776445 * math.sqrt(2.5) / math.sqrt(5), rel=1e-6)
    assert mean_ci([7.0, 7.0, 7.0]).half_width == 0.0
    lone = mean_ci([3.0, float("nan")])  # a run that measured nothing is left out, not counted as zero
    assert lone.mean == 3.0 and lone.n == 1 and math.isnan(lone.half_width)
    assert cell(lone, str) == "3.0" and cell(mean_ci([]), str) == "n/a"


def test_flatten_keeps_units_last_and_slugs_failure_kinds():
    flat = flatten_kpis({"ttft_s": {"p50": 1.0, "p99": 2.0}, "failures": {"no ready pod": 3}, "cost_usd": 4.0})
    assert flat == {"ttft_p50_s": 1.0, "ttft_p99_s": 2.0, "failures_no_ready_pod": 3, "cost_usd": 4.0}


def test_pareto_front_keeps_the_undominated_points_by_cost():
    points = [(10.0, 0.90), (5.0, 0.80), (12.0, 0.85), (5.0, 0.70), (20.0, 0.99), (float("nan"), 1.0)]
    assert pareto_front(points) == [1, 0, 4]


# ---- a whole comparison ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_tiny_experiment_writes_results_report_and_plots(tiny):
    rows = read_rows(tiny.out / "results.csv")
    assert len(rows) == 1 * 2 * 2
    assert [(r["scenario"], r["agent"], r["seed"]) for r in rows] == [
        ("steady", "hpa-prefill-backlog", "0"),
        ("steady", "hpa-prefill-backlog", "1"),
        ("steady", "hpa-slots-used", "0"),
        ("steady", "hpa-slots-used", "1"),
    ]
    for column in ("cost_usd", "chip_hours", "slo_attainment", "ttft_p99_s", "tpot_p50_s", "latency_p95_s", "ooms"):
        assert column in rows[0]
    assert all(float(r["duration_s"]) == 120 for r in rows)
    report = (tiny.out / "report.md").read_text()
    assert "## steady" in report and "| hpa-slots-used |" in report and "only 2 seed(s)" in report
    # the report's cost cell is the t-interval over the CSV's per-seed costs
    costs = [float(r["cost_usd"]) for r in rows if r["agent"] == "hpa-prefill-backlog"]
    cost_column = next(c for c in REPORT_COLUMNS if c.column == "cost_usd")
    assert f"| hpa-prefill-backlog | {cell(mean_ci(costs), cost_column.fmt)} |" in report
    for name in ("pareto.png", "timelines_steady.png"):
        assert (tiny.out / name).stat().st_size > 20_000
        assert f"]({name})" in report
    timelines = sorted(p.name for p in (tiny.out / "timelines").iterdir())
    assert timelines[0] == "steady__hpa-prefill-backlog__seed0.csv" and len(timelines) == 4
    assert len(read_rows(tiny.out / "timelines" / timelines[0])) == 2  # two minutes


@pytest.mark.slow
def test_same_numbers_whatever_the_worker_count(tiny, tmp_path):
    serial = compare(tiny.experiment, tmp_path / "serial", workers=1, progress=False)

    def dumped(records) -> list[str]:  # JSON writes NaN as NaN, so equal runs compare equal
        return [json.dumps((r.label, r.kpis, r.timeline), sort_keys=True) for r in records]

    assert dumped(serial.records) == dumped(tiny.records)

    def numbers(out: Path) -> list[dict[str, str]]:
        return [{k: v for k, v in row.items() if k != "wall_s"} for row in read_rows(out / "results.csv")]

    assert numbers(serial.out) == numbers(tiny.out)
    assert tiny.records[0].kpis != tiny.records[1].kpis  # the seed matters


def test_a_failing_run_names_itself(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: Deployment\n")  # a mapping, so it loads; the agent loader refuses it in the run
    with pytest.raises(RunFailed, match=r"steady__broken__seed0: SpecError: .*kind"):
        compare(write_experiment(tmp_path, agents=[str(broken)], seeds=[0], workers=1), tmp_path / "o", progress=False)


def test_compare_cli_refuses_a_bad_experiment(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "rlscale", "compare", str(write_experiment(tmp_path, seeds=[]))],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2 and "seeds: List should have at least 1 item" in out.stderr

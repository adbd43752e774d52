"""Planners say what they chose and how long it took: the oracle's and the static search's plan in summary.json
(``rlscale simulate``) and in a comparison (results.csv, report.md, MLflow's metrics), with a plain line wherever
the oracle's checked plan missed its own target."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from rlscale.cli import app
from rlscale.experiments.compare import compare
from rlscale.planning.oracle import OracleMissedTarget
from tests.test_compare import write_experiment

pytestmark = [
    pytest.mark.slow,  # oracle and static searches through simulate and compare
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy"),  # inside MLflow's SQL store
]
ROOT = Path(__file__).resolve().parents[1]
LOAD = {  # 30 req/s of 400-token prompts: more than one pod can serve (about 15/s)
    "name": "small",
    "fleet": {"replicas": 2, "routing": "least-outstanding",
              "lifecycle": {"node_provisioning": {"kind": "fixed", "seconds": 120.0}}},
    "workload": {"arrival": {"process": "poisson", "rate_per_s": 30.0},
                 "lengths": {"kind": "fixed", "prompt_tokens": 400, "output_tokens": 150}},
    "duration_s": 300,
}  # fmt: skip


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """The scenario, and an oracle that cannot meet its target: one pod at most for two pods' load."""
    folder = tmp_path_factory.mktemp("planners")
    scenario = folder / "small.yaml"
    scenario.write_text(yaml.safe_dump(LOAD))
    hopeless = folder / "oracle-one-pod.yaml"
    hopeless.write_text("kind: ClairvoyantOracle\nspec: {max_replicas: 1, capacity_probe_s: 120}\n")
    return {"scenario": scenario, "hopeless": hopeless}


def simulate(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["simulate", *args])
    return result.exit_code, result.stdout, result.stderr


def test_simulate_records_the_oracles_plan_and_planning_time(files, tmp_path):
    code, out, err = simulate("--scenario", str(files["scenario"]), "--agent", str(ROOT / "agents/oracle.yaml"),
                              "--out", str(tmp_path / "run"))  # fmt: skip
    assert code == 0, out + err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    plan = summary["agent_plan"]
    assert plan["kind"] == "ClairvoyantOracle" and plan["met_target"] is True and plan["target"] == 0.99
    assert plan["attainment"] == summary["kpis"]["slo_attainment"]  # the checked plan is the run
    assert plan["interval_s"] == 60 and plan["lead_s"] > 0 and plan["capacity_per_s"] > 0
    assert plan["schedule"][0][0] == 0 and all(n >= 1 for _, n in plan["schedule"])
    assert {"headroom", "replicas", "attainment", "chip_hours"} <= set(plan["attempts"][0])
    assert summary["planning_s"] == plan["planning_s"] > 0
    assert summary["total_s"] == pytest.approx(summary["wall_s"] + summary["planning_s"])
    assert f"planned    in {plan['planning_s']:.1f} s by ClairvoyantOracle" in out and "MISSED" not in out
    assert "oracle: capacity probe" in err and "oracle: plans tried" in err  # progress, on stderr


def test_simulate_says_loudly_when_the_oracle_missed_its_target(files, tmp_path):
    with pytest.warns(OracleMissedTarget, match="missed its 99% SLO-attainment target"):  # stderr, outside pytest
        code, out, err = simulate("--scenario", str(files["scenario"]), "--agent", str(files["hopeless"]),
                                  "--out", str(tmp_path / "run"))  # fmt: skip
    assert code == 0, out + err
    plan = json.loads((tmp_path / "run" / "summary.json").read_text())["agent_plan"]
    assert plan["met_target"] is False and plan["attainment"] < 0.99
    assert [a["replicas"] for a in plan["attempts"]] == [None]  # one pod at most: one plan to check
    target = "MISSED     ClairvoyantOracle's checked plan missed its 99% SLO-attainment target"
    assert f"{target} ({plan['attainment']:.1%} at best)" in out


def test_simulate_json_records_the_static_search_without_progress(files, tmp_path):
    code, out, err = simulate("--scenario", str(files["scenario"]), "--agent", str(ROOT / "agents/static.yaml"),
                              "--duration", "120", "--json", "--out", str(tmp_path / "run"))  # fmt: skip
    assert code == 0, out + err
    printed = json.loads(out)
    plan = printed["agent_plan"]
    assert plan["kind"] == "StaticReplicas" and plan["seeds"] == [0, 1, 2] and plan["met_target"] is True
    assert [t["replicas"] for t in plan["tried"]][-1] == plan["replicas"] >= 2  # one pod cannot carry 30 req/s
    assert len(plan["tried"][-1]["attainment"]) == 3 and min(plan["tried"][-1]["attainment"]) >= 0.99
    assert printed["planning_s"] == plan["planning_s"] > 0
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["agent_plan"] == plan
    assert "static: simulations run" not in err  # --json: no progress


def test_a_comparison_says_when_the_oracle_missed_its_target(files, tmp_path):
    agents = [str(files["hopeless"]), str(ROOT / "agents/hpa-prefill-backlog.yaml")]
    experiment = write_experiment(tmp_path, scenarios=[str(files["scenario"])], agents=agents, seeds=[0, 1],
                                  duration_s=120, workers=1)  # fmt: skip
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.warns(OracleMissedTarget, match="missed its 99% SLO-attainment target"):
        result = compare(experiment, tmp_path / "out", progress=False, tracking_uri=uri)
    with (tmp_path / "out" / "results.csv").open() as f:
        rows = {(r["agent"], r["seed"]): r for r in csv.DictReader(f)}
    oracle, hpa = rows[("oracle-one-pod", "0")], rows[("hpa-prefill-backlog", "0")]
    assert oracle["plan_met_target"] == "False" and hpa["plan_met_target"] == ""
    assert float(oracle["planning_s"]) > 0 and float(hpa["planning_s"]) == 0
    records = {(r.agent, r.seed): r for r in result.records}
    assert records[("oracle-one-pod", 0)].plan["met_target"] is False
    report = (tmp_path / "out" / "report.md").read_text()
    table, after = report.split("| oracle-one-pod **(missed its target)** |")
    attained = ", ".join(f"{100 * records[('oracle-one-pod', s)].plan['attainment']:.1f}%" for s in (0, 1))
    line = "**oracle-one-pod missed its own 99% SLO-attainment target** on seed(s) 0, 1: its checked plan attained "
    assert line + attained in after.split("## ")[0]  # under its scenario's table
    assert "| hpa-prefill-backlog |" in report and "planning s" in table
    client = MlflowClient(tracking_uri=uri)
    children = client.search_runs(
        [client.get_run(result.mlflow_run_id).info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{result.mlflow_run_id}'",
    )
    logged = {c.info.run_name: c.data.metrics for c in children}
    for record in records.values():
        assert logged[record.label]["sim/planning_s"] == pytest.approx(record.planning_s)
        assert logged[record.label].get("plan/met_target") == (0.0 if record.agent == "oracle-one-pod" else None)

"""Training sweeps: a grid × seeds of tiny PPO runs gives the same results on the local pool and on Ray (a worker
killed mid-sweep included), logs one MLflow run per cell under the sweep's run, puts the alias on the best
setting's best seed, and resumes without training or logging a finished cell again."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from rlscale.experiments.executors import FAIL_ONCE_ENV, LocalExecutor
from rlscale.specs.catalog import SpecError
from rlscale.training.sweep import parse_grid, setting_label, settings_of, sweep
from tests.helpers import RefusingExecutor
from tests.test_training import LIGHT, STATIC_12, TINY_PPO, write_yaml

GRID = ["hyperparams.learning_rate=[1e-4, 1e-3]"]
SEEDS = [0, 1]
STEPS = 256  # one PPO update of n_steps 256, then the held-out evaluation (2 episodes of 300 s)
VARYING = ("wall_s", "steps_per_s", "run_id", "model_version", "folder")  # the columns equal sweeps may differ in


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("sweep")
    write_yaml(folder / "static12.yaml", STATIC_12)  # the agent file's evaluation baseline
    return {
        "folder": folder,
        "scenario": write_yaml(folder / "light.yaml", LIGHT),
        "agent": write_yaml(folder / "ppo-tiny.yaml", TINY_PPO),
        "tracking_uri": f"sqlite:///{folder / 'mlflow.db'}",
    }


def run_sweep(files, out: Path, executor, **kwargs):
    return sweep(
        files["agent"], files["scenario"], SEEDS, parse_grid(GRID), timesteps=STEPS, eval_every=0, out=out,
        executor=executor, progress=False, **kwargs,
    )  # fmt: skip


def table(out: Path) -> list[dict[str, str]]:
    with (out / "sweep.csv").open() as f:
        return [{k: v for k, v in row.items() if k not in VARYING} for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def tracked(files):
    """The sweep on a local pool of 2, tracked in a throwaway SQLite store."""
    with LocalExecutor(2) as pool:
        return run_sweep(files, files["folder"] / "local", pool, tracking_uri=files["tracking_uri"])


def children(files, parent_id: str) -> list:
    client = MlflowClient(files["tracking_uri"], registry_uri=files["tracking_uri"])
    experiment = client.get_experiment_by_name("train-light")
    return client.search_runs([experiment.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'")


def test_grid_options_parse_and_name_their_problems():
    grid = parse_grid(["hyperparams.learning_rate=[1e-4, lin_3e-4]", "env_kwargs.max_delta=2",
                       "hyperparams.policy_kwargs.net_arch=[[64, 64], [128]]"])  # fmt: skip
    assert grid == [
        ("hyperparams.learning_rate", [1e-4, "lin_3e-4"]), ("env_kwargs.max_delta", [2]),
        ("hyperparams.policy_kwargs.net_arch", [[64, 64], [128]]),
    ]  # fmt: skip
    combos = settings_of(grid)
    assert len(combos) == 4 and combos[0][0] == ("hyperparams.learning_rate", 1e-4)
    assert setting_label(combos[1]) == "learning_rate=0.0001__max_delta=2__net_arch=128"
    assert settings_of([]) == [()] and setting_label(()) == "base"
    for bad, message in (("learning_rate", "expected <spec path>=<YAML value>"), ("a..b=1", "expected"),
                         ("gamma=[]", "an empty list"), ("gamma=[0.9", "not a YAML value")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            parse_grid([bad])
    with pytest.raises(ValueError, match="given twice"):
        parse_grid(["gamma=0.9", "gamma=0.99"])


def test_a_bad_setting_is_refused_before_anything_trains(files, tmp_path):
    with pytest.raises(SpecError, match=r"--set hyperparams.learnin_rate: .*did you mean learning_rate"):
        sweep(files["agent"], files["scenario"], SEEDS, parse_grid(["hyperparams.learnin_rate=[0.1]"]),
              out=tmp_path / "bad", executor=RefusingExecutor(), progress=False)  # fmt: skip
    assert not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_every_cell_is_tracked_under_the_sweep_and_the_alias_goes_to_the_best(files, tracked):
    assert [c.label for c in tracked.cells] == [
        "learning_rate=0.0001__seed0", "learning_rate=0.0001__seed1",
        "learning_rate=0.001__seed0", "learning_rate=0.001__seed1",
    ]  # fmt: skip
    rewards = {c.label: r["eval_mean_reward"] for c, r in zip(tracked.cells, tracked.records, strict=True)}
    assert len(set(rewards.values())) == 4  # seeds and settings really differ
    means = {
        s: (rewards[f"{s}__seed0"] + rewards[f"{s}__seed1"]) / 2
        for s in ("learning_rate=0.0001", "learning_rate=0.001")
    }
    best = max(means, key=means.__getitem__)
    assert tracked.best_setting == best
    assert tracked.champion.label == max((f"{best}__seed0", f"{best}__seed1"), key=rewards.__getitem__)

    runs = children(files, tracked.mlflow_run_id)
    assert sorted(r.data.tags["rlscale.cell"] for r in runs) == sorted(f"{tracked.name}/{c}" for c in rewards)
    client = MlflowClient(files["tracking_uri"], registry_uri=files["tracking_uri"])
    champion = client.get_model_version_by_alias(tracked.registered_model, "champion")
    champion_run = next(r for r in runs if r.info.run_id == champion.run_id)
    assert champion_run.data.tags["rlscale.cell"].endswith(tracked.champion.label)
    history = client.get_metric_history(champion_run.info.run_id, "eval/mean_reward")  # the curve, replayed
    assert [(m.step, m.value) for m in history] == [(STEPS, pytest.approx(rewards[tracked.champion.label]))]
    assert champion_run.data.params["setting"] == tracked.best_setting
    assert {"sweep.csv", "sweep.md", "sweep.png"} <= {p.name for p in tracked.out.iterdir()}
    report = (tracked.out / "sweep.md").read_text()
    assert "**(best)**" in report and "Only 2 seed(s): too few" in report
    assert (tracked.out / "runs" / tracked.champion.label / "model.zip").is_file()


@pytest.mark.slow
def test_a_resumed_sweep_trains_and_logs_nothing_again(files, tracked):
    again = run_sweep(files, tracked.out, RefusingExecutor(), tracking_uri=files["tracking_uri"], resume=True)
    assert again.skipped == 4 and again.mlflow_run_id == tracked.mlflow_run_id
    assert len(children(files, tracked.mlflow_run_id)) == 4
    assert table(again.out) == table(tracked.out) and again.champion == tracked.champion


@pytest.mark.slow
def test_a_cell_logged_but_not_stored_finds_its_run(files, tracked, tmp_path):
    out = tmp_path / "copy"
    import shutil

    shutil.copytree(tracked.out, out)
    (out / "mlflow_run.json").write_text((tracked.out / "mlflow_run.json").read_text())
    lost = out / "cells" / f"{tracked.cells[0].label}.json"
    lost.unlink()  # the driver died after logging this cell and before storing it
    resumed = run_sweep(files, out, LocalExecutor(1), tracking_uri=files["tracking_uri"], resume=True)
    assert resumed.skipped == 3 and lost.exists()
    assert len(children(files, tracked.mlflow_run_id)) == 4  # retrained, not logged twice
    assert resumed.records[0]["run_id"] == tracked.records[0]["run_id"]


def test_ray_trains_the_same_sweep_even_when_a_worker_dies(files, tracked, ray_executor, tmp_path, monkeypatch):
    marker = tmp_path / "failed-once"
    monkeypatch.setenv(FAIL_ONCE_ENV, str(marker))  # the first task to start kills its worker; Ray retries it
    on_ray = run_sweep(files, tmp_path / "ray", ray_executor)
    assert marker.exists()
    assert on_ray.executor == "ray" and on_ray.mlflow_run_id is None  # untracked: tracking is the driver's
    assert table(on_ray.out) == table(tracked.out)
    assert on_ray.champion == tracked.champion


@pytest.mark.slow
def test_train_cli_runs_a_sweep_and_says_where_the_champion_is(files, tracked, tmp_path):
    from typer.testing import CliRunner

    from rlscale.cli import app

    args = [
        "train", "--agent", str(files["agent"]), "--scenario", str(files["scenario"]), "--seeds", "3",
        "--set", "hyperparams.gamma=0.9", "--timesteps", str(STEPS), "--eval-every", "0", "--workers", "1",
        "--out", str(tmp_path / "cli"), "--tracking-uri", files["tracking_uri"], "--model-name", "rlscale-cli-sweep",
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "1 training runs" in result.output
    assert "best setting gamma=0.9 (return); models:/rlscale-cli-sweep@champion is gamma=0.9__seed3 (version 1)" in (
        result.output
    )
    bad = CliRunner().invoke(app, [*args[:5], "--seeds", "1,x"])
    assert bad.exit_code == 2 and "--seeds: expected comma-separated integers" in bad.output


@pytest.mark.slow
def test_scenario_fields_sweep_too_and_are_checked_first(files, tmp_path):
    import yaml

    with pytest.raises(SpecError, match=r"--set scenario.reward.slo_violaton_weight: .*slo_violaton_weight"):
        sweep(files["agent"], files["scenario"], [0], parse_grid(["scenario.reward.slo_violaton_weight=[0.1]"]),
              out=tmp_path / "bad", executor=RefusingExecutor(), progress=False)  # fmt: skip
    result = sweep(
        files["agent"], files["scenario"], [0], parse_grid(["scenario.reward.slo_violation_weight=[0.5]"]),
        timesteps=STEPS, eval_every=0, out=tmp_path / "reward", executor=LocalExecutor(1), progress=False,
    )  # fmt: skip
    (cell,) = result.cells
    assert cell.label == "slo_violation_weight=0.5__seed0"
    trained_on = yaml.safe_load((tmp_path / "reward" / "runs" / cell.label / "scenario.yaml").read_text())
    assert trained_on["reward"]["slo_violation_weight"] == 0.5 and trained_on["name"] == "light"


@pytest.mark.slow
def test_a_cell_that_fails_names_itself(files, tmp_path):
    from rlscale.experiments.runner import RunFailed

    # valid as data, refused by PPO when it is built: n_steps × n_envs must exceed 1 to normalize advantages
    with pytest.raises(RunFailed, match=r"training light__ppo-tiny, n_steps=1__seed0: AssertionError"):
        sweep(files["agent"], files["scenario"], [0], parse_grid(["hyperparams.n_steps=1"]), timesteps=STEPS,
              out=tmp_path / "failing", executor=LocalExecutor(1), progress=False)  # fmt: skip


@pytest.mark.parametrize("path", sorted(Path(__file__).resolve().parents[1].glob("experiments/sweeps/*.yaml")))
def test_shipped_sweep_files_are_valid_in_every_setting(path):
    from rlscale.training.sweep import plan_cells
    from rlscale.training.sweep_config import load_sweep

    loaded = load_sweep(path)
    assert loaded.config.name == path.stem
    cells, _ = plan_cells(loaded.agent_path, loaded.scenario_path, loaded.config.seeds, loaded.grid,
                       loaded.config.timesteps, loaded.config.eval_every, loaded.config.name)  # fmt: skip
    assert len(cells) == len(loaded.config.seeds) * math.prod(len(v) for _, v in loaded.grid)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "Experiment"}, r"kind: Input should be 'TrainingSweep'"),
        ({"grid": {"hyperparams..gamma": [0.9]}}, r"grid: .*a dotted field path"),
        ({"grid": {"hyperparams.gamma": []}}, r"grid: .*an empty list sweeps nothing"),
        ({"seeds": [0, 0]}, r"seeds: .*listed more than once: 0"),
        ({"agent": "agents/nope.yaml"}, r"agent: no such file 'agents/nope.yaml'"),
        ({"sedes": [0]}, r"sedes: Extra inputs are not permitted"),
    ],
)
def test_a_bad_sweep_file_is_refused_naming_file_and_field(files, tmp_path, change, message):
    from rlscale.training.sweep_config import load_sweep

    data = {"kind": "TrainingSweep", "agent": str(files["agent"]), "scenario": str(files["scenario"]), "seeds": [0]}
    path = write_yaml(tmp_path / "bad-sweep.yaml", data | change)
    with pytest.raises(SpecError, match=rf"bad-sweep.yaml: {message}"):
        load_sweep(path)


@pytest.mark.slow
def test_sweep_cli_runs_a_sweep_file(files, tracked, tmp_path):
    from typer.testing import CliRunner

    from rlscale.cli import app

    path = write_yaml(tmp_path / "tiny-sweep.yaml", {
        "kind": "TrainingSweep", "agent": str(files["agent"]), "scenario": str(files["scenario"]), "seeds": [4],
        "grid": {"scenario.reward.churn_weight": 0.5}, "eval_every": 0, "model_name": "rlscale-file-sweep",
    })  # fmt: skip
    args = ["sweep", str(path), "--timesteps", str(STEPS), "--workers", "1", "--out", str(tmp_path / "out"),
            "--tracking-uri", files["tracking_uri"]]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "tiny-sweep: 1 training runs" in result.output
    assert "models:/rlscale-file-sweep@champion is churn_weight=0.5__seed4 (version 1)" in result.output
    assert (tmp_path / "out" / "runs" / "churn_weight=0.5__seed4" / "model.zip").is_file()


def test_the_best_setting_is_chosen_by_return_unless_the_grid_changes_the_reward():
    from rlscale.training.sweep import selection_for

    assert selection_for(parse_grid(["hyperparams.gamma=[0.9, 0.99]"]), None) == "return"
    assert selection_for(parse_grid(["scenario.reward.churn_weight=[0, 0.05]"]), None) == "cost-at-slo"
    assert selection_for(parse_grid(["scenario.randomization.rate_scale=[[1, 1]]"]), None) == "return"
    with pytest.raises(ValueError, match="held-out returns are not comparable"):
        selection_for(parse_grid(["scenario.reward.slo_violation_weight=[0.001, 0.01]"]), "return")
    with pytest.raises(ValueError, match="--select: one of return, cost-at-slo"):
        selection_for([], "cheapest")


def _result(selection: str, rows: list[tuple[float, float, float, float]]):
    """A finished sweep of settings a, b, c × seeds 0, 1 from (setting index, return, cost $, attainment) rows."""
    from rlscale.training.sweep import SweepResult, TrainCell

    cells, records = [], []
    for i, (setting, reward, cost, attainment) in enumerate(rows):
        cells.append(TrainCell("s", "agent.yaml", "scenario.yaml", i % 2, (("x", "abc"[int(setting)]),)))
        records.append({"eval_mean_reward": reward, "eval_kpis": {"cost/usd": cost, "slo/attainment": attainment}})
    return SweepResult("s", Path("out"), cells, records, 0.0, "local", selection=selection, slo_attainment=0.99)


def test_cost_at_slo_picks_the_cheapest_setting_that_meets_the_slo_and_else_the_best_attainment():
    from rlscale.training.sweep import _choose_champion

    rows = [  # setting, return, cost, attainment (two seeds each)
        (0, -10.0, 10.0, 0.90), (0, -12.0, 12.0, 0.92),   # a: cheapest, best return, misses the SLO
        (1, -60.0, 30.0, 1.00), (1, -50.0, 26.0, 0.99),   # b: mean $28, 99.5%: feasible
        (2, -40.0, 40.0, 1.00), (2, -44.0, 44.0, 1.00),   # c: feasible but dearer
    ]  # fmt: skip
    by_return = _result("return", rows)
    _choose_champion(by_return)
    assert by_return.best_setting == "x=a" and by_return.champion.seed == 0
    at_slo = _result("cost-at-slo", rows)
    _choose_champion(at_slo)
    assert at_slo.best_setting == "x=b" and at_slo.champion.seed == 1  # seed 1: $26 at 99%, the cheaper feasible
    nothing_meets = _result("cost-at-slo", [(r[0], r[1], r[2], r[3] - 0.2) for r in rows])
    _choose_champion(nothing_meets)
    assert nothing_meets.best_setting == "x=c"  # the highest mean attainment (80% against b's 79.5%)

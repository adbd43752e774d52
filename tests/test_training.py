"""Training (``rlscale.training``): agent files refused with the field named, the action mapping the environment
uses, a tiny PPO run that learns to shed an over-provisioned fleet, the MLflow round trip (registered model →
LearnedPolicy → simulation), and learned agents in the compare pipeline through ``rlscale evaluate``.

One tiny PPO run (light load, 300 s episodes, 3k steps, ~10 s) is trained once per module and shared.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient

from rlscale.agents import load_agent
from rlscale.policies.actions import ActionMap, discrete_from_unit
from rlscale.policies.learned import LearnedPolicy
from rlscale.policies.static import StaticPolicy
from rlscale.scenario import load_scenario
from rlscale.simulation import run_scenario
from rlscale.specs.catalog import SpecError
from rlscale.training import train
from rlscale.training.config import load_agent_config
from rlscale.training.envs import ContinuousActions
from rlscale.training.train import EVAL_SEED_OFFSET

pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy")  # inside MLflow's SQL store

ROOT = Path(__file__).resolve().parents[1]
SB3_AGENTS = ("ppo", "recurrent-ppo", "a2c", "dqn", "sac")
OVERPROVISIONED = 12  # pods: the deliberately bad static policy
HELD_OUT_SEEDS = (100, 101, 102)

# 1 req/s, which one pod serves within the SLOs, on 12 pods whose nodes go 30 s after their pod: shedding pods
# pays within a 300 s episode.
LIGHT = {
    "name": "light",
    "description": "1 req/s on 12 pods; nodes released 30 s after their pod.",
    "pod": {"model": "llama2-7b", "hardware": "v5e-8"},
    "fleet": {"replicas": OVERPROVISIONED, "lifecycle": {"node_scale_down_delay_s": 30}},
    "workload": {"arrival": {"process": "poisson", "rate_per_s": 1.0}, "lengths": {"kind": "empirical"}},
    "duration_s": 300,
}
TINY_PPO = {
    "kind": "SB3Agent",
    "spec": {
        "algo": "ppo",
        "n_envs": 1,
        "total_timesteps": 3072,
        "env_kwargs": {"action_mode": "delta", "max_delta": 2, "min_replicas": 1, "max_replicas": 16},
        "eval": {"every_steps": 1536, "episodes": 2, "baseline": "static12.yaml"},
        "hyperparams": {"n_steps": 256, "batch_size": 64, "policy_kwargs": {"net_arch": [64, 64]}},
    },
}
STATIC_12 = {"kind": "StaticReplicas", "spec": {"replicas": OVERPROVISIONED, "sync_period_s": 15.0}}


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rlscale", *args], capture_output=True, text=True, cwd=cwd)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("training")
    return {
        "folder": folder,
        "scenario": write_yaml(folder / "light.yaml", LIGHT),
        "agent": write_yaml(folder / "ppo-tiny.yaml", TINY_PPO),
        "static12": write_yaml(folder / "static12.yaml", STATIC_12),
        "tracking_uri": f"sqlite:///{folder / 'mlflow.db'}",
    }


@pytest.fixture(scope="module")
def trained(files):
    """The tiny PPO run, tracked in a throwaway SQLite store."""
    return train(
        files["agent"], files["scenario"], seed=0, tracking_uri=files["tracking_uri"], out=files["folder"] / "run",
        progress=False, model_name="rlscale-test-ppo",
    )  # fmt: skip


def held_out_kpis(autoscaler_factory, scenario_path: Path) -> list:
    scenario = load_scenario(scenario_path)
    return [run_scenario(scenario.model_copy(update={"seed": s}), autoscaler=autoscaler_factory()).kpis
            for s in HELD_OUT_SEEDS]  # fmt: skip


# ---- agent files --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"algo": "ppo2"}, "spec.algo: Input should be 'ppo'"),
        ({"total_timesteps": 0}, "spec.total_timesteps: Input should be greater than 0"),
        ({"n_envs": 0}, "spec.n_envs: Input should be greater than or equal to 1"),
        ({"normalise": True}, "spec.normalise: Extra inputs are not permitted"),
        ({"env_kwargs": {"action_mode": "absolute"}}, "spec.env_kwargs.action_mode: Input should be 'delta'"),
        ({"env_kwargs": {"min_replicas": 5, "max_replicas": 2}}, "spec.env_kwargs: Value error, min_replicas (5)"),
        ({"env_kwargs": {"max_replicas": 65}}, "spec.env_kwargs.max_replicas: Input should be less than or equal"),
        ({"hyperparams": {"n_step": 64}}, "spec.hyperparams: Value error, n_step: not a parameter of PPO (did you "
                                          "mean n_steps?)"),
        ({"hyperparams": {"seed": 3}}, "spec.hyperparams: Value error, seed: set by rlscale train"),
        ({"hyperparams": {"learning_rate": "cosine"}}, "learning_rate: a number or lin_<number>"),
        ({"hyperparams": {"policy_kwargs": {"activation_fn": "sigmoid"}}}, "policy_kwargs.activation_fn: one of"),
        ({"algo": "recurrent-ppo"}, "spec: Value error, policy: recurrent-ppo needs an LSTM policy"),
        ({"eval": {"episodes": 0}}, "spec.eval.episodes: Input should be greater than or equal to 1"),
    ],
)  # fmt: skip
def test_bad_agent_file_is_refused_naming_file_and_field(tmp_path, spec, message):
    data = {"kind": "SB3Agent", "spec": {**TINY_PPO["spec"], **spec}}
    path = write_yaml(tmp_path / "bad.yaml", data)
    with pytest.raises(SpecError) as err:
        load_agent_config(path)
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_per_scenario_block_and_command_line_apply_in_order(tmp_path):
    agent = load_agent_config(ROOT / "agents" / "ppo.yaml", "diurnal", total_timesteps=1000)
    assert agent.spec.env_kwargs.time_period_s == 7200
    assert agent.spec.env_kwargs.max_replicas == 16  # merged key by key, not replaced
    assert agent.spec.total_timesteps == 1000
    assert len(agent.applied) == 3
    assert "per_scenario.diurnal" in agent.applied[1] and "total_timesteps=1000" in agent.applied[2]
    assert load_agent_config(ROOT / "agents" / "ppo.yaml", "steady").spec.env_kwargs.time_period_s is None
    bad = write_yaml(tmp_path / "bad.yaml", {**TINY_PPO, "per_scenario": {"light": {"env_kwargs": {"max_delta": 0}}}})
    with pytest.raises(SpecError, match=r"per_scenario\.light: env_kwargs\.max_delta: Input should be greater"):
        load_agent_config(bad, "light")


@pytest.mark.parametrize("name", SB3_AGENTS)
def test_shipped_agent_files_are_valid(name):
    agent = load_agent_config(ROOT / "agents" / f"{name}.yaml")
    assert agent.spec.algo == name
    assert agent.spec.hyperparams["policy_kwargs"]["net_arch"]
    agent.spec.algo_kwargs()  # schedules and activation classes build


# ---- the action mapping the environment uses ----------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["delta", "target"])
def test_action_map_gives_the_replicas_the_environment_sets(files, mode):
    actions = ActionMap(mode, max_delta=2, min_replicas=1, max_replicas=16)
    env = gym.make("rlscale/JetStream-v0", scenario=str(files["scenario"]), action_mode=mode, episode_s=150)
    env.reset(seed=0)
    assert env.action_space.n == actions.n
    current = OVERPROVISIONED
    for action in [0, 4, 4, 1, 3, 2, 0, 0, 0, 0]:
        action = action if mode == "delta" else action * 4
        info = env.step(action)[4]
        assert info["replicas"] == actions.replicas(action, current)
        current = info["replicas"]


def test_continuous_actions_pick_the_nearest_discrete_action(files):
    assert [discrete_from_unit(x, 17) for x in (-1.0, -2.0, 0.0, 0.06, 1.0, 5.0)] == [0, 0, 8, 8, 16, 16]
    env = ContinuousActions(gym.make("rlscale/JetStream-v0", scenario=str(files["scenario"]), action_mode="target"))
    assert env.action_space.shape == (1,)
    env.reset(seed=0)
    assert env.step(np.array([-1.0], dtype=np.float32))[4]["replicas"] == 1  # 0 pods asked, clipped to min_replicas


# ---- a tiny PPO run learns ----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_tiny_ppo_beats_a_fixed_overprovisioned_fleet(files, trained):
    # On the held-out evaluation episodes (the static count run by the callback on exactly those episodes):
    final = trained.evaluations[-1]
    static = trained.baseline_kpis
    assert final.kpis["cost/usd"] < 0.6 * static["cost/usd"]
    assert final.kpis["slo/attainment"] >= static["slo/attainment"] - 0.01
    # ... and in return: holding 12 pods (delta action 2) on the same kind of episodes
    env = gym.make("rlscale/JetStream-v0", scenario=str(files["scenario"]))
    returns = []
    for episode in range(2):
        env.reset(seed=EVAL_SEED_OFFSET + episode)
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(2)
            total, done = total + reward, terminated or truncated
        returns.append(total)
    assert final.mean_reward > np.mean(returns) + 3.0
    # ... and as an autoscaler in plain simulations of other seeds
    learned = held_out_kpis(lambda: LearnedPolicy(trained.model_path), files["scenario"])
    fixed = held_out_kpis(lambda: StaticPolicy(OVERPROVISIONED, 15.0), files["scenario"])
    assert np.mean([k.cost_usd for k in learned]) < 0.6 * np.mean([k.cost_usd for k in fixed])
    assert min(k.slo_attainment for k in learned) >= min(k.slo_attainment for k in fixed) - 0.01
    assert trained.steps_per_s > 0 and trained.timesteps == 3072


@pytest.mark.slow
def test_run_folder_describes_itself(trained):
    out = trained.out
    for name in ("model.zip", "vecnormalize.pkl", "policy.json", "config.json", "agent.yaml", "scenario.yaml",
                 "progress.csv", "learning_curve.png"):  # fmt: skip
        assert (out / name).is_file(), name
    with (out / "progress.csv").open() as f:
        rows = list(csv.DictReader(f))
    evaluated = [r for r in rows if r.get("eval/mean_reward")]
    assert [int(r["time/total_timesteps"]) for r in evaluated] == [1536, 3072]
    assert trained.run_name.startswith("light__ppo-tiny__0__")


# ---- MLflow round trip --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_registered_model_loads_by_alias_and_acts_like_the_saved_policy(files, trained):
    uri = files["tracking_uri"]
    assert trained.registered_uri == "models:/rlscale-test-ppo@champion"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert str(client.get_model_version_by_alias("rlscale-test-ppo", "champion").version) == trained.model_version

    by_alias = LearnedPolicy(trained.registered_uri, tracking_uri=uri)
    by_run = LearnedPolicy(trained.model_uri, tracking_uri=uri)
    local = LearnedPolicy(trained.model_path)
    scenario = load_scenario(files["scenario"]).model_copy(update={"seed": 7})
    kpis = [run_scenario(scenario, autoscaler=p).kpis for p in (by_alias, by_run, local)]
    assert kpis[0] == kpis[1] == kpis[2]

    import mlflow.pyfunc

    from rlscale.training.tracking import using_tracking_uri

    with using_tracking_uri(uri):
        pyfunc = mlflow.pyfunc.load_model(trained.registered_uri)
    obs = np.random.default_rng(0).uniform(0, [50, 1, 50, 1, 20, 1, 16, 16, 4], size=(32, 9)).astype(np.float32)
    assert np.array_equal(pyfunc.predict(obs), local.predict(obs))


@pytest.mark.slow
def test_tracked_run_has_params_namespaced_metrics_and_artifacts(files, trained):
    client = MlflowClient(tracking_uri=files["tracking_uri"])
    run = client.get_run(trained.run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == trained.run_name
    params = run.data.params
    assert params["agent"] == "ppo-tiny" and params["scenario"] == "light" and params["seed"] == "0"
    assert params["spec.algo"] == "ppo" and params["spec.hyperparams.n_steps"] == "256"
    assert {"git_commit", "command", "agent_file", "scenario_file", "settings", "model", "hardware"} <= set(params)
    metrics = run.data.metrics
    for key in ("train/loss", "rollout/ep_rew_mean", "rollout/cost_usd", "eval/mean_reward", "cost/usd",
                "slo/attainment", "cost/baseline_usd", "slo/baseline_attainment", "time/steps_per_s"):  # fmt: skip
        assert key in metrics, key
    history = client.get_metric_history(trained.run_id, "eval/mean_reward")
    assert sorted(m.step for m in history) == [1536, 3072]
    artifacts = {a.path for a in client.list_artifacts(trained.run_id)}
    assert {"learning_curve.png", "progress.csv", "config"} <= artifacts
    config = {Path(a.path).name for a in client.list_artifacts(trained.run_id, "config")}
    assert {"agent.yaml", "scenario.yaml", "config.json", "policy.json"} <= config


@pytest.mark.slow
def test_learned_policy_refuses_overrides_the_model_cannot_take(trained):
    with pytest.raises(SpecError, match="trained with 5"):
        LearnedPolicy(trained.model_path, max_delta=3)
    with pytest.raises(SpecError, match=r"give 11 observations; the model .* takes 9"):
        LearnedPolicy(trained.model_path, time_period_s=3600)
    assert LearnedPolicy(trained.model_path, max_replicas=4).actions.max_replicas == 4


# ---- learned agents in the compare pipeline -----------------------------------------------------------------------
def test_learned_policy_file_names_its_problems(tmp_path):
    path = write_yaml(tmp_path / "learned.yaml", {"kind": "LearnedPolicy", "spec": {"model": "nope/model.zip"}})
    with pytest.raises(SpecError, match=r"learned\.yaml: spec\.model: no such file or MLflow model 'nope/model\.zip'"):
        load_agent(path)
    path = write_yaml(tmp_path / "learned.yaml", {"kind": "LearnedPolicy", "spec": {"modle": "x"}})
    with pytest.raises(SpecError, match=r"spec: model: Field required; modle: Extra inputs"):
        load_agent(path)


@pytest.mark.slow
def test_evaluate_cli_compares_a_learned_agent_with_a_baseline(files, trained, tmp_path, monkeypatch):
    # No tracking_uri in the file: the model resolves in the store --tracking-uri names, in every run process.
    learned = write_yaml(
        tmp_path / "learned-ppo.yaml", {"kind": "LearnedPolicy", "spec": {"model": trained.registered_uri}}
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", files["tracking_uri"])
    assert isinstance(load_agent(learned), LearnedPolicy)
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    out = tmp_path / "evaluate"
    result = cli(
        "evaluate", "--agents", f"{learned},{files['static12']}", "--scenarios", str(files["scenario"]),
        "--seeds", "0,1", "--workers", "2", "--out", str(out), "--tracking-uri", files["tracking_uri"],
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    with (out / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    cost = {(r["agent"], r["seed"]): float(r["cost_usd"]) for r in rows}
    assert sorted(cost) == [("learned-ppo", "0"), ("learned-ppo", "1"), ("static12", "0"), ("static12", "1")]
    for seed in ("0", "1"):
        assert cost["learned-ppo", seed] < 0.6 * cost["static12", seed]
    assert "| learned-ppo |" in (out / "report.md").read_text()
    assert (out / "pareto.png").is_file()


@pytest.mark.slow
def test_train_cli_smoke(files, trained, tmp_path):  # trained: the store exists (creating one takes seconds)
    out = tmp_path / "run"
    result = cli(
        "train", "--agent", str(files["agent"]), "--scenario", str(files["scenario"]), "--timesteps", "256",
        "--eval-every", "0", "--out", str(out), "--tracking-uri", files["tracking_uri"],
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "models:/rlscale-ppo-tiny-light@champion (version 1)" in result.stdout
    assert (out / "model.zip").is_file()


def test_train_cli_refuses_an_agent_that_is_not_trainable(files):
    from typer.testing import CliRunner

    from rlscale.cli import app

    result = CliRunner().invoke(app, ["train", "--agent", str(files["static12"]), "--scenario", str(files["scenario"])])
    assert result.exit_code == 2
    assert "static12.yaml: kind: Input should be 'SB3Agent'" in result.output


@pytest.mark.slow
def test_a_mix_of_scenarios_trains_as_one_run_named_after_all(files, trained, tmp_path):
    busy = write_yaml(tmp_path / "light-busy.yaml", {
        **LIGHT, "name": "light-busy",
        "workload": {**LIGHT["workload"], "arrival": {"process": "poisson", "rate_per_s": 3.0}},
    })  # fmt: skip
    result = train(
        files["agent"], [files["scenario"], busy], timesteps=256, seed=0, tracking_uri=files["tracking_uri"],
        out=tmp_path / "mix", eval_every=0, progress=False,
    )  # fmt: skip
    assert result.run_name.startswith("light+light-busy__ppo-tiny__0__")
    assert result.registered_model == "rlscale-ppo-tiny-light+light-busy"
    config = json.loads((tmp_path / "mix" / "config.json").read_text())
    assert [s["name"] for s in config["scenarios"]] == ["light", "light-busy"]
    assert config["scenario_files"] == [str(files["scenario"].resolve()), str(busy.resolve())]
    assert sorted(p.name for p in (tmp_path / "mix" / "scenarios").iterdir()) == ["light-busy.yaml", "light.yaml"]
    assert json.loads((tmp_path / "mix" / "policy.json").read_text())["scenario"] == "light+light-busy"
    # the environments the run builds draw their episodes from both members
    from rlscale.training.envs import evaluation_env
    from rlscale.training.train import plan_run

    plan = plan_run(files["agent"], [files["scenario"], busy], 256, 0, tmp_path / "plan", 0)
    env, recorder = evaluation_env(plan.env_scenario, plan.spec)
    for seed in range(8):
        recorder.reset(seed=seed)
    assert {e.name for e in recorder.episodes} == {"light", "light-busy"}
    env.close()


def test_a_mix_needs_distinct_names_and_a_sweep_one_scenario(files):
    from typer.testing import CliRunner

    from rlscale.cli import app

    with pytest.raises(ValueError, match="distinct scenario names"):
        train(files["agent"], [files["scenario"], files["scenario"]], timesteps=256, progress=False)
    result = CliRunner().invoke(app, [
        "train", "--agent", str(files["agent"]), "-s", str(files["scenario"]), "-s", str(files["scenario"]),
        "--seeds", "0,1",
    ])  # fmt: skip
    assert result.exit_code == 2 and "a sweep trains on one scenario file" in result.output


@pytest.mark.slow
def test_the_same_seed_trains_the_same_policy(files, tmp_path):
    """`make train-production` reproduces the committed policy: one seed, one policy, to the bit (every draw seeded,
    one torch thread; two environments in subprocesses, as the production agent trains)."""
    import torch
    from stable_baselines3 import PPO

    agent = write_yaml(tmp_path / "ppo-two.yaml", {**TINY_PPO, "spec": {
        **TINY_PPO["spec"], "n_envs": 2, "total_timesteps": 512, "eval": {"every_steps": 0, "episodes": 1,
                                                                           "baseline": None}}})  # fmt: skip
    runs = [
        train(agent, files["scenario"], seed=3, tracking_uri=files["tracking_uri"], out=tmp_path / name, progress=False)
        for name in ("first", "second")
    ]  # fmt: skip
    first, second = (PPO.load(run.model_path, device="cpu").policy.state_dict() for run in runs)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    other = train(
        agent, files["scenario"], seed=4, tracking_uri=files["tracking_uri"], out=tmp_path / "other", progress=False
    )
    assert not all(
        torch.equal(first[k], v) for k, v in PPO.load(other.model_path, device="cpu").policy.state_dict().items()
    )

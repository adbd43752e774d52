"""Executors and resumable cells: Ray gives the local pool's table, a task whose worker dies is retried, and a
resumed comparison runs only the cells it lacks."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
import yaml

from rlscale.experiments.compare import compare
from rlscale.experiments.executors import FAIL_ONCE_ENV, ExecutorError, LocalExecutor, make_executor

pytestmark = pytest.mark.slow  # comparisons on a pool and on Ray, workers killed

ROOT = Path(__file__).resolve().parents[1]
AGENTS = ("agents/hpa-prefill-backlog.yaml", "agents/hpa-slots-used.yaml")


def write_experiment(folder: Path) -> Path:
    """2 agents × 1 scenario of 60 s × 2 seeds, on 2 workers."""
    data = {
        "name": "tiny-exec",
        "scenarios": [str(ROOT / "envs" / "steady.yaml")],
        "agents": [str(ROOT / a) for a in AGENTS],
        "seeds": [0, 1],
        "duration_s": 60,
        "workers": 2,
    }
    path = folder / "tiny-exec.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def table(out: Path) -> list[dict[str, str]]:
    """results.csv without the wall times."""
    with (out / "results.csv").open() as f:
        return [{k: v for k, v in row.items() if k != "wall_s"} for row in csv.DictReader(f)]


def dumped(records) -> list[str]:  # JSON writes NaN as NaN, so equal runs compare equal
    return [json.dumps((r.label, r.kpis, r.timeline), sort_keys=True) for r in records]


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    folder = tmp_path_factory.mktemp("executors")
    return compare(write_experiment(folder), folder / "local", progress=False)


def test_local_is_the_default_and_unknown_executors_are_refused(local):
    assert local.executor == "local" and local.skipped == 0
    assert sorted(p.name for p in (local.out / "cells").iterdir()) == [
        f"steady__{agent}__seed{seed}.json" for agent in ("hpa-prefill-backlog", "hpa-slots-used") for seed in (0, 1)
    ]
    assert isinstance(make_executor("local", workers=3), LocalExecutor)
    with pytest.raises(ExecutorError, match="unknown executor 'dask'"):
        make_executor("dask")


def test_ray_gives_the_local_table(local, ray_executor, tmp_path):
    on_ray = compare(local.experiment, tmp_path / "ray", executor=ray_executor, progress=False)
    assert on_ray.executor == "ray"
    assert dumped(on_ray.records) == dumped(local.records)
    assert table(on_ray.out) == table(local.out)


def test_a_task_whose_worker_dies_is_retried(local, ray_executor, tmp_path, monkeypatch):
    marker = tmp_path / "failed-once"
    monkeypatch.setenv(FAIL_ONCE_ENV, str(marker))  # forwarded to the tasks: the first to run kills its worker
    on_ray = compare(local.experiment, tmp_path / "ray", executor=ray_executor, progress=False)
    assert marker.exists()  # a worker did die
    assert table(on_ray.out) == table(local.out)


def test_a_pool_worker_that_dies_costs_only_the_work_in_flight(local, tmp_path, monkeypatch):
    marker = tmp_path / "failed-once"
    monkeypatch.setenv(FAIL_ONCE_ENV, str(marker))  # inherited by the spawned workers: the first to run dies
    again = compare(local.experiment, tmp_path / "pool", progress=False)
    assert marker.exists()  # the pool did break
    assert table(again.out) == table(local.out)


def die(item: int) -> int:
    os._exit(1)


def test_a_pool_that_keeps_dying_gives_up_with_a_clear_error():
    with LocalExecutor(2, max_retries=1) as pool, pytest.raises(ExecutorError, match="lost a worker 2 times"):
        list(pool.map_unordered(die, [1, 2, 3]))


def test_resume_runs_only_the_missing_cells(local, tmp_path):
    out = tmp_path / "resumed"
    first = compare(local.experiment, out, progress=False)
    cells = sorted((out / "cells").iterdir())
    cells[1].unlink()  # as if the sweep died before this run finished
    kept = {p.name: p.stat().st_mtime_ns for p in cells if p != cells[1]}
    (out / "results.csv").unlink()
    resumed = compare(local.experiment, out, resume=True, progress=False)
    assert resumed.skipped == 3
    assert json.loads((out / "experiment.json").read_text())["resumed_cells"] == 3
    assert {p.name: p.stat().st_mtime_ns for p in cells if p != cells[1]} == kept  # not run, not rewritten
    assert cells[1].exists()
    assert dumped(resumed.records) == dumped(first.records) == dumped(local.records)
    assert table(out) == table(local.out)
    # a stored cell under another key (a changed experiment) is run again, not reused
    data = json.loads(cells[0].read_text())
    data["key"]["duration_s"] = 30
    cells[0].write_text(json.dumps(data))
    assert compare(local.experiment, out, resume=True, progress=False).skipped == 3


def test_resume_needs_out(local):
    with pytest.raises(ValueError, match="--resume needs --out"):
        compare(local.experiment, resume=True, progress=False)


def test_cell_keys_survive_a_moved_checkout(tmp_path):
    """A comparison resumed from another clone (CI's, a colleague's) finds the cells a first one stored: keys name
    files relative to the experiment, not where the checkout happened to lie."""
    import shutil

    from rlscale.experiments.config import load_experiment
    from rlscale.experiments.runner import cell_keys

    keys = []
    for where in ("one", "elsewhere/two"):
        root = tmp_path / where
        for folder in ("envs", "agents"):
            shutil.copytree(ROOT / folder, root / folder)
        (root / "experiments").mkdir()
        experiment = root / "experiments" / "x.yaml"
        experiment.write_text(
            yaml.safe_dump(
                {"scenarios": ["../envs/steady.yaml"], "agents": ["../agents/hpa-slots-used.yaml"], "seeds": [3]}
            )
        )
        keys.append(cell_keys(load_experiment(experiment)))
    assert keys[0] == keys[1]
    assert keys[0][0].spec.scenario_path == "../envs/steady.yaml"
    assert keys[0][0].spec.agent_path == "../agents/hpa-slots-used.yaml"

"""Executor overhead: the same 40-cell comparison on the local process pool and on Ray, on this machine.

Run: `.venv/bin/python benchmarks/executors.py` (needs `pip install 'rlscale[ray]'`). 2 HPA agents × 2 scenarios ×
10 seeds of 60 simulated seconds, on 2 local processes and then on a local Ray instance with 2 CPUs
(``ray.init(num_cpus=2)``), so both have the same parallelism. It prints each wall time, whether the two result
tables are identical (they must be: same seeds, same work) and, last, ``ray_overhead_per_task_s=<x>``:
(Ray wall − local wall) / cells. Ray's start-up (a local instance, its worker processes and their imports) is
inside the Ray figure, as it is in a real `rlscale compare --executor ray` run. Then a tuning search (16 trials × 2
seeds, 4 settings proposed at a time) on the pool and on the running Ray instance: its trials must be identical, and
``tune_ray_overhead_per_run_s`` is what Ray adds per run once started, 8 runs at a time (the pool's figure includes
starting its processes, ~1.5 s; Ray's workers are already up from the comparison, so it can come out negative).
Last, the bare dispatch cost: 2000 empty items through each executor with its workers up
(``ray_dispatch_per_task_s``). Timings are noisy on a shared
machine; run it on an idle one before quoting a figure.

Scaling: the cells are independent simulations (one Ray task each, 1 CPU), so on a cluster the wall time falls
near-linearly with the workers' CPUs — 40 cells on 40 CPUs take about one cell's time plus the per-task overhead
measured here — until the parts that stay on the driver dominate: collecting results, writing the report and
figures, and logging the comparison to MLflow. Those are paid once per comparison, so the larger the grid (guide-
baselines: 8 agents × 4 scenarios × 5 seeds of an hour each), the closer to linear the speed-up.
"""

from __future__ import annotations

import csv
import tempfile
import time
from pathlib import Path

from rlscale.experiments.compare import compare
from rlscale.experiments.config import experiment_from_lists
from rlscale.experiments.executors import LocalExecutor, RayExecutor
from rlscale.scenario import load_scenario
from rlscale.specs.catalog import read_document
from rlscale.tuning import tune

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ["envs/steady.yaml", "envs/diurnal.yaml"]
AGENTS = ["agents/hpa-prefill-backlog.yaml", "agents/hpa-slots-used.yaml"]
SEEDS = list(range(10))
DURATION_S = 60.0
WORKERS = 2
TUNE_TRIALS, TUNE_BATCH, TUNE_SEEDS = 16, 4, [0, 1]  # 32 runs, 4 batches of 8
NOOPS = 2000


def table(out: Path) -> list[dict[str, str]]:
    """results.csv without the wall times, the only column that differs between equal runs."""
    with (out / "results.csv").open() as f:
        return [{k: v for k, v in row.items() if k != "wall_s"} for row in csv.DictReader(f)]


def main() -> None:
    import ray

    experiment = experiment_from_lists(
        [str(ROOT / s) for s in SCENARIOS],
        [str(ROOT / a) for a in AGENTS],
        SEEDS,
        name="bench-executors",
        duration_s=DURATION_S,
        workers=WORKERS,
        source="benchmarks/executors.py",
    )
    cells = len(SCENARIOS) * len(AGENTS) * len(SEEDS)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        compare(experiment, Path(tmp) / "local", progress=False, executor="local")
        local_s = time.perf_counter() - start
        print(f"local pool ({WORKERS} processes): {cells} cells in {local_s:.2f} s ({local_s / cells:.3f} s/cell)")

        start = time.perf_counter()
        with LocalExecutor(WORKERS) as pool:
            local_trials = search(pool)
            local_tune_s = time.perf_counter() - start
            local_noop_s = dispatch(pool)

        start = time.perf_counter()
        ray.init(num_cpus=WORKERS, include_dashboard=False, log_to_driver=False)
        startup_s = time.perf_counter() - start
        try:
            compare(experiment, Path(tmp) / "ray", progress=False, executor="ray")
            ray_s = time.perf_counter() - start
            start = time.perf_counter()
            ray_trials = search(RayExecutor())
            ray_tune_s = time.perf_counter() - start
            ray_noop_s = dispatch(RayExecutor())
        finally:
            ray.shutdown()
        print(
            f"ray (num_cpus={WORKERS}, start-up included): {cells} cells in {ray_s:.2f} s ({ray_s / cells:.3f} s/cell)"
        )

        print(
            f"  of which Ray start-up: {startup_s:.2f} s; without it {(ray_s - startup_s - local_s) / cells:.4f} s/task"
        )
        same = table(Path(tmp) / "local") == table(Path(tmp) / "ray")
        print(f"tables identical: {same}")
    runs = TUNE_TRIALS * len(TUNE_SEEDS)
    print(
        f"tune, {TUNE_TRIALS} trials × {len(TUNE_SEEDS)} seeds in batches of {TUNE_BATCH}: local pool "
        f"{local_tune_s:.2f} s, ray (running) {ray_tune_s:.2f} s; trials identical: {local_trials == ray_trials}"
    )
    print(f"tune_ray_overhead_per_run_s={(ray_tune_s - local_tune_s) / runs:.4f}")
    print(
        f"dispatch of {NOOPS} empty items on running workers: local pool {local_noop_s / NOOPS * 1e3:.2f} ms/item, "
        f"ray {ray_noop_s / NOOPS * 1e3:.2f} ms/task"
    )
    print(f"ray_dispatch_per_task_s={ray_noop_s / NOOPS:.5f}")
    overhead = (ray_s - local_s) / cells
    print(f"ray_overhead_per_task_s={overhead:.4f}")
    if not same:
        raise SystemExit("the Ray table differs from the local one")
    if local_trials != ray_trials:
        raise SystemExit("the Ray search found other trials than the local one")


def noop(item: int) -> int:
    return item


def dispatch(executor: LocalExecutor | RayExecutor) -> float:
    """Seconds to send :data:`NOOPS` empty items through ``executor`` and get them back (its workers already up):
    the executor's own cost per task, with no work to hide it."""
    start = time.perf_counter()
    assert sorted(i for i, _ in executor.map_unordered(noop, list(range(NOOPS)))) == list(range(NOOPS))
    return time.perf_counter() - start


def search(executor: LocalExecutor | RayExecutor) -> list:
    """A tuning search of the slots-used HPA on the steady scenario, its runs on ``executor``."""
    manifest = read_document(ROOT / "agents" / "hpa-slots-used.yaml")
    scenario = load_scenario(ROOT / "envs" / "steady.yaml").model_copy(update={"duration_s": DURATION_S})
    result = tune(manifest, scenario, TUNE_SEEDS, TUNE_TRIALS, batch=TUNE_BATCH, executor=executor)
    return result.trials


if __name__ == "__main__":
    main()

"""Executor overhead: the same 40-cell comparison on the local process pool and on Ray, on this machine.

Run: `.venv/bin/python benchmarks/executors.py` (needs `pip install 'rlscale[ray]'`). 2 HPA agents × 2 scenarios ×
10 seeds of 60 simulated seconds, on 2 local processes and then on a local Ray instance with 2 CPUs
(``ray.init(num_cpus=2)``), so both have the same parallelism. It prints each wall time, whether the two result
tables are identical (they must be: same seeds, same work) and, last, ``ray_overhead_per_task_s=<x>``:
(Ray wall − local wall) / cells. Ray's start-up (a local instance, its worker processes and their imports) is
inside the Ray figure, as it is in a real `rlscale compare --executor ray` run. Timings are noisy on a shared
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

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ["envs/steady.yaml", "envs/diurnal.yaml"]
AGENTS = ["agents/hpa-prefill-backlog.yaml", "agents/hpa-slots-used.yaml"]
SEEDS = list(range(10))
DURATION_S = 60.0
WORKERS = 2


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
        ray.init(num_cpus=WORKERS, include_dashboard=False, log_to_driver=False)
        startup_s = time.perf_counter() - start
        try:
            compare(experiment, Path(tmp) / "ray", progress=False, executor="ray")
        finally:
            ray.shutdown()
        ray_s = time.perf_counter() - start
        print(
            f"ray (num_cpus={WORKERS}, start-up included): {cells} cells in {ray_s:.2f} s ({ray_s / cells:.3f} s/cell)"
        )

        print(
            f"  of which Ray start-up: {startup_s:.2f} s; without it {(ray_s - startup_s - local_s) / cells:.4f} s/task"
        )
        same = table(Path(tmp) / "local") == table(Path(tmp) / "ray")
        print(f"tables identical: {same}")
    overhead = (ray_s - local_s) / cells
    print(f"ray_overhead_per_task_s={overhead:.4f}")
    if not same:
        raise SystemExit("the Ray table differs from the local one")


if __name__ == "__main__":
    main()

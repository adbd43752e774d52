"""Simulator speed and memory. Run: `make bench` (or `.venv/bin/python benchmarks/sim_speed.py`).

The headline case (issue 3): 10 pods of Llama-2-7B on v5e-8 (88 slots), Poisson
50 req/s with Azure conversation lengths, one simulated hour, static replicas.
Other lines show that cost follows requests, not tokens. Then one simulated day
of the headline case in a fresh process, for its peak memory (`peak_rss_mb`):
memory holds what is in flight, not what has been simulated. The last line is
`simulated_requests_per_s=<N>`: requests completed per wall second on one core. ``--week`` also runs a simulated
week (~30 M requests) in a fresh process, for its wall time and peak RSS.

It says which build of the simulator's core ran (`core=compiled|pure|stale`,
rlscale/_core.py); `RLSCALE_PURE_PYTHON=1` measures the pure-Python sources.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

import rlscale
from rlscale.scenario import ScenarioConfig
from rlscale.simulation import run_scenario

REPEATS = 3


def scenario(replicas: int, rate: float, lengths: dict | None = None) -> ScenarioConfig:
    workload = {"arrival": {"process": "poisson", "rate_per_s": rate}}
    if lengths:
        workload["lengths"] = lengths
    return ScenarioConfig.model_validate({"fleet": {"replicas": replicas}, "workload": workload, "duration_s": 3600})


def measure(label: str, sc: ScenarioConfig) -> float:
    runs = [run_scenario(sc) for _ in range(REPEATS)]
    wall = statistics.median(r.wall_s for r in runs)
    k = runs[0].kpis
    print(
        f"{label:<52} {wall:6.2f} wall s/sim hour  {k.completed / wall:9.0f} completed req/wall s  "
        f"{k.output_tokens_per_s * 3600 / wall:11.0f} tokens/wall s"
    )
    return k.completed / wall


def days_in_fresh_process(days: float = 1.0) -> dict:
    """``days`` simulated days of the headline case in a new interpreter: wall time and peak RSS."""
    code = (
        "import json, resource, sys; sys.path.insert(0, 'benchmarks'); from sim_speed import scenario; "
        "from rlscale.simulation import run_scenario; "
        f"r = run_scenario(scenario(10, 50.0).model_copy(update={{'duration_s': {days * 86400.0}}})); "
        "print(json.dumps({'wall_s': r.wall_s, 'completed': r.kpis.completed, "
        "'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def print_days(label: str, run: dict) -> None:
    print(
        f"{label:<52} {run['wall_s']:6.1f} wall s        "
        f"{run['completed'] / run['wall_s']:9.0f} completed req/wall s  peak_rss_mb={run['peak_rss_mb']:.0f}"
    )


def main() -> None:
    print(f"core={rlscale.CORE}; median of {REPEATS} runs of one simulated hour each")
    measure("1 pod, 5 req/s, Azure lengths", scenario(1, 5.0))
    for out in (100, 1000):  # 2 req/s x 1000 tokens stays under one pod's ~3,300 tokens/s
        measure(
            f"1 pod, 2 req/s, 200 in / {out} out tokens",
            scenario(1, 2.0, {"kind": "fixed", "prompt_tokens": 200, "output_tokens": out}),
        )
    headline = measure("10 pods, 50 req/s, Azure lengths (headline)", scenario(10, 50.0))
    print_days("one simulated day of the headline case", days_in_fresh_process(1.0))
    if "--week" in sys.argv[1:]:  # ~30 M requests: a few minutes
        print_days("one simulated week of the headline case", days_in_fresh_process(7.0))
    print(f"simulated_requests_per_s={headline:.0f}")


if __name__ == "__main__":
    main()

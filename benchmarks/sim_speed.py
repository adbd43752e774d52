"""Simulator speed: wall seconds per simulated pod-hour, and proof that cost follows requests, not tokens.

Run: `make bench` (or `.venv/bin/python benchmarks/sim_speed.py`). Prints one line per case.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from rlscale.scenario import load_scenario
from rlscale.single_pod import run_single_pod

SCENARIO = Path(__file__).resolve().parents[1] / "envs" / "single-pod.yaml"
REPEATS = 3


def case(label: str, **overrides) -> None:
    base = load_scenario(SCENARIO)
    data = base.model_dump(mode="json")
    for path, value in overrides.items():
        *parents, key = path.split(".")
        node = data
        for p in parents:
            node = node[p]
        node[key] = value
    scenario = type(base).model_validate(data)
    runs = [run_single_pod(scenario) for _ in range(REPEATS)]
    wall = statistics.median(r.wall_s for r in runs)
    k = runs[0].kpis
    hours = scenario.duration_s / 3600
    print(
        f"{label:<48} {wall / hours:7.3f} wall s per sim hour   {k.arrived / wall:9.0f} req/wall s   "
        f"{k.output_tokens_per_s * scenario.duration_s / wall:11.0f} tokens/wall s"
    )


def main() -> None:
    print(f"single JetStream pod (llama2-7b, v5e-8, 88 slots), median of {REPEATS} runs of 1 simulated hour")
    case("5 req/s, Azure conversation lengths (preallocated)")
    case("5 req/s, Azure conversation lengths (paged KV)", **{"pod.kv_mode": "paged"})
    case("10 req/s, Azure conversation lengths", **{"workload.arrival.rate_per_s": 10.0})
    for out in (100, 1000):  # 2 req/s x 1000 tokens stays under the pod's ~3,300 tokens/s
        lengths = {"kind": "fixed", "prompt_tokens": 200, "output_tokens": out}
        case(f"2 req/s, 200 in / {out} out tokens", **{"workload.lengths": lengths, "workload.arrival.rate_per_s": 2.0})


if __name__ == "__main__":
    main()

"""Environment speed. Run: `.venv/bin/python benchmarks/env_speed.py`.

One episode of `rlscale/JetStream-v0` on envs/steady.yaml (4 pods of
Llama-2-7B on v5e-8, Poisson 16 req/s, Azure lengths, one simulated hour,
240 steps of 15 s) with a hold action. It splits wall time into the
simulator's (the fleet between syncs) and the environment's own (state,
observation, reward from the run's own KPI counts, bookkeeping), and prints `env_steps_per_s=<N>` last.
"""

from __future__ import annotations

import time

import gymnasium

import rlscale  # noqa: F401

REPEATS = 3


def timed(owner: object, name: str, total: list[float]) -> None:
    """Replace ``owner.name`` by a wrapper that adds its wall time to ``total[0]``."""
    inner = getattr(owner, name)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            total[0] += time.perf_counter() - start

    setattr(owner, name, wrapper)


def episode() -> tuple[float, float, float, int]:
    env = gymnasium.make("rlscale/JetStream-v0", scenario="envs/steady.yaml").unwrapped
    env.reset(seed=0)
    sim_s, summary_s = [0.0], [0.0]
    timed(env.sim.env, "run", sim_s)  # the fleet between syncs (it judges each request against the SLO as it ends)
    timed(env.sim, "kpis", summary_s)  # the episode's KPI summary in the last step's info
    start, steps, truncated = time.perf_counter(), 0, False
    while not truncated:
        *_, truncated, _ = env.step(env.max_delta)  # hold
        steps += 1
    return time.perf_counter() - start, sim_s[0], summary_s[0], steps


def main() -> None:
    runs = sorted(episode() for _ in range(REPEATS))
    wall, sim, summary, steps = runs[len(runs) // 2]
    own = wall - sim - summary
    print(f"steady scenario (Poisson 16 req/s, 4 pods), {steps} steps of 15 s, median of {REPEATS} episodes")
    print(
        f"wall {wall:.2f} s: simulator {sim:.2f} s; env own (state, obs, reward) {own:.3f} s "
        f"= {own / sim:.1%} of the simulator; end-of-episode KPI summary {summary:.3f} s"
    )
    print(f"env_steps_per_s={steps / wall:.0f}")


if __name__ == "__main__":
    main()

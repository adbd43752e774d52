"""Run one JetStream pod under a scenario's traffic and report its KPIs."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import simpy
from tqdm import tqdm

from rlscale.kpis import KPIs, compute_kpis
from rlscale.scenario import FixedLengthSpec, ScenarioConfig
from rlscale.serving.pod import JetStreamPod
from rlscale.serving.request import Request
from rlscale.workload.arrivals import PoissonArrivals
from rlscale.workload.lengths import FixedLengths, LengthSampler, azure_lengths

PROGRESS_CHUNKS = 100


@dataclass(frozen=True)
class SinglePodResult:
    kpis: KPIs
    pod: JetStreamPod
    requests: list[Request]
    wall_s: float


def length_sampler(scenario: ScenarioConfig) -> LengthSampler:
    spec = scenario.workload.lengths
    if isinstance(spec, FixedLengthSpec):
        return FixedLengths(spec.prompt_tokens, spec.output_tokens)
    return azure_lengths(spec.trace)


def run_single_pod(scenario: ScenarioConfig, progress: bool = False) -> SinglePodResult:
    """Simulate ``scenario.duration_s`` of one pod; independent random streams per subsystem."""
    arrival_rng, length_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(scenario.seed).spawn(2))
    env = simpy.Environment()
    pod = JetStreamPod(env, "jetstream-0", scenario.pod)
    lengths = length_sampler(scenario)
    arrivals = PoissonArrivals(scenario.workload.arrival.rate_per_s)
    requests: list[Request] = []

    def traffic():
        for i, t in enumerate(arrivals.times(arrival_rng, scenario.duration_s)):
            yield env.timeout(t - env.now)
            prompt, output = lengths.sample(length_rng)
            request = Request(i, env.now, prompt, output)
            requests.append(request)
            pod.submit(request)

    env.process(traffic())
    start = time.perf_counter()
    step = scenario.duration_s / PROGRESS_CHUNKS
    with tqdm(total=round(scenario.duration_s), unit="sim s", disable=not progress, leave=False) as bar:
        for k in range(1, PROGRESS_CHUNKS + 1):
            env.run(until=k * step)
            bar.update(round(k * step) - bar.n)
    wall = time.perf_counter() - start
    kpis = compute_kpis(requests, scenario.duration_s, scenario.slo.ttft_s, scenario.slo.tpot_s)
    return SinglePodResult(kpis, pod, requests, wall)

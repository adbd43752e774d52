"""Queueing theory: with decode removed and a fixed prompt, the prefill stage is an M/D/1 queue.

One-token answers take no decode step, every prompt pads to the same bucket,
so the device's service is deterministic: s = prefill_ms(256) + insert_ms(256)
(the server still inserts the result before it is done with it). With
Poisson arrivals at rate λ = ρ/s, Pollaczek–Khinchine gives the mean wait in
the prefill backlog Wq = ρ·s / (2(1−ρ)) and the mean backlog Lq = ρ²/(2(1−ρ)).
"""

from __future__ import annotations

import numpy as np
import pytest

from rlscale.clock import Clock
from rlscale.serving.pod import JetStreamPod
from rlscale.serving.request import Request, RequestState

pytestmark = pytest.mark.slow  # a long M/D/1 run against queueing theory

RHO = 0.5
N_REQUESTS = 120_000


@pytest.fixture(scope="module")
def md1_run():
    env = Clock()
    pod = JetStreamPod(env, "md1")
    service_s = (pod.step_model.prefill_ms(256) + pod.step_model.insert_ms(256)) / 1e3
    rate = RHO / service_s
    arrival_rng, sample_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(7).spawn(2))
    requests: list[Request] = []
    samples: list[float] = []

    def arrivals():
        for i in range(N_REQUESTS):
            yield env.timeout(arrival_rng.exponential(1 / rate))
            r = Request(i, env.now, 256, 1)
            requests.append(r)
            pod.submit(r)

    def sampler():  # Poisson sampling sees time averages (PASTA)
        while True:
            yield env.timeout(sample_rng.exponential(5 * service_s))
            samples.append(pod.metrics.registry.get_sample_value("jetstream_prefill_backlog_size", {"id": "md1"}))

    env.process(arrivals())
    env.process(sampler())
    horizon = N_REQUESTS / rate
    env.run(until=horizon)
    return service_s, rate, horizon, requests, np.array(samples)


def test_prefill_wait_matches_pollaczek_khinchine(md1_run):
    service_s, _, _, requests, _ = md1_run
    waits = np.array([r.prefill_start_s - r.arrival_s for r in requests if r.state is RequestState.COMPLETED])
    assert waits.size > 0.99 * N_REQUESTS
    assert waits.mean() == pytest.approx(RHO * service_s / (2 * (1 - RHO)), rel=0.05)


def test_backlog_gauge_matches_md1_and_littles_law(md1_run):
    _, _, horizon, requests, samples = md1_run
    expected_lq = RHO**2 / (2 * (1 - RHO))
    assert samples.mean() == pytest.approx(expected_lq, rel=0.06)
    waits = np.array([r.prefill_start_s - r.arrival_s for r in requests if r.state is RequestState.COMPLETED])
    measured_rate = len(requests) / horizon
    assert samples.mean() == pytest.approx(measured_rate * waits.mean(), rel=0.05)  # L = λW


def test_server_busy_fraction_is_rho(md1_run):
    _, _, horizon, requests, _ = md1_run
    busy = sum(r.insert_s - r.prefill_start_s for r in requests if r.state is RequestState.COMPLETED)  # + insert
    assert busy / horizon == pytest.approx(RHO, rel=0.02)

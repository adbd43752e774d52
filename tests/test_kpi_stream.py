"""KPIs accumulated as requests end agree with the exact ones computed from every request (counts and attainment
exactly, percentiles within the sketch's stated relative error), and a run's memory does not grow with the requests
it has simulated."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from rlscale.kpi_stream import RELATIVE_ACCURACY, QuantileSketch
from rlscale.kpis import SLO, compute_kpis, percentile_key
from rlscale.scenario import ScenarioConfig
from rlscale.serving.request import Request
from rlscale.simulation import Simulation

QS = (1, 50, 90, 99, 99.9)


def within_sketch_error(value: float, sample: np.ndarray, q: float) -> bool:
    """DDSketch's guarantee: within α (relative) of a value between the order statistics that bracket rank q."""
    low, high = np.percentile(sample, q, method="lower"), np.percentile(sample, q, method="higher")
    return low * (1 - RELATIVE_ACCURACY) <= value <= high * (1 + RELATIVE_ACCURACY)


@pytest.mark.parametrize("seed", [0, 1])
def test_the_sketch_keeps_its_relative_error_on_heavy_tails(seed):
    rng = np.random.default_rng(seed)
    sample = np.concatenate([rng.lognormal(-3, 2, 50_000), rng.pareto(1.5, 20_000) + 1e-3, np.zeros(10)])
    sketch = QuantileSketch()
    for block in np.array_split(rng.permutation(sample), 7):
        sketch.add_many(block)
    assert sketch.count == sample.size
    for q in (0.5, *QS, 100):
        assert within_sketch_error(sketch.quantile(q), sample, q), q
    assert np.isnan(QuantileSketch().quantile(50))


def flash_crowd(duration_s: float = 1800.0) -> ScenarioConfig:
    """Queues, timeouts at the gateway, unfinished requests and an e2e SLO: every KPI has something to count."""
    return ScenarioConfig.model_validate({
        "fleet": {"replicas": 1, "gateway_timeout_s": 20.0},
        "workload": {"arrival": {"process": "flash-crowd", "base_rate_per_s": 3.0, "peak_rate_per_s": 14.0,
                                 "start_s": 300.0, "hold_s": 600.0}},
        "schedule": [{"at_s": 600.0, "replicas": 0}, {"at_s": 700.0, "replicas": 2}],
        "slo": {"e2e_s": 30.0},
        "duration_s": duration_s,
    })  # fmt: skip


def test_streamed_kpis_equal_the_exact_ones():
    scenario = flash_crowd()
    sim = Simulation.build(scenario)
    ended: list[Request] = []
    sim.done_listeners.append(ended.append)
    streamed = sim.run(percentiles=QS).kpis
    everything = ended + list(sim.fleet.in_flight_requests())
    slo = SLO(scenario.slo.ttft_p99_s, scenario.slo.tpot_p99_s, scenario.slo.e2e_s)
    exact = compute_kpis(everything, scenario.duration_s, slo, QS)
    assert streamed.failed > 100 and streamed.in_flight > 10 and 0.1 < streamed.slo_attainment < 0.99  # a real test
    for name in ("arrived", "completed", "failed", "in_flight", "failures", "throughput_req_per_s",
                 "output_tokens_per_s", "slo_attainment", "ttft_attainment", "tpot_attainment", "e2e_attainment",
                 "truncated_requests", "truncated_prompt_tokens", "capped_output_requests", "capped_output_tokens",
                 "slo_p99_met"):  # fmt: skip
        assert getattr(streamed, name) == getattr(exact, name), name
    done = [r for r in ended if r.state.value == "completed"]
    samples = {
        "ttft_s": np.array([r.ttft_s for r in done]),
        "latency_s": np.array([r.latency_s for r in done]),
        "tpot_s": np.array([r.tpot_s for r in done if r.target_tokens > 1]),
    }
    for kpi, sample in samples.items():
        for q in QS:
            assert within_sketch_error(getattr(streamed, kpi)[percentile_key(q)], sample, q), (kpi, q)


def requests_alive() -> int:
    gc.collect()
    return sum(type(o) is Request for o in gc.get_objects())  # type(): isinstance would touch every object


@pytest.mark.slow
def test_memory_holds_what_is_in_flight_not_what_was_simulated():
    """Four times the simulated time, four times the requests ended, and no more Request objects kept."""
    kept = {}
    for hours in (1, 4):
        scenario = ScenarioConfig.model_validate({
            "fleet": {"replicas": 2},
            "workload": {"arrival": {"process": "poisson", "rate_per_s": 6.0},
                         "lengths": {"kind": "fixed", "prompt_tokens": 200, "output_tokens": 60}},
            "duration_s": 3600.0 * hours,
        })  # fmt: skip
        before = requests_alive()
        sim = Simulation.build(scenario)
        result = sim.run()
        kept[hours] = (requests_alive() - before, result.kpis.arrived)
        del sim, result
    (one_kept, one_arrived), (four_kept, four_arrived) = kept[1], kept[4]
    assert four_arrived > 3.8 * one_arrived > 80_000
    # in flight at the end, plus what the metrics and timeline hold for their current interval: a few hundred
    assert four_kept < 1_000 and four_kept < 1.5 * one_kept + 100

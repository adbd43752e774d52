"""Arrival processes and length distributions against their own definitions.

Counts of a (thinned) Poisson process in a window are Poisson with mean the
integral of the rate over it, so each count is checked against a closed-form
integral within 4 standard deviations (sqrt of the mean). MMPP counts are not
Poisson; their spread is measured from batch means instead.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from rlscale.workload.arrivals import (
    DiurnalArrivals,
    FlashCrowdArrivals,
    MMPPArrivals,
    PoissonArrivals,
    RampArrivals,
    StepArrivals,
)
from rlscale.workload.lengths import EmpiricalLengths, LognormalLengths, fit_lognormal
from rlscale.workload.specs import DiurnalSpec, FlashCrowdSpec, MMPPSpec, PoissonSpec, RampSpec, StepSpec


# Each process built from its spec, as rlscale.workload.build does; the spec validates the parameters.
def poisson(rate_per_s):
    return PoissonArrivals(PoissonSpec(rate_per_s=rate_per_s))


def diurnal(mean_rate_per_s, amplitude, period_s=86_400.0, phase_s=0.0):
    spec = DiurnalSpec(
        process="diurnal", mean_rate_per_s=mean_rate_per_s, amplitude=amplitude, period_s=period_s, phase_s=phase_s
    )
    return DiurnalArrivals(spec)


def step(steps):
    return StepArrivals(StepSpec(process="step", steps=steps))


def ramp(from_rate_per_s, to_rate_per_s, start_s, end_s):
    fields = {"from_rate_per_s": from_rate_per_s, "to_rate_per_s": to_rate_per_s, "start_s": start_s, "end_s": end_s}
    return RampArrivals(RampSpec(process="ramp", **fields))


def flash_crowd(base_rate_per_s, peak_rate_per_s, start_s, rise_s, hold_s, decay_s):
    fields = {"base_rate_per_s": base_rate_per_s, "peak_rate_per_s": peak_rate_per_s, "start_s": start_s}
    return FlashCrowdArrivals(
        FlashCrowdSpec(process="flash-crowd", **fields, rise_s=rise_s, hold_s=hold_s, decay_s=decay_s)
    )


def mmpp(rates_per_s, mean_sojourn_s):
    return MMPPArrivals(MMPPSpec(process="mmpp", rates_per_s=rates_per_s, mean_sojourn_s=mean_sojourn_s))


def draw(process, until_s: float, seed: int = 0) -> np.ndarray:
    return np.fromiter(process.times(np.random.default_rng(seed), until_s), dtype=float)


def assert_count(times: np.ndarray, lo: float, hi: float, expected: float) -> None:
    count = int(((times >= lo) & (times < hi)).sum())
    assert abs(count - expected) < 4 * math.sqrt(expected), f"[{lo}, {hi}): {count} arrivals, expected {expected:.0f}"


def assert_valid_stream(times: np.ndarray, until_s: float) -> None:
    assert times.size > 0
    assert np.all(np.diff(times) >= 0)
    assert times[0] >= 0 and times[-1] < until_s


def test_poisson_count_matches_rate_times_horizon():
    rate, horizon = 5.0, 20_000.0
    times = draw(poisson(rate), horizon)
    assert_valid_stream(times, horizon)
    assert_count(times, 0, horizon, rate * horizon)
    gaps = np.diff(times)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.02)  # exponential gaps: CV 1


@pytest.mark.parametrize("phase_s", [0.0, 250.0])
def test_diurnal_counts_per_quarter_period_match_the_rate_integral(phase_s):
    mean, amplitude, period, cycles = 5.0, 0.8, 1000.0, 10
    times = draw(diurnal(mean, amplitude, period, phase_s), cycles * period)
    assert_valid_stream(times, cycles * period)
    # ∫ mean·(1 + a·sin(2π(t+φ)/P)) dt over [t0, t1] = mean·(t1 − t0) + mean·a·P/(2π)·(cos θ0 − cos θ1)
    for q in range(4):
        t0, t1 = q * period / 4, (q + 1) * period / 4
        theta0, theta1 = (2 * np.pi * (t + phase_s) / period for t in (t0, t1))
        per_cycle = mean * (t1 - t0) + mean * amplitude * period / (2 * np.pi) * (np.cos(theta0) - np.cos(theta1))
        count = int(((times % period >= t0) & (times % period < t1)).sum())
        expected = cycles * per_cycle
        assert abs(count - expected) < 4 * math.sqrt(expected), (q, count, expected)


def test_diurnal_rate_at_follows_the_sine():
    d = diurnal(10.0, 0.5, period_s=100.0, phase_s=10.0)
    assert d.rate_at(15.0) == pytest.approx(15.0)  # sin(π/2) = 1
    assert d.rate_at(65.0) == pytest.approx(5.0)


def test_step_counts_match_each_step():
    process = step(((10.0, 5.0), (1000.0, 50.0), (2000.0, 1.0)))
    times = draw(process, 4000.0)
    assert_valid_stream(times, 4000.0)
    assert times[0] >= 10.0  # no traffic before the first step
    assert_count(times, 10, 1000, 5 * 990)
    assert_count(times, 1000, 2000, 50 * 1000)
    assert_count(times, 2000, 4000, 1 * 2000)
    assert [process.rate_at(t) for t in (0, 10, 999.9, 1000, 3000)] == [0, 5, 5, 50, 1]


def test_step_accepts_lists_and_is_hashable():
    process = step([[0, 1], [5, 2]])
    assert process.spec.steps == ((0.0, 1.0), (5.0, 2.0))
    assert hash(process) == hash(step(((0, 1), (5, 2))))


def test_ramp_counts_match_the_trapezoids():
    process = ramp(2.0, 20.0, start_s=100.0, end_s=1100.0)
    times = draw(process, 2000.0)
    assert_valid_stream(times, 2000.0)
    assert_count(times, 0, 100, 2 * 100)
    assert_count(times, 100, 600, 500 * (2 + 11) / 2)  # the rate is 11 half-way
    assert_count(times, 600, 1100, 500 * (11 + 20) / 2)
    assert_count(times, 1100, 2000, 20 * 900)
    assert process.rate_at(600.0) == pytest.approx(11.0)


def test_ramp_down_to_zero_stops_traffic():
    times = draw(ramp(10.0, 0.0, start_s=0.0, end_s=100.0), 1000.0)
    assert_count(times, 0, 100, 10 * 100 / 2)
    assert times[-1] < 100.0


def test_flash_crowd_counts_match_rise_hold_decay():
    base, peak = 2.0, 50.0
    process = flash_crowd(base, peak, start_s=100.0, rise_s=50.0, hold_s=100.0, decay_s=200.0)
    times = draw(process, 600.0)
    assert_valid_stream(times, 600.0)
    assert_count(times, 0, 100, base * 100)
    assert_count(times, 100, 150, 50 * (base + peak) / 2)
    assert_count(times, 150, 250, peak * 100)
    assert_count(times, 250, 450, 200 * (base + peak) / 2)
    assert_count(times, 450, 600, base * 150)
    assert [process.rate_at(t) for t in (99, 125, 200, 350, 500)] == pytest.approx([2, 26, 50, 26, 2])


def test_flash_crowd_with_instant_edges_is_a_pulse():
    process = flash_crowd(1.0, 40.0, start_s=50.0, rise_s=0.0, hold_s=100.0, decay_s=0.0)
    times = draw(process, 300.0)
    assert [process.rate_at(t) for t in (49.9, 50.0, 149.9, 150.0)] == [1, 40, 40, 1]
    assert_count(times, 50, 150, 40 * 100)
    assert_count(times, 150, 300, 1 * 150)


MMPP_RATES, MMPP_SOJOURNS = (1.0, 5.0, 30.0), (4.0, 2.0, 1.0)


def test_mmpp_long_run_rate_weights_states_by_sojourn():
    process = mmpp(MMPP_RATES, MMPP_SOJOURNS)
    expected_rate = sum(r * s for r, s in zip(MMPP_RATES, MMPP_SOJOURNS, strict=True)) / sum(MMPP_SOJOURNS)
    assert process.mean_rate_per_s == pytest.approx(expected_rate)
    assert process.rate_at(123.0) == pytest.approx(expected_rate)
    horizon, batches = 100_000.0, 100
    times = draw(process, horizon)
    assert_valid_stream(times, horizon)
    # Batches of 1000 s (hundreds of sojourns) are nearly independent: their spread bounds the total's.
    per_batch = np.bincount((times // (horizon / batches)).astype(int), minlength=batches)
    tolerance = 4 * per_batch.std() * math.sqrt(batches)
    assert abs(times.size - expected_rate * horizon) < tolerance
    assert tolerance < 0.05 * expected_rate * horizon  # the check has teeth
    # An unweighted average of the rates (12/s) is far outside it.
    assert abs(times.size - np.mean(MMPP_RATES) * horizon) > tolerance


def test_mmpp_counts_are_overdispersed():
    times = draw(mmpp((2.0, 20.0), (5.0, 5.0)), 20_000.0)
    counts = np.bincount((times // 10.0).astype(int), minlength=2000)
    assert counts.var() / counts.mean() > 1.5
    poisson_counts = np.bincount((draw(poisson(11.0), 20_000.0) // 10.0).astype(int), minlength=2000)
    assert poisson_counts.var() / poisson_counts.mean() < 1.2


def test_mmpp_starts_in_the_stationary_distribution():
    """Averaged over seeds, the first instants see the long-run rate, not the plain mean of the states'."""
    process = mmpp(MMPP_RATES, MMPP_SOJOURNS)
    window, seeds = 0.2, 3000
    counts = np.array([draw(process, window, seed).size for seed in range(seeds)])
    sem = counts.std() / math.sqrt(seeds)
    assert abs(counts.mean() - process.mean_rate_per_s * window) < 4 * sem
    assert abs(counts.mean() - np.mean(MMPP_RATES) * window) > 4 * sem


def test_mmpp_visits_every_state():
    """An off state (rate 0) leaves silent gaps; a 2-state on/off chain alternates."""
    times = draw(mmpp((0.0, 50.0), (10.0, 10.0)), 4000.0)
    gaps = np.diff(times)
    assert (gaps > 5.0).sum() >= 40  # ~200 off periods of mean 10 s, ~60% of them over 5 s
    assert times.size == pytest.approx(25 * 4000, rel=0.25)  # index of dispersion ~250: sd ~5%


ALL_PROCESSES = [
    poisson(3.0),
    diurnal(3.0, 0.5, period_s=60.0),
    step(((0.0, 1.0), (30.0, 6.0))),
    ramp(1.0, 6.0, 10.0, 50.0),
    flash_crowd(1.0, 9.0, 10.0, 5.0, 10.0, 5.0),
    mmpp((1.0, 9.0), (3.0, 3.0)),
]


@pytest.mark.parametrize("process", ALL_PROCESSES, ids=lambda p: type(p).__name__)
def test_same_seed_same_times_and_different_seed_different_times(process):
    a, b, c = draw(process, 100.0, seed=3), draw(process, 100.0, seed=3), draw(process, 100.0, seed=4)
    assert a.size > 0
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert_valid_stream(a, 100.0)


@pytest.mark.parametrize("process", ALL_PROCESSES, ids=lambda p: type(p).__name__)
def test_a_shorter_horizon_is_a_prefix(process):
    """Cutting at until_s changes nothing before it (the draws do not depend on the horizon)."""
    long, short = draw(process, 100.0, seed=5), draw(process, 40.0, seed=5)
    assert np.array_equal(long[long < 40.0], short)


def test_nothing_before_time_zero_horizon():
    assert draw(poisson(5.0), 0.0).size == 0
    assert draw(mmpp((1.0, 2.0), (1.0, 1.0)), 0.0).size == 0


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: poisson(0.0), "rate_per_s"),
        (lambda: diurnal(-1.0, 0.5), "mean_rate_per_s"),
        (lambda: diurnal(1.0, 1.5), "amplitude"),
        (lambda: diurnal(1.0, 0.5, period_s=0.0), "period_s"),
        (lambda: step(()), "steps"),
        (lambda: step(((0.0, 1.0), (0.0, 2.0))), r"steps\[1\] start_s"),
        (lambda: step(((0.0, -1.0),)), r"steps\[0\] rate_per_s"),
        (lambda: step(((0.0, 0.0),)), "steps"),
        (lambda: ramp(-1.0, 2.0, 0.0, 10.0), "from_rate_per_s"),
        (lambda: ramp(1.0, -2.0, 0.0, 10.0), "to_rate_per_s"),
        (lambda: ramp(1.0, 2.0, 10.0, 10.0), "end_s"),
        (lambda: ramp(1.0, 2.0, -1.0, 10.0), "start_s"),
        (lambda: flash_crowd(5.0, 2.0, 0.0, 1.0, 1.0, 1.0), "peak_rate_per_s"),
        (lambda: flash_crowd(-1.0, 2.0, 0.0, 1.0, 1.0, 1.0), "base_rate_per_s"),
        (lambda: flash_crowd(1.0, 2.0, 0.0, -1.0, 1.0, 1.0), "rise_s"),
        (lambda: flash_crowd(1.0, 2.0, 0.0, 1.0, -1.0, 1.0), "hold_s"),
        (lambda: flash_crowd(1.0, 2.0, 0.0, 1.0, 1.0, -1.0), "decay_s"),
        (lambda: mmpp((1.0,), (1.0,)), "rates_per_s"),
        (lambda: mmpp((1.0, 2.0), (1.0,)), "mean_sojourn_s"),
        (lambda: mmpp((1.0, -2.0), (1.0, 1.0)), r"rates_per_s\[1\]"),
        (lambda: mmpp((1.0, 2.0), (1.0, 0.0)), r"mean_sojourn_s\[1\]"),
        (lambda: mmpp((0.0, 0.0), (1.0, 1.0)), "rates_per_s"),
        (lambda: LognormalLengths(0.0, 1.0, 100.0, 1.0), "prompt_median"),
        (lambda: LognormalLengths(100.0, -1.0, 100.0, 1.0), "prompt_sigma"),
        (lambda: LognormalLengths(100.0, 1.0, -5.0, 1.0), "output_median"),
        (lambda: LognormalLengths(100.0, 1.0, 100.0, -0.1), "output_sigma"),
        (lambda: LognormalLengths(100.0, 1.0, 100.0, 1.0, max_prompt=0), "max_prompt"),
        (lambda: LognormalLengths(100.0, 1.0, 100.0, 1.0, max_output=2.5), "max_output"),
    ],
)
def test_invalid_parameters_name_the_field(make, field):
    with pytest.raises(ValueError, match=field):
        make()


def test_lognormal_lengths_follow_their_parameters():
    dist = LognormalLengths(800.0, 0.9, 150.0, 0.6)
    rng = np.random.default_rng(0)
    samples = np.array([dist.sample(rng) for _ in range(20_000)])
    assert samples.dtype.kind == "i" and samples.min() >= 1
    logs = np.log(samples)
    assert np.median(samples[:, 0]) == pytest.approx(800, rel=0.03)
    assert np.median(samples[:, 1]) == pytest.approx(150, rel=0.03)
    assert logs[:, 0].std() == pytest.approx(0.9, rel=0.03)
    assert logs[:, 1].std() == pytest.approx(0.6, rel=0.03)
    assert abs(np.corrcoef(logs.T)[0, 1]) < 0.03  # independent


def test_lognormal_lengths_round_to_at_least_one_and_respect_caps():
    rng = np.random.default_rng(1)
    tiny = np.array([LognormalLengths(0.2, 0.1, 0.2, 0.1).sample(rng) for _ in range(100)])
    assert np.all(tiny == 1)
    capped = np.array([LognormalLengths(1000.0, 2.0, 100.0, 2.0, 1500, 120).sample(rng) for _ in range(2000)])
    assert capped[:, 0].max() == 1500 and capped[:, 1].max() == 120
    assert LognormalLengths(7.0, 0.0, 3.0, 0.0).sample(rng) == (7, 3)


def test_fit_lognormal_recovers_lognormal_data():
    rng = np.random.default_rng(2)
    prompts = np.maximum(1, np.round(rng.lognormal(np.log(600), 0.7, 50_000))).astype(int)
    outputs = np.maximum(1, np.round(rng.lognormal(np.log(90), 1.1, 50_000))).astype(int)
    for method in ("median", "mle"):
        fit = fit_lognormal(EmpiricalLengths(prompts, outputs), method=method)
        assert fit.prompt_median == pytest.approx(600, rel=0.02)
        assert fit.output_median == pytest.approx(90, rel=0.03)
        assert fit.prompt_sigma == pytest.approx(0.7, rel=0.02)
        assert fit.output_sigma == pytest.approx(1.1, rel=0.02)
        assert fit.max_prompt is None
    capped = fit_lognormal(EmpiricalLengths(prompts, outputs), cap=True)
    assert (capped.max_prompt, capped.max_output) == (prompts.max(), outputs.max())


def test_fit_lognormal_mle_is_the_log_moments():
    prompts, outputs = np.array([10, 100, 1000]), np.array([1, 2, 4, 8])
    fit = fit_lognormal(EmpiricalLengths(prompts, outputs), method="mle")
    assert fit.prompt_median == pytest.approx(100.0)  # geometric mean
    assert fit.prompt_sigma == pytest.approx(np.log(10) * math.sqrt(2 / 3))
    assert fit.output_median == pytest.approx(math.sqrt(8))
    with pytest.raises(ValueError, match="method"):
        fit_lognormal(EmpiricalLengths(prompts, outputs), method="moments")  # type: ignore[arg-type]

"""The ServeGen client-pool arrival process against its definition, on small production-shaped files.

Every statistical check states its false-alarm rate: 0.1% for the whole test (Bonferroni over its windows or
blocks). Counts: a Gamma(k = 1) window is a Poisson process, so its count is exactly Poisson(rate · 600 s); for
other shapes the mean count of a stationary renewal process is still exactly rate · 600 s, tested on the mean of
many independent windows (normal approximation). Gaps after a window's first arrival are i.i.d. draws of the
window's law, tested with Kolmogorov-Smirnov and, for a Gamma window, the CV (delta method).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

from rlscale.workload.clientpool import ClientPoolArrivals, renewal_window, sample_quantiles
from rlscale.workload.lengths import FixedLengths
from rlscale.workload.servegen import QUANTILE_GRID, WINDOW_S, quantile_table, read_service_folder
from tests.servegen_files import IDLE, write_dataset, write_trace

ALPHA = 1e-3  # false-alarm rate of each test


def pool(folder, traces: dict[int, list], first: int = 0, n: int | None = None, scale: float = 1.0):
    for client, windows in traces.items():
        write_trace(folder, client, windows)
    service = read_service_folder(folder)
    return ClientPoolArrivals(service, np.arange(len(traces)), first, n or service.n_windows, scale)


def counts(process: ClientPoolArrivals, seed: int = 0) -> np.ndarray:
    until = process.n_windows * WINDOW_S
    times = np.fromiter(process.times(np.random.default_rng(seed), until), dtype=float)
    assert np.all(np.diff(times) >= 0) and times[0] >= 0 and times[-1] < until
    return np.bincount((times // WINDOW_S).astype(int), minlength=process.n_windows)


def test_poisson_windows_count_exactly_the_scaled_rate_of_each_window(tmp_path):
    """A day-shaped pool of two Poisson clients at half rate: each window's count is Poisson(0.5 · rate · 600)."""
    day = np.arange(144)
    shaped = [(0.2 * (1 + 0.8 * np.sin(2 * np.pi * i / 144)), "Gamma", 1.0, 1.0) for i in day]
    process = pool(tmp_path, {0: shaped, 1: [(0.3, "Gamma", 1.0, 3.3)] * 144}, scale=0.5)
    expected = 0.5 * WINDOW_S * np.array([r + 0.3 for r, *_ in shaped])
    assert process.window_rates() * WINDOW_S == pytest.approx(expected)
    n = counts(process)
    two_sided = 2 * np.minimum(stats.poisson.cdf(n, expected), stats.poisson.sf(n - 1, expected))
    assert two_sided.min() > ALPHA / 2 / 144, f"window {two_sided.argmin()}: {n[two_sided.argmin()]} arrivals"
    total = stats.poisson(expected.sum())
    assert min(total.cdf(n.sum()), total.sf(n.sum() - 1)) > ALPHA / 4  # the whole day, more power for a small bias


# (family, shape): CV 2, 2.24, 0.5, 0.52; a window restarted with an ordinary gap would be off by (CV² - 1) / 2
BLOCKS = [("Gamma", 0.25), ("Weibull", 0.5), ("Gamma", 4.0), ("Weibull", 2.0)]


def test_bursty_and_regular_windows_count_the_data_rate_on_average(tmp_path):
    rate, per_block = 1 / 30, 600  # 20 arrivals a window: boundaries matter
    windows = [(rate, family, shape, 1.0) for family, shape in BLOCKS for _ in range(per_block)]
    n = counts(pool(tmp_path, {0: windows})).reshape(len(BLOCKS), per_block)
    t = (n.mean(axis=1) - rate * WINDOW_S) / (n.std(axis=1, ddof=1) / np.sqrt(per_block))
    assert np.abs(t).max() < stats.norm.isf(ALPHA / 2 / len(BLOCKS)), dict(zip(BLOCKS, t.round(2), strict=True))


def gamma_cv_sd(k: float, n: int) -> float:
    """Standard deviation of the sample CV of n Gamma(k) draws (delta method on the first two sample moments)."""
    m1, m2, m3, m4 = (np.prod(k + np.arange(j)) for j in (1, 2, 3, 4))
    s = np.sqrt(m2 - m1**2)
    grad = np.array([-1 / s - s / m1**2, 1 / (2 * s * m1)])
    cov = np.array([[m2 - m1**2, m3 - m1 * m2], [m3 - m1 * m2, m4 - m2**2]])
    return float(np.sqrt(grad @ cov @ grad / n))


def first_gaps(family: str, shape: float, rate: float, rows: int = 5000, gaps: int = 10):
    """Each row's first arrival and the ``gaps`` gaps after it, from one window long enough that none is cut."""
    code = np.full(rows, 0 if family == "Gamma" else 1)
    width = 300 / rate
    times, owner = renewal_window(np.random.default_rng(1), code, np.full(rows, shape), np.full(rows, rate), width)
    order = np.lexsort((times, owner))
    times, owner = times[order], owner[order]
    starts = np.searchsorted(owner, np.arange(rows))
    assert np.diff(np.append(starts, owner.size)).min() > gaps  # no row's first gaps were cut by the window's end
    row_times = times[starts[:, np.newaxis] + np.arange(gaps + 1)]
    return row_times[:, 0], np.diff(row_times, axis=1).ravel()


def law(family: str, shape: float, rate: float):
    """The window's gap law rescaled to mean 1/rate."""
    if family == "Gamma":
        return stats.gamma(shape, scale=1 / (rate * shape))
    return stats.weibull_min(shape, scale=1 / (rate * special.gamma(1 + 1 / shape)))


def residual_cdf(family: str, shape: float, rate: float, x: np.ndarray) -> np.ndarray:
    """Forward-recurrence CDF, (1/μ)∫₀ˣ S: x·S(x)/μ + P(length-biased gap <= x)."""
    gap = law(family, shape, rate)
    mean = 1 / rate
    if family == "Gamma":
        biased = stats.gamma(shape + 1, scale=gap.kwds["scale"]).cdf(x)
    else:
        biased = stats.gamma(1 + 1 / shape).cdf((x / gap.kwds["scale"]) ** shape)
    return x * gap.sf(x) / mean + biased


@pytest.mark.parametrize(("family", "shape"), [("Gamma", 0.25), ("Gamma", 4.0), ("Weibull", 0.5)])
def test_gaps_follow_the_window_law_and_a_window_starts_in_equilibrium(family, shape):
    rate = 2.0
    first, gaps = first_gaps(family, shape, rate)
    assert stats.kstest(gaps, law(family, shape, rate).cdf).pvalue > ALPHA / 2
    assert stats.kstest(first, lambda x: residual_cdf(family, shape, rate, x)).pvalue > ALPHA / 2


def test_a_gamma_window_reproduces_the_data_cv():
    k, rate = 0.25, 2.0  # the data's CV column for a Gamma window is 1/sqrt(k) = 2
    _, gaps = first_gaps("Gamma", k, rate)
    cv = gaps.std() / gaps.mean()
    assert abs(cv - 1 / np.sqrt(k)) < stats.norm.isf(ALPHA / 2) * gamma_cv_sd(k, gaps.size), cv


def test_same_seed_same_arrivals_and_a_shorter_run_is_a_prefix(tmp_path):
    windows = [(0.05, "Weibull", 0.6, 1.0), (0.1, "Gamma", 0.3, 1.0), IDLE] * 10
    process = pool(tmp_path, {0: windows, 1: windows[::-1]})
    draw = lambda seed, until: list(process.times(np.random.default_rng(seed), until))  # noqa: E731
    assert draw(5, 18_000) == draw(5, 18_000)
    assert draw(5, 18_000) != draw(6, 18_000)
    assert draw(5, 18_000)[: len(draw(5, 7_000))] == draw(5, 7_000) and max(draw(5, 7_000)) < 7_000
    fallback = FixedLengths(100, 50)
    a = list(process.requests(np.random.default_rng(5), np.random.default_rng(9), 18_000, fallback))
    assert a == list(process.requests(np.random.default_rng(5), np.random.default_rng(9), 18_000, fallback))
    assert [t for t, _, _ in a] == draw(5, 18_000)  # lengths draw from their own stream


def test_played_windows_start_at_time_zero_and_scale_the_rate(tmp_path):
    windows = [IDLE] * 5 + [(0.5, "Gamma", 1.0, 2.0)] * 3 + [IDLE] * 2
    process = pool(tmp_path, {0: windows}, first=4, n=5, scale=0.2)
    assert process.window_rates().tolist() == pytest.approx([0, 0.1, 0.1, 0.1, 0])
    assert [process.rate_at(t) for t in (599, 600, 2399, 2400, 3000)] == pytest.approx([0, 0.1, 0.1, 0, 0])
    n = counts(process)
    assert n[0] == n[4] == 0 and n[1:4].sum() > 0


def test_lengths_stay_with_the_client_and_window_that_made_the_request(tmp_path):
    """Client 0 has lengths for its first 6 hours only, client 1 none: every (7, 3) request is client 0's within
    those hours, so their number is Poisson(client 0's rate · 6 h); everything else falls back."""
    write_dataset(tmp_path, 0, {0: ({7: 1.0}, {3: 1.0}), 1: ({}, {})})
    process = pool(tmp_path, {0: [(0.02, "Gamma", 1.0, 50.0)] * 72, 1: [(0.03, "Gamma", 1.0, 33.3)] * 72})
    requests = list(process.requests(np.random.default_rng(2), np.random.default_rng(3), 43_200, FixedLengths(100, 50)))
    own = np.array([t for t, p, o in requests if (p, o) == (7, 3)])
    assert {(p, o) for _, p, o in requests} == {(7, 3), (100, 50)} and own.max() < 21_600
    expected = stats.poisson(0.02 * 21_600)
    assert min(expected.cdf(own.size), expected.sf(own.size - 1)) > ALPHA / 2


def test_quantile_sampling_has_the_table_mean():
    """Between grid probabilities the inverse CDF is linear; rounding a uniform between two integers is unbiased, so
    the sampler's mean is the table's trapezoid integral exactly."""
    table = quantile_table({1: 0.5, 4: 0.3, 20: 0.2})[np.newaxis]
    exact = float(np.sum(np.diff(QUANTILE_GRID) * (table[0, 1:] + table[0, :-1]) / 2))
    assert exact == pytest.approx(5.605)  # the pdf's own mean is 5.7: the tables smooth each 1% step
    draws = sample_quantiles(np.random.default_rng(4), table, np.zeros(200_000, dtype=np.int64))
    assert set(np.unique(draws)) <= set(range(1, 21))
    assert abs(draws.mean() - exact) < stats.norm.isf(ALPHA / 2) * draws.std() / np.sqrt(draws.size)

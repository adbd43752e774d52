"""A ServeGen client pool as an arrival process: each client a renewal process per window, the pool their superposition.

**Gaps.** In each 600 s window a client sends at the window's rate ``r``
(times ``rate_scale``), with gaps from the window's fitted family rescaled
to mean ``1/r``: Gamma(k, θ' = 1/(r·k)) or Weibull(c, λ' = 1/(r·Γ(1 + 1/c))).
Rescaling keeps the family's shape and so its CV (a Gamma window's CV is
1/√k, which is the data's CV column).

**Window boundaries.** Every window starts its clients' processes afresh, in
equilibrium: the first arrival comes after a *forward-recurrence* gap, the
residual of a gap seen from a random instant (U times a length-biased gap;
length-biased Gamma(k) is Gamma(k + 1), and Weibull(c)'s is G^(1/c) with
G ~ Gamma(1 + 1/c)). A stationary renewal process has exactly ``r·width``
expected arrivals in any interval, so each window's mean count is the data's.
Carrying a pending gap over would not be: a long gap drawn at a quiet
window's rate would silence the busy window after it, and starting each
window with an ordinary gap, or an arrival at its start, biases a bursty
window's count by about (CV² − 1)/2 (ServeGen's own generator instead
rescales ceil(r·width) gaps to fill the window exactly, which removes the
count's variance). What a boundary loses is only the memory of the last gap.

**Rate scale** multiplies every client's rate, so the daily shape and each
window's CV stay; a scaled-down pool has fewer arrivals per client and so
relatively larger swings from window to window than production's.

**Lengths** stay with the client and window that produced a request: drawn
from the client's prompt and output distributions for the covering 6-hour
window (quantile tables, :mod:`rlscale.workload.servegen`; ServeGen gives the
two marginals only, so they are drawn independently), and from the
``fallback`` sampler (the scenario's ``workload.lengths``) where the data has
none: m-large and m-mid, m-small clients without a dataset file, and empty
windows.

**Cost.** A window is drawn for all its active clients at once with numpy
(gaps in batches sized from the expected count, topped up while any client's
clock is inside the window), merged, sorted and yielded lazily, window by
window, so a week streams in constant memory and draws about 1.25 gaps per
request plus 8 per active client and window.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy.special import gammaln

from rlscale.workload.lengths import LengthSampler
from rlscale.workload.servegen import LENGTH_WINDOW_S, QUANTILE_GRID, WINDOW_S, ServeGenService

GAMMA = 0  # family codes, as in servegen.FAMILIES
BATCH_SLACK = 1.25  # gaps drawn per expected arrival in a round
MIN_BATCH = 8  # gaps drawn per client and round at least


def _log_scales(family: np.ndarray, shape: np.ndarray, rate_per_s: np.ndarray) -> np.ndarray:
    """log of each row's scale for a mean gap of 1/rate: Gamma θ' = 1/(r·k), Weibull λ' = 1/(r·Γ(1 + 1/c));
    in logs so that a tiny Weibull shape (Γ(1 + 1/c) beyond float range) stays finite."""
    return np.where(family == GAMMA, -np.log(shape), -gammaln(1 + 1 / shape)) - np.log(rate_per_s)


def _gaps(rng: np.random.Generator, family: np.ndarray, shape: np.ndarray, log_scale: np.ndarray) -> np.ndarray:
    """One gap per row: Gamma(k)·θ', or Weibull λ'·E^(1/c) with E ~ Exp(1)."""
    gamma = family == GAMMA
    out = np.empty(family.size)
    out[gamma] = rng.gamma(shape[gamma]) * np.exp(log_scale[gamma])
    with np.errstate(divide="ignore"):  # an exponential draw of exactly 0 is a gap of 0
        out[~gamma] = np.exp(np.log(rng.standard_exponential(int((~gamma).sum()))) / shape[~gamma] + log_scale[~gamma])
    return out


def _residual_gaps(
    rng: np.random.Generator, family: np.ndarray, shape: np.ndarray, log_scale: np.ndarray
) -> np.ndarray:
    """Forward-recurrence gaps (the time to the next arrival from a random instant): U × a length-biased gap."""
    gamma = family == GAMMA
    log_biased = np.empty(family.size)
    with np.errstate(divide="ignore"):
        log_biased[gamma] = np.log(rng.gamma(shape[gamma] + 1))
        log_biased[~gamma] = np.log(rng.gamma(1 + 1 / shape[~gamma])) / shape[~gamma]
    return rng.random(family.size) * np.exp(log_biased + log_scale)


def renewal_window(
    rng: np.random.Generator, family: np.ndarray, shape: np.ndarray, rate_per_s: np.ndarray, width_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """Arrival offsets in [0, width_s) of one stationary renewal process per row, and the row of each (unsorted)."""
    log_scale = _log_scales(family, shape, rate_per_s)
    clock = _residual_gaps(rng, family, shape, log_scale)
    rows = np.arange(family.size)
    times, owners = [clock[clock < width_s]], [rows[clock < width_s]]
    growth = 1
    while (inside := clock < width_s).any():
        rows, clock = rows[inside], clock[inside]
        n = (np.ceil(BATCH_SLACK * rate_per_s[rows] * (width_s - clock)).astype(np.int64) + MIN_BATCH) * growth
        seg = np.repeat(np.arange(rows.size), n)
        gaps = _gaps(rng, family[rows[seg]], shape[rows[seg]], log_scale[rows[seg]])
        ends = np.cumsum(n)
        cum = np.cumsum(gaps)
        t = clock[seg] + (cum - (cum[ends - n] - gaps[ends - n])[seg])  # each row's own running sum
        times.append(t[t < width_s])
        owners.append(rows[seg][t < width_s])
        clock = t[ends - 1]
        growth *= 2  # a client still inside after a round is in a burst: take bigger batches
    return np.concatenate(times), np.concatenate(owners)


def select_clients(service: ServeGenService, ids: list[int] | None, top: int | None, rank_days: int) -> np.ndarray:
    """Client indices: the listed ids, the ``top`` clients by requests over the first ``rank_days`` days (ties to
    the lower id), or all."""
    if ids is not None:
        return service.client_index(ids)
    if top is None:
        return np.arange(service.client_ids.size)
    if not 1 <= top <= service.client_ids.size:
        raise ValueError(f"{service.name}: top must be in [1, {service.client_ids.size}] (its clients), got {top}")
    volume = service.requests_per_client(0, rank_days * 86_400 // WINDOW_S)
    return np.sort(np.argsort(-volume, kind="stable")[:top])


class ClientPoolArrivals:
    """The superposition of ``clients``' renewal processes over windows [first_window, first_window + n_windows) of
    ``service``, time 0 at the first; see the module docstring."""

    def __init__(
        self, service: ServeGenService, clients: np.ndarray, first_window: int, n_windows: int, rate_scale: float
    ) -> None:
        if not (first_window >= 0 and n_windows >= 1 and first_window + n_windows <= service.n_windows):
            raise ValueError(
                f"{service.name}: windows [{first_window}, {first_window + n_windows}) are outside its "
                f"{service.n_windows} windows"
            )
        if not rate_scale > 0:
            raise ValueError(f"rate_scale must be > 0, got {rate_scale}")
        self.service, self.first_window, self.n_windows, self.rate_scale = service, first_window, n_windows, rate_scale
        chosen = np.zeros(service.client_ids.size, dtype=bool)
        chosen[clients] = True
        keep = chosen[service.client] & (service.window >= first_window) & (service.window < first_window + n_windows)
        self._client = service.client[keep]
        self._family, self._shape = service.family[keep], service.shape[keep]
        self._rate = service.rate_per_s[keep] * rate_scale
        window = service.window[keep] - first_window
        self._starts = np.searchsorted(window, np.arange(n_windows + 1))
        self._window_rates = np.bincount(window, weights=self._rate, minlength=n_windows)
        n_length_windows = -(-service.n_windows * WINDOW_S // LENGTH_WINDOW_S)
        self._length_row = np.full((service.client_ids.size, n_length_windows), -1, dtype=np.int64)
        self._length_row[service.length_client, service.length_window] = np.arange(service.length_client.size)

    def window_rates(self) -> np.ndarray:
        """The pool's rate in each played window, req/s (after rate_scale)."""
        return self._window_rates.copy()

    def rate_at(self, t: float) -> float:
        """Expected arrivals per second at ``t``: the pool's rate in the window holding it (0 outside)."""
        k = int(t // WINDOW_S)
        return float(self._window_rates[k]) if 0 <= k < self.n_windows else 0.0

    def _windows(self, rng: np.random.Generator, until_s: float) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
        """Per window that has arrivals: their sorted times, the traffic row of each, and the window's index."""
        for k in range(self.n_windows):
            if k * WINDOW_S >= until_s:
                return
            lo, hi = self._starts[k], self._starts[k + 1]
            if lo == hi:
                continue
            offsets, rows = renewal_window(rng, self._family[lo:hi], self._shape[lo:hi], self._rate[lo:hi], WINDOW_S)
            order = np.argsort(offsets, kind="stable")
            yield k * WINDOW_S + offsets[order], lo + rows[order], k

    def times(self, rng: np.random.Generator, until_s: float) -> Iterator[float]:
        for times, _, _ in self._windows(rng, until_s):
            yield from times[times < until_s].tolist()

    def requests(
        self,
        arrival_rng: np.random.Generator,
        length_rng: np.random.Generator,
        until_s: float,
        fallback: LengthSampler,
    ) -> Iterator[tuple[float, int, int]]:
        """(arrival s, prompt tokens, output tokens); arrivals and lengths draw from separate streams, so the
        arrival times are those of :meth:`times` with the same ``arrival_rng``."""
        for times, rows, k in self._windows(arrival_rng, until_s):
            times = times[times < until_s]
            prompts, outputs = self._lengths(length_rng, rows[: times.size], k, fallback)
            yield from zip(times.tolist(), prompts.tolist(), outputs.tolist(), strict=True)

    def _lengths(
        self, rng: np.random.Generator, rows: np.ndarray, k: int, fallback: LengthSampler
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each request's lengths from its client's tables for the covering 6-hour window, else from ``fallback``."""
        table = self._length_row[self._client[rows], (self.first_window + k) * WINDOW_S // LENGTH_WINDOW_S]
        known = table >= 0
        prompts = np.empty(rows.size, dtype=np.int64)
        outputs = np.empty(rows.size, dtype=np.int64)
        prompts[known] = sample_quantiles(rng, self.service.prompt_quantiles, table[known])
        outputs[known] = sample_quantiles(rng, self.service.output_quantiles, table[known])
        if not known.all():
            prompts[~known], outputs[~known] = fallback.sample_batch(rng, int((~known).sum()))
        return prompts, outputs


def sample_quantiles(rng: np.random.Generator, tables: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Token counts drawn by inverting each row's quantile table (linear between the grid's probabilities),
    rounded, at least 1 (the simulator's smallest request)."""
    u = rng.random(rows.size)
    j = np.minimum(np.searchsorted(QUANTILE_GRID, u, side="right") - 1, QUANTILE_GRID.size - 2)
    frac = (u - QUANTILE_GRID[j]) / (QUANTILE_GRID[j + 1] - QUANTILE_GRID[j])
    lo, hi = tables[rows, j], tables[rows, j + 1]
    return np.maximum(1, np.rint(lo + frac * (hi - lo))).astype(np.int64)

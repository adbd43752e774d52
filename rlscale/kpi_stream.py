"""KPIs accumulated as requests end, so a run's memory holds what is in flight, not what has been simulated.

Counts, sums and SLO attainment are exact (the same numbers :func:`rlscale.kpis.compute_kpis` gives from the whole
list of requests). Latency percentiles come from a DDSketch (Masson, Rim & Lee, VLDB 2019; the ``ddsketch``
package): every quantile it returns is within a relative error ``RELATIVE_ACCURACY`` (0.5%) of a value between the
two order statistics that bracket it, whatever the distribution, in memory logarithmic in the range of values.

Each ended request is judged against the SLO as it ends (counts, in C when compiled: a control step reads them
between any two requests), and its TTFT, TPOT and latency are buffered and folded into the sketches in blocks of
``BLOCK``, one numpy pass each, so the per-request cost on the simulator's hot path is a few comparisons and stores.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
from ddsketch import DDSketch
from ddsketch.mapping import LogarithmicMapping

from rlscale.kpis import PERCENTILES, SLO, KPIs, percentile_key
from rlscale.serving.request import COMPLETED, Request

RELATIVE_ACCURACY = 0.005
BLOCK = 4096


class QuantileSketch:
    """A DDSketch fed in numpy blocks: values are bucketed with the sketch's own logarithmic mapping (key =
    ceil(log_γ v)), and each bucket enters the sketch once, weighted by its count, as its representative value."""

    def __init__(self, relative_accuracy: float = RELATIVE_ACCURACY) -> None:
        self.sketch = DDSketch(relative_accuracy)
        self.mapping = LogarithmicMapping(relative_accuracy)
        self._log_gamma = float(np.log(self.mapping.gamma))

    def add_many(self, values: np.ndarray) -> None:
        if values.size == 0:
            return
        positive = values[values > self.mapping.min_possible]
        if (zeros := values.size - positive.size) > 0:  # latencies are never negative: the rest are zeros
            self.sketch.add(0.0, float(zeros))
        keys, counts = np.unique(np.ceil(np.log(positive) / self._log_gamma).astype(np.int64), return_counts=True)
        for key, count in zip(keys.tolist(), counts.tolist(), strict=True):
            self.sketch.add(self.mapping.value(key), float(count))

    @property
    def count(self) -> float:
        return self.sketch.count

    def quantile(self, q: float) -> float:
        """The ``q`` percentile (0–100); NaN when empty."""
        value = self.sketch.get_quantile_value(q / 100.0) if self.sketch.count else None
        return float("nan") if value is None else float(value)

    def percentiles(self, qs: Sequence[float]) -> dict[str, float]:
        return {percentile_key(q): self.quantile(q) for q in qs}


class KPIAccumulator:
    """The KPIs of a run, fed each request as it ends (:meth:`ended`) and the unfinished ones at the end."""

    def __init__(self, slo: SLO, relative_accuracy: float = RELATIVE_ACCURACY) -> None:
        self.slo = slo
        self._ttft_slo_s, self._tpot_slo_s = slo.ttft_s, slo.tpot_s
        self._e2e_slo_s = slo.e2e_s if slo.e2e_s is not None else math.inf
        self.arrived = self.completed = self.failed = 0
        self.failures: Counter[str] = Counter()
        self.output_tokens = 0
        self.ttft_ok = self.tpot_ok = self.e2e_ok = self.all_ok = 0
        self.truncated_requests = self.truncated_prompt_tokens = 0
        self.capped_output_requests = self.capped_output_tokens = 0
        self.ttft, self.tpot, self.latency = (QuantileSketch(relative_accuracy) for _ in range(3))
        # the latencies of the completed requests not yet in the sketches (TPOT: of those with more than one token)
        self._ttft_buf, self._tpot_buf, self._latency_buf = (np.empty(BLOCK) for _ in range(3))
        self._buffered = self._buffered_tpot = 0

    # ---- the hot path ---------------------------------------------------------------------------------------------
    def ended(self, request: Request) -> None:
        """A request completed or failed: judged now (as :meth:`SLO.met_by`), its latencies buffered."""
        if request.state is COMPLETED:
            first, finish, tokens = request.first_token_s, request.finish_s, request.target_tokens
            ttft, latency = first - request.arrival_s, finish - request.arrival_s
            ttft_ok = ttft <= self._ttft_slo_s
            tpot_ok = True
            if tokens > 1:
                tpot = (finish - first) / (tokens - 1)
                tpot_ok = tpot <= self._tpot_slo_s
                self._tpot_buf[self._buffered_tpot] = tpot
                self._buffered_tpot += 1
            e2e_ok = latency <= self._e2e_slo_s
            self.completed += 1
            self.output_tokens += tokens
            self.ttft_ok += ttft_ok
            self.tpot_ok += tpot_ok
            self.e2e_ok += e2e_ok
            self.all_ok += ttft_ok and tpot_ok and e2e_ok
            self._ttft_buf[self._buffered] = ttft
            self._latency_buf[self._buffered] = latency
            self._buffered += 1
            self._tally_cuts(request)
            if self._buffered == BLOCK:
                self._fold()
        else:
            self.failed += 1
            self.failures[request.failure] += 1
            self._tally_cuts(request)

    @property
    def violations(self) -> int:
        """Requests ended so far that missed an SLO or failed."""
        return self.completed - self.all_ok + self.failed

    def _tally_cuts(self, request: Request) -> None:
        # Request's truncated_prompt_tokens and capped_output_tokens off its C fields (a compiled property is a
        # Python attribute lookup; this runs once per request)
        cut = request.prompt_tokens - request.prefill_tokens if request.prefill_tokens else 0
        capped = request.output_tokens - request.target_tokens if request.target_tokens else 0
        if cut:
            self.truncated_requests += 1
            self.truncated_prompt_tokens += cut
        if capped:
            self.capped_output_requests += 1
            self.capped_output_tokens += capped

    def _fold(self) -> None:
        """Put the buffered latencies into the sketches, one numpy pass each."""
        n, n_tpot = self._buffered, self._buffered_tpot
        self._buffered = self._buffered_tpot = 0
        if n:
            self.ttft.add_many(np.asarray(self._ttft_buf)[:n])
            self.tpot.add_many(np.asarray(self._tpot_buf)[:n_tpot])
            self.latency.add_many(np.asarray(self._latency_buf)[:n])

    # ---- the end of the run ---------------------------------------------------------------------------------------
    def kpis(
        self,
        duration_s: float,
        unfinished: Iterable[Request],
        qs: Sequence[float] = PERCENTILES,
        **fleet_figures: float,
    ) -> KPIs:
        """The KPIs at ``duration_s``, given the requests still in flight then (judged as :func:`compute_kpis`
        judges them: one with no first token past the TTFT SLO has missed already)."""
        self._fold()
        slo = self.slo
        overdue = 0
        cuts = KPIAccumulator(slo)  # the unfinished requests' cuts, counted without touching the run's tallies
        for request in unfinished:
            overdue += not request.first_token_s <= duration_s and duration_s - request.arrival_s > slo.ttft_s
            cuts._tally_cuts(request)
        judged = self.completed + self.failed + overdue

        def share(ok: int, of: int) -> float:
            return ok / of if of else float("nan")

        ttft_p99, tpot_p99 = self.ttft.quantile(99), self.tpot.quantile(99)
        return KPIs(
            duration_s=duration_s,
            arrived=self.arrived,
            completed=self.completed,
            failed=self.failed,
            in_flight=self.arrived - self.completed - self.failed,
            failures=dict(self.failures),
            throughput_req_per_s=self.completed / duration_s,
            output_tokens_per_s=self.output_tokens / duration_s,
            ttft_s=self.ttft.percentiles(qs),
            tpot_s=self.tpot.percentiles(qs),
            latency_s=self.latency.percentiles(qs),
            slo_attainment=share(self.all_ok, judged),
            ttft_attainment=share(self.ttft_ok, judged),
            tpot_attainment=share(self.tpot_ok, self.completed),
            e2e_attainment=share(self.e2e_ok, judged) if slo.e2e_s is not None else None,
            slo_p99_met=bool(self.completed) and not self.failed and ttft_p99 <= slo.ttft_s
            and not tpot_p99 > slo.tpot_s,
            truncated_requests=self.truncated_requests + cuts.truncated_requests,
            truncated_prompt_tokens=self.truncated_prompt_tokens + cuts.truncated_prompt_tokens,
            capped_output_requests=self.capped_output_requests + cuts.capped_output_requests,
            capped_output_tokens=self.capped_output_tokens + cuts.capped_output_tokens,
            **fleet_figures,
        )  # fmt: skip

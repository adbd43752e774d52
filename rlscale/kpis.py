"""Key performance indicators of a run, computed from the requests and the fleet themselves."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from rlscale.serving.request import Request, RequestState

PERCENTILES = (50, 95, 99)


def percentiles(values: Sequence[float] | np.ndarray) -> dict[str, float]:
    """p50/p95/p99 (NaN when there is nothing to measure)."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return {f"p{q}": float("nan") for q in PERCENTILES}
    return {f"p{q}": float(v) for q, v in zip(PERCENTILES, np.percentile(arr, PERCENTILES), strict=True)}


@dataclass(frozen=True)
class SLO:
    """Latency objectives (defaults: MLPerf Inference Llama-2-70B server scenario); e2e optional."""

    ttft_s: float = 2.0
    tpot_s: float = 0.2
    e2e_s: float | None = None

    def ttft_met(self, request: Request) -> bool:
        return request.ttft_s <= self.ttft_s

    def tpot_met(self, request: Request) -> bool:
        return request.target_tokens <= 1 or request.tpot_s <= self.tpot_s

    def e2e_met(self, request: Request) -> bool:
        return self.e2e_s is None or request.latency_s <= self.e2e_s

    def met_by(self, request: Request) -> bool:
        return self.ttft_met(request) and self.tpot_met(request) and self.e2e_met(request)


@dataclass(frozen=True)
class KPIs:
    duration_s: float
    arrived: int
    completed: int
    failed: int
    in_flight: int
    failures: dict[str, int]
    throughput_req_per_s: float
    output_tokens_per_s: float
    ttft_s: dict[str, float]
    tpot_s: dict[str, float]
    latency_s: dict[str, float]
    slo_attainment: float  # completed within every SLO / (ended + unfinished ones already past the TTFT SLO)
    ttft_attainment: float  # first token within the TTFT SLO, same denominator
    tpot_attainment: float  # completed requests within the TPOT SLO
    e2e_attainment: float | None  # completed within the end-to-end SLO / judged requests (None: no e2e SLO)
    slo_p99_met: bool  # p99 TTFT and p99 TPOT within the SLOs, and nothing failed
    ooms: int = 0
    scale_events: int = 0
    chip_hours: float = 0.0
    cost_usd: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def compute_kpis(requests: Sequence[Request], duration_s: float, slo: SLO, **fleet_figures) -> KPIs:
    done = [r for r in requests if r.state is RequestState.COMPLETED]
    failed = [r for r in requests if r.state is RequestState.FAILED]
    # an unfinished request with no first token after the TTFT SLO has missed already: judge it, or a
    # policy that leaves a queue behind would look better than one that serves it
    overdue = sum(
        r.in_flight and not r.first_token_s <= duration_s and duration_s - r.arrival_s > slo.ttft_s for r in requests
    )
    judged = len(done) + len(failed) + overdue
    # one pass over the completed requests into arrays; the objectives are then vector comparisons
    arrival, first, finish, tokens = (
        (
            np.array(v, dtype=float).reshape(-1)
            for v in zip(*((r.arrival_s, r.first_token_s, r.finish_s, r.target_tokens) for r in done), strict=True)
        )
        if done
        else (np.zeros(0),) * 4
    )
    ttft, latency = first - arrival, finish - arrival
    multi = tokens > 1
    tpot = (finish[multi] - first[multi]) / (tokens[multi] - 1)
    ttft_ok = ttft <= slo.ttft_s
    tpot_ok = np.ones_like(ttft_ok)
    tpot_ok[multi] = tpot <= slo.tpot_s
    e2e_ok = latency <= slo.e2e_s if slo.e2e_s is not None else np.ones_like(ttft_ok)
    ended = len(done) + len(failed)
    ttft_p, tpot_p = percentiles(ttft), percentiles(tpot)

    def share(ok: np.ndarray, of: int) -> float:
        return float(ok.sum()) / of if of else float("nan")

    return KPIs(
        duration_s=duration_s,
        arrived=len(requests),
        completed=len(done),
        failed=len(failed),
        in_flight=len(requests) - ended,
        failures=dict(Counter(r.failure for r in failed)),
        throughput_req_per_s=len(done) / duration_s,
        output_tokens_per_s=float(tokens.sum()) / duration_s,
        ttft_s=ttft_p,
        tpot_s=tpot_p,
        latency_s=percentiles(latency),
        slo_attainment=share(ttft_ok & tpot_ok & e2e_ok, judged),
        ttft_attainment=share(ttft_ok, judged),
        tpot_attainment=share(tpot_ok, len(done)),
        e2e_attainment=share(e2e_ok, judged) if slo.e2e_s is not None else None,
        slo_p99_met=bool(done) and not failed and ttft_p["p99"] <= slo.ttft_s and not tpot_p["p99"] > slo.tpot_s,
        **fleet_figures,
    )

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
    """Latency objectives (defaults: MLPerf Inference Llama-2-70B server scenario)."""

    ttft_s: float = 2.0
    tpot_s: float = 0.2

    def met_by(self, request: Request) -> bool:
        return request.ttft_s <= self.ttft_s and (request.target_tokens <= 1 or request.tpot_s <= self.tpot_s)


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
    slo_attainment: float  # requests that ended within both SLOs / requests that ended
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
    ttft = np.array([r.ttft_s for r in done])
    tpot = np.array([r.tpot_s for r in done if r.target_tokens > 1])
    latency = np.array([r.latency_s for r in done])
    ended = len(done) + len(failed)
    ttft_p, tpot_p = percentiles(ttft), percentiles(tpot)
    return KPIs(
        duration_s=duration_s,
        arrived=len(requests),
        completed=len(done),
        failed=len(failed),
        in_flight=len(requests) - ended,
        failures=dict(Counter(r.failure for r in failed)),
        throughput_req_per_s=len(done) / duration_s,
        output_tokens_per_s=sum(r.target_tokens for r in done) / duration_s,
        ttft_s=ttft_p,
        tpot_s=tpot_p,
        latency_s=percentiles(latency),
        slo_attainment=sum(slo.met_by(r) for r in done) / ended if ended else float("nan"),
        slo_p99_met=bool(done) and not failed and ttft_p["p99"] <= slo.ttft_s and not tpot_p["p99"] > slo.tpot_s,
        **fleet_figures,
    )

"""Key performance indicators of a run, computed from the requests themselves."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from rlscale.serving.request import Request, RequestState


def _pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if values.size else float("nan")


@dataclass(frozen=True)
class KPIs:
    duration_s: float
    arrived: int
    completed: int
    failed: int
    in_flight: int
    throughput_req_per_s: float
    output_tokens_per_s: float
    ttft_p50_s: float
    ttft_p99_s: float
    tpot_p50_s: float
    tpot_p99_s: float
    latency_p50_s: float
    latency_p99_s: float
    prefill_wait_mean_s: float
    slo_attainment: float  # completed within both SLOs / requests that ended

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def compute_kpis(requests: Sequence[Request], duration_s: float, ttft_slo_s: float, tpot_slo_s: float) -> KPIs:
    done = [r for r in requests if r.state is RequestState.COMPLETED]
    failed = sum(r.state is RequestState.FAILED for r in requests)
    ttft = np.array([r.ttft_s for r in done])
    tpot = np.array([r.tpot_s for r in done if r.target_tokens > 1])
    latency = np.array([r.latency_s for r in done])
    waits = np.array([r.prefill_start_s - r.arrival_s for r in done])
    good = sum(r.ttft_s <= ttft_slo_s and (r.target_tokens <= 1 or r.tpot_s <= tpot_slo_s) for r in done)
    ended = len(done) + failed
    return KPIs(
        duration_s=duration_s,
        arrived=len(requests),
        completed=len(done),
        failed=failed,
        in_flight=len(requests) - ended,
        throughput_req_per_s=len(done) / duration_s,
        output_tokens_per_s=sum(r.target_tokens for r in done) / duration_s,
        ttft_p50_s=_pct(ttft, 50),
        ttft_p99_s=_pct(ttft, 99),
        tpot_p50_s=_pct(tpot, 50),
        tpot_p99_s=_pct(tpot, 99),
        latency_p50_s=_pct(latency, 50),
        latency_p99_s=_pct(latency, 99),
        prefill_wait_mean_s=float(waits.mean()) if waits.size else float("nan"),
        slo_attainment=good / ended if ended else float("nan"),
    )

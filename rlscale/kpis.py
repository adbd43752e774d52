"""Key performance indicators of a run, computed from the requests and the fleet themselves."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from rlscale.serving.request import Request, RequestState

PERCENTILES = (50, 95, 99)


def percentile_key(q: float) -> str:
    """``p99``, ``p99.9``: how a percentile is named in the KPIs."""
    return f"p{q:g}"


def percentiles(values: Sequence[float] | np.ndarray, qs: Sequence[float] = PERCENTILES) -> dict[str, float]:
    """The ``qs`` percentiles of ``values`` (NaN when there is nothing to measure)."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return {percentile_key(q): float("nan") for q in qs}
    return {percentile_key(q): float(v) for q, v in zip(qs, np.percentile(arr, qs), strict=True)}


def parse_percentiles(text: str, option: str = "--percentiles") -> tuple[float, ...]:
    """``50,90,99`` as percentiles in (0, 100], in the order given; an error names the option otherwise."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    try:
        qs = tuple(float(item) for item in items)
    except ValueError:
        raise ValueError(f"{option}: expected comma-separated numbers in (0, 100], got {text!r}") from None
    if not qs:
        raise ValueError(f"{option}: give at least one percentile")
    if bad := [q for q in qs if not 0 < q <= 100]:
        raise ValueError(f"{option}: percentiles must be in (0, 100], got {bad}")
    if len(set(qs)) != len(qs):
        raise ValueError(f"{option}: {text!r} repeats a percentile")
    return qs


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
    truncated_requests: int = 0  # prompts cut to max_prefill_predict_length (JetStream truncates them)
    truncated_prompt_tokens: int = 0  # prompt tokens those cuts dropped
    capped_output_requests: int = 0  # answers cut short by max_target_length (prompt + output per slot)
    capped_output_tokens: int = 0  # output tokens those caps dropped
    ooms: int = 0
    scale_events: int = 0
    decisions: int = 0  # control-loop syncs (the safety layer's, rlscale.policies.control)
    decisions_held: int = 0  # held: metrics unavailable, a policy that failed with no fallback, scale-down blocked
    fallback_decisions: int = 0  # the fallback HPA decided (policy failed or metrics partial)
    decisions_limited: int = 0  # the count asked for was clamped to the bounds or capped per step
    scale_failures: int = 0  # PATCHes of the scale subresource that failed (a scale-failure fault)
    policy_errors: int = 0  # syncs where the policy or its fallback raised (held or fell back; a warning says why)
    chip_hours: float = 0.0
    cost_usd: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def compute_kpis(
    requests: Sequence[Request], duration_s: float, slo: SLO, qs: Sequence[float] = PERCENTILES, **fleet_figures
) -> KPIs:
    """The run's KPIs; latency distributions at the ``qs`` percentiles (p99 is always used for ``slo_p99_met``)."""
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
    ttft_p99, tpot_p99 = (percentiles(values, (99,))["p99"] for values in (ttft, tpot))
    truncated = [r.truncated_prompt_tokens for r in requests if r.truncated_prompt_tokens]
    capped = [r.capped_output_tokens for r in requests if r.capped_output_tokens]

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
        ttft_s=percentiles(ttft, qs),
        tpot_s=percentiles(tpot, qs),
        latency_s=percentiles(latency, qs),
        slo_attainment=share(ttft_ok & tpot_ok & e2e_ok, judged),
        ttft_attainment=share(ttft_ok, judged),
        tpot_attainment=share(tpot_ok, len(done)),
        e2e_attainment=share(e2e_ok, judged) if slo.e2e_s is not None else None,
        slo_p99_met=bool(done) and not failed and ttft_p99 <= slo.ttft_s and not tpot_p99 > slo.tpot_s,
        truncated_requests=len(truncated),
        truncated_prompt_tokens=sum(truncated),
        capped_output_requests=len(capped),
        capped_output_tokens=sum(capped),
        **fleet_figures,
    )

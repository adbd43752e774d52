"""Metric names in MLflow: one namespaced key per results column (``cost/usd``, ``slo/attainment``,
``latency/ttft_p99_s``, ``sim/wall_s`` …), the same in every run, so MLflow's charts and searches line comparisons,
tuning searches and training evaluations up."""

from __future__ import annotations

# results.csv columns -> MLflow keys; prefixes cover the families (percentiles, failure kinds, extras).
METRIC_KEYS = {
    "duration_s": "sim/duration_s",
    "wall_s": "sim/wall_s",
    "planning_s": "sim/planning_s",
    "plan_met_target": "plan/met_target",
    "arrived": "requests/arrived",
    "completed": "requests/completed",
    "failed": "requests/failed",
    "in_flight": "requests/in_flight",
    "throughput_req_per_s": "throughput/req_per_s",
    "output_tokens_per_s": "throughput/output_tokens_per_s",
    "slo_attainment": "slo/attainment",
    "ttft_attainment": "slo/ttft_attainment",
    "tpot_attainment": "slo/tpot_attainment",
    "e2e_attainment": "slo/e2e_attainment",
    "slo_p99_met": "slo/p99_met",
    "ooms": "fleet/ooms",
    "scale_events": "fleet/scale_events",
    "chip_hours": "cost/chip_hours",
    "cost_usd": "cost/usd",
}
METRIC_PREFIXES = (
    ("ttft_", "latency/ttft_"),
    ("tpot_", "latency/tpot_"),
    ("latency_", "latency/e2e_"),
    ("failures_", "requests/failed_"),
    ("extra_", "extra/"),
)


def metric_key(column: str) -> str:
    """The MLflow key of a results.csv column (an unknown new KPI goes under ``kpi/``)."""
    if column in METRIC_KEYS:
        return METRIC_KEYS[column]
    for prefix, namespace in METRIC_PREFIXES:
        if column.startswith(prefix):
            return namespace + column[len(prefix) :]
    return f"kpi/{column}"

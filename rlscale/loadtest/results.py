"""A load test's folder, read back: its requests, the server's scraped gauges, a timeline and a summary in the
simulator's layouts, and the load points ``rlscale capacity --from`` sizes with.

A load test folder holds ``scenario.yaml`` (the deployment as stated: model, hardware, pod settings, traffic,
SLOs), ``plan.csv`` and ``segments.json`` (what was to be sent), ``requests.csv`` (the simulator's columns),
``metrics.csv`` (every scraped sample), and, written here, ``timeline.csv`` (the simulator's columns: what a
client and a scrape can see is filled, the fleet's internals are empty) and ``summary.json``.
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rlscale.kpis import SLO, percentiles
from rlscale.loadtest.engine import METRICS_FILE, REQUESTS_FILE
from rlscale.loadtest.plan import Segment
from rlscale.planning.capacity import PERCENTILES, BatchCapacity, LoadPoint, hbm_fit, knee
from rlscale.scenario import ScenarioConfig, load_scenario
from rlscale.timeline import COLUMNS

SCENARIO_FILE, SEGMENTS_FILE, TIMELINE_FILE, SUMMARY_FILE = (
    "scenario.yaml", "segments.json", "timeline.csv", "summary.json",
)  # fmt: skip
NAN = float("nan")
BACKLOG = "jetstream_prefill_backlog_size"
SLOTS_USED, SLOTS_AVAILABLE = "jetstream_slots_used_percentage", "jetstream_slots_available_percentage"
HBM_USED, HBM_TOTAL = "memory_used", "memory_total"


@dataclass(frozen=True)
class MeasuredRequests:
    """``requests.csv`` as arrays (server seconds; NaN where a time was never reached), ordered by arrival."""

    arrival_s: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray  # asked for (max_tokens)
    tokens: np.ndarray  # received
    first_token_s: np.ndarray
    done_s: np.ndarray
    outcome: np.ndarray  # completed | failed | unfinished
    failure: np.ndarray

    @classmethod
    def read(cls, folder: Path) -> MeasuredRequests:
        with (folder / REQUESTS_FILE).open(newline="") as f:
            rows = list(csv.DictReader(f))
        rows.sort(key=lambda r: _float(r["arrival_s"]))

        def col(name: str, kind: type = float) -> np.ndarray:
            if kind is float:
                return np.array([_float(r[name]) for r in rows], dtype=float)
            if kind is int:
                return np.array([int(r[name] or 0) for r in rows], dtype=int)
            return np.array([r[name] for r in rows], dtype=object)

        return cls(
            col("arrival_s"), col("prompt_tokens", int), col("output_tokens", int),
            col("output_tokens_served", int), col("first_token_s"), col("done_s"), col("outcome", str),
            col("failure", str),
        )  # fmt: skip

    @property
    def completed(self) -> np.ndarray:
        return self.outcome == "completed"

    def ttft_s(self) -> np.ndarray:
        return self.first_token_s - self.arrival_s

    def tpot_s(self) -> np.ndarray:
        """Mean time per output token after the first (NaN for one-token answers)."""
        steps = np.where(self.tokens > 1, self.tokens - 1, np.nan)
        return (self.done_s - self.first_token_s) / steps


def _float(text: str) -> float:
    return float(text) if text else NAN


@dataclass(frozen=True)
class Gauges:
    """The guide's three metrics per scrape: times (server s), prefill backlog (summed over servers), slots used
    (fraction, mean over servers), HBM used (fraction of the total over chips)."""

    t_s: np.ndarray
    prefill_backlog: np.ndarray
    slots_used: np.ndarray
    hbm_used_frac: np.ndarray

    @classmethod
    def read(cls, folder: Path) -> Gauges:
        path = folder / METRICS_FILE
        by_time: dict[float, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        if path.exists():
            with path.open(newline="") as f:
                for row in csv.DictReader(f):
                    # one scrape round: every URL read at about the same time, rounded to 1 ms
                    by_time[round(float(row["t_s"]), 3)][row["name"]].append(float(row["value"]))
        times = sorted(by_time)
        rounds = _merge_rounds(times, by_time)
        t = np.array([r[0] for r in rounds])
        return cls(t, *(np.array([_gauge(r[1], m) for r in rounds]) for m in ("backlog", "slots", "hbm")))

    def mean(self, start_s: float, end_s: float) -> dict[str, float]:
        """Each gauge's mean over the scrapes within [start_s, end_s)."""
        inside = (self.t_s >= start_s) & (self.t_s < end_s)
        return {
            name: float(np.nanmean(values[inside])) if np.any(inside & ~np.isnan(values)) else NAN
            for name, values in (
                ("prefill_backlog", self.prefill_backlog), ("slots_used", self.slots_used),
                ("hbm_used_frac", self.hbm_used_frac),
            )
        }  # fmt: skip

    def last(self, at_s: float) -> dict[str, float]:
        """Each gauge as last scraped at or before ``at_s``."""
        k = int(np.searchsorted(self.t_s, at_s, side="right")) - 1
        if k < 0:
            return {"prefill_backlog": NAN, "slots_used": NAN, "hbm_used_frac": NAN}
        return {"prefill_backlog": float(self.prefill_backlog[k]), "slots_used": float(self.slots_used[k]),
                "hbm_used_frac": float(self.hbm_used_frac[k])}  # fmt: skip


ROUND_GAP_S = 0.5  # scrapes of several URLs less than this apart (server s) are one round


def _merge_rounds(times: list[float], by_time: dict) -> list[tuple[float, dict[str, list[float]]]]:
    rounds: list[tuple[float, dict[str, list[float]]]] = []
    for t in times:
        if rounds and t - rounds[-1][0] < ROUND_GAP_S:
            for name, values in by_time[t].items():
                rounds[-1][1].setdefault(name, []).extend(values)
        else:
            rounds.append((t, {name: list(values) for name, values in by_time[t].items()}))
    return rounds


def _gauge(samples: dict[str, list[float]], which: str) -> float:
    if which == "backlog":
        return float(sum(samples[BACKLOG])) if BACKLOG in samples else NAN
    if which == "slots":
        if SLOTS_USED in samples:
            return float(np.mean(samples[SLOTS_USED]))
        if SLOTS_AVAILABLE in samples:  # JetStream before the gauge was renamed (e.g. google-jetstream 0.2.2)
            return 1.0 - float(np.mean(samples[SLOTS_AVAILABLE]))
        return NAN
    if HBM_USED in samples and HBM_TOTAL in samples and sum(samples[HBM_TOTAL]) > 0:
        return float(sum(samples[HBM_USED]) / sum(samples[HBM_TOTAL]))
    return NAN


def read_scenario(folder: Path) -> ScenarioConfig:
    """The deployment and traffic the load test stated (``scenario.yaml``)."""
    return load_scenario(folder / SCENARIO_FILE)


def read_segments(folder: Path) -> list[Segment]:
    return [Segment(**s) for s in json.loads((folder / SEGMENTS_FILE).read_text())]


def timeline_rows(requests: MeasuredRequests, gauges: Gauges, duration_s: float, interval_s: float) -> list[dict]:
    """``timeline.csv`` rows in the simulator's columns: arrivals and ends per interval from the requests, the
    gauges as last scraped at the row's time, latency percentiles of the requests that ended in the interval;
    what neither a client nor a scrape sees (the fleet's phases, nodes, cost) is NaN, written empty."""
    rows = []
    ended = np.where(np.isnan(requests.done_s), np.inf, requests.done_s)
    ttft, tpot = requests.ttft_s(), requests.tpot_s()
    for k in range(1, math.ceil(duration_s / interval_s) + 1):
        t0, t1 = (k - 1) * interval_s, k * interval_s
        arrived = (requests.arrival_s >= t0) & (requests.arrival_s < t1)
        within = (ended >= t0) & (ended < t1)
        done = within & requests.completed
        row: dict[str, float] = dict.fromkeys(COLUMNS, NAN)
        row |= {
            "t_s": t1,
            "arrivals": int(arrived.sum()),
            "completed": int(done.sum()),
            "failed": int((within & (requests.outcome == "failed")).sum()),
            **gauges.last(t1),
            "ttft_p50_s": _pct(ttft[done], 50),
            "ttft_p99_s": _pct(ttft[done], 99),
            "tpot_p99_s": _pct(tpot[done], 99),
        }
        rows.append(row)
    return rows


def _pct(values: np.ndarray, q: float) -> float:
    values = values[~np.isnan(values)]
    return float(np.percentile(values, q)) if values.size else NAN


def write_timeline(folder: Path, rows: list[dict]) -> None:
    with (folder / TIMELINE_FILE).open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()})


def summary(requests: MeasuredRequests, scenario: ScenarioConfig, duration_s: float) -> dict[str, Any]:
    """The run's figures as ``rlscale simulate`` reports them (ended requests; p99 SLO check)."""
    done = requests.completed
    ttft, tpot, e2e = requests.ttft_s()[done], requests.tpot_s()[done], (requests.done_s - requests.arrival_s)[done]
    tpot = tpot[~np.isnan(tpot)]
    failures: dict[str, int] = defaultdict(int)
    for why in requests.failure[requests.outcome == "failed"]:
        failures[str(why).split(":")[0]] += 1
    slo = scenario.slo
    return {
        "arrived": len(requests.arrival_s),
        "completed": int(done.sum()),
        "failed": int((requests.outcome == "failed").sum()),
        "unfinished": int((requests.outcome == "unfinished").sum()),
        "failures": dict(failures),
        "duration_s": duration_s,
        "throughput_req_per_s": float(done.sum()) / duration_s,
        "output_tokens_per_s": float(requests.tokens[done].sum()) / duration_s,
        "ttft_s": percentiles(ttft, PERCENTILES),
        "tpot_s": percentiles(tpot, PERCENTILES),
        "latency_s": percentiles(e2e, PERCENTILES),
        "slo_p99_met": bool(
            ttft.size and _pct(ttft, 99) <= slo.ttft_p99_s and (not tpot.size or _pct(tpot, 99) <= slo.tpot_p99_s)
            and not (requests.outcome == "failed").any()
        ),
    }  # fmt: skip


def load_points(folder: Path) -> list[LoadPoint]:
    """One :class:`LoadPoint` per plan segment (a ladder's step, or a minute): its requests by arrival, its
    gauges' mean over the segment's second half (the load has settled by then)."""
    requests, gauges = MeasuredRequests.read(folder), Gauges.read(folder)
    points = []
    for seg in read_segments(folder):
        length = seg.end_s - seg.start_s
        mine = (requests.arrival_s >= seg.start_s) & (requests.arrival_s < seg.end_s)
        done = mine & requests.completed
        tpot = requests.tpot_s()[done]
        points.append(
            LoadPoint(
                rate_per_s=seg.rate_per_s,
                throughput_req_per_s=float(done.sum()) / length,
                output_tokens_per_s=float(requests.tokens[done].sum()) / length,
                ttft_s=percentiles(requests.ttft_s()[done], PERCENTILES),
                tpot_s=percentiles(tpot[~np.isnan(tpot)], PERCENTILES),
                failed=int((mine & (requests.outcome != "completed")).sum()),
                **gauges.mean(seg.start_s + length / 2, seg.end_s),
            )
        )
    return points


def loadtest_capacity(folder: Path) -> tuple[ScenarioConfig, BatchCapacity]:
    """The guide's sizing on a measured ladder: the stated deployment's batch size, its segments as load points,
    the knee within the folder's scenario SLOs."""
    scenario = read_scenario(folder)
    batch = scenario.pod.per_device_batch_size
    result = BatchCapacity(batch, hbm_fit(scenario, batch), load_points(folder))
    result.knee = knee(result.points, SLO(scenario.slo.ttft_p99_s, scenario.slo.tpot_p99_s))
    result.idle = min(result.points, key=lambda p: p.rate_per_s, default=None)
    return scenario, result

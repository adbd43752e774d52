"""A run's timeline: one row per interval of replicas by phase, traffic, load, HBM, latency and cost.

Rows are ground truth from the simulator (not what a controller sees), for
plots and analysis.
"""

from __future__ import annotations

import numpy as np
import simpy

from rlscale.cluster.fleet import Fleet, Phase
from rlscale.serving.request import COMPLETED, Request

COLUMNS = (
    "t_s", "desired", "pending", "starting", "ready", "restarting", "terminating", "nodes", "arrivals", "completed",
    "failed", "truncated", "ooms", "gateway_queue", "prefill_backlog", "slots_used", "hbm_used_frac", "ttft_p50_s",
    "ttft_p99_s", "tpot_p99_s", "cost_usd",
)  # fmt: skip
"""``ready``: pods in the Service (Ready and their server up); ``restarting``: Ready pods whose server crashed (OOM)
and is coming back — not serving; ``truncated``: requests ended in the interval whose prompt was cut to
``max_prefill_predict_length``; ``ooms``: server crashes in the interval."""


class Timeline:
    def __init__(self, env: simpy.Environment, interval_s: float) -> None:
        self.env, self.interval_s = env, interval_s
        self.arrivals = 0
        self._completed = self._failed = self._truncated = 0
        self._crashes_seen = 0
        self._ttft: list[float] = []
        self._tpot: list[float] = []
        self._rows: list[dict[str, float]] = []

    def ended(self, request: Request) -> None:
        """A request left the system (completed or failed)."""
        # Request's truncated_prompt_tokens, ttft_s and tpot_s, read off its C fields: compiled, a property goes
        # through Python's attribute lookup, and this runs once per request
        if request.prefill_tokens and request.prompt_tokens != request.prefill_tokens:
            self._truncated += 1
        if request.state is COMPLETED:
            self._completed += 1
            self._ttft.append(request.first_token_s - request.arrival_s)
            if request.target_tokens > 1:
                self._tpot.append((request.finish_s - request.first_token_s) / (request.target_tokens - 1))
        else:
            self._failed += 1

    def watch(self, fleet: Fleet, price_per_chip_hour: float) -> None:
        self._fleet, self._price = fleet, price_per_chip_hour

        def sample():
            while True:
                yield self.env.timeout(self.interval_s)
                self._rows.append(self._row(fleet, price_per_chip_hour))

        self.env.process(sample())

    def _row(self, fleet: Fleet, price: float) -> dict[str, float]:
        pods = fleet.serving_pods()
        ttft, tpot = np.array(self._ttft), np.array(self._tpot)
        crashes = fleet.crashes()
        ready = fleet.count(Phase.READY)
        row = {
            "t_s": self.env.now,
            "desired": fleet.desired,
            "pending": fleet.count(Phase.PENDING),
            "starting": sum(fleet.count(p) for p in (Phase.STARTING, Phase.LOADING, Phase.WARMING)),
            "ready": len(pods),
            "restarting": ready - len(pods),  # Ready pods out of the Service: their server is down
            "terminating": fleet.count(Phase.TERMINATING),
            "nodes": len(fleet.nodes.held()),
            "arrivals": self.arrivals,
            "completed": self._completed,
            "failed": self._failed,
            "truncated": self._truncated,
            "ooms": crashes - self._crashes_seen,
            "gateway_queue": len(fleet.gateway),
            "prefill_backlog": sum(p.prefill_backlog_size for p in pods),
            "slots_used": float(np.mean([p.active_slots / p.slots for p in pods])) if pods else float("nan"),
            "hbm_used_frac": float(np.mean([p.hbm_used_bytes() / p.hbm.total_bytes for p in pods]))
            if pods
            else float("nan"),
            "ttft_p50_s": float(np.percentile(ttft, 50)) if ttft.size else float("nan"),
            "ttft_p99_s": float(np.percentile(ttft, 99)) if ttft.size else float("nan"),
            "tpot_p99_s": float(np.percentile(tpot, 99)) if tpot.size else float("nan"),
            "cost_usd": fleet.chip_hours() * price,
        }
        self.arrivals = self._completed = self._failed = self._truncated = 0
        self._crashes_seen = crashes
        self._ttft.clear()
        self._tpot.clear()
        return row

    def close(self) -> None:
        """End of the run: record the interval in progress (the clock stops just before its sample)."""
        if not self._rows or self._rows[-1]["t_s"] < self.env.now:
            self._rows.append(self._row(self._fleet, self._price))

    def rows(self) -> list[dict[str, float]]:
        return list(self._rows)

"""The server's own prefill times, from the Prometheus histograms a load test scraped (``metrics.csv``).

A client never sees a prefill alone: a queued request's first token comes one insert and one prefill after the
previous one, and an idle request's carries the client's own latency. So from requests alone the prefill's fixed
cost and the insert's are told apart only by sub-millisecond timing differences. JetStream's orchestrator times
the prefill itself: ``jetstream_time_to_first_token`` is observed from the prefill's start to its first token
(queue excluded) and ``jetstream_time_per_prefill_token`` is the same divided by the prompt's length (where the
simulated server observes them: :mod:`rlscale.serving.metrics`). Between two scrapes, the increments of their
``_sum`` and ``_count`` are the summed prefill time of the requests prefilled in between: two linear equations
in the prefill time of each bucket, per interval, measured by the server's clock.

Which requests those were needs no clock either: one engine prefills first come, first served, so the server's
running count of prefills indexes the requests in first-token order (the first scrape precedes the first request:
``rlscale loadtest`` scrapes before it sends). The input-length histogram's ``_sum`` checks each interval: an
interval whose prompts do not add up to what the server counted (two requests the client saw in the other order
across a scrape, another client's traffic, a request whose first token never reached the client) is dropped. A
constant number of tokens per request (a tokenizer's BOS token) is allowed for.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlscale.loadtest.engine import METRICS_FILE

TTFT = "jetstream_time_to_first_token"  # per request: prefill start -> first token, s
PER_TOKEN = "jetstream_time_per_prefill_token"  # per request: the same over its prompt's tokens, s/token
INPUT = "jetstream_request_input_length"  # per request: prompt tokens as the server counted them
NAMES = {f"{h}_{part}" for h in (TTFT, PER_TOKEN, INPUT) for part in ("sum", "count")}


class NoServerPrefills(Exception):
    """The load test's folder holds no usable server-side prefill times; the message says why."""


@dataclass(frozen=True)
class PrefillScrapes:
    """One server's cumulative prefill histograms, one entry per scrape in time order: the number of prefills,
    their summed seconds, their summed seconds per prompt token and their summed prompt tokens (NaN where the
    server does not export that histogram)."""

    count: np.ndarray
    seconds: np.ndarray
    per_token: np.ndarray
    tokens: np.ndarray

    @classmethod
    def read(cls, folder: Path) -> PrefillScrapes:
        """The scraped series of the one server that exports ``jetstream_time_to_first_token``."""
        path = folder / METRICS_FILE
        if not path.exists():
            raise NoServerPrefills("the load test scraped no server (no metrics.csv; rlscale loadtest --metrics-url)")
        series: dict[tuple[str, str], dict[float, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                if row["name"] in NAMES:
                    labels = json.dumps(json.loads(row["labels"]), sort_keys=True)
                    series[row["url"], labels][float(row["t_s"])][row["name"]] = float(row["value"])
        servers = [key for key, scrapes in series.items() if any(TTFT + "_count" in s for s in scrapes.values())]
        if not servers:
            raise NoServerPrefills(f"the server's pages (metrics.csv) have no {TTFT} histogram")
        if len(servers) > 1:
            raise NoServerPrefills(
                f"{len(servers)} servers export {TTFT}: which one prefilled a request is not known to its client"
            )
        scrapes = [s for _, s in sorted(series[servers[0]].items()) if TTFT + "_count" in s]

        def column(name: str) -> np.ndarray:
            return np.array([s.get(name, np.nan) for s in scrapes], dtype=float)

        return cls(column(TTFT + "_count"), column(TTFT + "_sum"), column(PER_TOKEN + "_sum"), column(INPUT + "_sum"))

    def until_reset(self) -> PrefillScrapes:
        """The scrapes before the first counter that went down (a restarted server counts from zero again)."""
        down = np.flatnonzero(np.diff(self.count) < 0)
        end = int(down[0]) + 1 if down.size else len(self.count)
        return PrefillScrapes(self.count[:end], self.seconds[:end], self.per_token[:end], self.tokens[:end])


@dataclass(frozen=True)
class ScrapeInterval:
    """The requests prefilled between two scrapes (positions in first-token order) and what the server measured:
    their summed prefill seconds, their summed seconds per prompt token (NaN if not exported) and their summed
    prompt tokens (NaN if not exported)."""

    positions: range
    seconds: float
    per_token: float
    tokens: float


@dataclass(frozen=True)
class ServerEquation:
    """One equation in the prefill times per bucket: ``Σ_b weight[b] · pre[b] = seconds`` (weights sum to 1)."""

    kind: str  # ttft | per_token
    weights: dict[int, float]
    seconds: float


@dataclass
class ServerPrefills:
    """The server's equations for one load test, and how many scrape intervals gave them or were dropped."""

    equations: list[ServerEquation]
    intervals: int
    dropped: int
    extra_tokens: int  # tokens per request the server counted beyond the client's prompt (a BOS token: 1)

    def note(self) -> str:
        dropped = ""
        if self.dropped:
            dropped = f", {self.dropped} dropped (their prompts did not add up to the server's count)"
        return (
            f"the server's own prefill times ({TTFT}, {PER_TOKEN}): {len(self.equations)} equations from "
            f"{self.intervals} scrape intervals{dropped}"
        )


def intervals(scrapes: PrefillScrapes, requests: int) -> list[ScrapeInterval]:
    """The scrape intervals with prefills in them, as positions among the ``requests`` that had a first token;
    intervals past the last such request (prefills the client never saw answered) are left out."""
    done = scrapes.count - scrapes.count[0]
    out = []
    for k in range(1, len(done)):
        lo, hi = int(done[k - 1]), int(done[k])
        if hi > requests:
            break
        if hi > lo:
            diff = (scrapes.seconds[k] - scrapes.seconds[k - 1], scrapes.per_token[k] - scrapes.per_token[k - 1],
                    scrapes.tokens[k] - scrapes.tokens[k - 1])  # fmt: skip
            out.append(ScrapeInterval(range(lo, hi), *diff))
    return out


def server_prefills(folder: Path, buckets: np.ndarray, prompts: np.ndarray) -> ServerPrefills:
    """The server's prefill equations for the requests with a first token, given in first-token order by their
    padded ``buckets`` and the prompt tokens their client sent (after truncation); raises
    :class:`NoServerPrefills` when the folder has none."""
    found = intervals(PrefillScrapes.read(folder).until_reset(), len(buckets))
    if not found:
        raise NoServerPrefills("no scrape interval with a prefill in it")
    sent = np.array([prompts[list(i.positions)].sum() for i in found], dtype=float)
    sizes = np.array([len(i.positions) for i in found], dtype=float)
    counted = np.array([i.tokens for i in found])
    extra = int(np.round(np.nanmedian((counted - sent) / sizes))) if not np.isnan(counted).all() else 0
    agree = np.isnan(counted) | (np.abs(counted - sent - extra * sizes) < 0.5)
    equations = []
    for interval in (i for i, ok in zip(found, agree, strict=True) if ok):
        where = list(interval.positions)
        equations.append(_weighted("ttft", buckets[where], np.ones(len(where)), interval.seconds))
        if not np.isnan(interval.per_token):
            per_token = 1.0 / np.maximum(prompts[where] + extra, 1)
            equations.append(_weighted("per_token", buckets[where], per_token, interval.per_token))
    if not equations:
        raise NoServerPrefills(f"no scrape interval's prompts added up to the server's count ({len(found)} tried)")
    return ServerPrefills(equations, int(agree.sum()), int((~agree).sum()), extra)


def _weighted(kind: str, buckets: np.ndarray, weights: np.ndarray, total: float) -> ServerEquation:
    """``Σ_j weights[j] · pre[buckets[j]] = total``, divided through by ``Σ weights``: a mean prefill time, on
    the same scale as the client's equations whatever the number of requests in the interval."""
    scale = float(weights.sum())
    by_bucket: dict[int, float] = defaultdict(float)
    for b, w in zip(buckets.tolist(), weights.tolist(), strict=True):
        by_bucket[int(b)] += w / scale
    return ServerEquation(kind, dict(by_bucket), total / scale)

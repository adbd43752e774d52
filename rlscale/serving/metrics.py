"""A pod's metrics, exactly as JetStream and the GKE TPU device plugin export them.

Names, types, help strings, labels and histogram buckets follow
``jetstream/core/metrics/prometheus.py`` (AI-Hypercomputer/JetStream at
acd4f5a). Times are observed where the orchestrator observes them:

* ``jetstream_time_to_first_token``: prefill start → first token (queue wait excluded);
* ``jetstream_queue_duration``: waits in the prefill, transfer and generate queues, at insert;
* ``jetstream_time_per_output_token`` and ``jetstream_time_per_request``: from prefill
  *end* to completion (upstream measures both from there, despite the latter's help text).

One deliberate deviation: upstream binds the transfer/generate backlog gauges
to a value read once at start-up (``functools.partial(float, q.qsize())``),
so they always read 0; here they read the live queue sizes.

Histograms are bucketed lazily: an observation is a list append on the
simulator's hot path, and buckets are counted (numpy) when a page is
scraped. The pages are produced by prometheus_client from a custom
collector, so the text format is the library's own. A restart (after an OOM)
resets every series, as a new server process does.

The device plugin's gauges (``memory_used``, ``memory_total`` in bytes,
``duty_cycle`` in % over a 10 s window) live in a separate registry because a
cluster scrapes them from another exporter at another interval.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from rlscale.serving.buckets import DEFAULT_PREFILL_BUCKETS

if TYPE_CHECKING:
    from rlscale.serving.pod import JetStreamPod
    from rlscale.serving.request import Request

QUEUE_DURATION_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
OUTPUT_LENGTH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000,
                         100000, 200000, 500000, 1000000, 2000000)  # fmt: skip
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
PREFILL_TOKEN_BUCKETS = (0.00001, 0.00002, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01,
                         0.02, 0.05, 0.1)  # fmt: skip
REQUEST_TIME_BUCKETS = (1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0)
GAUGE_HELP = {
    "jetstream_prefill_backlog_size": "Size of prefill queue",
    "jetstream_transfer_backlog_size": "Size of transfer queue",
    "jetstream_generate_backlog_size": "Size of generate queue",
    "jetstream_slots_used_percentage": "The percentage of decode slots currently being used",
    "num_requests_waiting": "Requests count waiting to be processed for inference.",
    "kv_cache_utilization_perc": "kv-cache utilization by the requests under processing.",
}
GAUGES_WITH_IDX = {
    "jetstream_transfer_backlog_size",
    "jetstream_generate_backlog_size",
    "jetstream_slots_used_percentage",
}
DEVICE_MAKE = {"tpu": "cloud-tpu", "nvidia": "nvidia"}
HISTOGRAM_NAMES = (
    "jetstream_queue_duration", "jetstream_request_input_length", "jetstream_request_output_length",
    "jetstream_time_to_first_token", "jetstream_time_per_output_token", "jetstream_time_per_prefill_token",
    "jetstream_time_per_request", "jetstream_wait_time_per_request",
)  # fmt: skip
SERVER_SAMPLE_NAMES = frozenset(
    {*GAUGE_HELP, *(h + suffix for h in HISTOGRAM_NAMES for suffix in ("_sum", "_count"))}
    | {"jetstream_request_success_count_total"}
)
"""Every sample of one scrape of a server's /metrics (:meth:`PodMetrics.snapshot`'s keys)."""
DEVICE_SAMPLE_NAMES = frozenset({"memory_used", "memory_total", "duty_cycle"})
"""The device plugin's gauges (:meth:`PodMetrics.device_snapshot`'s keys)."""


BUCKET_BLOCK = 4096


class LazyHistogram:
    """A Prometheus histogram whose observations are bucketed only when a page needs the buckets.

    ``_sum`` and ``_count`` (all a scrape stored by the metrics pipeline reads) are kept as observations arrive;
    the values wait unbucketed until a page is rendered or ``BUCKET_BLOCK`` of them pile up, so bucketing is a
    few large numpy calls rather than one small one per scrape.
    """

    __slots__ = ("bounds", "counts", "doc", "name", "pending", "total", "values_sum")

    def __init__(self, name: str, doc: str, bounds: Sequence[float]) -> None:
        self.name, self.doc, self.bounds = name, doc, np.asarray(bounds, dtype=float)
        self.pending: list[float] = []
        self.reset()

    def reset(self) -> None:
        self.pending.clear()
        self.counts = np.zeros(len(self.bounds) + 1, dtype=np.int64)  # last: above every bound (+Inf only)
        self.values_sum, self.total = 0.0, 0

    def observe(self, value: float) -> None:
        self.add([value])

    def add(self, values: list[float]) -> None:
        """Observe ``values`` (in order)."""
        self.values_sum += sum(values)
        self.total += len(values)
        self.pending.extend(values)
        if len(self.pending) >= BUCKET_BLOCK:
            self.flush()

    def flush(self) -> None:
        """Bucket the values waiting (their sum and count are already in)."""
        if not self.pending:
            return
        values = np.asarray(self.pending)
        # bucket "le=b" counts v <= b: the first bound >= v
        self.counts += np.bincount(np.searchsorted(self.bounds, values, side="left"), minlength=len(self.counts))
        self.pending.clear()

    def family(self, labels: dict[str, str]) -> HistogramMetricFamily:
        self.flush()
        family = HistogramMetricFamily(self.name, self.doc, labels=list(labels))
        cumulative = np.cumsum(self.counts)
        buckets = [(floatToGoString(b), float(c)) for b, c in zip(self.bounds, cumulative[:-1], strict=True)]
        family.add_metric(list(labels.values()), [*buckets, ("+Inf", float(self.total))], self.values_sum)
        return family


class _Collector(Collector):
    def __init__(self, produce: Callable[[], Iterator[Metric]]) -> None:
        self.collect = produce  # type: ignore[method-assign]


class PodMetrics:
    """Per-pod JetStream metrics (label ``id`` = pod name) and per-chip device-plugin gauges."""

    def __init__(self, pod: JetStreamPod) -> None:
        self.pod = pod
        self.duty_cycle_percent = 0.0
        self.queue_duration = LazyHistogram(
            "jetstream_queue_duration", "The total time each request spends enqueued in seconds", QUEUE_DURATION_BUCKETS
        )
        self.input_length = LazyHistogram(
            "jetstream_request_input_length", "Number of input tokens per request", DEFAULT_PREFILL_BUCKETS
        )
        self.output_length = LazyHistogram(
            "jetstream_request_output_length", "Number of output tokens per request", OUTPUT_LENGTH_BUCKETS
        )
        self.ttft = LazyHistogram(
            "jetstream_time_to_first_token", "Time to first token per request in seconds", TTFT_BUCKETS
        )
        self.tpot = LazyHistogram(
            "jetstream_time_per_output_token", "Average time per output token per request in seconds", TPOT_BUCKETS
        )
        self.prefill_token_time = LazyHistogram(
            "jetstream_time_per_prefill_token", "Prefill time per token per request in seconds", PREFILL_TOKEN_BUCKETS
        )
        self.request_time = LazyHistogram(
            "jetstream_time_per_request", "End to end request latency in seconds", REQUEST_TIME_BUCKETS
        )
        self.wait_time = LazyHistogram(
            "jetstream_wait_time_per_request",
            "Time each request is not being prefilled or decoded",
            QUEUE_DURATION_BUCKETS,
        )
        self.histograms = (self.queue_duration, self.input_length, self.output_length, self.ttft, self.tpot,
                           self.prefill_token_time, self.request_time, self.wait_time)  # fmt: skip
        self.reset()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self._jetstream))
        self.device_registry = CollectorRegistry(auto_describe=False)
        self.device_registry.register(_Collector(self._device))

    def reset(self) -> None:
        """A new server process: every series starts again from zero."""
        for h in self.histograms:
            h.reset()
        self.successes = 0
        self._prefilled: list[Request] = []
        self._inserted: list[Request] = []
        self._completed: list[Request] = []

    # ---- observations, where the orchestrator makes them ----------------------
    # The hot path only remembers the request; values are derived from its
    # timestamps when a page is scraped (they never change once stamped).
    def on_prefill_end(self, req: Request) -> None:
        self._prefilled.append(req)

    def on_insert(self, req: Request) -> None:
        self._inserted.append(req)

    def on_complete(self, req: Request) -> None:
        self._completed.append(req)

    def _observe_pending(self) -> None:
        """The histograms' observations of the requests stamped since the last page (typed loops in the compiled
        core: each request's timestamps read as C doubles, no per-request temporaries)."""
        if self._prefilled:
            prefill_s, tokens, per_token = [], [], []
            for r in self._prefilled:
                dt = r.first_token_s - r.prefill_start_s
                prefill_s.append(dt)
                tokens.append(r.prefill_tokens)
                per_token.append(dt / r.prefill_tokens if r.prefill_tokens else math.inf)  # as numpy would
            self.ttft.add(prefill_s)
            self.input_length.add(tokens)
            self.prefill_token_time.add(per_token)
            self._prefilled = []
        if self._inserted:
            queued = []
            for r in self._inserted:
                queued.append(r.insert_s - r.arrival_s - (r.first_token_s - r.prefill_start_s))
            self.queue_duration.add(queued)
            self._inserted = []
        if self._completed:
            decode_s, outputs, tpot, waits = [], [], [], []
            for r in self._completed:
                dt = r.finish_s - r.first_token_s
                decode_s.append(dt)
                outputs.append(r.target_tokens)
                tpot.append(dt / r.target_tokens if r.target_tokens else math.inf)
                waits.append(
                    r.finish_s - r.arrival_s - (r.first_token_s - r.prefill_start_s) - (r.finish_s - r.insert_s)
                )
            self.successes += len(self._completed)
            self.output_length.add(outputs)
            self.tpot.add(tpot)
            self.request_time.add(decode_s)
            self.wait_time.add(waits)
            self._completed = []

    # ---- the pages ------------------------------------------------------------
    def gauges(self) -> dict[str, float]:
        """The server's gauges now, by name."""
        pod = self.pod
        slots_used = pod.active_slots / pod.slots
        transfer, generate, prefill = pod.transfer_backlog_size, pod.generate_backlog_size, pod.prefill_backlog_size
        return {
            "jetstream_prefill_backlog_size": prefill,
            "jetstream_transfer_backlog_size": transfer,
            "jetstream_generate_backlog_size": generate,
            "jetstream_slots_used_percentage": slots_used,
            "num_requests_waiting": prefill + transfer + generate,
            "kv_cache_utilization_perc": 100.0 * slots_used,
        }

    def snapshot(self) -> dict[str, float]:
        """What one scrape of /metrics yields, by sample name (one pod, so no labels).

        The metrics pipeline stores these; a live controller gets the same
        names by parsing the text page or querying Prometheus.
        """
        values = self.gauges()
        self._observe_pending()
        for h in self.histograms:
            values[h.name + "_sum"], values[h.name + "_count"] = h.values_sum, h.total
        values["jetstream_request_success_count_total"] = self.successes
        return values

    def device_snapshot(self) -> dict[str, float]:
        """One scrape of the device plugin, averaged over the pod's chips (they are symmetric)."""
        hw = self.pod.hardware
        return {
            "memory_used": self.pod.hbm_used_bytes() / hw.chips_per_host,
            "memory_total": hw.hbm_bytes,
            "duty_cycle": self.duty_cycle_percent,
        }

    def _jetstream(self) -> Iterator[Metric]:
        pid = {"id": self.pod.name}
        with_idx = {**pid, "idx": "0"}
        for name, value in self.gauges().items():
            yield _gauge(name, GAUGE_HELP[name], with_idx if name in GAUGES_WITH_IDX else pid, value)
        self._observe_pending()
        for h in self.histograms:
            yield h.family(pid)
        success = CounterMetricFamily(
            "jetstream_request_success_count", "Number of requests successfully completed", labels=["id"]
        )
        success.add_metric([self.pod.name], self.successes)
        yield success

    def _device(self) -> Iterator[Metric]:
        pod, hw = self.pod, self.pod.hardware
        chips = hw.chips_per_host
        make = DEVICE_MAKE["tpu" if hw.accelerator.startswith("tpu") else "nvidia"]
        per_chip_used = pod.hbm_used_bytes() / chips
        families = (
            GaugeMetricFamily("memory_used", "Total accelerator memory allocated", labels=_DEVICE_LABELS),
            GaugeMetricFamily("memory_total", "Total accelerator memory", labels=_DEVICE_LABELS),
            GaugeMetricFamily(
                "duty_cycle",
                "Percent of time over the past sample period during which the accelerator was actively processing",
                labels=_DEVICE_LABELS,
            ),
        )
        for chip in range(chips):
            labels = [pod.name, str(chip), make, hw.accelerator]
            families[0].add_metric(labels, per_chip_used)
            families[1].add_metric(labels, hw.hbm_bytes)
            families[2].add_metric(labels, self.duty_cycle_percent)
        yield from families

    def exposition(self) -> str:
        """The JetStream server's /metrics page (Prometheus text format)."""
        return generate_latest(self.registry).decode()

    def device_exposition(self) -> str:
        """The TPU device plugin's page for this pod's chips."""
        return generate_latest(self.device_registry).decode()


_DEVICE_LABELS = ["id", "accelerator_id", "make", "model"]


def _gauge(name: str, doc: str, labels: dict[str, str], value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=list(labels))
    family.add_metric(list(labels.values()), value)
    return family

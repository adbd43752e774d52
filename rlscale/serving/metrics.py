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

The device plugin's gauges (``memory_used``, ``memory_total`` in bytes,
``duty_cycle`` in % over a 10 s window) live in a separate registry because a
cluster scrapes them from another exporter at another interval.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from rlscale.serving.buckets import DEFAULT_PREFILL_BUCKETS

if TYPE_CHECKING:
    from rlscale.serving.pod import JetStreamPod
    from rlscale.serving.request import Request

QUEUE_DURATION_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
OUTPUT_LENGTH_BUCKETS = (
    1,
    2,
    5,
    10,
    20,
    50,
    100,
    200,
    500,
    1000,
    2000,
    5000,
    10000,
    20000,
    50000,
    100000,
    200000,
    500000,
    1000000,
    2000000,
)
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
PREFILL_TOKEN_BUCKETS = (0.00001, 0.00002, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)
REQUEST_TIME_BUCKETS = (1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0)


class PodMetrics:
    """Per-pod JetStream metrics (label ``id`` = pod name) and TPU device-plugin gauges."""

    def __init__(self, pod: JetStreamPod) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.device_registry = CollectorRegistry(auto_describe=True)
        self.duty_cycle_percent = 0.0
        pid = {"id": pod.name}
        r = self.registry

        def gauge(name: str, doc: str, fn, idx: bool = False, registry: CollectorRegistry = r) -> None:
            labels = {**pid, "idx": "0"} if idx else pid
            Gauge(name, doc, list(labels), registry=registry).labels(**labels).set_function(fn)

        def histogram(name: str, doc: str, buckets) -> Histogram:
            return Histogram(name, doc, ["id"], buckets=buckets, registry=r).labels(**pid)

        gauge("jetstream_prefill_backlog_size", "Size of prefill queue", lambda: len(pod.prefill_backlog))
        gauge("jetstream_transfer_backlog_size", "Size of transfer queue", lambda: pod.transfer_backlog_size, True)
        gauge("jetstream_generate_backlog_size", "Size of generate queue", lambda: pod.generate_backlog_size, True)
        gauge(
            "jetstream_slots_used_percentage",
            "The percentage of decode slots currently being used",
            lambda: pod.active_slots / pod.slots,
            True,
        )
        gauge(
            "num_requests_waiting",
            "Requests count waiting to be processed for inference.",
            lambda: len(pod.prefill_backlog) + pod.transfer_backlog_size + pod.generate_backlog_size,
        )
        gauge(
            "kv_cache_utilization_perc",
            "kv-cache utilization by the requests under processing.",
            lambda: 100.0 * pod.active_slots / pod.slots,
        )
        self.queue_duration = histogram(
            "jetstream_queue_duration", "The total time each request spends enqueued in seconds", QUEUE_DURATION_BUCKETS
        )
        self.input_length = histogram(
            "jetstream_request_input_length", "Number of input tokens per request", DEFAULT_PREFILL_BUCKETS
        )
        self.output_length = histogram(
            "jetstream_request_output_length", "Number of output tokens per request", OUTPUT_LENGTH_BUCKETS
        )
        self.ttft = histogram(
            "jetstream_time_to_first_token", "Time to first token per request in seconds", TTFT_BUCKETS
        )
        self.tpot = histogram(
            "jetstream_time_per_output_token", "Average time per output token per request in seconds", TPOT_BUCKETS
        )
        self.prefill_token_time = histogram(
            "jetstream_time_per_prefill_token", "Prefill time per token per request in seconds", PREFILL_TOKEN_BUCKETS
        )
        self.request_time = histogram(
            "jetstream_time_per_request", "End to end request latency in seconds", REQUEST_TIME_BUCKETS
        )
        self.wait_time = histogram(
            "jetstream_wait_time_per_request",
            "Time each request is not being prefilled or decoded",
            QUEUE_DURATION_BUCKETS,
        )
        self.success = Counter(
            "jetstream_request_success_count", "Number of requests successfully completed", ["id"], registry=r
        ).labels(**pid)

        d = self.device_registry
        gauge("memory_used", "Total accelerator memory allocated", pod.hbm_used_bytes, registry=d)
        gauge("memory_total", "Total accelerator memory", lambda: pod.hbm.total_bytes, registry=d)
        gauge(
            "duty_cycle",
            "Percent of time over the past sample period during which the accelerator was actively processing",
            lambda: self.duty_cycle_percent,
            registry=d,
        )

    def on_prefill_end(self, req: Request) -> None:
        prefill_s = req.first_token_s - req.prefill_start_s
        self.ttft.observe(prefill_s)
        self.input_length.observe(req.prefill_tokens)
        self.prefill_token_time.observe(prefill_s / req.prefill_tokens)

    def on_insert(self, req: Request) -> None:
        self.queue_duration.observe(req.insert_s - req.arrival_s - (req.first_token_s - req.prefill_start_s))

    def on_complete(self, req: Request) -> None:
        decode_s = req.finish_s - req.first_token_s
        self.output_length.observe(req.target_tokens)
        self.success.inc()
        self.tpot.observe(decode_s / req.target_tokens)
        self.request_time.observe(decode_s)
        self.wait_time.observe(
            req.latency_s - (req.first_token_s - req.prefill_start_s) - (req.finish_s - req.insert_s)
        )

    def exposition(self) -> str:
        """The JetStream server's /metrics page (Prometheus text format)."""
        return generate_latest(self.registry).decode()

    def device_exposition(self) -> str:
        """The TPU device plugin's page for this pod's host."""
        return generate_latest(self.device_registry).decode()

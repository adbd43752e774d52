"""What the controller tells about itself: JSON-line logs, its Prometheus metrics, ``/metrics`` and ``/healthz``."""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, plus the record's ``fields`` (``extra=``)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_json_logging(level: str = "INFO", stream: Any = None) -> None:
    """Route every logger to one JSON-lines handler (stderr by default), as a container's log collector wants."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class ControllerMetrics:
    """The controller's own series, in a registry of its own (several controllers can share a process in tests)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.decisions = Counter(
            "rlscale_controller_decisions", "Decisions by who made them and their outcome.", ["source", "outcome"],
            registry=r,
        )  # fmt: skip
        self.observation = Gauge(
            "rlscale_controller_observation", "The policy's last observation, by feature.", ["feature"], registry=r
        )
        self.replicas = Gauge(
            "rlscale_controller_replicas", "Replica counts at the last sync (current, desired, applied, hpa).",
            ["kind"], registry=r,
        )  # fmt: skip
        self.action_latency = Histogram(
            "rlscale_controller_action_latency_seconds", "From the start of a sync to its scale PATCH answered.",
            buckets=LATENCY_BUCKETS_S, registry=r,
        )  # fmt: skip
        self.errors = Counter("rlscale_controller_errors", "Errors by kind.", ["kind"], registry=r)
        self.is_leader = Gauge("rlscale_controller_is_leader", "1 while this replica holds the Lease.", registry=r)


class StatusServer:
    """``/metrics`` (the registry) and ``/healthz`` (200 while ``healthy()``, else 503) on ``port`` (0: any)."""

    def __init__(self, registry: CollectorRegistry, healthy: Callable[[], bool], port: int, host: str = "") -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.startswith("/metrics"):
                    status, body, kind = 200, generate_latest(registry), CONTENT_TYPE_LATEST
                elif self.path.startswith("/healthz"):
                    ok = healthy()
                    status, body, kind = (200 if ok else 503), (b"ok\n" if ok else b"stalled\n"), "text/plain"
                else:
                    status, body, kind = 404, b"not found\n", "text/plain"
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="status-server", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

"""In-process fakes for the controller tests: a Kubernetes API server and a Prometheus HTTP API on 127.0.0.1.

The real ``kubernetes`` client and ``requests`` talk to them over loopback, so the controller's own HTTP code
paths run. Faults are scripted per request (``fail``): an HTTP status, or a delay past the client's timeout.
The tests at the bottom check that the fakes answer as the real client expects.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from kubernetes import client

SELECTOR = "app=jetstream"


class Clock:
    """An injectable wall clock (epoch seconds) that moves only when told."""

    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@dataclass
class Fault:
    method: str
    fragment: str  # a substring of the path
    status: int = 500
    times: int = 1
    delay_s: float = 0.0


class _Server:
    """A ThreadingHTTPServer on 127.0.0.1 whose handler calls ``self.handle(method, path, query, body)``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                url = urlparse(self.path)
                status, payload, content_type = owner.handle(
                    self.command, url.path, parse_qs(url.query), raw, self.headers
                )
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                    pass

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()
        self.host, self.port = self.httpd.server_address[:2]
        self.url = f"http://{self.host}:{self.port}"

    def handle(self, method, path, query, raw, headers):  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _status(code: int, reason: str, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}  # fmt: skip


REASONS = {404: "NotFound", 409: "Conflict", 500: "InternalError", 503: "ServiceUnavailable", 403: "Forbidden"}


def pod_json(name: str, *, ready: bool = True, phase: str = "Running", deleting: bool = False, ip: str | None = None):
    return {
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "jetstream"},
                     **({"deletionTimestamp": "2025-01-01T00:00:00Z"} if deleting else {})},
        "spec": {"containers": [{"name": "jetstream", "image": "jetstream"}]},
        "status": {"phase": phase, "podIP": ip,
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }  # fmt: skip


@dataclass
class FakeKube(_Server):
    """The apiserver subset the controller uses: deployments/scale, pods, events, leases, HPAs."""

    namespace: str = "default"
    deployment: str = "jetstream"
    replicas: int = 2
    pods: list[dict] = field(default_factory=list)
    hpas: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.rv = 1
        self.requests: list[tuple[str, str]] = []
        self.faults: list[Fault] = []
        self.patches: list[dict] = []
        self.events: list[dict] = []
        self.leases: dict[str, dict] = {}
        self.hpa_patches: list[tuple[str, dict]] = []
        if not self.pods:
            self.set_pods(self.replicas)
        _Server.__init__(self)

    def set_pods(self, ready: int, starting: int = 0) -> None:
        self.pods = [pod_json(f"{self.deployment}-{i}", ip=f"127.0.0.{i + 2}") for i in range(ready)]
        self.pods += [pod_json(f"{self.deployment}-s{i}", ready=False, phase="Pending") for i in range(starting)]

    def fail(self, method: str, fragment: str, status: int = 500, times: int = 1, delay_s: float = 0.0) -> None:
        self.faults.append(Fault(method, fragment, status, times, delay_s))

    def writes(self, fragment: str = "") -> list[tuple[str, str]]:
        return [(m, p) for m, p in self.requests if m != "GET" and fragment in p]

    def _fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.method == method and fault.fragment in path and fault.times > 0:
                fault.times -= 1
                return fault
        return None

    def scale_json(self) -> dict:
        return {"apiVersion": "autoscaling/v1", "kind": "Scale",
                "metadata": {"name": self.deployment, "namespace": self.namespace, "resourceVersion": str(self.rv)},
                "spec": {"replicas": self.replicas},
                "status": {"replicas": self.replicas, "selector": SELECTOR}}  # fmt: skip

    def handle(self, method, path, query, raw, headers):
        self.requests.append((method, path))
        fault = self._fault(method, path)
        if fault is not None:
            if fault.delay_s:
                time.sleep(fault.delay_s)
            else:
                return (
                    fault.status,
                    _status(fault.status, REASONS.get(fault.status, "Error"), "injected"),
                    "application/json",
                )
        body = json.loads(raw) if raw else None
        with self.lock:
            status, payload = self._route(method, path, query, body)
        return status, payload, "application/json"

    def _route(self, method, path, query, body):
        ns = self.namespace
        if path == f"/apis/apps/v1/namespaces/{ns}/deployments/{self.deployment}/scale":
            if method == "PATCH":
                want = (body.get("metadata") or {}).get("resourceVersion")
                if want is not None and want != str(self.rv):
                    return 409, _status(409, "Conflict", "the object has been modified")
                self.patches.append(body)
                self.replicas = body["spec"]["replicas"]
                self.rv += 1
            return 200, self.scale_json()
        if path == f"/api/v1/namespaces/{ns}/pods" and method == "GET":
            return 200, {"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": str(self.rv)},
                         "items": self.pods}  # fmt: skip
        if path == f"/api/v1/namespaces/{ns}/events" and method == "POST":
            self.events.append(body)
            return 201, body
        if path == f"/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers" and method == "GET":
            return 200, {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscalerList", "metadata": {},
                         "items": self.hpas}  # fmt: skip
        if m := re.fullmatch(rf"/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers/([^/]+)", path):
            hpa = next((h for h in self.hpas if h["metadata"]["name"] == m[1]), None)
            if hpa is None:
                return 404, _status(404, "NotFound", "no such hpa")
            self.hpa_patches.append((m[1], body))
            hpa["spec"].update(body["spec"])
            return 200, hpa
        if path == f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases" and method == "POST":
            name = body["metadata"]["name"]
            if name in self.leases:
                return 409, _status(409, "AlreadyExists", f"leases {name!r} already exists")
            return 201, self._store_lease(name, body)
        if m := re.fullmatch(rf"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/([^/]+)", path):
            lease = self.leases.get(m[1])
            if lease is None:
                return 404, _status(404, "NotFound", f"leases {m[1]!r} not found")
            if method == "PUT":
                if body["metadata"].get("resourceVersion") != lease["metadata"]["resourceVersion"]:
                    return 409, _status(409, "Conflict", "the object has been modified")
                return 200, self._store_lease(m[1], body)
            return 200, lease
        return 404, _status(404, "NotFound", f"{method} {path}")

    def _store_lease(self, name: str, body: dict) -> dict:
        self.rv += 1
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": name, "namespace": self.namespace, "resourceVersion": str(self.rv)},
                 "spec": body.get("spec") or {}}  # fmt: skip
        self.leases[name] = lease
        return lease


def hpa_json(name: str, target: str, min_replicas: int = 1, max_replicas: int = 8) -> dict:
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                     "minReplicas": min_replicas, "maxReplicas": max_replicas}}  # fmt: skip


class FakePrometheus(_Server):
    """``/api/v1/query`` answering from vectors registered by a substring of the query; nothing else matches.

    ``age_s`` dates every returned sample that far in the past (stale data); ``down`` answers 503.
    """

    def __init__(self, clock=time.time) -> None:
        self.vectors: list[tuple[str, list[tuple[dict, float]]]] = []
        self.queries: list[str] = []
        self.age_s = 0.0
        self.down = False
        self.delay_s = 0.0
        self.clock = clock
        super().__init__()

    def set(self, fragment: str, samples: list[tuple[dict, float]]) -> None:
        self.vectors = [(f, s) for f, s in self.vectors if f != fragment] + [(fragment, samples)]

    def handle(self, method, path, query, raw, headers):
        if path != "/api/v1/query":
            return 404, {"status": "error", "error": "not found"}, "application/json"
        form = parse_qs(raw.decode()) if raw else query
        promql = form["query"][0]
        self.queries.append(promql)
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.down:
            return 503, b"Service Unavailable", "text/plain"
        ts = self.clock() - self.age_s
        result = next((s for f, s in self.vectors if f in promql), [])
        vector = [{"metric": labels, "value": [ts, repr(float(v))]} for labels, v in result]
        return 200, {"status": "success", "data": {"resultType": "vector", "result": vector}}, "application/json"


# ---- the fakes answer as the real client expects ------------------------------------------------------------


@pytest.fixture
def kube():
    with FakeKube() as fake:
        yield fake


def test_fake_kube_speaks_the_real_clients_language(kube):
    api = client.ApiClient(client.Configuration(host=kube.url))
    scale = client.AppsV1Api(api).read_namespaced_deployment_scale("jetstream", "default")
    assert (scale.spec.replicas, scale.status.selector) == (2, SELECTOR)
    pods = client.CoreV1Api(api).list_namespaced_pod("default", label_selector=SELECTOR)
    assert [p.metadata.name for p in pods.items] == ["jetstream-0", "jetstream-1"]
    with pytest.raises(client.ApiException) as err:
        client.CoordinationV1Api(api).read_namespaced_lease("missing", "default")
    assert err.value.status == 404


def test_fake_prometheus_answers_registered_vectors():
    import requests

    with FakePrometheus() as prom:
        prom.set("slots", [({"pod": "a"}, 0.5)])
        body = requests.post(f"{prom.url}/api/v1/query", data={"query": "last_over_time(slots[1m])"}).json()
        assert body["data"]["result"][0]["metric"] == {"pod": "a"}
        assert prom.queries == ["last_over_time(slots[1m])"]

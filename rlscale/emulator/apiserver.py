"""The Kubernetes API subset the controller uses, over plain HTTP, for the unmodified ``kubernetes`` client.

Served paths (namespaced; the core group under ``/api/v1``, others under ``/apis/<group>/<version>``):

=========================================================  ==========================
``apps/v1 deployments/<name>``                              GET (and LIST)
``apps/v1 deployments/<name>/scale``                        GET, PUT, PATCH
``v1 pods`` (``labelSelector``), ``v1 pods/<name>``          LIST, GET
``v1 events``                                               POST, LIST, GET
``coordination.k8s.io/v1 leases``                           POST, GET, PUT, PATCH, DELETE, LIST
``autoscaling/v2 horizontalpodautoscalers``                 LIST, GET, PUT, PATCH
``/version``, ``/api``, ``/apis``, ``/healthz``             GET
=========================================================  ==========================

Errors are ``Status`` objects with the apiserver's reasons (NotFound,
Conflict, AlreadyExists, Invalid, BadRequest, MethodNotAllowed). Each request
is handled under the emulator's lock. :class:`ApiFaults` lets a test make
requests fail or slow down. Responses close the connection (HTTP/1.0), so no
idle keep-alive connection holds a thread when the server stops.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from rlscale.emulator.deployment import FleetDeployment
from rlscale.emulator.network import POLL_S, QuietHTTPServer
from rlscale.emulator.objects import JSON, ApiError, apply_patch, bad_request, conflict
from rlscale.emulator.store import HPAS, LEASES, STORED, Resource, Store, list_body

log = logging.getLogger(__name__)

KUBERNETES_VERSION = {
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.0-rlscale-emulator",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2024-08-13T00:00:00Z",
    "goVersion": "go1.22.5",
    "compiler": "gc",
    "platform": "linux/amd64",
}
_PATH = re.compile(
    r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>[^/]+))?$"
)
RESOURCE_LISTS = {  # what kubectl's discovery asks for: (resource, kind, verbs, short names) per group version
    "/api/v1": [("pods", "Pod", "get list", "po"), ("events", "Event", "create get list", "ev")],
    "/apis/apps/v1": [
        ("deployments", "Deployment", "get list", "deploy"),
        ("deployments/scale", "Scale", "get patch update", ""),
    ],
    "/apis/coordination.k8s.io/v1": [("leases", "Lease", "create delete get list patch update", "")],
    "/apis/autoscaling/v2": [("horizontalpodautoscalers", "HorizontalPodAutoscaler", "get list patch update", "hpa")],
}
PODS = Resource("", "v1", "pods", "Pod")
DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment")


@dataclass
class _Fault:
    pattern: re.Pattern[str]
    method: str | None
    code: int
    times: int


class ApiFaults:
    """Failures and latency injected into the API, for tests of a client's retries and back-off."""

    def __init__(self) -> None:
        self._faults: list[_Fault] = []
        self._delays: list[tuple[re.Pattern[str], float]] = []
        self._lock = threading.Lock()

    def fail(self, path: str, code: int = 500, times: int = 1, method: str | None = None) -> None:
        """The next ``times`` requests whose path matches the regex ``path`` (and ``method``) get ``code``."""
        with self._lock:
            self._faults.append(_Fault(re.compile(path), method and method.upper(), code, times))

    def delay(self, seconds: float, path: str = "") -> None:
        """Every request whose path matches the regex ``path`` waits ``seconds`` (wall) before it is handled."""
        with self._lock:
            self._delays.append((re.compile(path), seconds))

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._delays.clear()

    def take(self, method: str, path: str) -> tuple[float, int | None]:
        """The delay for this request, and the failure code it gets (None: none)."""
        with self._lock:
            delay = sum(s for p, s in self._delays if p.search(path))
            for fault in self._faults:
                if fault.pattern.search(path) and fault.method in (None, method):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return delay, fault.code
        return delay, None


def injected(code: int, path: str) -> ApiError:
    if code == 409:
        return conflict("injected", path)
    reason = {500: "InternalError", 503: "ServiceUnavailable", 429: "TooManyRequests", 504: "Timeout"}.get(
        code, HTTPStatus(code).phrase.replace(" ", "")
    )
    return ApiError(code, reason, f"injected failure ({code}) for {path}")


class KubeApi:
    """Routes a request to the Deployment, the pods or the stored objects; returns (status, JSON body)."""

    def __init__(self, deployment: FleetDeployment, store: Store, lock: threading.RLock, faults: ApiFaults) -> None:
        self.deployment, self.store, self.lock, self.faults = deployment, store, lock, faults
        self.requests = 0

    def handle(self, method: str, url: str, content_type: str, raw: bytes) -> tuple[int, JSON]:
        split = urlsplit(url)
        path, query = split.path.rstrip("/") or "/", parse_qs(split.query)
        delay, fail = self.faults.take(method, path)
        if delay:
            time.sleep(delay)
        try:
            if fail is not None:
                raise injected(fail, path)
            body = _parse(raw) if raw else None
            with self.lock:
                self.requests += 1
                return 200 if method != "POST" else 201, self._route(method, path, query, content_type, body)
        except ApiError as err:
            return err.code, err.status()

    def _route(self, method: str, path: str, query: dict[str, list[str]], content_type: str, body: Any) -> JSON:
        if method == "GET" and (path in ("/version", "/api", "/apis") or path in RESOURCE_LISTS):
            return _discovery(path)
        m = _PATH.match(path)
        if m is None:
            raise _no_route()
        group, version = ("", "v1") if m["core"] else (m["group"], m["version"])
        plural, ns, name, sub = m["plural"], m["ns"], m["name"], m["sub"]
        selector = (query.get("labelSelector") or [None])[0]
        dry_run = "All" in query.get("dryRun", [])
        if (group, version, plural) == ("apps", "v1", "deployments"):
            return self._deployments(method, ns, name, sub, content_type, body, dry_run)
        if (group, version, plural) == ("", "v1", "pods") and sub is None and method == "GET":
            if name is None:
                return list_body(PODS, self.deployment.pods(ns, selector), self.store.versions.last)
            return self.deployment.pod(ns or "", name)
        res = next((r for r in STORED if (r.group, r.version, r.plural) == (group, version, plural)), None)
        if res is None or sub is not None or (ns is None and (name is not None or method != "GET")):
            raise _no_route()
        return self._stored(res, method, ns, name, selector, content_type, body, dry_run)

    def _deployments(
        self,
        method: str,
        ns: str | None,
        name: str | None,
        sub: str | None,
        content_type: str,
        body: Any,
        dry_run: bool,
    ) -> JSON:
        d = self.deployment
        if name is None and sub is None and method == "GET":
            items = [d.deployment()] if ns in (None, d.namespace) else []
            return list_body(DEPLOYMENTS, items, self.store.versions.last)
        if name is None or ns is None or sub not in (None, "scale"):
            raise _no_route()
        d.require(ns, name)
        if sub is None:
            _allow(method, "GET")
            return d.deployment()
        if method == "GET":
            return d.scale()
        if method == "PUT":
            return d.write_scale(body, dry_run)
        if method == "PATCH":
            return d.write_scale(apply_patch(d.scale(), body, content_type), dry_run)
        raise _not_allowed(method)

    def _stored(
        self,
        res: Resource,
        method: str,
        ns: str,
        name: str | None,
        selector: str | None,
        content_type: str,
        body: Any,
        dry_run: bool,
    ) -> JSON:
        store = self.store
        if name is None:
            if method == "GET":
                return store.list(res, ns, selector)
            _allow(method, "POST")
            return store.create(res, ns, body, dry_run)
        if method == "GET":
            return store.get(res, ns, name)
        if method == "PUT":
            return store.replace(res, ns, name, body, dry_run)
        if method == "PATCH":
            return store.patch(res, ns, name, body, content_type, dry_run)
        if method == "DELETE":
            store.delete(res, ns, name)
            return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                    "details": {"name": name, "group": res.group, "kind": res.plural}}  # fmt: skip
        raise _not_allowed(method)


def _parse(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise bad_request(f"the request body is not valid JSON: {exc}") from exc


def _no_route() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def _not_allowed(method: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", f"the server does not allow {method} on the requested resource")


def _allow(method: str, allowed: str) -> None:
    if method != allowed:
        raise _not_allowed(method)


def _discovery(path: str) -> JSON:
    if path == "/version":
        return dict(KUBERNETES_VERSION)
    if path in RESOURCE_LISTS:
        group_version = path.removeprefix("/api/").removeprefix("/apis/")
        resources = []
        for name, kind, verbs, short in RESOURCE_LISTS[path]:
            resource = {"name": name, "singularName": "", "namespaced": True, "kind": kind, "verbs": verbs.split()}
            if short:
                resource["shortNames"] = [short]
            if kind == "Scale":
                resource.update(group="autoscaling", version="v1")
            resources.append(resource)
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}
    if path == "/api":
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
    groups = {}
    for res in (DEPLOYMENTS, LEASES, HPAS):
        gv = {"groupVersion": res.api_version, "version": res.version}
        groups[res.group] = {"name": res.group, "versions": [gv], "preferredVersion": gv}
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": list(groups.values())}


class ApiServer(QuietHTTPServer):
    """``KubeApi`` over HTTP on ``address``; ``serve_forever`` runs in a thread of its own."""

    request_queue_size = 64

    def __init__(self, address: tuple[str, int], api: KubeApi) -> None:
        self.api = api
        super().__init__(address, _ApiHandler)
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": POLL_S}, name="emulator-apiserver", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self.shutdown()
            self._thread.join()
        self.server_close()


class _ApiHandler(BaseHTTPRequestHandler):
    server: ApiServer
    timeout = 10  # a stalled client cannot hold a request thread

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path.split("?")[0] in ("/healthz", "/readyz", "/livez"):
            code, data, kind = 200, b"ok", "text/plain; charset=utf-8"
        else:
            content_type = self.headers.get("Content-Type") or "application/json"
            code, body = self.server.api.handle(self.command, self.path, content_type, raw)
            data, kind = json.dumps(body).encode(), "application/json"
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: object) -> None:
        log.debug("api %s", format % args)

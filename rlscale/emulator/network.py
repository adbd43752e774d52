"""The pod network on loopback: one address per pod, and each scrape-able pod's metrics listeners on it.

All of 127.0.0.0/8 routes to ``lo`` on Linux, so every simulated pod gets
its own address 127.0.0.N (N = 2..254, handed out round-robin as an IPAM
does, so a new pod rarely reuses a recent one's address) and keeps it while
it exists. While the pod's server is up (``fleet.scrape_targets()``) it
listens on two ports of that address:

* ``metrics_port``: ``/metrics`` is the JetStream server's page and
  ``/device/metrics`` the TPU device plugin's page for the pod's chips;
* ``device_port`` (optional): ``/metrics`` is the device plugin's page again,
  for a scraper that, as on GKE, reads it from its own port.

A pod that is not scrape-able has no listener, so a connection is refused,
as it is by a container whose server has not started (or has crashed).

One thread watches every listening socket with a selector and hands each
accepted connection to a short-lived request thread; pages are rendered by a
callback that takes the emulator's lock. No listener binds through
``getfqdn`` (a reverse DNS lookup per address).
"""

from __future__ import annotations

import logging
import selectors
import socket
import socketserver
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

SERVER_PAGE, DEVICE_PAGE = "server", "device"
EXPOSITION_TYPE = "text/plain; version=0.0.4; charset=utf-8"
POLL_S = 0.05  # how soon a pod's listeners follow its state, wall seconds
HOSTS = range(2, 255)  # 127.0.0.1 is the API server's

Render = Callable[[str, str], tuple[int, str]]  # (pod, page) -> (HTTP status, body)


class AddressPool:
    """Loopback addresses for pods, stable for a pod's lifetime. Callers hold the emulator's lock."""

    def __init__(self) -> None:
        self._of: dict[str, str] = {}
        self._next = 0

    def get(self, pod: str) -> str | None:
        return self._of.get(pod)

    def assign(self, pod: str) -> str:
        if pod in self._of:
            return self._of[pod]
        used = set(self._of.values())
        for k in range(len(HOSTS)):
            address = f"127.0.0.{HOSTS[(self._next + k) % len(HOSTS)]}"
            if address not in used:
                self._next = (self._next + k + 1) % len(HOSTS)
                self._of[pod] = address
                return address
        raise RuntimeError(f"no free loopback address for pod {pod}: {len(used)} pods hold them all")

    def release(self, pod: str) -> None:
        self._of.pop(pod, None)


class QuietHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that binds without a DNS lookup and joins its request threads on close."""

    daemon_threads = False  # so server_close() joins them: stop() leaves no thread behind
    block_on_close = True

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


class _PodListener(QuietHTTPServer):
    timeout = 0  # handle_request() is called only when the selector says a connection waits

    def __init__(self, address: tuple[str, int], pod: str, paths: Mapping[str, str], render: Render) -> None:
        self.pod, self.paths, self.render = pod, paths, render
        super().__init__(address, _MetricsHandler)


class _MetricsHandler(BaseHTTPRequestHandler):
    server: _PodListener
    timeout = 5  # a stalled client cannot hold a request thread

    def do_GET(self) -> None:
        page = self.server.paths.get(urlsplit(self.path).path)
        code, body = (404, "not found\n") if page is None else self.server.render(self.server.pod, page)
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", EXPOSITION_TYPE if code == 200 else "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.server.pod, format % args)


class PodNetwork:
    """Keeps one set of listeners per scrape-able pod, following ``targets()`` (pod -> address)."""

    def __init__(
        self,
        targets: Callable[[], dict[str, str]],
        render: Render,
        metrics_port: int,
        device_port: int | None = None,
        on_change: Callable[[dict[str, str]], None] | None = None,
    ) -> None:
        self.targets, self.render, self.on_change = targets, render, on_change
        self.metrics_port, self.device_port = metrics_port, device_port
        self.listening: dict[str, str] = {}  # pod -> address, as served now
        self._listeners: dict[str, list[_PodListener]] = {}
        self._selector = selectors.DefaultSelector()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="emulator-pod-network", daemon=True)
        self._warned: set[tuple[str, str]] = set()
        self._reconciling = threading.Lock()  # the poll thread and advance() both reconcile

    def start(self) -> None:
        self.reconcile()  # listeners up before start() returns
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        for pod in list(self._listeners):
            self._close(pod)
        self._selector.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(timeout=POLL_S):
                key.data.handle_request()  # accept; the request runs in its own thread
            self.reconcile()

    def reconcile(self) -> None:
        """Open listeners for new scrape-able pods, close those of pods that stopped serving. Serialized: a
        reconcile working from an older ``targets()`` would close a listener another one just opened."""
        with self._reconciling:
            self._reconcile()

    def _reconcile(self) -> None:
        wanted = self.targets()
        changed = False
        for pod in [p for p, address in self.listening.items() if wanted.get(p) != address]:
            self._close(pod)
            changed = True
        for pod, address in wanted.items():
            if pod not in self.listening and self._open(pod, address):
                changed = True
        if changed and self.on_change is not None:
            self.on_change(dict(self.listening))

    def _open(self, pod: str, address: str) -> bool:
        ports = [(self.metrics_port, {"/metrics": SERVER_PAGE, "/device/metrics": DEVICE_PAGE})]
        if self.device_port is not None:
            ports.append((self.device_port, {"/metrics": DEVICE_PAGE}))
        opened: list[_PodListener] = []
        try:
            for port, paths in ports:
                opened.append(_PodListener((address, port), pod, paths, self.render))
        except OSError as exc:
            for listener in opened:
                listener.server_close()
            if (pod, address) not in self._warned:  # retried every poll; said once
                self._warned.add((pod, address))
                log.warning("pod %s: cannot listen on %s: %s", pod, address, exc)
            return False
        for listener in opened:
            self._selector.register(listener.socket, selectors.EVENT_READ, listener)
        self._listeners[pod] = opened
        self.listening[pod] = address
        return True

    def _close(self, pod: str) -> None:
        for listener in self._listeners.pop(pod, []):
            self._selector.unregister(listener.socket)
            listener.server_close()
        self.listening.pop(pod, None)


def reserve_port(port: int) -> tuple[int, socket.socket | None]:
    """``port``, or for 0 a free one held (bound, not listening, so never handed out again) until closed."""
    if port:
        return port, None
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock.getsockname()[1], sock

"""The emulated cluster: a fleet simulation in real time behind a Kubernetes API and per-pod metrics endpoints."""

from __future__ import annotations

import copy
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

import yaml

from rlscale.emulator.apiserver import ApiFaults, ApiServer, KubeApi
from rlscale.emulator.deployment import FleetDeployment
from rlscale.emulator.driver import RealTimeDriver
from rlscale.emulator.jetstream_api import ClientTraffic, JetStreamHTTPServer, grpc_server
from rlscale.emulator.network import DEVICE_PAGE, AddressPool, PodNetwork, reserve_port
from rlscale.emulator.prometheus import write_targets
from rlscale.emulator.store import EVENTS, HPAS, Store, Versions
from rlscale.scenario import ScenarioConfig, load_scenario
from rlscale.simulation import Simulation


class Replicas(NamedTuple):
    desired: int  # spec.replicas
    current: int  # pods not terminating: the Scale's status.replicas
    ready: int  # pods Ready and not terminating


class Snapshot(NamedTuple):
    """One consistent look at the emulator, for a status line."""

    now_s: float
    replicas: Replicas
    arrived: int  # requests that reached the gateway so far
    lag_s: float
    api_requests: int


class Emulator:
    """Runs ``scenario``'s fleet at ``speed``× real time, with its API and metrics endpoints on loopback.

    Args:
        scenario: a ScenarioConfig or a scenario file. Its replica schedule is
            dropped: the replica count is whatever the API last set.
        speed: simulated seconds per wall second; 0 keeps the clock still
            (advance it with :meth:`advance`).
        api_port: port of the API server on 127.0.0.1 (0: any free port; see ``api_url``).
        metrics_port: port of every pod's ``/metrics`` and ``/device/metrics`` (0: a free one).
        targets_file: the Prometheus ``file_sd`` targets file to keep up to date (None: none).
        namespace, deployment: where the Deployment lives and what it is called.
        device_port: a second port serving the device plugin's page at ``/metrics``
            (0: a free one; None: none).
        labels: the pods' labels and the Deployment's selector (default ``app: <deployment>``).
        hpas: HPA manifests (autoscaling/v2) that exist in the namespace from the start.
        http_port, grpc_port: serve JetStream's ``POST /v1/generate`` and gRPC ``Decode`` on 127.0.0.1 (0: a free
            port; None: not served), into the fleet as a Service would route them
            (:mod:`rlscale.emulator.jetstream_api`); the clock then wakes for each simulated event, not each tick.
        scenario_traffic: play the scenario's own workload (False: only what clients send).
        answer_timeout_s: wall seconds a served request waits for its first token, then for its end.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. Read or
    change ``sim`` only while holding ``lock``.
    """

    def __init__(
        self,
        scenario: ScenarioConfig | str | Path,
        speed: float = 1.0,
        api_port: int = 0,
        metrics_port: int = 0,
        targets_file: str | Path | None = None,
        namespace: str = "default",
        deployment: str = "jetstream",
        *,
        device_port: int | None = 0,
        labels: Mapping[str, str] | None = None,
        hpas: Iterable[Mapping[str, Any]] = (),
        http_port: int | None = None,
        grpc_port: int | None = None,
        scenario_traffic: bool = True,
        answer_timeout_s: float = 600.0,
    ) -> None:
        if not isinstance(scenario, ScenarioConfig):
            scenario = load_scenario(scenario)
        self.scenario = scenario.model_copy(update={"schedule": []})
        self.namespace = namespace
        self.lock = threading.RLock()
        self.sim = Simulation.build(self.scenario, None if scenario_traffic else [])
        start_epoch, start_sim = time.time(), self.sim.env.now
        self.epoch_of = lambda sim_s: start_epoch + (sim_s - start_sim)  # server-set timestamps follow the sim
        self._reserved: list[socket.socket] = []
        self.metrics_port = self._port(metrics_port)
        self.device_port = None if device_port is None else self._port(device_port)
        self._targets_file = Path(targets_file) if targets_file is not None else None
        self.faults = ApiFaults()
        versions = Versions()
        self.store = Store(versions, lambda: self.epoch_of(self.sim.env.now))
        self.deployment = FleetDeployment(
            self.sim, versions, AddressPool(), self.epoch_of, namespace, deployment,
            labels or {"app": deployment}, self.metrics_port,
        )  # fmt: skip
        for manifest in hpas:
            self.store.create(HPAS, namespace, _with_status(manifest, self.sim.fleet.desired))
        serving = http_port is not None or grpc_port is not None
        self.driver = RealTimeDriver(self.sim.env, self.lock, speed, on_advance=self._advanced, precise=serving)
        self.clients = ClientTraffic(self.sim, self.lock, self.driver)
        self.network = PodNetwork(self._scrapeable, self._render, self.metrics_port, self.device_port, self._publish)
        self.http: JetStreamHTTPServer | None = None
        self.grpc: Any = None
        self.grpc_port: int | None = None
        try:
            self.api = ApiServer(("127.0.0.1", api_port), KubeApi(self.deployment, self.store, self.lock, self.faults))
            if http_port is not None:
                self.http = JetStreamHTTPServer(("127.0.0.1", http_port), self.clients, answer_timeout_s)
            if grpc_port is not None:
                self.grpc, self.grpc_port = grpc_server(f"127.0.0.1:{grpc_port}", self.clients, answer_timeout_s)
        except OSError:
            for sock in self._reserved:
                sock.close()
            if self.http is not None:
                self.http.server_close()
            raise
        self._started = self._stopped = False

    def _port(self, port: int) -> int:
        port, sock = reserve_port(port)
        if sock is not None:
            self._reserved.append(sock)
        return port

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> Emulator:
        if self._started:
            raise RuntimeError("the emulator was already started")
        self._started = True
        self.api.start()
        self.network.start()
        self._publish(self.network.listening)
        self.driver.start()
        if self.http is not None:
            self.http.start()
        if self.grpc is not None:
            self.grpc.start()
        return self

    def stop(self) -> None:
        """Stop the clock, the listeners and the API server; join their threads; empty the targets file."""
        if self._stopped:
            return
        self._stopped = True
        if self.grpc is not None:
            self.grpc.stop(grace=None)
        self.driver.stop()
        if self._started:
            if self.http is not None:
                self.http.stop()
            self.network.stop()
            self.api.stop()
        else:
            self.api.server_close()
            if self.http is not None:
                self.http.server_close()
        for sock in self._reserved:
            sock.close()
        if self._started:
            self._publish({})

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None):
        self.stop()

    # ---- what tests and the CLI read ------------------------------------------------------------
    @property
    def api_url(self) -> str:
        return self.api.url

    @property
    def http_url(self) -> str | None:
        """JetStream's HTTP server (``POST /v1/generate``), if served."""
        return self.http.url if self.http is not None else None

    @property
    def grpc_target(self) -> str | None:
        """JetStream's gRPC server (``host:port``), if served."""
        return f"127.0.0.1:{self.grpc_port}" if self.grpc_port is not None else None

    @property
    def targets_file(self) -> Path | None:
        return self._targets_file

    @property
    def now_s(self) -> float:
        with self.lock:
            return self.sim.env.now

    @property
    def error(self) -> BaseException | None:
        """Why the simulation stopped, if it failed."""
        return self.driver.error

    def replicas(self) -> Replicas:
        with self.lock:
            fleet = self.sim.fleet
            ready = sum(i.ready and not i.deletion for i in fleet.pod_infos())
            return Replicas(fleet.desired, len(fleet.live_replicas()), ready)

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every Event posted to the API, in every namespace, oldest first."""
        with self.lock:
            return self.store.list(EVENTS, None)["items"]

    def targets(self) -> dict[str, str]:
        """Pods served now, as ``pod -> "127.0.0.N:metrics_port"``."""
        listening = dict(self.network.listening)  # one atomic copy: the network thread changes it
        return {pod: f"{address}:{self.metrics_port}" for pod, address in listening.items()}

    def pod_address(self, pod: str) -> str | None:
        """A pod's loopback address (held from when it runs on a node until it is gone)."""
        with self.lock:
            return self.deployment.addresses.get(pod)

    def advance(self, seconds: float) -> None:
        """Run the simulation ``seconds`` further now; with speed 0 this is the only way time passes."""
        self.driver.advance(seconds)
        self.network.reconcile()

    def snapshot(self) -> Snapshot:
        with self.lock:
            return Snapshot(
                self.sim.env.now, self.replicas(), self.sim.fleet.arrived, self.driver.lag_s, self.api.api.requests
            )

    def kubeconfig(self) -> str:
        """A kubeconfig for this API server (plain HTTP, no credentials), for kubectl or ``--kubeconfig``."""
        name = "rlscale-emulator"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": name, "cluster": {"server": self.api_url}}],
            "users": [{"name": name, "user": {}}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name, "namespace": self.namespace}}],
            "current-context": name,
        }
        return yaml.safe_dump(config, sort_keys=False)

    def _advanced(self) -> None:
        """After each advance of the clock (holding the lock): the API's view, then the clients' answers."""
        self.deployment.observe()
        self.clients.observe()

    # ---- callbacks of the pod network ----------------------------------------------------------
    def _scrapeable(self) -> dict[str, str]:
        with self.lock:
            return dict(self.deployment.scrapeable)

    def _render(self, pod: str, page: str) -> tuple[int, str]:
        """A page of ``pod`` rendered now, under the lock (503 if its server went down since the last poll)."""
        with self.lock:
            targets = self.sim.fleet.scrape_targets()
            server = next((s for s in targets if s.name == pod), None)
            if server is None:
                return 503, f"pod {pod}: server not running\n"
            if refusal := self._metrics_fault(pod, [s.name for s in targets]):
                return 503, refusal
            metrics = server.metrics
            return 200, metrics.device_exposition() if page == DEVICE_PAGE else metrics.exposition()

    def _metrics_fault(self, pod: str, targets: list[str]) -> str | None:
        """The scenario's faults on a pod's pages: a scrape-outage refuses the pods it covers; an adapter-outage,
        which a controller scraping pods directly cannot tell from every page refusing, refuses them all.
        (stale-metrics, a stalled ingestion, has no equivalent for a direct scrape and is not emulated.)"""
        faults, now = self.sim.faults, self.sim.env.now
        if faults.scrape_refused(pod, targets, now) or faults.active("adapter-outage", now) is not None:
            return f"pod {pod}: metrics refused (scenario fault at {now:g} s)\n"
        return None

    def _publish(self, listening: Mapping[str, str]) -> None:
        if self._targets_file is not None:
            write_targets(self._targets_file, listening, self.metrics_port, self.namespace)


def _with_status(manifest: Mapping[str, Any], replicas: int) -> dict[str, Any]:
    hpa = copy.deepcopy(dict(manifest))
    hpa.setdefault("status", {"currentReplicas": replicas, "desiredReplicas": replicas})
    return hpa

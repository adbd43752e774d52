"""A Deployment of JetStream pods: lifecycle, scale-down order, drain, the gateway, cost.

Replica phases::

    PENDING (no node) → STARTING (image pull) → LOADING (weights) → WARMING (AOT compile)
      → READY (in the Service) → TERMINATING (out of the Service, draining) → GONE

The replica count is set through :meth:`Fleet.set_replicas`, as a
``deployments/scale`` PATCH does; bounds belong to the policies.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import simpy

from rlscale.cluster.config import FleetConfig
from rlscale.cluster.lifecycle import startup_delays
from rlscale.cluster.nodes import Node, NodePool
from rlscale.cluster.routing import make_router
from rlscale.pods import PodInfo, PodPhase
from rlscale.serving.config import PodConfig
from rlscale.serving.hbm import HBMBudget
from rlscale.serving.pod import JetStreamPod, PodStatus
from rlscale.serving.request import Request, RequestState
from rlscale.serving.step_time import RooflineStepModel
from rlscale.specs import load_hardware, load_model


class Phase(IntEnum):
    """Ordered as a ReplicaSet ranks pods for deletion: lower phases go first."""

    PENDING = 0
    STARTING = 1
    LOADING = 2
    WARMING = 3
    READY = 4
    TERMINATING = 5
    GONE = 6


_TERMINATING = Phase.TERMINATING  # read once per request: an Enum member lookup is slow on Python 3.11


@dataclass(eq=False)
class Replica:
    name: str
    serial: int  # creation order: "newest" ties on created_s are broken by it
    created_s: float
    phase: Phase = Phase.PENDING
    node: Node | None = None
    server: JetStreamPod | None = None
    ready_s: float | None = None
    deleted_s: float | None = None

    @property
    def serving(self) -> bool:
        """In the Service's endpoints: Ready, and its server not down after a crash."""
        return self.phase is Phase.READY and self.server is not None and self.server.status is PodStatus.RUNNING


@dataclass(frozen=True)
class ScaleEvent:
    time_s: float
    from_replicas: int
    to_replicas: int


class Fleet:
    """Pods of one model on one host type, behind one gateway."""

    def __init__(
        self,
        env: simpy.Environment,
        pod_config: PodConfig,
        config: FleetConfig,
        rng: np.random.Generator,
        on_done: Callable[[Request], None] | None = None,
        name: str = "jetstream",
    ) -> None:
        self.env, self.config, self.name = env, config, name
        self.model, self.hardware = load_model(pod_config.model), load_hardware(pod_config.hardware)
        self.step_model = RooflineStepModel.for_deployment(self.model, self.hardware, pod_config)
        slots = pod_config.per_device_batch_size * self.hardware.chips_per_host
        HBMBudget.for_pod(pod_config, self.model, self.hardware, slots)  # fail now, not at the first scale-up
        life = config.lifecycle
        self.delays = startup_delays(pod_config, life, self.model)
        # a crashed container restarts on its node: no pull of a cached image, but load and warm-up again
        self.pod_config = pod_config.model_copy(update={"restart_s": self.delays.restart_s})
        node_rng, router_rng = rng.spawn(2)
        self.nodes = NodePool(env, life, node_rng, self.hardware.chips_per_host)
        self.router = make_router(config.routing, router_rng)
        self.on_done = on_done
        self.replicas: list[Replica] = []  # the replicas not yet gone, in creation order (a churning fleet would
        # otherwise iterate every pod it ever had at each sync)
        self._created = 0  # replicas ever created: the next one's serial
        self._crashes_gone = 0  # crash restarts of the replicas gone
        self._replica_of: dict[str, Replica] = {}
        self.scale_events: list[ScaleEvent] = []
        self.gateway: deque[Request] = deque()
        self.arrived = self.gateway_failed = 0
        self._serving: list[JetStreamPod] = []
        self._serving_stale = True
        for _ in range(config.warm_nodes):
            self.nodes.add_ready_node()
        for _ in range(config.replicas):
            replica = self._new_replica()
            replica.node = self.nodes.add_ready_node()
            self.nodes.acquire(replica, lambda n: None)
            self._become_ready(replica)
        self.desired = config.replicas

    # ---- the scale subresource -------------------------------------------------
    def set_replicas(self, n: int) -> None:
        """What a PATCH of deployments/scale does: create or delete pods to reach ``n``."""
        if n < 0:
            raise ValueError(f"replicas must be >= 0, got {n}")
        if n != self.desired:
            self.scale_events.append(ScaleEvent(self.env.now, self.desired, n))
        self.desired = n
        live = self.live_replicas()
        for _ in range(n - len(live)):
            self._start(self._new_replica())
        if len(live) > n:
            # ReplicaSet deletion order: earlier phase first (pending < starting < ... < ready), newest first
            doomed = sorted(live, key=lambda r: (r.phase, -r.created_s, -r.serial))[: len(live) - n]
            for replica in doomed:
                self._delete(replica)

    def live_replicas(self) -> list[Replica]:
        """Replicas counted by the Deployment (not terminating, not gone)."""
        return [r for r in self.replicas if r.phase < Phase.TERMINATING]

    def pod_infos(self) -> tuple[PodInfo, ...]:
        """The Deployment's pods as the Kubernetes API lists them (for a controller's pod grouping)."""
        infos = []
        for r in self.replicas:
            if r.phase is Phase.GONE:
                continue
            phase = PodPhase.PENDING if r.phase is Phase.PENDING else PodPhase.RUNNING
            infos.append(PodInfo(r.name, phase, ready=r.serving, deletion=r.phase is Phase.TERMINATING))
        return tuple(infos)

    def count(self, phase: Phase) -> int:
        return sum(r.phase is phase for r in self.replicas)

    def serving_pods(self) -> list[JetStreamPod]:
        if self._serving_stale:
            self._serving = [r.server for r in self.replicas if r.serving]
            self._serving_stale = False
        return self._serving

    def scrape_targets(self) -> list[JetStreamPod]:
        """Pods whose server is up to answer a scrape (Ready or draining, not restarting)."""
        up = (Phase.READY, Phase.TERMINATING)
        return [r.server for r in self.replicas if r.phase in up and r.server.status is PodStatus.RUNNING]

    def in_flight_requests(self) -> Iterator[Request]:
        """Every request not yet ended: waiting at the gateway or held by a server."""
        yield from self.gateway
        for replica in self.replicas:
            if replica.server is not None:
                yield from replica.server.in_flight_requests()

    def in_flight(self) -> int:
        return len(self.gateway) + sum(r.server.in_flight for r in self.replicas if r.server is not None)

    def chip_hours(self) -> float:
        return self.nodes.chip_hours()

    def crashes(self) -> int:
        """Crash restarts so far, of every replica ever created."""
        return self._crashes_gone + sum(r.server.crashes for r in self.replicas if r.server is not None)

    # ---- traffic ---------------------------------------------------------------
    def submit(self, request: Request) -> None:
        """A request reaches the gateway."""
        self.arrived += 1
        pods = self.serving_pods()
        if pods:
            self.router.choose(pods).submit(request)
            return
        self._hold_at_gateway(request)

    def _hold_at_gateway(self, request: Request) -> None:
        """No pod serves: the request waits at the gateway, until a pod is ready or its timeout."""
        self.gateway.append(request)
        self.env.timeout(self.config.gateway_timeout_s).callbacks.append(lambda _: self._gateway_timeout(request))

    def _server_status(self, pod: JetStreamPod) -> None:
        """A server crashed, came back or was killed: the endpoints change."""
        self._serving_stale = True
        if pod.status is PodStatus.RUNNING:
            self._flush_gateway()

    def _gateway_timeout(self, request: Request) -> None:
        if request.state is RequestState.QUEUED and request in self.gateway:
            self.gateway.remove(request)
            request.state, request.failure, request.finish_s = RequestState.FAILED, "no ready pod", self.env.now
            self.gateway_failed += 1
            if self.on_done:
                self.on_done(request)

    def _flush_gateway(self) -> None:
        while self.gateway and self.serving_pods():
            self.router.choose(self.serving_pods()).submit(self.gateway.popleft())

    # ---- lifecycle ---------------------------------------------------------------
    def _new_replica(self) -> Replica:
        serial = self._created
        self._created += 1
        replica = Replica(f"{self.name}-{serial}", serial, self.env.now)
        self.replicas.append(replica)
        self._replica_of[replica.name] = replica
        return replica

    def _start(self, replica: Replica) -> None:
        self.nodes.acquire(replica, lambda node: self._bound(replica, node))

    def _bound(self, replica: Replica, node: Node) -> None:
        replica.node = node
        if replica.phase is not Phase.PENDING:  # deleted while the node was on its way
            self.nodes.release(node)
            return
        self.env.process(self._boot(replica))

    def _boot(self, replica: Replica):
        for phase, delay in (
            (Phase.STARTING, self.delays.image_pull_s),
            (Phase.LOADING, self.delays.weight_load_s),
            (Phase.WARMING, self.delays.warmup_s),
        ):
            if replica.deleted_s is not None:  # deleted, possibly at the very instant its node was bound
                return
            replica.phase = phase
            yield self.env.timeout(delay)
        if replica.deleted_s is None:
            self._become_ready(replica)

    def _become_ready(self, replica: Replica) -> None:
        replica.server = JetStreamPod(
            self.env, replica.name, self.pod_config, model=self.model, hardware=self.hardware,
            step_model=self.step_model, on_done=self._request_done, on_status=self._server_status,
        )  # fmt: skip
        replica.phase, replica.ready_s = Phase.READY, self.env.now
        self._serving_stale = True
        self._flush_gateway()

    def _delete(self, replica: Replica) -> None:
        replica.deleted_s = self.env.now
        self._serving_stale = True
        if replica.phase is Phase.PENDING:
            self.nodes.cancel(replica)
            self._retire(replica)
            if replica.node is not None:  # bound to a free node this instant; its boot has not run yet
                self.nodes.release(replica.node)
            return
        if replica.phase is not Phase.READY:  # no server yet: the container just stops
            self._retire(replica)
            self.nodes.release(replica.node)
            return
        replica.phase = Phase.TERMINATING  # out of the Service at once; drains in flight work
        if replica.server.in_flight == 0:
            self._gone(replica)
            return
        grace = self.config.lifecycle.termination_grace_period_s
        self.env.timeout(grace).callbacks.append(lambda _: self._gone(replica))

    def _gone(self, replica: Replica) -> None:
        """The pod's process ends: drained, or killed when its grace period is over."""
        if replica.phase is Phase.GONE:
            return
        replica.phase = Phase.GONE
        replica.server.kill("terminated: grace period over")  # its requests' ends still find it (_request_done)
        self._retire(replica)
        self.nodes.release(replica.node)

    def _retire(self, replica: Replica) -> None:
        """The replica is gone: out of the lists each sync walks (its crash count kept)."""
        replica.phase = Phase.GONE
        self.replicas.remove(replica)
        del self._replica_of[replica.name]
        if replica.server is not None:
            self._crashes_gone += replica.server.crashes

    def _request_done(self, request: Request) -> None:
        replica = self._replica_of[request.pod]
        if replica.phase is _TERMINATING and replica.server.in_flight == 0:
            self._gone(replica)
        if self.on_done:
            self.on_done(request)

"""TPU nodes under the cluster autoscaler: provisioned on demand, held while unneeded, then released.

A node hosts one single-host JetStream pod. A pending pod binds to the first
node that is free; the autoscaler provisions one node per pending pod that no
provisioning node will serve. A node left empty is released only after
``node_scale_down_delay_s``, and costs money from the moment it is requested
until it is released.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import simpy

from rlscale.cluster.config import LifecycleConfig

S_PER_HOUR = 3600.0


@dataclass(eq=False)
class Node:
    name: str
    requested_s: float
    ready_s: float | None = None
    released_s: float | None = None
    tenant: object | None = None
    idle_since: float | None = None

    def held_hours(self, now: float) -> float:
        end = self.released_s if self.released_s is not None else now
        return (end - self.requested_s) / S_PER_HOUR


@dataclass(eq=False)
class NodePool:
    env: simpy.Environment
    lifecycle: LifecycleConfig
    rng: np.random.Generator
    chips_per_node: int
    nodes: list[Node] = field(default_factory=list)
    _free: list[Node] = field(default_factory=list)
    _waiting: deque[tuple[object, Callable[[Node], None]]] = field(default_factory=deque)
    _provisioning: int = 0

    def add_ready_node(self) -> Node:
        """A node that exists at the start of the run."""
        node = Node(f"node-{len(self.nodes)}", self.env.now, ready_s=self.env.now)
        self.nodes.append(node)
        self._make_free(node)
        return node

    def acquire(self, tenant: object, on_bound: Callable[[Node], None]) -> None:
        """Bind ``tenant`` to a free node now, or when one is provisioned."""
        if self._free:
            self._bind(self._free.pop(), tenant, on_bound)
            return
        self._waiting.append((tenant, on_bound))
        if self._provisioning < len(self._waiting):
            self._provision()

    def cancel(self, tenant: object) -> None:
        """A pending pod was deleted: it stops waiting (a node already requested still arrives)."""
        self._waiting = deque(w for w in self._waiting if w[0] is not tenant)

    def release(self, node: Node) -> None:
        """The node's pod is gone: the node idles, and goes after the scale-down delay if still unneeded."""
        node.tenant = None
        if self._waiting:
            tenant, on_bound = self._waiting.popleft()
            self._bind(node, tenant, on_bound)
        else:
            self._make_free(node)

    def held(self) -> list[Node]:
        return [n for n in self.nodes if n.released_s is None]

    def chip_hours(self) -> float:
        return self.chips_per_node * sum(n.held_hours(self.env.now) for n in self.nodes)

    def _provision(self) -> None:
        node = Node(f"node-{len(self.nodes)}", self.env.now)
        self.nodes.append(node)
        self._provisioning += 1
        delay = self.lifecycle.node_provisioning.sample(self.rng)
        self.env.timeout(delay).callbacks.append(lambda _: self._provisioned(node))

    def _provisioned(self, node: Node) -> None:
        self._provisioning -= 1
        node.ready_s = self.env.now
        self.release(node)

    def _bind(self, node: Node, tenant: object, on_bound: Callable[[Node], None]) -> None:
        node.tenant, node.idle_since = tenant, None
        on_bound(node)

    def _make_free(self, node: Node) -> None:
        node.idle_since = idle_since = self.env.now
        self._free.append(node)

        def maybe_release(_: simpy.Event) -> None:
            if node.tenant is None and node.idle_since == idle_since and node.released_s is None:
                self._free.remove(node)
                node.released_s = self.env.now

        self.env.timeout(self.lifecycle.node_scale_down_delay_s).callbacks.append(maybe_release)

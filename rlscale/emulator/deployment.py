"""The Deployment, its ``scale`` subresource and its pods, as the apiserver shows them, read from the fleet.

The fleet simulator is the source of truth: ``spec.replicas`` is
``fleet.desired``, pods are ``fleet.pod_infos()`` (same names, phases, Ready
and deletion), and a scale write calls ``fleet.set_replicas``. What the
simulator does not keep (addresses, resourceVersions, transition times) is
tracked here by :meth:`FleetDeployment.observe`, which the real-time driver
calls after each advance: a change in a pod's visible state or in the
Deployment's status is a write, and takes the next resourceVersion, as the
kubelet's and the deployment controller's status updates do.

Wire-format details kept on purpose: integer fields the apiserver marks
``omitempty`` are left out when zero (a Scale at 0 replicas has ``spec: {}``),
and server-set timestamps follow the simulated clock.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rlscale.cluster.fleet import Phase, Replica
from rlscale.emulator.network import AddressPool
from rlscale.emulator.objects import (
    JSON,
    ApiError,
    bad_request,
    format_selector,
    invalid,
    label_selector,
    not_found,
    rfc3339,
)
from rlscale.emulator.store import Versions, check_version
from rlscale.pods import PodInfo, PodPhase
from rlscale.simulation import Simulation

CONTAINER = "jetstream"


@dataclass
class _PodRecord:
    """What the API shows of a pod beyond the fleet's state: its version and when its state last changed."""

    state: tuple[Any, ...]
    resource_version: str
    since_s: float
    ip: str | None


class FleetDeployment:
    """apps/v1 Deployment ``name`` in ``namespace``, backed by ``sim.fleet``. Callers hold the emulator's lock."""

    def __init__(
        self,
        sim: Simulation,
        versions: Versions,
        addresses: AddressPool,
        clock: Callable[[float], float],
        namespace: str,
        name: str,
        labels: Mapping[str, str],
        metrics_port: int,
    ) -> None:
        self.sim, self.fleet, self.versions, self.addresses = sim, sim.fleet, versions, addresses
        self.clock = clock  # simulated seconds -> epoch seconds
        self.namespace, self.name, self.labels = namespace, name, dict(labels)
        self.selector = format_selector(self.labels)
        self.metrics_port = metrics_port
        self.uid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"rlscale-emulator/{namespace}/{name}"))
        self.created_s = sim.env.now
        self.generation = 1
        self.resource_version = versions.next()
        self._status: tuple[int, ...] = ()
        self._pods: dict[str, _PodRecord] = {}
        self.scrapeable: dict[str, str] = {}  # pod -> address, for the pod network
        self.observe()

    # ---- following the fleet -------------------------------------------------------------
    def observe(self) -> None:
        """Record what changed since the last call: pod states, addresses, the Deployment's status."""
        now = self.sim.env.now
        infos = self.fleet.pod_infos()
        replicas = self._replicas()
        for info in infos:
            if info.phase is not PodPhase.PENDING:
                self.addresses.assign(info.name)
            ip = self.addresses.get(info.name)
            server = replicas[info.name].server
            state = (info.phase, info.ready, info.deletion, ip, server.crashes if server else 0)
            record = self._pods.get(info.name)
            if record is None or record.state != state:
                self._pods[info.name] = _PodRecord(state, self.versions.next(), now, ip)
        present = {info.name for info in infos}
        for gone in [p for p in self._pods if p not in present]:
            del self._pods[gone]
            self.addresses.release(gone)
        status = self._status_counts(infos)
        if status != self._status:
            self._status = status
            self.resource_version = self.versions.next()
        self.scrapeable = {pod.name: self.addresses.get(pod.name) for pod in self.fleet.scrape_targets()}

    def _replicas(self) -> dict[str, Replica]:
        return {r.name: r for r in self.fleet.replicas if r.phase is not Phase.GONE}

    def _status_counts(self, infos: tuple[PodInfo, ...]) -> tuple[int, int, int]:
        live = len(self.fleet.live_replicas())
        ready = sum(i.ready and not i.deletion for i in infos)
        return live, ready, self.fleet.desired

    # ---- deployments ------------------------------------------------------------------------
    def matches(self, namespace: str, name: str) -> bool:
        return namespace == self.namespace and name == self.name

    def require(self, namespace: str, name: str) -> None:
        if not self.matches(namespace, name):
            raise not_found("deployments", name, "apps")

    def _metadata(self) -> JSON:
        return {
            "name": self.name,
            "namespace": self.namespace,
            "uid": self.uid,
            "resourceVersion": self.resource_version,
            "creationTimestamp": rfc3339(self.clock(self.created_s)),
        }

    def deployment(self) -> JSON:
        live, ready, desired = self._status_counts(self.fleet.pod_infos())
        status = _omit_zero(
            {
                "observedGeneration": self.generation,
                "replicas": live,
                "updatedReplicas": live,
                "readyReplicas": ready,
                "availableReplicas": ready,
                "unavailableReplicas": max(0, desired - ready),
            }
        )
        return {
            "kind": "Deployment",
            "apiVersion": "apps/v1",
            "metadata": {**self._metadata(), "generation": self.generation, "labels": dict(self.labels)},
            "spec": {
                **_omit_zero({"replicas": desired}),
                "selector": {"matchLabels": dict(self.labels)},
                "template": {"metadata": {"labels": dict(self.labels)}, "spec": {"containers": [self._container()]}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                "revisionHistoryLimit": 10,
                "progressDeadlineSeconds": 600,
            },
            "status": {**status, "conditions": self._conditions(ready)},
        }

    def _conditions(self, ready: int) -> list[JSON]:
        t = rfc3339(self.clock(self.sim.env.now))
        available = "True" if ready > 0 or self.fleet.desired == 0 else "False"
        return [
            {"type": "Available", "status": available, "lastUpdateTime": t, "lastTransitionTime": t,
             "reason": "MinimumReplicasAvailable" if available == "True" else "MinimumReplicasUnavailable"},
            {"type": "Progressing", "status": "True", "lastUpdateTime": t, "lastTransitionTime": t,
             "reason": "NewReplicaSetAvailable"},
        ]  # fmt: skip

    def _container(self) -> JSON:
        return {
            "name": CONTAINER,
            "image": "us-docker.pkg.dev/cloud-tpu-images/inference/maxengine-server:emulated",
            "ports": [{"name": "metrics", "containerPort": self.metrics_port, "protocol": "TCP"}],
        }

    # ---- the scale subresource ----------------------------------------------------------------
    def scale(self) -> JSON:
        """autoscaling/v1 Scale: desired replicas, pods not terminating, and the selector that finds them."""
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": self._metadata(),
            "spec": _omit_zero({"replicas": self.fleet.desired}),
            "status": {"replicas": len(self.fleet.live_replicas()), "selector": self.selector},
        }

    def write_scale(self, body: Any, dry_run: bool = False) -> JSON:
        """A PUT (or a patched Scale): check the version, validate, then set the fleet's replica count."""
        if not isinstance(body, dict):
            raise bad_request("the body must be a JSON Scale object")
        fault = self.sim.faults.active("scale-failure", self.sim.env.now)
        if fault is not None:  # the scenario's fault: the write fails as an overloaded or unreachable apiserver's
            raise ApiError(503, "ServiceUnavailable", f"scale-failure fault {fault.start_s:g}-{fault.end_s:g} s")
        check_version(body, self.scale(), "deployments", "apps")
        name = (body.get("metadata") or {}).get("name", self.name)
        if name != self.name:
            raise bad_request(f"the name of the object ({name}) does not match the name on the URL ({self.name})")
        replicas = (body.get("spec") or {}).get("replicas", 0)  # omitempty: absent means 0
        if isinstance(replicas, bool) or not isinstance(replicas, int):
            raise invalid("Scale.autoscaling", self.name, f"spec.replicas: Invalid value: {replicas!r}: not an integer")
        if replicas < 0:
            raise invalid(
                "Scale.autoscaling",
                self.name,
                f"spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0",
            )
        if dry_run:
            return {**self.scale(), "spec": _omit_zero({"replicas": replicas})}
        if replicas != self.fleet.desired:
            self.fleet.set_replicas(replicas)
            self.generation += 1
            self.resource_version = self.versions.next()
            self.observe()
        return self.scale()

    # ---- pods -----------------------------------------------------------------------------------
    def pods(self, namespace: str | None, selector: str | None) -> list[JSON]:
        if namespace not in (None, self.namespace):
            return []
        match = label_selector(selector)
        replicas = self._replicas()
        return [self._pod(info, replicas[info.name]) for info in self.fleet.pod_infos() if match(self.labels)]

    def pod(self, namespace: str, name: str) -> JSON:
        replicas = self._replicas()
        for info in self.fleet.pod_infos():
            if info.name == name and namespace == self.namespace:
                return self._pod(info, replicas[name])
        raise not_found("pods", name)

    def _pod(self, info: PodInfo, replica: Replica) -> JSON:
        record = self._pods.get(info.name)
        if record is None or record.state[:3] != (info.phase, info.ready, info.deletion):
            self.observe()  # the fleet moved since the last tick
            record = self._pods[info.name]
        meta: JSON = {
            "name": info.name,
            "generateName": f"{self.name}-",
            "namespace": self.namespace,
            "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.uid}/{info.name}")),
            "resourceVersion": record.resource_version,
            "creationTimestamp": rfc3339(self.clock(replica.created_s)),
            "labels": dict(self.labels),
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": f"{self.name}-emulated",
                 "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.uid}/replicaset")),
                 "controller": True, "blockOwnerDeletion": True},
            ],
        }  # fmt: skip
        grace = round(self.fleet.config.lifecycle.termination_grace_period_s)
        if info.deletion and replica.deleted_s is not None:
            meta["deletionTimestamp"] = rfc3339(self.clock(replica.deleted_s + grace))
            meta["deletionGracePeriodSeconds"] = grace
        spec: JSON = {"containers": [self._container()], "terminationGracePeriodSeconds": grace}
        if replica.node is not None and info.phase is not PodPhase.PENDING:
            spec["nodeName"] = replica.node.name
        return {
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": meta,
            "spec": spec,
            "status": self._pod_status(info, replica, record),
        }

    def _pod_status(self, info: PodInfo, replica: Replica, record: _PodRecord) -> JSON:
        changed = rfc3339(self.clock(record.since_s))
        if info.phase is PodPhase.PENDING:
            return {
                "phase": "Pending",
                "qosClass": "Guaranteed",
                "conditions": [
                    {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                     "lastTransitionTime": changed,
                     "message": "0/0 nodes are available: waiting for the cluster autoscaler to add a TPU node."},
                ],
            }  # fmt: skip
        ready = "True" if info.ready else "False"
        server = replica.server
        started = self.clock(replica.ready_s if replica.ready_s is not None else record.since_s)
        pulling = replica.phase is Phase.STARTING
        container: JSON = {
            "name": CONTAINER,
            "image": self._container()["image"],
            "imageID": "",
            "ready": info.ready,
            "restartCount": server.crashes if server else 0,
            "started": not pulling,
            "state": {"waiting": {"reason": "ContainerCreating"}}
            if pulling
            else {"running": {"startedAt": rfc3339(started)}},
        }
        scheduled = rfc3339(self.clock(replica.created_s))
        return {
            "phase": "Running",
            "qosClass": "Guaranteed",
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": scheduled},
                {"type": "Initialized", "status": "True", "lastTransitionTime": scheduled},
                {"type": "ContainersReady", "status": ready, "lastTransitionTime": changed},
                {"type": "Ready", "status": ready, "lastTransitionTime": changed},
            ],
            "hostIP": "10.128.0.2",
            "podIP": record.ip,
            "podIPs": [{"ip": record.ip}],
            "startTime": scheduled,
            "containerStatuses": [container],
        }


def _omit_zero(fields: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in fields.items() if v}

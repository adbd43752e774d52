"""Leader election on a ``coordination.k8s.io/v1`` Lease, so two replicas of the controller never both act.

Why not ``kubernetes.leaderelection``: the client's own implementation runs blocking loops on the process's wall
clock (``time.time``/``time.sleep``), builds its API object from the global default configuration, calls
``sys.exit`` on bad settings and never releases the Lease. The controller needs an injectable clock (tests), its
own ``ApiClient``, a non-blocking step it can interleave with syncs, and a release on shutdown, so this is
client-go's algorithm in a few lines:

* a candidate takes the Lease when it does not exist, has no holder, or its record has not changed for
  ``lease_duration_s`` *as observed on the candidate's own clock* (no clock-skew assumptions);
* every write is a replace guarded by ``metadata.resourceVersion``: of two candidates racing, one gets 409;
* a leader acts only while its last successful renewal is younger than the renew deadline
  (``lease_duration_s − renew_period_s``), so it stops before any other candidate may take over.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)


def default_identity() -> str:
    """The pod's name where the Deployment passes it (``POD_NAME``), else the host name, plus a random suffix."""
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def micro_time(t: float) -> str:
    """A Kubernetes MicroTime (RFC 3339 with microseconds, UTC)."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseElector:
    """One candidate. Call :meth:`tick` every ``renew_period_s``; act only while :attr:`is_leader`."""

    def __init__(
        self,
        coordination: client.CoordinationV1Api,
        namespace: str,
        name: str,
        identity: str | None = None,
        *,
        lease_duration_s: float = 15.0,
        renew_period_s: float = 5.0,
        clock: Callable[[], float] = time.time,
        timeout_s: float = 5.0,
    ) -> None:
        if not 0 < renew_period_s < lease_duration_s:
            raise ValueError(f"renew_period_s ({renew_period_s}) must be in (0, lease_duration_s={lease_duration_s})")
        self.api, self.namespace, self.name = coordination, namespace, name
        self.identity = identity or default_identity()
        self.lease_duration_s, self.renew_period_s = lease_duration_s, renew_period_s
        self.clock, self.timeout_s = clock, timeout_s
        self._renewed_at: float | None = None  # local time just before our last successful write
        self._observed: tuple[str | None, float] | None = None  # (resourceVersion, local time first seen)
        self.holder: str | None = None  # as last read

    @property
    def is_leader(self) -> bool:
        deadline = self.lease_duration_s - self.renew_period_s
        return self._renewed_at is not None and self.clock() < self._renewed_at + deadline

    def tick(self) -> bool:
        """Try to acquire or renew the Lease once; whether this candidate leads now. API errors are logged and
        leave leadership to lapse at its deadline."""
        now = self.clock()
        try:
            self._try_acquire_or_renew(now)
        except ApiException as exc:
            log.warning("lease %s/%s: HTTP %s %s", self.namespace, self.name, exc.status, exc.reason)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            log.warning("lease %s/%s: %s", self.namespace, self.name, exc)
        return self.is_leader

    def _try_acquire_or_renew(self, now: float) -> None:
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace, _request_timeout=self.timeout_s)
        except ApiException as exc:
            if exc.status != 404:
                raise
            self._create(now)
            return
        spec = lease.spec
        holder = spec.holder_identity if spec else None
        duration = float((spec.lease_duration_seconds if spec else None) or self.lease_duration_s)
        version = lease.metadata.resource_version
        if self._observed is None or self._observed[0] != version:
            self._observed = (version, now)
        self.holder = holder
        ours = holder == self.identity
        if holder and not ours and now < self._observed[1] + duration:
            self._renewed_at = None  # someone else leads; if it was us before, we lost it
            return
        transitions = int((spec.lease_transitions if spec else None) or 0)
        body = self._body(
            now,
            acquired=(spec.acquire_time if ours and spec.acquire_time else None),
            transitions=transitions if ours else transitions + 1,
            version=version,
        )
        try:
            self.api.replace_namespaced_lease(self.name, self.namespace, body, _request_timeout=self.timeout_s)
        except ApiException as exc:
            if exc.status == 409:  # another candidate wrote first
                self._renewed_at = None
                return
            raise
        if not ours:
            log.info("lease %s/%s acquired by %s (was %s)", self.namespace, self.name, self.identity, holder)
        self.holder, self._renewed_at = self.identity, now

    def _create(self, now: float) -> None:
        try:
            self.api.create_namespaced_lease(
                self.namespace, self._body(now, None, 0, None), _request_timeout=self.timeout_s
            )
        except ApiException as exc:
            if exc.status == 409:  # created by another candidate meanwhile
                return
            raise
        log.info("lease %s/%s created by %s", self.namespace, self.name, self.identity)
        self.holder, self._renewed_at = self.identity, now

    def _body(self, now: float, acquired: Any, transitions: int, version: str | None) -> dict[str, Any]:
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if version is not None:
            metadata["resourceVersion"] = version
        if isinstance(acquired, datetime):
            acquired = acquired.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.lease_duration_s)),
            "acquireTime": acquired or micro_time(now),
            "renewTime": micro_time(now),
            "leaseTransitions": transitions,
        }
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata, "spec": spec}

    def release(self) -> None:
        """Give the Lease up (on shutdown) so a standby takes over at its next try instead of waiting it out."""
        if not self.is_leader:
            return
        self._renewed_at = None
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace, _request_timeout=self.timeout_s)
            if lease.spec is None or lease.spec.holder_identity != self.identity:
                return
            body = self._body(self.clock(), lease.spec.acquire_time, int(lease.spec.lease_transitions or 0),
                              lease.metadata.resource_version)  # fmt: skip
            body["spec"].update(holderIdentity=None, leaseDurationSeconds=1)
            self.api.replace_namespaced_lease(self.name, self.namespace, body, _request_timeout=self.timeout_s)
            log.info("lease %s/%s released by %s", self.namespace, self.name, self.identity)
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            log.warning("lease %s/%s: release failed (%s); it expires by itself", self.namespace, self.name, exc)

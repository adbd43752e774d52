"""The Kubernetes side of the live controller, through the official ``kubernetes`` client.

Every call the controller makes is here, and :data:`REQUIRED_RULES` lists exactly what they need, shaped like the
rules of a Role (``tests/test_manifests.py`` compares it with the shipped one). Calls are retried with exponential
back-off when retrying can help (409 Conflict after re-reading, 429, 5xx, timeouts, refused connections) and fail
at once with :class:`KubeError` when it cannot (401, 403, 404, 422): a level-based controller skips the sync and
tries again at the next one.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from rlscale.deploy.pods import LivePod
from rlscale.metrics.pipeline import MetricsView
from rlscale.pods import PodPhase
from rlscale.policies.base import ClusterState

log = logging.getLogger(__name__)
T = TypeVar("T")

# What the controller's Role must grant, and nothing more (the HPA patch only with existing_hpa: manage-bounds).
REQUIRED_RULES: list[dict[str, list[str]]] = [
    {"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["get", "patch"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "update", "create"]},
    {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": ["list"]},
]
MANAGE_BOUNDS_RULES: list[dict[str, list[str]]] = [
    {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": ["patch"]},
]
MERGE_PATCH = "application/merge-patch+json"
RETRIABLE_STATUS = frozenset({0, 429, 500, 502, 503, 504})  # 0: the client's own transport errors
COMPONENT = "rlscale-controller"


class KubeError(RuntimeError):
    """An API call failed: permanently, or after its retries."""


class KubeConfigError(KubeError):
    """No way to reach an API server was found (no in-cluster account, no kubeconfig, no URL)."""


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries: ``attempts`` tries, waiting ``base_s``·2^k (at most ``max_s``) between them."""

    attempts: int = 4
    base_s: float = 0.25
    max_s: float = 4.0
    timeout_s: float = 10.0  # per request

    def delay(self, attempt: int) -> float:
        return min(self.max_s, self.base_s * 2**attempt)


@dataclass(frozen=True)
class Scale:
    """The Deployment's ``scale`` subresource."""

    spec_replicas: int
    status_replicas: int
    selector: str  # status.selector, a label selector string ("app=jetstream")
    resource_version: str | None


@dataclass(frozen=True)
class HPARef:
    name: str
    min_replicas: int | None
    max_replicas: int


def api_client(api_url: str | None = None, kubeconfig: str | None = None) -> client.ApiClient:
    """A client of its own (never the module-global default): ``api_url`` (e.g. the emulator's
    ``http://127.0.0.1:P``) if given, else ``kubeconfig`` if given, else the pod's service account, else
    ``$KUBECONFIG`` / ``~/.kube/config``. Nothing is sent until the first call."""
    cfg = client.Configuration()
    if api_url:
        cfg.host = api_url.rstrip("/")
    elif kubeconfig:
        try:
            config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
        except (config.ConfigException, OSError) as exc:
            raise KubeConfigError(f"kubeconfig {kubeconfig}: {exc}") from exc
    else:
        try:
            config.load_incluster_config(client_configuration=cfg)
        except config.ConfigException:
            try:
                config.load_kube_config(client_configuration=cfg)
            except (config.ConfigException, OSError) as exc:
                raise KubeConfigError(
                    "no Kubernetes API to talk to: not in a pod with a service account, and no kubeconfig "
                    f"($KUBECONFIG or ~/.kube/config: {exc}); pass --kubeconfig or --api-url"
                ) from exc
    cfg.retries = False  # RetryPolicy retries; urllib3's own would hide failures from it
    return client.ApiClient(cfg)


def _status_message(exc: ApiException) -> str:
    try:
        return json.loads(exc.body or "{}").get("message") or exc.reason or ""
    except (ValueError, AttributeError):
        return exc.reason or ""


class KubeCluster:
    """One Deployment's scale, pods, Events and HPAs, as the controller reads and writes them."""

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        deployment: str,
        *,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], None] = time.sleep,
        on_retry: Callable[[str], None] | None = None,
    ) -> None:
        self.api, self.namespace, self.deployment = api, namespace, deployment
        self.retry, self.sleep, self.on_retry = retry, sleep, on_retry
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self.autoscaling = client.AutoscalingV2Api(api)
        self.coordination = client.CoordinationV1Api(api)

    @classmethod
    def connect(
        cls, namespace: str, deployment: str, *, api_url: str | None = None, kubeconfig: str | None = None, **kw: Any
    ) -> KubeCluster:
        return cls(api_client(api_url, kubeconfig), namespace, deployment, **kw)

    # ---- retries ---------------------------------------------------------------------------------------
    def call(self, what: str, fn: Callable[[], T], on_conflict: Callable[[], None] | None = None) -> T:
        """``fn()`` with bounded retries; ``on_conflict`` (re-read) runs before retrying after a 409."""
        last = ""
        for attempt in range(self.retry.attempts):
            try:
                return fn()
            except ApiException as exc:
                status = exc.status or 0
                last = f"HTTP {status} {exc.reason or ''}: {_status_message(exc)}".strip()
                if status == 409 and on_conflict is not None:
                    kind = "conflict"
                elif status in RETRIABLE_STATUS:
                    kind = "server_error"
                else:
                    raise KubeError(f"{what}: {last}") from exc
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                kind, last = "timeout", f"{type(exc).__name__}: {exc}"
            if self.on_retry is not None:
                self.on_retry(kind)
            if attempt == self.retry.attempts - 1:
                break
            log.warning("%s: %s; retry %d/%d", what, last, attempt + 1, self.retry.attempts - 1)
            self.sleep(self.retry.delay(attempt))
            if kind == "conflict":
                on_conflict()
        raise KubeError(f"{what}: gave up after {self.retry.attempts} attempts: {last}")

    # ---- the scale subresource ---------------------------------------------------------------------------
    def read_scale(self) -> Scale:
        scale = self.call(
            f"get deployments/{self.deployment}/scale",
            lambda: self.apps.read_namespaced_deployment_scale(
                self.deployment, self.namespace, _request_timeout=self.retry.timeout_s
            ),
        )
        status = scale.status
        return Scale(
            spec_replicas=int(scale.spec.replicas or 0),
            status_replicas=int(status.replicas or 0) if status else 0,
            selector=(status.selector if status else None) or "",
            resource_version=scale.metadata.resource_version,
        )

    def set_replicas(self, replicas: int, resource_version: str | None = None) -> None:
        """PATCH ``spec.replicas`` (merge patch). With ``resource_version`` the patch applies only to the scale
        the decision was made on; on 409 it re-reads the scale and patches the fresh version."""
        version = [resource_version]

        def patch() -> None:
            body: dict[str, Any] = {"spec": {"replicas": replicas}}
            if version[0]:
                body["metadata"] = {"resourceVersion": version[0]}
            self.apps.patch_namespaced_deployment_scale(
                self.deployment, self.namespace, body, _content_type=MERGE_PATCH, _request_timeout=self.retry.timeout_s
            )

        def reread() -> None:
            version[0] = self.read_scale().resource_version

        self.call(f"patch deployments/{self.deployment}/scale", patch, on_conflict=reread)

    # ---- pods --------------------------------------------------------------------------------------------
    def list_pods(self, selector: str) -> list[LivePod]:
        if not selector:
            raise KubeError(f"deployments/{self.deployment}/scale has no status.selector yet; cannot list its pods")
        pods = self.call(
            "list pods",
            lambda: self.core.list_namespaced_pod(
                self.namespace, label_selector=selector, _request_timeout=self.retry.timeout_s
            ),
        )
        return [_live_pod(p) for p in pods.items]

    # ---- events ------------------------------------------------------------------------------------------
    def record_event(self, reason: str, message: str, event_type: str = "Normal") -> None:
        """A core/v1 Event on the Deployment (what ``kubectl describe deployment`` shows)."""
        now = datetime.now(UTC)
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{self.deployment}.{time.time_ns():x}", "namespace": self.namespace},
            "involvedObject": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": self.deployment,
                "namespace": self.namespace,
            },
            "reason": reason,
            "message": message,
            "type": event_type,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "firstTimestamp": now.isoformat(),
            "lastTimestamp": now.isoformat(),
            "count": 1,
        }
        self.call(
            "create event",
            lambda: self.core.create_namespaced_event(self.namespace, body, _request_timeout=self.retry.timeout_s),
        )

    # ---- HPAs --------------------------------------------------------------------------------------------
    def hpas_targeting(self) -> list[HPARef]:
        """HorizontalPodAutoscalers whose scaleTargetRef is this Deployment."""
        hpas = self.call(
            "list horizontalpodautoscalers",
            lambda: self.autoscaling.list_namespaced_horizontal_pod_autoscaler(
                self.namespace, _request_timeout=self.retry.timeout_s
            ),
        )
        out = []
        for hpa in hpas.items:
            ref = hpa.spec.scale_target_ref
            if ref.kind == "Deployment" and ref.name == self.deployment:
                out.append(HPARef(hpa.metadata.name, hpa.spec.min_replicas, hpa.spec.max_replicas))
        return out

    def set_hpa_bounds(self, name: str, min_replicas: int, max_replicas: int) -> None:
        body = {"spec": {"minReplicas": min_replicas, "maxReplicas": max_replicas}}
        self.call(
            f"patch horizontalpodautoscalers/{name}",
            lambda: self.autoscaling.patch_namespaced_horizontal_pod_autoscaler(
                name, self.namespace, body, _content_type=MERGE_PATCH, _request_timeout=self.retry.timeout_s
            ),
        )


def _live_pod(pod: Any) -> LivePod:
    status = pod.status
    conditions = (status.conditions if status else None) or []
    ready = any(c.type == "Ready" and c.status == "True" for c in conditions)
    phase = (status.phase if status else None) or PodPhase.PENDING
    try:
        phase = PodPhase(phase)
    except ValueError:
        phase = PodPhase.UNKNOWN
    return LivePod(
        name=pod.metadata.name,
        phase=phase,
        ready=ready,
        deletion=pod.metadata.deletion_timestamp is not None,
        ip=(status.pod_ip if status else None) or None,
    )


def cluster_state(now_s: float, scale: Scale, pods: list[LivePod], metrics: MetricsView) -> ClusterState:
    """What the policy reads at one sync: the scale subresource, the pods and the metrics."""
    return ClusterState(
        now_s=now_s,
        spec_replicas=scale.spec_replicas,
        status_replicas=scale.status_replicas,
        pods=tuple(p.info for p in pods),
        metrics=metrics,
    )

"""The live control loop: the simulator's pipeline (collect → recommend → limit → actuate) on a real cluster.

Every ``sync_period_s``: read the Deployment's scale and pods → refresh the metric source → build the
:class:`~rlscale.policies.base.ClusterState` and, from it, the observation with the environment's own
:class:`~rlscale.policies.observation.ObservationBuilder` → the policy's recommendation (and the fallback HPA's,
side by side) → :func:`~rlscale.policies.safety.decide` → PATCH the scale subresource (unless dry-run) → an Event on
the Deployment. The loop is level-based and idempotent: each sync re-reads everything, so a failed sync is simply
retried at the next one. Every decision is one JSON log line with the observation and its feature names, so it
can be replayed offline. The loop's clock is a :class:`~rlscale.deploy.timescale.TimeScale`: simulated seconds
at ``spec.clock_speed`` per wall second (the wall clock on a real cluster, where the speed is 1).
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlscale.agents import load_agent
from rlscale.deploy.config import ControllerConfig, ControllerSpec, MetricsSettings
from rlscale.deploy.kube import KubeCluster, KubeError, cluster_state
from rlscale.deploy.leader import LeaseElector
from rlscale.deploy.sources import MetricsUnavailable, PrometheusMetrics, ScrapedPodMetrics
from rlscale.deploy.telemetry import ControllerMetrics, StatusServer
from rlscale.deploy.timescale import TimeScale
from rlscale.policies.base import Autoscaler
from rlscale.policies.control import ControlLoop, metric_reads
from rlscale.policies.hpa import HPAPolicy
from rlscale.policies.observation import ObservationBuilder
from rlscale.policies.safety import Decision, Health, MetricsHealth
from rlscale.specs.catalog import SpecError
from rlscale.tracking.store import MLFLOW_SCHEMES

log = logging.getLogger(__name__)
AGENT_SUFFIXES = (".yaml", ".yml", ".json")


class ControllerError(RuntimeError):
    """The controller refuses to start (e.g. an HPA already scales the Deployment)."""


def load_policy(ref: str, tracking_uri: str | None = None) -> Autoscaler:
    """The policy to run: an agent file (``load_agent``: HPA manifests, ``kind: LearnedPolicy`` …) or a trained
    policy (``LearnedPolicy``: ``models:/``, ``runs:/``, a policy folder or ``.zip``). Fails with SpecError."""
    path = Path(ref).expanduser()
    if not ref.startswith(MLFLOW_SCHEMES) and path.suffix in AGENT_SUFFIXES:
        return load_agent(path)
    if not ref.startswith(MLFLOW_SCHEMES) and not (path.is_dir() or path.suffix == ".zip"):
        raise SpecError(
            f"policy: {ref!r} is not models:/<name>@<alias>, models:/<name>/<version>, runs:/<id>/model, "
            "an existing policy folder or .zip, or an agent file (.yaml)"
        )
    from rlscale.agents.learned import load_learned  # torch and SB3 load only for trained policies

    try:
        return load_learned(ref, tracking_uri=tracking_uri)
    except SpecError as exc:
        raise SpecError(f"policy: {exc}") from exc
    except (OSError, ValueError, KeyError) as exc:
        raise SpecError(f"policy: {ref!r} could not be loaded: {type(exc).__name__}: {exc}") from exc


def load_fallback(path: str | None) -> HPAPolicy | None:
    if path is None:
        return None
    agent = load_agent(Path(path))
    if not isinstance(agent, HPAPolicy):
        raise SpecError(f"fallback_hpa: {path} is a {type(agent).__name__}, not a HorizontalPodAutoscaler manifest")
    return agent


def metrics_source(
    settings: MetricsSettings, namespace: str, clock: TimeScale | Callable[[], float] = time.time
) -> PrometheusMetrics | ScrapedPodMetrics:
    if settings.source == "prometheus":
        return PrometheusMetrics(
            settings.prometheus_url, namespace, queries=settings.queries, stale_after_s=settings.stale_after_s,
            timeout_s=settings.timeout_s, clock=clock,
        )  # fmt: skip
    return ScrapedPodMetrics(
        settings.scrape_port, scrape_path=settings.scrape_path, device_port=settings.device_port,
        device_path=settings.device_path, stale_after_s=settings.stale_after_s, timeout_s=settings.timeout_s,
        clock=clock,
    )  # fmt: skip


def observation_builder(policy: Autoscaler) -> ObservationBuilder:
    """The policy's own builder (a learned policy's, with its time features), else the environment's default."""
    observe = getattr(policy, "observe", None)
    return observe if isinstance(observe, ObservationBuilder) else ObservationBuilder()


class Controller:
    """The loop around one Deployment. Build it with :meth:`from_config`; :meth:`run` until stopped, or call
    :meth:`run_once` (one sync) from tests."""

    def __init__(
        self,
        spec: ControllerSpec,
        cluster: KubeCluster,
        metrics: PrometheusMetrics | ScrapedPodMetrics,
        policy: Autoscaler,
        *,
        fallback: HPAPolicy | None = None,
        elector: LeaseElector | None = None,
        clock: TimeScale | Callable[[], float] = time.time,
        telemetry: ControllerMetrics | None = None,
    ) -> None:
        self.spec, self.cluster, self.metrics = spec, cluster, metrics
        self.fallback, self.elector, self.clock = fallback, elector, TimeScale.of(clock)
        self.telemetry = telemetry or ControllerMetrics()
        self.loop = ControlLoop(policy, spec.safety(), fallback, on_error=self._policy_failed)
        self.policy = policy
        self.limits = self.loop.limits
        self.observe = observation_builder(policy)
        self.managed_hpas: list[str] = []
        self.status_server: StatusServer | None = None
        self._stop = threading.Event()
        self._last_loop = self.clock()
        self.cluster.on_retry = lambda kind: self.telemetry.errors.labels(f"kube_{kind}").inc()
        policy_period = getattr(policy, "sync_period_s", spec.sync_period_s)
        if not math.isclose(policy_period, spec.sync_period_s):
            log.warning(
                "policy %s decides every %g s; the controller syncs every %g s", spec.policy, policy_period,
                spec.sync_period_s,
            )  # fmt: skip

    @property
    def policy(self) -> Autoscaler:
        return self.loop.policy

    @policy.setter
    def policy(self, policy: Autoscaler) -> None:
        """The policy behind the loop; the metrics its health is judged on are those it reads that this source
        serves (a scrape without the device plugin has no HBM metric: not missing, just not asked)."""
        gauges, external = metric_reads(policy)
        self.loop.policy = policy
        self.loop.reads = (gauges, tuple(n for n in external if n in self.metrics.external_metrics))

    @classmethod
    def from_config(
        cls,
        config: ControllerConfig,
        *,
        api_url: str | None = None,
        kubeconfig: str | None = None,
        clock: Callable[[], float] = time.time,
        identity: str | None = None,
    ) -> Controller:
        """Validate and load everything that can fail locally (policy, fallback HPA, API configuration) before the
        first request to the cluster: a bad reference fails here, with nothing touched. ``clock`` is the wall
        clock; the controller runs ``spec.clock_speed`` times faster on it."""
        spec = config.spec
        clock = TimeScale(spec.clock_speed, clock)
        policy = load_policy(spec.policy, spec.tracking_uri)
        fallback = load_fallback(spec.fallback_hpa)
        cluster = KubeCluster.connect(spec.namespace, spec.deployment, api_url=api_url, kubeconfig=kubeconfig)
        elector = None
        if spec.leader_election.enabled:
            le = spec.leader_election
            elector = LeaseElector(
                cluster.coordination, spec.namespace, le.lease_name, identity, lease_duration_s=le.lease_duration_s,
                renew_period_s=le.renew_period_s, clock=clock,
            )  # fmt: skip
        source = metrics_source(spec.metrics, spec.namespace, clock)
        return cls(spec, cluster, source, policy, fallback=fallback, elector=elector, clock=clock)

    # ---- start-up ------------------------------------------------------------------------------------------
    def preflight(self) -> None:
        """Refuse to share the Deployment with an HPA (or take over its bounds, with existing_hpa: manage-bounds)."""
        try:
            hpas = self.cluster.hpas_targeting()
        except KubeError as exc:
            raise ControllerError(f"cannot check for HorizontalPodAutoscalers: {exc}") from exc
        if not hpas:
            return
        names = ", ".join(h.name for h in hpas)
        target = f"deployment {self.spec.namespace}/{self.spec.deployment}"
        if self.spec.dry_run:  # shadow mode never writes, so it may watch beside the HPA it is meant to replace
            log.info("dry run beside HorizontalPodAutoscaler %s on %s: deciding in its shadow, touching nothing",
                     names, target)  # fmt: skip
            return
        if self.spec.existing_hpa == "refuse":
            raise ControllerError(
                f"HorizontalPodAutoscaler {names} already targets {target}: two autoscalers would fight over its "
                "scale. Delete it, or set existing_hpa: manage-bounds to pin its min/max to this controller's count"
            )
        self.managed_hpas = [h.name for h in hpas]
        log.info("managing the bounds of HorizontalPodAutoscaler %s on %s", names, target)

    # ---- one sync ------------------------------------------------------------------------------------------
    def run_once(self) -> Decision | None:
        """One sync; the decision, or None when this replica is not the leader or the cluster could not be read."""
        started, wall_started = self.clock(), self.clock.wall()
        if self.elector is not None and not self.elector.is_leader:
            self._log("standby", {"holder": self.elector.holder})
            return None
        try:
            scale = self.cluster.read_scale()
            pods = self.cluster.list_pods(scale.selector)
        except KubeError as exc:
            self.telemetry.errors.labels("kube_api").inc()
            self._log("sync skipped", {"error": str(exc)}, logging.WARNING)
            return None
        unavailable = None
        try:
            self.metrics.refresh(pods)
        except MetricsUnavailable as exc:
            self.telemetry.errors.labels("metrics_unavailable").inc()
            unavailable = str(exc)
        state = cluster_state(started, scale, pods, self.metrics)
        expected = {p.name for p in pods if p.scrapeable}
        sync = self.loop.sync(state, unavailable=unavailable, expected=expected)
        if sync.health.status is Health.UNAVAILABLE and unavailable is None:
            self.telemetry.errors.labels("metrics_unavailable").inc()
        observation = self.observe(state) if sync.health.status is not Health.UNAVAILABLE else None
        decision = sync.decision
        acted = self._act(decision, scale.resource_version, wall_started)
        self.loop.actuated(acted != "failed")
        self._record(decision, acted, sync.health, observation, sync.policy_out, sync.fallback_out, wall_started)
        return decision

    def _policy_failed(self, kind: str, exc: Exception) -> None:
        """A policy bug must not stop the controller: the fallback or a hold takes over; it is counted and logged."""
        self.telemetry.errors.labels(kind).inc()
        log.error("%s failed: %s: %s", kind, type(exc).__name__, exc, exc_info=exc)

    def _act(self, decision: Decision, resource_version: str | None, wall_started: float) -> str:
        """What happened to the decision: dry-run, unchanged, scaled, not-leader or failed."""
        if self.spec.dry_run:
            return "dry-run"
        if not decision.changes:
            self._pin_hpas(decision.applied)
            return "unchanged"
        if self.elector is not None and not self.elector.is_leader:  # the Lease lapsed during this sync
            return "not-leader"
        try:
            self.cluster.set_replicas(decision.applied, resource_version)
        except KubeError as exc:
            self.telemetry.errors.labels("kube_api").inc()
            log.warning("scale patch failed: %s", exc)
            return "failed"
        self.telemetry.action_latency.observe(self.clock.wall() - wall_started)
        try:
            self.cluster.record_event("SuccessfulRescale", f"New size: {decision.applied}; reason: {decision.reason}")
        except KubeError as exc:
            self.telemetry.errors.labels("event").inc()
            log.warning("event not recorded: %s", exc)
        self._pin_hpas(decision.applied)
        return "scaled"

    def _pin_hpas(self, replicas: int) -> None:
        """existing_hpa: manage-bounds: the HPA's min and max follow this controller's count, so it cannot fight."""
        if not self.managed_hpas or self.spec.dry_run:
            return
        try:
            current = {h.name: h for h in self.cluster.hpas_targeting()}
            bound = max(1, replicas)  # an HPA's minReplicas is at least 1
            for name in self.managed_hpas:
                hpa = current.get(name)
                if hpa is not None and (hpa.min_replicas, hpa.max_replicas) != (bound, bound):
                    self.cluster.set_hpa_bounds(name, bound, bound)
        except KubeError as exc:
            self.telemetry.errors.labels("kube_api").inc()
            log.warning("HPA bounds not set: %s", exc)

    def _record(
        self,
        decision: Decision,
        acted: str,
        health: MetricsHealth,
        observation: Any,
        policy_out: Any,
        fallback_out: Any,
        wall_started: float,
    ) -> None:
        t = self.telemetry
        if decision.held:
            outcome = "held"
        elif not decision.changes:
            outcome = "unchanged"
        else:
            outcome = "scale_up" if decision.applied > decision.current else "scale_down"
        t.decisions.labels(decision.source.value, outcome).inc()
        for kind, value in (("current", decision.current), ("desired", decision.desired),
                            ("applied", decision.applied)):  # fmt: skip
            t.replicas.labels(kind).set(value)
        if isinstance(fallback_out, int):
            t.replicas.labels("hpa").set(fallback_out)
        fields: dict[str, Any] = {
            "namespace": self.spec.namespace,
            "deployment": self.spec.deployment,
            "current": decision.current,
            "desired": decision.desired,
            "applied": decision.applied,
            "source": decision.source.value,
            "held": decision.held,
            "reason": decision.reason,
            "action": acted,
            "dry_run": self.spec.dry_run,
            "metrics": health.status.value,
            "policy": _jsonable(policy_out),
            "hpa": _jsonable(fallback_out),
            "sync_s": round(self.clock.wall() - wall_started, 4),  # wall seconds the sync took
        }
        if observation is not None:
            for name, value in zip(self.observe.names, observation, strict=True):
                t.observation.labels(name).set(float(value))
            fields["observation"] = [float(v) for v in observation]
            fields["features"] = self.observe.names
        self._log("decision", fields)

    def _log(self, message: str, fields: dict[str, Any], level: int = logging.INFO) -> None:
        log.log(level, message, extra={"fields": {"event": message.replace(" ", "_"), **fields}})

    # ---- the loop --------------------------------------------------------------------------------------------
    def healthy(self) -> bool:
        """The loop is turning (a stuck controller is restarted by the kubelet's liveness probe)."""
        silent_wall_s = self.clock.wall_s(self.clock() - self._last_loop)
        return silent_wall_s < max(self.clock.wall_s(3 * self.spec.sync_period_s), 30.0)

    def stop(self, *_: Any) -> None:
        """Ask the loop to end after the current step (also the SIGTERM/SIGINT handler)."""
        self._stop.set()

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, *_: Any) -> None:
        """Stop from another thread: the handler runs in the main thread, which may hold the stop Event's own lock
        (inside ``wait``); setting the Event here could deadlock on it."""
        threading.Thread(target=self.stop, name="controller-stop", daemon=True).start()

    def run(self, max_syncs: int | None = None) -> int:
        """Sync every ``sync_period_s`` (renewing the Lease in between; both simulated seconds) until stopped or
        ``max_syncs`` syncs; then release the Lease. Returns the number of syncs."""
        self.preflight()
        if self.spec.listen_port is not None:
            self.status_server = StatusServer(self.telemetry.registry, self.healthy, self.spec.listen_port)
            log.info("serving /metrics and /healthz on port %d", self.status_server.port)
        period = self.spec.sync_period_s
        renew = self.spec.leader_election.renew_period_s if self.elector is not None else math.inf
        next_sync = next_renew = self.clock()
        syncs = 0
        try:
            while not self._stop.is_set():
                now = self._last_loop = self.clock()
                if self.elector is not None and now >= next_renew:
                    self.telemetry.is_leader.set(int(self.elector.tick()))
                    next_renew = now + renew
                if now >= next_sync:
                    self.run_once()
                    syncs += 1
                    next_sync += period
                    if next_sync <= self.clock():  # a stalled sync: start afresh, no burst of catch-up syncs
                        next_sync = self.clock() + period
                    if max_syncs is not None and syncs >= max_syncs:
                        break
                self._stop.wait(self.clock.wall_s(max(0.0, min(next_sync, next_renew) - self.clock())))
        finally:
            if self.elector is not None:
                self.elector.release()
                self.telemetry.is_leader.set(0)
            if self.status_server is not None:
                self.status_server.close()
        log.info("controller stopped after %d syncs", syncs)
        return syncs


def _jsonable(value: Any) -> Any:
    return f"{type(value).__name__}: {value}" if isinstance(value, Exception) else value

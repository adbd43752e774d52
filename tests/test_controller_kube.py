"""The Kubernetes side (rlscale/deploy/kube.py, leader.py) through the real ``kubernetes`` client against the fake
API server: reads, patches, Events, HPAs; 409 → re-read and retry; 5xx and timeouts → bounded back-off;
permanent errors at once; Lease election with an injected clock."""

from __future__ import annotations

import pytest

from rlscale.deploy.kube import KubeCluster, KubeConfigError, KubeError, RetryPolicy, api_client
from rlscale.deploy.leader import LeaseElector
from rlscale.pods import PodPhase
from tests.test_controller_fakes import SELECTOR, Clock, FakeKube, hpa_json, pod_json


@pytest.fixture
def kube():
    with FakeKube() as fake:
        yield fake


def cluster(kube: FakeKube, sleeps: list[float] | None = None, **retry) -> KubeCluster:
    sleeps = [] if sleeps is None else sleeps
    return KubeCluster.connect(
        "default", "jetstream", api_url=kube.url, retry=RetryPolicy(**retry), sleep=sleeps.append
    )


def test_reads_the_scale_and_the_pods_as_policies_see_them(kube):
    kube.pods = [
        pod_json("js-a", ip="10.0.0.1"),
        pod_json("js-b", ready=False, phase="Pending"),
        pod_json("js-c", deleting=True, ip="10.0.0.3"),
    ]
    c = cluster(kube)
    scale = c.read_scale()
    assert (scale.spec_replicas, scale.status_replicas, scale.selector) == (2, 2, SELECTOR)
    pods = c.list_pods(scale.selector)
    assert [(p.name, p.phase, p.ready, p.deletion, p.ip) for p in pods] == [
        ("js-a", PodPhase.RUNNING, True, False, "10.0.0.1"),
        ("js-b", PodPhase.PENDING, False, False, None),
        ("js-c", PodPhase.RUNNING, True, True, "10.0.0.3"),
    ]
    assert [p.scrapeable for p in pods] == [True, False, True]


def test_patch_conflict_rereads_and_retries(kube):
    c = cluster(kube)
    version = c.read_scale().resource_version
    kube.rv += 1  # someone else wrote the Deployment since we read it
    c.set_replicas(5, version)
    assert kube.replicas == 5
    assert [m for m, p in kube.requests if p.endswith("/scale")] == ["GET", "PATCH", "GET", "PATCH"]
    assert kube.patches == [{"spec": {"replicas": 5}, "metadata": {"resourceVersion": str(kube.rv - 1)}}]


def test_injected_conflict_then_success(kube):
    kube.fail("PATCH", "/scale", 409)
    cluster(kube).set_replicas(3)
    assert kube.replicas == 3 and len(kube.patches) == 1


def test_server_errors_back_off_exponentially_then_succeed_or_give_up(kube):
    sleeps: list[float] = []
    kube.fail("GET", "/scale", 503, times=2)
    assert cluster(kube, sleeps, base_s=0.5).read_scale().spec_replicas == 2
    assert sleeps == [0.5, 1.0]
    sleeps.clear()
    kube.fail("GET", "/scale", 500, times=10)
    with pytest.raises(KubeError, match=r"gave up after 4 attempts: HTTP 500"):
        cluster(kube, sleeps, base_s=0.5, max_s=1.5).read_scale()
    assert sleeps == [0.5, 1.0, 1.5]


def test_timeouts_are_retried(kube):
    kube.fail("GET", "/pods", delay_s=1.0)
    c = cluster(kube, timeout_s=0.2, base_s=0.01)
    assert len(c.list_pods(SELECTOR)) == 2
    assert [p for m, p in kube.requests if p.endswith("/pods")] == ["/api/v1/namespaces/default/pods"] * 2


def test_permanent_errors_are_not_retried(kube):
    sleeps: list[float] = []
    kube.fail("GET", "/scale", 403)
    with pytest.raises(KubeError, match="403"):
        cluster(kube, sleeps).read_scale()
    assert sleeps == []


def test_events_land_on_the_deployment(kube):
    cluster(kube).record_event("SuccessfulRescale", "New size: 3")
    (event,) = kube.events
    assert event["involvedObject"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "jetstream",
                                       "namespace": "default"}  # fmt: skip
    assert (event["reason"], event["message"], event["type"]) == ("SuccessfulRescale", "New size: 3", "Normal")


def test_hpas_targeting_the_deployment_and_their_bounds(kube):
    kube.hpas = [hpa_json("mine", "jetstream"), hpa_json("theirs", "other")]
    c = cluster(kube)
    assert [h.name for h in c.hpas_targeting()] == ["mine"]
    c.set_hpa_bounds("mine", 4, 4)
    assert kube.hpa_patches == [("mine", {"spec": {"minReplicas": 4, "maxReplicas": 4}})]


def test_no_api_to_talk_to_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(KubeConfigError, match="pass --kubeconfig or --api-url"):
        api_client()
    with pytest.raises(KubeConfigError, match="kubeconfig"):
        api_client(kubeconfig=str(tmp_path / "none"))


# ---- leader election ---------------------------------------------------------------------------------------------


def elector(kube: FakeKube, identity: str, clock: Clock) -> LeaseElector:
    c = cluster(kube)
    return LeaseElector(c.coordination, "default", "rlscale", identity, lease_duration_s=15, renew_period_s=5,
                        clock=clock)  # fmt: skip


def test_one_lease_one_leader(kube):
    clock = Clock()
    a, b = elector(kube, "a", clock), elector(kube, "b", clock)
    assert a.tick() and not b.tick()
    for _ in range(5):
        clock.t += 5
        assert a.tick() and not b.tick()
    assert kube.leases["rlscale"]["spec"]["holderIdentity"] == "a"


def test_a_silent_leader_is_replaced_after_the_lease_duration_and_stops_acting(kube):
    clock = Clock()
    a, b = elector(kube, "a", clock), elector(kube, "b", clock)
    assert a.tick() and not b.tick()
    clock.t += 10  # a stops renewing (hung, partitioned); its renew deadline (15 - 5 s) has passed
    assert not a.is_leader
    assert not b.tick()  # b has seen this record for 10 s only
    clock.t += 6
    assert b.tick() and kube.leases["rlscale"]["spec"]["holderIdentity"] == "b"
    assert kube.leases["rlscale"]["spec"]["leaseTransitions"] == 1
    assert not a.tick() and a.holder == "b"


def test_failed_renewals_end_leadership_at_the_deadline(kube):
    clock = Clock()
    a = elector(kube, "a", clock)
    assert a.tick()
    kube.fail("GET", "/leases/", 500, times=100)
    clock.t += 5
    assert a.tick()  # the last renewal is 5 s old: still within the 10 s deadline
    clock.t += 5
    assert not a.tick()


def test_losing_a_write_race_is_not_leading(kube):
    clock = Clock()
    a = elector(kube, "a", clock)
    kube.leases["rlscale"] = {"metadata": {"name": "rlscale", "resourceVersion": "1"}, "spec": {}}
    kube.fail("PUT", "/leases/rlscale", 409)
    assert not a.tick()
    assert a.tick()


def test_release_hands_over_at_once(kube):
    clock = Clock()
    a, b = elector(kube, "a", clock), elector(kube, "b", clock)
    assert a.tick() and not b.tick()
    a.release()
    assert not a.is_leader and kube.leases["rlscale"]["spec"].get("holderIdentity") is None
    assert b.tick()

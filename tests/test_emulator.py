"""The emulated cluster, through the unmodified ``kubernetes`` client and plain HTTP.

Most tests keep the clock still (speed 0) and move it with ``advance``, so
what the API shows can be compared with the fleet at one instant.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from datetime import UTC, datetime

import pytest
from kubernetes import client
from kubernetes import config as kube_config
from kubernetes.client.exceptions import ApiException
from prometheus_client.parser import text_string_to_metric_families

from rlscale.emulator import Emulator
from rlscale.scenario import apply_overrides, load_scenario

NS, NAME = "default", "jetstream"
SCENARIO = apply_overrides(load_scenario("envs/steady.yaml"), replicas=2, rate_per_s=4.0, duration_s=3600)


@pytest.fixture
def emu(tmp_path):
    with Emulator(SCENARIO, speed=0, targets_file=tmp_path / "targets.json") as emulator:
        yield emulator


def apis(emu: Emulator) -> tuple[client.AppsV1Api, client.CoreV1Api, client.CoordinationV1Api]:
    api = client.ApiClient(client.Configuration(host=emu.api_url))
    return client.AppsV1Api(api), client.CoreV1Api(api), client.CoordinationV1Api(api)


def fetch(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read().decode()


def test_scale_patch_changes_the_fleets_desired_count(emu):
    apps, _, _ = apis(emu)
    scale = apps.read_namespaced_deployment_scale(NAME, NS)
    assert (scale.spec.replicas, scale.status.replicas, scale.status.selector) == (2, 2, "app=jetstream")
    patched = apps.patch_namespaced_deployment_scale(NAME, NS, {"spec": {"replicas": 5}})
    assert patched.spec.replicas == 5 and patched.status.replicas == 5
    assert int(patched.metadata.resource_version) > int(scale.metadata.resource_version)
    with emu.lock:
        assert emu.sim.fleet.desired == 5
    for content_type, body in [
        ("application/merge-patch+json", {"spec": {"replicas": 3}}),
        ("application/json-patch+json", [{"op": "replace", "path": "/spec/replicas", "value": 4}]),
    ]:
        apps.patch_namespaced_deployment_scale(NAME, NS, body, _content_type=content_type)
    assert emu.replicas().desired == 4
    assert apps.read_namespaced_deployment(NAME, NS).spec.replicas == 4
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment_scale(NAME, NS, {"spec": {"replicas": -1}})
    assert err.value.status == 422


def test_stale_resource_version_is_a_conflict(emu):
    apps, _, _ = apis(emu)
    stale = apps.read_namespaced_deployment_scale(NAME, NS)
    stale.spec.replicas = 3
    apps.replace_namespaced_deployment_scale(NAME, NS, stale)  # current version: accepted
    assert emu.replicas().desired == 3
    stale.spec.replicas = 6
    with pytest.raises(ApiException) as err:
        apps.replace_namespaced_deployment_scale(NAME, NS, stale)
    assert err.value.status == 409
    status = json.loads(err.value.body)
    assert (status["kind"], status["reason"], status["code"]) == ("Status", "Conflict", 409)
    with pytest.raises(ApiException) as err:
        patch = {"metadata": {"resourceVersion": stale.metadata.resource_version}, "spec": {"replicas": 6}}
        apps.patch_namespaced_deployment_scale(NAME, NS, patch)
    assert err.value.status == 409
    assert emu.replicas().desired == 3


def test_pods_are_the_fleets_pods(emu):
    apps, core, _ = apis(emu)
    emu.advance(120)  # requests in flight, so removed pods drain
    apps.patch_namespaced_deployment_scale(NAME, NS, {"spec": {"replicas": 4}})
    emu.advance(300)  # new nodes up, new pods pulling their image
    apps.patch_namespaced_deployment_scale(NAME, NS, {"spec": {"replicas": 1}})
    pods = core.list_namespaced_pod(NS, label_selector="app=jetstream").items
    with emu.lock:
        infos = emu.sim.fleet.pod_infos()
    assert [p.metadata.name for p in pods] == [i.name for i in infos]
    for pod, info in zip(pods, infos, strict=True):
        ready = next(c.status for c in pod.status.conditions if c.type == "Ready") if pod.status.conditions else None
        assert pod.status.phase == info.phase.value
        assert (pod.metadata.deletion_timestamp is not None) == info.deletion
        assert (ready == "True") == info.ready
        assert pod.metadata.labels == {"app": "jetstream"}
        assert (pod.status.pod_ip is None) == (info.phase.value == "Pending")
    assert any(i.deletion for i in infos), "a draining pod shows its deletionTimestamp"
    ips = [p.status.pod_ip for p in pods if p.status.pod_ip]
    assert len(set(ips)) == len(ips) and all(ip.startswith("127.0.0.") for ip in ips)
    assert core.list_namespaced_pod(NS, label_selector="app=other").items == []
    assert core.read_namespaced_pod(pods[0].metadata.name, NS).status.pod_ip == pods[0].status.pod_ip
    assert apps.read_namespaced_deployment_scale(NAME, NS).status.replicas == sum(not i.deletion for i in infos)


def test_leases_create_replace_and_conflict(emu):
    _, _, coordination = apis(emu)
    lease = client.V1Lease(
        metadata=client.V1ObjectMeta(name="rlscale-controller"),
        spec=client.V1LeaseSpec(holder_identity="a", lease_duration_seconds=15, renew_time=datetime.now(UTC)),
    )
    created = coordination.create_namespaced_lease(NS, lease)
    with pytest.raises(ApiException) as err:
        coordination.create_namespaced_lease(NS, lease)
    assert err.value.status == 409 and json.loads(err.value.body)["reason"] == "AlreadyExists"
    read = coordination.read_namespaced_lease("rlscale-controller", NS)
    assert read.spec.renew_time == lease.spec.renew_time
    read.spec.holder_identity = "b"
    replaced = coordination.replace_namespaced_lease("rlscale-controller", NS, read)
    assert replaced.spec.holder_identity == "b"
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)
    created.spec.holder_identity = "c"  # still carries the first version
    with pytest.raises(ApiException) as err:
        coordination.replace_namespaced_lease("rlscale-controller", NS, created)
    assert err.value.status == 409 and json.loads(err.value.body)["reason"] == "Conflict"
    assert coordination.read_namespaced_lease("rlscale-controller", NS).spec.holder_identity == "b"
    with pytest.raises(ApiException) as err:
        coordination.read_namespaced_lease("missing", NS)
    assert err.value.status == 404 and json.loads(err.value.body)["reason"] == "NotFound"


def test_events_are_stored(emu):
    _, core, _ = apis(emu)
    event = client.CoreV1Event(
        metadata=client.V1ObjectMeta(generate_name="jetstream."),
        involved_object=client.V1ObjectReference(kind="Deployment", name=NAME, namespace=NS, api_version="apps/v1"),
        reason="Scaled",
        message="2 -> 3 replicas",
        type="Normal",
    )
    created = core.create_namespaced_event(NS, event)
    assert created.metadata.name.startswith("jetstream.")
    assert [(e["reason"], e["involvedObject"]["name"]) for e in emu.events] == [("Scaled", NAME)]
    assert [e.message for e in core.list_namespaced_event(NS).items] == ["2 -> 3 replicas"]


def test_hpas_are_listed_only_when_asked_for(tmp_path):
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "jetstream-hpa"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": NAME}, "maxReplicas": 8},
    }
    for hpas, names in [((), []), ([hpa], ["jetstream-hpa"])]:
        with Emulator(SCENARIO, speed=0, hpas=hpas) as emu:
            api = client.AutoscalingV2Api(client.ApiClient(client.Configuration(host=emu.api_url)))
            items = api.list_namespaced_horizontal_pod_autoscaler(NS).items
            assert [h.metadata.name for h in items] == names
            assert all(h.spec.scale_target_ref.name == NAME for h in items)


def test_version_and_unknown_paths(emu):
    version = client.VersionApi(client.ApiClient(client.Configuration(host=emu.api_url))).get_code()
    assert version.major == "1"
    for path in ("/apis/apps/v1/namespaces/default/statefulsets/x", "/nope"):
        with pytest.raises(urllib.error.HTTPError) as err:
            fetch(emu.api_url + path)
        assert err.value.code == 404 and json.loads(err.value.read())["reason"] == "NotFound"
    apps, _, _ = apis(emu)
    with pytest.raises(ApiException) as exc:
        apps.read_namespaced_deployment_scale("other", NS)
    assert exc.value.status == 404


def test_injected_faults(emu):
    apps, _, _ = apis(emu)
    emu.faults.fail("/scale$", code=500, times=2)
    for _ in range(2):
        with pytest.raises(ApiException) as err:
            apps.read_namespaced_deployment_scale(NAME, NS)
        assert err.value.status == 500
    assert apps.read_namespaced_deployment_scale(NAME, NS).spec.replicas == 2
    emu.faults.fail("/scale$", code=409, method="PATCH")
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment_scale(NAME, NS, {"spec": {"replicas": 3}})
    assert err.value.status == 409 and emu.replicas().desired == 2
    emu.faults.delay(0.2)
    start = time.monotonic()
    apps.read_namespaced_deployment_scale(NAME, NS)
    assert time.monotonic() - start >= 0.2


def test_pod_metrics_pages(emu):
    targets = emu.targets()
    assert sorted(targets) == ["jetstream-0", "jetstream-1"]
    emu.advance(60)
    pod, address = next(iter(targets.items()))
    status, page = fetch(f"http://{address}/metrics")
    assert status == 200
    families = {f.name: f for f in text_string_to_metric_families(page)}
    for name in ("jetstream_prefill_backlog_size", "jetstream_slots_used_percentage", "num_requests_waiting"):
        assert families[name].samples[0].labels["id"] == pod
    assert families["jetstream_request_success_count"].samples[0].value > 0  # served traffic for 60 s
    _, device = fetch(f"http://{address}/device/metrics")
    assert {f.name for f in text_string_to_metric_families(device)} == {"memory_used", "memory_total", "duty_cycle"}
    ip = address.split(":")[0]
    assert fetch(f"http://{ip}:{emu.device_port}/metrics")[1].startswith(device.split("\n")[0])


def test_a_pod_not_serving_refuses_connections(emu):
    apps, _, _ = apis(emu)
    apps.patch_namespaced_deployment_scale(NAME, NS, {"spec": {"replicas": 3}})
    ip = None
    while ip is None:  # node provisioning, then the image pull starts with an address but no server
        emu.advance(10)
        ip = emu.pod_address("jetstream-2")
    assert "jetstream-2" not in emu.targets()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((ip, emu.metrics_port), timeout=2).close()
    while "jetstream-2" not in emu.targets():
        emu.advance(30)
    assert fetch(f"http://{ip}:{emu.metrics_port}/metrics")[0] == 200


def test_targets_file_lists_exactly_the_scrapeable_pods(emu):
    apps, _, _ = apis(emu)

    def listed() -> dict[str, str]:
        groups = json.loads(emu.targets_file.read_text())
        assert all(g["labels"]["namespace"] == NS and len(g["targets"]) == 1 for g in groups)
        return {g["labels"]["pod"]: g["targets"][0] for g in groups}

    def scrapeable() -> dict[str, str]:
        with emu.lock:
            pods = [p.name for p in emu.sim.fleet.scrape_targets()]
        return {p: f"{emu.pod_address(p)}:{emu.metrics_port}" for p in pods}

    assert listed() == scrapeable() == emu.targets() and len(listed()) == 2
    apps.patch_namespaced_deployment_scale(NAME, NS, {"spec": {"replicas": 3}})
    emu.advance(900)
    assert listed() == scrapeable() and len(listed()) == 3
    apps.patch_namespaced_deployment_scale(NAME, NS, {"spec": {"replicas": 1}})
    emu.advance(60)
    assert listed() == scrapeable() and len(listed()) == 1


def test_simulated_time_follows_wall_time_times_speed():
    with Emulator(SCENARIO, speed=50) as emu:
        start_sim, start_wall = emu.now_s, time.monotonic()
        time.sleep(0.5)
        elapsed_sim, elapsed_wall = emu.now_s - start_sim, time.monotonic() - start_wall
    assert 0.6 * 50 * elapsed_wall <= elapsed_sim <= 1.1 * 50 * elapsed_wall


def test_stop_leaves_no_threads_and_no_listeners(tmp_path):
    before = set(threading.enumerate())
    emu = Emulator(SCENARIO, speed=20, targets_file=tmp_path / "targets.json")
    with emu:
        apis(emu)[0].read_namespaced_deployment_scale(NAME, NS)
        fetch(f"http://{next(iter(emu.targets().values()))}/metrics")
        address = next(iter(emu.targets().values()))
    assert set(threading.enumerate()) <= before
    host, port = address.split(":")
    for target in [(host, int(port)), ("127.0.0.1", int(emu.api_url.rsplit(":", 1)[1]))]:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(target, timeout=2).close()
    assert json.loads(emu.targets_file.read_text()) == []


def test_kubeconfig_works_with_the_client(emu, tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text(emu.kubeconfig())
    api = kube_config.new_client_from_config(config_file=str(path))
    assert client.AppsV1Api(api).read_namespaced_deployment_scale(NAME, NS).spec.replicas == 2


def test_scaling_up_and_down_at_one_instant_leaves_no_stray_pod(emu):
    apps, _, _ = apis(emu)
    emu.advance(700)  # the first scale-up's new nodes are up, so a later one binds at once
    apps.patch_namespaced_deployment_scale(NAME, NS, {"spec": {"replicas": 4}})
    emu.advance(1200)
    apps.patch_namespaced_deployment_scale(NAME, NS, {"spec": {"replicas": 2}})
    emu.advance(60)  # two idle nodes held (scale-down delay)
    apps.patch_namespaced_deployment_scale(NAME, NS, {"spec": {"replicas": 3}})
    apps.patch_namespaced_deployment_scale(NAME, NS, {"spec": {"replicas": 2}})  # same simulated instant
    emu.advance(600)
    replicas = emu.replicas()
    assert replicas.current == replicas.desired == 2

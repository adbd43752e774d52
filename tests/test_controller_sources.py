"""Live metric sources (rlscale/deploy/sources.py): the observation built from Prometheus query results or from
scraped pages equals the environment's for the same metric values; down, slow and stale sources raise
MetricsUnavailable with the reason; per-pod keys, filtering, query overrides and GMP authentication."""

from __future__ import annotations

import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import requests

from rlscale.deploy.pods import LivePod
from rlscale.deploy.sources import (
    MEMORY_USED_PERCENTAGE,
    MetricsUnavailable,
    PrometheusMetrics,
    ScrapedPodMetrics,
    parse_page,
)
from rlscale.policies.base import ClusterState
from rlscale.policies.observation import RATE_WINDOW_S, ObservationBuilder
from rlscale.scenario import apply_overrides, load_scenario
from rlscale.simulation import Simulation
from tests.skips import NO_GOOGLE_AUTH
from tests.test_controller_fakes import Clock, FakePrometheus

GAUGES = ("jetstream_prefill_backlog_size", "jetstream_slots_used_percentage", "num_requests_waiting")
SUCCESS = "jetstream_request_success_count_total"


@pytest.fixture(scope="module")
def sim():
    """Four busy pods after 150 simulated seconds (0.2 s of CPU)."""
    simulation = Simulation.build(apply_overrides(load_scenario("envs/steady.yaml"), duration_s=600))
    simulation.env.run(until=150)
    return simulation


def live_pods(state: ClusterState) -> list[LivePod]:
    return [LivePod(p.name, p.phase, p.ready, p.deletion, ip=f"127.0.0.{i + 2}") for i, p in enumerate(state.pods)]


def observe(state: ClusterState, metrics) -> np.ndarray:
    return ObservationBuilder()(
        ClusterState(state.now_s, state.spec_replicas, state.status_replicas, state.pods, metrics)
    )


# ---- Prometheus ------------------------------------------------------------------------------------------------


def feed(prom: FakePrometheus, view, pods, label: str = "pod") -> None:
    """Answer every default query with what ``view`` (a MetricsView) says, labelled as Prometheus would."""
    for name in GAUGES:
        prom.set(f"({name}{{", [({label: p, "namespace": "default"}, v) for p, v in view.pods_metric(name).items()])
    rates = view.counter_rate(SUCCESS, RATE_WINDOW_S)
    prom.set(f"rate({SUCCESS}{{", [({label: p}, v) for p, v in rates.items()])
    prom.set("memory_used", [({}, view.external_metric(MEMORY_USED_PERCENTAGE))])


@pytest.mark.parametrize("label", ["pod", "id"])
def test_observation_from_prometheus_equals_the_environments(sim, label):
    state = sim.state()
    with FakePrometheus() as prom:
        feed(prom, state.metrics, [p.name for p in state.pods], label)
        source = PrometheusMetrics(prom.url, "default").refresh(live_pods(state))
        live = observe(state, source)
    expected = ObservationBuilder()(state)
    assert expected[1] > 0 and expected[4] > 0  # busy pods: the comparison is not of zeros
    np.testing.assert_array_equal(live, expected)


def test_default_queries_select_the_deployments_pods_and_windows():
    with FakePrometheus() as prom:
        prom.set("slots", [({"pod": "js-0"}, 0.5)])
        PrometheusMetrics(prom.url, "serving").refresh([LivePod("js-0"), LivePod("js-1")])
    selector = 'namespace="serving",pod=~"js\\\\-0|js\\\\-1"'
    assert f"last_over_time(jetstream_slots_used_percentage{{{selector}}}[60s])" in prom.queries
    assert f"rate({SUCCESS}{{{selector}}}[60s])" in prom.queries
    assert any(q.startswith(f"avg(last_over_time(memory_used{{{selector}}}[60s])) / ") for q in prom.queries)


def test_results_are_filtered_to_listed_pods_and_series_of_a_pod_averaged():
    with FakePrometheus() as prom:
        prom.set("slots", [({"pod": "a", "idx": "0"}, 0.2), ({"pod": "a", "idx": "1"}, 0.4), ({"pod": "other"}, 1.0),
                           ({"instance": "no-pod-label"}, 1.0)])  # fmt: skip
        prom.set("rate(", [({"pod": "a", "container": "x"}, 1.0), ({"pod": "a", "container": "y"}, 2.0)])
        source = PrometheusMetrics(prom.url, "default").refresh([LivePod("a"), LivePod("b")])
    assert source.pods_metric("jetstream_slots_used_percentage") == pytest.approx({"a": 0.3})
    assert source.counter_rate(SUCCESS, RATE_WINDOW_S) == {"a": 3.0}  # rates of one pod add up
    assert source.external_metric(MEMORY_USED_PERCENTAGE) is None


def test_query_overrides_and_metrics_outside_the_observation_are_fetched_once():
    with FakePrometheus() as prom:
        prom.set("my_slots", [({"pod": "a"}, 0.7)])
        prom.set("jetstream_transfer_backlog_size", [({"pod": "a"}, 4.0)])
        source = PrometheusMetrics(
            prom.url,
            "ns",
            queries={"jetstream_slots_used_percentage": 'max by (pod) (my_slots{namespace="{namespace}"})'},
        ).refresh([LivePod("a")])
        assert 'max by (pod) (my_slots{namespace="ns"})' in prom.queries
        assert source.pods_metric("jetstream_slots_used_percentage") == {"a": 0.7}
        for _ in range(2):
            assert source.pods_metric("jetstream_transfer_backlog_size") == {"a": 4.0}
        assert sum("transfer" in q for q in prom.queries) == 1


def test_stale_samples_count_as_missing():
    clock = Clock()
    with FakePrometheus(clock=clock) as prom:
        prom.set("slots", [({"pod": "a"}, 0.5)])
        prom.age_s = 61.0
        source = PrometheusMetrics(prom.url, "default", stale_after_s=60, clock=clock)
        with pytest.raises(MetricsUnavailable, match="no sample fresher than 60 s for any of 1 pods"):
            source.refresh([LivePod("a")])
        prom.age_s = 59.0
        assert source.refresh([LivePod("a")]).pods_metric("jetstream_slots_used_percentage") == {"a": 0.5}


def test_prometheus_down_slow_or_gone_is_unavailable_with_the_reason():
    pods = [LivePod("a")]
    with FakePrometheus() as prom:
        prom.down = True
        with pytest.raises(MetricsUnavailable, match="HTTP 503"):
            PrometheusMetrics(prom.url, "default").refresh(pods)
        prom.down, prom.delay_s = False, 0.5
        with pytest.raises(MetricsUnavailable, match=r"no answer within 0\.1 s"):
            PrometheusMetrics(prom.url, "default", timeout_s=0.1).refresh(pods)
        url = prom.url
    with pytest.raises(MetricsUnavailable, match="ConnectionError"):
        PrometheusMetrics(url, "default", timeout_s=1).refresh(pods)


def test_no_pods_asks_nothing():
    with FakePrometheus() as prom:
        source = PrometheusMetrics(prom.url, "default").refresh([])
        assert source.pods_metric("jetstream_slots_used_percentage") == {} and prom.queries == []


class _Adapter(requests.adapters.BaseAdapter):
    """Answers every request as an empty Prometheus vector, remembering the headers."""

    def __init__(self) -> None:
        super().__init__()
        self.headers: list[dict] = []

    def send(self, request, **kwargs):
        self.headers.append(dict(request.headers))
        response = requests.Response()
        response.status_code, response._content = (
            200,
            b'{"status":"success","data":{"resultType":"vector","result":[]}}',
        )
        response.request = request
        return response

    def close(self) -> None:
        pass


def test_google_managed_prometheus_gets_a_bearer_token(monkeypatch):
    google_auth = pytest.importorskip("google.auth", reason=NO_GOOGLE_AUTH)

    class Credentials:
        valid, token = False, None

        def refresh(self, request):
            self.valid, self.token = True, "ya29.token"

    monkeypatch.setattr(google_auth, "default", lambda scopes: (Credentials(), "project"))
    session, adapter = requests.Session(), _Adapter()
    session.mount("https://", adapter)
    url = "https://monitoring.googleapis.com/v1/projects/p/location/global/prometheus"
    with pytest.raises(MetricsUnavailable):  # empty answers: nothing fresh
        PrometheusMetrics(url, "default", session=session).refresh([LivePod("a")])
    assert adapter.headers and all(h["Authorization"] == "Bearer ya29.token" for h in adapter.headers)
    plain, plain_adapter = requests.Session(), _Adapter()
    plain.mount("http://", plain_adapter)
    with pytest.raises(MetricsUnavailable):
        PrometheusMetrics("http://prometheus:9090", "default", session=plain).refresh([LivePod("a")])
    assert all("Authorization" not in h for h in plain_adapter.headers)


# ---- direct scraping -----------------------------------------------------------------------------------------------


class PodPages:
    """Each simulated pod's pages on its own loopback IP (127.0.0.2, .3, …) and one shared port."""

    def __init__(self, sim) -> None:
        self.sim, self.servers, self.port, self.hits = sim, [], 0, []
        self.refuse: set[str] = set()
        for i, pod in enumerate(sim.fleet.scrape_targets()):
            self.servers.append(self._serve(pod, f"127.0.0.{i + 2}"))

    def _serve(self, pod, ip: str) -> ThreadingHTTPServer:
        pages = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                pages.hits.append((pod.name, self.path))
                if pod.name in pages.refuse:
                    self.send_error(503)
                    return
                text = pod.metrics.device_exposition() if self.path == "/device/metrics" else pod.metrics.exposition()
                body = text.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        server = ThreadingHTTPServer((ip, self.port), Handler)
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return server

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


class _Values:
    """A MetricsView of given values (what both sides of the comparison should read)."""

    def __init__(self, pods: dict[str, dict[str, float]], memory: float | None, rates: dict[str, float]) -> None:
        self.pods, self.memory, self.rates = pods, memory, rates

    def pods_metric(self, name):
        return {p: v[name] for p, v in self.pods.items() if name in v}

    def external_metric(self, name):
        return self.memory

    def counter_rate(self, name, window_s):
        return self.rates


@pytest.fixture
def pages(sim):
    served = PodPages(sim)
    yield served
    served.close()


def scraper(pages: PodPages, clock: Clock, **kw) -> ScrapedPodMetrics:
    return ScrapedPodMetrics(pages.port, device_port=pages.port, device_path="/device/metrics", clock=clock, **kw)


def test_observation_from_scraped_pages_equals_the_environments(sim, pages):
    clock = Clock()
    state = sim.state()
    pods = live_pods(state)
    source = scraper(pages, clock)
    before = {p.name: p.metrics.snapshot()[SUCCESS] for p in sim.fleet.scrape_targets()}
    source.refresh(pods)
    sim.env.run(until=sim.env.now + 15)
    clock.t += 15
    state = sim.state()
    source.refresh(pods)
    targets = sim.fleet.scrape_targets()
    snapshots = {p.name: p.metrics.snapshot() for p in targets}
    device = [p.metrics.device_snapshot() for p in targets]
    memory = float(np.mean([d["memory_used"] for d in device]) / np.mean([d["memory_total"] for d in device]))
    rates = {name: (snap[SUCCESS] - before[name]) / 15 for name, snap in snapshots.items()}
    assert sum(rates.values()) > 0
    assert source.counter_rate(SUCCESS, RATE_WINDOW_S) == pytest.approx(rates)
    assert source.external_metric(MEMORY_USED_PERCENTAGE) == pytest.approx(memory)
    np.testing.assert_allclose(observe(state, source), observe(state, _Values(snapshots, memory, rates)), rtol=1e-6)


def test_a_silent_pod_keeps_its_last_sample_until_stale_then_all_silent_is_unavailable(sim, pages):
    clock = Clock()
    pods = live_pods(sim.state())
    source = scraper(pages, clock, stale_after_s=30)
    source.refresh(pods)
    pages.refuse = {pods[0].name}
    clock.t += 20
    assert pods[0].name in source.refresh(pods).pods_metric("jetstream_slots_used_percentage")
    clock.t += 20
    assert pods[0].name not in source.refresh(pods).pods_metric("jetstream_slots_used_percentage")
    pages.refuse = {p.name for p in pods}
    clock.t += 40
    with pytest.raises(MetricsUnavailable, match=r"no sample fresher than 30 s .*HTTPError"):
        source.refresh(pods)


def test_only_scrapeable_pods_are_scraped(sim, pages):
    pods = live_pods(sim.state())
    pods[1] = LivePod(pods[1].name, ready=False, ip=pods[1].ip)  # starting: not scraped
    pages.hits.clear()
    ScrapedPodMetrics(pages.port, device_port=None).refresh(pods)
    assert sorted(name for name, _ in pages.hits) == sorted(p.name for p in pods if p.ready)
    assert ScrapedPodMetrics(pages.port, device_port=None).external_metrics == ()  # not expected: not partial
    with pytest.raises(MetricsUnavailable, match="0 of 1 pods ready to scrape"):
        ScrapedPodMetrics(pages.port).refresh([LivePod("x", ready=False, ip="127.0.0.9")])


def test_counter_resets_count_the_restart():
    clock = Clock()
    source = ScrapedPodMetrics(1, clock=clock).refresh([])
    t0 = clock.t
    source.server["a"] = deque([(t0 - 30, {SUCCESS: 100.0}), (t0 - 15, {SUCCESS: 110.0}), (t0, {SUCCESS: 5.0})])
    assert source.counter_rate(SUCCESS, 60) == {"a": pytest.approx((10 + 5) / 30)}


def test_parse_page_averages_chips_and_skips_buckets():
    page = (
        '# TYPE memory_used gauge\nmemory_used{accelerator_id="0"} 2.0\nmemory_used{accelerator_id="1"} 4.0\n'
        '# TYPE q histogram\nq_bucket{le="1.0"} 3.0\nq_bucket{le="+Inf"} 5.0\nq_sum 2.5\nq_count 5.0\n'
    )
    assert parse_page(page) == {"memory_used": 3.0, "q_sum": 2.5, "q_count": 5.0}

"""Live metric sources: the :class:`~rlscale.metrics.pipeline.MetricsView` a policy reads, from a real cluster.

Both sources answer as the simulator's :class:`~rlscale.metrics.pipeline.ScrapedMetrics` does, so a policy
trained on the simulator observes the same quantities live:

* ``pods_metric(name)``: per pod, only pods with a fresh sample (a missing pod is missing, never zero);
* ``external_metric("memory_used_percentage")``: avg(memory_used) / avg(memory_total) over the device plugin's
  fresh samples; any other External metric is the mean of the per-pod values; None when nothing is fresh;
* ``counter_rate(name, window_s)``: per-pod increase per second over the window, counter resets handled.

A sample older than ``stale_after_s`` counts as missing. Windows, staleness and rates are in the controller's
simulated seconds (:class:`~rlscale.deploy.timescale.TimeScale`; wall seconds on a real cluster); HTTP timeouts
are wall seconds. ``refresh(pods)`` reads the source once per sync for the
Deployment's current pods, and raises :class:`MetricsUnavailable` (saying why) when the source is down, times
out, or has nothing fresh for any pod; the controller then holds.

:class:`PrometheusMetrics` asks the Prometheus HTTP API (self-hosted, or Google Managed Prometheus's
Prometheus-compatible endpoint); :class:`ScrapedPodMetrics` scrapes each pod's ``/metrics`` page itself.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from urllib.parse import urlparse

import numpy as np
import requests
from prometheus_client.parser import text_string_to_metric_families

from rlscale.deploy.pods import LivePod
from rlscale.deploy.timescale import TimeScale, promql_duration
from rlscale.metrics.pipeline import DEVICE_METRICS, MetricsUnavailable
from rlscale.policies.observation import OBSERVED_EXTERNAL, OBSERVED_GAUGES, RATE_WINDOW_S

log = logging.getLogger(__name__)

# What ObservationBuilder reads is fetched up front on every refresh, so one sync sees one consistent set of
# answers. Other names (a fallback HPA's) are fetched the first time they are asked.
OBSERVED_RATES = (("jetstream_request_success_count_total", RATE_WINDOW_S),)
MEMORY_USED_PERCENTAGE = "memory_used_percentage"

# PromQL templates. {selector} is namespace="…",pod=~"…" for the Deployment's current pods; {window} is the
# staleness window for gauges and the rate window for counters, in Prometheus's wall time (60s; 4000ms at speed 15).
# last_over_time() returns a series' newest sample only if it falls in the window, so Prometheus itself drops stale
# pods.
GAUGE_QUERY = "last_over_time({name}{{selector}}[{window}])"
RATE_QUERY = "rate({name}{{selector}}[{window}])"
EXTERNAL_QUERY = "avg(last_over_time({name}{{selector}}[{window}]))"
DEFAULT_QUERIES = {
    MEMORY_USED_PERCENTAGE: "avg(last_over_time(memory_used{{selector}}[{window}])) / "
    "avg(last_over_time(memory_total{{selector}}[{window}]))",
}
POD_LABELS = ("pod", "id")  # GMP and kubernetes_sd relabelling give `pod`; JetStream's own label is `id`
GMP_HOST = "monitoring.googleapis.com"
GMP_SCOPE = "https://www.googleapis.com/auth/monitoring.read"


def default_query(name: str, kind: str) -> str:
    """The default PromQL template of a metric read as ``kind`` (gauge, rate or external)."""
    if name in DEFAULT_QUERIES:
        return DEFAULT_QUERIES[name]
    return {"gauge": GAUGE_QUERY, "rate": RATE_QUERY, "external": EXTERNAL_QUERY}[kind].replace("{name}", name)


def render(template: str, namespace: str, pods: Sequence[str], window_s: float) -> str:
    """A template with its placeholders filled (plain replacement, so PromQL's own braces need no escaping);
    ``window_s`` is in wall seconds, as Prometheus stores samples."""
    # RE2 escapes inside a PromQL string literal, where a backslash is itself escaped
    regex = "|".join(re.escape(p).replace("\\", "\\\\") for p in sorted(pods)) or "^$"  # no pods: match none
    selector = f'namespace="{namespace}",pod=~"{regex}"'
    values = {"{selector}": selector, "{namespace}": namespace, "{pods}": regex, "{window}": promql_duration(window_s)}
    for key, value in values.items():
        template = template.replace(key, value)
    return template


def _readiness(pods: Sequence[LivePod]) -> str:
    scrapeable = sum(p.scrapeable for p in pods)
    return f"{scrapeable} of {len(pods)} pods ready to scrape"


def _mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return float(np.mean(values)) if values else None


class PrometheusMetrics:
    """A MetricsView over the Prometheus HTTP API (instant queries, ``POST /api/v1/query``).

    Per-pod results are keyed by the ``pod`` label (else ``id``) and kept only for the Deployment's listed pods;
    several series of one pod are averaged (gauges) or summed (rates). A result whose sample time is older than
    ``stale_after_s`` is dropped too. Against an emulator at speed K (``clock`` a :class:`TimeScale`), range
    windows shrink to wall seconds (``[60s]`` → ``[4000ms]`` at K = 15) and ``rate()`` is divided by K, so the
    answers are per simulated second, as the simulator's. Rates come from PromQL's ``rate()``, which extrapolates
    to the window's edges where the simulator divides by the span between the edge samples: the two agree to
    within one scrape interval's share of the window. For Google Managed Prometheus (a URL on monitoring.googleapis.com)
    requests carry a bearer token from google-auth's application default credentials, when google-auth is
    installed.
    """

    def __init__(
        self,
        url: str,
        namespace: str,
        *,
        queries: dict[str, str] | None = None,
        stale_after_s: float = 60.0,
        timeout_s: float = 5.0,
        session: requests.Session | None = None,
        clock: TimeScale | Callable[[], float] = time.time,
    ) -> None:
        self.url = url.rstrip("/")
        self.namespace, self.queries = namespace, dict(queries or {})
        self.stale_after_s, self.timeout_s, self.clock = stale_after_s, timeout_s, TimeScale.of(clock)
        self.session = session or requests.Session()
        self._auth = _GoogleAuth() if urlparse(self.url).hostname == GMP_HOST else None
        self.external_metrics = OBSERVED_EXTERNAL  # what it can answer: the observation's External metrics
        self._pods: tuple[str, ...] = ()
        self._answers: dict[tuple, object] = {}

    # ---- refresh -----------------------------------------------------------------------------------
    def refresh(self, pods: Sequence[LivePod]) -> PrometheusMetrics:
        """Query what the observation reads for these pods; raise MetricsUnavailable if Prometheus cannot answer
        or has nothing fresh for any of them."""
        self._pods = tuple(p.name for p in pods)
        self._answers = {}
        if not pods:
            return self
        for name in OBSERVED_GAUGES:
            self._answers[("gauge", name)] = self._per_pod(name, "gauge", self.stale_after_s)
        for name in OBSERVED_EXTERNAL:
            self._answers[("external", name)] = self._external(name)
        for name, window in OBSERVED_RATES:
            self._answers[("rate", name, window)] = self._per_pod(name, "rate", window)
        if not any(self._answers[("gauge", name)] for name in OBSERVED_GAUGES):
            raise MetricsUnavailable(
                f"prometheus at {self.url}: no sample fresher than {self.stale_after_s:g} s for any of "
                f"{len(pods)} pods ({_readiness(pods)})"
            )
        return self

    # ---- MetricsView ---------------------------------------------------------------------------------
    def pods_metric(self, name: str) -> dict[str, float]:
        return self._cached(("gauge", name), lambda: self._per_pod(name, "gauge", self.stale_after_s))

    def external_metric(self, name: str) -> float | None:
        return self._cached(("external", name), lambda: self._external(name))

    def counter_rate(self, name: str, window_s: float) -> dict[str, float]:
        return self._cached(("rate", name, window_s), lambda: self._per_pod(name, "rate", window_s))

    def _cached(self, key: tuple, fetch: Callable[[], object]):
        if not self._pods:  # no pods, no metrics: nothing to ask
            return {} if key[0] != "external" else None
        if key not in self._answers:
            try:
                self._answers[key] = fetch()
            except MetricsUnavailable as exc:  # a metric outside the observation: missing, not a failed sync
                log.warning("metric %s unavailable: %s", key[1], exc)
                self._answers[key] = {} if key[0] != "external" else None
        return self._answers[key]

    # ---- queries ---------------------------------------------------------------------------------------
    def query_for(self, name: str, kind: str, window_s: float) -> str:
        """The PromQL sent for ``name`` read as ``kind`` over the current pods (``window_s`` in simulated s)."""
        template = self.queries.get(name, default_query(name, kind))
        return render(template, self.namespace, self._pods, self.clock.wall_s(window_s))

    def _per_pod(self, name: str, kind: str, window_s: float) -> dict[str, float]:
        listed, by_pod = set(self._pods), {}
        for labels, value in self._query(self.query_for(name, kind, window_s)):
            pod = next((labels[k] for k in POD_LABELS if k in labels), None)
            if pod in listed:
                by_pod.setdefault(pod, []).append(value)
        if kind == "rate":  # per wall second in Prometheus; per simulated second for the policy
            return {pod: self.clock.per_sim_s(float(sum(values))) for pod, values in by_pod.items()}
        return {pod: float(np.mean(values)) for pod, values in by_pod.items()}

    def _external(self, name: str) -> float | None:
        values = [value for _, value in self._query(self.query_for(name, "external", self.stale_after_s))]
        return _mean(values)

    def _query(self, promql: str) -> list[tuple[dict[str, str], float]]:
        """Fresh, finite samples of an instant query: (labels, value) pairs."""
        headers = self._auth.headers() if self._auth is not None else {}
        try:
            response = self.session.post(
                f"{self.url}/api/v1/query", data={"query": promql}, headers=headers, timeout=self.timeout_s
            )
        except requests.Timeout as exc:
            raise MetricsUnavailable(f"prometheus at {self.url}: no answer within {self.timeout_s:g} s") from exc
        except requests.RequestException as exc:
            raise MetricsUnavailable(f"prometheus at {self.url}: {type(exc).__name__}: {exc}") from exc
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200 or body.get("status") != "success":
            why = body.get("error") or response.text[:200]
            raise MetricsUnavailable(f"prometheus at {self.url}: HTTP {response.status_code} for {promql!r}: {why}")
        data = body.get("data", {})
        now = self.clock.wall()  # Prometheus's timestamps are wall time
        if data.get("resultType") == "scalar":
            results = [{"metric": {}, "value": data.get("result")}]
        else:
            results = data.get("result", [])
        out = []
        for item in results:
            ts, raw = item["value"]
            value = float(raw)
            if math.isfinite(value) and self.clock.sim_s(now - float(ts)) <= self.stale_after_s:
                out.append((item.get("metric", {}), value))
        return out


class _GoogleAuth:
    """Bearer tokens for Google Managed Prometheus from application default credentials (google-auth, optional)."""

    def __init__(self) -> None:
        self._credentials = None
        self._request = None

    def headers(self) -> dict[str, str]:
        try:
            import google.auth
            import google.auth.exceptions
            import google.auth.transport.requests
        except ImportError:  # not a dependency: without it GMP answers 401, which refresh() reports
            return {}
        try:
            if self._credentials is None:
                self._credentials, _ = google.auth.default(scopes=[GMP_SCOPE])
                self._request = google.auth.transport.requests.Request()
            if not self._credentials.valid:
                self._credentials.refresh(self._request)
        except google.auth.exceptions.GoogleAuthError as exc:
            raise MetricsUnavailable(f"Google Managed Prometheus: no credentials ({exc})") from exc
        return {"Authorization": f"Bearer {self._credentials.token}"}


# ---- direct scraping ---------------------------------------------------------------------------------------


def parse_page(text: str) -> dict[str, float]:
    """A /metrics page as flat samples by name; several series of a name are averaged (a device plugin's chips,
    which are symmetric, as the simulator averages them). Histogram buckets and quantiles are left out."""
    values: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if "le" in sample.labels or "quantile" in sample.labels:
                continue
            values.setdefault(sample.name, []).append(float(sample.value))
    return {name: float(np.mean(v)) for name, v in values.items()}


class ScrapedPodMetrics:
    """A MetricsView from scraping each scrape-able pod's pages at every refresh (no Prometheus in between).

    JetStream's page is at ``http://<podIP>:<scrape_port><scrape_path>``; the device plugin's (optional) at
    ``http://<podIP>:<device_port><device_path>``. Each pod keeps a short history of scrapes, enough for
    ``counter_rate`` over the observation's window and for the staleness rule: a pod that does not answer keeps
    its last sample until it is ``stale_after_s`` old. Scrapes are stamped with the controller's simulated clock
    (``clock``, a :class:`TimeScale` against an emulator), so rates come out per simulated second as they are.
    """

    def __init__(
        self,
        scrape_port: int,
        *,
        scrape_path: str = "/metrics",
        device_port: int | None = None,
        device_path: str = "/metrics",
        stale_after_s: float = 60.0,
        timeout_s: float = 5.0,
        session: requests.Session | None = None,
        clock: TimeScale | Callable[[], float] = time.time,
        max_workers: int = 16,
    ) -> None:
        self.scrape_port, self.scrape_path = scrape_port, scrape_path
        self.device_port, self.device_path = device_port, device_path
        self.stale_after_s, self.timeout_s, self.clock = stale_after_s, timeout_s, TimeScale.of(clock)
        self.session = session or requests.Session()
        self.max_workers = max_workers
        self.keep_s = max(stale_after_s, RATE_WINDOW_S) * 2
        self.external_metrics = OBSERVED_EXTERNAL if device_port is not None else ()  # HBM needs the device pages
        self.server: dict[str, deque[tuple[float, dict[str, float]]]] = {}
        self.device: dict[str, deque[tuple[float, dict[str, float]]]] = {}
        self._now = self.clock()

    def refresh(self, pods: Sequence[LivePod]) -> ScrapedPodMetrics:
        """Scrape every scrape-able pod once; raise MetricsUnavailable if no listed pod has a fresh sample."""
        self._now = now = self.clock()
        listed = {p.name for p in pods}
        for history in (self.server, self.device):
            for gone in set(history) - listed:
                del history[gone]
        targets = [p for p in pods if p.scrapeable]
        jobs = [(p, self.server, self.scrape_port, self.scrape_path) for p in targets]
        if self.device_port is not None:
            jobs += [(p, self.device, self.device_port, self.device_path) for p in targets]
        errors: list[str] = []
        if jobs:
            with ThreadPoolExecutor(max_workers=min(self.max_workers, len(jobs))) as pool:
                pages = list(pool.map(lambda job: self._scrape(job[0], job[2], job[3]), jobs))
            for (pod, history, _, _), (values, error) in zip(jobs, pages, strict=True):
                if error is not None:
                    errors.append(error)
                    continue
                series = history.setdefault(pod.name, deque())
                series.append((now, values))
                while series and now - series[0][0] > self.keep_s:
                    series.popleft()
        if pods and not self._latest(self.server):
            why = "; ".join(errors[:3]) or _readiness(pods)
            raise MetricsUnavailable(
                f"scraping: no sample fresher than {self.stale_after_s:g} s for any of {len(pods)} pods ({why})"
            )
        return self

    def _scrape(self, pod: LivePod, port: int, path: str) -> tuple[dict[str, float], str | None]:
        url = f"http://{pod.ip}:{port}{path}"
        try:
            response = self.session.get(url, timeout=self.timeout_s)
            response.raise_for_status()
            return parse_page(response.text), None
        except requests.Timeout:
            return {}, f"{pod.name} ({url}): no answer within {self.timeout_s:g} s"
        except (requests.RequestException, ValueError) as exc:
            return {}, f"{pod.name} ({url}): {type(exc).__name__}"

    def _latest(self, history: dict[str, deque]) -> dict[str, dict[str, float]]:
        out = {}
        for pod, series in history.items():
            if series and self._now - series[-1][0] <= self.stale_after_s:
                out[pod] = series[-1][1]
        return out

    # ---- MetricsView ---------------------------------------------------------------------------------
    def pods_metric(self, name: str) -> dict[str, float]:
        latest = self._latest(self.device if name in DEVICE_METRICS else self.server)
        return {pod: values[name] for pod, values in latest.items() if name in values}

    def external_metric(self, name: str) -> float | None:
        if name == MEMORY_USED_PERCENTAGE:
            device = [v for v in self._latest(self.device).values() if "memory_used" in v and "memory_total" in v]
            if not device:
                return None
            used = np.mean([v["memory_used"] for v in device])
            total = np.mean([v["memory_total"] for v in device])
            return float(used / total)
        return _mean(self.pods_metric(name).values())

    def counter_rate(self, name: str, window_s: float) -> dict[str, float]:
        """As ScrapedMetrics.counter_rate: increase between the scrapes in (now − window, now] over their span."""
        out = {}
        for pod, series in self.server.items():
            samples = [(t, v[name]) for t, v in series if self._now - window_s < t <= self._now and name in v]
            if len(samples) < 2:
                continue
            increase = 0.0
            for (_, a), (_, b) in pairwise(samples):
                increase += b - a if b >= a else b  # a reset: the counter restarted from zero
            out[pod] = increase / (samples[-1][0] - samples[0][0])
        return out

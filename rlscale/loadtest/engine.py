"""The load engine: Locust sends a plan's requests to a JetStream server, open-loop, and records what comes back.

Runs in a process of its own (``rlscale loadtest`` starts it with :data:`BOOT`), because Locust runs on gevent,
which must patch the standard library before anything else imports it. Locust is the engine: a single
:class:`Dispatcher` user (its runner, its events, its statistics, its ``HttpSession`` for HTTP) spawns one
greenlet per planned request *at the request's time*, whatever is in flight, so arrivals are open-loop (a
closed-loop user waiting for each answer would hide the server's queue); ``max_in_flight`` bounds the
greenlets, and an arrival beyond it fails unsent (``client: max in flight``), counted, never delayed.

Each request streams its answer (HTTP ``POST /v1/generate`` or the gRPC ``Decode`` stream,
:mod:`rlscale.jetstream.protocol`); its send time, first token and end become a row of ``requests.csv`` in the
simulator's columns (:data:`rlscale.request_log.REQUEST_COLUMNS`; what a client cannot see is left empty), in
the server's time (wall seconds since the start × ``time_scale``), written as requests end. A scraper greenlet
reads the server's Prometheus pages every ``scrape_interval_s`` into ``metrics.csv`` (one row per sample,
histogram buckets left out). SIGINT stops dispatching, cuts what is in flight (rows ``unfinished``, with their
first token if it came) and closes the files: what was measured is kept.
"""

from __future__ import annotations

import csv
import json
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

BOOT = (
    "from gevent import monkey; monkey.patch_all()\n"
    "import runpy; runpy.run_module('rlscale.loadtest.engine', run_name='__main__')\n"
)
"""``python -c BOOT <folder>``: gevent's patches first, then this module as the program."""
ENGINE_FILE, PLAN_FILE = "engine.json", "plan.csv"
REQUESTS_FILE, METRICS_FILE, LOCUST_FILE = "requests.csv", "metrics.csv", "locust_stats.json"
METRIC_COLUMNS = ("t_s", "url", "name", "labels", "value")
STATUS_EVERY_S = 5.0  # wall seconds between progress lines
TOKEN_BASE, TOKEN_SPAN = 100, 30_000  # prompt token ids: within any Llama-family vocabulary, away from specials


@dataclass(frozen=True)
class EngineConfig:
    """What the engine reads from ``engine.json`` (written by ``rlscale loadtest``)."""

    protocol: str  # "http" or "grpc"
    target: str  # http://host:port, or host:port for gRPC
    time_scale: float  # server seconds per wall second (an emulator's --speed; 1 for a real server)
    metrics_urls: tuple[str, ...]
    scrape_interval_s: float  # server seconds
    timeout_s: float  # server seconds a request may take in all
    drain_s: float  # server seconds to wait for answers after the last arrival
    max_in_flight: int
    text: bool  # send text_content (words) instead of token ids

    @classmethod
    def read(cls, folder: Path) -> EngineConfig:
        data = json.loads((folder / ENGINE_FILE).read_text())
        return cls(**{**data, "metrics_urls": tuple(data["metrics_urls"])})


def prompt_ids(request_id: int, length: int) -> list[int]:
    """Deterministic prompt token ids for one request."""
    return [TOKEN_BASE + (request_id * 7919 + k * 104_729) % TOKEN_SPAN for k in range(length)]


class Recorder:
    """``requests.csv`` rows as requests end (then the unfinished ones), in the server's time."""

    def __init__(self, folder: Path, time_scale: float) -> None:
        from rlscale.request_log import REQUEST_COLUMNS

        self.time_scale = time_scale
        self._file: TextIO = (folder / REQUESTS_FILE).open("w", newline="")
        self._writer = csv.writer(self._file)
        self._writer.writerow(REQUEST_COLUMNS)
        self.start = time.monotonic()
        self.ended = self.completed = self.failed = 0

    def server_s(self, wall: float | None) -> str:
        return "" if wall is None else repr((wall - self.start) * self.time_scale)

    def row(self, rid: int, sent: float | None, prompt: int, output: int, tokens: int, first: float | None,
            done: float | None, outcome: str, failure: str = "") -> None:  # fmt: skip
        served = tokens if tokens else ""
        self._writer.writerow(
            (rid, self.server_s(sent), prompt, "", "", output, served, "", "", self.server_s(first), "",
             self.server_s(done), outcome, failure)
        )  # fmt: skip
        if outcome != "unfinished":
            self.ended += 1
            self.completed += outcome == "completed"
            self.failed += outcome == "failed"
            if self.ended % 100 == 0:
                self._file.flush()

    def close(self) -> None:
        self._file.close()


class Scraper:
    """The server's Prometheus pages into ``metrics.csv`` (buckets left out), with an ``up`` row per scrape."""

    def __init__(self, folder: Path, urls: tuple[str, ...], recorder: Recorder) -> None:
        self.urls, self.recorder = urls, recorder
        self._file: TextIO = (folder / METRICS_FILE).open("w", newline="")
        self._writer = csv.writer(self._file)
        self._writer.writerow(METRIC_COLUMNS)

    def scrape(self) -> None:
        import requests
        from prometheus_client.parser import text_string_to_metric_families

        for url in self.urls:
            t = self.recorder.server_s(time.monotonic())
            try:
                response = requests.get(url, timeout=5)
                response.raise_for_status()
                families = list(text_string_to_metric_families(response.text))
            except (requests.RequestException, ValueError) as exc:
                self._writer.writerow((t, url, "up", json.dumps({"error": str(exc)[:200]}), 0))
                continue
            self._writer.writerow((t, url, "up", "{}", 1))
            for family in families:
                for s in family.samples:
                    if s.name.endswith(("_bucket", "_created")):
                        continue
                    self._writer.writerow((t, url, s.name, json.dumps(s.labels, sort_keys=True), repr(s.value)))
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class LoadRun:
    """The plan, the recorder and the protocol's client: what the Dispatcher user carries out."""

    def __init__(self, folder: Path, config: EngineConfig) -> None:
        import numpy as np

        self.folder, self.config = folder, config
        plan = np.loadtxt(folder / PLAN_FILE, delimiter=",", skiprows=1, ndmin=2)
        self.plan = [(float(t), int(p), int(o)) for t, p, o in plan]
        self.recorder = Recorder(folder, config.time_scale)
        self.scraper = Scraper(folder, config.metrics_urls, self.recorder) if config.metrics_urls else None
        self.stopping = False
        self.in_flight: dict[int, dict[str, Any]] = {}  # id -> its row so far
        self.late_s = 0.0  # the dispatcher's worst lateness, wall s
        self.refused = 0

    def wall(self, server_s: float) -> float:
        """Wall seconds after the start for ``server_s`` of server time."""
        return server_s / self.config.time_scale


def main(folder: Path) -> int:
    import gevent
    import gevent.pool
    from locust import User, task
    from locust.clients import HttpSession
    from locust.env import Environment
    from locust.exception import StopUser
    from requests.adapters import HTTPAdapter

    from rlscale.jetstream import protocol

    config = EngineConfig.read(folder)
    run = LoadRun(folder, config)
    scale = config.time_scale
    if config.protocol == "grpc":
        import grpc
        import grpc.experimental.gevent as grpc_gevent

        grpc_gevent.init_gevent()  # gRPC's own threads cooperate with gevent's loop (Locust's gRPC recipe)
        channel = grpc.insecure_channel(config.target)
        stub = protocol.stubs()[1].OrchestratorStub(channel)

    class Dispatcher(User):
        """Locust's user: sends every planned request at its time, each in its own greenlet (open loop)."""

        host = config.target if config.protocol == "http" else "grpc://" + config.target

        def on_start(self) -> None:
            if config.protocol == "http":
                self.client = HttpSession(self.host, self.environment.events.request, self)
                adapter = HTTPAdapter(pool_connections=1, pool_maxsize=config.max_in_flight)
                self.client.mount("http://", adapter)

        @task
        def play(self) -> None:
            pool = gevent.pool.Group()
            start = run.recorder.start
            for rid, (t, prompt, output) in enumerate(run.plan):
                if run.stopping:
                    break
                due = start + run.wall(t)
                while not run.stopping and (wait := due - time.monotonic()) > 0:
                    gevent.sleep(min(wait, 0.1))  # wakes for a stop within 0.1 s
                if run.stopping:
                    break
                run.late_s = max(run.late_s, time.monotonic() - start - run.wall(t))
                if len(run.in_flight) >= config.max_in_flight:
                    run.refused += 1
                    now = time.monotonic()
                    run.recorder.row(rid, now, prompt, output, 0, None, now, "failed", "client: max in flight")
                    continue
                pool.spawn(self.one, rid, prompt, output)
            deadline = time.monotonic() + run.wall(config.drain_s)
            while len(pool) and not run.stopping and time.monotonic() < deadline:
                gevent.sleep(0.05)
            pool.kill(block=True)  # what is still in flight: recorded unfinished
            self.environment.runner.quit()
            raise StopUser()

        def one(self, rid: int, prompt: int, output: int) -> None:
            state = {"sent": time.monotonic(), "first": None, "last": None, "tokens": 0}
            run.in_flight[rid] = state
            outcome, failure = "completed", ""
            try:
                if config.protocol == "http":
                    self._http(rid, prompt, output, state)
                else:
                    self._grpc(rid, prompt, output, state)
            except gevent.GreenletExit:
                outcome = "unfinished"
            except Exception as exc:  # a failed request is a measurement, not a crash of the engine
                outcome, failure = "failed", f"{type(exc).__name__}: {exc}"[:300]
            finally:
                run.in_flight.pop(rid, None)
                # completed: when its last token arrived (not when the stream closed, nor after Locust's bookkeeping)
                done = (
                    None if outcome == "unfinished" else state["last"] if outcome == "completed" else time.monotonic()
                )
                run.recorder.row(rid, state["sent"], prompt, output, state["tokens"], state["first"], done, outcome,
                                 failure)  # fmt: skip
                self._event("E2E", state, done, failure or None if outcome != "unfinished" else None)

        def _content(self, rid: int, prompt: int) -> dict[str, Any]:
            if config.text:
                return {"text": " ".join(["word"] * prompt)}
            return {"token_ids": prompt_ids(rid, prompt)}

        def _http(self, rid: int, prompt: int, output: int, state: dict[str, Any]) -> None:
            body = protocol.http_body(max_tokens=output, **self._content(rid, prompt))
            timeout = run.wall(config.timeout_s)
            with self.client.post(protocol.GENERATE_PATH, json=body, stream=True, timeout=timeout,
                                  name=protocol.GENERATE_PATH, catch_response=True) as response:  # fmt: skip
                if response.status_code != 200:
                    response.failure(f"HTTP {response.status_code}")
                    raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
                response.success()
                for obj in protocol.json_objects(response.iter_content(chunk_size=None)):
                    self._tokens(state, protocol.tokens_in(obj))

        def _grpc(self, rid: int, prompt: int, output: int, state: dict[str, Any]) -> None:
            request = protocol.decode_request(max_tokens=output, **self._content(rid, prompt))
            for response in stub.Decode(request, timeout=run.wall(config.timeout_s)):
                self._tokens(state, protocol.tokens_in(response))

        def _tokens(self, state: dict[str, Any], count: int) -> None:
            if not count:
                return
            state["last"] = now = time.monotonic()
            if state["first"] is None:
                state["first"] = now
                self._event("TTFT", state, now, None)
            state["tokens"] += count

        def _event(self, name: str, state: dict[str, Any], at: float | None, failure: str | None) -> None:
            """Locust's statistics, in the server's milliseconds."""
            if at is None:
                return
            self.environment.events.request.fire(
                request_type="JetStream", name=name, response_time=(at - state["sent"]) * scale * 1e3,
                response_length=state["tokens"], exception=RuntimeError(failure) if failure else None, context={},
            )  # fmt: skip

    env = Environment(user_classes=[Dispatcher])
    runner = env.create_local_runner()

    def stop(*_: object) -> None:
        if not run.stopping:
            print("loadtest engine: stopping (Ctrl-C); what was measured is kept", flush=True)
        run.stopping = True

    gevent.signal_handler(signal.SIGINT, stop)
    gevent.signal_handler(signal.SIGTERM, stop)

    def scrape_loop() -> None:
        while run.scraper is not None:
            run.scraper.scrape()
            gevent.sleep(run.wall(config.scrape_interval_s))

    def status_loop() -> None:
        while True:
            gevent.sleep(STATUS_EVERY_S)
            r = run.recorder
            t = (time.monotonic() - r.start) * scale
            print(f"loadtest t={t:8.1f} s  in flight {len(run.in_flight):4d}  completed {r.completed}  "
                  f"failed {r.failed}", flush=True)  # fmt: skip

    helpers = [gevent.spawn(scrape_loop), gevent.spawn(status_loop)]
    runner.start(1, spawn_rate=1)
    runner.greenlet.join()
    gevent.killall(helpers)
    if run.scraper is not None:
        run.scraper.scrape()  # the state the run left behind
        run.scraper.close()
    run.recorder.close()
    stats = {
        "late_s": run.late_s * scale,
        "refused": run.refused,
        "stopped": run.stopping,
        "locust": {
            f"{e.method} {e.name}": {
                "requests": e.num_requests, "failures": e.num_failures, "avg_ms": e.avg_response_time,
                "p50_ms": e.get_response_time_percentile(0.5), "p99_ms": e.get_response_time_percentile(0.99),
            }
            for e in env.stats.entries.values()
        },
    }  # fmt: skip
    (folder / LOCUST_FILE).write_text(json.dumps(stats, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))

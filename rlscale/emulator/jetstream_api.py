"""JetStream's client APIs on the emulated fleet: ``POST /v1/generate`` over HTTP and the gRPC ``Decode`` stream.

A request that reaches either joins the simulation as the workload's requests do (through the fleet's gateway
and router, at the simulated time the wall clock gives when it arrives, :meth:`RealTimeDriver.catch_up`), and
its answer is streamed back as the simulated pod produces it: the first token when its prefill ends, the rest
when its last decode step ends, each at the wall time of its simulated time. Token by token pacing is not
emulated: the pod advances decode in closed form, so the steps between the first and the last token have no
events of their own (a client's TTFT, TPOT and end-to-end latency are exact; its inter-token gaps are not).
A request the fleet fails (no Ready pod in time, an OOM) ends its stream with an error: the HTTP stream is cut
(its headers went out on arrival, as upstream's do), the gRPC stream ends ``UNAVAILABLE``.

Lengths: a ``token_content`` prompt is as long as its ids; a ``text_content`` prompt counts one token per
whitespace-separated word (the emulator has no tokenizer). The answer is ``max_tokens`` long, as an engine that
never stops early (no EOS) answers. Token ids echo the request's, text is ``" tok"`` per token.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from rlscale.emulator.driver import RealTimeDriver
from rlscale.emulator.network import QuietHTTPServer
from rlscale.jetstream import protocol
from rlscale.serving.request import COMPLETED, FAILED, Request
from rlscale.simulation import Simulation

log = logging.getLogger(__name__)

GRPC_WORKERS = 256  # concurrent Decode streams the gRPC server serves (a thread each)
TOKEN_TEXT = " tok"


@dataclass
class Ticket:
    """One client request in the simulation: events set when its first token and its end are due."""

    request: Request
    token_ids: list[int]
    text: bool  # server-side tokenization: answer with text too
    first: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)

    def answer(self, count: int, start: int = 0) -> tuple[list[int], str | None]:
        """``count`` answer tokens from position ``start``: ids (echoing the prompt's) and text for a text request."""
        ids = [self.token_ids[(start + k) % len(self.token_ids)] if self.token_ids else 1 for k in range(count)]
        return ids, (TOKEN_TEXT * count if self.text else None)


class ClientTraffic:
    """Requests from real clients into the emulated fleet; :meth:`observe` (after every advance) releases their
    answers. Callers of :meth:`submit` do not hold the emulator's lock."""

    def __init__(self, sim: Simulation, lock: threading.RLock, driver: RealTimeDriver) -> None:
        self.sim, self.lock, self.driver = sim, lock, driver
        self._ids = itertools.count(10**9)  # apart from the scenario's own requests (numbered from 0)
        self._open: list[Ticket] = []

    def submit(self, token_ids: list[int] | None, text: str | None, max_tokens: int) -> Ticket:
        """A request arrives now: it joins the simulation at the wall clock's simulated time."""
        ids = list(token_ids) if token_ids is not None else []
        prompt = len(ids) if token_ids is not None else len((text or "").split())
        with self.lock:
            self.driver.catch_up()
            sim = self.sim
            request = Request(next(self._ids), sim.env.now, max(prompt, 1), max(max_tokens, 1))
            ticket = Ticket(request, ids, text is not None)
            self._open.append(ticket)
            sim.tally.arrived += 1
            sim.timeline.arrivals += 1
            sim.fleet.submit(request)
            self.observe()
        self.driver.wake()
        return ticket

    def observe(self) -> None:
        """Release what is due (the driver calls it holding the lock, after each advance)."""
        if not self._open:
            return
        now = self.sim.env.now
        still = []
        for ticket in self._open:
            request = ticket.request
            if not ticket.first.is_set() and request.first_token_s <= now:
                ticket.first.set()
            if request.state is COMPLETED or request.state is FAILED:
                ticket.done.set()
            else:
                still.append(ticket)
        self._open = still

    def wait_until(self, sim_s: float) -> None:
        """Sleep until simulated time ``sim_s`` is due on the wall clock (an answer known before its time)."""
        delay = self.driver.wall_time(sim_s) - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def stream(self, ticket: Ticket, timeout_s: float | None = None) -> Iterator[tuple[list[int], str | None]]:
        """The answer as the pod produces it: the first token, then the rest; ``RequestFailed`` if the fleet failed
        the request, ``TimeoutError`` after ``timeout_s`` wall seconds of silence."""
        request = ticket.request
        if not _wait_any(ticket.first, ticket.done, timeout_s):
            raise TimeoutError(f"no first token within {timeout_s} s")
        if request.state is FAILED and math.isnan(request.first_token_s):
            raise RequestFailed(request.failure)
        self.wait_until(request.first_token_s)
        yield ticket.answer(1)
        if not ticket.done.wait(timeout_s):
            raise TimeoutError(f"no answer within {timeout_s} s after its first token")
        if request.state is FAILED:
            raise RequestFailed(request.failure)
        self.wait_until(request.finish_s)
        rest = request.target_tokens - 1
        if rest > 0:
            yield ticket.answer(rest, start=1)


class RequestFailed(RuntimeError):
    """The emulated fleet failed the request; the message is its cause (``no ready pod``, an OOM, ...)."""


def _wait_any(first: threading.Event, second: threading.Event, timeout_s: float | None) -> bool:
    """Wait until either event is set (the second is set only after the first could have been)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while not first.is_set() and not second.is_set():
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return False
        first.wait(0.05 if remaining is None else min(0.05, remaining))
    return True


# ---- HTTP ---------------------------------------------------------------------------------------
class JetStreamHTTPServer(QuietHTTPServer):
    """``POST /v1/generate``, ``GET /v1/health`` and ``GET /`` as JetStream's HTTP server answers them."""

    daemon_threads = True  # a client that stops reading must not hold stop() up

    def __init__(self, address: tuple[str, int], traffic: ClientTraffic, timeout_s: float) -> None:
        self.traffic, self.answer_timeout_s = traffic, timeout_s
        protocol.stubs()  # compiled now, not on the first request (hundreds of ms)
        super().__init__(address, _GenerateHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        threading.Thread(target=self.serve_forever, name="jetstream-http", daemon=True).start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _GenerateHandler(BaseHTTPRequestHandler):
    server: JetStreamHTTPServer
    protocol_version = "HTTP/1.1"  # chunked streaming, keep-alive as uvicorn
    disable_nagle_algorithm = True  # each chunk leaves when written: Nagle held one back for the previous one's ACK

    def do_GET(self) -> None:
        if self.path == protocol.HEALTH_PATH:
            self._json(200, {"is_live": "True"})
        elif self.path == "/":
            self._json(200, {"message": "JetStream HTTP Server"})
        else:
            self._json(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        if self.path != protocol.GENERATE_PATH:
            self._json(404, {"detail": "Not Found"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        try:
            token_ids, text, max_tokens = protocol.parse_http_body(json.loads(self.rfile.read(length) or b"null"))
        except (ValueError, UnicodeDecodeError) as exc:  # json.JSONDecodeError is a ValueError
            self._json(422, {"detail": str(exc)})
            return
        traffic = self.server.traffic
        chunks = traffic.stream(traffic.submit(token_ids, text, max_tokens), self.server.answer_timeout_s)
        # headers at once, as upstream's StreamingResponse sends them before its first item: the first token then
        # arrives as a chunk like every other, so a client's first-token and last-token times are alike
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for tokens in chunks:
                self._chunk(tokens)
        except (RequestFailed, TimeoutError) as exc:  # the stream is cut, as a failing server's is
            log.info("generate: %s", exc)
            self.close_connection = True
            return
        except OSError:  # the client went away
            self.close_connection = True
            return
        self.wfile.write(b"0\r\n\r\n")

    def _chunk(self, tokens: tuple[list[int], str | None]) -> None:
        data = protocol.stream_json(*tokens).encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _json(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body, indent=4).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("jetstream-http %s", format % args)


# ---- gRPC ---------------------------------------------------------------------------------------
def grpc_server(address: str, traffic: ClientTraffic, timeout_s: float) -> tuple[Any, int]:
    """A gRPC server with the Orchestrator service (``Decode``, ``HealthCheck``) at ``address`` (host:port, port 0:
    any); returns it, not started, and its port."""
    import grpc

    pb, services = protocol.stubs()

    class Orchestrator(services.OrchestratorServicer):
        def Decode(self, request: Any, context: Any) -> Iterator[Any]:
            content = request.WhichOneof("content")
            if content is None:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "one of token_content and text_content is required")
            ids = list(request.token_content.token_ids) if content == "token_content" else None
            text = request.text_content.text if content == "text_content" else None
            ticket = traffic.submit(ids, text, request.max_tokens)
            try:
                for tokens in traffic.stream(ticket, timeout_s):
                    yield protocol.stream_response(*tokens)
            except (RequestFailed, TimeoutError) as exc:
                context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))

        def HealthCheck(self, request: Any, context: Any) -> Any:
            return pb.HealthCheckResponse(is_live=True)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=GRPC_WORKERS, thread_name_prefix="jetstream-grpc"))
    services.add_OrchestratorServicer_to_server(Orchestrator(), server)
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"gRPC: cannot listen on {address}")
    return server, port

"""Running ``rlscale emulate`` serving JetStream's APIs in a subprocess, for the load test and calibration tests."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Served:
    http_url: str
    grpc_target: str
    metrics_urls: tuple[str, str]  # the pod's server page and its device-plugin page


@contextmanager
def emulate(scenario: Path, speed: float, tmp: Path, *extra: str) -> Iterator[Served]:
    """``rlscale emulate`` of ``scenario`` serving HTTP and gRPC, only what clients send, until the block ends."""
    http, grpc_port, metrics = free_port(), free_port(), free_port()
    command = [
        sys.executable, "-m", "rlscale", "emulate", "--scenario", str(scenario), "--speed", str(speed),
        "--api-port", "0", "--metrics-port", str(metrics), "--device-port", "0", "--http-port", str(http),
        "--grpc-port", str(grpc_port), "--no-scenario-traffic", "--targets-file", str(tmp / "targets.json"),
        "--kubeconfig", str(tmp / "kubeconfig"), *extra,
    ]  # fmt: skip
    log = (tmp / "emulate.log").open("w")
    child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    served = Served(
        f"http://127.0.0.1:{http}", f"127.0.0.1:{grpc_port}",
        (f"http://127.0.0.2:{metrics}/metrics", f"http://127.0.0.2:{metrics}/device/metrics"),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(served.http_url + "/v1/health", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            if child.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"rlscale emulate did not come up: {(tmp / 'emulate.log').read_text()}")
            time.sleep(0.2)
        yield served
    finally:
        child.send_signal(signal.SIGINT)
        try:
            child.wait(20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        log.close()

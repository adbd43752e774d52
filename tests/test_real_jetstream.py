"""Opt-in: ``rlscale loadtest`` against JetStream's own orchestrator and gRPC server (the ``google-jetstream``
package's mock engine on CPU), proving the client speaks the real protocol.

Not run by default or in CI: PyPI's ``google-jetstream`` (0.2.2, the only release there) imports ``seqio``, which
pulls TensorFlow, TensorFlow Text and TensorFlow Datasets (~1 GB) besides JAX and Flax, and its generated stubs
pin an older protobuf than this project's; it also predates the HTTP server (``/v1/generate`` came later
upstream). To run it, install it into an interpreter of its own and name that interpreter::

    python3 -m venv /tmp/jetstream && /tmp/jetstream/bin/pip install google-jetstream \
        "jax<0.6" "jaxlib<0.6" "flax<0.10.5" "orbax-checkpoint<0.11.14"
    RLSCALE_REAL_JETSTREAM=/tmp/jetstream/bin/python .venv/bin/pytest tests/test_real_jetstream.py

The mock server (``jetstream.core.implementations.mock.server``, interleaved, CPU) exports no Prometheus page, so
only the requests are checked; it is slow on CPU, so some requests may still be in flight when the drain ends.
Tried here: 0.2.2 with today's JAX fails in its generate thread (``jax.tree_map`` is gone); with
``pip install 'jax<0.6' 'jaxlib<0.6' 'flax<0.10.5' 'orbax-checkpoint<0.11.14'`` in that interpreter it serves, and
this test passes. Its mock answers some steps with an empty sample: a response is counted as one token then.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
import yaml

from rlscale.jetstream import protocol
from rlscale.loadtest.results import MeasuredRequests
from tests.loadtest_helpers import free_port

PYTHON = os.environ.get("RLSCALE_REAL_JETSTREAM")
pytestmark = pytest.mark.skipif(
    not PYTHON, reason="opt-in: set RLSCALE_REAL_JETSTREAM to a python with google-jetstream installed"
)


def test_loadtest_speaks_jetstreams_own_grpc_server(tmp_path: Path) -> None:
    port = free_port()
    server = subprocess.Popen([PYTHON, "-m", "jetstream.core.implementations.mock.server", f"--port={port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = protocol.stubs()[1].OrchestratorStub(channel)
            while True:
                try:
                    stub.HealthCheck(protocol.stubs()[0].HealthCheckRequest(), timeout=2)
                    break
                except grpc.RpcError:
                    assert time.monotonic() < deadline and server.poll() is None, "the JetStream server did not start"
                    time.sleep(1)
        scenario = tmp_path / "mock.yaml"
        scenario.write_text(yaml.safe_dump({
            "workload": {"arrival": {"process": "poisson", "rate_per_s": 2.0},
                         "lengths": {"kind": "fixed", "prompt_tokens": 8, "output_tokens": 4}},
            "duration_s": 10, "seed": 0,
        }))  # fmt: skip
        out = tmp_path / "out"
        run = subprocess.run(
            [sys.executable, "-m", "rlscale", "loadtest", "--scenario", str(scenario), "--grpc", f"127.0.0.1:{port}",
             "--max-rate", "10", "--max-duration", "20", "--drain", "60", "--out", str(out)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert run.returncode == 0, run.stdout + run.stderr
        measured = MeasuredRequests.read(out)
        done = measured.outcome == "completed"
        assert done.sum() >= 5 and not (measured.outcome == "failed").any(), set(measured.failure)
        assert (measured.tokens[done] >= 1).all() and (measured.first_token_s[done] <= measured.done_s[done]).all()
    finally:
        server.terminate()
        server.wait(30)

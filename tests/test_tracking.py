"""MLflow tracking of a comparison: what the runs hold, in the embedded SQLite store and through a real
``mlflow server`` process that the fixture starts on a free loopback port and stops afterwards."""

from __future__ import annotations

import csv
import io
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from rlscale.experiments.compare import compare, comparison_log
from rlscale.experiments.stats import run_metrics
from rlscale.tracking.keys import metric_key
from rlscale.tracking.mlflow_tracker import track_comparison
from rlscale.tracking.store import TrackingError, check_tracking
from tests.test_compare import write_experiment

pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy")  # inside MLflow's SQL store

SERVER_START_TIMEOUT_S = 90
SERVER_STOP_TIMEOUT_S = 15


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny experiment (1 scenario × 2 agents × 2 seeds), run once in-process, untracked."""
    folder = tmp_path_factory.mktemp("tracked")
    return compare(write_experiment(folder, workers=1), folder / "out", progress=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory) -> Iterator[str]:
    """A real tracking server on 127.0.0.1 with a throwaway SQLite store and proxied artifacts; its URI."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    log = (folder / "server.log").open("w")
    command = [
        sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{folder / 'backend.db'}",
        "--artifacts-destination", (folder / "artifacts").as_uri(),
    ]  # fmt: skip
    # Its background job runner (a pool of consumer processes) serves features the tests do not use.
    env = os.environ | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"mlflow server exited with {server.returncode}:\n{(folder / 'server.log').read_text()}")
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"mlflow server silent after {SERVER_START_TIMEOUT_S} s:\n{(folder / 'server.log').read_text()}"
                )
            time.sleep(0.25)
        yield uri
    finally:
        # The server runs its web workers as children: end the whole session it leads, politely first.
        for sig, wait_s in ((signal.SIGTERM, SERVER_STOP_TIMEOUT_S), (signal.SIGKILL, 5)):
            try:
                os.killpg(server.pid, sig)
            except ProcessLookupError:
                break
            try:
                server.wait(timeout=wait_s)
                break
            except subprocess.TimeoutExpired:
                continue
        log.close()


def children_of(client: MlflowClient, parent_id: str) -> list:
    experiment_id = client.get_run(parent_id).info.experiment_id
    return client.search_runs([experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")


def artifact_text(client: MlflowClient, run_id: str, path: str, folder: Path) -> str:
    return Path(client.download_artifacts(run_id, path, str(folder))).read_text()


def test_metric_keys_are_namespaced():
    assert metric_key("cost_usd") == "cost/usd"
    assert metric_key("ttft_p99_s") == "latency/ttft_p99_s"
    assert metric_key("latency_p50_s") == "latency/e2e_p50_s"
    assert metric_key("failures_no_ready_pod") == "requests/failed_no_ready_pod"
    assert metric_key("a_new_kpi") == "kpi/a_new_kpi"


@pytest.mark.slow
def test_embedded_sqlite_runs_hold_params_metrics_and_artifacts(tiny, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    parent_id = track_comparison(comparison_log(tiny), uri)
    client = MlflowClient(tracking_uri=uri)

    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED"
    assert parent.info.artifact_uri.startswith((tmp_path / "mlruns" / "tiny").as_uri())  # beside the db, not in cwd
    assert client.get_experiment(parent.info.experiment_id).name == "tiny"
    params = parent.data.params
    assert params["seeds"] == "0,1" and params["agents"] == "hpa-prefill-backlog,hpa-slots-used"
    assert params["scenarios"] == "steady" and params["runs"] == "4" and params["duration_s"] == "120"
    assert params["git_commit"] == tiny.git_commit
    assert parent.data.metrics["mean/steady/hpa-slots-used/cost/usd"] == pytest.approx(
        sum(r.kpis["cost_usd"] for r in tiny.records if r.agent == "hpa-slots-used") / 2
    )
    artifacts = {a.path for a in client.list_artifacts(parent_id)}
    assert {"report.md", "results.csv", "experiment.json", "pareto.png", "timelines_steady.png"} <= artifacts
    assert artifact_text(client, parent_id, "report.md", tmp_path / "dl") == (tiny.out / "report.md").read_text()

    children = children_of(client, parent_id)
    assert sorted(c.info.run_name for c in children) == sorted(r.label for r in tiny.records)
    by_name = {c.info.run_name: c for c in children}
    for record in tiny.records:
        child = by_name[record.label]
        assert child.info.status == "FINISHED"
        assert child.data.params.items() >= {
            "scenario": "steady", "agent": record.agent, "seed": str(record.seed), "model": "llama2-7b",
            "hardware": "v5e-8", "initial_replicas": "4", "arrival": "poisson", "duration_s": "120",
        }.items()  # fmt: skip
        metrics = child.data.metrics
        assert metrics["cost/usd"] == pytest.approx(record.kpis["cost_usd"])
        assert metrics["cost/chip_hours"] == pytest.approx(record.kpis["chip_hours"])
        assert metrics["slo/attainment"] == pytest.approx(record.kpis["slo_attainment"])
        assert metrics["latency/ttft_p99_s"] == pytest.approx(record.kpis["ttft_s"]["p99"])
        assert metrics["sim/wall_s"] == pytest.approx(record.wall_s)
        assert set(metrics) == set(run_metrics(record.kpis, record.wall_s))
        timeline = artifact_text(client, child.info.run_id, f"timeline/{record.label}.csv", tmp_path / record.label)
        assert len(list(csv.DictReader(io.StringIO(timeline)))) == len(record.timeline) == 2


@pytest.mark.slow
def test_compare_logs_through_a_real_tracking_server(mlflow_server, tmp_path):
    path = write_experiment(tmp_path, name="served")
    out = subprocess.run(
        [sys.executable, "-m", "rlscale", "compare", str(path), "--out", str(tmp_path / "out"),
         "--tracking-uri", mlflow_server],
        capture_output=True, text=True, cwd=tmp_path, timeout=180,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert f"at {mlflow_server}" in out.stdout
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()

    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name("served")
    (parent,) = client.search_runs([experiment.experiment_id], filter_string="params.experiment = 'served'")
    assert parent.info.status == "FINISHED" and parent.data.params["workers"] == "2"
    report = artifact_text(client, parent.info.run_id, "report.md", tmp_path / "dl")
    assert report == (tmp_path / "out" / "report.md").read_text()
    children = children_of(client, parent.info.run_id)
    assert len(children) == 4
    with (tmp_path / "out" / "results.csv").open() as f:
        costs = {(r["agent"], r["seed"]): float(r["cost_usd"]) for r in csv.DictReader(f)}
    for child in children:
        key = (child.data.params["agent"], child.data.params["seed"])
        assert child.data.metrics["cost/usd"] == pytest.approx(costs[key])
        assert {a.path for a in client.list_artifacts(child.info.run_id, "timeline")} == {
            f"timeline/{child.info.run_name}.csv"
        }


def test_an_unreachable_server_fails_before_any_run(tmp_path):
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    with pytest.raises(TrackingError, match="does not answer"):
        check_tracking(uri, timeout_s=2)
    with pytest.raises(TrackingError):
        compare(write_experiment(tmp_path), tmp_path / "out", tracking_uri=uri, progress=False)
    assert not (tmp_path / "out").exists()
    assert time.monotonic() - started < 10

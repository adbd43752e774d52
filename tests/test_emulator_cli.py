"""`rlscale emulate`, the Prometheus configuration it prints (checked against a real Prometheus when one is
installed), and the API object helpers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes import config as kube_config
from typer.testing import CliRunner

from rlscale.cli import app
from rlscale.emulator import Emulator, prometheus_config
from rlscale.emulator.objects import ApiError, json_patch, label_selector, merge_patch
from rlscale.emulator.prometheus import duration
from rlscale.scenario import apply_overrides, load_scenario
from tests.skips import NO_PROMETHEUS

ROOT = Path(__file__).resolve().parent.parent


def test_prometheus_config_scrapes_the_targets_file(tmp_path):
    targets = tmp_path / "targets.json"
    config = yaml.safe_load(prometheus_config(targets, scrape_interval_s=1.5, device_scrape_interval_s=20))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert {name: job["metrics_path"] for name, job in jobs.items()} == {
        "jetstream": "/metrics",
        "tpu-device-plugin": "/device/metrics",
    }
    for job in jobs.values():
        assert job["file_sd_configs"][0]["files"] == [str(targets.resolve())]
    assert (jobs["jetstream"]["scrape_interval"], jobs["jetstream"]["scrape_timeout"]) == ("1500ms", "1500ms")
    assert (jobs["tpu-device-plugin"]["scrape_interval"], jobs["tpu-device-plugin"]["scrape_timeout"]) == ("20s", "10s")
    assert config["global"]["evaluation_interval"] == "1500ms"
    assert [duration(s) for s in (15, 0.25, 90, 1e-6)] == ["15s", "250ms", "90s", "1ms"]


def test_print_prometheus_config_divides_intervals_by_speed(tmp_path):
    result = CliRunner().invoke(
        app,
        ["emulate", "-s", "envs/steady.yaml", "--speed", "4", "--targets-file", str(tmp_path / "t.json"),
         "--print-prometheus-config"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    jobs = {job["job_name"]: job for job in yaml.safe_load(result.output)["scrape_configs"]}
    assert jobs["jetstream"]["scrape_interval"] == "3750ms"  # the scenario's 15 s at 4x
    assert jobs["tpu-device-plugin"]["scrape_interval"] == "15s"  # 60 s at 4x


@pytest.mark.slow
def test_emulate_runs_until_sigterm(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    command = [sys.executable, "-m", "rlscale", "emulate", "-s", "envs/steady.yaml", "--speed", "20",
               "--api-port", "0", "--metrics-port", "0", "--device-port", "0", "--status-every", "0.3",
               "--targets-file", str(tmp_path / "targets.json"), "--kubeconfig", str(kubeconfig)]  # fmt: skip
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        banner = proc.stdout.readline()
        assert "API http://127.0.0.1:" in banner, banner
        status = proc.stdout.readline()
        assert "replicas 4 ready / 4 current / 4 desired" in status, status
        api = kube_config.new_client_from_config(config_file=str(kubeconfig))
        assert client.AppsV1Api(api).read_namespaced_deployment_scale("jetstream", "default").spec.replicas == 4
        assert len(json.loads((tmp_path / "targets.json").read_text())) == 4
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    assert "stopped at t=" in out


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("prometheus") is None, reason=NO_PROMETHEUS)
def test_a_real_prometheus_scrapes_the_pods(tmp_path):
    scenario = apply_overrides(load_scenario("envs/steady.yaml"), replicas=2)
    with Emulator(scenario, speed=10, targets_file=tmp_path / "targets.json") as emu:
        (tmp_path / "prometheus.yml").write_text(prometheus_config(emu.targets_file, 0.5, None, 0.5, 0.5))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        prom = subprocess.Popen(
            ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        try:
            series = _wait_for_series(f"http://127.0.0.1:{port}", "jetstream_prefill_backlog_size", timeout_s=15)
            memory = _wait_for_series(f"http://127.0.0.1:{port}", "memory_used", timeout_s=5)
            pods = sorted(emu.targets())
        finally:
            os.killpg(prom.pid, signal.SIGTERM)
            prom.wait(timeout=10)
    assert sorted(s["metric"]["pod"] for s in series) == pods == ["jetstream-0", "jetstream-1"]
    assert all(s["metric"]["namespace"] == "default" and s["metric"]["id"] == s["metric"]["pod"] for s in series)
    assert {s["metric"]["job"] for s in memory} == {"tpu-device-plugin"}


def _wait_for_series(url: str, query: str, timeout_s: float) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/v1/query?query={query}", timeout=2) as response:
                result = json.loads(response.read())["data"]["result"]
            if len(result) >= 2:
                return result
        except OSError:
            pass  # not listening yet
        if time.monotonic() > deadline:
            raise AssertionError(f"Prometheus never returned two series of {query}")
        time.sleep(0.2)


def test_merge_and_json_patches():
    doc = {"spec": {"replicas": 2, "x": 1}, "metadata": {"name": "a"}}
    patched = merge_patch(doc, {"spec": {"replicas": 3, "x": None}})
    assert patched == {"spec": {"replicas": 3}, "metadata": {"name": "a"}}
    ops = [
        {"op": "test", "path": "/spec/replicas", "value": 2},
        {"op": "replace", "path": "/spec/replicas", "value": 5},
        {"op": "add", "path": "/metadata/labels", "value": {"a": "b"}},
        {"op": "remove", "path": "/spec/x"},
    ]
    assert json_patch(doc, ops) == {"spec": {"replicas": 5}, "metadata": {"name": "a", "labels": {"a": "b"}}}
    assert doc["spec"] == {"replicas": 2, "x": 1}  # the target is not changed
    with pytest.raises(ApiError) as err:
        json_patch(doc, [{"op": "test", "path": "/spec/replicas", "value": 9}])
    assert err.value.code == 422


@pytest.mark.parametrize(
    ("selector", "matches"),
    [("app=jetstream", True), ("app==jetstream,tier", True), ("app!=jetstream", False), ("app in (a, jetstream)", True),
     ("app notin (jetstream)", False), ("!tier", False), ("", True), ("app=jetstream,tier=web", False)],
)  # fmt: skip
def test_label_selectors(selector, matches):
    assert label_selector(selector)({"app": "jetstream", "tier": "model"}) is matches

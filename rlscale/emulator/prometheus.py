"""How a real Prometheus finds the emulated pods: a ``file_sd_configs`` targets file and a ``prometheus.yml``.

The targets file lists one group per scrape-able pod (``127.0.0.N:M`` with
labels ``pod`` and ``namespace``, as a PodMonitoring would attach them); it
is replaced atomically (write, then rename) so Prometheus never reads half a
file. Prometheus keeps wall-clock time: at speed K, a simulated interval of
S seconds is S/K seconds to Prometheus, and so are the windows of PromQL
functions such as ``rate``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import yaml

JOB, DEVICE_JOB = "jetstream", "tpu-device-plugin"
DEVICE_PATH = "/device/metrics"
MAX_SCRAPE_TIMEOUT_S = 10.0  # Prometheus's default; a timeout may not exceed its interval


def write_targets(path: Path, targets: Mapping[str, str], port: int, namespace: str) -> None:
    """Replace ``path`` with the file_sd groups for ``targets`` (pod -> address)."""
    groups = [
        {"targets": [f"{address}:{port}"], "labels": {"pod": pod, "namespace": namespace}}
        for pod, address in sorted(targets.items(), key=lambda item: _host_order(item[1]))
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(groups, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _host_order(address: str) -> tuple[int, ...]:
    return tuple(int(part) for part in address.split("."))


def prometheus_config(
    targets_file: Path,
    scrape_interval_s: float = 15.0,
    evaluation_interval_s: float | None = None,
    device_scrape_interval_s: float | None = 60.0,
    refresh_interval_s: float = 5.0,
) -> str:
    """A ``prometheus.yml`` scraping the pods listed in ``targets_file`` (wall-clock seconds throughout).

    Two jobs read the same targets: ``jetstream`` (``/metrics``) and, unless
    ``device_scrape_interval_s`` is None, ``tpu-device-plugin``
    (``/device/metrics`` on the same port).
    """
    sd = (str(Path(targets_file).resolve()), duration(refresh_interval_s))
    jobs = [_job(JOB, "/metrics", scrape_interval_s, *sd)]
    if device_scrape_interval_s is not None:
        jobs.append(_job(DEVICE_JOB, DEVICE_PATH, device_scrape_interval_s, *sd))
    config = {
        "global": {
            "scrape_interval": duration(scrape_interval_s),
            "scrape_timeout": duration(min(scrape_interval_s, MAX_SCRAPE_TIMEOUT_S)),
            "evaluation_interval": duration(evaluation_interval_s or scrape_interval_s),
        },
        "scrape_configs": jobs,
    }
    return yaml.safe_dump(config, sort_keys=False)


def _job(name: str, path: str, interval_s: float, targets_file: str, refresh: str) -> dict:
    return {
        "job_name": name,
        "metrics_path": path,
        "scrape_interval": duration(interval_s),
        "scrape_timeout": duration(min(interval_s, MAX_SCRAPE_TIMEOUT_S)),
        "file_sd_configs": [{"files": [targets_file], "refresh_interval": refresh}],
    }


def duration(seconds: float) -> str:
    """A Prometheus duration: whole seconds as ``15s``, else milliseconds (``250ms``); at least 1 ms."""
    ms = max(1, round(seconds * 1000))
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"

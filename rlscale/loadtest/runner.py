"""One load test, from the command's side: write the folder, run the engine in its own process, read it back.

The engine (:mod:`rlscale.loadtest.engine`) runs under gevent in a child process; this process keeps numpy,
the scenario and the analysis. Ctrl-C reaches both (a terminal signals the whole process group; a SIGINT to
this process alone is passed on): the engine stops sending, cuts what is in flight and closes its files, and
this process still writes the timeline and the summary of what was measured.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rlscale.loadtest.engine import BOOT, ENGINE_FILE, LOCUST_FILE, PLAN_FILE, EngineConfig
from rlscale.loadtest.plan import LoadTestPlan
from rlscale.loadtest.results import (
    SCENARIO_FILE,
    SEGMENTS_FILE,
    SUMMARY_FILE,
    Gauges,
    MeasuredRequests,
    summary,
    timeline_rows,
    write_timeline,
)

STOP_GRACE_S = 30.0  # wall seconds the engine has to close its files after a stop


@dataclass(frozen=True)
class Target:
    """Where the load goes and how: ``http`` (a ``http://host:port`` base URL) or ``grpc`` (``host:port``)."""

    protocol: str
    address: str

    @classmethod
    def of(cls, url: str | None, grpc: str | None) -> Target:
        if (url is None) == (grpc is None):
            raise ValueError("give the server as --url http://host:port (HTTP /v1/generate) or --grpc host:port")
        if url is not None:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"--url: expected http://host:port, got {url!r}")
            return cls("http", url.rstrip("/"))
        return cls("grpc", grpc)

    def __str__(self) -> str:
        return f"{self.address}/v1/generate (HTTP)" if self.protocol == "http" else f"{self.address} (gRPC Decode)"


def prepare(folder: Path, plan: LoadTestPlan, config: EngineConfig) -> None:
    """Write what the engine reads and what the analysis needs: the stated scenario, the plan, its segments."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SCENARIO_FILE).write_text(yaml.safe_dump(plan.scenario.model_dump(mode="json"), sort_keys=False))
    rows = np.column_stack([plan.times_s, plan.prompts, plan.outputs])
    np.savetxt(folder / PLAN_FILE, rows, delimiter=",", header="t_s,prompt_tokens,output_tokens", comments="",
               fmt=("%.6f", "%d", "%d"))  # fmt: skip
    (folder / SEGMENTS_FILE).write_text(json.dumps([asdict(s) for s in plan.segments], indent=1))
    (folder / ENGINE_FILE).write_text(json.dumps(asdict(config), indent=1))


def run_engine(folder: Path, echo: Callable[[str], None]) -> int:
    """Run the engine on ``folder`` until the plan is played (or a stop); its lines go to ``echo``."""
    child = subprocess.Popen(
        [sys.executable, "-c", BOOT, str(folder)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        for line in child.stdout:
            echo(line.rstrip())
        return child.wait()
    except KeyboardInterrupt:
        if child.poll() is None:
            child.send_signal(signal.SIGINT)  # a no-op for an engine the terminal already told
        echo("stopping: the engine is closing its files")
        try:
            for line in child.stdout:
                echo(line.rstrip())
            return child.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            child.kill()
            return child.wait()


def finish(folder: Path, plan: LoadTestPlan, interval_s: float) -> dict[str, Any]:
    """Read back what was measured: ``timeline.csv`` and ``summary.json`` (returned)."""
    requests, gauges = MeasuredRequests.read(folder), Gauges.read(folder)
    ended = requests.done_s[~np.isnan(requests.done_s)]
    duration = max(plan.duration_s, float(ended.max()) if ended.size else 0.0)
    measured = float(np.nanmax(requests.arrival_s)) if len(requests.arrival_s) else 0.0
    write_timeline(folder, timeline_rows(requests, gauges, duration, interval_s))
    result = summary(requests, plan.scenario, max(min(plan.duration_s, measured), 1e-9))
    engine = folder / LOCUST_FILE
    if engine.exists():
        result["engine"] = json.loads(engine.read_text())
    result["scrapes"] = len(gauges.t_s)
    (folder / SUMMARY_FILE).write_text(json.dumps(result, indent=1))
    return result

"""Write a run to disk: it describes itself (scenario, command, commit), its KPIs, timeline and plot."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

from rlscale.plots import timeline_plot
from rlscale.scenario import ScenarioConfig
from rlscale.simulation import RunResult
from rlscale.timeline import COLUMNS


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def planning_times(wall_s: float, plan: dict | None) -> dict[str, float]:
    """``planning_s`` (a planner's search before the run; 0 without one) and ``total_s``: the simulation's
    ``wall_s`` alone would hide minutes of planning."""
    planning_s = float(plan.get("planning_s", 0.0)) if plan else 0.0
    return {"planning_s": planning_s, "total_s": wall_s + planning_s}


def default_folder(scenario: ScenarioConfig) -> Path:
    return Path("runs") / f"{scenario.name}__seed{scenario.seed}__{time.strftime('%Y%m%d-%H%M%S')}"


def prepare_folder(scenario: ScenarioConfig, out: Path | None = None) -> Path:
    """The run's folder, created: ``out``, or a new ``runs/<scenario>__seed<k>__<time>`` (never another run's)."""
    folder = out or default_folder(scenario)
    if out is None and folder.exists():
        folder = folder.with_name(folder.name + f"-{time.monotonic_ns() % 10_000}")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_run(
    scenario: ScenarioConfig,
    result: RunResult,
    out: Path | None = None,
    agent: str | None = None,
    replay: dict | None = None,
    plan: dict | None = None,
) -> Path:
    """summary.json, timeline.csv and timeline.png in ``out`` (see :func:`prepare_folder`); ``replay``: the effective
    trace replay (``describe_replay``), kept so that the scales a run played at are on record; ``plan``: what a
    planning agent chose (``plan_record``), its ``planning_s`` kept beside ``wall_s`` (the simulation's alone)."""
    folder = prepare_folder(scenario, out)
    summary = {
        "kpis": result.kpis.as_dict(),
        "warnings": result.warnings,
        "replay": replay,
        "wall_s": result.wall_s,
        **planning_times(result.wall_s, plan),
        "agent_plan": plan,
        "scenario": scenario.model_dump(mode="json"),
        "agent": agent,
        "command": sys.argv,
        "git_commit": git_commit(),
    }
    (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    with (folder / "timeline.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(result.timeline)
    if result.timeline:
        slo = scenario.slo
        title = f"{scenario.name} — {Path(agent).stem}" if agent else scenario.name
        timeline_plot(result.timeline, folder / "timeline.png", title, slo.ttft_p99_s, slo.tpot_p99_s)
    return folder

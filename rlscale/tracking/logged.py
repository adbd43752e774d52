"""Which MLflow run a results folder was logged as: ``<out>/mlflow_run.json`` (tracking URI and run id).

A comparison, a tuning search and a training sweep write it once their run exists and read it when resumed, so a
resumption that has nothing new to log, or that continues a sweep, reuses the run instead of logging another.
"""

from __future__ import annotations

import json
from pathlib import Path

LOGGED_JSON = "mlflow_run.json"


def logged_run(out: Path, tracking_uri: str) -> str | None:
    """The run id ``out`` was logged as at ``tracking_uri``; None if not, or elsewhere, or the file is unreadable."""
    try:
        data = json.loads((Path(out) / LOGGED_JSON).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("tracking_uri") != tracking_uri or not data.get("run_id"):
        return None
    return str(data["run_id"])


def record_run(out: Path, tracking_uri: str, run_id: str) -> None:
    """Note that ``out`` is logged as ``run_id`` at ``tracking_uri``."""
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / LOGGED_JSON).write_text(json.dumps({"tracking_uri": tracking_uri, "run_id": run_id}) + "\n")

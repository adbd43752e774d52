"""Keyed, idempotent work units: each finished unit is stored under its key, so a re-submitted or partly failed
sweep runs only the units it lacks, on whichever executor.

Comparison runs, tuning trials and training runs all go through :func:`run_cells`; their keys differ, the loop
does not. Results are stored on the driver as they come in (the workers never write here), so a worker that dies
costs only its own unit.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

from rlscale.experiments.executors import LocalExecutor, RayExecutor


class Keyed(Protocol):
    """A unit's key: a dataclass (stored whole beside the result and compared on load) with a file-safe label."""

    @property
    def label(self) -> str: ...


def _plain(key: Keyed) -> Any:
    """The key as JSON reads it back (tuples become lists), so a stored key compares equal to a fresh one."""
    return json.loads(json.dumps(asdict(key)))  # type: ignore[call-overload]


class CellStore:
    """Finished units as ``<folder>/<key label>.json`` (key and result), each written whole (temporary file, then
    rename) as its unit finishes, so an interrupted sweep keeps every finished cell."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def path(self, key: Keyed) -> Path:
        return self.folder / f"{key.label}.json"

    def load(self, key: Keyed) -> dict[str, Any] | None:
        """The stored result of ``key``, or None when it is missing, unreadable or stored under another key."""
        try:
            data = json.loads(self.path(key).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("key") != _plain(key):
            return None
        return data.get("result")

    def save(self, key: Keyed, result: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.path(key)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"key": _plain(key), "result": result}))
        os.replace(tmp, path)

    def count(self, keys: Sequence[Keyed]) -> int:
        """How many of ``keys`` are stored."""
        return sum(self.load(key) is not None for key in keys)


def run_cells(
    executor: LocalExecutor | RayExecutor,
    fn: Callable[[Any], dict[str, Any]],
    units: Sequence[Any],
    keys: Sequence[Keyed],
    cells: CellStore | None = None,
    resume: bool = False,
    on_done: Callable[[], None] | None = None,
    *,
    collect: Callable[[int, dict[str, Any]], dict[str, Any]] | None = None,
    cpus: int = 1,
) -> list[dict[str, Any]]:
    """``fn(unit)`` for every unit, in ``units`` order, on ``executor`` (``cpus`` each). With ``cells``, each result
    is stored under its key as it comes in; with ``resume`` too, units already stored are not run again.
    ``collect(index, result)``, when given, runs on the driver as each result comes in, before it is stored, and
    returns what to store (it writes files the worker sent back, logs them). ``on_done`` is called once per unit,
    stored ones included (a progress bar's ``update``)."""
    results: dict[int, dict[str, Any]] = {}
    if cells is not None and resume:
        for i, key in enumerate(keys):
            stored = cells.load(key)
            if stored is not None:
                results[i] = stored
                if on_done is not None:
                    on_done()
    todo = [i for i in range(len(units)) if i not in results]
    for j, result in executor.map_unordered(fn, [units[i] for i in todo], cpus=cpus):
        i = todo[j]
        if collect is not None:
            result = collect(i, result)
        results[i] = result
        if cells is not None:
            cells.save(keys[i], result)
        if on_done is not None:
            on_done()
    return [results[i] for i in range(len(units))]
